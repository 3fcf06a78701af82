//! fastai's optimisers (optimizer.py): SGD, Adam(W), RAdam, and Lookahead
//! around any of them (Ranger = Lookahead(RAdam)), with parameter groups and
//! savable state.
//!
//! One `Optimizer` type for all of them, so the fit loop only calls
//! `step(&grads, StepHypers { lr, mom })` with the schedule's values; `mom` is
//! fastai's `mom` hyper: SGD's momentum, beta1 for the Adam family.
//!
//! candle-nn's optimisers decay every variable (BatchNorm and biases too) and
//! have a fixed beta1, while fastai schedules beta1 per step and skips decay on
//! norm params and biases (`wd_bn_bias=False`); hence our own, on the in-place
//! multi-threaded `kernels::optim_step` updates.

mod adam;
pub mod groups;
mod lookahead;
mod radam;
mod sgd;
mod state;

pub use groups::{Lr, even_mults, split_params};
pub use lookahead::Lookahead;
pub use radam::rectification;

use crate::config::{OptimizerChoice, TrainingConfig};
use crate::error::{Error, Result};
use crate::kernels::{Buffer, Rule, optim_update};
use crate::train::params::TrainParam;
use candle_core::backprop::GradStore;
use rayon::prelude::*;

/// The hyper-parameters the schedule sets for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepHypers {
    /// The last parameter group's learning rate (fastai's reported lr); other
    /// groups step with this times their share (see `Optimizer::with_groups`).
    pub lr: f64,
    /// fastai's `mom`: momentum for SGD, beta1 for Adam and RAdam.
    pub mom: f64,
}

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// fastai's `SGD`; `nesterov` is torch's variant (fastai has none).
    Sgd { nesterov: bool },
    /// fastai's `Adam` (decoupled weight decay, i.e. AdamW).
    Adam,
    /// fastai's `RAdam` (rectified Adam), without its optional softplus `beta`.
    RAdam,
}

/// fastai's `Lookahead(opt, k, alpha)` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookaheadSettings {
    /// Steps between syncs of the slow weights.
    pub k: usize,
    /// How far the slow weights move towards the fast ones at a sync.
    pub alpha: f64,
}

/// What stays fixed for a whole fit (fastai's optimiser constructor arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimSettings {
    pub algorithm: Algorithm,
    /// The `mom` the optimiser is built with. Only SGD reads it here: 0 means no
    /// momentum buffer at all (fastai's `sgd_step`), so a scheduled mom has no effect.
    pub mom: f64,
    /// Second-moment decay (fastai `sqr_mom`), Adam and RAdam.
    pub sqr_mom: f64,
    pub eps: f64,
    /// Decoupled weight decay: `p *= 1 - lr*wd` before each step.
    pub wd: f64,
    /// Decay norm params and biases too (fastai's `wd_bn_bias`, default false).
    pub wd_bn_bias: bool,
    pub lookahead: Option<LookaheadSettings>,
}

impl OptimSettings {
    /// fastai's `SGD(mom=0., wd=0.)`.
    pub fn sgd() -> Self {
        OptimSettings {
            algorithm: Algorithm::Sgd { nesterov: false },
            mom: 0.0,
            sqr_mom: 0.0,
            eps: 0.0,
            wd: 0.0,
            wd_bn_bias: false,
            lookahead: None,
        }
    }

    /// fastai's `Adam(mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)`.
    pub fn adam() -> Self {
        OptimSettings {
            algorithm: Algorithm::Adam,
            mom: 0.9,
            sqr_mom: 0.99,
            eps: 1e-5,
            wd: 0.01,
            wd_bn_bias: false,
            lookahead: None,
        }
    }

    /// fastai's `RAdam(mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0., beta=0.)`.
    pub fn radam() -> Self {
        OptimSettings {
            algorithm: Algorithm::RAdam,
            wd: 0.0,
            ..Self::adam()
        }
    }

    /// fastai's `ranger(mom=0.95, wd=0.01, eps=1e-6)` = `Lookahead(RAdam(..), k=6, alpha=0.5)`.
    pub fn ranger() -> Self {
        OptimSettings {
            algorithm: Algorithm::RAdam,
            mom: 0.95,
            eps: 1e-6,
            wd: 0.01,
            lookahead: Some(LookaheadSettings { k: 6, alpha: 0.5 }),
            ..Self::adam()
        }
    }

