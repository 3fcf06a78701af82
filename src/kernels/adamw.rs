//! The AdamW update (fastai's `Adam`, decoupled weight decay) applied in place
//! to a parameter's storage, multi-threaded over chunks of its elements.
//!
//! A chain of tensor ops allocates and walks every parameter about ten times
//! per step on one thread; this is one pass, on all threads, with the moments
//! kept as plain vectors next to the parameter.

use crate::kernels::float::{Float, contiguous};
use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor, Var, bail};
use rayon::prelude::*;
use std::sync::Mutex;

/// Elements per rayon task: large enough to amortise scheduling, small enough
/// to split the 2.4M-element layer4 convolutions across threads.
const CHUNK: usize = 1 << 14;

/// The scalars of one update, with bias corrections already computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 0 for parameters without decay.
    pub weight_decay: f64,
    /// 1 - beta1^t and 1 - beta2^t, t the step number from 1.
    pub debias1: f64,
    pub debias2: f64,
}

/// One parameter's first and second moments, created at its first update.
#[derive(Debug, Default)]
pub struct AdamWState {
    moments: Option<Moments>,
}

#[derive(Debug)]
enum Moments {
    F32(Vec<f32>, Vec<f32>),
    F64(Vec<f64>, Vec<f64>),
    /// Tensors on a device without our kernel: candle's tensor ops.
    Tensors(Tensor, Tensor),
}

impl AdamWState {
    /// The moments (m, v) as tensors shaped like the parameter, or None before
    /// the first update: what a checkpoint stores.
    pub fn to_tensors(
        &self,
        shape: &candle_core::Shape,
        device: &candle_core::Device,
    ) -> candle_core::Result<Option<(Tensor, Tensor)>> {
        Ok(match &self.moments {
            None => None,
            Some(Moments::F32(m, v)) => Some((
                Tensor::from_slice(m, shape, device)?,
                Tensor::from_slice(v, shape, device)?,
            )),
            Some(Moments::F64(m, v)) => Some((
                Tensor::from_slice(m, shape, device)?,
                Tensor::from_slice(v, shape, device)?,
            )),
            Some(Moments::Tensors(m, v)) => Some((m.clone(), v.clone())),
        })
    }

    /// State restored from a checkpoint's moments; their dtype must be the
    /// parameter's (checked at the next update).
    pub fn from_tensors(m: &Tensor, v: &Tensor) -> candle_core::Result<Self> {
        if m.shape() != v.shape() || m.dtype() != v.dtype() {
            bail!("adamw: moments of different shapes or dtypes");
        }
        let moments = if !m.device().is_cpu() {
            Moments::Tensors(m.clone(), v.clone())
        } else {
            match m.dtype() {
                candle_core::DType::F32 => {
                    Moments::F32(m.flatten_all()?.to_vec1()?, v.flatten_all()?.to_vec1()?)
                }
                candle_core::DType::F64 => {
                    Moments::F64(m.flatten_all()?.to_vec1()?, v.flatten_all()?.to_vec1()?)
                }
                d => bail!("adamw: unsupported dtype {d:?} (f32 or f64)"),
            }
        };
        Ok(AdamWState {
            moments: Some(moments),
        })
    }
}

/// Applies one AdamW update to `param` given its gradient:
///   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
///   p -= lr * (m / debias1) / (sqrt(v / debias2) + eps)
pub fn adamw_update(
    param: &Var,
    grad: &Tensor,
    state: &mut AdamWState,
    h: &AdamWStep,
) -> candle_core::Result<()> {
    if grad.shape() != param.shape() || grad.dtype() != param.dtype() {
        bail!(
            "adamw: gradient {:?}/{:?} does not match parameter {:?}/{:?}",
            grad.shape(),
            grad.dtype(),
            param.shape(),
            param.dtype()
        );
    }
    if !param.device().is_cpu() {
        return stock_update(param, grad, state, h);
    }
    let kernel = Kernel {
        state: Mutex::new(state),
        h: *h,
    };
    param.as_tensor().inplace_op2(&grad.contiguous()?, &kernel)
}

fn stock_update(
    param: &Var,
    grad: &Tensor,
    state: &mut AdamWState,
    h: &AdamWStep,
) -> candle_core::Result<()> {
    let (m, v) = match state.moments.take() {
        Some(Moments::Tensors(m, v)) => (m, v),
        _ => (grad.zeros_like()?, grad.zeros_like()?),
    };
    let m = ((m * h.beta1)? + (grad * (1.0 - h.beta1))?)?;
    let v = ((v * h.beta2)? + (grad.sqr()? * (1.0 - h.beta2))?)?;
    let p = (param.as_tensor().detach() * (1.0 - h.lr * h.weight_decay))?;
    let denom = ((&v / h.debias2)?.sqrt()? + h.eps)?;
    let p = (p - (((&m / h.debias1)? / denom)? * h.lr)?)?;
    param.set(&p)?;
    state.moments = Some(Moments::Tensors(m, v));
    Ok(())
}

/// The in-place op; holds the parameter's moments for the duration of the call.
struct Kernel<'a> {
    state: Mutex<&'a mut AdamWState>,
    h: AdamWStep,
}

fn update<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], h: &AdamWStep) {
    let c = |x: f64| T::from_f64(x);
    let decay = c(1.0 - h.lr * h.weight_decay);
    let (b1, b2, one_b1, one_b2) = (c(h.beta1), c(h.beta2), c(1.0 - h.beta1), c(1.0 - h.beta2));
    // lr / debias1 folds into one factor; sqrt(v / debias2) = sqrt(v) / sqrt(debias2).
    let step = c(h.lr / h.debias1);
    let inv_sqrt_d2 = c(1.0 / h.debias2.sqrt());
    let eps = c(h.eps);
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + one_b1 * g;
                *v = b2 * *v + one_b2 * g * g;
                *p = *p * decay - step * *m / ((*v).sqrt() * inv_sqrt_d2 + eps);
            }
        });
}

impl InplaceOp2 for Kernel<'_> {
    fn name(&self) -> &'static str {
        "orchard-adamw"
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
            .map_err(|_| candle_core::Error::Msg("adamw: state lock poisoned".into()))?;
        let Some((start, end)) = pl.contiguous_offsets() else {
            bail!("adamw: expected a contiguous parameter");
        };
        let len = end - start;
        match (ps, gs) {
            (CpuStorage::F32(p), CpuStorage::F32(g)) => {
                let g = contiguous(g, gl, "adamw")?;
                let moments = state
                    .moments
                    .get_or_insert_with(|| Moments::F32(vec![0.0; len], vec![0.0; len]));
                let Moments::F32(m, v) = moments else {
                    bail!("adamw: parameter changed dtype between steps");
                };
                update(&mut p[start..end], g, m, v, &self.h);
            }
            (CpuStorage::F64(p), CpuStorage::F64(g)) => {
                let g = contiguous(g, gl, "adamw")?;
                let moments = state
                    .moments
                    .get_or_insert_with(|| Moments::F64(vec![0.0; len], vec![0.0; len]));
                let Moments::F64(m, v) = moments else {
                    bail!("adamw: parameter changed dtype between steps");
                };
                update(&mut p[start..end], g, m, v, &self.h);
            }
            _ => bail!("adamw: unsupported dtype (f32 or f64)"),
        }
        Ok(())
    }
}
