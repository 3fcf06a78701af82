//! The batch transforms of one image in a single pass, straight from the item
//! transforms' HWC u8 output into its slot of the f32 NCHW batch: the affine /
//! perspective resample (bilinear, reflection padding), the logit-space
//! lighting and Normalize, one output row at a time through a small row
//! buffer. The unfused path (`batch::BatchAugment::apply_batch` then
//! `Normalization::apply` on a full f32 copy) is the reference it is tested
//! against; that path is still used when RandomResizedCropGPU (min_scale < 1)
//! adds a second resample between the two.

use super::affine::{self, IDENTITY};
use super::batch::ImageDraw;
use super::fastmath;
use super::normalize::Normalization;
use image::RgbImage;

/// `_prepare_mat`'s two rows, and the warp's coefficients.
type Geometry = ([[f64; 3]; 2], Option<[f64; 8]>);

/// What one image's draw does, precomputed once per image.
struct Plan {
    /// None: identity.
    geometry: Option<Geometry>,
    /// (k, c) of `fastmath::lighting_in_place`; None: neutral.
    lighting: Option<(f32, f32)>,
}

impl Plan {
    fn new(d: Option<&ImageDraw>, h: usize, w: usize) -> Self {
        let Some(d) = d else {
            return Plan {
                geometry: None,
                lighting: None,
            };
        };
        let warp = if d.warp != (0.0, 0.0) {
            affine::warp_coeffs(d.warp.0, d.warp.1)
        } else {
            None
        };
        let geometry = (d.mat != IDENTITY || warp.is_some())
            .then(|| (affine::prepare_mat(&d.mat, h, w), warp));
        let lighting = (!d.lighting.is_neutral()).then(|| {
            let b = d.lighting.brightness;
            let c = d.lighting.contrast;
            let k = (-c * (b / (1.0 - b)).ln()).exp();
            (k as f32, c as f32)
        });
        Plan { geometry, lighting }
    }
}

/// Write `img` (h x w HWC u8), augmented by `draw` (None: no batch
/// augmentation) and normalised, as CHW f32 into `out` (3 * h * w values).
pub fn augment_normalize(
    img: &RgbImage,
    draw: Option<&ImageDraw>,
    norm: &Normalization,
    out: &mut [f32],
) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    assert_eq!(out.len(), 3 * w * h, "batch slot of the wrong size");
    let plan = Plan::new(draw, h, w);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { kernel_avx2(img.as_raw(), h, w, &plan, norm, out) };
        return;
    }
    kernel(img.as_raw(), h, w, &plan, norm, out);
}

/// The same code compiled for AVX2 (8 f32 lanes instead of SSE2's 4): no FMA,
/// so the results are bit-identical to the portable build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn kernel_avx2(src: &[u8], h: usize, w: usize, plan: &Plan, norm: &Normalization, out: &mut [f32]) {
    kernel(src, h, w, plan, norm, out)
}

#[inline(always)]
fn kernel(src: &[u8], h: usize, w: usize, plan: &Plan, norm: &Normalization, out: &mut [f32]) {
    let plane = w * h;
    if plane == 0 {
        return;
    }
    let inv_std = norm.std.map(|s| 1.0 / s);
    // Planar row buffer: R, G, B of one output row, in [0, 1]; and the
    // source coordinates of the row's pixels.
    let mut row = vec![0f32; 3 * w];
    let (mut xs, mut ys) = (vec![0f64; w], vec![0f64; w]);
    const INV255: f32 = 1.0 / 255.0;
    // affine_grid's linspace(-1, 1, n) (align_corners=True).
    let step = |n: usize| if n <= 1 { 0.0 } else { 2.0 / (n - 1) as f64 };
    let (step_x, step_y) = (step(w), step(h));
    let (wf, hf) = ((w - 1) as f64, (h - 1) as f64);
    for i in 0..h {
        match &plan.geometry {
            None => {
                let line = &src[i * w * 3..(i + 1) * w * 3];
                for (j, px) in line.chunks_exact(3).enumerate() {
                    row[j] = px[0] as f32 * INV255;
                    row[w + j] = px[1] as f32 * INV255;
                    row[2 * w + j] = px[2] as f32 * INV255;
                }
            }
            Some((m, warp)) => {
                let gy = -1.0 + i as f64 * step_y;
                // Coordinates first (a loop the compiler vectorises), then the
                // gathers.
                for (j, (x, y)) in xs.iter_mut().zip(ys.iter_mut()).enumerate() {
                    let gx = -1.0 + j as f64 * step_x;
                    *x = m[0][0] * gx + m[0][1] * gy + m[0][2];
                    *y = m[1][0] * gx + m[1][1] * gy + m[1][2];
                }
                if let Some(cf) = warp {
                    for (x, y) in xs.iter_mut().zip(ys.iter_mut()) {
                        (*x, *y) = affine::perspective(cf, *x, *y);
                    }
                }
                for (x, y) in xs.iter_mut().zip(ys.iter_mut()) {
                    *x = (*x + 1.0) / 2.0 * wf;
                    *y = (*y + 1.0) / 2.0 * hf;
                }
                let (r, gb) = row.split_at_mut(w);
                let (g, b) = gb.split_at_mut(w);
                for j in 0..w {
                    let ix = inside(xs[j], w);
                    let iy = inside(ys[j], h);
                    let x0 = ix as usize;
                    let y0 = iy as usize;
                    let wx = (ix - x0 as f64) as f32;
                    let wy = (iy - y0 as f64) as f32;
                    let x1 = (x0 + 1).min(w - 1);
                    let y1 = (y0 + 1).min(h - 1);
                    let p00 = &src[(y0 * w + x0) * 3..][..3];
                    let p01 = &src[(y0 * w + x1) * 3..][..3];
                    let p10 = &src[(y1 * w + x0) * 3..][..3];
                    let p11 = &src[(y1 * w + x1) * 3..][..3];
                    let lerp = |c: usize| {
                        let top = p00[c] as f32 * (1.0 - wx) + p01[c] as f32 * wx;
                        let bot = p10[c] as f32 * (1.0 - wx) + p11[c] as f32 * wx;
                        (top * (1.0 - wy) + bot * wy) * INV255
                    };
                    r[j] = lerp(0);
                    g[j] = lerp(1);
                    b[j] = lerp(2);
                }
            }
        }
        if let Some((k, c)) = plan.lighting {
            fastmath::lighting_in_place(&mut row, k, c);
        }
        for c in 0..3 {
            let (mean, inv) = (norm.mean[c], inv_std[c]);
            let dst = &mut out[c * plane + i * w..c * plane + (i + 1) * w];
            for (d, &v) in dst.iter_mut().zip(&row[c * w..(c + 1) * w]) {
                *d = (v - mean) * inv;
            }
        }
    }
}

