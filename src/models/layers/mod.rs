//! Layers of the imagewoof toolbox that models share: fastai's
//! SimpleSelfAttention and MaxBlurPool (Mish is an op in `crate::kernels`),
//! and PyTorch's bicubic resampling for ViT's position embeddings.

pub mod max_blur_pool;
pub mod resample;
pub mod self_attention;

pub use max_blur_pool::max_blur_pool;
pub use self_attention::SimpleSelfAttention;
