//! The dashboard's model: everything it shows, built only by folding events.
//!
//! `App::apply` is the one way run facts get in, so a live channel, a replayed
//! `events.jsonl` and a test fixture all produce the same screen. What the user
//! asked for but the engine has not yet confirmed is kept apart (`pending`):
//! the state badge only ever shows what an acknowledgement event said.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::run::reviews::{CorrectionsFile, ReviewRow};
use crate::run::{Command, DatasetSummary, Event, Stamped};

use super::eta::StepTimer;
use super::loss_history::LossHistory;
use super::viewer::{TopLosses, ViewerState};

/// How many warnings are kept; the oldest go first.
const MAX_WARNINGS: usize = 200;
/// Label corrections kept for the PLC log.
const MAX_CORRECTIONS: usize = 1000;

/// What the engine is doing, as its events last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// No `RunStarted` yet.
    Waiting,
    Running,
    Paused,
    /// A stop was acknowledged; the run ends after the current epoch.
    Stopping,
    Ended(EndStatus),
}

/// How a run ended, from `RunEnded.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStatus {
    Completed,
    Stopped,
    Failed,
}

impl EndStatus {
    fn parse(status: &str) -> Self {
        match status {
            "completed" => EndStatus::Completed,
            "stopped" => EndStatus::Stopped,
            // Anything unknown is treated as the worst case, so it is not missed.
            _ => EndStatus::Failed,
        }
    }
}

impl RunState {
    /// The word on the state badge.
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Waiting => "WAITING",
            RunState::Running => "RUNNING",
            RunState::Paused => "PAUSED",
            RunState::Stopping => "STOPPING",
            RunState::Ended(EndStatus::Completed) => "FINISHED",
            RunState::Ended(EndStatus::Stopped) => "STOPPED",
            RunState::Ended(EndStatus::Failed) => "FAILED",
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self, RunState::Ended(_))
    }
}

/// One label correction, as the PLC log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrectionRow {
    pub fold: usize,
    pub epoch: usize,
    pub step: usize,
    pub image: String,
    pub old: usize,
    pub new: usize,
    pub p_old: f64,
    pub p_new: f64,
    pub theta: f64,
    /// Multi-label: the image's classes before and after (`old` = `new` = the flipped class).
    pub sets: Option<crate::run::LabelSets>,
}

/// The run's plan, as announced by `RunStarted`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub run_dir: String,
    pub dataset: DatasetSummary,
    /// fold x class image counts.
    pub fold_counts: Vec<Vec<usize>>,
    /// The folds this run trains, in order.
    pub folds: Vec<usize>,
    pub arch: String,
    pub device: String,
    pub size: u32,
    pub epochs: usize,
    pub batch_size: usize,
    /// Planned learning rate of every step of one fold.
    pub lr_schedule: Vec<f64>,
    pub mom_schedule: Vec<f64>,
    /// (epoch, size) where the planned size changes.
    pub size_schedule: Vec<(usize, u32)>,
}

/// One row of the metrics table (one epoch of one fold).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub fold: usize,
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub accuracy: f64,
    pub roc_auc: Option<f64>,
    pub seconds: f64,
}

/// The validation result of a finished fold.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldResult {
    pub fold: usize,
    pub valid_loss: f64,
    pub accuracy: f64,
    pub roc_auc: Option<f64>,
}

/// A window drawn over the panes. Only one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    /// "Stop the run? (y/n)"
    ConfirmStop,
    /// The mislabeled-item viewer (`viewer`).
    Viewer,
}

/// A change of the training images' size, as `Resized` announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeMark {
    pub fold: usize,
    pub epoch: usize,
    pub size: u32,
}

/// The run's `[label_correction]` as the dashboard needs it: what `+`/`-`
/// start from and how far they move theta, and the schedule the PLC pane shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThetaKeys {
    pub start: f64,
    pub step: f64,
    pub enabled: bool,
    pub end: f64,
    /// Share of the fold's steps before the first correction.
    pub warmup: f64,
    pub schedule: crate::config::ThetaSchedule,
    pub method: crate::config::CorrectionMethod,
}

