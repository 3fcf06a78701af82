//! The optimisers' per-element updates (fastai's `sgd_step`, `momentum_step`,
//! `adam_step`, `radam_step`, each after decoupled weight decay) and Lookahead's
//! sync, applied in place to a parameter's storage, multi-threaded over chunks
//! of its elements.
//!
//! A chain of tensor ops allocates and walks every parameter about ten times
//! per step on one thread; this is one pass, on all threads, with the state
//! kept as plain vectors next to the parameter. The optimiser (`train::optim`)
//! works out the step's scalars; this file only applies them.

use crate::kernels::float::{Float, contiguous};
use candle_core::{CpuStorage, DType, InplaceOp1, InplaceOp2, Layout, Tensor, Var, bail};
use rayon::prelude::*;
use std::sync::Mutex;

/// Elements per rayon task: large enough to amortise scheduling, small enough
/// to split the 2.4M-element layer4 convolutions across threads.
const CHUNK: usize = 1 << 14;

/// The scalars of one parameter's update. `decay` is `1 - lr*wd` (1 for a
/// parameter without weight decay): fastai's `weight_decay` callback, which
/// runs before the step, while the gradient was taken at the pre-decay weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// fastai's `sgd_step` (SGD with mom = 0): `p = p*decay - lr*g`. No state.
    Sgd { decay: f64, lr: f64 },
    /// fastai's undampened `average_grad` + `momentum_step`:
    /// `m = mom*m + g; p = p*decay - lr*m`. With `nesterov` (torch's form; fastai
    /// has none): `p = p*decay - lr*(g + mom*m)`. State: `[m]`.
    Momentum {
        decay: f64,
        lr: f64,
        mom: f64,
        nesterov: bool,
    },
    /// Adam, and RAdam once rectified: `m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g²;
    /// p = p*decay - step*m / (sqrt(v)*inv_sqrt_debias2 + eps)` with
    /// `step = lr*r/debias1` (r = 1 for Adam). State: `[m, v]`.
    Adam {
        decay: f64,
        beta1: f64,
        beta2: f64,
        step: f64,
        inv_sqrt_debias2: f64,
        eps: f64,
    },
    /// RAdam before its variance is tractable: moments as Adam, then
    /// `p = p*decay - step*m` with `step = lr/debias1`. State: `[m, v]`.
    AdamUnrectified {
        decay: f64,
        beta1: f64,
        beta2: f64,
        step: f64,
    },
}

impl Rule {
    /// How many state buffers the rule keeps per parameter.
    pub fn buffers(&self) -> usize {
        match self {
            Rule::Sgd { .. } => 0,
            Rule::Momentum { .. } => 1,
            Rule::Adam { .. } | Rule::AdamUnrectified { .. } => 2,
        }
    }
}

/// One state buffer (or a copy of a parameter's weights), flat, in the
/// parameter's float type. Always in host memory, whatever the parameter's device.
#[derive(Debug, Clone, PartialEq)]
pub enum Buffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Buffer {
    pub fn zeros(dtype: DType, len: usize) -> candle_core::Result<Self> {
        match dtype {
            DType::F32 => Ok(Buffer::F32(vec![0.0; len])),
            DType::F64 => Ok(Buffer::F64(vec![0.0; len])),
            other => bail!("optimiser state: unsupported dtype {other:?} (f32 or f64)"),
        }
    }

    /// A flat copy of a tensor's values (Lookahead's slow weights, loaded state).
    pub fn from_tensor(t: &Tensor) -> candle_core::Result<Self> {
        let flat = t.flatten_all()?;
        match t.dtype() {
            DType::F32 => Ok(Buffer::F32(flat.to_vec1()?)),
            DType::F64 => Ok(Buffer::F64(flat.to_vec1()?)),
            other => bail!("optimiser state: unsupported dtype {other:?} (f32 or f64)"),
        }
    }

    /// The buffer as a 1-D host tensor (for saving).
    pub fn to_tensor(&self) -> candle_core::Result<Tensor> {
        let dev = &candle_core::Device::Cpu;
        match self {
            Buffer::F32(v) => Tensor::from_slice(v, v.len(), dev),
            Buffer::F64(v) => Tensor::from_slice(v, v.len(), dev),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
        }
    }
}

