//! The engine: a run on its own thread.
//!
//! It trains the folds one after another, writes everything to the run
//! directory, emits `Event`s over a channel (and to `events.jsonl`), and obeys
//! `Command`s between batches. candle is synchronous, so the engine is a plain
//! thread; the dashboard's tokio loop receives its events over an unbounded
//! channel whose sender works from any thread.

use crate::config::{CorrectionMethod, OnCorrupt, RunConfig, TaskChoice};
use crate::data::sampling::{Resampling, class_counts};
use crate::data::{Dataset, Folds, assign_folds, scan};
use crate::error::{Error, Result};
use crate::run::control::ControlServer;
use crate::run::events::{Command, DatasetSummary, Event, Stamped, TOP_LOSSES, top_losses};
use crate::run::rundir::{CorrectionsLog, EventLog, MetricsLog, RunDir};
use crate::train::checkpoint;
use crate::train::dense_loss::DenseTargets;
use crate::train::fit::{
    FitHooks, Flow, FoldData, Sample, fit_fold, planned_schedule, steps_per_epoch,
};
use crate::train::soft_labels;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// What the caller keeps of a started engine.
pub struct EngineHandle {
    pub commands: Sender<Command>,
    pub events: UnboundedReceiver<Stamped>,
    pub thread: std::thread::JoinHandle<Result<RunOutcome>>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub stopped: bool,
    /// Every fold trained to the end.
    pub folds: Vec<FoldOutcome>,
}

/// The final validation of one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldOutcome {
    pub fold: usize,
    pub valid_loss: f64,
    pub accuracy: f64,
    pub roc_auc: Option<f64>,
}

/// Writes each event to events.jsonl and the metrics file, then sends it on.
struct EventSink {
    log: EventLog,
    metrics: MetricsLog,
    corrections: CorrectionsLog,
    tx: UnboundedSender<Stamped>,
    /// The first write error; reported at the end instead of killing the run mid-batch.
    write_error: Option<Error>,
    /// Dashboards in other processes (`orchard attach`); None if it could not listen.
    control: Option<ControlServer>,
}

impl EventSink {
    fn emit(&mut self, event: Event) {
        let stamped = Stamped::now(event);
        let mut write = || {
            self.log
                .append(&stamped)
                .and_then(|_| self.metrics.record(&stamped.event))
                .and_then(|_| self.corrections.record(&stamped.event))
        };
        let written = match &self.control {
            Some(control) => control.publish(&stamped, write),
            None => write(),
        };
        if let Err(e) = written
            && self.write_error.is_none()
        {
            self.write_error = Some(e);
        }
        // A closed receiver (dashboard gone) must not stop the run.
        let _ = self.tx.send(stamped);
    }
}

/// Obeys Commands between batches and forwards the training loop's events.
struct Steering<'a> {
    sink: &'a mut EventSink,
    commands: &'a Receiver<Command>,
    paused: bool,
    stop_requested: bool,
    /// Nobody can send Resume any more (every sender, the control socket
    /// included, is gone): never block again.
    detached: bool,
    /// A dashboard watches the run (a NaN loss pauses instead of stopping).
    interactive: bool,
    /// A `ResizeNow` not yet taken by the training loop.
    resize_request: Option<Option<u32>>,
    /// A `SetTheta` not yet taken by label correction.
    theta_request: Option<f64>,
    /// (image id, image file, class) of the current fold's validation items,
    /// in the order the training loop validates them; empty for multi-label
    /// data, whose items have no single label to be mistaken about.
    valid_items: Vec<(String, String, usize)>,
    /// The run's cache directory (images beyond `data.cache_mb`).
    cache_dir: std::path::PathBuf,
}

