//! AdamW as fastai's `Adam` optimiser runs it (optimizer.py): decoupled weight
//! decay, dampened first moment, bias correction with the step's own beta1.
//!
//! candle-nn's `AdamW` decays every variable (BatchNorm and biases too) and has
//! a fixed beta1, while fastai schedules beta1 per step and skips decay on norm
//! params and biases (`wd_bn_bias=False`); hence our own, on the in-place
//! `kernels::adamw` update.

use crate::error::{Error, Result};
use crate::kernels::{AdamWState, AdamWStep, adamw_update};
use crate::train::params::TrainParam;
use candle_core::Tensor;
use candle_core::backprop::GradStore;
use rayon::prelude::*;
use std::collections::HashMap;

/// The hyper-parameters of one step; lr and beta1 come from the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepHypers {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

pub struct AdamW {
    params: Vec<TrainParam>,
    /// First and second moments per parameter, created at its first gradient.
    states: Vec<AdamWState>,
    /// Steps taken (fastai's `step` state, shared by all params here since all step together).
    steps: usize,
}

impl AdamW {
    pub fn new(params: Vec<TrainParam>) -> Self {
        let states = params.iter().map(|_| AdamWState::default()).collect();
        AdamW {
            params,
            states,
            steps: 0,
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One update of every parameter that has a gradient in `grads`:
    ///   p *= 1 - lr*wd                      (decoupled, only where decay applies)
    ///   m  = b1*m + (1-b1)*g
    ///   v  = b2*v + (1-b2)*g^2
    ///   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    /// The gradient was taken at the pre-decay weights, as in fastai. Runs in
    /// place, parameters in parallel (and large ones split across threads).
    /// The optimiser's state as named tensors (`<param>.exp_avg`,
    /// `<param>.exp_avg_sq`, PyTorch's names) for a checkpoint; the step count
    /// is `steps()`.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (p, s) in self.params.iter().zip(&self.states) {
            if let Some((m, v)) = s.to_tensors(p.var.shape(), p.var.device())? {
                out.push((format!("{}.exp_avg", p.name), m));
                out.push((format!("{}.exp_avg_sq", p.name), v));
            }
        }
        Ok(out)
    }

    /// Restore what `state_tensors` and `steps` saved. Every parameter must
    /// have both moments or neither, shaped like the parameter.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: usize) -> Result<()> {
        for (p, s) in self.params.iter().zip(self.states.iter_mut()) {
            let m = tensors.get(&format!("{}.exp_avg", p.name));
            let v = tensors.get(&format!("{}.exp_avg_sq", p.name));
            *s = match (m, v) {
                (None, None) => AdamWState::default(),
                (Some(m), Some(v)) if m.shape() == p.var.shape() => AdamWState::from_tensors(m, v)?,
                _ => {
                    return Err(Error::input(format!(
                        "optimiser state of {} is incomplete or has the wrong shape",
                        p.name
                    )));
                }
            };
        }
        self.steps = steps;
        Ok(())
    }

    pub fn step(&mut self, grads: &GradStore, h: StepHypers) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let base = AdamWStep {
            lr: h.lr,
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            weight_decay: h.weight_decay,
            debias1: 1.0 - h.beta1.powi(t),
            debias2: 1.0 - h.beta2.powi(t),
        };
        self.params
            .par_iter()
            .zip(self.states.par_iter_mut())
            .try_for_each(|(param, state)| {
                let Some(g) = grads.get(param.var.as_tensor()) else {
                    return Ok(());
                };
                let step = AdamWStep {
                    weight_decay: if param.weight_decay {
                        h.weight_decay
                    } else {
                        0.0
                    },
                    ..base
                };
                adamw_update(&param.var, g, state, &step)
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};

    fn param(name: &str, values: &[f64], decay: bool) -> TrainParam {
        let t = Tensor::new(values, &Device::Cpu).unwrap();
        TrainParam {
            name: name.into(),
            var: Var::from_tensor(&t).unwrap(),
            weight_decay: decay,
        }
    }

    /// The same update written out in scalars.
    fn reference(p0: f64, grads: &[f64], hs: &[StepHypers], decay: bool) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, (g, h)) in grads.iter().zip(hs).enumerate() {
            let t = t as i32 + 1;
            if decay {
                p *= 1.0 - h.lr * h.weight_decay;
            }
            m = h.beta1 * m + (1.0 - h.beta1) * g;
            v = h.beta2 * v + (1.0 - h.beta2) * g * g;
            p -= h.lr * (m / (1.0 - h.beta1.powi(t)))
                / ((v / (1.0 - h.beta2.powi(t))).sqrt() + h.eps);
        }
        p
    }

    #[test]
    fn matches_the_scalar_formula_with_scheduled_beta1() {
        // Loss = sum(c * p), so the gradient is c whatever p is.
        let decayed = param("w", &[1.0, -2.0], true);
        let plain = param("b", &[0.5, 3.0], false);
        let mut opt = AdamW::new(vec![decayed.clone(), plain.clone()]);
        let c = Tensor::new(&[0.3f64, -1.7], &Device::Cpu).unwrap();
        let hs: Vec<StepHypers> = (0..4)
            .map(|i| StepHypers {
                lr: 0.01 * (i + 1) as f64,
                beta1: 0.95 - 0.03 * i as f64,
                beta2: 0.99,
                eps: 1e-5,
                weight_decay: 0.1,
            })
            .collect();
        for h in &hs {
            let loss = ((decayed.var.as_tensor() * &c).unwrap().sum_all().unwrap()
                + (plain.var.as_tensor() * &c).unwrap().sum_all().unwrap())
            .unwrap();
            opt.step(&loss.backward().unwrap(), *h).unwrap();
        }
        assert_eq!(opt.steps(), 4);
        let got_w: Vec<f64> = decayed.var.as_tensor().to_vec1().unwrap();
        let got_b: Vec<f64> = plain.var.as_tensor().to_vec1().unwrap();
        for (i, (p0, g)) in [(1.0, 0.3), (-2.0, -1.7)].into_iter().enumerate() {
            let want = reference(p0, &[g; 4], &hs, true);
            assert!((got_w[i] - want).abs() < 1e-12, "{} vs {want}", got_w[i]);
        }
        for (i, (p0, g)) in [(0.5, 0.3), (3.0, -1.7)].into_iter().enumerate() {
            let want = reference(p0, &[g; 4], &hs, false);
            assert!((got_b[i] - want).abs() < 1e-12, "{} vs {want}", got_b[i]);
        }
    }

    #[test]
    fn params_without_gradient_are_left_alone() {
        let used = param("used", &[1.0], true);
        let unused = param("unused", &[2.0], true);
        let mut opt = AdamW::new(vec![used.clone(), unused.clone()]);
        let loss = used.var.as_tensor().sum_all().unwrap();
        let h = StepHypers {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-5,
            weight_decay: 0.01,
        };
        opt.step(&loss.backward().unwrap(), h).unwrap();
        assert_eq!(unused.var.as_tensor().to_vec1::<f64>().unwrap(), [2.0]);
        assert_ne!(used.var.as_tensor().to_vec1::<f64>().unwrap(), [1.0]);
    }
}
