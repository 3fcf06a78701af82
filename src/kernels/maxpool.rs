//! 2-D max pooling with kernel k, stride s and padding p (PyTorch's `MaxPool2d`
//! in floor mode: padding counts as -inf, so it never wins).
//!
//! candle's own `max_pool2d` has no padding and its backward only works when
//! kernel == stride, but ResNet's stem pools 3x3 with stride 2 and padding 1.
//! The backward routes each output gradient to the input element that won the
//! forward max (the first in scan order on ties, as PyTorch does); it recomputes
//! the winners from the input instead of storing indices, which keeps the op a
//! plain `CustomOp1`. Both passes run one NCHW plane per rayon task.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

/// Max-pool an NCHW tensor (f32 or f64) with a square kernel `k`, stride `s`
/// and zero-width `p` of -inf padding on every side. Differentiable.
pub fn max_pool2d(x: &Tensor, k: usize, s: usize, p: usize) -> candle_core::Result<Tensor> {
    let geometry = Pool::new(k, s, p)?;
    x.contiguous()?.apply_op1(geometry)
}

/// The pooling window; also the forward op.
#[derive(Debug, Clone, Copy)]
struct Pool {
    k: usize,
    s: usize,
    p: usize,
}

impl Pool {
    fn new(k: usize, s: usize, p: usize) -> candle_core::Result<Self> {
        if k == 0 || s == 0 {
            bail!("max_pool2d: kernel ({k}) and stride ({s}) must be at least 1");
        }
        // PyTorch's rule: a window must always hold at least one real element.
        if p > k / 2 {
            bail!("max_pool2d: padding ({p}) must be at most half the kernel ({k})");
        }
        Ok(Pool { k, s, p })
    }

    /// Output side for an input side `n` (floor mode).
    fn out_len(&self, n: usize) -> candle_core::Result<usize> {
        let padded = n + 2 * self.p;
        if padded < self.k {
            bail!(
                "max_pool2d: input side {n} with padding {} is smaller than the kernel {}",
                self.p,
                self.k
            );
        }
        Ok((padded - self.k) / self.s + 1)
    }

    /// The valid input range [start, end) covered by output position `o`.
    fn window(&self, o: usize, n: usize) -> (usize, usize) {
        let start = (o * self.s) as isize - self.p as isize;
        let end = (start + self.k as isize).min(n as isize);
        (start.max(0) as usize, end as usize)
    }

    /// The input windows of every output row and column: computed once per
    /// call, not per output element.
    fn windows(&self, dims: Dims) -> (Vec<Span>, Vec<Span>) {
        let rows = (0..dims.oh).map(|o| self.window(o, dims.h)).collect();
        let cols = (0..dims.ow).map(|o| self.window(o, dims.w)).collect();
        (rows, cols)
    }

    fn forward<T: Elem>(&self, x: &[T], dims: Dims) -> Vec<T> {
        let Dims { h, w, oh, ow, .. } = dims;
        let mut out = vec![T::ZERO; dims.planes * oh * ow];
        if oh * ow == 0 {
            return out;
        }
        let (rows, cols) = self.windows(dims);
        out.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(out_plane, in_plane)| {
                for (out_row, &ys) in out_plane.chunks_exact_mut(ow).zip(&rows) {
                    for (o, &xs) in out_row.iter_mut().zip(&cols) {
                        *o = in_plane[argmax(in_plane, w, ys, xs)];
                    }
                }
            });
        out
    }

    fn backward<T: Elem>(&self, x: &[T], grad_out: &[T], dims: Dims) -> Vec<T> {
        let Dims { h, w, oh, ow, .. } = dims;
        let mut grad_in = vec![T::ZERO; dims.planes * h * w];
        if oh * ow == 0 || h * w == 0 {
            return grad_in;
        }
        let (rows, cols) = self.windows(dims);
        grad_in
            .par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(grad_out.par_chunks(oh * ow))
            .for_each(|((g_plane, in_plane), go_plane)| {
                for (go_row, &ys) in go_plane.chunks_exact(ow).zip(&rows) {
                    for (&g, &xs) in go_row.iter().zip(&cols) {
                        let i = argmax(in_plane, w, ys, xs);
                        g_plane[i] = g_plane[i] + g;
                    }
                }
            });
        grad_in
    }

    fn dims(&self, layout: &Layout) -> candle_core::Result<Dims> {
        let (n, c, h, w) = layout.shape().dims4()?;
        Ok(Dims {
            planes: n * c,
            n,
            c,
            h,
            w,
            oh: self.out_len(h)?,
            ow: self.out_len(w)?,
        })
    }
}

