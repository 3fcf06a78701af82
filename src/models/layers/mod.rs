//! Layers of the imagewoof toolbox that models share: fastai's
//! SimpleSelfAttention and MaxBlurPool. (Mish is an op in `crate::kernels`.)

pub mod max_blur_pool;
pub mod self_attention;

pub use max_blur_pool::max_blur_pool;
pub use self_attention::SimpleSelfAttention;
