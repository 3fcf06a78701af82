//! 2-D pooling with a backward pass: max and average pooling with any kernel,
//! stride and padding (floor or ceil mode, PyTorch's `count_include_pad`), and
//! adaptive average and max pooling.
//!
//! Every variant reduces to the same op: for each output row and column, a
//! window of input rows/columns, computed once per call. Max pooling takes the
//! window's first maximum (a NaN wins, as in PyTorch) and its backward routes
//! the gradient to that element, recomputing the winner from the input rather
//! than storing indices; average pooling divides by the window's divisor and
//! spreads the gradient back evenly. Both passes run one NCHW plane per rayon
//! task. candle's own pooling has no padding and its backward only works when
//! kernel == stride, so tensors off the CPU take a round trip through it here.

use crate::kernels::float::{Float, dispatch2};
use candle_core::{CustomOp1, CustomOp2, Device, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

/// A pooling window's geometry, per axis (rows, columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// PyTorch's `ceil_mode`: a last, partial window when the stride leaves one.
    pub ceil_mode: bool,
}

impl PoolWindow {
    /// A square kernel `k`, stride `s` and padding `p`, floor mode.
    pub fn square(k: usize, s: usize, p: usize) -> Self {
        PoolWindow {
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            ceil_mode: false,
        }
    }
}

/// PyTorch's `max_pool2d(x, k, s, p)` (floor mode). Differentiable.
pub fn max_pool2d(x: &Tensor, k: usize, s: usize, p: usize) -> candle_core::Result<Tensor> {
    max_pool2d_with(x, &PoolWindow::square(k, s, p))
}

/// Max pooling with any window; padding counts as -inf, so it never wins.
pub fn max_pool2d_with(x: &Tensor, window: &PoolWindow) -> candle_core::Result<Tensor> {
    let (rows, cols) = fixed_axes(x, window, "max_pool2d")?;
    apply(x, Pool::new(Kind::Max, rows, cols))
}

/// Average pooling with any window. With `count_include_pad` the divisor counts
/// padding (but not the part of a ceil-mode window beyond it), as in PyTorch.
pub fn avg_pool2d_with(
    x: &Tensor,
    window: &PoolWindow,
    count_include_pad: bool,
) -> candle_core::Result<Tensor> {
    let (rows, cols) = fixed_axes(x, window, "avg_pool2d")?;
    apply(x, Pool::new(Kind::Avg { count_include_pad }, rows, cols))
}

/// PyTorch's `adaptive_avg_pool2d(x, (oh, ow))`. Differentiable.
pub fn adaptive_avg_pool2d(x: &Tensor, out: (usize, usize)) -> candle_core::Result<Tensor> {
    let (rows, cols) = adaptive_axes(x, out, "adaptive_avg_pool2d")?;
    let kind = Kind::Avg {
        count_include_pad: true,
    };
    apply(x, Pool::new(kind, rows, cols))
}

/// PyTorch's `adaptive_max_pool2d(x, (oh, ow))`. Differentiable.
pub fn adaptive_max_pool2d(x: &Tensor, out: (usize, usize)) -> candle_core::Result<Tensor> {
    let (rows, cols) = adaptive_axes(x, out, "adaptive_max_pool2d")?;
    apply(x, Pool::new(Kind::Max, rows, cols))
}

fn apply(x: &Tensor, pool: Pool) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(pool);
    }
    // No kernel for this device yet: round-trip (to_device is differentiable).
    x.to_device(&Device::Cpu)?
        .contiguous()?
        .apply_op1(pool)?
        .to_device(x.device())
}

fn spatial(x: &Tensor, op: &str) -> candle_core::Result<(usize, usize)> {
    match x.dims() {
        &[_, _, h, w] => Ok((h, w)),
        dims => bail!("{op}: expected an NCHW tensor, got {dims:?}"),
    }
}