impl Default for ThetaKeys {
    /// The defaults of `[label_correction]`.
    fn default() -> Self {
        let plc = crate::config::LabelCorrectionConfig::default();
        ThetaKeys::from_config(&plc)
    }
}

impl ThetaKeys {
    pub fn from_config(plc: &crate::config::LabelCorrectionConfig) -> Self {
        ThetaKeys {
            start: plc.theta_start,
            step: plc.theta_step,
            enabled: plc.enabled,
            end: plc.theta_end,
            warmup: plc.warmup,
            schedule: plc.schedule,
            method: plc.method,
        }
    }
}

/// Everything the dashboard draws.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub plan: Option<RunPlan>,
    pub state: RunState,
    /// The fold being trained (its id, as in folds.csv).
    pub fold: Option<usize>,
    /// Folds of this run that have ended.
    pub folds_done: usize,
    pub steps_per_epoch: Option<usize>,
    pub n_train: Option<usize>,
    pub n_valid: Option<usize>,
    /// 0-based epoch within the current fold.
    pub epoch: Option<usize>,
    /// 0-based step within the current fold of the latest batch.
    pub step: Option<usize>,
    /// The current fold's batch, smoothed and validation losses.
    pub losses: LossHistory,
    /// Every ended epoch of the run.
    pub epochs: Vec<EpochRow>,
    pub fold_results: Vec<FoldResult>,
    /// `confusion[actual][predicted]` of the last validation.
    pub confusion: Option<Vec<Vec<usize>>>,
    /// Label correction's threshold as last acknowledged or used by the engine.
    pub theta: Option<f64>,
    /// Label corrections of the run, oldest first (the latest MAX_CORRECTIONS).
    pub corrections: Vec<CorrectionRow>,
    /// Every label correction of the run, also those no longer kept.
    pub corrections_total: usize,
    pub warnings: Vec<String>,
    /// A command sent and not yet acknowledged.
    pub pending: Option<Command>,
    /// The user has asked to stop; the dashboard leaves when the run ends.
    pub stop_requested: bool,
    /// The engine's event stream closed (or a command could not be sent).
    pub engine_gone: bool,
    /// `RunEnded.message`.
    pub end_message: Option<String>,
    pub overlay: Overlay,
    /// Set by the key handler: leave the dashboard now.
    pub quit: bool,
    /// This dashboard watches a run another process started (`orchard
    /// attach`): leaving never stops it.
    pub attached: bool,
    pub theta_keys: ThetaKeys,
    /// The chosen tab where panes share a place (taken modulo their number).
    pub tab: usize,
    /// The loss pane plots ln(loss) (key `l`).
    pub log_scale: bool,
    /// The PLC log shows corrections this many rows back from the newest.
    pub plc_scroll: usize,
    /// Time of `RunStarted` (seconds since the Unix epoch).
    pub started_at: Option<f64>,
    /// Time of the latest event; "now" as far as the screen knows, which keeps
    /// replays and snapshots independent of the wall clock.
    pub last_event_at: Option<f64>,
    /// The latest validation's highest losses (`ValidationTopLosses`).
    pub top_losses: Option<TopLosses>,
    /// `RUN_DIR/corrections.csv` as the event loop last read it, plus the
    /// reviews this dashboard made since.
    pub corrections_file: CorrectionsFile,
    /// Image id -> image file, for showing corrected images (their rows
    /// name only the id).
    pub image_paths: Arc<HashMap<String, PathBuf>>,
    pub viewer: ViewerState,
    /// Reviews made in the viewer, not yet written to corrections.csv.
    pub reviews_out: Vec<ReviewRow>,
    /// Every size change of the run, oldest first.
    pub resizes: Vec<ResizeMark>,
    /// Steps done in the current fold (0 between folds).
    fold_steps_done: usize,
    timer: StepTimer,
}

