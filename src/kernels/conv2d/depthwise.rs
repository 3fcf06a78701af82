//! Depthwise convolution (groups = input channels = output channels), computed
//! directly instead of through im2col + GEMM.
//!
//! With one input and one output channel per group, the GEMM path runs one
//! 1 x taps by taps x pixels product per channel and first copies the input
//! taps-fold (9x or 25x) into the unfolded matrix: for EfficientNet's
//! depthwise layers that copy and the per-group GEMM overhead dominate. Here
//! each output plane is a sum of shifted, scaled input rows (one pass per
//! kernel tap, contiguous inner loops), planes in parallel.

use super::{Geometry, valid_outputs};
use crate::kernels::float::Float;
use rayon::prelude::*;

/// Whether `g` is a depthwise convolution this module computes.
pub(super) fn applies(g: &Geometry) -> bool {
    g.groups == g.c && g.o == g.c
}

/// One kernel tap's geometry: its weight index and the output rows and
/// columns whose input pixel lies inside the image.
struct Tap {
    index: usize,
    rows: (usize, usize),
    cols: (usize, usize),
    y_off: isize,
    x_off: isize,
}

fn taps(g: &Geometry) -> Vec<Tap> {
    let mut out = Vec::with_capacity(g.kh * g.kw);
    for ky in 0..g.kh {
        let y_off = (ky * g.dil) as isize - g.pad as isize;
        let rows = valid_outputs(g.oh, g.h, g.stride, y_off);
        for kx in 0..g.kw {
            let x_off = (kx * g.dil) as isize - g.pad as isize;
            let cols = valid_outputs(g.ow, g.w, g.stride, x_off);
            if rows.0 < rows.1 && cols.0 < cols.1 {
                out.push(Tap {
                    index: ky * g.kw + kx,
                    rows,
                    cols,
                    y_off,
                    x_off,
                });
            }
        }
    }
    out
}

impl Tap {
    /// Calls `f(output row offset, input row offset, first input column, count)`
    /// for every output row this tap reaches.
    fn rows(&self, g: &Geometry, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (xlo, xhi) = self.cols;
        let first = ((xlo * g.stride) as isize + self.x_off) as usize;
        for oy in self.rows.0..self.rows.1 {
            let iy = ((oy * g.stride) as isize + self.y_off) as usize;
            f(oy * g.ow + xlo, iy * g.w, first, xhi - xlo);
        }
    }
}

pub(super) fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T]) -> Vec<T> {
    let (p, hw, kk) = (g.plane(), g.h * g.w, g.kh * g.kw);
    let mut y = vec![T::ZERO; g.n * g.o * p];
    if y.is_empty() {
        return y;
    }
    let taps = taps(g);
    y.par_chunks_mut(p).enumerate().for_each(|(plane, out)| {
        let c = plane % g.c;
        let src = &x[plane * hw..][..hw];
        for tap in &taps {
            let wv = w[c * kk + tap.index];
            tap.rows(g, |o, i, first, len| {
                let orow = &mut out[o..o + len];
                let irow = &src[i..i + g.w];
                if g.stride == 1 {
                    for (dst, v) in orow.iter_mut().zip(&irow[first..first + len]) {
                        *dst += wv * *v;
                    }
                } else {
                    for (j, dst) in orow.iter_mut().enumerate() {
                        *dst += wv * irow[first + j * g.stride];
                    }
                }
            });
        }
    });
    y
}