/// The float types whose state lives in a `Buffer`.
trait StateFloat: Float {
    fn typed(b: &mut Buffer) -> Option<&mut Vec<Self>>;
}

impl StateFloat for f32 {
    fn typed(b: &mut Buffer) -> Option<&mut Vec<f32>> {
        match b {
            Buffer::F32(v) => Some(v),
            Buffer::F64(_) => None,
        }
    }
}

impl StateFloat for f64 {
    fn typed(b: &mut Buffer) -> Option<&mut Vec<f64>> {
        match b {
            Buffer::F64(v) => Some(v),
            Buffer::F32(_) => None,
        }
    }
}

/// The buffer as `&mut [T]` of `len` elements, or an error when it was made
/// for another parameter (a state loaded from a different model, say).
fn typed<T: StateFloat>(b: &mut Buffer, len: usize) -> candle_core::Result<&mut [T]> {
    let (dtype, got) = (b.dtype(), b.len());
    match T::typed(b) {
        Some(v) if v.len() == len => Ok(v),
        _ => bail!(
            "optimiser state: a buffer of {got} {dtype:?} values does not fit a parameter of {len}"
        ),
    }
}

/// Applies `rule` to `param` given its gradient; creates the state buffers (zeros)
/// at the first update.
pub fn optim_update(
    param: &Var,
    grad: &Tensor,
    state: &mut Vec<Buffer>,
    rule: &Rule,
) -> candle_core::Result<()> {
    if grad.shape() != param.shape() || grad.dtype() != param.dtype() {
        bail!(
            "optimiser: gradient {:?}/{:?} does not match parameter {:?}/{:?}",
            grad.shape(),
            grad.dtype(),
            param.shape(),
            param.dtype()
        );
    }
    while state.len() < rule.buffers() {
        state.push(Buffer::zeros(param.dtype(), param.elem_count())?);
    }
    if !param.device().is_cpu() {
        // No kernel on other devices: the same update on a host copy. Correct,
        // not fast; the CPU is what orchard trains on today.
        let mut p = Buffer::from_tensor(param.as_tensor())?;
        let mut g = Buffer::from_tensor(grad)?;
        match (&mut p, &mut g) {
            (Buffer::F32(p), Buffer::F32(g)) => update(rule, p, g, state)?,
            (Buffer::F64(p), Buffer::F64(g)) => update(rule, p, g, state)?,
            _ => bail!("optimiser: parameter and gradient dtypes differ"),
        }
        return set_from_buffer(param, &p);
    }
    let kernel = UpdateOp {
        state: Mutex::new(state),
        rule: *rule,
    };
    param.as_tensor().inplace_op2(&grad.contiguous()?, &kernel)
}

/// Lookahead's sync: `slow += alpha*(p - slow); p = slow`.
pub fn lookahead_sync(param: &Var, slow: &mut Buffer, alpha: f64) -> candle_core::Result<()> {
    if slow.len() != param.elem_count() || slow.dtype() != param.dtype() {
        bail!(
            "lookahead: slow weights of {} {:?} values do not fit a parameter {:?}/{:?}",
            slow.len(),
            slow.dtype(),
            param.shape(),
            param.dtype()
        );
    }
    if !param.device().is_cpu() {
        let mut p = Buffer::from_tensor(param.as_tensor())?;
        match (&mut p, &mut *slow) {
            (Buffer::F32(p), Buffer::F32(s)) => sync(p, s, alpha),
            (Buffer::F64(p), Buffer::F64(s)) => sync(p, s, alpha),
            _ => bail!("lookahead: parameter and slow weights dtypes differ"),
        }
        return set_from_buffer(param, &p);
    }
    let op = SyncOp {
        slow: Mutex::new(slow),
        alpha,
    };
    param.as_tensor().inplace_op1(&op)
}

fn set_from_buffer(param: &Var, values: &Buffer) -> candle_core::Result<()> {
    let t = values
        .to_tensor()?
        .reshape(param.shape())?
        .to_device(param.device())?;
    param.set(&t)
}

