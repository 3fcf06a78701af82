//! Image augmentation with fastai's semantics (vision/augment.py,
//! callback/mixup.py; see `../shared/reference/fastai-semantics.md`):
//!
//! * `item`: per-image transforms on HWC u8 (Resize, FlipItem, DihedralItem,
//!   RandomCrop, RandomResizedCrop);
//! * `affine`, `lighting`, `batch`: aug_transforms on f32 CHW in [0, 1], one
//!   resample per image, in parallel;
//! * `fused` (+ `fastmath`): the batch transforms and Normalize in one pass
//!   per image from u8 into the batch, the fast path of the above;
//! * `normalize`: ImageNet or data set statistics;
//! * `mix` (+ `beta`): MixUp and CutMix;
//! * `pipeline`: all of them in fastai's order, as training and validation batches;
//! * `picture`: grids of batches with labels (show-batch, augment-preview).
//!
//! Every random draw comes from an explicitly seeded `Rng`: same seed, same batches.

pub mod affine;
pub mod batch;
pub mod beta;
pub mod fastmath;
pub mod font;
pub mod fused;
pub mod item;
pub mod lighting;
pub mod mix;
pub mod normalize;
pub mod picture;
pub mod pipeline;

pub use normalize::Normalization;
pub use pipeline::{Pipeline, batch_seed, load_set, load_set_at, load_set_in, training_loss};
