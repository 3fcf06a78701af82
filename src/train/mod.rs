//! Training: the model, its optimiser and schedule, and the fold loop.
//!
//! `fit_fold` is the entry point: it loads a fold's images (`batches`), builds the
//! configured model (`crate::models`, named as torchvision via `params`), and steps the configured
//! optimiser (`optim`) along fastai's schedule (`schedule`).

pub mod batches;
pub mod callbacks;
pub mod checkpoint;
pub mod clip;
pub mod dense_loss;
pub mod fine_tune;
pub mod fit;
pub mod loader;
pub mod loss;
pub mod metrics;
pub mod noise;
pub mod optim;
pub mod params;
pub mod plc;
pub mod plc_ratio;
pub mod predict;
pub mod resizing;
pub mod schedule;
pub mod soft_labels;
pub mod tta;

pub use batches::Sample;
pub use fit::{
    FitHooks, FitResult, Flow, FoldData, fit_fold, fit_fold_with, planned_schedule, steps_per_epoch,
};