    /// The settings a run's config asks for (the config resolves the defaults).
    pub fn from_config(t: &TrainingConfig) -> Self {
        let base = match t.optimizer {
            OptimizerChoice::Adamw => Self::adam(),
            OptimizerChoice::Sgd => OptimSettings {
                algorithm: Algorithm::Sgd {
                    nesterov: t.nesterov,
                },
                ..Self::sgd()
            },
            OptimizerChoice::Radam => Self::radam(),
            OptimizerChoice::Ranger => Self::ranger(),
        };
        let lookahead =
            (t.lookahead || t.optimizer == OptimizerChoice::Ranger).then_some(LookaheadSettings {
                k: t.lookahead_k,
                alpha: t.lookahead_alpha,
            });
        OptimSettings {
            mom: t.mom(),
            sqr_mom: t.beta2,
            eps: t.eps(),
            wd: t.weight_decay(),
            wd_bn_bias: t.wd_bn_bias,
            lookahead,
            ..base
        }
    }

    /// Settings no step can run with (the config names the key for users; this
    /// guards other callers).
    fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Internal(format!("optimiser settings: {what}")));
        if !(0.0..1.0).contains(&self.mom) {
            return bad("mom must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.sqr_mom) {
            return bad("sqr_mom must be in [0, 1)");
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad("eps must be a finite number >= 0");
        }
        if !(self.wd.is_finite() && self.wd >= 0.0) {
            return bad("wd must be a finite number >= 0");
        }
        if let Algorithm::Sgd { nesterov: true } = self.algorithm
            && self.mom == 0.0
        {
            return bad("nesterov needs a momentum above 0");
        }
        if let Some(la) = self.lookahead
            && (la.k == 0 || !(la.alpha > 0.0 && la.alpha <= 1.0))
        {
            return bad("lookahead needs k >= 1 and alpha in (0, 1]");
        }
        Ok(())
    }
}

/// One parameter and its optimiser state.
struct Slot {
    param: TrainParam,
    group: usize,
    /// fastai's per-parameter `step` (counts only the steps it had a gradient).
    step: u64,
    /// The rule's buffers (fastai's `grad_avg`, `sqr_avg`), created at the first step.
    buffers: Vec<Buffer>,
}

pub struct Optimizer {
    settings: OptimSettings,
    slots: Vec<Slot>,
    /// Each group's lr as a share of the last group's.
    lr_mults: Vec<f64>,
    lookahead: Option<Lookahead>,
}

impl Optimizer {
    /// All parameters in one group.
    pub fn new(params: Vec<TrainParam>, settings: OptimSettings) -> Result<Self> {
        Self::with_groups(vec![params], &[1.0], settings)
    }

