//! The published PLC variant (`plc_ratio`): every step records the batch's
//! softmax; each completed epoch past the warm-up relabels the items whose
//! averaged p(label)/p(argmax) fell below delta. `SetTheta` sets delta.

use super::{Callback, FitState, apply_corrections, batch_probs, copies_by_image};
use crate::error::Result;
use crate::train::checkpoint::Checkpoint;
use crate::train::fit::FoldData;
use crate::train::plc_ratio::RatioCorrector;

#[derive(Debug)]
pub struct RatioCorrection {
    corrector: RatioCorrector,
    copies: Vec<Vec<usize>>,
}

impl RatioCorrection {
    pub fn new(corrector: RatioCorrector, data: &FoldData) -> Self {
        RatioCorrection {
            corrector,
            copies: copies_by_image(data),
        }
    }
}

impl Callback for RatioCorrection {
    fn before_epoch(&mut self, s: &mut FitState) -> Result<()> {
        self.corrector.begin_epoch(s.epoch);
        Ok(())
    }

    fn after_step(&mut self, s: &mut FitState) -> Result<()> {
        let probs = batch_probs(s)?;
        self.corrector.record(s.epoch, &s.batch.items, &probs);
        Ok(())
    }

    /// Once per completed epoch: a stopped epoch is redone in full on resume,
    /// and corrects then.
    fn after_train(&mut self, s: &mut FitState) -> Result<()> {
        if s.stop {
            return Ok(());
        }
        if let Some(value) = s.hooks.take_theta_request() {
            self.corrector.set_delta(value);
        }
        let delta = self.corrector.delta();
        let corrected = self.corrector.end_epoch(s.step, &s.labels);
        let step = s.step.saturating_sub(1);
        apply_corrections(s, &corrected, &self.copies, step, delta);
        Ok(())
    }

    fn restore(&mut self, c: &Checkpoint) -> Result<()> {
        self.corrector.restore(&c.correction_state)
    }

    fn save(&self, c: &mut Checkpoint) -> Result<()> {
        c.correction_state = self.corrector.state()?;
        Ok(())
    }
}