/// The input gradient followed by the weight gradient, in one buffer (the
/// layout `conv2d`'s backward op returns).
pub(super) fn backward<T: Float>(g: &Geometry, x: &[T], w: &[T], gy: &[T]) -> Vec<T> {
    let (p, hw, kk) = (g.plane(), g.h * g.w, g.kh * g.kw);
    let mut both = vec![T::ZERO; x.len() + w.len()];
    if g.n * p == 0 {
        return both;
    }
    let taps = taps(g);
    let (gx, gw) = both.split_at_mut(x.len());
    // Input gradient: every output gradient flows back to the pixel it read.
    gx.par_chunks_mut(hw).enumerate().for_each(|(plane, dst)| {
        let c = plane % g.c;
        let grad = &gy[plane * p..][..p];
        for tap in &taps {
            let wv = w[c * kk + tap.index];
            tap.rows(g, |o, i, first, len| {
                let grow = &grad[o..o + len];
                let drow = &mut dst[i..i + g.w];
                for (j, v) in grow.iter().enumerate() {
                    drow[first + j * g.stride] += wv * *v;
                }
            });
        }
    });
    // Weight gradient: per channel, the sum over images of gradient x input.
    gw.par_chunks_mut(kk).enumerate().for_each(|(c, dst)| {
        for img in 0..g.n {
            let plane = img * g.c + c;
            let (src, grad) = (&x[plane * hw..][..hw], &gy[plane * p..][..p]);
            for tap in &taps {
                let mut sum = T::ZERO;
                tap.rows(g, |o, i, first, len| {
                    let irow = &src[i..i + g.w];
                    for (j, v) in grad[o..o + len].iter().enumerate() {
                        sum += *v * irow[first + j * g.stride];
                    }
                });
                dst[tap.index] += sum;
            }
        }
    });
    both
}

#[cfg(test)]
mod tests {
    use super::super::conv2d;
    use crate::kernels::testing::{check_gradients, max_abs_diff, random_tensor};
    use candle_core::{DType, Var};

    /// (n, c, h, w), kernel, stride, padding, dilation.
    type Case = ((usize, usize, usize, usize), usize, usize, usize, usize);

    /// EfficientNet's shapes (3x3 and 5x5, stride 1 and 2, odd and even sizes)
    /// and a dilated one.
    const CASES: [Case; 6] = [
        ((2, 8, 9, 9), 3, 1, 1, 1),
        ((2, 6, 10, 11), 3, 2, 0, 1),
        ((3, 5, 12, 12), 5, 2, 1, 1),
        ((1, 4, 7, 7), 5, 1, 2, 1),
        ((2, 3, 9, 8), 3, 1, 2, 2),
        ((1, 2, 3, 3), 5, 1, 2, 1),
    ];

    #[test]
    fn matches_candle_forward_and_gradients() {
        for (i, &(xs, k, stride, pad, dil)) in CASES.iter().enumerate() {
            let c = xs.1;
            let x = Var::from_tensor(&random_tensor(xs, DType::F32, 70 + i as u64)).unwrap();
            let w =
                Var::from_tensor(&random_tensor((c, 1, k, k), DType::F32, 80 + i as u64)).unwrap();
            let ours = conv2d(&x, &w, pad, stride, dil, c).unwrap();
            let stock = x.conv2d(&w, pad, stride, dil, c).unwrap();
            assert_eq!(ours.dims(), stock.dims(), "case {i}");
            assert!(max_abs_diff(&ours, &stock) < 1e-4, "case {i} forward");
            let weights = random_tensor(ours.dims(), DType::F32, 90 + i as u64);
            let g_ours = (ours * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let Ok(g_stock) = (stock * &weights).unwrap().sum_all().unwrap().backward() else {
                // candle's own backward fails on some strided sizes; the
                // finite differences below cover those.
                continue;
            };
            for v in [&x, &w] {
                let d = max_abs_diff(g_ours.get(v).unwrap(), g_stock.get(v).unwrap());
                assert!(d < 1e-3, "case {i} gradient {d}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_in_f64() {
        for (i, &(xs, k, stride, pad, dil)) in CASES.iter().enumerate() {
            let c = xs.1;
            let x = random_tensor(xs, DType::F64, 100 + i as u64);
            let w = random_tensor((c, 1, k, k), DType::F64, 110 + i as u64);
            check_gradients(&[x, w], 120 + i as u64, |t| {
                conv2d(&t[0], &t[1], pad, stride, dil, c)
            });
        }
    }
}
