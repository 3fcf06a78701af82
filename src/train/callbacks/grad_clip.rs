//! Gradient clipping (fastai's `GradientClip`): the global L2 norm of the
//! gradients is capped at `training.grad_clip` before the optimiser steps.

use super::{Callback, FitState};
use crate::error::Result;
use crate::train::clip::clip_grad_norm;

#[derive(Debug)]
pub struct GradientClip {
    pub max_norm: f64,
}

impl Callback for GradientClip {
    fn before_step(&mut self, s: &mut FitState) -> Result<()> {
        if let Some(grads) = s.batch.grads.as_mut() {
            clip_grad_norm(grads, s.model.trainable(), self.max_norm)?;
        }
        Ok(())
    }
}
