//! EfficientNet-Lite0 (the TensorFlow Lite variant: no squeeze-excitation,
//! ReLU6 instead of swish, a fixed stem and head), with the parameter names of
//! lukemelas' `EfficientNet-PyTorch` (`_conv_stem.weight`, `_blocks.3._bn1.bias`,
//! `_fc.weight`, ...), so the converted ImageNet checkpoint loads one to one.
//!
//! Two details decide whether pretrained weights predict correctly:
//! - TensorFlow's "SAME" padding: the output has ceil(n / stride) pixels and the
//!   padding that needs goes mostly AFTER the input (`same_padding`); a
//!   symmetric k/2 padding shifts every stride-2 layer by a pixel.
//! - BatchNorm eps 1e-3 (TensorFlow's), not PyTorch's 1e-5.
//!
//! The running statistics use PyTorch's momentum 0.1 rather than TensorFlow's
//! 0.01, because orchard's runs are short: with 0.01, a few hundred steps are
//! not enough for the running statistics to follow the new data.
//! Inputs are expected as (x - 127) / 128 of RGB in 0..255 for the ImageNet
//! weights; orchard's normalisation is configured separately.

use crate::error::Result;
use crate::kernels::{BatchNorm2d, Conv2d, adaptive_avg_pool2d, tune_allocator};
use crate::models::dropout::Dropout;
use crate::models::head::{FastaiHead, HEAD_PREFIX};
use crate::models::{HeadKind, TransferGroups};
use crate::rng::Rng;
use crate::train::params::{ParamBuilder, TrainParam};
use candle_core::{Device, Module, ModuleT, Tensor};
use candle_nn::{Linear, VarMap};

/// TensorFlow's BatchNorm epsilon, which the weights were trained with.
const BN_EPS: f64 = 1e-3;
/// (repeats, kernel, stride, expand ratio, in, out) of the seven stages.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
const STEM_CHANNELS: usize = 32;
/// Channels of the last 1x1 convolution: the features a head sees.
pub const FEATURES: usize = 1280;
/// Dropout before `_fc` (EfficientNet-Lite0's `dropout_rate`).
const FC_DROPOUT: f64 = 0.2;
/// The names of its own classifier (cut for transfer learning).
pub const OWN_HEAD_PREFIX: &str = "_fc.";

/// TensorFlow "SAME" padding of one axis of `n` pixels: (before, after), with
/// out = ceil(n / stride) and total = max((out - 1) * stride + kernel - n, 0).
pub fn same_padding(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// A bias-free convolution with "SAME" padding computed from the input's size.
struct SameConv {
    conv: Conv2d,
    kernel: usize,
}

impl SameConv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (s, k) = (self.conv.stride, self.kernel);
        let (top, bottom) = same_padding(x.dim(2)?, k, s);
        let (left, right) = same_padding(x.dim(3)?, k, s);
        // The symmetric part goes through the convolution's own padding (no
        // copy); only the extra row/column after the input is padded here.
        let sym = top.min(bottom).min(left).min(right);
        let x = x
            .pad_with_zeros(2, top - sym, bottom - sym)?
            .pad_with_zeros(3, left - sym, right - sym)?;
        Conv2d {
            padding: sym,
            ..self.conv.clone()
        }
        .forward(&x)
    }
}

fn relu6(bn: &BatchNorm2d, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    bn.forward_relu(x, train)?.minimum(6f32)
}

fn batch_norm(pb: &mut ParamBuilder, name: &str, channels: usize) -> Result<BatchNorm2d> {
    pb.batch_norm_with(name, channels, BN_EPS, 0.0)
}

/// A mobile inverted bottleneck without squeeze-excitation.
struct MbConv {
    /// 1x1 expansion + BN (absent when the expand ratio is 1).
    expand: Option<(Conv2d, BatchNorm2d)>,
    depthwise: SameConv,
    bn1: BatchNorm2d,
    project: Conv2d,
    bn2: BatchNorm2d,
    /// Stride 1 and in == out: add the input.
    residual: bool,
}

