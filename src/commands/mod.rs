//! One function per subcommand; `run` dispatches.

pub mod attach;
pub mod corrections;
mod detach;
pub mod folds;
pub mod models;
pub mod pictures;
pub mod predict;
pub mod schedule;
pub mod stats;
pub mod train;

use crate::cli::{Cli, Cmd, DataArgs, ResampleArgs};
use crate::config::{DEMO_DATA, RunConfig};
use crate::data::{DataSpec, Dataset, load_dataset};
use crate::error::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Run the parsed command line. Without a subcommand: train on the demo set.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train::train(Default::default()),
        Some(Cmd::Train(args)) => train::train(args),
        Some(Cmd::Stats(args)) => stats::stats(args),
        Some(Cmd::Folds(args)) => folds::folds(args),
        Some(Cmd::Config(_)) => print_out(&RunConfig::default_toml()),
        Some(Cmd::Schedule(args)) => schedule::schedule(args),
        Some(Cmd::Predict(args)) => predict::predict(args),
        Some(Cmd::ShowBatch(args)) => pictures::show_batch(args),
        Some(Cmd::AugmentPreview(args)) => pictures::augment_preview(args),
        Some(Cmd::Models(args)) => models::models(args),
        Some(Cmd::Attach(args)) => attach::attach(args),
        Some(Cmd::Corrections(args)) => corrections::corrections(args),
    }
}

/// Read the data set named on the command line (the demo set by default).
pub fn load_data_args(args: &DataArgs) -> Result<Dataset> {
    let spec = DataSpec {
        path: args
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEMO_DATA)),
        images: args.images.clone(),
        task: args.task,
    };
    load_dataset(&spec)
}

/// `CLASS=N` flags as the config's maps.
pub fn resample_maps(args: &ResampleArgs) -> (BTreeMap<String, usize>, BTreeMap<String, f64>) {
    (
        args.oversample.iter().cloned().collect(),
        args.undersample.iter().cloned().collect(),
    )
}

/// Write command output to stdout. A closed pipe (`orchard folds | head`) is
/// not an error: the reader has what it wanted.
pub fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(crate::Error::io("<stdout>", e))
        }
        _ => Ok(()),
    }
}