impl Steering<'_> {
    fn handle(&mut self, cmd: Command, step: usize) {
        match cmd {
            // A stopping run does not pause: it is on its way out. The Stopping
            // event already told every dashboard so.
            Command::Pause if self.stop_requested => self.sink.emit(Event::Stopping { step }),
            Command::Pause => {
                self.paused = true;
                self.sink.emit(Event::Paused { step });
            }
            Command::Resume => {
                self.paused = false;
                self.sink.emit(Event::Resumed { step });
            }
            Command::Stop => {
                self.stop_requested = true;
                // A paused run that is asked to stop must get going to stop.
                self.paused = false;
                self.sink.emit(Event::Stopping { step });
            }
            Command::ResizeNow { size } => {
                self.resize_request = Some(size);
                self.sink.emit(Event::ResizeRequested { step, size });
            }
            Command::SetTheta { theta } => {
                self.theta_request = Some(theta);
                self.sink.emit(Event::ThetaSet { step, theta });
            }
        }
    }

    /// Take every waiting command; while paused, block until one arrives.
    fn poll(&mut self, step: usize) {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.handle(cmd, step),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.detached = true;
                    break;
                }
            }
        }
        while self.paused && !self.detached {
            match self.commands.recv() {
                Ok(cmd) => self.handle(cmd, step),
                Err(_) => {
                    self.detached = true;
                    self.paused = false;
                    self.sink.emit(Event::Resumed { step });
                }
            }
        }
    }
}