    /// Parameters in groups (e.g. body, head) with their own peak learning rates
    /// `group_lrs` (from `Lr::per_group`). The schedule is built on the LAST
    /// group's lr; group g steps with `StepHypers::lr * group_lrs[g] / group_lrs[last]`.
    /// That is exactly fastai's per-group schedules, because every fastai lr
    /// schedule is proportional to its lr_max.
    pub fn with_groups(
        groups: Vec<Vec<TrainParam>>,
        group_lrs: &[f64],
        settings: OptimSettings,
    ) -> Result<Self> {
        settings.check()?;
        if groups.len() != group_lrs.len() || groups.is_empty() {
            return Err(Error::Internal(format!(
                "optimiser: {} parameter groups but {} learning rates",
                groups.len(),
                group_lrs.len()
            )));
        }
        if let Some(lr) = group_lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            return Err(Error::Internal(format!(
                "optimiser: group learning rate {lr} is not a positive number"
            )));
        }
        let last = group_lrs[group_lrs.len() - 1];
        let lr_mults = group_lrs.iter().map(|lr| lr / last).collect();
        let slots = groups
            .into_iter()
            .enumerate()
            .flat_map(|(group, params)| {
                params.into_iter().map(move |param| Slot {
                    param,
                    group,
                    step: 0,
                    buffers: Vec::new(),
                })
            })
            .collect();
        Ok(Optimizer {
            settings,
            slots,
            lr_mults,
            lookahead: settings.lookahead.map(|s| Lookahead::new(s.k, s.alpha)),
        })
    }

    pub fn settings(&self) -> &OptimSettings {
        &self.settings
    }

    /// The names of the parameters this optimiser steps, first group first.
    pub fn param_names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.param.name.as_str()).collect()
    }

    /// Steps taken so far (by the parameters that had a gradient every step).
    pub fn steps(&self) -> u64 {
        self.slots.iter().map(|s| s.step).max().unwrap_or(0)
    }

    /// One update of every parameter that has a gradient in `grads`, in place,
    /// parameters in parallel (and large ones split across threads):
    /// decoupled weight decay, then the algorithm's step; then Lookahead's
    /// bookkeeping, if any.
    pub fn step(&mut self, grads: &GradStore, h: StepHypers) -> Result<()> {
        if !(h.lr.is_finite() && h.lr >= 0.0 && (0.0..1.0).contains(&h.mom)) {
            return Err(Error::Internal(format!(
                "optimiser step: lr {} / mom {} out of range",
                h.lr, h.mom
            )));
        }
        if let Some(la) = &mut self.lookahead {
            la.before_step(self.slots.iter().map(|s| &s.param))?;
        }
        let (settings, lr_mults) = (&self.settings, &self.lr_mults);
        self.slots.par_iter_mut().try_for_each(|slot| {
            let Some(g) = grads.get(slot.param.var.as_tensor()) else {
                return Ok(());
            };
            slot.step += 1;
            let lr = h.lr * lr_mults[slot.group];
            let decays = settings.wd_bn_bias || slot.param.weight_decay;
            let decay = if decays { 1.0 - lr * settings.wd } else { 1.0 };
            let rule = rule(settings, lr, decay, h.mom, slot.step);
            optim_update(&slot.param.var, g, &mut slot.buffers, &rule)
        })?;
        if let Some(la) = &mut self.lookahead {
            la.after_step(self.slots.iter().map(|s| &s.param))?;
        }
        Ok(())
    }
}

