//! Custom candle ops with a forward AND a backward pass.
//!
//! candle's stock pooling backward only works when kernel == stride, and its CPU
//! kernels are single-threaded; the ops here fill those gaps. Each op works on
//! contiguous NCHW tensors and is checked against a naive reference and by
//! finite differences in its own tests.

pub mod maxpool;

pub use maxpool::max_pool2d;
