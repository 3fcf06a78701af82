//! The published variant of progressive label correction
//! (`label_correction.method = "ratio"`): Zhang et al., ICLR 2021, "Learning
//! with Feature-Dependent Label Noise: A Progressive Approach", as its public
//! code does it (fastai-semantics section 9):
//!
//! - each training item's softmax from its training forward passes is kept
//!   for the last `window` epochs, and `f` is their mean;
//! - at the end of every epoch after the warm-up, an item whose
//!   `f[label] / max_j f[j]` is below delta is relabelled to `argmax f`;
//! - when fewer than `min_changed` of the items changed in an epoch, delta
//!   rises by `delta_step` (at most `delta_max`), so later epochs correct
//!   more readily.
//!
//! Unlike the default rule (`plc`), which looks at one noisy forward pass per
//! item, the averaged softmax smooths out augmentation and the epoch-to-epoch
//! swings of a model still learning. A `SetTheta` sets delta.

use crate::config::LabelCorrectionConfig;
use crate::error::{Error, Result};
use crate::train::plc::Correction;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

const HISTORY: &str = "history";
const SEEN: &str = "seen";
const DELTA: &str = "delta";

/// The ratio rule's memory and threshold for one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioCorrector {
    window: usize,
    n_items: usize,
    n_classes: usize,
    /// `[slot][item][class]` softmax rows, slot = epoch % window.
    history: Vec<f32>,
    /// `[slot][item]`: whether the item was trained on in that slot's epoch
    /// (drop-last leaves some out).
    seen: Vec<bool>,
    delta: f64,
    delta_step: f64,
    delta_max: f64,
    min_changed: f64,
    /// The first step after the warm-up.
    first_step: usize,
}

impl RatioCorrector {
    pub fn new(
        cfg: &LabelCorrectionConfig,
        n_items: usize,
        n_classes: usize,
        total_steps: usize,
    ) -> Self {
        let window = cfg.window.max(1);
        RatioCorrector {
            window,
            n_items,
            n_classes,
            history: vec![0.0; window * n_items * n_classes],
            seen: vec![false; window * n_items],
            delta: cfg.delta_start,
            delta_step: cfg.delta_step,
            delta_max: cfg.delta_max,
            min_changed: cfg.min_changed,
            first_step: (cfg.warmup * total_steps as f64).ceil() as usize,
        }
    }

    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// A hand-set delta (`SetTheta`); later raises continue from it.
    pub fn set_delta(&mut self, delta: f64) {
        self.delta = delta;
    }

    /// Forget what the slot `epoch` reuses held (the epoch `window` ago).
    pub fn begin_epoch(&mut self, epoch: usize) {
        let slot = epoch % self.window;
        self.seen[slot * self.n_items..(slot + 1) * self.n_items].fill(false);
    }

    /// Keep the softmax rows of a training batch (`items[i]` is the training
    /// index of `probs[i]`).
    pub fn record(&mut self, epoch: usize, items: &[usize], probs: &[Vec<f32>]) {
        let slot = epoch % self.window;
        for (&item, p) in items.iter().zip(probs) {
            if item >= self.n_items || p.len() != self.n_classes {
                continue;
            }
            let at = (slot * self.n_items + item) * self.n_classes;
            self.history[at..at + self.n_classes].copy_from_slice(p);
            self.seen[slot * self.n_items + item] = true;
        }
    }

    /// The mean softmax of `item` over the window's epochs it was seen in.
    fn averaged(&self, item: usize) -> Option<Vec<f32>> {
        let mut sum = vec![0.0f32; self.n_classes];
        let mut count = 0;
        for slot in 0..self.window {
            if self.seen[slot * self.n_items + item] {
                let at = (slot * self.n_items + item) * self.n_classes;
                for (s, &p) in sum.iter_mut().zip(&self.history[at..at + self.n_classes]) {
                    *s += p;
                }
                count += 1;
            }
        }
        (count > 0).then(|| sum.iter().map(|s| s / count as f32).collect())
    }

