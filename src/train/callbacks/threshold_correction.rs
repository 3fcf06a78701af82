//! Progressive label correction, the techniques document's rule (`plc`):
//! after every step past the warm-up, the batch's items whose prediction
//! differs from their label by more than theta are relabelled. theta follows
//! its schedule; a `SetTheta` re-anchors it, and the anchor is checkpointed.
//! Multi-label items are corrected class by class on sigmoid outputs (`plc::flips`).

use super::{
    Callback, FitState, apply_corrections, apply_flips, batch_probs, copies_by_image,
    is_multi_label,
};
use crate::error::Result;
use crate::train::checkpoint::Checkpoint;
use crate::train::fit::FoldData;
use crate::train::plc::{self, ThetaScheduler};

#[derive(Debug)]
pub struct ThresholdCorrection {
    theta: ThetaScheduler,
    copies: Vec<Vec<usize>>,
}

impl ThresholdCorrection {
    pub fn new(theta: ThetaScheduler, data: &FoldData) -> Self {
        ThresholdCorrection {
            theta,
            copies: copies_by_image(data),
        }
    }
}

impl Callback for ThresholdCorrection {
    fn after_step(&mut self, s: &mut FitState) -> Result<()> {
        if let Some(value) = s.hooks.take_theta_request() {
            self.theta.set(s.step, value);
        }
        let Some(theta) = self.theta.theta(s.step) else {
            return Ok(());
        };
        let probs = batch_probs(s)?;
        let step = s.step;
        if is_multi_label(s) {
            let rows = s.train_rows.as_deref().unwrap_or_default();
            let flips = plc::flips(&probs, &s.batch.items, rows, theta);
            return apply_flips(s, &flips, &self.copies, step, theta);
        }
        let corrected = plc::corrections(&probs, &s.batch.items, &s.labels, theta);
        apply_corrections(s, &corrected, &self.copies, step, theta);
        Ok(())
    }

    fn restore(&mut self, c: &Checkpoint) -> Result<()> {
        if let Some((step, value)) = c.progress.theta_anchor {
            self.theta.set(step, value);
        }
        Ok(())
    }

    fn save(&self, c: &mut Checkpoint) -> Result<()> {
        c.progress.theta_anchor = Some(self.theta.anchor());
        Ok(())
    }
}
