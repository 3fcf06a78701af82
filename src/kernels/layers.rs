//! Layers over the kernels, for models to hold: a convolution and a batch norm
//! whose parameters are shared with a `VarMap` under PyTorch's names.

use crate::kernels::batchnorm::{batch_norm_eval, batch_norm_train};
use crate::kernels::conv2d::conv2d;
use candle_core::{Module, ModuleT, Tensor, Var};

/// PyTorch's `Conv2d` (square kernel, same stride/padding on both axes).
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub padding: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = conv2d(
            x,
            &self.weight,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
        )?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// PyTorch's `BatchNorm2d` (affine, tracking running stats): batch statistics
/// while training, running ones otherwise.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Var,
    pub running_var: Var,
    pub eps: f64,
    pub momentum: f64,
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_fused(x, train, false)
    }
}

impl BatchNorm2d {
    /// Batch norm followed by ReLU, in one pass each way.
    pub fn forward_relu(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_fused(x, train, true)
    }

    fn forward_fused(&self, x: &Tensor, train: bool, relu: bool) -> candle_core::Result<Tensor> {
        if !train {
            return batch_norm_eval(
                x,
                &self.weight,
                &self.bias,
                self.running_mean.as_tensor(),
                self.running_var.as_tensor(),
                self.eps,
                relu,
            );
        }
        let (y, stats) = batch_norm_train(x, &self.weight, &self.bias, self.eps, relu)?;
        // Running averages as PyTorch keeps them: momentum-weighted, with the
        // unbiased variance (n / (n - 1); batch_norm_train requires n >= 2).
        let n = (x.elem_count() / x.dim(1)?) as f64;
        let dtype = self.running_mean.dtype();
        let mean = stats.get(0)?.to_dtype(dtype)?;
        let var = (stats.get(1)?.to_dtype(dtype)? * (n / (n - 1.0)))?;
        let blend = |old: &Var, new: Tensor| -> candle_core::Result<()> {
            let updated = ((old.as_tensor() * (1.0 - self.momentum))? + (new * self.momentum)?)?;
            old.set(&updated)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, var)?;
        Ok(y)
    }
}
