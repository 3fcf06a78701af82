//! The pipeline benchmark's set-up, shared by `benches/pipeline.rs` and
//! `examples/pipeline_profile.rs` (included by path: a bench and an example
//! cannot import each other), so the profile runs exactly what is benched.

use orchard::config::{ResizeMethod, RunConfig};
use orchard::train::Sample;
use std::path::PathBuf;

pub const BATCH: usize = 32;
pub const SIZE: u32 = 224;
pub const SEED: u64 = 42;

/// Batches of 32 at 224 px: Resize (crop at a random position), FlipItem,
/// aug_transforms.
pub fn config() -> RunConfig {
    let mut cfg = RunConfig::default();
    cfg.training.size = SIZE;
    cfg.training.batch_size = BATCH;
    cfg.augmentation.resize = ResizeMethod::Crop;
    cfg.augmentation.item_flip = true;
    cfg.augmentation.batch_augment = true;
    cfg
}

/// Every file as a sample of class 0 (the labels play no part in speed).
pub fn samples(files: &[PathBuf]) -> Vec<Sample> {
    files
        .iter()
        .map(|p| Sample {
            path: p.clone(),
            class: 0,
        })
        .collect()
}
