//! fastai's `Lookahead(opt, k=6, alpha=0.5)`: slow weights copied at the first
//! `step()` (before the inner update); after every k-th inner step the slow
//! weights move `alpha` of the way to the fast ones and the fast weights are
//! reset to them. Ranger is Lookahead around RAdam.

use crate::error::{Error, Result};
use crate::kernels::{Buffer, lookahead_sync};
use crate::train::params::TrainParam;
use rayon::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct Lookahead {
    pub(super) k: usize,
    pub(super) alpha: f64,
    /// Inner steps taken (fastai's `count`).
    pub(super) count: u64,
    /// One per parameter, in the optimiser's order; None before the first step.
    pub(super) slow: Option<Vec<Buffer>>,
}

impl Lookahead {
    pub fn new(k: usize, alpha: f64) -> Self {
        Lookahead {
            k,
            alpha,
            count: 0,
            slow: None,
        }
    }

    /// Takes the slow copy at the first step, from the pre-update weights.
    pub(super) fn before_step<'a>(
        &mut self,
        params: impl Iterator<Item = &'a TrainParam>,
    ) -> Result<()> {
        if self.slow.is_none() {
            let copies = params
                .map(|p| Buffer::from_tensor(p.var.as_tensor()))
                .collect::<candle_core::Result<Vec<_>>>()?;
            self.slow = Some(copies);
        }
        Ok(())
    }

    /// Counts the step and syncs every k-th. fastai syncs every parameter,
    /// including those without a gradient this step.
    pub(super) fn after_step<'a>(
        &mut self,
        params: impl Iterator<Item = &'a TrainParam>,
    ) -> Result<()> {
        self.count += 1;
        if !self.count.is_multiple_of(self.k as u64) {
            return Ok(());
        }
        let slow = self
            .slow
            .as_mut()
            .ok_or_else(|| Error::Internal("lookahead: sync before the slow copy".into()))?;
        let params: Vec<&TrainParam> = params.collect();
        if params.len() != slow.len() {
            return Err(Error::Internal(format!(
                "lookahead: {} slow copies for {} parameters",
                slow.len(),
                params.len()
            )));
        }
        let alpha = self.alpha;
        params
            .into_par_iter()
            .zip(slow.par_iter_mut())
            .try_for_each(|(p, s)| lookahead_sync(&p.var, s, alpha))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{LookaheadSettings, OptimSettings, Optimizer, StepHypers};

    #[test]
    fn syncs_every_k_steps_from_the_pre_update_weights() {
        // Plain SGD lr 0.1, g = 1: each inner step moves p by -0.1. k = 3, alpha 0.5.
        // Slow copy 1.0 at the first step. Steps 1-3: fast 0.9, 0.8, 0.7; sync:
        // slow = 1 + 0.5*(0.7 - 1) = 0.85 = fast. Steps 4-6: 0.75, 0.65, 0.55;
        // sync: slow = 0.85 + 0.5*(0.55 - 0.85) = 0.7 = fast. Step 7: 0.6.
        let p = param("w", &[1.0], true);
        let frozen = param("frozen", &[5.0], true);
        let s = OptimSettings {
            lookahead: Some(LookaheadSettings { k: 3, alpha: 0.5 }),
            ..OptimSettings::sgd()
        };
        let mut opt = Optimizer::new(vec![p.clone(), frozen.clone()], s).unwrap();
        let h = StepHypers { lr: 0.1, mom: 0.0 };
        let mut seen = Vec::new();
        for _ in 0..7 {
            opt.step(&grads(&[&p], &[1.0]), h).unwrap();
            seen.push(values(&p)[0]);
        }
        let want = [0.9, 0.8, 0.85, 0.75, 0.65, 0.7, 0.6];
        assert_close(&seen, &want, 1e-12);
        // A parameter without gradients has slow == fast, so syncs leave it.
        assert_eq!(values(&frozen), [5.0]);
    }

    #[test]
    fn ranger_is_lookahead_around_radam() {
        // Ranger's defaults: k 6, alpha 0.5, RAdam mom 0.95, eps 1e-6, wd 0.01.
        // g = 1, lr 0.1, no decay (a bias): steps 1-5 move p by -0.1 each (RAdam's
        // unrectified phase, m/d1 = 1); step 6 by -0.1*rect_6/(1 + 1e-6); then the
        // sync pulls p halfway back to the slow copy 1.0.
        let p = param("b", &[1.0], false);
        let mut opt = Optimizer::new(vec![p.clone()], OptimSettings::ranger()).unwrap();
        let h = StepHypers { lr: 0.1, mom: 0.95 };
        for _ in 0..6 {
            opt.step(&grads(&[&p], &[1.0]), h).unwrap();
        }
        let fast = 0.5 - 0.1 * 0.08167919578200449 / 1.000001;
        assert_close(&values(&p), &[1.0 + 0.5 * (fast - 1.0)], 1e-14);
    }
}
