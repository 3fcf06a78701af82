//! Training one fold: a ResNet-18 from scratch with fastai's optimisers (AdamW
//! by default) on fastai's one-cycle (or flat-cos) schedule, validated after
//! every epoch.
//!
//! The loop reports through `FitHooks`, so the engine thread decides what an
//! event means (log line, dashboard update) and when to pause or stop.

use crate::augment::{Normalization, Pipeline, batch_seed, load_set_in, training_loss};
use crate::config::{
    CorrectionMethod, MixMethod, Recipe, RunConfig, SchedulePolicy, TrainingConfig,
};
use crate::error::{Error, Result};
use crate::models::{self, Classifier};
use crate::rng::Rng;
use crate::run::Event;
use crate::train::batches::{ImageSet, training_batches, validation_batches};
use crate::train::callbacks::{
    BatchState, Callback, Callbacks, FitState, GradientClip, MixHandler, NonFiniteGuard, Point,
    ProgressReport, ProgressiveResizing, RatioCorrection, Steering, ThresholdCorrection,
    Validation, batch_loss,
};
use crate::train::checkpoint::{self, Checkpoint, Progress};
use crate::train::dense_loss::{DenseLoss, DenseTargets, batch_targets, dense_training_loss};
use crate::train::fine_tune::TrainingPlan;
use crate::train::loader::Loader;
use crate::train::metrics;
use crate::train::optim::{OptimSettings, StepHypers};
use crate::train::plc::ThetaScheduler;
use crate::train::plc_ratio::RatioCorrector;
use crate::train::resizing::SizePlan;
use crate::train::schedule::{flat_cos, one_cycle};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarMap;
use std::path::{Path, PathBuf};

pub use crate::train::batches::{Sample, steps_per_epoch};

/// fastai's `Adam(mom=0.9)`: beta1 when the schedule does not set it (flat-cos).
pub const ADAM_BETA1: f64 = 0.9;

/// The `Rng` stream of the initial weights (shuffles use the epoch number as stream).
const INIT_STREAM: u64 = 0x494E_4954_5745_4947; // "INITWEIG"
/// Sub-streams of the run seed that give each fold its own seed.
const FOLD_SEED_STREAM: u64 = 0x464F_4C44_0000_0000; // "FOLD"

/// The images of one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldData {
    pub train: Vec<Sample>,
    pub valid: Vec<Sample>,
    pub num_classes: usize,
    /// Soft labels or multi-label rows; None trains and validates on the
    /// samples' classes. Soft labels never reach validation, so the metrics
    /// stay about the labels the user gave.
    pub dense_targets: Option<DenseTargets>,
}

/// What the loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

pub trait FitHooks {
    /// Every Event the loop produces (EpochStarted, Batch, EpochEnded) goes here.
    fn event(&mut self, event: Event);
    /// Called before every training batch; it may block (while the run is paused).
    /// Stop means: finish the current epoch (skip its remaining training batches,
    /// still validate and emit EpochEnded), then return.
    fn between_batches(&mut self, step: usize) -> Flow;
    /// A batch's loss was NaN or infinite (its step was skipped). Continue
    /// (after a pause the user ended) or Stop; stopping is the safe default.
    fn non_finite_loss(&mut self, _step: usize) -> Flow {
        Flow::Stop
    }
    /// A `ResizeNow` that arrived since the last call: Some(size), or Some(None)
    /// for the schedule's next size. Taken at epoch boundaries.
    fn take_resize_request(&mut self) -> Option<Option<u32>> {
        None
    }
    /// A `SetTheta` that arrived since the last call (for label correction).
    fn take_theta_request(&mut self) -> Option<f64> {
        None
    }
    /// An epoch's validation: every item's probabilities, in `FoldData::valid` order.
    fn validated(&mut self, _fold: usize, _epoch: usize, _probs: &[Vec<f32>]) {}
    /// Where images that do not fit in `data.cache_mb` are spilled (the
    /// run's cache directory); None: the system's temporary directory.
    fn cache_dir(&self) -> Option<PathBuf> {
        None
    }
}

/// The outcome of a fold, from its last completed epoch. If Stop came before
/// the first batch, `epochs_done` is 0 and the losses and accuracy are NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult {
    /// Mean training loss of the last epoch's batches.
    pub train_loss: f64,
    pub valid_loss: f64,
    pub accuracy: f64,
    /// Mean column-wise ROC AUC of the last validation, if defined.
    pub roc_auc: Option<f64>,
    pub epochs_done: usize,
    pub stopped: bool,
    /// Softmax probabilities of every validation image, in `FoldData::valid` order.
    pub valid_probs: Vec<Vec<f32>>,
    /// The normalisation statistics the fold used (inference must use the same).
    pub normalization: Normalization,
}

/// The (lr, beta1) of every step of a fold, for the loop and for the dashboard.
pub fn planned_schedule(cfg: &TrainingConfig, steps_per_epoch: usize) -> Vec<(f64, f64)> {
    if cfg.recipe == Recipe::FineTune {
        return TrainingPlan::new(cfg, steps_per_epoch, Vec::new).schedule;
    }
    let n = cfg.epochs * steps_per_epoch;
    match cfg.policy {
        SchedulePolicy::OneCycle => {
            one_cycle(n, cfg.lr, cfg.div, cfg.div_final, cfg.pct_start(), cfg.moms)
        }
        // flat-cos leaves mom unscheduled: the optimiser's own (fastai's default for it).
        SchedulePolicy::FlatCos => flat_cos(n, cfg.lr, cfg.div_final, cfg.pct_start(), cfg.mom()),
    }
}

/// Train a fresh model on `data.train` and validate on `data.valid` after each epoch.
///
/// With a `checkpoint` path, the fold's state is written there (atomically)
/// after every epoch, and a checkpoint already there is continued from: its
/// weights, optimiser state and schedule position, then the next epoch. A
/// fold whose checkpoint has all its epochs is reported without training.
pub fn fit_fold(
    cfg: &RunConfig,
    fold: usize,
    data: &FoldData,
    hooks: &mut dyn FitHooks,
    checkpoint: Option<&Path>,
) -> Result<FitResult> {
    fit_fold_with(cfg, fold, data, hooks, checkpoint, Vec::new())
}

/// The callbacks the configuration asks for, in the order they run: steering
/// and progress first (a Stop cancels the batch before it is reported), then
/// the loss, the guard, clipping, and label correction.
pub fn configured_callbacks(cfg: &RunConfig, data: &FoldData) -> Callbacks {
    let t = &cfg.training;
    let mut list: Vec<Box<dyn Callback>> = vec![
        Box::new(Steering),
        Box::new(ProgressReport::default()),
        Box::new(ProgressiveResizing {
            sizes: SizePlan::from_config(t),
        }),
    ];
    if cfg.mixing.method != MixMethod::None {
        list.push(Box::new(MixHandler));
    }
    list.push(Box::new(NonFiniteGuard));
    if let Some(max_norm) = t.grad_clip {
        list.push(Box::new(GradientClip { max_norm }));
    }
    let lc = &cfg.label_correction;
    if lc.enabled {
        let fold_steps = steps_per_epoch(data.train.len(), t.batch_size) * t.epochs;
        list.push(match lc.method {
            CorrectionMethod::Threshold => Box::new(ThresholdCorrection::new(
                ThetaScheduler::new(lc, fold_steps),
                data,
            )),
            CorrectionMethod::Ratio => Box::new(RatioCorrection::new(
                RatioCorrector::new(lc, data.train.len(), data.num_classes, fold_steps),
                data,
            )),
        });
    }
    Callbacks(list)
}