/// Index (within the plane of width `w`) of the winning input element of the
/// window spanning rows `ys` and columns `xs` (half-open, never empty).
fn argmax<T: Elem>(plane: &[T], w: usize, ys: Span, xs: Span) -> usize {
    let mut best = ys.0 * w + xs.0;
    let mut best_val = plane[best];
    for y in ys.0..ys.1 {
        let start = y * w + xs.0;
        for (i, &v) in plane[start..y * w + xs.1].iter().enumerate() {
            // Strict `>` keeps the first maximum. A NaN wins and stays, as in PyTorch.
            if v > best_val || v.is_nan() {
                if v.is_nan() {
                    return start + i;
                }
                best = start + i;
                best_val = v;
            }
        }
    }
    best
}

/// A half-open index range [start, end) of input rows or columns.
type Span = (usize, usize);

#[derive(Debug, Clone, Copy)]
struct Dims {
    planes: usize,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

/// The float types the op runs on: f32 for training, f64 for gradient checks.
trait Elem: Copy + PartialOrd + Send + Sync + std::ops::Add<Output = Self> {
    const ZERO: Self;
    fn is_nan(self) -> bool;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// The contiguous slice a layout views, or an error for strided views
/// (`max_pool2d` makes its input contiguous, so this only guards misuse).
fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("max_pool2d: expected a contiguous tensor"),
    }
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "orchard-max-pool2d"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims(layout)?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.forward(contiguous(v, layout)?, d)),
            CpuStorage::F64(v) => CpuStorage::F64(self.forward(contiguous(v, layout)?, d)),
            other => bail!("max_pool2d: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from((d.n, d.c, d.oh, d.ow))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &PoolBackward(*self))?;
        Ok(Some(grad))
    }
}

/// (input, grad of output) -> grad of input. First-order only: its result
/// carries no graph, which is all training needs.
struct PoolBackward(Pool);

impl CustomOp2 for PoolBackward {
    fn name(&self) -> &'static str {
        "orchard-max-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        grad_out: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let pool = self.0;
        let d = pool.dims(x_layout)?;
        if g_layout.shape().dims() != [d.n, d.c, d.oh, d.ow] {
            bail!(
                "max_pool2d backward: gradient shape {:?} does not match the output {:?}",
                g_layout.shape(),
                (d.n, d.c, d.oh, d.ow)
            );
        }
        let grad_in = match (x, grad_out) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(pool.backward(
                contiguous(x, x_layout)?,
                contiguous(g, g_layout)?,
                d,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(pool.backward(
                contiguous(x, x_layout)?,
                contiguous(g, g_layout)?,
                d,
            )),
            (x, g) => bail!(
                "max_pool2d backward: unsupported dtypes {:?} / {:?}",
                x.dtype(),
                g.dtype()
            ),
        };
        Ok((grad_in, x_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{DType, Device, Var};

    /// A direct transcription of PyTorch's definition, for comparison.
    fn naive(
        x: &[f64],
        (n, c, h, w): (usize, usize, usize, usize),
        k: usize,
        s: usize,
        p: usize,
    ) -> Vec<f64> {
        let oh = (h + 2 * p - k) / s + 1;
        let ow = (w + 2 * p - k) / s + 1;
        let mut out = Vec::new();
        for plane in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    for ky in 0..k {
                        for kx in 0..k {
                            let y = (oy * s + ky) as isize - p as isize;
                            let x_ = (ox * s + kx) as isize - p as isize;
                            if y >= 0 && x_ >= 0 && (y as usize) < h && (x_ as usize) < w {
                                best = best.max(x[plane * h * w + y as usize * w + x_ as usize]);
                            }
                        }
                    }
                    out.push(best);
                }
            }
        }
        out
    }

