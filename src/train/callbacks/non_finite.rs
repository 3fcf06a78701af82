//! A NaN or infinite loss: stepping would spread it into every weight, so the
//! step is skipped, a warning goes out, and the engine decides whether the run
//! pauses (someone is watching) or stops.

use super::{Callback, FitState};
use crate::error::Result;
use crate::run::Event;
use crate::train::fit::Flow;

#[derive(Debug, Default)]
pub struct NonFiniteGuard;

impl Callback for NonFiniteGuard {
    fn after_loss(&mut self, s: &mut FitState) -> Result<()> {
        let loss = s.batch.loss_value;
        if loss.is_finite() {
            return Ok(());
        }
        s.hooks.event(Event::Warning {
            message: format!(
                "fold {} epoch {} step {}: the loss is {loss}; the step was skipped (lower training.lr or set training.grad_clip)",
                s.fold, s.epoch, s.step
            ),
        });
        s.cancel_batch = true;
        // The skipped step still used its schedule position: the engine
        // hears the step the fold goes on from.
        if s.hooks.non_finite_loss(s.step + 1) == Flow::Stop {
            s.stop = true;
        }
        Ok(())
    }
}
