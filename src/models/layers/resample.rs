//! Bicubic resampling as PyTorch's `F.interpolate(mode="bicubic",
//! align_corners=False)`, written as one (out, in) weight matrix per axis, so
//! resampling a grid is a matrix product (and differentiable for free). ViT
//! uses it to fit its position embeddings to the image's patch grid, as timm's
//! `resample_abs_pos_embed` does.
//!
//! Two variants, both PyTorch's CPU kernels:
//! - `antialias = false` (`upsample_bicubic2d`): Keys' cubic convolution with
//!   A = -0.75, source pixel `(i + 0.5) * in / out - 0.5` (not clamped), the
//!   four taps' indices clamped to the border.
//! - `antialias = true` (`_upsample_bicubic2d_aa`, PIL's resampling): the cubic
//!   with A = -0.5 stretched by the scale when shrinking, taps outside the
//!   input dropped and the weights renormalised to sum 1.

use candle_core::{D, Device, Tensor};

/// PyTorch's `cubic_convolution1`: the cubic on |x| <= 1.
fn cubic1(x: f64, a: f64) -> f64 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

/// PyTorch's `cubic_convolution2`: the cubic on 1 < |x| < 2.
fn cubic2(x: f64, a: f64) -> f64 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// The (out, in) matrix, row-major, of one axis of `F.interpolate(mode="bicubic",
/// align_corners=False, antialias)` from `input` to `output` samples.
pub fn bicubic_weights(input: usize, output: usize, antialias: bool) -> Vec<f64> {
    let mut m = vec![0.0; output * input];
    let scale = input as f64 / output as f64;
    for i in 0..output {
        let row = &mut m[i * input..][..input];
        if antialias {
            let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
            let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
            let center = scale * (i as f64 + 0.5);
            // C++'s static_cast<int64_t> truncates toward zero.
            let lo = ((center - support + 0.5).trunc() as i64).max(0) as usize;
            let hi = ((center + support + 0.5).trunc() as i64).min(input as i64) as usize;
            let filter = |x: f64| {
                let x = x.abs();
                if x < 1.0 {
                    cubic1(x, -0.5)
                } else if x < 2.0 {
                    cubic2(x, -0.5)
                } else {
                    0.0
                }
            };
            let mut total = 0.0;
            for (j, w) in row.iter_mut().enumerate().take(hi).skip(lo) {
                *w = filter((j as f64 - center + 0.5) * invscale);
                total += *w;
            }
            if total != 0.0 {
                row.iter_mut().for_each(|w| *w /= total);
            }
        } else {
            const A: f64 = -0.75;
            let real = scale * (i as f64 + 0.5) - 0.5;
            let base = real.floor();
            let t = real - base;
            let coeffs = [
                cubic2(t + 1.0, A),
                cubic1(t, A),
                cubic1(1.0 - t, A),
                cubic2(2.0 - t, A),
            ];
            for (k, c) in coeffs.into_iter().enumerate() {
                let idx = (base as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
                row[idx] += c;
            }
        }
    }
    m
}

/// Resamples `grid` (H*W, C), the rows of an H x W image of C channels in
/// row-major order, to (h*w, C): `F.interpolate` on the (1, C, H, W) image.
pub fn resample_grid(
    grid: &Tensor,
    from: (usize, usize),
    to: (usize, usize),
    antialias: bool,
) -> candle_core::Result<Tensor> {
    if from == to {
        return Ok(grid.clone());
    }
    let rows = bicubic_weights(from.0, to.0, antialias);
    let cols = bicubic_weights(from.1, to.1, antialias);
    // kron(rows, cols): output pixel (i, j) takes rows[i, a] * cols[j, b] of input (a, b).
    let mut k = Vec::with_capacity(to.0 * to.1 * from.0 * from.1);
    for i in 0..to.0 {
        for j in 0..to.1 {
            for a in 0..from.0 {
                for b in 0..from.1 {
                    k.push((rows[i * from.0 + a] * cols[j * from.1 + b]) as f32);
                }
            }
        }
    }
    let k = Tensor::from_vec(k, (to.0 * to.1, from.0 * from.1), &Device::Cpu)?
        .to_device(grid.device())?
        .to_dtype(grid.dtype())?;
    k.matmul(grid)
}

/// timm's `resample_abs_pos_embed` for one class token: `pos` (1, 1 + H*W, C)
/// to (1, 1 + h*w, C), the class token's row kept as it is.
pub fn resample_pos_embed(
    pos: &Tensor,
    from: (usize, usize),
    to: (usize, usize),
    antialias: bool,
) -> candle_core::Result<Tensor> {
    if from == to {
        return Ok(pos.clone());
    }
    let tokens = pos.dim(1)?;
    let cls = pos.narrow(1, 0, 1)?;
    let grid = pos.narrow(1, 1, tokens - 1)?.squeeze(0)?;
    let grid = resample_grid(&grid, from, to, antialias)?.unsqueeze(0)?;
    Tensor::cat(&[cls, grid], D::Minus2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_equal_sizes_are_the_identity() {
        for aa in [false, true] {
            for (i, o) in [(14, 4), (4, 14), (5, 5), (7, 3), (2, 9)] {
                let m = bicubic_weights(i, o, aa);
                for r in 0..o {
                    let s: f64 = m[r * i..][..i].iter().sum();
                    assert!((s - 1.0).abs() < 1e-12, "{i}->{o} aa={aa}: {s}");
                }
            }
            let m = bicubic_weights(5, 5, aa);
            for r in 0..5 {
                for c in 0..5 {
                    let want = if r == c { 1.0 } else { 0.0 };
                    assert!((m[r * 5 + c] - want).abs() < 1e-12, "aa={aa}");
                }
            }
        }
    }
}