fn fixed_axes(x: &Tensor, win: &PoolWindow, op: &str) -> candle_core::Result<(Axis, Axis)> {
    let (h, w) = spatial(x, op)?;
    let axis = |n, k, s, p| fixed_axis(n, k, s, p, win.ceil_mode, op);
    Ok((
        axis(h, win.kernel.0, win.stride.0, win.padding.0)?,
        axis(w, win.kernel.1, win.stride.1, win.padding.1)?,
    ))
}

fn adaptive_axes(x: &Tensor, out: (usize, usize), op: &str) -> candle_core::Result<(Axis, Axis)> {
    let (h, w) = spatial(x, op)?;
    Ok((adaptive_axis(h, out.0, op)?, adaptive_axis(w, out.1, op)?))
}

/// One output position's window along an axis: the real input range
/// [start, end) and the length the average divides by when padding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Win {
    start: usize,
    end: usize,
    padded_len: usize,
}

/// The windows of every output position along one axis, for input length `len`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Axis {
    len: usize,
    windows: Vec<Win>,
}

fn fixed_axis(
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    ceil_mode: bool,
    op: &str,
) -> candle_core::Result<Axis> {
    if k == 0 || s == 0 {
        bail!("{op}: kernel ({k}) and stride ({s}) must be at least 1");
    }
    // PyTorch's rule: a window must always hold at least one real element.
    if p > k / 2 {
        bail!("{op}: padding ({p}) must be at most half the kernel ({k})");
    }
    if n + 2 * p < k {
        bail!("{op}: input side {n} with padding {p} is smaller than the kernel {k}");
    }
    let span = n + 2 * p - k;
    let mut out = if ceil_mode {
        span.div_ceil(s)
    } else {
        span / s
    } + 1;
    // In ceil mode the last window must start inside the input or the left
    // padding, never in the right padding (PyTorch's pooling_output_shape).
    if ceil_mode && (out - 1) * s >= n + p {
        out -= 1;
    }
    let windows = (0..out)
        .map(|o| {
            let start = (o * s) as isize - p as isize;
            // The divisor window stops at the right padding's edge, as in PyTorch.
            let padded_end = (start + k as isize).min((n + p) as isize);
            Win {
                start: start.max(0) as usize,
                end: padded_end.min(n as isize) as usize,
                padded_len: (padded_end - start) as usize,
            }
        })
        .collect();
    Ok(Axis { len: n, windows })
}

/// PyTorch's adaptive windows: [floor(o*n/out), ceil((o+1)*n/out)).
fn adaptive_axis(n: usize, out: usize, op: &str) -> candle_core::Result<Axis> {
    if n == 0 || out == 0 {
        bail!("{op}: input side ({n}) and output side ({out}) must be at least 1");
    }
    let windows = (0..out)
        .map(|o| {
            let (start, end) = (o * n / out, ((o + 1) * n).div_ceil(out));
            Win {
                start,
                end,
                padded_len: end - start,
            }
        })
        .collect();
    Ok(Axis { len: n, windows })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Max,
    Avg { count_include_pad: bool },
}

/// The pooling op for one input size; also the forward op.
#[derive(Debug, Clone)]
struct Pool {
    kind: Kind,
    rows: Axis,
    cols: Axis,
}

impl Pool {
    fn new(kind: Kind, rows: Axis, cols: Axis) -> Self {
        Pool { kind, rows, cols }
    }

    fn out_dims(&self) -> (usize, usize) {
        (self.rows.windows.len(), self.cols.windows.len())
    }

    /// (image-channel planes, out shape), checking the input is the size the
    /// windows were computed for.
    fn check(&self, layout: &Layout, op: &str) -> candle_core::Result<(usize, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        if (h, w) != (self.rows.len, self.cols.len) {
            bail!("{op}: input {h}x{w} is not the size the pooling windows were built for");
        }
        let (oh, ow) = self.out_dims();
        Ok((n * c, Shape::from((n, c, oh, ow))))
    }

    fn divisor(&self, ys: Win, xs: Win) -> usize {
        match self.kind {
            Kind::Avg {
                count_include_pad: true,
            } => ys.padded_len * xs.padded_len,
            _ => (ys.end - ys.start) * (xs.end - xs.start),
        }
    }

