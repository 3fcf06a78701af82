//! MixUp and CutMix's side of the loss (fastai's `MixHandler.lf`): the loader
//! mixes the inputs (on its worker thread, with the batch's seeded draw), and
//! this callback mixes the loss: for class targets the per-sample lerp of the
//! two losses, for dense targets (soft labels, multi-label) the loss of the
//! mixed targets.

use super::{Callback, FitState, batch_loss};
use crate::error::Result;

#[derive(Debug, Default)]
pub struct MixHandler;

impl Callback for MixHandler {
    fn after_pred(&mut self, s: &mut FitState) -> Result<()> {
        if let Some(mix) = s.batch.mix.as_ref() {
            s.batch.loss = Some(batch_loss(s, Some(mix))?);
        }
        Ok(())
    }
}
