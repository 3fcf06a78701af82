//! Batch normalisation over the channels of an (N, C, ...) tensor, fused: one
//! op normalises and applies the per-channel affine in a single pass, and its
//! backward computes the input, weight and bias gradients in two passes.
//!
//! Training mode normalises with the batch's mean and biased variance (as
//! PyTorch does) and the backward includes the gradient through those
//! statistics; eval mode uses given (running) statistics, which are constants.
//! Running-statistics updates live with the layer (`layers::BatchNorm2d`).
//! Statistics and gradient sums are accumulated in f64, one channel per rayon
//! task; the elementwise passes run one (image, channel) plane per task.

use crate::kernels::float::{Float, dispatch2, dispatch3};
use crate::kernels::relu::relu_mask;
use candle_core::{CustomOp1, CustomOp3, D, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

/// Training-mode batch norm, followed by a ReLU when `relu` (fused: no extra
/// pass). Returns the output and the batch statistics as a (2, C) tensor
/// [mean; biased variance] (not differentiable; for the running averages).
/// Differentiable in `x`, `weight` and `bias`.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> candle_core::Result<(Tensor, Tensor)> {
    let dims = Dims::of(x.dims(), weight.dims(), bias.dims())?;
    if dims.n * dims.hw < 2 {
        bail!(
            "batch_norm: expected more than 1 value per channel when training, got input {:?}",
            x.dims()
        );
    }
    if !x.device().is_cpu() {
        let (y, stats) = stock_train(x, weight, bias, eps)?;
        return Ok((if relu { y.relu()? } else { y }, stats));
    }
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&ChannelStats)?;
    let affine = Tensor::stack(&[weight, bias], 0)?;
    let norm = Normalize {
        eps,
        batch_stats: true,
        relu,
    };
    let y = x.apply_op3(&affine, &stats, norm)?;
    Ok((y, stats))
}

/// Eval-mode batch norm with fixed statistics, followed by a ReLU when `relu`.
/// Differentiable in `x`, `weight` and `bias` (the statistics are constants).
pub fn batch_norm_eval(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
    relu: bool,
) -> candle_core::Result<Tensor> {
    Dims::of(x.dims(), weight.dims(), bias.dims())?;
    Dims::of(x.dims(), mean.dims(), var.dims())?;
    let stats = Tensor::stack(&[mean, var], 0)?.detach();
    if !x.device().is_cpu() {
        let y = stock_normalize(x, weight, bias, &stats, eps)?;
        return if relu { y.relu() } else { Ok(y) };
    }
    let affine = Tensor::stack(&[weight, bias], 0)?;
    let norm = Normalize {
        eps,
        batch_stats: false,
        relu,
    };
    x.contiguous()?.apply_op3(&affine, &stats, norm)
}

/// Batch statistics with candle's own ops (devices without our kernels).
fn stock_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
    // (N, C, rest) -> (C, N*rest), so each channel's values lie in one row.
    let rows = x.flatten_from(2)?.transpose(0, 1)?.flatten_from(1)?;
    let mean = rows.mean(D::Minus1)?;
    let var = rows
        .broadcast_sub(&mean.unsqueeze(1)?)?
        .sqr()?
        .mean(D::Minus1)?;
    let y = stock_normalize(x, weight, bias, &Tensor::stack(&[&mean, &var], 0)?, eps)?;
    let stats = Tensor::stack(&[mean, var], 0)?.detach().reshape((2, c))?;
    Ok((y, stats))
}

fn stock_normalize(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stats: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    // Broadcast (C) vectors over (N, C, rest...).
    let mut shape = vec![1; x.rank()];
    shape[1] = x.dim(1)?;
    let per_channel = |t: &Tensor| t.reshape(shape.as_slice());
    let mean = per_channel(&stats.get(0)?)?;
    let var = per_channel(&stats.get(1)?)?;
    let xhat = x
        .broadcast_sub(&mean)?
        .broadcast_div(&(var + eps)?.sqrt()?)?;
    xhat.broadcast_mul(&per_channel(weight)?)?
        .broadcast_add(&per_channel(bias)?)
}