impl FitHooks for Steering<'_> {
    fn event(&mut self, event: Event) {
        self.sink.emit(event);
    }

    fn cache_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.cache_dir.clone())
    }

    fn between_batches(&mut self, step: usize) -> Flow {
        self.poll(step);
        if self.stop_requested {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// With a dashboard the run pauses, so the user can look and decide; a
    /// run nobody watches stops (after validating this epoch, as `s` does).
    fn take_resize_request(&mut self) -> Option<Option<u32>> {
        self.resize_request.take()
    }

    fn take_theta_request(&mut self) -> Option<f64> {
        self.theta_request.take()
    }

    fn validated(&mut self, fold: usize, epoch: usize, probs: &[Vec<f32>]) {
        if probs.len() != self.valid_items.len() {
            return;
        }
        let labels: Vec<usize> = self.valid_items.iter().map(|v| v.2).collect();
        let items = top_losses(&labels, probs, TOP_LOSSES, |i| {
            let (id, path, _) = &self.valid_items[i];
            (id.clone(), path.clone())
        });
        self.sink
            .emit(Event::ValidationTopLosses { fold, epoch, items });
    }

    fn non_finite_loss(&mut self, step: usize) -> Flow {
        if self.interactive && !self.detached {
            self.handle(Command::Pause, step);
            self.between_batches(step)
        } else {
            self.handle(Command::Stop, step);
            Flow::Stop
        }
    }
}

/// Everything the engine needs, resolved before the thread starts so that bad
/// input is reported before any dashboard opens.
pub struct RunPlan {
    pub config: RunConfig,
    pub dataset: Dataset,
    pub folds: Folds,
    pub resampling: Resampling,
    pub run_dir: RunDir,
    /// Soft labelling's blended target of every data set item (item order).
    pub soft_targets: Option<Vec<Vec<f32>>>,
    /// A dashboard steers the run (set by the caller before `start`).
    pub interactive: bool,
}

/// `training.pos_weight` weighs classes of multi-label data, by name.
fn check_pos_weight(config: &RunConfig, dataset: &Dataset) -> Result<()> {
    let weights = &config.training.pos_weight;
    if weights.is_empty() {
        return Ok(());
    }
    if !dataset.task.is_multi_label() {
        return Err(Error::input(format!(
            "{}: training.pos_weight weighs the binary cross-entropy of multi-label data, but this data set is single-label\nfix: remove training.pos_weight (for imbalanced single-label data use folds.oversample)",
            dataset.source.display()
        )));
    }
    if let Some(name) = weights.keys().find(|k| !dataset.classes.contains(k)) {
        return Err(Error::input(format!(
            "config key training.pos_weight.{name}: no class of that name in {}\nfix: use one of: {}",
            dataset.source.display(),
            dataset.classes.join(", ")
        )));
    }
    Ok(())
}

impl RunPlan {
    /// Check the config against the data and assign folds; only then create
    /// the run directory (so bad input leaves nothing behind) and write
    /// config.toml and folds.csv.
    pub fn prepare(mut config: RunConfig, dataset: Dataset, run_path: &Path) -> Result<RunPlan> {
        config.validate()?;
        // The run's config.toml names the task it trained (prediction and
        // resume must not guess again).
        config.data.task = TaskChoice::from(dataset.task);
        let lc = &config.label_correction;
        if dataset.task.is_multi_label() && lc.enabled && lc.method == CorrectionMethod::Ratio {
            return Err(Error::input(format!(
                "{}: label_correction.method = \"ratio\" works on single-label data only\nfix: use method = \"threshold\" (per-class corrections on sigmoid outputs) for multi-label data",
                dataset.source.display()
            )));
        }
        // Undecodable images leave before the folds, so every later file
        // (folds, OOF, checkpoints) is about the same images.
        let skip = config.data.on_corrupt == OnCorrupt::Skip;
        let (dataset, skipped) = if skip {
            scan::drop_undecodable(dataset)?
        } else {
            (dataset, Vec::new())
        };
        for s in &skipped {
            eprintln!("warning: skipped {}: {}", s.path.display(), s.reason);
        }
        check_pos_weight(&config, &dataset)?;
        let folds = assign_folds(&dataset, config.folds.k, config.folds.seed)?;
        let resampling = Resampling::from_names(
            &dataset,
            &config.folds.oversample,
            &config.folds.undersample,
        )?;
        let soft_targets = soft_labels::soft_targets(&dataset, &config.soft_labels)?;
        let run_dir = RunDir::create(run_path)?;
        run_dir.write_config(&config)?;
        run_dir.write_folds(&dataset, &folds)?;
        if skip {
            scan::write_skipped(&run_dir.file(scan::SKIPPED_FILE), &skipped)?;
        }
        if let Some(rows) = &soft_targets {
            soft_labels::write_targets(&run_dir.file(soft_labels::TARGETS_FILE), &dataset, rows)?;
        }
        Ok(RunPlan {
            config,
            dataset,
            folds,
            resampling,
            run_dir,
            soft_targets,
            interactive: false,
        })
    }

    /// The folds this run trains.
    pub fn fold_list(&self) -> Vec<usize> {
        match self.config.folds.fold {
            Some(f) => vec![f],
            None => (0..self.folds.k).collect(),
        }
    }

    /// The target rows of a fold whose items are not just classes: soft
    /// labels (training only) and multi-label data (0/1 rows, or their soft
    /// blend for training).
    pub fn dense_targets(&self, train: &[usize], valid: &[usize]) -> Option<DenseTargets> {
        let ds = &self.dataset;
        let soft = self.soft_targets.as_ref();
        let multi_hot = |i: usize| {
            let mut row = vec![0.0; ds.num_classes()];
            for &c in &ds.items[i].labels {
                row[c] = 1.0;
            }
            row
        };
        let train_rows = |row: &dyn Fn(usize) -> Vec<f32>| train.iter().map(|&i| row(i)).collect();
        if ds.task.is_multi_label() {
            let train = match soft {
                Some(rows) => train_rows(&|i| rows[i].clone()),
                None => train_rows(&multi_hot),
            };
            let valid = valid.iter().map(|&i| multi_hot(i)).collect();
            let mut targets = DenseTargets::multi_label(train, valid);
            let weights = &self.config.training.pos_weight;
            if !weights.is_empty() {
                targets.pos_weight = Some(
                    ds.classes
                        .iter()
                        .map(|c| weights.get(c).copied().unwrap_or(1.0) as f32)
                        .collect(),
                );
            }
            return Some(targets);
        }
        soft.map(|rows| DenseTargets::soft(train_rows(&|i| rows[i].clone())))
    }

    /// The resampled training indices of fold `f`.
    pub fn train_indices(&self, f: usize) -> Vec<usize> {
        self.resampling.apply(
            &self.dataset,
            &self.folds.train_indices(f),
            self.config.folds.seed,
            f,
        )
    }
}

/// Start the engine thread.
pub fn start(plan: RunPlan) -> Result<EngineHandle> {
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, ev_rx) = unbounded_channel();
    let control = listen_for_dashboards(&plan.run_dir, &cmd_tx)?;
    let sink = EventSink {
        log: EventLog::open(plan.run_dir.file("events.jsonl"))?,
        metrics: MetricsLog::open(plan.run_dir.file("metrics.csv"))?,
        corrections: CorrectionsLog::open(plan.run_dir.file(CorrectionsLog::FILE), &plan.dataset)?,
        tx: ev_tx,
        write_error: None,
        control,
    };
    let thread = std::thread::Builder::new()
        .name("orchard-engine".into())
        .spawn(move || run_engine(plan, sink, cmd_rx))
        .map_err(|e| Error::Internal(format!("cannot start the engine thread: {e}")))?;
    Ok(EngineHandle {
        commands: cmd_tx,
        events: ev_rx,
        thread,
    })
}

