//! The training plan of a fold: which parameters the optimiser steps, with
//! which learning rate per group, at every step.
//!
//! `recipe = "fit"` is one phase on the configured one-cycle / flat-cos
//! schedule: every parameter in one group, or, for a pretrained body under
//! fastai's head, the head and the body's norms only (fastai's `vision_learner`
//! hands back a frozen learner, and `fit_one_cycle` does not unfreeze it).
//!
//! `recipe = "fine-tune"` is fastai's `Learner.fine_tune(epochs, base_lr,
//! freeze_epochs, lr_mult, pct_start, div)` (learner.py / callback/schedule.py):
//! 1. `freeze()`; `fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99)`:
//!    only the head and the body's norm parameters train (`train_bn=True`); the
//!    groups' peaks are `slice(base_lr)` = [base_lr/10, base_lr] (body, head).
//! 2. `base_lr /= 2`; `unfreeze()`; `fit_one_cycle(epochs, slice(base_lr/lr_mult,
//!    base_lr), pct_start, div)`: peaks `even_mults` = [base_lr/lr_mult, base_lr].
//!
//! `freeze` and `unfreeze` clear the optimiser's state (fastai's `freeze_to`
//! calls `opt.clear_state()`), so each phase starts a fresh optimiser.
//! `training.epochs` counts both phases: fastai's `fine_tune(n, freeze_epochs=f)`
//! is `epochs = f + n` here.

use crate::config::{Recipe, TrainingConfig};
use crate::error::{Error, Result};
use crate::models::{Classifier, TransferGroups};
use crate::train::optim::{Lr, OptimSettings, Optimizer};
use crate::train::params::TrainParam;
use crate::train::schedule::one_cycle;

/// fastai's `fine_tune` runs the frozen cycle with `pct_start=0.99`.
const FROZEN_PCT_START: f64 = 0.99;

/// A stretch of steps with one optimiser.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub first_step: usize,
    pub steps: usize,
    /// Only the head and the body's norm parameters train.
    pub frozen: bool,
    /// Peak lr of each parameter group: [all] for fit, [body, head] for
    /// fine-tune (the ends of the slice a body split in two spreads over).
    pub group_lrs: Vec<f64>,
}

/// Every phase of a fold and the (lr of the last group, mom) of every step.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPlan {
    pub phases: Vec<Phase>,
    pub schedule: Vec<(f64, f64)>,
}

impl TrainingPlan {
    /// The plan of `t` over `steps_per_epoch` steps per epoch; `fit_schedule`
    /// is the fit recipe's whole schedule (`fit::planned_schedule`'s).
    pub fn new(
        t: &TrainingConfig,
        steps_per_epoch: usize,
        fit_schedule: impl FnOnce() -> Vec<(f64, f64)>,
    ) -> Self {
        match t.recipe {
            Recipe::Fit => TrainingPlan {
                phases: vec![Phase {
                    first_step: 0,
                    steps: t.epochs * steps_per_epoch,
                    frozen: false,
                    group_lrs: vec![1.0],
                }],
                schedule: fit_schedule(),
            },
            Recipe::FineTune => fine_tune(t, steps_per_epoch),
        }
    }

    /// The phase that step `step` belongs to (the last one past the end).
    pub fn phase_at(&self, step: usize) -> &Phase {
        self.phases
            .iter()
            .rev()
            .find(|p| p.first_step <= step)
            .unwrap_or(&self.phases[0])
    }

    /// The optimiser of `step`'s phase, fresh (no state).
    pub fn optimizer_at(
        &self,
        step: usize,
        model: &dyn Classifier,
        settings: OptimSettings,
    ) -> Result<Optimizer> {
        let phase = self.phase_at(step);
        if phase.group_lrs.len() == 1 {
            return match model.transfer_groups() {
                None => Optimizer::new(model.trainable().to_vec(), settings),
                // fastai's vision_learner returns a frozen learner: a plain
                // fit_one_cycle trains the head and the body's norms, one lr for all.
                Some(g) => Optimizer::with_groups(
                    vec![g.body_norms.clone(), g.head.clone()],
                    &[1.0, 1.0],
                    settings,
                ),
            };
        }
        let groups = model.transfer_groups().ok_or_else(|| {
            Error::input(
                "training.recipe = \"fine-tune\" needs a model with a pretrained body and fastai's head\nfix: set model.pretrained, or use recipe = \"fit\"",
            )
        })?;
        let (params, lrs) = phase_groups(phase, groups)?;
        Optimizer::with_groups(params, &lrs, settings)
    }

