//! Pause and stop: before every batch the engine may block (paused) or ask
//! the fold to stop (`FitHooks::between_batches`).

use super::{Callback, FitState};
use crate::error::Result;
use crate::train::fit::Flow;

/// Asks the hooks before every batch; Stop cancels the batch and ends the fold
/// (the epoch so far is still validated).
#[derive(Debug, Default)]
pub struct Steering;

impl Callback for Steering {
    fn before_batch(&mut self, s: &mut FitState) -> Result<()> {
        if s.hooks.between_batches(s.step) == Flow::Stop {
            s.stop = true;
            s.cancel_batch = true;
        }
        Ok(())
    }
}
