//! Item transforms on decoded HWC u8 images, with fastai's geometry
//! (vision/augment.py): Resize (squish/crop/pad), FlipItem, DihedralItem,
//! RandomCrop and RandomResizedCrop. Sizes are (width, height) here; fastai
//! takes (h, w) from the user and stores (w, h), so the formulas read the same.
//!
//! Training draws positions and sizes; validation uses fastai's fixed
//! choices (centre, or RandomResizedCrop's resize-then-centre-crop).

use crate::data::decode::resize_rgb;
use crate::rng::Rng;
use image::RgbImage;
use std::borrow::Cow;

/// How pixels outside the image are filled when a box extends past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Zeros,
    /// Mirror without repeating the edge pixel (torchvision's/numpy's "reflect").
    Reflection,
}

/// fastai's `ResizeMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Squish,
    Crop,
    Pad,
}

/// Index `i` reflected into `0..n` (period 2(n-1), edge not repeated), as
/// numpy's `pad(mode="reflect")` even when the pad is wider than the image.
pub fn reflect_index(i: i64, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let m = i.rem_euclid(period);
    (if m >= n as i64 { period - m } else { m }) as usize
}

/// fastai's `crop_pad`: the `size` box whose top-left is `tl` (may be negative
/// or reach past the image); pixels outside the image come from `pad`.
pub fn crop_pad(img: &RgbImage, size: (u32, u32), tl: (i64, i64), pad: PadMode) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (cw, ch) = size;
    let src = img.as_raw();
    let mut out = RgbImage::new(cw, ch);
    let dst: &mut [u8] = &mut out;
    for y in 0..ch as i64 {
        let sy = tl.1 + y;
        let row_y = match pad {
            _ if (0..h as i64).contains(&sy) => Some(sy as usize),
            PadMode::Reflection if h > 0 => Some(reflect_index(sy, h)),
            _ => None,
        };
        let Some(ry) = row_y else { continue };
        for x in 0..cw as i64 {
            let sx = tl.0 + x;
            let col = match pad {
                _ if (0..w as i64).contains(&sx) => Some(sx as usize),
                PadMode::Reflection if w > 0 => Some(reflect_index(sx, w)),
                _ => None,
            };
            if let Some(rx) = col {
                let s = (ry * w + rx) * 3;
                let d = (y as usize * cw as usize + x as usize) * 3;
                dst[d..d + 3].copy_from_slice(&src[s..s + 3]);
            }
        }
    }
    out
}

/// fastai's `Resize` geometry: the box (in source pixels) and its top-left for
/// an image of `orig` (w, h), target `size` (w, h), position `pcts` in [0, 1]^2
/// ((0.5, 0.5) in validation). Squish takes the whole image.
pub fn resize_box(
    orig: (u32, u32),
    size: (u32, u32),
    method: Method,
    pcts: (f64, f64),
) -> ((u32, u32), (i64, i64)) {
    let (w, h) = (orig.0 as f64, orig.1 as f64);
    let (sw, sh) = (size.0 as f64, size.1 as f64);
    let m = match method {
        Method::Squish => return (orig, (0, 0)),
        Method::Crop => (w / sw).min(h / sh),
        Method::Pad => (w / sw).max(h / sh),
    };
    // Python's int() truncates towards zero, also for the negative offsets of Pad.
    let cp = ((m * sw) as u32, (m * sh) as u32);
    let tl = (
        (pcts.0 * (w - cp.0 as f64)) as i64,
        (pcts.1 * (h - cp.1 as f64)) as i64,
    );
    (cp, tl)
}

/// fastai's `Resize(size, method, pad_mode)` at position `pcts`. Borrowed
/// when the image already is the box at the target size (the cached image
/// usually is): nothing to copy.
pub fn resize<'a>(
    img: &'a RgbImage,
    size: (u32, u32),
    method: Method,
    pad: PadMode,
    pcts: (f64, f64),
) -> Cow<'a, RgbImage> {
    let (cp, tl) = resize_box(img.dimensions(), size, method, pcts);
    if method == Method::Squish || (tl == (0, 0) && cp == img.dimensions()) {
        return squish(img, size);
    }
    Cow::Owned(resize_rgb(&crop_pad(img, cp, tl, pad), size.0, size.1))
}