/// The control socket of the run. A live run already in this directory is
/// refused; any other failure (say, a path longer than a socket address
/// allows) only costs `orchard attach`, so the run goes on without it.
fn listen_for_dashboards(
    run_dir: &RunDir,
    commands: &Sender<Command>,
) -> Result<Option<ControlServer>> {
    match ControlServer::bind(&run_dir.path, commands.clone()) {
        Ok(server) => Ok(Some(server)),
        Err(e @ Error::Input(_)) => Err(e),
        Err(e) => {
            eprintln!(
                "warning: no control socket, `orchard attach` will show only the history: {e}"
            );
            Ok(None)
        }
    }
}

fn run_engine(
    plan: RunPlan,
    mut sink: EventSink,
    commands: Receiver<Command>,
) -> Result<RunOutcome> {
    let result = train_folds(&plan, &mut sink, &commands);
    let (status, message) = match &result {
        Ok(o) if o.stopped => ("stopped", "stopped on request".to_string()),
        Ok(o) => {
            let n = o.folds.len().max(1) as f64;
            let acc = o.folds.iter().map(|f| f.accuracy).sum::<f64>() / n;
            let aucs: Vec<f64> = o.folds.iter().filter_map(|f| f.roc_auc).collect();
            let auc = match aucs.len() {
                0 => String::new(),
                k => format!(", mean ROC AUC {:.4}", aucs.iter().sum::<f64>() / k as f64),
            };
            (
                "completed",
                format!("{} fold(s), mean accuracy {acc:.4}{auc}", o.folds.len()),
            )
        }
        Err(e) => ("failed", e.to_string()),
    };
    sink.emit(Event::RunEnded {
        status: status.into(),
        message,
    });
    if let Some(e) = sink.write_error.take() {
        return Err(e);
    }
    result
}

/// The epochs where progressive resizing's schedule changes the size.
fn size_changes(t: &crate::config::TrainingConfig) -> Vec<(usize, u32)> {
    let plan = crate::train::resizing::SizePlan::from_config(t);
    (1..t.epochs)
        .filter(|&e| plan.scheduled(e) != plan.scheduled(e - 1))
        .map(|e| (e, plan.scheduled(e)))
        .collect()
}

