//! orchard: train image classifiers with the fastai toolbox, steered from a terminal.
//!
//! Data flows one way: `data` (labels, folds, pixels) -> `train` (models, losses,
//! optimisers) -> `run` (the engine thread, events, run directory) -> `tui` (the
//! dashboard). The engine knows nothing of the terminal; the dashboard knows the
//! engine only through `run::Command` and `run::Event`.

pub mod augment;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod error;
pub mod kernels;
pub mod models;
pub mod rng;
pub mod run;
pub mod train;
pub mod tui;

pub use error::{Error, Result};