/// The whole image at exactly `size`; borrowed when it already has it.
pub fn squish(img: &RgbImage, size: (u32, u32)) -> Cow<'_, RgbImage> {
    if img.dimensions() == size {
        Cow::Borrowed(img)
    } else {
        Cow::Owned(resize_rgb(img, size.0, size.1))
    }
}

/// Resize's position draw: uniform in training, the centre in validation.
pub fn resize_pcts(rng: Option<&mut Rng>) -> (f64, f64) {
    match rng {
        Some(r) => (r.next_f64(), r.next_f64()),
        None => (0.5, 0.5),
    }
}

/// Left-right mirror (`x.flip(-1)`), FlipItem's transform, as a copy made
/// in one pass.
pub fn flip_lr(img: &RgbImage) -> RgbImage {
    let w = img.width() as usize;
    let mut out = RgbImage::new(img.width(), img.height());
    if w == 0 {
        return out;
    }
    for (dst, src) in out.chunks_exact_mut(3 * w).zip(img.chunks_exact(3 * w)) {
        let (dst, _) = dst.as_chunks_mut::<3>();
        let (src, _) = src.as_chunks::<3>();
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    }
    out
}

/// `flip_lr` without a copy: each row's pixels reversed where they are
/// (the image crate's `flip_horizontal` goes pixel by pixel through
/// `get_pixel`/`put_pixel`, a visible cost of a warm epoch).
pub fn flip_lr_in_place(img: &mut RgbImage) {
    let w = img.width() as usize;
    if w == 0 {
        return;
    }
    for row in img.chunks_exact_mut(3 * w) {
        let (pixels, _) = row.as_chunks_mut::<3>();
        pixels.reverse();
    }
}

/// Top-bottom mirror (`x.flip(-2)`): the rows in reverse order.
pub fn flip_tb_in_place(img: &mut RgbImage) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let stride = 3 * w;
    for y in 0..h / 2 {
        let (top, bottom) = img.split_at_mut((h - 1 - y) * stride);
        top[y * stride..(y + 1) * stride].swap_with_slice(&mut bottom[..stride]);
    }
}

/// FlipItem(p): mirrored with probability p, training only. Takes the
/// image borrowed or owned (the pipeline's Resize is often a no-op on the
/// cached image) and copies only what it must.
pub fn flip_item<'a>(img: Cow<'a, RgbImage>, p: f64, rng: &mut Rng) -> Cow<'a, RgbImage> {
    if flip_drawn(p, rng) { mirror(img) } else { img }
}

/// FlipItem's draw alone: whether this item is mirrored (one draw from `rng`).
pub fn flip_drawn(p: f64, rng: &mut Rng) -> bool {
    rng.next_f64() < p
}

/// The image mirrored left-right: in place when owned, one copy when borrowed.
pub fn mirror(img: Cow<'_, RgbImage>) -> Cow<'_, RgbImage> {
    match img {
        Cow::Borrowed(b) => Cow::Owned(flip_lr(b)),
        Cow::Owned(mut o) => {
            flip_lr_in_place(&mut o);
            Cow::Owned(o)
        }
    }
}

/// The k-th of the 8 symmetries of the square, as fastai's `TensorImage.dihedral`:
/// k in {1,3,4,7} flips W, k in {2,4,5,7} flips H, k in {3,5,6,7} transposes,
/// in that order. k = 0 is the identity; k is taken modulo 8.
pub fn dihedral(img: &RgbImage, k: usize) -> RgbImage {
    let k = k % 8;
    let mut out = img.clone();
    if matches!(k, 1 | 3 | 4 | 7) {
        flip_lr_in_place(&mut out);
    }
    if matches!(k, 2 | 4 | 5 | 7) {
        flip_tb_in_place(&mut out);
    }
    if matches!(k, 3 | 5 | 6 | 7) {
        out = transpose(&out);
    }
    out
}

/// Swap rows and columns.
pub fn transpose(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(h, w, |x, y| *img.get_pixel(y, x))
}

/// DihedralItem(p): one of the 8 symmetries (identity included) with
/// probability p, training only.
pub fn dihedral_item<'a>(img: Cow<'a, RgbImage>, p: f64, rng: &mut Rng) -> Cow<'a, RgbImage> {
    if rng.next_f64() < p {
        let k = rng.below(8);
        Cow::Owned(dihedral(&img, k))
    } else {
        img
    }
}