impl MbConv {
    fn new(
        pb: &mut ParamBuilder,
        name: &str,
        (kernel, stride, expand, c_in, c_out): (usize, usize, usize, usize, usize),
    ) -> Result<Self> {
        let mid = c_in * expand;
        let expand = if expand != 1 {
            let conv = pb.conv2d(&format!("{name}._expand_conv"), c_in, mid, 1, 1, 0)?;
            Some((conv, batch_norm(pb, &format!("{name}._bn0"), mid)?))
        } else {
            None
        };
        let mut dw = pb.conv2d(
            &format!("{name}._depthwise_conv"),
            1,
            mid,
            kernel,
            stride,
            0,
        )?;
        dw.groups = mid;
        let bn1 = batch_norm(pb, &format!("{name}._bn1"), mid)?;
        let project = pb.conv2d(&format!("{name}._project_conv"), mid, c_out, 1, 1, 0)?;
        let bn2 = batch_norm(pb, &format!("{name}._bn2"), c_out)?;
        Ok(MbConv {
            expand,
            depthwise: SameConv { conv: dw, kernel },
            bn1,
            project,
            bn2,
            residual: stride == 1 && c_in == c_out,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = match &self.expand {
            Some((conv, bn)) => relu6(bn, &conv.forward(x)?, train)?,
            None => x.clone(),
        };
        let h = relu6(&self.bn1, &self.depthwise.forward(&h)?, train)?;
        let h = self.bn2.forward_t(&self.project.forward(&h)?, train)?;
        if self.residual { h + x } else { Ok(h) }
    }
}

enum Head {
    /// Global average pool, dropout, `_fc`.
    Own {
        dropout: Dropout,
        fc: Linear,
    },
    Fastai(FastaiHead),
}

pub struct EfficientNetLite0 {
    stem: SameConv,
    bn0: BatchNorm2d,
    blocks: Vec<MbConv>,
    conv_head: Conv2d,
    bn1: BatchNorm2d,
    head: Head,
    trainable: Vec<TrainParam>,
    groups: Option<TransferGroups>,
}

impl EfficientNetLite0 {
    /// A freshly initialised network (torchvision-style init: convolutions
    /// kaiming-normal fan-out, BN 1/0, `_fc` PyTorch's Linear default) whose
    /// variables live in `varmap`. With `HeadKind::Fastai`, `_fc` is replaced
    /// by fastai's head and the parameters are split body / head.
    pub fn new(
        num_classes: usize,
        head: HeadKind,
        varmap: &VarMap,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        tune_allocator();
        let mut rng = rng;
        let dropout_seed = rng.next_u64();
        let mut pb = ParamBuilder::new(varmap, device, rng);
        let stem = pb.conv2d("_conv_stem", 3, STEM_CHANNELS, 3, 2, 0)?;
        let bn0 = batch_norm(&mut pb, "_bn0", STEM_CHANNELS)?;
        let mut blocks = Vec::new();
        for (repeats, kernel, stride, expand, c_in, c_out) in STAGES {
            for r in 0..repeats {
                let (s, i) = if r == 0 { (stride, c_in) } else { (1, c_out) };
                let name = format!("_blocks.{}", blocks.len());
                blocks.push(MbConv::new(&mut pb, &name, (kernel, s, expand, i, c_out))?);
            }
        }
        let last = STAGES[STAGES.len() - 1].5;
        let conv_head = pb.conv2d("_conv_head", last, FEATURES, 1, 1, 0)?;
        let bn1 = batch_norm(&mut pb, "_bn1", FEATURES)?;
        let head = match head {
            HeadKind::Own => Head::Own {
                dropout: Dropout::new(FC_DROPOUT, dropout_seed),
                fc: pb.linear("_fc", FEATURES, num_classes)?,
            },
            HeadKind::Fastai => Head::Fastai(FastaiHead::new(
                &mut pb,
                FEATURES,
                num_classes,
                dropout_seed,
            )?),
        };
        let norms: Vec<String> = pb.norm_names().to_vec();
        let trainable = pb.into_trainable();
        let groups = matches!(head, Head::Fastai(_))
            .then(|| TransferGroups::split(&trainable, &norms, HEAD_PREFIX));
        Ok(EfficientNetLite0 {
            stem: SameConv {
                conv: stem,
                kernel: 3,
            },
            bn0,
            blocks,
            conv_head,
            bn1,
            head,
            trainable,
            groups,
        })
    }

    /// The body: images -> (N, 1280, H/32, W/32) features.
    fn features(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = relu6(&self.bn0, &self.stem.forward(x)?, train)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        relu6(&self.bn1, &self.conv_head.forward(&x)?, train)
    }
}

impl crate::models::Classifier for EfficientNetLite0 {
    fn trainable(&self) -> &[TrainParam] {
        &self.trainable
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let f = self.features(x, train)?;
        match &self.head {
            Head::Own { dropout, fc } => {
                let pooled = adaptive_avg_pool2d(&f, (1, 1))?.flatten_from(1)?;
                fc.forward(&dropout.forward_t(&pooled, train)?)
            }
            Head::Fastai(head) => head.forward_t(&f, train),
        }
    }

    fn begin_step(&self, step: usize) {
        match &self.head {
            Head::Own { dropout, .. } => dropout.begin_step(step as u64),
            Head::Fastai(head) => head.begin_step(step as u64),
        }
    }

    fn transfer_groups(&self) -> Option<&TransferGroups> {
        self.groups.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Classifier;

    #[test]
    fn same_padding_follows_tensorflow() {
        // out = ceil(n/s), total = max((out-1)*s + k - n, 0), before = total/2.
        assert_eq!(same_padding(224, 3, 2), (0, 1)); // out 112: 111*2+3-224 = 1
        assert_eq!(same_padding(112, 5, 2), (1, 2)); // out 56: 55*2+5-112 = 3
        assert_eq!(same_padding(56, 3, 1), (1, 1)); // 55+3-56 = 2
        assert_eq!(same_padding(7, 5, 1), (2, 2));
        assert_eq!(same_padding(7, 3, 2), (1, 1)); // out 4: 3*2+3-7 = 2
        assert_eq!(same_padding(2, 1, 2), (0, 0)); // max(.., 0)
    }

    #[test]
    fn lukemelas_names_shapes_and_parameter_count() {
        let vm = VarMap::new();
        let m =
            EfficientNetLite0::new(1000, HeadKind::Own, &vm, &Device::Cpu, Rng::new(1)).unwrap();
        let data = vm.data().lock().unwrap();
        let shape = |n: &str| {
            data.get(n)
                .unwrap_or_else(|| panic!("missing {n}"))
                .dims()
                .to_vec()
        };
        assert_eq!(shape("_conv_stem.weight"), [32, 3, 3, 3]);
        assert_eq!(shape("_blocks.0._depthwise_conv.weight"), [32, 1, 3, 3]);
        assert!(!data.contains_key("_blocks.0._expand_conv.weight"));
        assert_eq!(shape("_blocks.1._expand_conv.weight"), [96, 16, 1, 1]);
        assert_eq!(shape("_blocks.15._project_conv.weight"), [320, 1152, 1, 1]);
        assert_eq!(shape("_conv_head.weight"), [1280, 320, 1, 1]);
        assert_eq!(shape("_fc.weight"), [1000, 1280]);
        // Counted over the converted ImageNet file: 4,694,024 values without
        // num_batches_tracked (the README's 4.69M), 4,652,008 of them trainable.
        let n: usize = m.trainable().iter().map(|p| p.var.elem_count()).sum();
        assert_eq!(n, 4_652_008);
        let all: usize = data.values().map(|v| v.elem_count()).sum();
        assert_eq!(all, 4_694_024);
    }

    #[test]
    fn fastai_head_splits_body_and_head_and_forwards() {
        let vm = VarMap::new();
        let m =
            EfficientNetLite0::new(4, HeadKind::Fastai, &vm, &Device::Cpu, Rng::new(2)).unwrap();
        assert!(!vm.data().lock().unwrap().contains_key("_fc.weight"));
        let g = m.transfer_groups().unwrap();
        assert!(g.head.iter().all(|p| p.name.starts_with("head.")));
        assert_eq!(g.head.len(), 6);
        assert_eq!(g.body.len() + g.head.len(), m.trainable().len());
        assert!(g.body_norms.iter().all(|p| p.name.contains("_bn")));
        assert!(g.body_norms.iter().any(|p| p.name == "_blocks.3._bn1.bias"));
        let x = Tensor::zeros((2, 3, 40, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(m.forward_t(&x, true).unwrap().dims(), [2, 4]);
        assert_eq!(m.forward_t(&x, false).unwrap().dims(), [2, 4]);
    }
}