/// `fit_fold` with `extra` callbacks, called after the configured ones.
pub fn fit_fold_with(
    cfg: &RunConfig,
    fold: usize,
    data: &FoldData,
    hooks: &mut dyn FitHooks,
    checkpoint: Option<&Path>,
    extra: Vec<Box<dyn Callback>>,
) -> Result<FitResult> {
    let t = &cfg.training;
    check_data(data)?;
    let device = Device::Cpu;
    let resume = match checkpoint {
        Some(path) => checkpoint::load(path, &device)?,
        None => None,
    };
    if let Some(c) = &resume {
        check_resumable(&c.progress, fold, t.epochs, checkpoint)?;
        if c.progress.finished() {
            return Ok(FitResult {
                train_loss: c.progress.train_loss,
                valid_loss: c.progress.valid_loss,
                accuracy: c.progress.accuracy,
                roc_auc: roc_auc_of(&c.valid_probs, &valid_truth(data)?)?,
                epochs_done: c.progress.epochs_done,
                stopped: false,
                valid_probs: c.valid_probs.clone(),
                normalization: c.progress.normalization.clone(),
            });
        }
    }
    let mut callbacks = configured_callbacks(cfg, data);
    callbacks.0.extend(extra);
    // A resumed fold goes on at the size its last epoch had (a ResizeNow may
    // have changed it), with the normalisation it started with.
    let size = match &resume {
        Some(c) => SizePlan::from_config(t).resumed(c.progress.size, c.progress.epochs_done),
        None => t.size,
    };
    // The training labels as label correction leaves them; a resumed fold
    // goes on with its checkpoint's.
    let mut labels: Vec<u32> = data.train.iter().map(|s| s.class as u32).collect();
    let mut train_rows = data.dense_targets.as_ref().map(|d| d.train.clone());
    if let Some(c) = &resume {
        if let Some(rows) = train_rows.as_mut().filter(|_| !c.train_rows.is_empty()) {
            if c.train_rows.len() != rows.len() {
                return Err(Error::input(format!(
                    "{}checkpoint has {} training label rows, the fold has {} images\nfix: resume with the run's own folds.csv and data",
                    checkpoint.map_or(String::new(), |p| format!("{}: ", p.display())),
                    c.train_rows.len(),
                    rows.len()
                )));
            }
            rows.clone_from(&c.train_rows);
        }
        if !c.train_labels.is_empty() {
            if c.train_labels.len() != labels.len() {
                return Err(Error::input(format!(
                    "{}checkpoint has {} training labels, the fold has {} images\nfix: resume with the run's own folds.csv and data",
                    checkpoint.map_or(String::new(), |p| format!("{}: ", p.display())),
                    c.train_labels.len(),
                    labels.len()
                )));
            }
            labels.clone_from(&c.train_labels);
        }
        callbacks.restore(c)?;
    }
    let cache_dir = hooks.cache_dir();
    let load = |samples: &[Sample], size| load_set_in(samples, cfg, size, cache_dir.as_deref());
    let mut train_set = load(&data.train, size)?;
    train_set.set_classes(&labels)?;
    let mut valid_set = load(&data.valid, size)?;
    let norm = match &resume {
        Some(c) => c.progress.normalization.clone(),
        // Data set statistics come from the fold's training images only.
        None => Normalization::for_config(cfg.augmentation.normalize, train_set.images())?,
    };
    let mut pipeline = Pipeline::new(cfg, norm);
    pipeline.size = size;

    // Each fold gets its own initial weights and batch order, all from one seed.
    let fold_seed = Rng::derived(t.seed, FOLD_SEED_STREAM + fold as u64).next_u64();
    let varmap = VarMap::new();
    // A resumed fold gets every variable from its checkpoint: no weights file to read.
    let model = models::build_configured(
        &cfg.model,
        data.num_classes,
        &varmap,
        &device,
        Rng::derived(fold_seed, INIT_STREAM),
        resume.is_none(),
    )?;
    let steps = steps_per_epoch(train_set.len(), t.batch_size);
    let plan = TrainingPlan::new(t, steps, || planned_schedule(t, steps));
    let settings = OptimSettings::from_config(t);
    let first_step = resume.as_ref().map_or(0, |c| c.progress.steps_done);
    let mut opt = plan.optimizer_at(first_step, model.as_ref(), settings)?;
    let schedule = &plan.schedule;

    let truth = valid_truth(data)?;
    let mut result = FitResult {
        train_loss: f64::NAN,
        valid_loss: f64::NAN,
        accuracy: f64::NAN,
        roc_auc: None,
        epochs_done: 0,
        stopped: false,
        valid_probs: Vec::new(),
        normalization: pipeline.norm.clone(),
    };
    let mut s = FitState {
        cfg,
        fold,
        data,
        hooks,
        model: model.as_ref(),
        epoch: 0,
        step: 0,
        size,
        resize_to: None,
        labels,
        labels_changed: false,
        train_rows,
        batch: BatchState::default(),
        cancel_batch: false,
        stop: false,
        resumed: None,
        train_loss: f64::NAN,
        validation: None,
    };
    if let Some(c) = resume {
        checkpoint::restore_model(&varmap, &c.model)?;
        // The state carries its own step counts (fastai's per-parameter `step`);
        // at a phase start (unfreezing) fastai clears it.
        if plan.keeps_state_at(c.progress.steps_done) {
            opt.load_state_tensors(&c.optimizer)?;
        }
        s.step = c.progress.steps_done;
        result.train_loss = c.progress.train_loss;
        result.valid_loss = c.progress.valid_loss;
        result.accuracy = c.progress.accuracy;
        result.roc_auc = roc_auc_of(&c.valid_probs, &truth)?;
        result.epochs_done = c.progress.epochs_done;
        result.valid_probs = c.valid_probs;
        s.resumed = Some((result.epochs_done, s.step));
    }
    callbacks.call(Point::BeforeFit, &mut s)?;
    for epoch in result.epochs_done..t.epochs {
        s.epoch = epoch;
        callbacks.call(Point::BeforeEpoch, &mut s)?;
        if let Some(new) = s.resize_to.take() {
            // Each original is decoded once more, at the new size.
            train_set = load(&data.train, new)?;
            train_set.set_classes(&s.labels)?;
            valid_set = load(&data.valid, new)?;
            pipeline.size = new;
            s.size = new;
            s.hooks.event(Event::Resized {
                fold,
                epoch,
                size: new,
            });
        }
        let mut loss_sum = 0.0;
        let mut batches_run = 0;
        let batches = training_batches(train_set.len(), t.batch_size, fold_seed, epoch);
        let seeds = (0..batches.len())
            .map(|b| batch_seed(fold_seed, epoch, b))
            .collect();
        let mut loader = Loader::new(
            &pipeline,
            &train_set,
            batches.clone(),
            seeds,
            cfg.data.prefetch,
        );
        for items in batches {
            s.batch = BatchState {
                items,
                ..BatchState::default()
            };
            s.cancel_batch = false;
            callbacks.call(Point::BeforeBatch, &mut s)?;
            if s.cancel_batch {
                if s.stop {
                    break;
                }
                continue;
            }
            let step = s.step;
            let (lr, mom) = *schedule
                .get(step)
                .ok_or_else(|| Error::Internal(format!("step {step} is past the schedule")))?;
            (s.batch.lr, s.batch.mom) = (lr, mom);
            if let Some(fresh) = plan.optimizer_starting_at(step, model.as_ref(), settings)? {
                opt = fresh;
            }
            model.begin_step(step);
            let xb = loader
                .next_batch(&train_set, &device)?
                .ok_or_else(|| Error::Internal("the loader ran out of batches".into()))?;
            let logits = model.forward_t(&xb.x, true)?;
            s.batch.logits = Some(logits);
            s.batch.y = Some(xb.y);
            s.batch.mix = xb.mix;
            callbacks.call(Point::AfterPred, &mut s)?;
            let loss_t = match s.batch.loss.take() {
                Some(loss) => loss,
                None => plain_loss(&s)?,
            };
            s.batch.loss_value = loss_t.to_scalar::<f32>()? as f64;
            callbacks.call(Point::AfterLoss, &mut s)?;
            if s.cancel_batch {
                // The step's schedule position was used even though it was skipped.
                s.step += 1;
                if s.stop {
                    break;
                }
                continue;
            }
            s.batch.grads = Some(loss_t.backward()?);
            callbacks.call(Point::BeforeStep, &mut s)?;
            let grads = s
                .batch
                .grads
                .take()
                .ok_or_else(|| Error::Internal("a callback took the gradients".into()))?;
            opt.step(&grads, StepHypers { lr, mom })?;
            callbacks.call(Point::AfterStep, &mut s)?;
            if std::mem::take(&mut s.labels_changed) {
                train_set.set_classes(&s.labels)?;
            }
            loss_sum += s.batch.loss_value;
            batches_run += 1;
            callbacks.call(Point::AfterBatch, &mut s)?;
            s.step += 1;
            if s.stop {
                break;
            }
        }
        result.stopped = s.stop;
        s.cancel_batch = false;
        if batches_run == 0 {
            break;
        }
        s.train_loss = loss_sum / batches_run as f64;
        callbacks.call(Point::AfterTrain, &mut s)?;
        if std::mem::take(&mut s.labels_changed) {
            train_set.set_classes(&s.labels)?;
        }
        s.validation = Some(validate(
            model.as_ref(),
            &pipeline,
            &valid_set,
            t,
            &device,
            data.dense_targets.as_ref(),
            &truth,
        )?);
        callbacks.call(Point::AfterValidate, &mut s)?;
        let valid = s
            .validation
            .as_ref()
            .ok_or_else(|| Error::Internal("a callback took the validation".into()))?;
        result.train_loss = s.train_loss;
        result.valid_loss = valid.loss;
        result.accuracy = valid.accuracy;
        result.roc_auc = valid.roc_auc;
        result.valid_probs = valid.probs.clone();
        result.epochs_done = epoch + 1;
        // A stop mid-epoch leaves the previous checkpoint in place: resuming
        // redoes this epoch in full, so it ends as an uninterrupted run would.
        if let Some(path) = checkpoint.filter(|_| !result.stopped) {
            let progress = Progress {
                fold,
                epochs_done: result.epochs_done,
                epochs: t.epochs,
                steps_done: s.step,
                train_loss: result.train_loss,
                valid_loss: result.valid_loss,
                accuracy: result.accuracy,
                normalization: pipeline.norm.clone(),
                size: Some(s.size),
                theta_anchor: None,
            };
            let mut ckpt = Checkpoint {
                progress,
                model: checkpoint::model_tensors(&varmap)?,
                optimizer: opt.state_tensors()?,
                valid_probs: result.valid_probs.clone(),
                train_labels: if cfg.label_correction.enabled {
                    s.labels.clone()
                } else {
                    Vec::new()
                },
                train_rows: match &s.train_rows {
                    Some(rows) if cfg.label_correction.enabled => rows.clone(),
                    _ => Vec::new(),
                },
                correction_state: Default::default(),
            };
            callbacks.save(&mut ckpt)?;
            checkpoint::save(path, &ckpt)?;
        }
        callbacks.call(Point::AfterEpoch, &mut s)?;
        if result.stopped {
            break;
        }
    }
    callbacks.call(Point::AfterFit, &mut s)?;
    Ok(result)
}