impl Default for App {
    fn default() -> Self {
        App {
            plan: None,
            state: RunState::Waiting,
            fold: None,
            folds_done: 0,
            steps_per_epoch: None,
            n_train: None,
            n_valid: None,
            epoch: None,
            step: None,
            losses: LossHistory::default(),
            epochs: Vec::new(),
            fold_results: Vec::new(),
            confusion: None,
            theta: None,
            corrections: Vec::new(),
            corrections_total: 0,
            warnings: Vec::new(),
            pending: None,
            stop_requested: false,
            engine_gone: false,
            end_message: None,
            overlay: Overlay::None,
            quit: false,
            attached: false,
            theta_keys: ThetaKeys::default(),
            tab: 0,
            log_scale: false,
            plc_scroll: 0,
            started_at: None,
            last_event_at: None,
            top_losses: None,
            corrections_file: CorrectionsFile::default(),
            image_paths: Arc::default(),
            viewer: ViewerState::default(),
            reviews_out: Vec::new(),
            resizes: Vec::new(),
            fold_steps_done: 0,
            timer: StepTimer::default(),
        }
    }
}

impl App {
    /// A state built from a recorded stream, e.g. the lines of events.jsonl.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Stamped>) -> Self {
        let mut app = App::default();
        for ev in events {
            app.apply(ev);
        }
        app
    }

    /// Fold one event into the state.
    pub fn apply(&mut self, ev: &Stamped) {
        self.last_event_at = Some(ev.time);
        match &ev.event {
            Event::RunStarted {
                run_dir,
                dataset,
                fold_counts,
                folds,
                arch,
                device,
                size,
                epochs,
                batch_size,
                lr_schedule,
                mom_schedule,
                size_schedule,
            } => {
                // A new run: forget the old one's facts but keep what the user
                // has asked for and what is on screen.
                *self = App {
                    pending: self.pending.take(),
                    stop_requested: self.stop_requested,
                    overlay: self.overlay,
                    quit: self.quit,
                    attached: self.attached,
                    theta_keys: self.theta_keys,
                    tab: self.tab,
                    corrections_file: std::mem::take(&mut self.corrections_file),
                    image_paths: self.image_paths.clone(),
                    viewer: std::mem::take(&mut self.viewer),
                    reviews_out: std::mem::take(&mut self.reviews_out),
                    ..App::default()
                };
                self.plan = Some(RunPlan {
                    run_dir: run_dir.clone(),
                    dataset: dataset.clone(),
                    fold_counts: fold_counts.clone(),
                    folds: folds.clone(),
                    arch: arch.clone(),
                    device: device.clone(),
                    size: *size,
                    epochs: *epochs,
                    batch_size: *batch_size,
                    lr_schedule: lr_schedule.clone(),
                    mom_schedule: mom_schedule.clone(),
                    size_schedule: size_schedule.clone(),
                });
                self.started_at = Some(ev.time);
                self.last_event_at = Some(ev.time);
                self.state = RunState::Running;
            }
            Event::FoldStarted {
                fold,
                n_train,
                n_valid,
                steps_per_epoch,
                ..
            } => {
                self.fold = Some(*fold);
                self.n_train = Some(*n_train);
                self.n_valid = Some(*n_valid);
                self.steps_per_epoch = Some(*steps_per_epoch);
                self.epoch = None;
                self.step = None;
                self.losses.clear();
                self.fold_steps_done = 0;
                self.mark_running_if_waiting();
            }
            Event::EpochStarted { fold, epoch } => {
                self.fold = Some(*fold);
                self.epoch = Some(*epoch);
                self.mark_running_if_waiting();
            }
            Event::Batch {
                fold,
                epoch,
                step,
                loss,
                ..
            } => {
                self.fold = Some(*fold);
                self.epoch = Some(*epoch);
                self.step = Some(*step);
                self.fold_steps_done = step.saturating_add(1);
                self.losses.push_batch(*step, *loss);
                self.timer.record(ev.time);
                self.mark_running_if_waiting();
            }
            Event::EpochEnded {
                fold,
                epoch,
                train_loss,
                valid_loss,
                accuracy,
                seconds,
                roc_auc,
                confusion,
                ..
            } => {
                self.epochs.push(EpochRow {
                    fold: *fold,
                    epoch: *epoch,
                    train_loss: *train_loss,
                    valid_loss: *valid_loss,
                    accuracy: *accuracy,
                    roc_auc: *roc_auc,
                    seconds: *seconds,
                });
                if !confusion.is_empty() {
                    self.confusion = Some(confusion.clone());
                }
                if Some(*fold) == self.fold {
                    self.losses.push_valid(self.fold_steps_done, *valid_loss);
                }
            }
            Event::FoldEnded {
                fold,
                valid_loss,
                accuracy,
                roc_auc,
            } => {
                self.fold_results.push(FoldResult {
                    fold: *fold,
                    valid_loss: *valid_loss,
                    accuracy: *accuracy,
                    roc_auc: *roc_auc,
                });
                self.folds_done += 1;
                self.fold_steps_done = 0;
            }
            Event::Paused { .. } => {
                self.state = RunState::Paused;
                self.clear_pending(&Command::Pause);
                // Time spent paused says nothing about training speed.
                self.timer.reset();
            }
            Event::Resumed { .. } => {
                self.state = RunState::Running;
                self.clear_pending(&Command::Resume);
                self.timer.reset();
            }
            Event::Stopping { .. } => {
                self.state = RunState::Stopping;
                self.clear_pending(&Command::Stop);
            }
            Event::ResizeRequested { size, .. } => {
                self.clear_pending(&Command::ResizeNow { size: *size });
            }
            Event::Resized { fold, epoch, size } => {
                if let Some(plan) = &mut self.plan {
                    plan.size = *size;
                }
                self.resizes.push(ResizeMark {
                    fold: *fold,
                    epoch: *epoch,
                    size: *size,
                });
            }
            Event::ValidationTopLosses { fold, epoch, items } => {
                self.top_losses = Some(TopLosses {
                    fold: *fold,
                    epoch: *epoch,
                    items: items.clone(),
                });
            }
            Event::LabelCorrected {
                fold,
                epoch,
                step,
                image,
                old,
                new,
                p_old,
                p_new,
                theta,
                sets,
            } => {
                self.theta = Some(*theta);
                self.corrections_total += 1;
                if self.corrections.len() >= MAX_CORRECTIONS {
                    self.corrections.remove(0);
                }
                self.corrections.push(CorrectionRow {
                    fold: *fold,
                    epoch: *epoch,
                    step: *step,
                    image: image.clone(),
                    old: *old,
                    new: *new,
                    p_old: *p_old,
                    p_new: *p_new,
                    theta: *theta,
                    sets: sets.clone(),
                });
            }
            Event::ThetaSet { theta, .. } => {
                self.theta = Some(*theta);
                if matches!(self.pending, Some(Command::SetTheta { .. })) {
                    self.pending = None;
                }
            }
            Event::FoldResumed { fold, step, .. } => {
                self.fold = Some(*fold);
                self.step = step.checked_sub(1);
                self.fold_steps_done = *step;
                self.mark_running_if_waiting();
            }
            Event::Warning { message } => {
                if self.warnings.len() >= MAX_WARNINGS {
                    self.warnings.remove(0);
                }
                self.warnings.push(message.clone());
            }
            Event::RunEnded { status, message } => {
                self.state = RunState::Ended(EndStatus::parse(status));
                self.end_message = Some(message.clone());
                // Nothing can be acknowledged any more.
                self.pending = None;
            }
        }
    }

    /// The engine's event stream closed: no acknowledgement will come.
    pub fn engine_disconnected(&mut self) {
        self.engine_gone = true;
        self.pending = None;
    }

    /// True once nothing more can happen in the run: it ended, or the engine is gone.
    pub fn run_is_over(&self) -> bool {
        self.state.is_ended() || self.engine_gone
    }

    /// The event loop leaves when this turns true.
    pub fn should_exit(&self) -> bool {
        self.quit || (self.stop_requested && self.run_is_over())
    }

    /// Steps in one fold: from the fold's own numbers, else from the planned schedule.
    pub fn steps_per_fold(&self) -> Option<usize> {
        let plan = self.plan.as_ref()?;
        match self.steps_per_epoch {
            Some(spe) => Some(spe.saturating_mul(plan.epochs)),
            None => Some(plan.lr_schedule.len()).filter(|&n| n > 0),
        }
    }

    /// Steps of the whole run (every fold it trains).
    pub fn total_steps(&self) -> Option<usize> {
        let folds = self.plan.as_ref()?.folds.len();
        Some(self.steps_per_fold()?.saturating_mul(folds)).filter(|&n| n > 0)
    }

    /// Steps of the whole run done so far.
    pub fn done_steps(&self) -> usize {
        let per_fold = self.steps_per_fold().unwrap_or(0);
        self.folds_done
            .saturating_mul(per_fold)
            .saturating_add(self.fold_steps_done)
    }

    /// Share of the run done, in 0..=1.
    pub fn progress(&self) -> f64 {
        match self.total_steps() {
            Some(total) => (self.done_steps() as f64 / total as f64).clamp(0.0, 1.0),
            None => 0.0,
        }
    }

    /// Estimated seconds to the end of the run; `None` while paused, ended or unknown.
    pub fn eta_seconds(&self) -> Option<f64> {
        if self.state != RunState::Running {
            return None;
        }
        let remaining = self.total_steps()?.saturating_sub(self.done_steps());
        self.timer.eta_seconds(remaining)
    }

    /// Seconds from `RunStarted` to the latest event.
    pub fn elapsed_seconds(&self) -> Option<f64> {
        Some(self.last_event_at? - self.started_at?).filter(|s| *s >= 0.0)
    }

    /// (1-based position of the current fold in this run, folds in this run).
    pub fn fold_position(&self) -> Option<(usize, usize)> {
        let plan = self.plan.as_ref()?;
        let fold = self.fold?;
        let index = plan.folds.iter().position(|&f| f == fold)?;
        Some((index + 1, plan.folds.len()))
    }

    /// Ended epochs of the current fold, oldest first.
    pub fn current_fold_epochs(&self) -> impl Iterator<Item = &EpochRow> {
        let fold = self.fold;
        self.epochs.iter().filter(move |row| Some(row.fold) == fold)
    }

    fn mark_running_if_waiting(&mut self) {
        // Attaching to a log whose beginning is missing: the batches prove it runs.
        if self.state == RunState::Waiting {
            self.state = RunState::Running;
        }
    }

    fn clear_pending(&mut self, acknowledged: &Command) {
        if self.pending.as_ref() == Some(acknowledged) {
            self.pending = None;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn stamped(time: f64, event: Event) -> Stamped {
        Stamped { time, event }
    }

    pub(crate) fn run_started(time: f64) -> Stamped {
        stamped(
            time,
            Event::RunStarted {
                run_dir: "runs/t".into(),
                dataset: DatasetSummary {
                    name: "demo".into(),
                    task: "single-label".into(),
                    images: 30,
                    classes: vec!["a".into(), "b".into()],
                    class_counts: vec![20, 10],
                },
                fold_counts: vec![vec![10, 5], vec![10, 5]],
                folds: vec![0, 1],
                arch: "resnet18".into(),
                device: "cpu".into(),
                size: 64,
                epochs: 2,
                batch_size: 8,
                lr_schedule: vec![1e-4, 1e-3, 5e-4, 1e-5],
                mom_schedule: vec![0.95, 0.85, 0.9, 0.95],
                size_schedule: Vec::new(),
            },
        )
    }

    pub(crate) fn batch(time: f64, step: usize, loss: f64) -> Stamped {
        stamped(
            time,
            Event::Batch {
                fold: 0,
                epoch: step / 2,
                step,
                loss,
                lr: 1e-3,
                mom: 0.9,
            },
        )
    }

    #[test]
    fn waits_until_the_run_starts() {
        let app = App::default();
        assert_eq!(app.state, RunState::Waiting);
        assert_eq!(app.progress(), 0.0);
        assert_eq!(app.eta_seconds(), None);
    }

    #[test]
    fn paused_event_sets_state_and_clears_the_pending_pause() {
        let mut app = App::from_events(&[run_started(0.0), batch(1.0, 0, 2.0)]);
        app.pending = Some(Command::Pause);
        app.apply(&stamped(2.0, Event::Paused { step: 0 }));
        assert_eq!(app.state, RunState::Paused);
        assert_eq!(app.pending, None);
        assert_eq!(app.eta_seconds(), None, "no ETA while paused");
    }

    #[test]
    fn an_ack_of_another_command_keeps_the_pending_one() {
        let mut app = App::from_events(&[run_started(0.0)]);
        app.pending = Some(Command::Stop);
        app.apply(&stamped(1.0, Event::Resumed { step: 0 }));
        assert_eq!(app.pending, Some(Command::Stop));
        app.apply(&stamped(2.0, Event::Stopping { step: 0 }));
        assert_eq!(app.state, RunState::Stopping);
        assert_eq!(app.pending, None);
    }

    #[test]
    fn resumed_event_returns_to_running() {
        let mut app =
            App::from_events(&[run_started(0.0), stamped(1.0, Event::Paused { step: 0 })]);
        app.pending = Some(Command::Resume);
        app.apply(&stamped(5.0, Event::Resumed { step: 0 }));
        assert_eq!(app.state, RunState::Running);
        assert_eq!(app.pending, None);
    }

    #[test]
    fn progress_and_eta_follow_the_batches() {
        // 2 folds x 4 steps (schedule length, no FoldStarted yet) = 8 steps.
        let app = App::from_events(&[run_started(0.0), batch(10.0, 0, 2.0), batch(12.0, 1, 1.8)]);
        assert_eq!(app.total_steps(), Some(8));
        assert_eq!(app.done_steps(), 2);
        assert_eq!(app.progress(), 0.25);
        // 2 s per step, 6 steps left.
        assert_eq!(app.eta_seconds(), Some(12.0));
        assert_eq!(app.elapsed_seconds(), Some(12.0));
    }

    #[test]
    fn eta_ignores_time_spent_paused() {
        let app = App::from_events(&[
            run_started(0.0),
            batch(10.0, 0, 2.0),
            stamped(10.5, Event::Paused { step: 0 }),
            stamped(100.0, Event::Resumed { step: 0 }),
            batch(101.0, 1, 1.9),
            batch(102.0, 2, 1.8),
        ]);
        assert_eq!(app.eta_seconds(), Some(5.0));
    }

    fn epoch_ended(time: f64, fold: usize, epoch: usize, valid_loss: f64) -> Stamped {
        stamped(
            time,
            Event::EpochEnded {
                fold,
                epoch,
                train_loss: 1.0,
                valid_loss,
                accuracy: 0.5,
                seconds: 1.0,
                roc_auc: None,
                f_beta: None,
                confusion: Vec::new(),
            },
        )
    }

    #[test]
    fn validation_loss_is_one_point_per_epoch_at_its_last_step() {
        let fold_started = stamped(
            0.5,
            Event::FoldStarted {
                fold: 0,
                n_train: 16,
                n_valid: 8,
                train_counts: vec![8, 8],
                steps_per_epoch: 2,
            },
        );
        let app = App::from_events(&[
            run_started(0.0),
            fold_started,
            batch(1.0, 0, 2.0),
            batch(2.0, 1, 1.8),
            epoch_ended(3.0, 0, 0, 1.7),
            batch(4.0, 2, 1.5),
            batch(5.0, 3, 1.4),
            epoch_ended(6.0, 0, 1, 1.3),
            // Another fold's epoch is not this fold's point.
            epoch_ended(7.0, 1, 0, 9.9),
        ]);
        // Epoch 0 ended after 2 batches, epoch 1 after 4 (1-based steps).
        assert_eq!(app.losses.valid, vec![(2, 1.7), (4, 1.3)]);
        assert_eq!(
            app.losses
                .batches
                .iter()
                .map(|b| b.step)
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(app.losses.last_loss(), Some(1.4));
    }

    #[test]
    fn run_ended_finishes_and_exits_only_if_stop_was_asked() {
        let mut app = App::from_events(&[run_started(0.0)]);
        app.apply(&stamped(
            3.0,
            Event::RunEnded {
                status: "completed".into(),
                message: "done".into(),
            },
        ));
        assert_eq!(app.state.label(), "FINISHED");
        assert!(!app.should_exit(), "a finished run stays on screen until q");
        app.stop_requested = true;
        assert!(app.should_exit());
    }

    #[test]
    fn unknown_end_status_reads_as_failed() {
        let app = App::from_events(&[
            run_started(0.0),
            stamped(
                1.0,
                Event::RunEnded {
                    status: "exploded".into(),
                    message: "?".into(),
                },
            ),
        ]);
        assert_eq!(app.state, RunState::Ended(EndStatus::Failed));
    }
}