    /// After an epoch that ended at `steps_done`: the items to relabel (none
    /// during the warm-up), then delta's raise if few changed. `p_old`/`p_new`
    /// of each correction are the averaged probabilities.
    pub fn end_epoch(&mut self, steps_done: usize, labels: &[u32]) -> Vec<Correction> {
        if steps_done < self.first_step {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (item, &label) in labels.iter().enumerate().take(self.n_items) {
            let Some(f) = self.averaged(item) else {
                continue;
            };
            let old = label as usize;
            let Some(&p_old) = f.get(old) else {
                continue;
            };
            let new = crate::train::metrics::predicted_classes(&[f.as_slice()])[0];
            let p_new = f[new];
            if new != old && p_new > 0.0 && ((p_old / p_new) as f64) < self.delta {
                out.push(Correction {
                    item,
                    old,
                    new,
                    p_old,
                    p_new,
                });
            }
        }
        if (out.len() as f64) < self.min_changed * self.n_items as f64 {
            self.delta = (self.delta + self.delta_step).min(self.delta_max);
        }
        out
    }

    /// What a checkpoint keeps, so a resumed fold corrects as an
    /// uninterrupted one would.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let cpu = Device::Cpu;
        let seen: Vec<u8> = self.seen.iter().map(|&s| u8::from(s)).collect();
        Ok(HashMap::from([
            (
                HISTORY.to_string(),
                Tensor::from_vec(self.history.clone(), self.history.len(), &cpu)?,
            ),
            (
                SEEN.to_string(),
                Tensor::from_vec(seen, self.seen.len(), &cpu)?,
            ),
            (DELTA.to_string(), Tensor::new(&[self.delta], &cpu)?),
        ]))
    }

    pub fn restore(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |name: &str| {
            state.get(name).ok_or_else(|| {
                Error::input(format!(
                    "the checkpoint has no label-correction {name}\nfix: resume with the run's own config.toml (label_correction.method)"
                ))
            })
        };
        let history = get(HISTORY)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let seen = get(SEEN)?.to_dtype(DType::U8)?.to_vec1::<u8>()?;
        let delta = get(DELTA)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if history.len() != self.history.len() || seen.len() != self.seen.len() || delta.len() != 1
        {
            return Err(Error::input(
                "the checkpoint's label-correction history does not fit this fold\nfix: resume with the run's own config.toml and folds.csv",
            ));
        }
        self.history = history;
        self.seen = seen.iter().map(|&s| s != 0).collect();
        self.delta = delta[0];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LabelCorrectionConfig {
        LabelCorrectionConfig {
            enabled: true,
            warmup: 0.5,
            window: 2,
            delta_start: 0.3,
            delta_step: 0.1,
            delta_max: 0.4,
            min_changed: 0.5,
            ..LabelCorrectionConfig::default()
        }
    }

    #[test]
    fn corrects_by_the_ratio_of_averaged_probabilities() {
        // 3 items, 2 classes, 4 steps in all: corrections from step 2 on.
        let mut c = RatioCorrector::new(&config(), 3, 2, 4);
        let labels = [0u32, 0, 1];
        c.begin_epoch(0);
        c.record(
            0,
            &[0, 1, 2],
            &[vec![0.1, 0.9], vec![0.8, 0.2], vec![0.5, 0.5]],
        );
        // Still warming up: nothing, and delta unchanged.
        assert!(c.end_epoch(1, &labels).is_empty());
        assert_eq!(c.delta(), 0.3);
        c.begin_epoch(1);
        c.record(1, &[0, 1], &[vec![0.3, 0.7], vec![0.9, 0.1]]);
        // Item 0: mean [0.2, 0.8], ratio 0.25 < 0.3 -> class 1. Item 1 is
        // labelled with its argmax. Item 2 (seen in epoch 0 only): [0.5, 0.5],
        // argmax = class 0 (first of equals), ratio 1.
        let out = c.end_epoch(2, &labels);
        assert_eq!(out.len(), 1);
        let k = &out[0];
        assert_eq!((k.item, k.old, k.new), (0, 0, 1));
        assert!((k.p_old - 0.2).abs() < 1e-6 && (k.p_new - 0.8).abs() < 1e-6);
        // 1 change < 0.5 * 3 items: delta rises, capped at delta_max.
        assert!((c.delta() - 0.4).abs() < 1e-12);
        c.end_epoch(3, &labels);
        assert!((c.delta() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn the_window_forgets_old_epochs_and_state_round_trips() {
        let mut c = RatioCorrector::new(&config(), 1, 2, 0);
        c.begin_epoch(0);
        c.record(0, &[0], &[vec![0.0, 1.0]]);
        c.begin_epoch(1);
        c.record(1, &[0], &[vec![1.0, 0.0]]);
        // Epoch 2 reuses epoch 0's slot: only epoch 1's row is left.
        c.begin_epoch(2);
        assert_eq!(c.averaged(0), Some(vec![1.0, 0.0]));
        let mut d = RatioCorrector::new(&config(), 1, 2, 0);
        d.restore(&c.state().unwrap()).unwrap();
        assert_eq!(d, c);
        let mut other = RatioCorrector::new(&config(), 2, 2, 0);
        assert_eq!(
            other.restore(&c.state().unwrap()).unwrap_err().exit_code(),
            2
        );
    }
}
