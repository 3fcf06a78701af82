//! Custom candle ops with a forward AND a backward pass: orchard's CPU hot path.
//!
//! candle 0.11's stock CPU convolution backward goes through a slow direct
//! transposed convolution, its pooling backward only works when kernel ==
//! stride, and its batch norm and optimiser are chains of single-threaded
//! tensor ops. The ops here replace them: im2col + GEMM convolution, general
//! pooling, fused batch norm and in-place optimiser steps, multi-threaded with
//! rayon. Each op works on contiguous NCHW tensors (f32, or f64 for gradient
//! checks) and is checked against candle's stock op or a naive reference and by
//! finite differences in its own tests. Tensors on another device fall back to
//! candle's own ops.

pub mod alloc;
pub mod batchnorm;
pub mod conv2d;
mod float;
pub mod layers;
pub mod mish;
pub mod optim_step;
pub mod pool;
pub mod relu;
#[cfg(test)]
pub(crate) mod testing;

pub use alloc::tune_allocator;
pub use batchnorm::{batch_norm_eval, batch_norm_train};
pub use conv2d::conv2d;
pub use layers::{BatchNorm2d, Conv2d};
pub use mish::mish;
pub use optim_step::{Buffer, Rule, lookahead_sync, optim_update};
pub use pool::{
    PoolWindow, adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d_with, max_pool2d,
    max_pool2d_with,
};
pub use relu::{add_relu, relu};