/// The loss when no callback set one: (label-smoothed) cross-entropy of the
/// classes, or the dense targets' loss. A mixed batch must have had its loss
/// set by `MixHandler`.
fn plain_loss(s: &FitState) -> Result<Tensor> {
    if s.batch.mix.is_some() {
        return Err(Error::Internal(
            "a mixed batch reached the loss without MixHandler".into(),
        ));
    }
    batch_loss(s, None)
}

/// A checkpoint must be of this fold and of a run with the same number of epochs.
fn check_resumable(p: &Progress, fold: usize, epochs: usize, path: Option<&Path>) -> Result<()> {
    let name = path.map_or(String::new(), |p| format!("{}: ", p.display()));
    if p.fold != fold {
        return Err(Error::input(format!(
            "{name}checkpoint of fold {} found where fold {fold}'s belongs\nfix: move it back to fold{}.safetensors or delete it",
            p.fold, p.fold
        )));
    }
    if p.epochs != epochs {
        return Err(Error::input(format!(
            "{name}checkpoint of a {}-epoch schedule, but the config says {epochs} epochs\nfix: resume with the run's own config.toml",
            p.epochs
        )));
    }
    Ok(())
}

/// Reject fold data the loop cannot train on, with a message saying why.
fn check_data(data: &FoldData) -> Result<()> {
    if data.num_classes < 2 {
        return Err(Error::input(format!(
            "training needs at least 2 classes, got {}",
            data.num_classes
        )));
    }
    // Batch statistics need more than one value per channel.
    if data.train.len() < 2 {
        return Err(Error::input(format!(
            "a fold needs at least 2 training images, got {}",
            data.train.len()
        )));
    }
    if data.valid.is_empty() {
        return Err(Error::input(
            "a fold needs at least 1 validation image, got 0",
        ));
    }
    if let Some(d) = &data.dense_targets {
        let fits = |rows: &[Vec<f32>], n: usize| {
            rows.len() == n && rows.iter().all(|r| r.len() == data.num_classes)
        };
        if !fits(&d.train, data.train.len())
            || d.valid.as_ref().is_some_and(|v| !fits(v, data.valid.len()))
        {
            return Err(Error::Internal(format!(
                "target rows do not fit {} training / {} validation images of {} classes",
                data.train.len(),
                data.valid.len(),
                data.num_classes
            )));
        }
    }
    if let Some(s) = data
        .train
        .iter()
        .chain(&data.valid)
        .find(|s| s.class >= data.num_classes)
    {
        return Err(Error::input(format!(
            "{}: class index {} is out of range for {} classes",
            s.path.display(),
            s.class,
            data.num_classes
        )));
    }
    Ok(())
}

