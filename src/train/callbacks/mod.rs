//! The fit loop's callbacks, after fastai's `Callback`: the loop in `fit`
//! does only what every run needs (load the batch, forward, backward, step,
//! validate, checkpoint) and calls every callback at fixed points of each
//! batch and epoch, where a callback may read and change the loop's state.
//!
//! Progress reporting, pause/stop steering, MixUp/CutMix's loss, the
//! non-finite-loss guard, gradient clipping, progressive resizing and both
//! label-correction rules are callbacks (one file each); a library user adds
//! their own with `fit_fold_with`.
//!
//! The events, in the order the loop calls them:
//!
//! ```text
//! before_fit
//! for each epoch:  before_epoch
//!     for each batch:  before_batch, after_pred, after_loss, before_step, after_step, after_batch
//!     after_train, (validation), after_validate, (checkpoint), after_epoch
//! after_fit
//! ```
//!
//! Setting `cancel_batch` ends the current batch (the remaining callbacks of
//! that event are not called): in `before_batch` before any work, in
//! `after_loss` after the step's schedule position was used (the step is
//! skipped). `stop` ends the fold after the current batch: the epoch is
//! still validated and reported, its checkpoint is not written (a resume
//! redoes it in full).

mod grad_clip;
mod mixing;
mod non_finite;
mod progress;
mod ratio_correction;
mod resizing;
mod steering;
mod threshold_correction;

pub use grad_clip::GradientClip;
pub use mixing::MixHandler;
pub use non_finite::NonFiniteGuard;
pub use progress::ProgressReport;
pub use ratio_correction::RatioCorrection;
pub use resizing::ProgressiveResizing;
pub use steering::Steering;
pub use threshold_correction::ThresholdCorrection;

use crate::augment::mix::Mixed;
use crate::augment::training_loss;
use crate::config::RunConfig;
use crate::error::Result;
use crate::models::Classifier;
use crate::run::{Event, LabelSets};
use crate::train::checkpoint::Checkpoint;
use crate::train::dense_loss::{DenseLoss, batch_targets, dense_training_loss};
use crate::train::fit::{FitHooks, FoldData};
use crate::train::plc;
use candle_core::Tensor;
use candle_core::backprop::GradStore;

/// One epoch's validation, as callbacks see it after `validate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub loss: f64,
    pub accuracy: f64,
    /// Mean column-wise ROC AUC, if defined.
    pub roc_auc: Option<f64>,
    /// Multi-label: F-beta over samples at the configured beta and threshold.
    pub f_beta: Option<f64>,
    /// Rows = truth, columns = prediction; empty for multi-label.
    pub confusion: Vec<Vec<usize>>,
    /// Every validation item's probabilities, in `FoldData::valid` order.
    pub probs: Vec<Vec<f32>>,
}

/// The current training batch.
#[derive(Default)]
pub struct BatchState {
    /// Training indices of the batch's items.
    pub items: Vec<usize>,
    pub lr: f64,
    pub mom: f64,
    /// Class indices (single-label; the current, possibly corrected, labels).
    pub y: Option<Tensor>,
    /// How the loader mixed the inputs (MixUp/CutMix), for the loss.
    pub mix: Option<Mixed>,
    pub logits: Option<Tensor>,
    /// Set by a callback in `after_pred` (e.g. MixUp's mixed loss), else the
    /// loop's plain loss.
    pub loss: Option<Tensor>,
    /// The loss as a number (available from `after_loss`).
    pub loss_value: f64,
    /// Available in `before_step` (a callback may change them) and taken by the step.
    pub grads: Option<GradStore>,
}

/// What the loop shares with its callbacks.
pub struct FitState<'a> {
    pub cfg: &'a RunConfig,
    pub fold: usize,
    pub data: &'a FoldData,
    pub hooks: &'a mut dyn FitHooks,
    pub model: &'a dyn Classifier,
    pub epoch: usize,
    /// The fold's step (optimiser steps so far: the schedule position).
    pub step: usize,
    /// Image size of the current epoch.
    pub size: u32,
    /// Set in `before_epoch` to switch the epoch to another size.
    pub resize_to: Option<u32>,
    /// The training labels as label correction leaves them.
    pub labels: Vec<u32>,
    /// Set by whoever changes `labels`; the loop hands them to the loader.
    pub labels_changed: bool,
    /// The dense training targets (soft labels, multi-label rows) as label
    /// correction leaves them; None for class labels.
    pub train_rows: Option<Vec<Vec<f32>>>,
    pub batch: BatchState,
    pub cancel_batch: bool,
    pub stop: bool,
    /// Epochs and steps done when the fold was resumed from a checkpoint.
    pub resumed: Option<(usize, usize)>,
    /// Mean training loss of the epoch's batches (from `after_train`).
    pub train_loss: f64,
    /// This epoch's validation (from `after_validate`).
    pub validation: Option<Validation>,
}

