//! Progress reporting: the fold's events (resumed, epoch started, every
//! batch, epoch ended) and every validation's probabilities go to the hooks.

use super::{Callback, FitState};
use crate::error::{Error, Result};
use crate::run::Event;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct ProgressReport {
    /// When the epoch's first batch started; None until it has.
    started: Option<Instant>,
}

impl Callback for ProgressReport {
    fn before_fit(&mut self, s: &mut FitState) -> Result<()> {
        if let Some((epochs_done, step)) = s.resumed {
            s.hooks.event(Event::FoldResumed {
                fold: s.fold,
                epochs_done,
                step,
            });
        }
        Ok(())
    }

    fn before_epoch(&mut self, _s: &mut FitState) -> Result<()> {
        self.started = None;
        Ok(())
    }

    /// An epoch starts with its first batch, so a Stop that arrives at an
    /// epoch boundary (e.g. during validation) ends the fold without an empty epoch.
    fn before_batch(&mut self, s: &mut FitState) -> Result<()> {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            s.hooks.event(Event::EpochStarted {
                fold: s.fold,
                epoch: s.epoch,
            });
        }
        Ok(())
    }

    fn after_batch(&mut self, s: &mut FitState) -> Result<()> {
        s.hooks.event(Event::Batch {
            fold: s.fold,
            epoch: s.epoch,
            step: s.step,
            loss: s.batch.loss_value,
            lr: s.batch.lr,
            mom: s.batch.mom,
        });
        Ok(())
    }

    fn after_validate(&mut self, s: &mut FitState) -> Result<()> {
        let v = s
            .validation
            .as_ref()
            .ok_or_else(|| Error::Internal("no validation after validate".into()))?;
        s.hooks.validated(s.fold, s.epoch, &v.probs);
        Ok(())
    }

    fn after_epoch(&mut self, s: &mut FitState) -> Result<()> {
        let seconds = self.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let v = s
            .validation
            .as_ref()
            .ok_or_else(|| Error::Internal("no validation at the epoch's end".into()))?;
        let event = Event::EpochEnded {
            fold: s.fold,
            epoch: s.epoch,
            train_loss: s.train_loss,
            valid_loss: v.loss,
            accuracy: v.accuracy,
            seconds,
            roc_auc: v.roc_auc,
            f_beta: v.f_beta,
            confusion: v.confusion.clone(),
        };
        s.hooks.event(event);
        Ok(())
    }
}
