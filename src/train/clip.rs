//! Gradient clipping by the global L2 norm, as torch's `clip_grad_norm_` (which
//! fastai's `GradientClip` callback calls): with `n` the norm of all gradients
//! together, every gradient is multiplied by `min(1, max_norm / (n + 1e-6))`.

use crate::error::Result;
use crate::train::params::TrainParam;
use candle_core::DType;
use candle_core::backprop::GradStore;

/// Clip `grads` of `params` in place; returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[TrainParam], max_norm: f64) -> Result<f64> {
    let mut squares = 0f64;
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            squares += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    let norm = squares.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for p in params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                let clipped = (g * coef)?;
                grads.insert(p.var.as_tensor(), clipped);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};

    fn param(name: &str, v: &[f32]) -> TrainParam {
        TrainParam {
            name: name.into(),
            var: Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap(),
            weight_decay: true,
        }
    }

    #[test]
    fn scales_all_gradients_by_the_global_norm_as_torch() {
        let a = param("a", &[1.0, 2.0]);
        let b = param("b", &[0.5]);
        // loss = 3*a0 + 4*a1 + 12*b: gradients (3, 4) and (12), global norm 13.
        let w = Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap();
        let loss = ((a.var.as_tensor() * &w).unwrap().sum_all().unwrap()
            + (b.var.as_tensor() * 12.0).unwrap().sum_all().unwrap())
        .unwrap();
        let params = [a.clone(), b.clone()];
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, &params, 6.5).unwrap();
        assert!((norm - 13.0).abs() < 1e-9);
        let coef = 6.5 / (13.0 + 1e-6);
        let ga = grads
            .get(a.var.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let gb = grads
            .get(b.var.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            (ga[0] as f64 - 3.0 * coef).abs() < 1e-6 && (ga[1] as f64 - 4.0 * coef).abs() < 1e-6
        );
        assert!((gb[0] as f64 - 12.0 * coef).abs() < 1e-6);
        // Below the limit nothing changes.
        let mut grads = loss.backward().unwrap();
        clip_grad_norm(&mut grads, &params, 100.0).unwrap();
        assert_eq!(
            grads
                .get(a.var.as_tensor())
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            [3.0, 4.0]
        );
    }
}
