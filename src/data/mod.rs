//! Data sets: reading labels, statistics, folds, resampling and image decoding.

pub mod dataset;
pub mod decode;
pub mod jpeg_scaled;
pub mod table;

pub use dataset::{Dataset, Item, LabelLayout, TaskType};
pub use table::{DataSpec, load_dataset};
pub mod folds;
pub mod sampling;
pub mod scan;
pub mod stats;
pub mod unlabelled;

pub use folds::{Folds, assign_folds};
pub use sampling::Resampling;
