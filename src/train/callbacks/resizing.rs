//! Progressive resizing: at each epoch start the size schedule, or a
//! `ResizeNow` the user sent, may switch the fold to another image size;
//! weights, optimiser state and the LR schedule carry on.

use super::{Callback, FitState};
use crate::error::Result;
use crate::run::Event;
use crate::train::resizing::{SizeDecision, SizePlan};

#[derive(Debug)]
pub struct ProgressiveResizing {
    pub sizes: SizePlan,
}

impl Callback for ProgressiveResizing {
    fn before_epoch(&mut self, s: &mut FitState) -> Result<()> {
        let request = s.hooks.take_resize_request();
        match self.sizes.decide(s.epoch, s.size, request) {
            SizeDecision::Keep => {}
            SizeDecision::Refused(message) => s.hooks.event(Event::Warning { message }),
            SizeDecision::SwitchTo(size) => s.resize_to = Some(size),
        }
        Ok(())
    }
}
