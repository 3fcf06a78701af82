//! The engine's language: `Command`s in, `Event`s out.
//!
//! The dashboard, the control socket and tests all speak to a run only through
//! these types. Every Command is acknowledged by an Event, so a screen shows what
//! the engine really did, not what was asked. Events are also the run's history:
//! each is appended to `RUN_DIR/events.jsonl` with a timestamp, and a dashboard that
//! attaches later replays that file.

use serde::{Deserialize, Serialize};

/// A request to a running engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Stop between two batches until `Resume`. Acknowledged by `Paused`.
    Pause,
    /// Continue after `Pause`. Acknowledged by `Resumed`.
    Resume,
    /// End the run: skip the rest of this epoch's training batches, validate, stop.
    /// Acknowledged by `Stopping`. (Checkpoints come with the training-toolbox work.)
    Stop,
    /// Progressive resizing now: switch the image size at the next epoch
    /// boundary, to `size` or (None) to the next size of the size schedule.
    /// Acknowledged by `ResizeRequested`; the switch itself is `Resized`.
    ResizeNow { size: Option<u32> },
    /// Set progressive label correction's threshold; its schedule continues
    /// from this value. Acknowledged by `ThetaSet`.
    SetTheta { theta: f64 },
}

/// Counts of a data set, as shown in the statistics pane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub name: String,
    pub task: String,
    pub images: usize,
    pub classes: Vec<String>,
    pub class_counts: Vec<usize>,
}

/// Something that happened in a run.
// RunStarted is large (it carries the planned schedule) but is sent once per run;
// boxing it would only make every match noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_dir: String,
        dataset: DatasetSummary,
        /// fold x class counts of the whole stratified split.
        fold_counts: Vec<Vec<usize>>,
        /// The folds this run trains, in order.
        folds: Vec<usize>,
        arch: String,
        device: String,
        size: u32,
        epochs: usize,
        batch_size: usize,
        /// The planned learning rate of every step of one fold.
        lr_schedule: Vec<f64>,
        /// The planned momentum (beta1) of every step of one fold.
        mom_schedule: Vec<f64>,
    },
    FoldStarted {
        fold: usize,
        n_train: usize,
        n_valid: usize,
        /// Training counts per class after over/undersampling.
        train_counts: Vec<usize>,
        steps_per_epoch: usize,
    },
    EpochStarted {
        fold: usize,
        epoch: usize,
    },
    Batch {
        fold: usize,
        epoch: usize,
        /// Step within the fold, 0-based, counting over all epochs.
        step: usize,
        loss: f64,
        lr: f64,
        mom: f64,
    },
    EpochEnded {
        fold: usize,
        epoch: usize,
        train_loss: f64,
        valid_loss: f64,
        accuracy: f64,
        seconds: f64,
        /// Mean column-wise ROC AUC of the validation (absent when no class
        /// column has both outcomes, and in logs written before it existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        roc_auc: Option<f64>,
        /// `confusion[actual][predicted]` counts of the validation.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        confusion: Vec<Vec<usize>>,
    },
    FoldEnded {
        fold: usize,
        valid_loss: f64,
        accuracy: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        roc_auc: Option<f64>,
    },
    Paused {
        step: usize,
    },
    Resumed {
        step: usize,
    },
    Stopping {
        step: usize,
    },
    /// Ack of `ResizeNow`: the size changes at the next epoch boundary.
    ResizeRequested {
        step: usize,
        size: Option<u32>,
    },
    /// The training images are now `size` pixels, from `epoch` on (a size
    /// schedule's step or a `ResizeNow`).
    Resized {
        fold: usize,
        epoch: usize,
        size: u32,
    },
    /// Progressive label correction changed a training label of `fold`
    /// (classes as indices into the data set's class list).
    LabelCorrected {
        fold: usize,
        epoch: usize,
        step: usize,
        /// The image file, as the fold's training list has it.
        image: String,
        old: usize,
        new: usize,
        p_old: f64,
        p_new: f64,
        theta: f64,
    },
    /// Ack of `SetTheta`.
    ThetaSet {
        step: usize,
        theta: f64,
    },
    /// A fold continues from its checkpoint (`orchard train --resume`):
    /// `epochs_done` epochs and `step` optimiser steps are behind it.
    FoldResumed {
        fold: usize,
        epochs_done: usize,
        step: usize,
    },
    Warning {
        message: String,
    },
    RunEnded {
        /// "completed", "stopped" or "failed".
        status: String,
        message: String,
    },
}

/// An event as written to `events.jsonl`: seconds since the Unix epoch plus the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub time: f64,
    #[serde(flatten)]
    pub event: Event,
}

impl Stamped {
    pub fn now(event: Event) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Stamped { time, event }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_event_round_trips_through_json() {
        let s = Stamped {
            time: 12.5,
            event: Event::Batch {
                fold: 0,
                epoch: 1,
                step: 7,
                loss: 1.25,
                lr: 1e-3,
                mom: 0.9,
            },
        };
        let line = serde_json::to_string(&s).unwrap();
        assert!(line.contains("\"event\":\"batch\""), "{line}");
        let back: Stamped = serde_json::from_str(&line).unwrap();
        assert_eq!(back, s);
        let c: Command = serde_json::from_str(r#"{"command":"pause"}"#).unwrap();
        assert_eq!(c, Command::Pause);
    }
}