    /// A fresh optimiser when `step` starts a phase after the first (the
    /// unfreeze), None otherwise.
    pub fn optimizer_starting_at(
        &self,
        step: usize,
        model: &dyn Classifier,
        settings: OptimSettings,
    ) -> Result<Option<Optimizer>> {
        if step > 0 && self.phases.iter().any(|p| p.first_step == step) {
            return self.optimizer_at(step, model, settings).map(Some);
        }
        Ok(None)
    }

    /// Whether an optimiser state saved after `step - 1` steps still applies at
    /// `step` (false at a phase start: fastai clears the state there).
    pub fn keeps_state_at(&self, step: usize) -> bool {
        self.phase_at(step).first_step != step
    }
}

/// The parameter groups a fine-tune phase steps and their peak lrs. Frozen:
/// the body's norms and the head, [lr/10, lr] (fastai's `slice(lr)` gives
/// every body group lr/10, so the body's halves need not be told apart).
/// Unfrozen: each body part and the head; where fastai splits the body in two
/// (resnets, xresnets) the phase's `slice(a, b)` spreads over three groups as
/// fastai's `even_mults`: [a, sqrt(a b), b].
fn phase_groups(
    phase: &Phase,
    groups: &TransferGroups,
) -> Result<(Vec<Vec<TrainParam>>, Vec<f64>)> {
    let mut params = if phase.frozen {
        vec![groups.body_norms.clone()]
    } else {
        groups.body_parts.clone()
    };
    params.push(groups.head.clone());
    let lrs = if params.len() == phase.group_lrs.len() {
        phase.group_lrs.clone()
    } else {
        let last = phase.group_lrs.len() - 1;
        Lr::Slice {
            start: Some(phase.group_lrs[0]),
            stop: phase.group_lrs[last],
        }
        .per_group(params.len())?
    };
    Ok((params, lrs))
}

