//! Building a model's parameters into a `VarMap` under PyTorch's names, with
//! initial values drawn from our own seeded `Rng`.
//!
//! candle's CPU `randn` cannot be seeded, so every initial weight is computed
//! here from `Rng` draws, in a fixed order, and the same seed always gives the
//! same model. Each parameter is also recorded as trainable or not (running
//! statistics are buffers) and with or without weight decay (fastai's
//! `wd_bn_bias=False`: no decay on norm weights and on biases).

use crate::error::{Error, Result};
use crate::kernels::{BatchNorm2d, Conv2d};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, VarMap};

/// PyTorch's BatchNorm2d defaults.
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// A variable the optimiser updates.
#[derive(Debug, Clone)]
pub struct TrainParam {
    /// The PyTorch name, as in the `VarMap` and in checkpoints.
    pub name: String,
    pub var: Var,
    /// False for norm weights/biases and all biases (fastai's `wd_bn_bias=False`).
    pub weight_decay: bool,
}

/// Adds named, initialised variables to a `VarMap` and records the trainable ones.
pub struct ParamBuilder<'a> {
    varmap: &'a VarMap,
    device: Device,
    /// The variables' dtype (F32 unless `with_dtype` says otherwise).
    dtype: DType,
    rng: Rng,
    trainable: Vec<TrainParam>,
    norms: Vec<String>,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(varmap: &'a VarMap, device: &Device, rng: Rng) -> Self {
        ParamBuilder {
            varmap,
            device: device.clone(),
            dtype: DType::F32,
            rng,
            trainable: Vec::new(),
            norms: Vec::new(),
        }
    }

    /// Variables of `dtype` from here on (the same draws, converted): float64
    /// models are for checks against references computed in float64.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The trainable parameters added so far, in creation order.
    pub fn into_trainable(self) -> Vec<TrainParam> {
        self.trainable
    }

    /// The names of the norm layers' weights and biases added so far: fastai
    /// keeps these training while the rest of a frozen body is fixed (`train_bn`).
    pub fn norm_names(&self) -> &[String] {
        &self.norms
    }

    /// A bias-free linear layer initialised as fastai's heads are:
    /// `kaiming_normal_` (fan_in, ReLU gain), std = sqrt(2 / c_in).
    pub fn linear_kaiming_no_bias(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
    ) -> Result<Linear> {
        let std = (2.0 / c_in as f64).sqrt();
        let w = (0..c_out * c_in)
            .map(|_| (self.rng.normal() * std) as f32)
            .collect();
        let weight = self.add(&format!("{name}.weight"), w, &[c_out, c_in], Kind::Decayed)?;
        Ok(Linear::new(weight, None))
    }

    /// A bias-free convolution initialised as torchvision's ResNet does:
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, std = sqrt(2 / fan_out).
    pub fn conv2d(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Conv2d> {
        let fan_out = c_out * kernel * kernel;
        let std = (2.0 / fan_out as f64).sqrt();
        let values = (0..c_out * c_in * kernel * kernel)
            .map(|_| (self.rng.normal() * std) as f32)
            .collect();
        let weight = self.add(
            &format!("{name}.weight"),
            values,
            &[c_out, c_in, kernel, kernel],
            Kind::Decayed,
        )?;
        Ok(Conv2d {
            weight,
            bias: None,
            padding,
            stride,
            dilation: 1,
            groups: 1,
        })
    }

    /// A BatchNorm2d with weight 1, bias 0, running mean 0 and running variance 1.
    /// `forward_t(x, true)` uses batch statistics and updates the running ones
    /// with momentum 0.1 and the unbiased variance, as PyTorch does.
    pub fn batch_norm(&mut self, name: &str, channels: usize) -> Result<BatchNorm2d> {
        self.batch_norm_with(name, channels, BN_EPS, 0.0)
    }

    /// A batch norm as `batch_norm` whose weight starts at `scale` (fastai's
    /// `BatchZero` starts a block's last norm at 0).
    fn batch_norm_with_weight(
        &mut self,
        name: &str,
        channels: usize,
        scale: f32,
    ) -> Result<BatchNorm2d> {
        self.batch_norm_init(name, channels, BN_EPS, scale, 0.0)
    }

    /// A batch norm as `batch_norm` with its own `eps` and initial bias
    /// (fastai's heads start their norm biases at 1e-3). Its weight and bias
    /// are recorded as norm parameters (see `norm_names`).
    pub fn batch_norm_with(
        &mut self,
        name: &str,
        channels: usize,
        eps: f64,
        bias_init: f32,
    ) -> Result<BatchNorm2d> {
        self.batch_norm_init(name, channels, eps, 1.0, bias_init)
    }

    /// A norm layer's weight and bias, filled with `scale` and `bias_init`
    /// and recorded as norm parameters (not decayed, trained in a frozen body).
    fn norm_affine(
        &mut self,
        name: &str,
        channels: usize,
        scale: f32,
        bias_init: f32,
    ) -> Result<(Tensor, Tensor)> {
        let weight = self.add(
            &format!("{name}.weight"),
            vec![scale; channels],
            &[channels],
            Kind::NotDecayed,
        )?;
        let bias = self.add(
            &format!("{name}.bias"),
            vec![bias_init; channels],
            &[channels],
            Kind::NotDecayed,
        )?;
        self.norms.push(format!("{name}.weight"));
        self.norms.push(format!("{name}.bias"));
        Ok((weight, bias))
    }

    fn batch_norm_init(
        &mut self,
        name: &str,
        channels: usize,
        eps: f64,
        scale: f32,
        bias_init: f32,
    ) -> Result<BatchNorm2d> {
        let (weight, bias) = self.norm_affine(name, channels, scale, bias_init)?;
        let mean = self.add(
            &format!("{name}.running_mean"),
            vec![0.0; channels],
            &[channels],
            Kind::Buffer,
        )?;
        let var = self.add(
            &format!("{name}.running_var"),
            vec![1.0; channels],
            &[channels],
            Kind::Buffer,
        )?;
        // The running stats are the VarMap's own variables (from_tensor on a
        // variable shares it), so updating them updates the map.
        Ok(BatchNorm2d {
            weight,
            bias,
            running_mean: Var::from_tensor(&mean)?,
            running_var: Var::from_tensor(&var)?,
            eps,
            momentum: BN_MOMENTUM,
        })
    }

    /// A linear layer with PyTorch's default init: weight and bias uniform in
    /// ±1/sqrt(fan_in) (kaiming_uniform_ with a = sqrt(5) works out to that bound).
    pub fn linear(&mut self, name: &str, c_in: usize, c_out: usize) -> Result<Linear> {
        let bound = 1.0 / (c_in as f64).sqrt();
        let w = (0..c_out * c_in)
            .map(|_| self.rng.uniform(-bound, bound) as f32)
            .collect();
        let weight = self.add(&format!("{name}.weight"), w, &[c_out, c_in], Kind::Decayed)?;
        let b = (0..c_out)
            .map(|_| self.rng.uniform(-bound, bound) as f32)
            .collect();
        let bias = self.add(&format!("{name}.bias"), b, &[c_out], Kind::NotDecayed)?;
        Ok(Linear::new(weight, Some(bias)))
    }

    /// A bias-free convolution initialised as fastai's `init_cnn` does:
    /// `kaiming_normal_` with its defaults (fan_in, ReLU gain), std = sqrt(2 / fan_in).
    pub fn conv2d_fan_in(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Conv2d> {
        let shape = [c_out, c_in, kernel, kernel];
        let weight = self.kaiming_normal_fan_in(&format!("{name}.weight"), &shape)?;
        Ok(Conv2d {
            weight,
            bias: None,
            padding,
            stride,
            dilation: 1,
            groups: 1,
        })
    }

    /// A trainable weight of `shape` drawn from `kaiming_normal_` (fan_in mode,
    /// ReLU gain): normal with std sqrt(2 / fan_in), fan_in = numel / shape[0].
    pub fn kaiming_normal_fan_in(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let std = (2.0 / (numel / shape[0]) as f64).sqrt();
        let values = (0..numel)
            .map(|_| (self.rng.normal() * std) as f32)
            .collect();
        self.add(name, values, shape, Kind::Decayed)
    }

    /// A BatchNorm2d whose weight starts at 0 instead of 1 (fastai's
    /// `NormType.BatchZero`): a residual branch that starts as the identity.
    pub fn batch_norm_zero(&mut self, name: &str, channels: usize) -> Result<BatchNorm2d> {
        self.batch_norm_with_weight(name, channels, 0.0)
    }

    /// A linear layer initialised as fastai's `init_cnn`: weight from
    /// `kaiming_normal_` (fan_in), bias 0.
    pub fn linear_fan_in(&mut self, name: &str, c_in: usize, c_out: usize) -> Result<Linear> {
        let weight = self.kaiming_normal_fan_in(&format!("{name}.weight"), &[c_out, c_in])?;
        let bias = self.add(
            &format!("{name}.bias"),
            vec![0.0; c_out],
            &[c_out],
            Kind::NotDecayed,
        )?;
        Ok(Linear::new(weight, Some(bias)))
    }

    /// A trainable tensor with given values that is weight-decayed (a layer's
    /// scale such as SimpleSelfAttention's `gamma` is, in fastai).
    pub fn decayed(&mut self, name: &str, values: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        self.add(name, values, shape, Kind::Decayed)
    }

    /// A buffer (saved, never trained) with given values, as a variable the
    /// layer may update in place, shared with the `VarMap`.
    pub fn buffer(&mut self, name: &str, values: Vec<f32>, shape: &[usize]) -> Result<Var> {
        let t = self.add(name, values, shape, Kind::Buffer)?;
        Ok(Var::from_tensor(&t)?)
    }

    /// A trainable tensor of `shape` from timm's `trunc_normal_(std=std)`:
    /// normal(0, std) redrawn outside the absolute bounds [-2, 2] (timm's
    /// defaults, which only bite for std near 1).
    pub fn trunc_normal(
        &mut self,
        name: &str,
        shape: &[usize],
        std: f64,
        decayed: bool,
    ) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let values = (0..numel)
            .map(|_| {
                loop {
                    let v = self.rng.normal() * std;
                    if (-2.0..=2.0).contains(&v) {
                        break v as f32;
                    }
                }
            })
            .collect();
        let kind = if decayed {
            Kind::Decayed
        } else {
            Kind::NotDecayed
        };
        self.add(name, values, shape, kind)
    }

    /// A linear layer initialised as timm's ViT (`init_weights_vit_timm`):
    /// weight `trunc_normal_(std=.02)`, bias 0.
    pub fn linear_trunc_normal(&mut self, name: &str, c_in: usize, c_out: usize) -> Result<Linear> {
        let weight = self.trunc_normal(&format!("{name}.weight"), &[c_out, c_in], 0.02, true)?;
        let bias = self.add(
            &format!("{name}.bias"),
            vec![0.0; c_out],
            &[c_out],
            Kind::NotDecayed,
        )?;
        Ok(Linear::new(weight, Some(bias)))
    }

    /// A convolution with a bias and PyTorch's default init (weight and bias
    /// uniform in ±1/sqrt(fan_in)), as timm leaves a ViT's patch embedding.
    pub fn conv2d_default_with_bias(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Conv2d> {
        let fan_in = c_in * kernel * kernel;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let w = (0..c_out * fan_in)
            .map(|_| self.rng.uniform(-bound, bound) as f32)
            .collect();
        let weight = self.add(
            &format!("{name}.weight"),
            w,
            &[c_out, c_in, kernel, kernel],
            Kind::Decayed,
        )?;
        let b = (0..c_out)
            .map(|_| self.rng.uniform(-bound, bound) as f32)
            .collect();
        let bias = self.add(&format!("{name}.bias"), b, &[c_out], Kind::NotDecayed)?;
        Ok(Conv2d {
            weight,
            bias: Some(bias),
            padding: 0,
            stride,
            dilation: 1,
            groups: 1,
        })
    }

    /// A LayerNorm's (weight 1, bias 0), recorded as norm parameters: fastai's
    /// `norm_types` include `nn.LayerNorm`, so they train in a frozen body and
    /// are not weight-decayed.
    pub fn layer_norm(&mut self, name: &str, dim: usize) -> Result<(Tensor, Tensor)> {
        self.norm_affine(name, dim, 1.0, 0.0)
    }

    /// `n` standard-normal draws from this builder's `Rng`.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.rng.normal() as f32).collect()
    }

    fn add(&mut self, name: &str, values: Vec<f32>, shape: &[usize], kind: Kind) -> Result<Tensor> {
        let tensor = Tensor::from_vec(values, shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let mut map = self
            .varmap
            .data()
            .lock()
            .map_err(|_| Error::Internal("the model's VarMap lock is poisoned".into()))?;
        if map.contains_key(name) {
            return Err(Error::Internal(format!("parameter {name} defined twice")));
        }
        map.insert(name.to_string(), var.clone());
        let weight_decay = match kind {
            Kind::Buffer => return Ok(var.as_tensor().clone()),
            Kind::Decayed => true,
            Kind::NotDecayed => false,
        };
        self.trainable.push(TrainParam {
            name: name.to_string(),
            var: var.clone(),
            weight_decay,
        });
        Ok(var.as_tensor().clone())
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Trainable with weight decay.
    Decayed,
    /// Trainable without weight decay.
    NotDecayed,
    /// Not trainable (running statistics).
    Buffer,
}