/// RandomCrop(size)'s top-left: uniform (inclusive ranges, as `random.randint`)
/// in training, `(orig - size) // 2` (floor) in validation.
pub fn random_crop_tl(orig: (u32, u32), size: (u32, u32), rng: Option<&mut Rng>) -> (i64, i64) {
    let wd = orig.0 as i64 - size.0 as i64;
    let hd = orig.1 as i64 - size.1 as i64;
    match rng {
        None => (wd.div_euclid(2), hd.div_euclid(2)),
        Some(r) => {
            // randint(wd, -1) when the image is smaller, else randint(0, wd).
            let mut pick = |d: i64| {
                let (lo, hi) = if d < 0 { (d, -1) } else { (0, d) };
                lo + r.below((hi - lo + 1) as usize) as i64
            };
            let x = pick(wd);
            (x, pick(hd))
        }
    }
}

/// RandomCrop(size): zeros pad an image smaller than the crop.
pub fn random_crop(img: &RgbImage, size: (u32, u32), rng: Option<&mut Rng>) -> RgbImage {
    let tl = random_crop_tl(img.dimensions(), size, rng);
    crop_pad(img, size, tl, PadMode::Zeros)
}

/// RandomResizedCrop's parameters (fastai defaults: 0.08, (3/4, 4/3), 0.14, 1.0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RrcParams {
    pub min_scale: f64,
    pub max_scale: f64,
    pub ratio: (f64, f64),
    pub val_xtra: f64,
}

impl Default for RrcParams {
    fn default() -> Self {
        RrcParams {
            min_scale: 0.08,
            max_scale: 1.0,
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            val_xtra: 0.14,
        }
    }
}

/// RandomResizedCrop's training box: (crop size, top-left) in source pixels.
/// Up to 10 tries of a random area and aspect; then the centre crop clamped
/// to the ratio range.
pub fn rrc_train_box(orig: (u32, u32), p: &RrcParams, rng: &mut Rng) -> ((u32, u32), (i64, i64)) {
    let (w, h) = (orig.0 as f64, orig.1 as f64);
    for _ in 0..10 {
        let area = rng.uniform(p.min_scale, p.max_scale) * w * h;
        let ratio = rng.uniform(p.ratio.0.ln(), p.ratio.1.ln()).exp();
        // Python's round() rounds halves to even.
        let nw = (area * ratio).sqrt().round_ties_even();
        let nh = (area / ratio).sqrt().round_ties_even();
        if nw <= w && nh <= h && nw >= 1.0 && nh >= 1.0 {
            let x = rng.below((w - nw) as usize + 1) as i64;
            let y = rng.below((h - nh) as usize + 1) as i64;
            return ((nw as u32, nh as u32), (x, y));
        }
    }
    let cp = if w / h < p.ratio.0 {
        (orig.0, (w / p.ratio.0) as u32)
    } else if w / h > p.ratio.1 {
        ((h * p.ratio.1) as u32, orig.1)
    } else {
        orig
    };
    let tl = (
        (orig.0 as i64 - cp.0 as i64).div_euclid(2),
        (orig.1 as i64 - cp.1 as i64).div_euclid(2),
    );
    (cp, tl)
}

/// RandomResizedCrop's validation size before its centre crop:
/// size + ceil(max(size) * val_xtra / 8) * 8 on both sides (224 -> 256).
pub fn rrc_valid_size(size: (u32, u32), val_xtra: f64) -> (u32, u32) {
    let xtra = ((size.0.max(size.1) as f64 * val_xtra / 8.0).ceil() * 8.0) as u32;
    (size.0 + xtra, size.1 + xtra)
}