/// A piece of the fit loop's behaviour. Every method does nothing by default.
pub trait Callback {
    fn before_fit(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn before_epoch(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn before_batch(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    /// The logits are there; a callback may set `batch.loss`.
    fn after_pred(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn after_loss(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    /// The gradients are there, before the optimiser uses them.
    fn before_step(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn after_step(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn after_batch(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    /// The epoch's training batches are done, before validation.
    fn after_train(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn after_validate(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    /// After the checkpoint of the epoch is written.
    fn after_epoch(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    fn after_fit(&mut self, _s: &mut FitState) -> Result<()> {
        Ok(())
    }
    /// Continue from a checkpoint's state (the callback's part of it).
    fn restore(&mut self, _c: &Checkpoint) -> Result<()> {
        Ok(())
    }
    /// Put the callback's state into the epoch's checkpoint.
    fn save(&self, _c: &mut Checkpoint) -> Result<()> {
        Ok(())
    }
}

/// Which event to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    BeforeFit,
    BeforeEpoch,
    BeforeBatch,
    AfterPred,
    AfterLoss,
    BeforeStep,
    AfterStep,
    AfterBatch,
    AfterTrain,
    AfterValidate,
    AfterEpoch,
    AfterFit,
}

impl Point {
    /// The points of a training batch, which `cancel_batch` cuts short.
    fn in_batch(self) -> bool {
        matches!(
            self,
            Point::BeforeBatch
                | Point::AfterPred
                | Point::AfterLoss
                | Point::BeforeStep
                | Point::AfterStep
                | Point::AfterBatch
        )
    }
}

/// The callbacks of one fit, called in order.
#[derive(Default)]
pub struct Callbacks(pub Vec<Box<dyn Callback>>);

impl Callbacks {
    /// Call every callback at `point`, stopping early when one cancels the batch.
    pub fn call(&mut self, point: Point, s: &mut FitState) -> Result<()> {
        for cb in &mut self.0 {
            match point {
                Point::BeforeFit => cb.before_fit(s)?,
                Point::BeforeEpoch => cb.before_epoch(s)?,
                Point::BeforeBatch => cb.before_batch(s)?,
                Point::AfterPred => cb.after_pred(s)?,
                Point::AfterLoss => cb.after_loss(s)?,
                Point::BeforeStep => cb.before_step(s)?,
                Point::AfterStep => cb.after_step(s)?,
                Point::AfterBatch => cb.after_batch(s)?,
                Point::AfterTrain => cb.after_train(s)?,
                Point::AfterValidate => cb.after_validate(s)?,
                Point::AfterEpoch => cb.after_epoch(s)?,
                Point::AfterFit => cb.after_fit(s)?,
            }
            if s.cancel_batch && point.in_batch() {
                break;
            }
        }
        Ok(())
    }

    pub fn restore(&mut self, c: &Checkpoint) -> Result<()> {
        self.0.iter_mut().try_for_each(|cb| cb.restore(c))
    }

    pub fn save(&self, c: &mut Checkpoint) -> Result<()> {
        self.0.iter().try_for_each(|cb| cb.save(c))
    }
}

/// For each training index, every index holding the same image file
/// (oversampling repeats images: a correction applies to every copy).
pub(crate) fn copies_by_image(data: &FoldData) -> Vec<Vec<usize>> {
    let mut by_path: std::collections::HashMap<&std::path::Path, Vec<usize>> = Default::default();
    for (i, s) in data.train.iter().enumerate() {
        by_path.entry(&s.path).or_default().push(i);
    }
    data.train
        .iter()
        .map(|s| by_path[s.path.as_path()].clone())
        .collect()
}

/// Relabel every copy of each corrected image and report each image once,
/// at `step` with `theta` (the rule's threshold). Marks the labels changed.
pub(crate) fn apply_corrections(
    s: &mut FitState,
    corrected: &[plc::Correction],
    copies: &[Vec<usize>],
    step: usize,
    theta: f64,
) {
    for c in corrected {
        // A copy of the image earlier in the list already moved it.
        if s.labels[c.item] as usize == c.new {
            continue;
        }
        for &i in &copies[c.item] {
            s.labels[i] = c.new as u32;
        }
        s.labels_changed = true;
        s.hooks.event(Event::LabelCorrected {
            fold: s.fold,
            epoch: s.epoch,
            step,
            image: s.data.train[c.item].path.display().to_string(),
            old: c.old,
            new: c.new,
            p_old: c.p_old as f64,
            p_new: c.p_new as f64,
            theta,
            sets: None,
        });
    }
}

/// Switch each flipped class of a multi-label image on or off in every copy
/// of the image, and report each change once with the image's label sets.
pub(crate) fn apply_flips(
    s: &mut FitState,
    flips: &[plc::Flip],
    copies: &[Vec<usize>],
    step: usize,
    theta: f64,
) -> Result<()> {
    let rows = s.train_rows.as_mut().ok_or_else(|| {
        crate::error::Error::Internal("multi-label correction without label rows".into())
    })?;
    let set_of = |row: &[f32]| -> Vec<usize> { (0..row.len()).filter(|&c| row[c] > 0.5).collect() };
    let mut events = Vec::new();
    for f in flips {
        let row = &rows[f.item];
        // A copy of the image earlier in the list already flipped it.
        if (row[f.class] > 0.5) == f.present {
            continue;
        }
        let old = set_of(row);
        for &i in &copies[f.item] {
            rows[i][f.class] = if f.present { 1.0 } else { 0.0 };
        }
        events.push(Event::LabelCorrected {
            fold: s.fold,
            epoch: s.epoch,
            step,
            image: s.data.train[f.item].path.display().to_string(),
            old: f.class,
            new: f.class,
            p_old: f.p_old as f64,
            p_new: f.p_new as f64,
            theta,
            sets: Some(LabelSets {
                old,
                new: set_of(&rows[f.item]),
            }),
        });
    }
    for e in events {
        s.hooks.event(e);
    }
    Ok(())
}

/// Whether the fold's targets are multi-label rows (sigmoid outputs).
pub(crate) fn is_multi_label(s: &FitState) -> bool {
    s.data
        .dense_targets
        .as_ref()
        .is_some_and(|d| d.loss == DenseLoss::BinaryCrossEntropy)
}

/// The batch's probabilities as rows: sigmoid for multi-label, else softmax.
pub(crate) fn batch_probs(s: &FitState) -> Result<Vec<Vec<f32>>> {
    let logits = s
        .batch
        .logits
        .as_ref()
        .ok_or_else(|| crate::error::Error::Internal("no logits in after_step".into()))?
        .detach()
        .to_dtype(candle_core::DType::F32)?;
    let probs = if is_multi_label(s) {
        candle_nn::ops::sigmoid(&logits)?
    } else {
        candle_nn::ops::softmax_last_dim(&logits)?
    };
    Ok(probs.to_vec2::<f32>()?)
}

/// The batch's training loss, mixed by `mix` (MixUp/CutMix) when given: the
/// dense targets' loss (soft labels, multi-label rows as label correction
/// left them, with `pos_weight`), or the (label-smoothed) cross-entropy of
/// the classes.
pub(crate) fn batch_loss(s: &FitState, mix: Option<&Mixed>) -> Result<Tensor> {
    let internal = |what: &str| crate::error::Error::Internal(format!("no {what} for the loss"));
    let logits = s.batch.logits.as_ref().ok_or_else(|| internal("logits"))?;
    let smoothing = s.cfg.training.label_smoothing;
    match (&s.data.dense_targets, &s.train_rows) {
        (Some(d), Some(rows)) => dense_training_loss(
            logits,
            &batch_targets(rows, &s.batch.items, logits.device())?,
            mix,
            smoothing,
            d.loss,
            d.pos_weight.as_deref(),
        ),
        _ => {
            let y = s.batch.y.as_ref().ok_or_else(|| internal("targets"))?;
            training_loss(logits, y, mix, smoothing)
        }
    }
}
