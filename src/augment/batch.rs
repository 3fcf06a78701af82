//! fastai's `aug_transforms` on a batch of f32 CHW images in [0, 1]: per image,
//! one affine/perspective resample (flip or dihedral, warp, rotate, zoom, each
//! kept with its probability as fastai's `_draw_mask`), then the lighting; with
//! `min_scale < 1`, RandomResizedCropGPU (one crop per batch, as fastai).
//! Images are independent, so they run in parallel (rayon, one image per task);
//! each image draws from its own Rng derived from the batch's seed, so the
//! result does not depend on the thread schedule.

use super::affine::{self, IDENTITY, Mat3};
use super::lighting::{self, Lighting};
use crate::config::AugmentationConfig;
use crate::rng::Rng;
use rayon::prelude::*;

/// `aug_transforms`' parameters after `mult` (max_rotate, max_lighting and
/// max_warp are multiplied by it, as fastai does).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAugment {
    pub do_flip: bool,
    pub flip_vert: bool,
    pub max_rotate: f64,
    pub min_zoom: f64,
    pub max_zoom: f64,
    pub max_lighting: f64,
    pub max_warp: f64,
    pub p_affine: f64,
    pub p_lighting: f64,
    pub min_scale: f64,
}

/// What one image drew.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDraw {
    /// I @ flip @ rotate @ zoom, before `_prepare_mat`.
    pub mat: Mat3,
    /// (x_t, y_t) of the warp; (0, 0) is none.
    pub warp: (f64, f64),
    pub lighting: Lighting,
}

impl ImageDraw {
    pub fn identity() -> Self {
        ImageDraw {
            mat: IDENTITY,
            warp: (0.0, 0.0),
            lighting: Lighting::NEUTRAL,
        }
    }
}

impl BatchAugment {
    pub fn from_config(a: &AugmentationConfig) -> Self {
        BatchAugment {
            do_flip: a.do_flip,
            flip_vert: a.flip_vert,
            max_rotate: a.max_rotate * a.mult,
            min_zoom: a.min_zoom,
            max_zoom: a.max_zoom,
            max_lighting: a.max_lighting * a.mult,
            max_warp: a.max_warp * a.mult,
            p_affine: a.p_affine,
            p_lighting: a.p_lighting,
            min_scale: a.min_scale,
        }
    }

    /// fastai's `_draw_mask`: the drawn value with probability p, else neutral.
    fn masked(rng: &mut Rng, value: f64, p: f64, neutral: f64) -> f64 {
        if rng.next_f64() < p { value } else { neutral }
    }

    /// One image's draws, in fastai's transform order (flip, warp, rotate, zoom,
    /// brightness, contrast). Transforms aug_transforms leaves out draw nothing.
    pub fn draw(&self, rng: &mut Rng) -> ImageDraw {
        let mut d = ImageDraw::identity();
        if self.do_flip {
            let m = if self.flip_vert {
                // Dihedral(p=0.5): k uniform in 0..8, else 0.
                let k = rng.below(8);
                affine::dihedral_mat(Self::masked(rng, k as f64, 0.5, 0.0) as usize)
            } else {
                affine::flip_mat(rng.next_f64() < 0.5)
            };
            d.mat = affine::matmul(&d.mat, &m);
        }
        if self.max_warp != 0.0 {
            let mag = self.max_warp;
            let x = rng.uniform(-mag, mag);
            let x_t = Self::masked(rng, x, self.p_affine, 0.0);
            let y = rng.uniform(-mag, mag);
            let y_t = Self::masked(rng, y, self.p_affine, 0.0);
            d.warp = (x_t, y_t);
        }
        if self.max_rotate != 0.0 {
            let deg = rng.uniform(-self.max_rotate, self.max_rotate);
            let deg = Self::masked(rng, deg, self.p_affine, 0.0);
            d.mat = affine::matmul(&d.mat, &affine::rotate_mat(deg));
        }
        if self.min_zoom < 1.0 || self.max_zoom > 1.0 {
            let z = rng.uniform(self.min_zoom, self.max_zoom);
            let z = Self::masked(rng, z, self.p_affine, 1.0);
            // The centre is drawn with p = 1.
            let (col, row) = (rng.next_f64(), rng.next_f64());
            d.mat = affine::matmul(&d.mat, &affine::zoom_mat(z, col, row));
        }
        if self.max_lighting != 0.0 {
            let (lo, hi) = lighting::brightness_range(self.max_lighting);
            let b = rng.uniform(lo, hi);
            d.lighting.brightness = Self::masked(rng, b, self.p_lighting, 0.5);
            let (lo, hi) = lighting::contrast_log_range(self.max_lighting);
            let c = rng.uniform(lo, hi).exp();
            d.lighting.contrast = Self::masked(rng, c, self.p_lighting, 1.0);
        }
        d
    }

    /// Apply one image's affine/warp draws to a CHW image (c, h, w) in place;
    /// `scratch` has the image's length.
    pub fn apply_affine(
        d: &ImageDraw,
        img: &mut [f32],
        scratch: &mut [f32],
        c: usize,
        h: usize,
        w: usize,
    ) {
        let warp = if d.warp != (0.0, 0.0) {
            affine::warp_coeffs(d.warp.0, d.warp.1)
        } else {
            None
        };
        // Skipping the identity resample changes nothing but rounding (< 1e-6).
        if d.mat != IDENTITY || warp.is_some() {
            let m = affine::prepare_mat(&d.mat, h, w);
            affine::resample(img, c, h, w, &m, warp.as_ref(), scratch);
            img.copy_from_slice(scratch);
        }
    }