/// The input viewed as (n, c, hw): hw is the product of the dims after C.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    hw: usize,
}

impl Dims {
    /// Checks an (N, C, ...) input against two per-channel (C) vectors.
    fn of(x: &[usize], a: &[usize], b: &[usize]) -> candle_core::Result<Dims> {
        let Some((&n, rest)) = x.split_first() else {
            bail!("batch_norm: expected an (N, C, ...) input, got {x:?}");
        };
        let Some((&c, spatial)) = rest.split_first() else {
            bail!("batch_norm: expected an (N, C, ...) input, got {x:?}");
        };
        if a != [c] || b != [c] {
            bail!("batch_norm: per-channel vectors {a:?} and {b:?} do not match {c} channels");
        }
        Ok(Dims {
            n,
            c,
            hw: spatial.iter().product(),
        })
    }

    fn count(&self) -> usize {
        self.n * self.hw
    }

    /// The channel's `hw`-long planes, one per image.
    fn planes<'a, T>(&self, x: &'a [T], ch: usize) -> impl Iterator<Item = &'a [T]> {
        (0..self.n).map(move |img| &x[(img * self.c + ch) * self.hw..][..self.hw])
    }
}

/// Lanes of the per-plane sums below: independent accumulators, so the loop
/// vectorises instead of waiting on one running sum.
const LANES: usize = 8;

/// sum(f(a[i], b[i])) over a plane: in `LANES` accumulators of T (a plane is at
/// most a few thousand values, well within f32's precision), returned in f64
/// so that the sum over the batch's planes is exact enough.
fn plane_sum<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut acc = [T::ZERO; LANES];
    let (a_main, b_main) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_main
        .remainder()
        .iter()
        .zip(b_main.remainder())
        .map(|(&x, &y)| f(x, y).to_f64())
        .sum();
    for (ca, cb) in a_main.zip(b_main) {
        for i in 0..LANES {
            acc[i] += f(ca[i], cb[i]);
        }
    }
    acc.iter().map(|v| v.to_f64()).sum::<f64>() + tail
}

/// Per-channel mean and biased variance, laid out as [means; variances].
fn channel_stats<T: Float>(x: &[T], d: Dims) -> Vec<T> {
    let count = d.count().max(1) as f64;
    let per_channel: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = d.planes(x, ch).map(|p| plane_sum(p, p, |v, _| v)).sum();
            let mean = sum / count;
            // A second pass around the mean avoids the cancellation of E[x^2] - E[x]^2.
            let m = T::from_f64(mean);
            let sq: f64 = d
                .planes(x, ch)
                .map(|p| plane_sum(p, p, |v, _| (v - m) * (v - m)))
                .sum();
            (mean, sq / count)
        })
        .collect();
    let means = per_channel.iter().map(|s| T::from_f64(s.0));
    let vars = per_channel.iter().map(|s| T::from_f64(s.1));
    means.chain(vars).collect()
}

/// y = (x - mean) / sqrt(var + eps) * weight + bias, as y = x * scale + shift.
/// With `relu`, negative outputs become 0 (`v < 0` is false for NaN, which stays).
fn normalize<T: Float>(
    x: &[T],
    affine: &[T],
    stats: &[T],
    eps: f64,
    relu: bool,
    d: Dims,
) -> Vec<T> {
    let (scale, shift): (Vec<T>, Vec<T>) = (0..d.c)
        .map(|ch| {
            let inv_std = 1.0 / (stats[d.c + ch].to_f64() + eps).sqrt();
            let scale = affine[ch].to_f64() * inv_std;
            let shift = affine[d.c + ch].to_f64() - stats[ch].to_f64() * scale;
            (T::from_f64(scale), T::from_f64(shift))
        })
        .unzip();
    let mut y = vec![T::ZERO; x.len()];
    if d.hw == 0 {
        return y;
    }
    y.par_chunks_mut(d.hw)
        .zip(x.par_chunks(d.hw))
        .enumerate()
        .for_each(|(plane, (yp, xp))| {
            let (a, b) = (scale[plane % d.c], shift[plane % d.c]);
            for (o, &v) in yp.iter_mut().zip(xp) {
                *o = v * a + b;
            }
            if relu {
                for o in yp.iter_mut() {
                    if *o < T::ZERO {
                        *o = T::ZERO;
                    }
                }
            }
        });
    y
}