/// Mean column-wise ROC AUC of probabilities against the truth rows
/// (Plant Pathology's metric); `None` when no class has both outcomes.
/// A diverged model (NaN weights) has no AUC but still reports its loss and accuracy.
fn roc_auc_of(probs: &[Vec<f32>], truth: &[Vec<bool>]) -> Result<Option<f64>> {
    if probs.len() != truth.len() || probs.is_empty() {
        return Ok(None);
    }
    if !probs.iter().flatten().all(|p| p.is_finite()) {
        return Ok(None);
    }
    Ok(metrics::mean_columnwise_roc_auc(probs, truth)?.mean)
}

/// The validation truth as rows of bools: multi-label rows, or the classes one-hot.
fn valid_truth(data: &FoldData) -> Result<Vec<Vec<bool>>> {
    match multi_label_rows(data) {
        Some(rows) => Ok(rows
            .iter()
            .map(|r| r.iter().map(|&v| v > 0.5).collect())
            .collect()),
        None => metrics::one_hot(&classes_of(&data.valid), data.num_classes),
    }
}

/// The validation rows of a multi-label fold.
fn multi_label_rows(data: &FoldData) -> Option<&[Vec<f32>]> {
    data.dense_targets.as_ref().and_then(|d| d.valid.as_deref())
}

fn classes_of(samples: &[Sample]) -> Vec<usize> {
    samples.iter().map(|s| s.class).collect()
}