/// RandomResizedCrop(size): a random box resized to `size` in training; in
/// validation the WHOLE image squished to `rrc_valid_size`, then centre-cropped.
pub fn random_resized_crop(
    img: &RgbImage,
    size: (u32, u32),
    p: &RrcParams,
    rng: Option<&mut Rng>,
) -> RgbImage {
    match rng {
        Some(r) => {
            let (cp, tl) = rrc_train_box(img.dimensions(), p, r);
            resize_rgb(&crop_pad(img, cp, tl, PadMode::Zeros), size.0, size.1)
        }
        None => {
            let big = rrc_valid_size(size, p.val_xtra);
            let resized = resize_rgb(img, big.0, big.1);
            random_crop(&resized, size, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pixel distinct: (x, y, x*y) mixes.
    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([x as u8, y as u8, (x * 7 + y * 13) as u8])
        })
    }

    #[test]
    fn flips_equal_the_image_crates() {
        for (w, h) in [(5, 4), (4, 5), (1, 3), (3, 1), (0, 2)] {
            let img = ramp(w, h);
            let mut lr = img.clone();
            flip_lr_in_place(&mut lr);
            assert_eq!(lr, image::imageops::flip_horizontal(&img), "{w}x{h}");
            assert_eq!(flip_lr(&img), lr, "{w}x{h}");
            let mut tb = img.clone();
            flip_tb_in_place(&mut tb);
            assert_eq!(tb, image::imageops::flip_vertical(&img), "{w}x{h}");
        }
    }

    #[test]
    fn flip_twice_is_identity() {
        let img = ramp(5, 3);
        let f = flip_lr(&img);
        assert_ne!(f, img);
        assert_eq!(f.get_pixel(0, 0), img.get_pixel(4, 0));
        assert_eq!(flip_lr(&f), img);
        let mut rng = Rng::new(1);
        // p = 1 always flips; p = 0 never.
        assert_eq!(*flip_item(Cow::Borrowed(&img), 1.0, &mut rng), f);
        assert_eq!(*flip_item(Cow::Owned(img.clone()), 1.0, &mut rng), f);
        assert_eq!(*flip_item(Cow::Borrowed(&img), 0.0, &mut rng), img);
    }

    #[test]
    fn eight_dihedral_outputs_are_distinct_and_invertible() {
        let img = ramp(4, 4);
        let outs: Vec<RgbImage> = (0..8).map(|k| dihedral(&img, k)).collect();
        assert_eq!(outs[0], img);
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(outs[i], outs[j], "k={i} and k={j} agree");
            }
            // Each has an inverse among the 8.
            let inv = (0..8).find(|&k| dihedral(&outs[i], k) == img);
            assert!(inv.is_some(), "k={i} has no inverse");
        }
        // fastai's k=3: flip W then transpose; pixel (x,y) of the output is
        // pixel (W-1-y, x) of the input.
        let k3 = &outs[3];
        assert_eq!(k3.get_pixel(1, 2), img.get_pixel(3 - 2, 1));
        // Non-square: a transpose swaps the sides.
        assert_eq!(dihedral(&ramp(5, 3), 6).dimensions(), (3, 5));
    }

    #[test]
    fn reflection_does_not_repeat_the_edge() {
        let n = 4;
        let got: Vec<usize> = (-5..9).map(|i| reflect_index(i, n)).collect();
        // numpy.pad([0,1,2,3], 5, mode="reflect") = [2 1 0 1 2 | 3 2 1 0 1 2 ...]
        assert_eq!(got, [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
    }

    #[test]
    fn resize_geometry_is_fastai_s() {
        // 300x200 to 100x100, crop: m = min(3, 2) = 2, box 200x200, x range 100.
        let (cp, tl) = resize_box((300, 200), (100, 100), Method::Crop, (0.5, 0.5));
        assert_eq!((cp, tl), ((200, 200), (50, 0)));
        let (_, tl) = resize_box((300, 200), (100, 100), Method::Crop, (0.25, 0.9));
        assert_eq!(tl, (25, 0));
        // pad: m = 3, box 300x300, y offset int(0.5 * -100) = -50.
        let (cp, tl) = resize_box((300, 200), (100, 100), Method::Pad, (0.5, 0.5));
        assert_eq!((cp, tl), ((300, 300), (0, -50)));
        // Python int() truncates: int(0.3 * -100) = -30, not -31.
        let (_, tl) = resize_box((300, 200), (100, 100), Method::Pad, (0.0, 0.305));
        assert_eq!(tl, (0, -30));
        let img = ramp(30, 20);
        let out = resize(&img, (10, 10), Method::Pad, PadMode::Zeros, (0.5, 0.5));
        assert_eq!(out.dimensions(), (10, 10));
        // Top rows are padding (zeros): 5 of 30 box rows -> ~1.7 output rows.
        assert_eq!(out.get_pixel(5, 0).0, [0, 0, 0]);
        let refl = resize(&img, (10, 10), Method::Pad, PadMode::Reflection, (0.5, 0.5));
        assert_ne!(refl.get_pixel(5, 0).0, [0, 0, 0]);
    }

    #[test]
    fn crop_pad_reflects_and_zero_pads() {
        let img = ramp(3, 2);
        let z = crop_pad(&img, (5, 2), (-1, 0), PadMode::Zeros);
        assert_eq!(z.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(z.get_pixel(1, 1), img.get_pixel(0, 1));
        let r = crop_pad(&img, (5, 2), (-1, 0), PadMode::Reflection);
        assert_eq!(r.get_pixel(0, 0), img.get_pixel(1, 0));
        assert_eq!(r.get_pixel(4, 0), img.get_pixel(1, 0));
    }

    #[test]
    fn random_crop_positions() {
        assert_eq!(random_crop_tl((10, 7), (4, 4), None), (3, 1));
        // Smaller than the crop: floor division gives negative offsets, zero padding.
        assert_eq!(random_crop_tl((3, 3), (4, 6), None), (-1, -2));
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let (x, y) = random_crop_tl((10, 7), (4, 4), Some(&mut rng));
            assert!((0..=6).contains(&x) && (0..=3).contains(&y));
            let (x, y) = random_crop_tl((3, 3), (4, 6), Some(&mut rng));
            assert!(x == -1 && (-3..=-1).contains(&y));
        }
        let img = ramp(10, 7);
        let c = random_crop(&img, (4, 4), None);
        assert_eq!(c.get_pixel(0, 0), img.get_pixel(3, 1));
    }

    #[test]
    fn random_resized_crop_validation_is_fastai_s_formula() {
        // ceil(224 * 0.14 / 8) * 8 = ceil(3.92) * 8 = 32: 224 -> 256.
        assert_eq!(rrc_valid_size((224, 224), 0.14), (256, 256));
        assert_eq!(rrc_valid_size((128, 128), 0.14), (128 + 24, 128 + 24));
        // ceil(64 * 0.14 / 8) = ceil(1.12) = 2: 64 -> 80.
        assert_eq!(rrc_valid_size((64, 64), 0.14), (80, 80));
        // Whole image squished to 80x80, then the centre 64x64 (offset 8).
        let img = ramp(90, 50);
        let v = random_resized_crop(&img, (64, 64), &RrcParams::default(), None);
        let squished = resize_rgb(&img, 80, 80);
        assert_eq!(v.dimensions(), (64, 64));
        assert_eq!(v.get_pixel(0, 0), squished.get_pixel(8, 8));
        assert_eq!(v.get_pixel(63, 63), squished.get_pixel(71, 71));
    }

    #[test]
    fn random_resized_crop_train_boxes_fit() {
        let p = RrcParams::default();
        let mut rng = Rng::new(9);
        for _ in 0..200 {
            let ((cw, ch), (x, y)) = rrc_train_box((120, 80), &p, &mut rng);
            assert!(cw >= 1 && ch >= 1 && cw <= 120 && ch <= 80);
            assert!(x >= 0 && y >= 0 && x as u32 + cw <= 120 && y as u32 + ch <= 80);
            let area = (cw * ch) as f64 / (120.0 * 80.0);
            assert!(area < 1.05, "{area}");
        }
        // A very wide image with a forced ratio range cannot fit in 10 tries:
        // the fallback clamps to the ratio, centred.
        let tight = RrcParams {
            min_scale: 1.0,
            max_scale: 1.0,
            ratio: (1.0, 1.0),
            val_xtra: 0.14,
        };
        assert_eq!(
            rrc_train_box((100, 20), &tight, &mut rng),
            ((20, 20), (40, 0))
        );
        let img = ramp(120, 80);
        let a = random_resized_crop(&img, (32, 32), &p, Some(&mut Rng::new(4)));
        let b = random_resized_crop(&img, (32, 32), &p, Some(&mut Rng::new(4)));
        assert_eq!(a, b);
        assert_eq!(a.dimensions(), (32, 32));
    }
}