fn update<T: StateFloat>(
    rule: &Rule,
    p: &mut [T],
    g: &[T],
    state: &mut [Buffer],
) -> candle_core::Result<()> {
    let c = |x: f64| T::from_f64(x);
    let len = p.len();
    match *rule {
        Rule::Sgd { decay, lr } => {
            let (decay, lr) = (c(decay), c(lr));
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .for_each(|(p, g)| {
                    for (p, &g) in p.iter_mut().zip(g) {
                        *p = *p * decay - lr * g;
                    }
                });
        }
        Rule::Momentum {
            decay,
            lr,
            mom,
            nesterov,
        } => {
            let [m, ..] = state else {
                bail!("optimiser: momentum needs one state buffer");
            };
            let m = typed::<T>(m, len)?;
            let (decay, lr, mom) = (c(decay), c(lr), c(mom));
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .for_each(|((p, g), m)| {
                    for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                        *m = mom * *m + g;
                        let d = if nesterov { g + mom * *m } else { *m };
                        *p = *p * decay - lr * d;
                    }
                });
        }
        Rule::Adam {
            decay,
            beta1,
            beta2,
            step,
            inv_sqrt_debias2,
            eps,
        } => {
            let [m, v, ..] = state else {
                bail!("optimiser: Adam needs two state buffers");
            };
            let (m, v) = (typed::<T>(m, len)?, typed::<T>(v, len)?);
            let (decay, b1, b2, one_b1, one_b2) =
                (c(decay), c(beta1), c(beta2), c(1.0 - beta1), c(1.0 - beta2));
            // sqrt(v / debias2) = sqrt(v) * (1 / sqrt(debias2)): no division per element.
            let (step, inv_sqrt_d2, eps) = (c(step), c(inv_sqrt_debias2), c(eps));
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
                .for_each(|((p, g), (m, v))| {
                    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        *m = b1 * *m + one_b1 * g;
                        *v = b2 * *v + one_b2 * g * g;
                        *p = *p * decay - step * *m / ((*v).sqrt() * inv_sqrt_d2 + eps);
                    }
                });
        }
        Rule::AdamUnrectified {
            decay,
            beta1,
            beta2,
            step,
        } => {
            let [m, v, ..] = state else {
                bail!("optimiser: RAdam needs two state buffers");
            };
            let (m, v) = (typed::<T>(m, len)?, typed::<T>(v, len)?);
            let (decay, b1, b2, one_b1, one_b2) =
                (c(decay), c(beta1), c(beta2), c(1.0 - beta1), c(1.0 - beta2));
            let step = c(step);
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
                .for_each(|((p, g), (m, v))| {
                    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        // v is unused by this step but must keep averaging for the
                        // rectified steps that follow.
                        *m = b1 * *m + one_b1 * g;
                        *v = b2 * *v + one_b2 * g * g;
                        *p = *p * decay - step * *m;
                    }
                });
        }
    }
    Ok(())
}

fn sync<T: Float>(p: &mut [T], slow: &mut [T], alpha: f64) {
    let alpha = T::from_f64(alpha);
    p.par_chunks_mut(CHUNK)
        .zip(slow.par_chunks_mut(CHUNK))
        .for_each(|(p, s)| {
            for (p, s) in p.iter_mut().zip(s.iter_mut()) {
                *s = *s + alpha * (*p - *s);
                *p = *s;
            }
        });
}

/// The in-place update; holds the parameter's state for the duration of the call.
struct UpdateOp<'a> {
    state: Mutex<&'a mut Vec<Buffer>>,
    rule: Rule,
}

impl InplaceOp2 for UpdateOp<'_> {
    fn name(&self) -> &'static str {
        "orchard-optim-step"
    }

    fn cpu_fwd(
        &self,
        ps: &mut CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| candle_core::Error::Msg("optimiser: state lock poisoned".into()))?;
        let Some((start, end)) = pl.contiguous_offsets() else {
            bail!("optimiser: expected a contiguous parameter");
        };
        match (ps, gs) {
            (CpuStorage::F32(p), CpuStorage::F32(g)) => {
                let g = contiguous(g, gl, "optimiser")?;
                update(&self.rule, &mut p[start..end], g, &mut state)
            }
            (CpuStorage::F64(p), CpuStorage::F64(g)) => {
                let g = contiguous(g, gl, "optimiser")?;
                update(&self.rule, &mut p[start..end], g, &mut state)
            }
            _ => bail!("optimiser: unsupported dtype (f32 or f64)"),
        }
    }
}