/// Mean loss, accuracy and probabilities over the validation set, in eval
/// mode. Single-label: softmax, cross-entropy, accuracy, confusion matrix.
/// Multi-label (`multi_label` holds the validation rows): sigmoid, binary
/// cross-entropy, fastai's `accuracy_multi` at 0.5, no confusion matrix.
fn validate(
    model: &dyn Classifier,
    pipeline: &Pipeline,
    set: &ImageSet,
    t: &TrainingConfig,
    device: &Device,
    dense: Option<&DenseTargets>,
    truth: &[Vec<bool>],
) -> Result<Validation> {
    let multi_label = dense.and_then(|d| d.valid.as_deref());
    let pos_weight = dense.and_then(|d| d.pos_weight.as_deref());
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let mut probs = Vec::with_capacity(set.len());
    let mut predicted_all = Vec::with_capacity(set.len());
    let mut targets = Vec::with_capacity(set.len());
    for batch in validation_batches(set.len(), t.batch_size) {
        let xb = pipeline.valid_batch(set, &batch, device)?;
        let (x, y) = (xb.x, xb.y);
        let logits = model.forward_t(&x, false)?.detach();
        // fastai reports the validation loss with the training loss function.
        let loss = if let Some(rows) = multi_label {
            let rows = batch_targets(rows, &batch, device)?;
            dense_training_loss(
                &logits,
                &rows,
                None,
                t.label_smoothing,
                DenseLoss::BinaryCrossEntropy,
                pos_weight,
            )?
        } else if t.label_smoothing > 0.0 {
            training_loss(&logits, &y, None, t.label_smoothing)?
        } else {
            candle_nn::loss::cross_entropy(&logits, &y)?
        };
        let loss = loss.to_scalar::<f32>()? as f64;
        loss_sum += loss * batch.len() as f64;
        let logits = logits.to_dtype(DType::F32)?;
        if multi_label.is_some() {
            probs.extend(candle_nn::ops::sigmoid(&logits)?.to_vec2::<f32>()?);
            continue;
        }
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let y = y.to_vec1::<u32>()?;
        correct += predicted.iter().zip(&y).filter(|(p, y)| p == y).count();
        predicted_all.extend(predicted.iter().map(|&p| p as usize));
        targets.extend(y.iter().map(|&t| t as usize));
        probs.extend(candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?);
    }
    let n = set.len() as f64;
    let n_classes = probs.first().map_or(0, Vec::len);
    let threshold = t.multi_label_threshold;
    let probabilities = metrics::ScoreKind::Probabilities;
    let f_beta = match multi_label {
        Some(_) if probs.iter().flatten().all(|p| p.is_finite()) => Some(metrics::fbeta_multi(
            &probs,
            truth,
            t.f_beta,
            threshold,
            probabilities,
            metrics::FBetaAverage::Samples,
        )?),
        _ => None,
    };
    let (accuracy, confusion) = match multi_label {
        Some(_) => (
            metrics::accuracy_multi(&probs, truth, threshold, probabilities)?,
            Vec::new(),
        ),
        None => (
            correct as f64 / n,
            metrics::confusion_matrix(&predicted_all, &targets, n_classes)?,
        ),
    };
    Ok(Validation {
        loss: loss_sum / n,
        accuracy,
        roc_auc: roc_auc_of(&probs, truth)?,
        f_beta,
        confusion,
        probs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every event; stops before `stop_at` if set.
    #[derive(Default)]
    struct Recorder {
        events: Vec<Event>,
        stop_at: Option<usize>,
        /// What `take_resize_request` answers at each epoch start, in turn.
        resize_requests: Vec<Option<Option<u32>>>,
    }

    impl FitHooks for Recorder {
        fn event(&mut self, event: Event) {
            self.events.push(event);
        }
        fn between_batches(&mut self, step: usize) -> Flow {
            if Some(step) == self.stop_at {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
        fn take_resize_request(&mut self) -> Option<Option<u32>> {
            if self.resize_requests.is_empty() {
                None
            } else {
                self.resize_requests.remove(0)
            }
        }
    }

    impl Recorder {
        fn resizes(&self) -> Vec<(usize, u32)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Resized { epoch, size, .. } => Some((*epoch, *size)),
                    _ => None,
                })
                .collect()
        }

        fn batch_losses(&self) -> Vec<f64> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Batch { loss, .. } => Some(*loss),
                    _ => None,
                })
                .collect()
        }
    }

    /// `n` noisy images per colour (class 0 red, class 1 blue) written as PNGs.
    fn two_colours(dir: &Path, prefix: &str, n: usize, seed: u64) -> Vec<Sample> {
        let mut rng = Rng::new(seed);
        let mut samples = Vec::new();
        for i in 0..2 * n {
            let class = i % 2;
            let img = image::RgbImage::from_fn(40, 40, |_, _| {
                let noise = rng.below(60) as u8;
                if class == 0 {
                    image::Rgb([195 + noise, noise, noise])
                } else {
                    image::Rgb([noise, noise, 195 + noise])
                }
            });
            let path = dir.join(format!("{prefix}{i}.png"));
            img.save(&path).unwrap();
            samples.push(Sample { path, class });
        }
        samples
    }

    fn tiny_config(epochs: usize, lr: f64) -> RunConfig {
        let mut cfg = RunConfig::default();
        cfg.training.epochs = epochs;
        cfg.training.size = 32;
        cfg.training.batch_size = 4;
        cfg.training.lr = lr;
        cfg
    }

    #[test]
    fn schedule_covers_every_step() {
        let mut t = TrainingConfig {
            epochs: 3,
            ..Default::default()
        };
        let s = planned_schedule(&t, 4);
        assert_eq!(s.len(), 12);
        assert!((s[0].0 - t.lr / t.div).abs() < 1e-15);
        assert_eq!(s[0].1, 0.95);
        t.policy = SchedulePolicy::FlatCos;
        t.pct_start = Some(0.75);
        let s = planned_schedule(&t, 4);
        assert_eq!(s[0], (t.lr, ADAM_BETA1));
        assert!(s.iter().all(|x| x.1 == ADAM_BETA1));
    }

    #[test]
    fn same_config_and_data_give_identical_losses() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 1),
            valid: two_colours(dir.path(), "v", 1, 2),
            num_classes: 2,
            dense_targets: None,
        };
        let cfg = tiny_config(2, 1e-3);
        let run = || {
            let mut rec = Recorder::default();
            let result = fit_fold(&cfg, 3, &data, &mut rec, None).unwrap();
            (rec, result)
        };
        let (a, ra) = run();
        let (b, rb) = run();
        assert_eq!(a.batch_losses().len(), 4, "2 epochs x 2 steps");
        let bits = |r: &Recorder| {
            r.batch_losses()
                .iter()
                .map(|l| l.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(ra.valid_loss.to_bits(), rb.valid_loss.to_bits());
        assert_eq!(ra.valid_probs, rb.valid_probs);
        assert_eq!(ra.epochs_done, 2);
        assert!(!ra.stopped);
        // Event order: EpochStarted, Batch x2, EpochEnded per epoch, all of fold 3.
        let kinds: Vec<&str> = a
            .events
            .iter()
            .map(|e| match e {
                Event::EpochStarted { fold: 3, .. } => "start",
                Event::Batch { fold: 3, .. } => "batch",
                Event::EpochEnded { fold: 3, .. } => "end",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "start", "batch", "batch", "end", "start", "batch", "batch", "end"
            ]
        );
        let steps: Vec<usize> = a
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Batch { step, .. } => Some(*step),
                _ => None,
            })
            .collect();
        assert_eq!(steps, [0, 1, 2, 3]);
        assert_eq!(ra.valid_probs.len(), 2);
        for p in &ra.valid_probs {
            assert_eq!(p.len(), 2);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn learns_red_versus_blue() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 6, 3),
            valid: two_colours(dir.path(), "v", 2, 4),
            num_classes: 2,
            dense_targets: None,
        };
        let mut rec = Recorder::default();
        // 2 epochs x 3 steps: each step costs about a second here, mostly the optimiser.
        let result = fit_fold(&tiny_config(2, 3e-3), 0, &data, &mut rec, None).unwrap();
        let losses = rec.batch_losses();
        assert_eq!(losses.len(), 6);
        let first = losses[..3].iter().sum::<f64>() / 3.0;
        let last = losses[3..].iter().sum::<f64>() / 3.0;
        assert!(last < first, "loss went from {first} to {last}");
        assert_eq!(result.accuracy, 1.0, "{result:?}");
    }

    /// Records every point it is called at, as "name@epoch/step".
    struct Trace(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

    impl Trace {
        fn note(&self, name: &str, s: &FitState) {
            self.0
                .borrow_mut()
                .push(format!("{name}@{}/{}", s.epoch, s.step));
        }
    }

    impl Callback for Trace {
        fn before_fit(&mut self, s: &mut FitState) -> Result<()> {
            self.note("before_fit", s);
            Ok(())
        }
        fn before_epoch(&mut self, s: &mut FitState) -> Result<()> {
            self.note("before_epoch", s);
            Ok(())
        }
        fn before_batch(&mut self, s: &mut FitState) -> Result<()> {
            self.note("before_batch", s);
            Ok(())
        }
        fn after_pred(&mut self, s: &mut FitState) -> Result<()> {
            assert!(s.batch.logits.is_some() && s.batch.loss.is_none());
            self.note("after_pred", s);
            Ok(())
        }
        fn after_loss(&mut self, s: &mut FitState) -> Result<()> {
            assert!(s.batch.loss_value.is_finite());
            self.note("after_loss", s);
            Ok(())
        }
        fn before_step(&mut self, s: &mut FitState) -> Result<()> {
            assert!(s.batch.grads.is_some());
            self.note("before_step", s);
            Ok(())
        }
        fn after_step(&mut self, s: &mut FitState) -> Result<()> {
            self.note("after_step", s);
            Ok(())
        }
        fn after_batch(&mut self, s: &mut FitState) -> Result<()> {
            self.note("after_batch", s);
            Ok(())
        }
        fn after_train(&mut self, s: &mut FitState) -> Result<()> {
            assert!(s.train_loss.is_finite());
            self.note("after_train", s);
            Ok(())
        }
        fn after_validate(&mut self, s: &mut FitState) -> Result<()> {
            assert!(s.validation.is_some());
            self.note("after_validate", s);
            Ok(())
        }
        fn after_epoch(&mut self, s: &mut FitState) -> Result<()> {
            self.note("after_epoch", s);
            Ok(())
        }
        fn after_fit(&mut self, s: &mut FitState) -> Result<()> {
            self.note("after_fit", s);
            Ok(())
        }
    }

    #[test]
    fn callbacks_are_called_at_every_point_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 5),
            valid: two_colours(dir.path(), "v", 1, 6),
            num_classes: 2,
            dense_targets: None,
        };
        let trace = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let extra: Vec<Box<dyn Callback>> = vec![Box::new(Trace(trace.clone()))];
        let cfg = tiny_config(1, 1e-3);
        fit_fold_with(&cfg, 0, &data, &mut Recorder::default(), None, extra).unwrap();
        let batch = |step: usize| {
            [
                "before_batch",
                "after_pred",
                "after_loss",
                "before_step",
                "after_step",
                "after_batch",
            ]
            .map(|p| format!("{p}@0/{step}"))
            .to_vec()
        };
        // 8 images, batch 4: two steps; the step counter moves after after_batch.
        let mut expected = vec!["before_fit@0/0".to_string(), "before_epoch@0/0".into()];
        expected.extend(batch(0));
        expected.extend(batch(1));
        expected.extend(
            [
                "after_train@0/2",
                "after_validate@0/2",
                "after_epoch@0/2",
                "after_fit@0/2",
            ]
            .map(String::from),
        );
        assert_eq!(*trace.borrow(), expected);
    }

    /// Stops the fold after its first batch, from `after_batch`.
    struct StopAfterFirstBatch;

    impl Callback for StopAfterFirstBatch {
        fn after_batch(&mut self, s: &mut FitState) -> Result<()> {
            s.stop = true;
            Ok(())
        }
    }

    #[test]
    fn a_callback_can_stop_the_fold_and_the_epoch_is_still_validated() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 5),
            valid: two_colours(dir.path(), "v", 1, 6),
            num_classes: 2,
            dense_targets: None,
        };
        let mut rec = Recorder::default();
        let extra: Vec<Box<dyn Callback>> = vec![Box::new(StopAfterFirstBatch)];
        let result = fit_fold_with(&tiny_config(3, 1e-3), 0, &data, &mut rec, None, extra).unwrap();
        assert!(result.stopped);
        assert_eq!(result.epochs_done, 1);
        assert_eq!(rec.batch_losses().len(), 1);
        assert!(matches!(
            rec.events.last(),
            Some(Event::EpochEnded { epoch: 0, .. })
        ));
    }

    #[test]
    fn stop_ends_after_the_current_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 5),
            valid: two_colours(dir.path(), "v", 1, 6),
            num_classes: 2,
            dense_targets: None,
        };
        let mut rec = Recorder {
            stop_at: Some(1),
            ..Default::default()
        };
        let result = fit_fold(&tiny_config(3, 1e-3), 0, &data, &mut rec, None).unwrap();
        assert!(result.stopped);
        assert_eq!(result.epochs_done, 1);
        assert_eq!(rec.batch_losses().len(), 1);
        assert!(result.train_loss.is_finite() && result.valid_loss.is_finite());
        assert!(
            matches!(rec.events.last(), Some(Event::EpochEnded { epoch: 0, .. })),
            "{:?}",
            rec.events.last()
        );
    }

    #[test]
    fn stop_at_an_epoch_boundary_adds_no_empty_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 2, 5),
            valid: two_colours(dir.path(), "v", 1, 6),
            num_classes: 2,
            dense_targets: None,
        };
        // 4 images, batch 4: one step per epoch, so step 1 is the first batch of epoch 1.
        let mut rec = Recorder {
            stop_at: Some(1),
            ..Default::default()
        };
        let result = fit_fold(&tiny_config(3, 1e-3), 0, &data, &mut rec, None).unwrap();
        assert!(result.stopped);
        assert_eq!(result.epochs_done, 1);
        assert!(result.train_loss.is_finite());
        assert_eq!(rec.events.len(), 3, "{:?}", rec.events);
        assert!(matches!(
            rec.events.last(),
            Some(Event::EpochEnded { epoch: 0, .. })
        ));
        // Stop before anything ran: no events, nothing done.
        let mut rec = Recorder {
            stop_at: Some(0),
            ..Default::default()
        };
        let result = fit_fold(&tiny_config(3, 1e-3), 0, &data, &mut rec, None).unwrap();
        assert!(result.stopped && result.epochs_done == 0 && result.valid_loss.is_nan());
        assert!(rec.events.is_empty());
    }

    #[test]
    fn a_stopped_fold_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 11),
            valid: two_colours(dir.path(), "v", 1, 12),
            num_classes: 2,
            dense_targets: None,
        };
        let cfg = tiny_config(3, 2e-3);
        let whole = fit_fold(&cfg, 1, &data, &mut Recorder::default(), None).unwrap();

        let ckpt = dir.path().join("ckpt").join("fold1.safetensors");
        // 2 steps per epoch: stop before step 3, in the middle of epoch 1.
        let mut first = Recorder {
            stop_at: Some(3),
            ..Default::default()
        };
        let stopped = fit_fold(&cfg, 1, &data, &mut first, Some(&ckpt)).unwrap();
        assert!(stopped.stopped);
        let saved = checkpoint::progress(&ckpt).unwrap().unwrap();
        assert_eq!((saved.epochs_done, saved.steps_done), (1, 2), "{saved:?}");

        let mut second = Recorder::default();
        let resumed = fit_fold(&cfg, 1, &data, &mut second, Some(&ckpt)).unwrap();
        assert!(matches!(
            second.events.first(),
            Some(Event::FoldResumed {
                fold: 1,
                epochs_done: 1,
                step: 2
            })
        ));
        assert_eq!(second.batch_losses().len(), 4, "epochs 1 and 2");
        assert_eq!(resumed.epochs_done, 3);
        assert_eq!(resumed.valid_loss.to_bits(), whole.valid_loss.to_bits());
        assert_eq!(resumed.valid_probs, whole.valid_probs);
        assert_eq!(resumed.train_loss.to_bits(), whole.train_loss.to_bits());

        // A finished fold is reported from its checkpoint without training.
        let mut third = Recorder::default();
        let again = fit_fold(&cfg, 1, &data, &mut third, Some(&ckpt)).unwrap();
        assert!(third.events.is_empty());
        assert_eq!(again.valid_probs, whole.valid_probs);
        // Another fold's or another schedule's checkpoint is refused.
        let err = fit_fold(&cfg, 0, &data, &mut third, Some(&ckpt)).unwrap_err();
        assert!(err.to_string().contains("fold 1"), "{err}");
        let err = fit_fold(&tiny_config(4, 2e-3), 1, &data, &mut third, Some(&ckpt)).unwrap_err();
        assert!(err.to_string().contains("3-epoch"), "{err}");
    }

    #[test]
    fn progressive_resizing_follows_the_schedule_and_resize_now_and_survives_resume() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 21),
            valid: two_colours(dir.path(), "v", 1, 22),
            num_classes: 2,
            dense_targets: None,
        };
        let mut cfg = tiny_config(3, 2e-3);
        cfg.training.size = 16;
        cfg.training.size_schedule = vec![(2, 24)];
        cfg.validate().unwrap();

        let mut planned = Recorder::default();
        let whole = fit_fold(&cfg, 0, &data, &mut planned, None).unwrap();
        assert_eq!(planned.resizes(), [(2, 24)]);
        assert_eq!(whole.epochs_done, 3);

        // `r` during epoch 0 brings the step forward to epoch 1; the schedule's
        // own step at epoch 2 then changes nothing.
        let mut early = Recorder {
            resize_requests: vec![None, Some(None)],
            ..Default::default()
        };
        let ckpt = dir.path().join("early.safetensors");
        let brought_forward = fit_fold(&cfg, 0, &data, &mut early, Some(&ckpt)).unwrap();
        assert_eq!(early.resizes(), [(1, 24)]);
        assert_ne!(brought_forward.valid_probs, whole.valid_probs);
        assert_eq!(checkpoint::progress(&ckpt).unwrap().unwrap().size, Some(24));

        // Killed in epoch 2 (after the switch), resumed: same end as the whole run.
        let ckpt = dir.path().join("planned.safetensors");
        let mut first = Recorder {
            stop_at: Some(5),
            ..Default::default()
        };
        fit_fold(&cfg, 0, &data, &mut first, Some(&ckpt)).unwrap();
        assert_eq!(first.resizes(), [(2, 24)]);
        let saved = checkpoint::progress(&ckpt).unwrap().unwrap();
        assert_eq!((saved.epochs_done, saved.size), (2, Some(16)), "{saved:?}");
        let mut second = Recorder::default();
        let resumed = fit_fold(&cfg, 0, &data, &mut second, Some(&ckpt)).unwrap();
        assert_eq!(second.resizes(), [(2, 24)]);
        assert_eq!(resumed.valid_probs, whole.valid_probs);
        assert_eq!(resumed.train_loss.to_bits(), whole.train_loss.to_bits());
    }

    #[test]
    fn label_smoothing_is_the_validation_loss_too() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 2, 25),
            valid: two_colours(dir.path(), "v", 2, 26),
            num_classes: 2,
            dense_targets: None,
        };
        let mut cfg = tiny_config(1, 1e-3);
        cfg.training.label_smoothing = 0.2;
        let r = fit_fold(&cfg, 0, &data, &mut Recorder::default(), None).unwrap();
        // fastai's LabelSmoothingCrossEntropy from the validation probabilities.
        let eps = 0.2;
        let want = r
            .valid_probs
            .iter()
            .zip(&data.valid)
            .map(|(p, s)| {
                let nll = -(p[s.class] as f64).ln();
                let all: f64 = p.iter().map(|&q| -(q as f64).ln()).sum();
                (1.0 - eps) * nll + eps / 2.0 * all
            })
            .sum::<f64>()
            / data.valid.len() as f64;
        assert!(
            (r.valid_loss - want).abs() < 1e-4,
            "{} vs {want}",
            r.valid_loss
        );
    }

    /// Threshold PLC on `tiny_config(6, 3e-3)`: warm-up 0.3, theta 0.3 -> 0.1.
    fn threshold_plc_config() -> RunConfig {
        let mut cfg = tiny_config(6, 3e-3);
        cfg.label_correction.enabled = true;
        cfg.label_correction.warmup = 0.3;
        cfg.label_correction.theta_start = 0.3;
        cfg.label_correction.theta_end = 0.1;
        cfg.validate().unwrap();
        cfg
    }

    /// Training index of each image path, as events name them.
    fn train_index(data: &FoldData) -> std::collections::HashMap<String, usize> {
        data.train
            .iter()
            .enumerate()
            .map(|(i, s)| (s.path.display().to_string(), i))
            .collect()
    }

    /// A fold stopped before step `stop_at` and resumed from `ckpt` ends with
    /// the probabilities and training loss of the uninterrupted run `whole`.
    fn assert_resumes_as_whole(
        cfg: &RunConfig,
        data: &FoldData,
        ckpt: &Path,
        stop_at: usize,
        whole: &FitResult,
    ) {
        let mut first = Recorder {
            stop_at: Some(stop_at),
            ..Default::default()
        };
        fit_fold(cfg, 0, data, &mut first, Some(ckpt)).unwrap();
        let resumed = fit_fold(cfg, 0, data, &mut Recorder::default(), Some(ckpt)).unwrap();
        assert_eq!(resumed.valid_probs, whole.valid_probs);
        assert_eq!(resumed.train_loss.to_bits(), whole.train_loss.to_bits());
    }

    #[test]
    fn label_correction_follows_its_rule_keeps_its_labels_and_survives_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut train = two_colours(dir.path(), "t", 8, 27);
        // Two wrong labels: a red image called blue and a blue one called red.
        train[0].class = 1;
        train[3].class = 0;
        let data = FoldData {
            train,
            valid: two_colours(dir.path(), "v", 2, 28),
            num_classes: 2,
            dense_targets: None,
        };
        let cfg = threshold_plc_config();
        let ckpt = dir.path().join("plc.safetensors");
        let mut rec = Recorder::default();
        let whole = fit_fold(&cfg, 0, &data, &mut rec, Some(&ckpt)).unwrap();
        // Replay the log: each correction starts from the label the item had
        // then, obeys the rule, and is past the warm-up (ceil(0.3 * 24) = 8).
        let index = train_index(&data);
        let mut labels: Vec<u32> = data.train.iter().map(|s| s.class as u32).collect();
        let mut n = 0;
        for e in &rec.events {
            if let Event::LabelCorrected {
                image,
                old,
                new,
                p_old,
                p_new,
                theta,
                step,
                ..
            } = e
            {
                n += 1;
                let i = index[image];
                assert_eq!(labels[i] as usize, *old, "{e:?}");
                assert!((p_new - p_old).abs() > *theta && p_new > p_old, "{e:?}");
                assert!(*step >= 8 && (0.1..=0.3).contains(theta), "{e:?}");
                labels[i] = *new as u32;
            }
        }
        assert!(n > 0, "no correction at theta 0.3 -> 0.1");
        // The labels the log leads to are the ones kept with the checkpoint.
        let saved = checkpoint::load(&ckpt, &Device::Cpu).unwrap().unwrap();
        assert_eq!(saved.train_labels, labels);

        // Killed in the last epoch, resumed: the labels corrected before go on.
        assert_resumes_as_whole(
            &cfg,
            &data,
            &dir.path().join("again.safetensors"),
            21,
            &whole,
        );
    }

    #[test]
    fn multi_label_correction_flips_classes_by_the_rule_and_survives_resume() {
        let dir = tempfile::tempdir().unwrap();
        let train = two_colours(dir.path(), "t", 8, 27);
        let valid = two_colours(dir.path(), "v", 2, 28);
        let one_hot = |samples: &[Sample]| -> Vec<Vec<f32>> {
            samples
                .iter()
                .map(|s| (0..2).map(|c| f32::from(u8::from(c == s.class))).collect())
                .collect()
        };
        let mut rows = one_hot(&train);
        // Wrong rows: a missing class, and a class too many.
        rows[0] = vec![0.0, 0.0];
        rows[3] = vec![1.0, 1.0];
        let data = FoldData {
            train,
            valid: valid.clone(),
            num_classes: 2,
            dense_targets: Some(DenseTargets {
                train: rows.clone(),
                valid: Some(one_hot(&valid)),
                loss: DenseLoss::BinaryCrossEntropy,
                pos_weight: None,
            }),
        };
        let cfg = threshold_plc_config();
        let ckpt = dir.path().join("plc.safetensors");
        let mut rec = Recorder::default();
        let whole = fit_fold(&cfg, 0, &data, &mut rec, Some(&ckpt)).unwrap();
        // Replay the log: each flip starts from the row the item had then,
        // switches one class to its predicted state by more than theta, after
        // the warm-up, and reports the sets before and after.
        let index = train_index(&data);
        let set_of = |r: &[f32]| (0..2).filter(|&c| r[c] > 0.5).collect::<Vec<usize>>();
        let mut n = 0;
        for e in &rec.events {
            if let Event::LabelCorrected {
                image,
                old,
                new,
                p_old,
                p_new,
                theta,
                step,
                sets,
                ..
            } = e
            {
                n += 1;
                let i = index[image];
                let sets = sets.as_ref().expect("multi-label corrections carry sets");
                assert_eq!(old, new, "{e:?}");
                assert_eq!(sets.old, set_of(&rows[i]), "{e:?}");
                assert!((p_new - p_old).abs() > *theta && p_new > p_old, "{e:?}");
                assert!((p_new + p_old - 1.0).abs() < 1e-6, "{e:?}");
                assert!(*step >= 8 && (0.1..=0.3).contains(theta), "{e:?}");
                rows[i][*old] = 1.0 - rows[i][*old];
                assert_eq!(sets.new, set_of(&rows[i]), "{e:?}");
            }
        }
        assert!(n > 0, "no correction at theta 0.3 -> 0.1");
        let saved = checkpoint::load(&ckpt, &Device::Cpu).unwrap().unwrap();
        assert_eq!(saved.train_rows, rows);

        // Killed in the last epoch, resumed: the rows corrected before go on.
        assert_resumes_as_whole(
            &cfg,
            &data,
            &dir.path().join("again.safetensors"),
            21,
            &whole,
        );
    }

    #[test]
    fn the_ratio_method_corrects_at_epoch_ends_and_survives_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut train = two_colours(dir.path(), "t", 8, 27);
        train[0].class = 1;
        train[3].class = 0;
        let data = FoldData {
            train,
            valid: two_colours(dir.path(), "v", 2, 28),
            num_classes: 2,
            dense_targets: None,
        };
        let mut cfg = tiny_config(6, 3e-3);
        cfg.label_correction.enabled = true;
        cfg.label_correction.method = CorrectionMethod::Ratio;
        cfg.label_correction.warmup = 0.3;
        cfg.label_correction.window = 2;
        cfg.label_correction.delta_start = 0.6;
        cfg.validate().unwrap();
        let steps = steps_per_epoch(data.train.len(), cfg.training.batch_size);
        let ckpt = dir.path().join("ratio.safetensors");
        let mut rec = Recorder::default();
        let whole = fit_fold(&cfg, 0, &data, &mut rec, Some(&ckpt)).unwrap();
        let corrections: Vec<&Event> = rec
            .events
            .iter()
            .filter(|e| matches!(e, Event::LabelCorrected { .. }))
            .collect();
        assert!(!corrections.is_empty(), "no correction at delta 0.6");
        let first_step = (0.3 * (6 * steps) as f64).ceil() as usize;
        for e in &corrections {
            let Event::LabelCorrected {
                step,
                p_old,
                p_new,
                theta,
                ..
            } = e
            else {
                unreachable!()
            };
            // At the last step of an epoch past the warm-up, by the ratio rule.
            assert_eq!((step + 1) % steps, 0, "{e:?}");
            assert!(step + 1 >= first_step, "{e:?}");
            assert!(p_old / p_new < *theta && *theta <= 0.9, "{e:?}");
        }
        let saved = checkpoint::load(&ckpt, &Device::Cpu).unwrap().unwrap();
        assert_eq!(saved.train_labels.len(), data.train.len());
        assert!(saved.correction_state.contains_key("history"));

        // Killed in the last epoch, resumed: the history and delta go on.
        let ckpt = dir.path().join("again.safetensors");
        let mut first = Recorder {
            stop_at: Some(6 * steps - 3),
            ..Default::default()
        };
        fit_fold(&cfg, 0, &data, &mut first, Some(&ckpt)).unwrap();
        let mut second = Recorder::default();
        let resumed = fit_fold(&cfg, 0, &data, &mut second, Some(&ckpt)).unwrap();
        assert_eq!(resumed.valid_probs, whole.valid_probs);
        let last_epoch = |r: &Recorder| -> Vec<Event> {
            r.events
                .iter()
                .filter(|e| matches!(e, Event::LabelCorrected { epoch: 5, .. }))
                .cloned()
                .collect()
        };
        assert_eq!(last_epoch(&second), last_epoch(&rec));
    }

    #[test]
    fn soft_targets_train_on_the_rows_and_validate_on_the_classes() {
        let dir = tempfile::tempdir().unwrap();
        let hard = FoldData {
            train: two_colours(dir.path(), "t", 4, 31),
            valid: two_colours(dir.path(), "v", 2, 32),
            num_classes: 2,
            dense_targets: None,
        };
        let one_hot: Vec<Vec<f32>> = hard
            .train
            .iter()
            .map(|s| (0..2).map(|c| f32::from(u8::from(c == s.class))).collect())
            .collect();
        let cfg = tiny_config(2, 1e-3);
        let run = |soft: Option<Vec<Vec<f32>>>| {
            let data = FoldData {
                dense_targets: soft.map(DenseTargets::soft),
                ..hard.clone()
            };
            fit_fold(&cfg, 0, &data, &mut Recorder::default(), None).unwrap()
        };
        let plain = run(None);
        // One-hot rows are the plain labels (up to float rounding).
        let same = run(Some(one_hot.clone()));
        assert!((same.train_loss - plain.train_loss).abs() < 1e-4);
        assert!((same.valid_loss - plain.valid_loss).abs() < 1e-4);
        // Inverted rows train towards the other class: a different loss, and
        // the validation still scores against the given classes.
        let flipped: Vec<Vec<f32>> = one_hot.iter().map(|r| vec![r[1], r[0]]).collect();
        let other = run(Some(flipped));
        assert!((other.train_loss - plain.train_loss).abs() > 1e-3);
        assert!(other.valid_loss > plain.valid_loss);
        // Rows that do not fit the fold are refused.
        let data = FoldData {
            dense_targets: Some(DenseTargets::soft(vec![vec![1.0, 0.0]])),
            ..hard.clone()
        };
        assert!(fit_fold(&cfg, 0, &data, &mut Recorder::default(), None).is_err());
    }

    #[test]
    fn a_refused_resize_is_a_warning_and_the_size_stays() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 2, 23),
            valid: two_colours(dir.path(), "v", 1, 24),
            num_classes: 2,
            dense_targets: None,
        };
        let mut rec = Recorder {
            resize_requests: vec![None, Some(None)],
            ..Default::default()
        };
        fit_fold(&tiny_config(2, 1e-3), 0, &data, &mut rec, None).unwrap();
        assert!(rec.resizes().is_empty());
        assert!(rec.events.iter().any(|e| matches!(
            e,
            Event::Warning { message } if message.contains("no size above 32")
        )));
    }

    #[test]
    fn a_non_finite_loss_skips_the_step_warns_and_stops_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 13),
            valid: two_colours(dir.path(), "v", 1, 14),
            num_classes: 2,
            dense_targets: None,
        };
        // Each Adam step moves a weight by about lr: 1e30 overflows the logits at once.
        let mut rec = Recorder::default();
        let result = fit_fold(&tiny_config(3, 1e30), 0, &data, &mut rec, None).unwrap();
        assert!(result.stopped, "{result:?}");
        let warning = rec.events.iter().find_map(|e| match e {
            Event::Warning { message } => Some(message.clone()),
            _ => None,
        });
        let warning = warning.expect("a warning event");
        assert!(warning.contains("step was skipped"), "{warning}");
        // Only finite losses are reported as batches, and nothing ran after the stop
        // but the epoch's validation.
        assert!(rec.batch_losses().iter().all(|l| l.is_finite()));
        assert!(rec.batch_losses().len() < 6);
    }

    #[test]
    fn grad_clip_changes_the_trajectory_only_when_it_bites() {
        let dir = tempfile::tempdir().unwrap();
        let data = FoldData {
            train: two_colours(dir.path(), "t", 4, 15),
            valid: two_colours(dir.path(), "v", 1, 16),
            num_classes: 2,
            dense_targets: None,
        };
        let losses = |clip: Option<f64>| {
            let mut cfg = tiny_config(1, 1e-3);
            cfg.training.grad_clip = clip;
            let mut rec = Recorder::default();
            fit_fold(&cfg, 0, &data, &mut rec, None).unwrap();
            rec.batch_losses()
        };
        let plain = losses(None);
        assert_eq!(plain, losses(Some(1e12)), "a huge limit never clips");
        let clipped = losses(Some(1e-3));
        assert_eq!(plain[0], clipped[0], "the first loss comes before any step");
        assert_ne!(plain[1], clipped[1]);
    }

    #[test]
    fn corrupt_image_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut train = two_colours(dir.path(), "t", 2, 7);
        let bad = dir.path().join("broken.jpg");
        std::fs::write(&bad, [0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 2]).unwrap();
        train.push(Sample {
            path: bad,
            class: 0,
        });
        let data = FoldData {
            train,
            valid: two_colours(dir.path(), "v", 1, 8),
            num_classes: 2,
            dense_targets: None,
        };
        let err = fit_fold(
            &tiny_config(1, 1e-3),
            0,
            &data,
            &mut Recorder::default(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("broken.jpg"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_fold_data_is_an_input_error() {
        let s = |class| Sample {
            path: "x.png".into(),
            class,
        };
        let cfg = tiny_config(1, 1e-3);
        let cases = [
            (vec![s(0), s(1)], vec![s(2)], 2, "out of range"),
            (vec![s(0)], vec![s(1)], 2, "at least 2 training"),
            (vec![s(0), s(1)], vec![], 2, "validation"),
            (vec![s(0), s(0)], vec![s(0)], 1, "2 classes"),
        ];
        for (train, valid, num_classes, want) in cases {
            let data = FoldData {
                train,
                valid,
                num_classes,
                dense_targets: None,
            };
            let err = fit_fold(&cfg, 0, &data, &mut Recorder::default(), None).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