/// A pixel coordinate reflected into [0, n - 1] (align_corners=True); most
/// coordinates are already inside, so the general reflection is the slow path.
#[inline(always)]
fn inside(x: f64, n: usize) -> f64 {
    if x >= 0.0 && x <= (n - 1) as f64 {
        x
    } else {
        affine::reflect(x, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::batch::BatchAugment;
    use crate::augment::lighting::Lighting;
    use crate::config::AugmentationConfig;
    use crate::rng::Rng;

    fn noise_image(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut r = Rng::new(seed);
        RgbImage::from_fn(w, h, |_, _| {
            image::Rgb([r.below(256) as u8, r.below(256) as u8, r.below(256) as u8])
        })
    }

    /// The reference: u8 -> [0, 1] CHW, then the unfused affine, lighting
    /// (libm's ln/exp) and normalisation.
    fn unfused(img: &RgbImage, d: &ImageDraw, norm: &Normalization) -> Vec<f32> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut x = vec![0f32; 3 * w * h];
        crate::augment::pipeline::to_chw(img, &mut x);
        let mut scratch = vec![0f32; x.len()];
        BatchAugment::apply_affine(d, &mut x, &mut scratch, 3, h, w);
        if !d.lighting.is_neutral() {
            d.lighting.apply(&mut x);
        }
        norm.apply(&mut x);
        x
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn fused_equals_the_unfused_reference() {
        let aug = BatchAugment::from_config(&AugmentationConfig {
            batch_augment: true,
            flip_vert: true,
            ..Default::default()
        });
        // Stats with std 1 so the tolerance is on [0, 1] values.
        let norm = Normalization {
            source: "test".into(),
            mean: [0.5, 0.4, 0.3],
            std: [1.0, 1.0, 1.0],
        };
        let mut rng = Rng::new(11);
        for (k, (w, h)) in [(24, 24), (31, 17), (1, 5), (16, 40)]
            .into_iter()
            .enumerate()
        {
            let img = noise_image(w, h, k as u64);
            for _ in 0..25 {
                let d = aug.draw(&mut rng);
                let want = unfused(&img, &d, &norm);
                let mut got = vec![0f32; want.len()];
                augment_normalize(&img, Some(&d), &norm, &mut got);
                let err = max_diff(&got, &want);
                assert!(err < 1e-5, "{w}x{h} {d:?}: max error {err}");
            }
        }
    }

    #[test]
    fn strong_lighting_and_imagenet_stats_match_the_reference() {
        let img = noise_image(20, 20, 3);
        let mut d = ImageDraw::identity();
        d.lighting = Lighting {
            brightness: 0.2,
            contrast: 3.0,
        };
        d.warp = (0.15, -0.1);
        let norm = Normalization::imagenet();
        let want = unfused(&img, &d, &norm);
        let mut got = vec![0f32; want.len()];
        augment_normalize(&img, Some(&d), &norm, &mut got);
        // Normalised values are divided by std ~0.225: 1e-5 on [0, 1] is ~4.5e-5 here.
        assert!(max_diff(&got, &want) < 5e-5, "{}", max_diff(&got, &want));
    }

    #[test]
    fn no_draw_is_plain_normalisation() {
        let img = noise_image(7, 5, 9);
        let norm = Normalization::imagenet();
        let mut want = vec![0f32; 3 * 35];
        crate::augment::pipeline::to_chw(&img, &mut want);
        norm.apply(&mut want);
        let mut got = vec![0f32; want.len()];
        augment_normalize(&img, None, &norm, &mut got);
        assert!(max_diff(&got, &want) < 1e-6);
        augment_normalize(&img, Some(&ImageDraw::identity()), &norm, &mut got);
        assert!(max_diff(&got, &want) < 1e-6);
    }
}