/// The in-place Lookahead sync; holds the slow weights for the duration of the call.
struct SyncOp<'a> {
    slow: Mutex<&'a mut Buffer>,
    alpha: f64,
}

impl InplaceOp1 for SyncOp<'_> {
    fn name(&self) -> &'static str {
        "orchard-lookahead-sync"
    }

    fn cpu_fwd(&self, ps: &mut CpuStorage, pl: &Layout) -> candle_core::Result<()> {
        let mut slow = self
            .slow
            .lock()
            .map_err(|_| candle_core::Error::Msg("lookahead: slow weights lock poisoned".into()))?;
        let Some((start, end)) = pl.contiguous_offsets() else {
            bail!("lookahead: expected a contiguous parameter");
        };
        let len = end - start;
        match ps {
            CpuStorage::F32(p) => sync(
                &mut p[start..end],
                typed::<f32>(&mut slow, len)?,
                self.alpha,
            ),
            CpuStorage::F64(p) => sync(
                &mut p[start..end],
                typed::<f64>(&mut slow, len)?,
                self.alpha,
            ),
            _ => bail!("lookahead: unsupported dtype (f32 or f64)"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(values: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
    }

    #[test]
    fn updates_elements_past_one_chunk() {
        // 40_000 elements: three rayon chunks, the last one partial.
        let n = 40_000;
        let p = var(&vec![1.0; n]);
        let g = Tensor::new(vec![0.5f32; n], &Device::Cpu).unwrap();
        let mut state = Vec::new();
        let rule = Rule::Momentum {
            decay: 0.9,
            lr: 0.1,
            mom: 0.5,
            nesterov: false,
        };
        optim_update(&p, &g, &mut state, &rule).unwrap();
        optim_update(&p, &g, &mut state, &rule).unwrap();
        // m1 = 0.5, p1 = 0.9 - 0.05 = 0.85; m2 = 0.75, p2 = 0.765 - 0.075 = 0.69.
        let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
        assert!(
            got.iter().all(|x| (x - 0.69).abs() < 1e-6),
            "{:?}",
            &got[..3]
        );
        assert_eq!(state, vec![Buffer::F32(vec![0.75; n])]);
    }

    #[test]
    fn mismatched_state_is_an_error() {
        let p = var(&[1.0, 2.0]);
        let g = Tensor::new(&[0.1f32, 0.2], &Device::Cpu).unwrap();
        let rule = Rule::Momentum {
            decay: 1.0,
            lr: 0.1,
            mom: 0.9,
            nesterov: false,
        };
        let mut state = vec![Buffer::F32(vec![0.0; 3])];
        assert!(optim_update(&p, &g, &mut state, &rule).is_err());
        let mut state = vec![Buffer::F64(vec![0.0; 2])];
        assert!(optim_update(&p, &g, &mut state, &rule).is_err());
        let mut slow = Buffer::F32(vec![0.0; 5]);
        assert!(lookahead_sync(&p, &mut slow, 0.5).is_err());
        let g64 = Tensor::new(&[0.1f64, 0.2], &Device::Cpu).unwrap();
        assert!(optim_update(&p, &g64, &mut Vec::new(), &rule).is_err());
    }

    #[test]
    fn sync_moves_slow_towards_fast_and_resets_fast() {
        let p = var(&[1.0, -3.0]);
        let mut slow = Buffer::F32(vec![0.0, 1.0]);
        lookahead_sync(&p, &mut slow, 0.5).unwrap();
        assert_eq!(slow, Buffer::F32(vec![0.5, -1.0]));
        assert_eq!(p.as_tensor().to_vec1::<f32>().unwrap(), [0.5, -1.0]);
    }
}
