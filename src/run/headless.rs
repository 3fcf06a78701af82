//! fastai-style progress lines for runs without a dashboard (`--headless`, or
//! stdout is not a terminal):
//!
//! ```text
//! fold 0 (144 train / 36 valid)
//! epoch  train_loss  valid_loss  accuracy  time
//! 0      1.794533    1.762960    0.277778  00:07
//! ```

use crate::run::events::{Event, Stamped};
use std::io::Write;

/// Format one event as the lines headless mode prints, if any.
pub fn format_event(ev: &Event) -> Option<String> {
    match ev {
        Event::RunStarted {
            run_dir,
            dataset,
            folds,
            arch,
            size,
            epochs,
            ..
        } => Some(format!(
            "run {run_dir}: {} ({} images, {} classes), {arch} at {size}px, {epochs} epoch(s), fold(s) {:?}",
            dataset.name,
            dataset.images,
            dataset.classes.len(),
            folds
        )),
        Event::FoldStarted {
            fold,
            n_train,
            n_valid,
            ..
        } => Some(format!(
            "\nfold {fold} ({n_train} train / {n_valid} valid)\n{:<6} {:<11} {:<11} {:<9} {:<9} {}",
            "epoch", "train_loss", "valid_loss", "accuracy", "roc_auc", "time"
        )),
        Event::EpochEnded {
            epoch,
            train_loss,
            valid_loss,
            accuracy,
            seconds,
            roc_auc,
            f_beta,
            ..
        } => Some(format!(
            "{epoch:<6} {train_loss:<11.6} {valid_loss:<11.6} {accuracy:<9.6} {:<9} {}{}",
            roc_auc.map_or("-".to_string(), |a| format!("{a:.6}")),
            mm_ss(*seconds),
            f_beta.map_or(String::new(), |f| format!("  f_beta {f:.6}"))
        )),
        Event::Paused { step } => Some(format!("paused at step {step}")),
        Event::Resumed { step } => Some(format!("resumed at step {step}")),
        Event::Stopping { .. } => Some("stopping after this epoch".into()),
        Event::FoldResumed {
            fold,
            epochs_done,
            step,
        } => Some(format!(
            "fold {fold} resumed from its checkpoint: {epochs_done} epoch(s), {step} steps done"
        )),
        Event::Resized { epoch, size, .. } => {
            Some(format!("images now {size}px from epoch {epoch} on"))
        }
        Event::Warning { message } => Some(format!("warning: {message}")),
        Event::RunEnded { status, message } => Some(format!("run {status}: {message}")),
        _ => None,
    }
}

/// `mm:ss` as fastai prints epoch times.
pub fn mm_ss(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// Print events until the channel closes.
pub fn print_events(mut events: tokio::sync::mpsc::UnboundedReceiver<Stamped>) {
    let stdout = std::io::stdout();
    while let Some(ev) = events.blocking_recv() {
        if let Some(line) = format_event(&ev.event) {
            let mut out = stdout.lock();
            // A closed stdout (e.g. piped into `head`) must not kill the run.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_line_looks_like_fastai() {
        let line = format_event(&Event::EpochEnded {
            fold: 0,
            epoch: 3,
            train_loss: 1.5,
            valid_loss: 1.25,
            accuracy: 0.5,
            seconds: 75.4,
            roc_auc: Some(0.875),
            f_beta: None,
            confusion: vec![],
        })
        .unwrap();
        assert_eq!(
            line,
            "3      1.500000    1.250000    0.500000  0.875000  01:15"
        );
        // A multi-label epoch adds its F-beta.
        let line = format_event(&Event::EpochEnded {
            fold: 0,
            epoch: 0,
            train_loss: 0.5,
            valid_loss: 0.25,
            accuracy: 0.75,
            seconds: 3.0,
            roc_auc: None,
            f_beta: Some(0.625),
            confusion: vec![],
        })
        .unwrap();
        assert_eq!(
            line,
            "0      0.500000    0.250000    0.750000  -         00:03  f_beta 0.625000"
        );
    }
}