fn train_folds(
    plan: &RunPlan,
    sink: &mut EventSink,
    commands: &Receiver<Command>,
) -> Result<RunOutcome> {
    let cfg = &plan.config;
    let ds = &plan.dataset;
    let fold_list = plan.fold_list();
    // Steps per epoch differ by at most one image between folds; the planned
    // curve shown up front is that of the first fold.
    let first_train = plan.train_indices(fold_list[0]).len();
    let schedule = planned_schedule(
        &cfg.training,
        steps_per_epoch(first_train, cfg.training.batch_size),
    );
    sink.emit(Event::RunStarted {
        run_dir: plan.run_dir.path.display().to_string(),
        dataset: DatasetSummary {
            name: ds.display_name(),
            task: ds.task.to_string(),
            images: ds.len(),
            classes: ds.classes.clone(),
            class_counts: ds.class_counts(),
        },
        fold_counts: plan.folds.counts(ds),
        folds: fold_list.clone(),
        arch: cfg.model.arch.clone(),
        device: cfg.training.device.clone(),
        size: cfg.training.size,
        epochs: cfg.training.epochs,
        batch_size: cfg.training.batch_size,
        lr_schedule: schedule.iter().map(|s| s.0).collect(),
        mom_schedule: schedule.iter().map(|s| s.1).collect(),
        size_schedule: size_changes(&cfg.training),
    });
    let mut steering = Steering {
        sink,
        commands,
        paused: false,
        stop_requested: false,
        detached: false,
        interactive: plan.interactive,
        resize_request: None,
        theta_request: None,
        valid_items: Vec::new(),
        cache_dir: plan.run_dir.path.join("cache"),
    };
    let mut outcome = RunOutcome {
        stopped: false,
        folds: Vec::new(),
    };
    // Per fold: dataset statistics come from each fold's own training images.
    let mut normalization = std::collections::BTreeMap::new();
    for &f in &fold_list {
        let train = plan.train_indices(f);
        let valid = plan.folds.valid_indices(f);
        let sample = |i: &usize| Sample {
            path: ds.items[*i].path.clone(),
            class: ds.items[*i].class(),
        };
        let data = FoldData {
            train: train.iter().map(sample).collect(),
            valid: valid.iter().map(sample).collect(),
            num_classes: ds.num_classes(),
            dense_targets: plan.dense_targets(&train, &valid),
        };
        steering.valid_items = valid
            .iter()
            .filter(|_| !ds.task.is_multi_label())
            .map(|&i| {
                let item = &ds.items[i];
                (
                    item.id.clone(),
                    item.path.display().to_string(),
                    item.class(),
                )
            })
            .collect();
        let ckpt = checkpoint::fold_path(&plan.run_dir.path, f);
        // A fold a resumed run finished before is reported, not retrained, and
        // its events are in events.jsonl already.
        let progress = checkpoint::progress(&ckpt)?;
        let finished_before = progress.as_ref().is_some_and(|p| p.finished());
        if !finished_before {
            // Corrections of epochs the fold redoes would be listed twice.
            let from = progress.as_ref().map_or(0, |p| p.epochs_done);
            plan.run_dir.drop_correction_rows(f, from)?;
            steering.sink.emit(Event::FoldStarted {
                fold: f,
                n_train: train.len(),
                n_valid: valid.len(),
                train_counts: class_counts(ds, &train),
                steps_per_epoch: steps_per_epoch(train.len(), cfg.training.batch_size),
            });
        }
        let r = fit_fold(cfg, f, &data, &mut steering, Some(&ckpt))?;
        if r.epochs_done > 0 {
            normalization.insert(f, r.normalization.clone());
            plan.run_dir.write_normalization(&normalization)?;
        }
        // A fold stopped before its first epoch ended has no metrics to report.
        if r.epochs_done > 0 && !finished_before {
            steering.sink.emit(Event::FoldEnded {
                fold: f,
                valid_loss: r.valid_loss,
                accuracy: r.accuracy,
                roc_auc: r.roc_auc,
            });
        }
        if r.stopped {
            outcome.stopped = true;
            break;
        }
        outcome.folds.push(FoldOutcome {
            fold: f,
            valid_loss: r.valid_loss,
            accuracy: r.accuracy,
            roc_auc: r.roc_auc,
        });
        // A run killed while writing this fold's rows (or resumed after it)
        // must not list them twice.
        plan.run_dir.drop_oof_rows(f)?;
        plan.run_dir.append_oof(ds, &valid, f, &r.valid_probs)?;
        if f == *fold_list.last().unwrap_or(&f) {
            break;
        }
        // A Stop that arrived during the last validation ends the run before the
        // next fold starts.
        steering.poll(0);
        if steering.stop_requested {
            outcome.stopped = true;
            break;
        }
    }
    Ok(outcome)
}