    fn forward<T: Float>(&self, x: &[T], planes: usize) -> Vec<T> {
        let (h, w) = (self.rows.len, self.cols.len);
        let (oh, ow) = self.out_dims();
        let mut out = vec![T::ZERO; planes * oh * ow];
        if out.is_empty() || h * w == 0 {
            return out;
        }
        out.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(out_plane, in_plane)| {
                for (out_row, &ys) in out_plane.chunks_exact_mut(ow).zip(&self.rows.windows) {
                    for (o, &xs) in out_row.iter_mut().zip(&self.cols.windows) {
                        *o = match self.kind {
                            Kind::Max => in_plane[argmax(in_plane, w, ys, xs)],
                            Kind::Avg { .. } => {
                                let mut sum = T::ZERO;
                                for y in ys.start..ys.end {
                                    for &v in &in_plane[y * w + xs.start..y * w + xs.end] {
                                        sum += v;
                                    }
                                }
                                sum / T::from_f64(self.divisor(ys, xs) as f64)
                            }
                        };
                    }
                }
            });
        out
    }

    fn backward<T: Float>(&self, x: &[T], grad_out: &[T], planes: usize) -> Vec<T> {
        let (h, w) = (self.rows.len, self.cols.len);
        let (oh, ow) = self.out_dims();
        let mut grad_in = vec![T::ZERO; planes * h * w];
        if oh * ow == 0 || h * w == 0 {
            return grad_in;
        }
        grad_in
            .par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(grad_out.par_chunks(oh * ow))
            .for_each(|((g_plane, in_plane), go_plane)| {
                for (go_row, &ys) in go_plane.chunks_exact(ow).zip(&self.rows.windows) {
                    for (&g, &xs) in go_row.iter().zip(&self.cols.windows) {
                        match self.kind {
                            Kind::Max => g_plane[argmax(in_plane, w, ys, xs)] += g,
                            Kind::Avg { .. } => {
                                let share = g / T::from_f64(self.divisor(ys, xs) as f64);
                                for y in ys.start..ys.end {
                                    for v in &mut g_plane[y * w + xs.start..y * w + xs.end] {
                                        *v += share;
                                    }
                                }
                            }
                        }
                    }
                }
            });
        grad_in
    }
}

/// Index (within the plane of width `w`) of the first maximum of the window
/// spanning rows `ys` and columns `xs` (never empty); a NaN wins at once.
fn argmax<T: Float>(plane: &[T], w: usize, ys: Win, xs: Win) -> usize {
    let mut best = ys.start * w + xs.start;
    let mut best_val = plane[best];
    if best_val.is_nan() {
        return best;
    }
    for y in ys.start..ys.end {
        let start = y * w + xs.start;
        for (i, &v) in plane[start..y * w + xs.end].iter().enumerate() {
            if v.is_nan() {
                return start + i;
            }
            // Strict `>` keeps the first maximum, as PyTorch does.
            if v > best_val {
                best = start + i;
                best_val = v;
            }
        }
    }
    best
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "orchard-pool2d"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let (planes, shape) = self.check(layout, "pool2d")?;
        // The storage is passed twice only to reuse the dtype dispatch.
        let out = dispatch2!(
            "pool2d",
            (storage, layout),
            (storage, layout),
            |x, _same| self.forward(x, planes)
        );
        Ok((out, shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let backward = PoolBackward(self.clone());
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &backward)?;
        Ok(Some(grad))
    }
}

/// (input, grad of output) -> grad of input. First-order only.
struct PoolBackward(Pool);

impl CustomOp2 for PoolBackward {
    fn name(&self) -> &'static str {
        "orchard-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &Layout,
        gs: &candle_core::CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let (planes, out_shape) = self.0.check(xl, "pool2d backward")?;
        if gl.shape() != &out_shape {
            bail!(
                "pool2d backward: gradient shape {:?} does not match the output {out_shape:?}",
                gl.shape()
            );
        }
        let grad = dispatch2!("pool2d backward", (xs, xl), (gs, gl), |x, g| {
            self.0.backward(x, g, planes)
        });
        Ok((grad, xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests;