/// [input gradient ; weight gradient ; bias gradient] from x, the packed
/// (4, C) [weight; bias; mean; var] and the output gradient.
///
/// With xc = x - mean, s = 1/sqrt(var + eps), M = values per channel:
///   d bias   = sum(g),  d weight = s * sum(g * xc)
///   dx = weight*s * g                                   (fixed statistics)
///   dx = weight*s * (g - sum(g)/M - xc * s^2 * sum(g*xc)/M)   (batch statistics)
/// The latter is written as dx = a*g + b*x + c per channel, so the last pass is
/// one fused multiply-add per element.
fn normalize_backward<T: Float>(
    x: &[T],
    packed: &[T],
    gy: &[T],
    eps: f64,
    batch_stats: bool,
    d: Dims,
) -> Vec<T> {
    let c = d.c;
    let count = d.count().max(1) as f64;
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mean = packed[2 * c + ch];
            d.planes(x, ch)
                .zip(d.planes(gy, ch))
                .fold((0.0, 0.0), |(sg, sgx), (xp, gp)| {
                    (
                        sg + plane_sum(gp, gp, |g, _| g),
                        sgx + plane_sum(xp, gp, |v, g| g * (v - mean)),
                    )
                })
        })
        .collect();
    let mut coef = Vec::with_capacity(c);
    let mut out = vec![T::ZERO; x.len() + 2 * c];
    let (gx, g_affine) = out.split_at_mut(x.len());
    for (ch, &(sum_g, sum_gxc)) in sums.iter().enumerate() {
        let (weight, mean, var) = (
            packed[ch].to_f64(),
            packed[2 * c + ch].to_f64(),
            packed[3 * c + ch].to_f64(),
        );
        let inv_std = 1.0 / (var + eps).sqrt();
        g_affine[ch] = T::from_f64(sum_gxc * inv_std);
        g_affine[c + ch] = T::from_f64(sum_g);
        let a = weight * inv_std;
        let (b, c0) = if batch_stats {
            let b = -a * inv_std * inv_std * sum_gxc / count;
            (b, -a * sum_g / count - b * mean)
        } else {
            (0.0, 0.0)
        };
        coef.push((T::from_f64(a), T::from_f64(b), T::from_f64(c0)));
    }
    if d.hw > 0 {
        gx.par_chunks_mut(d.hw)
            .zip(x.par_chunks(d.hw).zip(gy.par_chunks(d.hw)))
            .enumerate()
            .for_each(|(plane, (gp, (xp, gyp)))| {
                let (a, b, c0) = coef[plane % c];
                for ((o, &v), &g) in gp.iter_mut().zip(xp).zip(gyp) {
                    *o = a * g + b * v + c0;
                }
            });
    }
    out
}

/// x -> (2, C) [mean; biased variance]. Forward only.
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "orchard-batch-norm-stats"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let c = l.dims().get(1).copied().unwrap_or(0);
        let d = Dims::of(l.dims(), &[c], &[c])?;
        // Two views of the same storage keep the dispatch macro's shape.
        let stats = dispatch2!("batch_norm stats", (s, l), (s, l), |x, _same| {
            channel_stats(x, d)
        });
        Ok((stats, Shape::from((2, c))))
    }
}

/// (x, affine (2, C), stats (2, C)) -> normalised x.
#[derive(Debug, Clone, Copy)]
struct Normalize {
    eps: f64,
    /// Whether `stats` came from this very batch (training mode): then the
    /// gradient also flows through them, folded into the input gradient.
    batch_stats: bool,
    /// Clamp the output at 0 (a fused ReLU).
    relu: bool,
}