    /// Distinct values in a shuffled order, so every window has one clear winner.
    fn distinct_values(len: usize, seed: u64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..len)
            .map(|i| i as f64 * 0.1 - len as f64 * 0.05)
            .collect();
        Rng::new(seed).shuffle(&mut v);
        v
    }

    #[test]
    fn forward_matches_naive_on_odd_shapes() {
        let cases = [
            // (n, c, h, w), k, s, p
            ((1, 1, 1, 1), 1, 1, 0),
            ((1, 1, 1, 1), 3, 2, 1),
            ((1, 2, 7, 7), 3, 2, 1),
            ((2, 3, 7, 5), 3, 2, 1),
            ((1, 1, 6, 6), 2, 2, 0),
            ((2, 1, 9, 8), 3, 1, 1),
            ((1, 3, 5, 7), 5, 3, 2),
        ];
        for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
            let len = shape.0 * shape.1 * shape.2 * shape.3;
            let data = distinct_values(len, i as u64);
            let want = naive(&data, shape, k, s, p);
            for dtype in [DType::F64, DType::F32] {
                let x = Tensor::from_vec(data.clone(), shape, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let got = max_pool2d(&x, k, s, p).unwrap();
                let got: Vec<f64> = got
                    .to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-6,
                        "case {i} {dtype:?}: {got:?} vs {want:?}"
                    );
                }
                assert_eq!(got.len(), want.len(), "case {i}");
            }
        }
    }

    #[test]
    fn ties_go_to_the_first_maximum() {
        let x = Tensor::from_vec(vec![1f64, 1.0, 1.0, 1.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let x = Var::from_tensor(&x).unwrap();
        let y = max_pool2d(x.as_tensor(), 2, 2, 0).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f64> = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g, vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn nan_wins_as_in_pytorch() {
        let x =
            Tensor::from_vec(vec![1f32, f32::NAN, 3.0, 2.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let y: Vec<f32> = max_pool2d(&x, 2, 2, 0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(y[0].is_nan());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let cases = [
            ((1, 1, 1, 1), 3, 2, 1),
            ((1, 2, 7, 7), 3, 2, 1),
            ((2, 1, 6, 5), 3, 1, 1),
            ((1, 1, 6, 6), 2, 2, 0),
        ];
        for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
            let len = shape.0 * shape.1 * shape.2 * shape.3;
            let data = distinct_values(len, 100 + i as u64);
            let x = Var::from_tensor(&Tensor::from_vec(data.clone(), shape, &Device::Cpu).unwrap())
                .unwrap();
            let out = max_pool2d(x.as_tensor(), k, s, p).unwrap();
            let mut rng = Rng::new(7 + i as u64);
            let weights: Vec<f64> = (0..out.elem_count()).map(|_| rng.normal()).collect();
            let w = Tensor::from_vec(weights, out.shape(), &Device::Cpu).unwrap();
            let objective = |t: &Tensor| -> f64 {
                (max_pool2d(t, k, s, p).unwrap() * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            let grads = objective_backward(&x, &w, k, s, p);
            // Values are 0.1 apart, so a step of 1e-3 never changes a window's winner.
            let h = 1e-3;
            for j in 0..len {
                let mut plus = data.clone();
                plus[j] += h;
                let mut minus = data.clone();
                minus[j] -= h;
                let fp = objective(&Tensor::from_vec(plus, shape, &Device::Cpu).unwrap());
                let fm = objective(&Tensor::from_vec(minus, shape, &Device::Cpu).unwrap());
                let numeric = (fp - fm) / (2.0 * h);
                assert!(
                    (numeric - grads[j]).abs() < 1e-6,
                    "case {i} element {j}: numeric {numeric} vs analytic {}",
                    grads[j]
                );
            }
        }
    }

    fn objective_backward(x: &Var, w: &Tensor, k: usize, s: usize, p: usize) -> Vec<f64> {
        let out = max_pool2d(x.as_tensor(), k, s, p).unwrap();
        let grads = (out * w).unwrap().sum_all().unwrap().backward().unwrap();
        grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn bad_geometry_is_an_error_not_a_panic() {
        let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&x, 3, 2, 2).is_err(), "padding above k/2");
        assert!(max_pool2d(&x, 0, 1, 0).is_err(), "zero kernel");
        assert!(max_pool2d(&x, 5, 1, 0).is_err(), "kernel larger than input");
        let x3 = Tensor::zeros((1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&x3, 2, 2, 0).is_err(), "not NCHW");
        let xi = Tensor::zeros((1, 1, 2, 2), DType::U8, &Device::Cpu).unwrap();
        assert!(max_pool2d(&xi, 2, 2, 0).is_err(), "integer dtype");
    }

    #[test]
    fn strided_input_is_handled() {
        let data = distinct_values(2 * 5 * 6, 3);
        let x = Tensor::from_vec(data, (1, 2, 5, 6), &Device::Cpu).unwrap();
        let xt = x.transpose(2, 3).unwrap();
        let got: Vec<f64> = max_pool2d(&xt, 3, 2, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = naive(
            &xt.contiguous()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap(),
            (1, 2, 6, 5),
            3,
            2,
            1,
        );
        assert_eq!(got, want);
    }
}
