//! MixUp and CutMix's side of the loss (fastai's `MixHandler.lf`): the loader
//! mixes the inputs (on its worker thread, with the batch's seeded draw), and
//! this callback mixes the loss: for class targets the per-sample lerp of the
//! two losses, for dense targets (soft labels, multi-label) the loss of the
//! mixed targets.

use super::{Callback, FitState};
use crate::augment::training_loss;
use crate::error::{Error, Result};
use crate::train::dense_loss::{batch_targets, dense_training_loss};

#[derive(Debug, Default)]
pub struct MixHandler;

impl Callback for MixHandler {
    fn after_pred(&mut self, s: &mut FitState) -> Result<()> {
        let Some(mix) = s.batch.mix.as_ref() else {
            return Ok(());
        };
        let logits = s
            .batch
            .logits
            .as_ref()
            .ok_or_else(|| Error::Internal("no logits in after_pred".into()))?;
        let smoothing = s.cfg.training.label_smoothing;
        let loss = match (&s.data.dense_targets, &s.train_rows) {
            (Some(d), Some(rows)) => {
                let targets = batch_targets(rows, &s.batch.items, logits.device())?;
                let weight = d.pos_weight.as_deref();
                dense_training_loss(logits, &targets, Some(mix), smoothing, d.loss, weight)?
            }
            _ => {
                let y = s
                    .batch
                    .y
                    .as_ref()
                    .ok_or_else(|| Error::Internal("no class targets in after_pred".into()))?;
                training_loss(logits, y, Some(mix), smoothing)?
            }
        };
        s.batch.loss = Some(loss);
        Ok(())
    }
}
