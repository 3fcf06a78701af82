//! MaxBlurPool (Zhang 2019, "Making Convolutional Networks Shift-Invariant
//! Again"), as the imagewoof leaderboard's xresnet used it through kornia's
//! `MaxBlurPool2d(kernel_size=3)`: a 2x2 max-pool with stride 1 (dense, so no
//! aliasing yet), then a 3x3 binomial blur [1,2,1]x[1,2,1]/16 with stride 2
//! and zero padding 1, per channel. It has no parameters. fastai itself has
//! no MaxBlurPool; orchard offers it in place of xresnet's stem max-pool.

use crate::kernels::{conv2d, max_pool2d};
use candle_core::{DType, Device, Tensor};

/// The binomial blur [1,2,1] x [1,2,1] / 16 for each of `channels` channels,
/// shaped (channels, 1, 3, 3) for a depthwise convolution.
fn blur_kernel(channels: usize, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    const ROW: [f64; 3] = [1.0, 2.0, 1.0];
    let taps: Vec<f64> = (0..channels)
        .flat_map(|_| {
            ROW.iter()
                .flat_map(|a| ROW.iter().map(move |b| a * b / 16.0))
        })
        .collect();
    Tensor::from_vec(taps, (channels, 1, 3, 3), device)?.to_dtype(dtype)
}

/// NCHW in, NCHW out with (H - 2) / 2 + 1 rows (H/2 for even H, the stem
/// max-pool's size). Differentiable.
pub fn max_blur_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    let channels = x.dim(1)?;
    let dense_max = max_pool2d(x, 2, 1, 0)?;
    let kernel = blur_kernel(channels, x.dtype(), x.device())?;
    conv2d(&dense_max, &kernel, 1, 2, 1, channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{check_gradients, random_tensor};

    /// The same computation written out loop by loop from the definition.
    fn naive(x: &[f64], c: usize, h: usize, w: usize) -> (Vec<f64>, usize, usize) {
        let at = |ch: usize, i: usize, j: usize| x[(ch * h + i) * w + j];
        let (mh, mw) = (h - 1, w - 1);
        let maxed = |ch: usize, i: usize, j: usize| {
            at(ch, i, j)
                .max(at(ch, i + 1, j))
                .max(at(ch, i, j + 1))
                .max(at(ch, i + 1, j + 1))
        };
        let (oh, ow) = ((mh + 2 - 3) / 2 + 1, (mw + 2 - 3) / 2 + 1);
        let blur = [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]];
        let mut out = Vec::new();
        for ch in 0..c {
            for oi in 0..oh {
                for oj in 0..ow {
                    let mut s = 0.0;
                    for (di, row) in blur.iter().enumerate() {
                        for (dj, k) in row.iter().enumerate() {
                            // Zero padding 1 around the max-pooled plane.
                            let (i, j) = ((2 * oi + di) as isize - 1, (2 * oj + dj) as isize - 1);
                            if i >= 0 && j >= 0 && (i as usize) < mh && (j as usize) < mw {
                                s += k / 16.0 * maxed(ch, i as usize, j as usize);
                            }
                        }
                    }
                    out.push(s);
                }
            }
        }
        (out, oh, ow)
    }

    #[test]
    fn matches_the_definition() {
        for (h, w) in [(8, 8), (7, 10), (2, 3)] {
            let x = random_tensor((2, 3, h, w), DType::F64, 21);
            let y = max_blur_pool(&x).unwrap();
            let flat: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
            let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
            let mut want = Vec::new();
            let mut dims = (0, 0);
            for n in 0..2 {
                let (v, oh, ow) = naive(&flat[n * 3 * h * w..(n + 1) * 3 * h * w], 3, h, w);
                want.extend(v);
                dims = (oh, ow);
            }
            assert_eq!(y.dims(), [2, 3, dims.0, dims.1]);
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-12, "{h}x{w}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn halves_even_sizes_like_the_stem_max_pool() {
        let x = random_tensor((1, 2, 16, 12), DType::F32, 3);
        assert_eq!(max_blur_pool(&x).unwrap().dims(), [1, 2, 8, 6]);
        // A constant plane stays constant inside (the blur sums to 1).
        let ones = Tensor::ones((1, 1, 6, 6), DType::F64, &Device::Cpu).unwrap();
        let y: Vec<Vec<f64>> = max_blur_pool(&ones)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(y[1][1], 1.0);
        // The top-left corner loses the padded row and column: 9/16.
        assert_eq!(y[0][0], 9.0 / 16.0);
    }

    #[test]
    fn gradient_matches_finite_differences_in_f64() {
        // Random normals: ties in a max window are almost surely absent.
        let x = random_tensor((2, 2, 7, 6), DType::F64, 22);
        check_gradients(std::slice::from_ref(&x), 23, |t| max_blur_pool(&t[0]));
    }
}