/// The kernel rule of one parameter's step `t` (from 1).
fn rule(s: &OptimSettings, lr: f64, decay: f64, mom: f64, t: u64) -> Rule {
    match s.algorithm {
        Algorithm::Sgd { nesterov } => sgd::rule(lr, decay, s.mom != 0.0, mom, nesterov),
        Algorithm::Adam => adam::rule(lr, decay, mom, s.sqr_mom, s.eps, t),
        Algorithm::RAdam => radam::rule(lr, decay, mom, s.sqr_mom, s.eps, t),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Parameters with a constant gradient, for checking updates by hand.
    use super::*;
    use candle_core::{Device, Tensor, Var};

    pub fn param(name: &str, values: &[f64], decay: bool) -> TrainParam {
        let t = Tensor::new(values, &Device::Cpu).unwrap();
        TrainParam {
            name: name.into(),
            var: Var::from_tensor(&t).unwrap(),
            weight_decay: decay,
        }
    }

    /// The gradients of `sum_i c_i * p_i` over the params: `c` whatever p is.
    pub fn grads(params: &[&TrainParam], c: &[f64]) -> GradStore {
        let c = Tensor::new(c, &Device::Cpu).unwrap();
        let mut loss = Tensor::zeros((), candle_core::DType::F64, &Device::Cpu).unwrap();
        for p in params {
            loss = (loss + (p.var.as_tensor() * &c).unwrap().sum_all().unwrap()).unwrap();
        }
        loss.backward().unwrap()
    }

    pub fn values(p: &TrainParam) -> Vec<f64> {
        p.var.as_tensor().to_vec1().unwrap()
    }

    pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn decay_skips_norm_and_bias_unless_wd_bn_bias() {
        // SGD, lr 0.1, wd 0.5, gradient 1: decayed p = p*(1 - 0.05) - 0.1.
        for wd_bn_bias in [false, true] {
            let w = param("w", &[2.0], true);
            let b = param("b", &[2.0], false);
            let settings = OptimSettings {
                wd: 0.5,
                wd_bn_bias,
                ..OptimSettings::sgd()
            };
            let mut opt = Optimizer::new(vec![w.clone(), b.clone()], settings).unwrap();
            let h = StepHypers { lr: 0.1, mom: 0.9 };
            opt.step(&grads(&[&w, &b], &[1.0]), h).unwrap();
            assert_close(&values(&w), &[1.8], 1e-15);
            let want_b = if wd_bn_bias { 1.8 } else { 1.9 };
            assert_close(&values(&b), &[want_b], 1e-15);
        }
    }

    #[test]
    fn params_without_gradient_are_left_alone() {
        let used = param("used", &[1.0], true);
        let unused = param("unused", &[2.0], true);
        let mut opt =
            Optimizer::new(vec![used.clone(), unused.clone()], OptimSettings::adam()).unwrap();
        let loss = used.var.as_tensor().sum_all().unwrap();
        let h = StepHypers { lr: 0.1, mom: 0.9 };
        opt.step(&loss.backward().unwrap(), h).unwrap();
        assert_eq!(values(&unused), [2.0]);
        assert_ne!(values(&used), [1.0]);
        assert_eq!(opt.steps(), 1);
    }

    #[test]
    fn group_lrs_scale_the_scheduled_lr() {
        // Plain SGD: p -= lr_g * g. Groups at lr 1e-3 and 1e-2; the schedule says 0.5
        // for the last group, so the first steps with 0.05.
        let body = param("body", &[1.0], true);
        let head = param("head", &[1.0], true);
        let mut opt = Optimizer::with_groups(
            vec![vec![body.clone()], vec![head.clone()]],
            &[1e-3, 1e-2],
            OptimSettings::sgd(),
        )
        .unwrap();
        let h = StepHypers { lr: 0.5, mom: 0.0 };
        opt.step(&grads(&[&body, &head], &[2.0]), h).unwrap();
        assert_close(&values(&body), &[1.0 - 0.05 * 2.0], 1e-15);
        assert_close(&values(&head), &[1.0 - 0.5 * 2.0], 1e-15);
    }

    #[test]
    fn bad_settings_and_hypers_are_errors() {
        let p = || vec![param("p", &[1.0], true)];
        let nesterov_without_mom = OptimSettings {
            algorithm: Algorithm::Sgd { nesterov: true },
            ..OptimSettings::sgd()
        };
        assert!(Optimizer::new(p(), nesterov_without_mom).is_err());
        let bad_k = OptimSettings {
            lookahead: Some(LookaheadSettings { k: 0, alpha: 0.5 }),
            ..OptimSettings::ranger()
        };
        assert!(Optimizer::new(p(), bad_k).is_err());
        let bad_mom = OptimSettings {
            mom: 1.0,
            ..OptimSettings::adam()
        };
        assert!(Optimizer::new(p(), bad_mom).is_err());
        assert!(Optimizer::with_groups(vec![p()], &[1.0, 2.0], OptimSettings::adam()).is_err());
        assert!(Optimizer::with_groups(vec![p()], &[0.0], OptimSettings::adam()).is_err());
        let params = p();
        let mut opt = Optimizer::new(params.clone(), OptimSettings::adam()).unwrap();
        let g = grads(&[&params[0]], &[1.0]);
        assert!(
            opt.step(
                &g,
                StepHypers {
                    lr: f64::NAN,
                    mom: 0.9
                }
            )
            .is_err()
        );
        assert!(opt.step(&g, StepHypers { lr: 0.1, mom: 1.5 }).is_err());
    }

    #[test]
    fn config_defaults_are_fastais() {
        let mut t = TrainingConfig::default();
        assert_eq!(OptimSettings::from_config(&t), OptimSettings::adam());
        t.optimizer = OptimizerChoice::Sgd;
        // SGD reads neither sqr_mom nor eps.
        let sgd = OptimSettings::from_config(&t);
        let fields = |s: OptimSettings| (s.algorithm, s.mom, s.wd, s.wd_bn_bias, s.lookahead);
        assert_eq!(fields(sgd), fields(OptimSettings::sgd()));
        t.optimizer = OptimizerChoice::Radam;
        assert_eq!(OptimSettings::from_config(&t), OptimSettings::radam());
        t.optimizer = OptimizerChoice::Ranger;
        assert_eq!(OptimSettings::from_config(&t), OptimSettings::ranger());
        t.weight_decay = Some(0.2);
        t.wd_bn_bias = true;
        let s = OptimSettings::from_config(&t);
        assert_eq!((s.wd, s.wd_bn_bias, s.eps), (0.2, true, 1e-6));
    }
}