/// fastai's `fine_tune` over `t.epochs` epochs of which `t.freeze_epochs` frozen.
fn fine_tune(t: &TrainingConfig, steps_per_epoch: usize) -> TrainingPlan {
    let frozen_steps = t.freeze_epochs * steps_per_epoch;
    let unfrozen_steps = t.epochs.saturating_sub(t.freeze_epochs) * steps_per_epoch;
    let group_lrs = |lr: Lr| lr.per_group(2).expect("validated learning rates");
    let frozen_lrs = group_lrs(Lr::Slice {
        start: None,
        stop: t.lr,
    });
    let base = t.lr / 2.0;
    let unfrozen_lrs = group_lrs(Lr::Slice {
        start: Some(base / t.lr_mult),
        stop: base,
    });
    let mut schedule = one_cycle(
        frozen_steps,
        t.lr,
        t.div,
        t.div_final,
        FROZEN_PCT_START,
        t.moms,
    );
    schedule.extend(one_cycle(
        unfrozen_steps,
        base,
        t.fine_tune_div,
        t.div_final,
        t.pct_start(),
        t.moms,
    ));
    let mut phases = Vec::new();
    if frozen_steps > 0 {
        phases.push(Phase {
            first_step: 0,
            steps: frozen_steps,
            frozen: true,
            group_lrs: frozen_lrs,
        });
    }
    phases.push(Phase {
        first_step: frozen_steps,
        steps: unfrozen_steps,
        frozen: false,
        group_lrs: unfrozen_lrs,
    });
    TrainingPlan { phases, schedule }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{HeadKind, efficientnet::EfficientNetLite0};
    use crate::rng::Rng;
    use candle_core::Device;
    use candle_nn::VarMap;

    fn fine_tune_config() -> TrainingConfig {
        TrainingConfig {
            recipe: Recipe::FineTune,
            epochs: 3,
            freeze_epochs: 1,
            lr: 2e-3,
            ..Default::default()
        }
    }

    /// fastai 2.8.12's `fine_tune(2, base_lr=2e-3)` recorded step by step by
    /// tests/fixtures/make_fine_tune_reference.py.
    #[test]
    fn resnet_bodies_get_fastais_two_body_groups_once_unfrozen() {
        let model = crate::models::resnet::ResNet::with_head(
            crate::models::resnet::ResNetDepth::R18,
            2,
            HeadKind::Fastai,
            &VarMap::new(),
            &Device::Cpu,
            Rng::new(1),
        )
        .unwrap();
        let groups = model.transfer_groups().unwrap();
        let plan = TrainingPlan::new(&fine_tune_config(), 2, Vec::new);
        let (params, lrs) = phase_groups(plan.phase_at(0), groups).unwrap();
        assert_eq!(params.len(), 2, "frozen: body norms, head");
        assert!(
            (lrs[0] / 2e-4 - 1.0).abs() < 1e-12 && lrs[1] == 2e-3,
            "{lrs:?}"
        );
        let (params, lrs) = phase_groups(plan.phase_at(2), groups).unwrap();
        let names = |g: &[TrainParam]| g.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(params.len(), 3);
        assert!(names(&params[0]).contains(&"layer2.1.conv2.weight".to_string()));
        assert!(names(&params[0]).contains(&"conv1.weight".to_string()));
        assert!(names(&params[1]).contains(&"layer3.0.conv1.weight".to_string()));
        assert!(!names(&params[1]).iter().any(|n| n.starts_with("layer2")));
        assert_eq!(params[0].len() + params[1].len(), groups.body.len());
        // fastai: fine_tune's unfrozen slice(1e-3/100, 1e-3) over 3 groups.
        let (a, b): (f64, f64) = (1e-5, 1e-3);
        for (got, want) in lrs.iter().zip([a, (a * b).sqrt(), b]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{lrs:?}");
        }
    }

    #[test]
    fn fine_tune_matches_fastais_recorded_lrs_moms_and_freezing() {
        let text = include_str!("../../tests/fixtures/fine_tune_fastai.json");
        let reference: serde_json::Value = serde_json::from_str(text).unwrap();
        let spe = reference["steps_per_epoch"].as_u64().unwrap() as usize;
        let steps = reference["steps"].as_array().unwrap();
        let plan = TrainingPlan::new(&fine_tune_config(), spe, Vec::new);
        assert_eq!(plan.schedule.len(), steps.len());
        for (i, want) in steps.iter().enumerate() {
            let phase = plan.phase_at(i);
            let (lr, mom) = plan.schedule[i];
            let lrs: Vec<f64> = phase
                .group_lrs
                .iter()
                .map(|g| lr * g / phase.group_lrs[1])
                .collect();
            let want_lrs: Vec<f64> = want["lr"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (g, w) in lrs.iter().zip(&want_lrs) {
                // fastai keeps the phase boundaries in float32.
                assert!(
                    (g / w - 1.0).abs() < 1e-6,
                    "step {i}: {lrs:?} vs {want_lrs:?}"
                );
            }
            let want_mom = want["mom"][0].as_f64().unwrap();
            assert!(
                (mom - want_mom).abs() < 1e-6,
                "step {i}: mom {mom} vs {want_mom}"
            );
            assert_eq!(
                phase.frozen,
                !want["body_conv_trains"].as_bool().unwrap(),
                "step {i}"
            );
            assert!(want["body_bn_trains"].as_bool().unwrap());
        }
        assert!(!plan.keeps_state_at(spe), "unfreezing clears the state");
        assert!(plan.keeps_state_at(spe + 1) && plan.keeps_state_at(1));
    }

    #[test]
    fn frozen_phase_steps_only_head_and_body_norms() {
        let vm = VarMap::new();
        let model =
            EfficientNetLite0::new(3, HeadKind::Fastai, &vm, &Device::Cpu, Rng::new(1)).unwrap();
        let plan = TrainingPlan::new(&fine_tune_config(), 2, Vec::new);
        let groups = model.transfer_groups().unwrap();
        let settings = OptimSettings::adam();
        let frozen = plan.optimizer_at(0, &model, settings).unwrap();
        let n_frozen = frozen.param_names().len();
        assert_eq!(n_frozen, groups.head.len() + groups.body_norms.len());
        assert!(
            frozen
                .param_names()
                .iter()
                .all(|n| n.starts_with("head.") || n.contains("_bn"))
        );
        assert!(
            plan.optimizer_starting_at(1, &model, settings)
                .unwrap()
                .is_none()
        );
        let thawed = plan
            .optimizer_starting_at(2, &model, settings)
            .unwrap()
            .unwrap();
        assert_eq!(thawed.param_names().len(), model.trainable().len());
    }

    #[test]
    fn fit_recipe_is_one_phase_with_its_schedule() {
        let t = TrainingConfig::default();
        let plan = TrainingPlan::new(&t, 4, || vec![(1.0, 0.9); 20]);
        assert_eq!(plan.phases.len(), 1);
        assert_eq!(plan.schedule.len(), 20);
        assert!(plan.keeps_state_at(7));
    }
}