    /// RandomResizedCropGPU's box for a batch of (h, w) images, ratio (1, 1):
    /// Some((top, left, crop_h, crop_w)), or None when the crop is the whole image.
    pub fn rrc_gpu_box(
        &self,
        rng: &mut Rng,
        h: usize,
        w: usize,
    ) -> Option<(usize, usize, usize, usize)> {
        if self.min_scale >= 1.0 {
            return None;
        }
        let (hf, wf) = (h as f64, w as f64);
        for _ in 0..10 {
            let area = rng.uniform(self.min_scale, 1.0) * wf * hf;
            // ratio = exp(U(log 1, log 1)) = 1.
            let side = area.sqrt().round_ties_even();
            if side <= wf && side <= hf && side >= 1.0 {
                let (nh, nw) = (side as usize, side as usize);
                let top = rng.below(h - nh + 1);
                let left = rng.below(w - nw + 1);
                return Some((top, left, nh, nw));
            }
        }
        // Fallback: centre, clamped to ratio 1.
        let s = h.min(w);
        Some(((h - s) / 2, (w - s) / 2, s, s))
    }

    /// The draws of a batch of `n` (h, w) images from `seed`: one per image,
    /// and RandomResizedCropGPU's box for the batch.
    #[allow(clippy::type_complexity)]
    pub fn draws(
        &self,
        n: usize,
        h: usize,
        w: usize,
        seed: u64,
    ) -> (Vec<ImageDraw>, Option<(usize, usize, usize, usize)>) {
        let draws = (0..n)
            .map(|i| self.draw(&mut Rng::derived(seed, i as u64)))
            .collect();
        let crop = self.rrc_gpu_box(&mut Rng::derived(seed, u64::MAX), h, w);
        (draws, crop)
    }

    /// Augment a batch (n, c, h, w) in place. `seed` fixes every draw.
    /// Order as fastai's: affine (order 30), RandomResizedCropGPU (30, listed
    /// after), lighting (40).
    pub fn apply_batch(&self, data: &mut [f32], c: usize, h: usize, w: usize, seed: u64) {
        let len = c * h * w;
        if len == 0 {
            return;
        }
        let (draws, crop) = self.draws(data.len() / len, h, w, seed);
        data.par_chunks_mut(len).zip(&draws).for_each(|(img, d)| {
            let mut scratch = vec![0f32; len];
            Self::apply_affine(d, img, &mut scratch, c, h, w);
            if let Some((top, left, ch, cw)) = crop {
                scratch.copy_from_slice(img);
                affine::crop_resample(&scratch, c, h, w, top, left, ch, cw, img);
            }
            if !d.lighting.is_neutral() {
                d.lighting.apply(img);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AugmentationConfig {
        AugmentationConfig {
            batch_augment: true,
            ..Default::default()
        }
    }

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| r.next_f64() as f32).collect()
    }

    #[test]
    fn mult_scales_rotate_lighting_and_warp() {
        let mut a = cfg();
        a.mult = 2.0;
        let b = BatchAugment::from_config(&a);
        assert_eq!((b.max_rotate, b.max_warp), (20.0, 0.4));
        assert!((b.max_lighting - 0.4).abs() < 1e-12);
        assert_eq!((b.min_zoom, b.max_zoom), (1.0, 1.1));
    }

    #[test]
    fn probability_zero_draws_are_neutral() {
        let mut a = cfg();
        a.p_affine = 0.0;
        a.p_lighting = 0.0;
        a.do_flip = false;
        let b = BatchAugment::from_config(&a);
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            let d = b.draw(&mut rng);
            assert_eq!(d.warp, (0.0, 0.0));
            assert!(d.lighting.is_neutral());
            // Zoom's centre is still drawn but with s = 1 its translation is 0.
            let m = d.mat;
            assert!(
                (m[0][0] - 1.0).abs() < 1e-12 && m[0][2].abs() < 1e-12 && m[1][2].abs() < 1e-12
            );
        }
        let (c, h, w) = (3, 6, 5);
        let x = noise(2 * c * h * w, 3);
        let mut y = x.clone();
        b.apply_batch(&mut y, c, h, w, 9);
        assert_eq!(x, y);
    }

    #[test]
    fn draws_stay_in_fastai_s_ranges() {
        let b = BatchAugment::from_config(&cfg());
        let mut rng = Rng::new(4);
        let mut flips = 0;
        for _ in 0..2000 {
            let d = b.draw(&mut rng);
            assert!(d.warp.0.abs() <= 0.2 && d.warp.1.abs() <= 0.2);
            assert!((0.4..=0.6).contains(&d.lighting.brightness));
            assert!((0.8..=1.25).contains(&d.lighting.contrast));
            if d.mat[0][0] < 0.0 {
                flips += 1;
            }
        }
        // Flip has p = 0.5 (rotation of <= 10 degrees keeps the sign).
        assert!((850..1150).contains(&flips), "{flips}");
    }

    #[test]
    fn same_seed_same_batch_different_seed_different() {
        let b = BatchAugment::from_config(&cfg());
        let (c, h, w) = (3, 16, 16);
        let x = noise(4 * c * h * w, 5);
        let run = |seed| {
            let mut y = x.clone();
            b.apply_batch(&mut y, c, h, w, seed);
            y
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert!(run(1).iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn min_scale_crops_one_box_per_batch() {
        let mut a = cfg();
        a.min_scale = 0.35;
        let b = BatchAugment::from_config(&a);
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let (top, left, ch, cw) = b.rrc_gpu_box(&mut rng, 20, 30).unwrap();
            assert_eq!(ch, cw);
            assert!(top + ch <= 20 && left + cw <= 30);
            assert!((ch * cw) as f64 >= 0.35 * 600.0 - 2.0 * 25.0);
        }
        assert!(
            BatchAugment::from_config(&cfg())
                .rrc_gpu_box(&mut rng, 20, 30)
                .is_none()
        );
    }
}