impl Normalize {
    fn dims(&self, x: &Layout, affine: &Layout, stats: &Layout) -> candle_core::Result<Dims> {
        let c = x.dims().get(1).copied().unwrap_or(0);
        if affine.dims() != [2, c] || stats.dims() != [2, c] {
            bail!(
                "batch_norm: affine {:?} and statistics {:?} must both be (2, {c})",
                affine.dims(),
                stats.dims()
            );
        }
        Dims::of(x.dims(), &[c], &[c])
    }
}

impl CustomOp3 for Normalize {
    fn name(&self) -> &'static str {
        "orchard-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &Layout,
        affs: &candle_core::CpuStorage,
        affl: &Layout,
        ss: &candle_core::CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let d = self.dims(xl, affl, sl)?;
        let y = dispatch3!(
            "batch_norm",
            (xs, xl),
            (affs, affl),
            (ss, sl),
            |x, aff, st| normalize(x, aff, st, self.eps, self.relu, d)
        );
        Ok((y, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        stats: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Through the fused ReLU first: the gradient passes where the output is positive.
        let grad = if self.relu {
            relu_mask(res, grad)?
        } else {
            grad.clone()
        };
        let packed = Tensor::cat(&[&affine.detach(), &stats.detach()], 0)?;
        let both = x.apply_op3_no_bwd(&packed, &grad.contiguous()?, &NormalizeBackward(*self))?;
        let nx = x.elem_count();
        let gx = both.narrow(0, 0, nx)?.reshape(x.shape())?;
        let g_affine = both
            .narrow(0, nx, affine.elem_count())?
            .reshape(affine.shape())?;
        // The statistics' own gradient is already folded into gx (or they are constants).
        Ok((Some(gx), Some(g_affine), None))
    }
}

/// (x, packed (4, C), output gradient) -> [dx ; d weight ; d bias], flattened.
struct NormalizeBackward(Normalize);

impl CustomOp3 for NormalizeBackward {
    fn name(&self) -> &'static str {
        "orchard-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &Layout,
        ps: &candle_core::CpuStorage,
        pl: &Layout,
        gs: &candle_core::CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let c = xl.dims().get(1).copied().unwrap_or(0);
        let d = Dims::of(xl.dims(), &[c], &[c])?;
        if pl.dims() != [4, c] || gl.dims() != xl.dims() {
            bail!(
                "batch_norm backward: packed {:?} / gradient {:?} do not fit input {:?}",
                pl.dims(),
                gl.dims(),
                xl.dims()
            );
        }
        let Normalize {
            eps, batch_stats, ..
        } = self.0;
        let out = dispatch3!(
            "batch_norm backward",
            (xs, xl),
            (ps, pl),
            (gs, gl),
            |x, p, g| normalize_backward(x, p, g, eps, batch_stats, d)
        );
        Ok((out, Shape::from(xl.shape().elem_count() + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{check_gradients, max_abs_diff, random_tensor};
    use candle_core::{DType, Device, Var};

    const SHAPES: [(usize, usize, usize, usize); 4] =
        [(1, 1, 1, 2), (2, 3, 5, 7), (1, 4, 3, 3), (3, 2, 1, 1)];

    fn vectors(c: usize, dtype: DType, seed: u64) -> (Tensor, Tensor) {
        let w = (random_tensor(c, dtype, seed) * 0.5).unwrap() + 1.0;
        (w.unwrap(), random_tensor(c, dtype, seed + 1))
    }

    #[test]
    fn training_mode_matches_candle_nn_in_f32() {
        for (i, shape) in SHAPES.into_iter().enumerate() {
            let c = shape.1;
            let x = Var::from_tensor(
                &(random_tensor(shape, DType::F32, i as u64) * 3.0)
                    .unwrap()
                    .affine(1.0, 1.0)
                    .unwrap(),
            )
            .unwrap();
            let (w, b) = vectors(c, DType::F32, 10 + i as u64);
            let (w, b) = (Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
            let (ours, stats) = batch_norm_train(&x, &w, &b, 1e-5, false).unwrap();
            let stock = candle_nn::BatchNorm::new(
                c,
                Tensor::zeros(c, DType::F32, &Device::Cpu).unwrap(),
                Tensor::ones(c, DType::F32, &Device::Cpu).unwrap(),
                w.as_tensor().clone(),
                b.as_tensor().clone(),
                1e-5,
            )
            .unwrap();
            let want = candle_core::ModuleT::forward_t(&stock, x.as_tensor(), true).unwrap();
            assert!(max_abs_diff(&ours, &want) < 1e-4, "shape {shape:?}");
            let (_, fallback_stats) = stock_train(&x, &w, &b, 1e-5).unwrap();
            assert!(max_abs_diff(&stats, &fallback_stats) < 1e-4);
            let r = random_tensor(shape, DType::F32, 99);
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (want * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w, &b] {
                let (a, e) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(max_abs_diff(a, e) < 1e-3, "shape {shape:?}");
            }
        }
    }

    #[test]
    fn eval_mode_matches_the_formula_in_f32() {
        let x = random_tensor((2, 3, 4, 5), DType::F32, 1);
        let (w, b) = vectors(3, DType::F32, 2);
        let mean = random_tensor(3, DType::F32, 4);
        let var = (random_tensor(3, DType::F32, 5).abs().unwrap() + 0.5).unwrap();
        let ours = batch_norm_eval(&x, &w, &b, &mean, &var, 1e-5, false).unwrap();
        let stats = Tensor::stack(&[&mean, &var], 0).unwrap();
        let want = stock_normalize(&x, &w, &b, &stats, 1e-5).unwrap();
        assert!(max_abs_diff(&ours, &want) < 1e-5);
    }

    #[test]
    fn gradients_match_finite_differences_in_f64() {
        for (i, shape) in SHAPES.into_iter().enumerate() {
            let x = random_tensor(shape, DType::F64, 20 + i as u64);
            let (w, b) = vectors(shape.1, DType::F64, 30 + i as u64);
            check_gradients(&[x.clone(), w.clone(), b.clone()], 40 + i as u64, |t| {
                Ok(batch_norm_train(&t[0], &t[1], &t[2], 1e-5, false)?.0)
            });
            let mean = random_tensor(shape.1, DType::F64, 50);
            let var = (random_tensor(shape.1, DType::F64, 51).abs().unwrap() + 0.5).unwrap();
            check_gradients(&[x, w, b], 60 + i as u64, |t| {
                batch_norm_eval(&t[0], &t[1], &t[2], &mean, &var, 1e-5, false)
            });
        }
    }

    #[test]
    fn fused_relu_matches_batch_norm_then_relu() {
        let x = Var::from_tensor(&random_tensor((2, 3, 4, 5), DType::F32, 7)).unwrap();
        let (w, b) = vectors(3, DType::F32, 8);
        let r = random_tensor((2, 3, 4, 5), DType::F32, 9);
        let fused = batch_norm_train(&x, &w, &b, 1e-5, true).unwrap().0;
        let plain = batch_norm_train(&x, &w, &b, 1e-5, false)
            .unwrap()
            .0
            .relu()
            .unwrap();
        assert!(max_abs_diff(&fused, &plain) < 1e-6);
        let g1 = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (plain * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_abs_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
        let x64 = random_tensor((2, 3, 4, 5), DType::F64, 10);
        let (w, b) = vectors(3, DType::F64, 11);
        check_gradients(&[x64, w, b], 12, |t| {
            Ok(batch_norm_train(&t[0], &t[1], &t[2], 1e-5, true)?.0)
        });
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let (w, b) = vectors(3, DType::F32, 1);
        let one = Tensor::zeros((1, 3, 1, 1), DType::F32, &Device::Cpu).unwrap();
        assert!(
            batch_norm_train(&one, &w, &b, 1e-5, false).is_err(),
            "one value per channel"
        );
        let x = Tensor::zeros((2, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(
            batch_norm_train(&x, &w, &b, 1e-5, false).is_err(),
            "channel mismatch"
        );
        let x1 = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(
            batch_norm_train(&x1, &w, &b, 1e-5, false).is_err(),
            "no channel dim"
        );
    }
}
