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

/// A multi-label image's classes (indices) before and after a correction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSets {
    pub old: Vec<usize>,
    pub new: Vec<usize>,
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
        /// Progressive resizing's plan: (epoch, size) where the size changes
        /// (empty without resizing, and in logs from before it was sent).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        size_schedule: Vec<(usize, u32)>,
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
        /// Multi-label runs: F-beta (samples average) at `training.f_beta`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f_beta: Option<f64>,
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
        /// Multi-label data: `old` = `new` = the class that was switched on or
        /// off, `p_old`/`p_new` the probabilities of its labelled/predicted
        /// state, and these the image's whole label set before and after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sets: Option<LabelSets>,
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
    /// The validation items with the highest loss in the validation that
    /// just ended (at most `TOP_LOSSES`, highest first), for the dashboard's
    /// mislabeled-item viewer.
    ValidationTopLosses {
        fold: usize,
        epoch: usize,
        items: Vec<LossItem>,
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

/// How many validation items `ValidationTopLosses` lists: enough to review,
/// few enough that events.jsonl grows by a few kilobytes per epoch.
pub const TOP_LOSSES: usize = 50;

/// One validation item and what the model made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossItem {
    /// The id in the user's CSV (or the file stem of a class-folder image).
    pub image_id: String,
    /// The image file.
    pub image: String,
    /// The class in the data (an index into the data set's class list).
    pub label: usize,
    /// Cross-entropy of the label: -ln p(label).
    pub loss: f64,
    /// Softmax probability of every class.
    pub probs: Vec<f32>,
}

impl LossItem {
    /// The class with the highest probability.
    pub fn prediction(&self) -> usize {
        self.probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)
    }
}

/// The `k` items with the highest loss, highest first: `labels[i]` is item
/// i's class, `probs[i]` its probabilities; `describe(i)` gives its id and file.
pub fn top_losses(
    labels: &[usize],
    probs: &[Vec<f32>],
    k: usize,
    describe: impl Fn(usize) -> (String, String),
) -> Vec<LossItem> {
    let mut losses: Vec<(usize, f64)> = labels
        .iter()
        .zip(probs)
        .enumerate()
        .map(|(i, (&label, p))| {
            let p_label = p.get(label).copied().unwrap_or(0.0) as f64;
            // A probability of 0 would be an infinite loss: JSON has no inf.
            (i, -p_label.max(1e-12).ln())
        })
        .collect();
    losses.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    losses
        .into_iter()
        .take(k)
        .map(|(i, loss)| {
            let (image_id, image) = describe(i);
            LossItem {
                image_id,
                image,
                label: labels[i],
                loss,
                probs: probs[i].clone(),
            }
        })
        .collect()
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

    #[test]
    fn top_losses_are_the_worst_predicted_labels_first() {
        let labels = [0, 1, 1, 0];
        let probs = vec![
            vec![0.9, 0.1],
            vec![0.8, 0.2],
            vec![0.4, 0.6],
            vec![0.0, 1.0],
        ];
        let top = top_losses(&labels, &probs, 2, |i| {
            (format!("id{i}"), format!("{i}.jpg"))
        });
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].image_id, "id3");
        assert!((top[0].loss - 1e-12f64.ln().abs()).abs() < 1e-6);
        assert_eq!(top[0].prediction(), 1);
        assert_eq!(top[1].image, "1.jpg");
        assert!((top[1].loss - -(0.2f32 as f64).ln()).abs() < 1e-9);
        let line = serde_json::to_string(&Event::ValidationTopLosses {
            fold: 0,
            epoch: 1,
            items: top.clone(),
        })
        .unwrap();
        assert!(
            line.contains("\"event\":\"validation_top_losses\""),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<Event>(&line).unwrap(),
            Event::ValidationTopLosses {
                fold: 0,
                epoch: 1,
                items: top
            }
        );
    }
}
