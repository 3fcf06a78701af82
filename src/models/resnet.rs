//! ResNet-18, -34 and -50 exactly as torchvision builds them, with
//! torchvision's parameter names (`layer1.0.conv1.weight`,
//! `layer2.0.downsample.1.running_mean`, ...) so that torchvision checkpoints
//! map onto them one to one. 18 and 34 stack BasicBlocks (two 3x3 convs), 50
//! stacks Bottlenecks (1x1 -> 3x3 with the stride -> 1x1 widening 4x, the
//! "v1.5" torchvision ships).
//!
//! candle-transformers' resnet runs BatchNorm in eval mode only, so orchard has
//! its own: BatchNorm uses batch statistics while training and the running ones
//! for validation (`forward_t(x, train)`). Convolutions, batch norms and pooling
//! run on orchard's kernels (`crate::kernels`), which fall back to candle's own
//! ops off the CPU.

use crate::error::Result;
use crate::kernels::{
    BatchNorm2d, Conv2d, adaptive_avg_pool2d, add_relu, max_pool2d, tune_allocator,
};
use crate::models::head::{FastaiHead, HEAD_PREFIX};
use crate::models::{HeadKind, TransferGroups};
use crate::rng::Rng;
use crate::train::params::{ParamBuilder, TrainParam};
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{Linear, VarMap};

/// Width of the four stages (before a Bottleneck's 4x) and their first block's stride.
const STAGES: [(usize, usize); 4] = [(64, 1), (128, 2), (256, 2), (512, 2)];

/// The torchvision ResNets orchard builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNetDepth {
    R18,
    R34,
    R50,
}

impl ResNetDepth {
    /// Blocks per stage, as torchvision's `resnet18/34/50`.
    fn blocks_per_stage(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R34 | ResNetDepth::R50 => [3, 4, 6, 3],
        }
    }

    /// How much a block widens its stage's width (torchvision's `expansion`).
    fn expansion(self) -> usize {
        match self {
            ResNetDepth::R18 | ResNetDepth::R34 => 1,
            ResNetDepth::R50 => 4,
        }
    }
}

/// torchvision's own classifier (`fc` on the average pool), or fastai's head.
enum Head {
    Own(Linear),
    /// fastai cuts torchvision's resnets before `avgpool` (`cut=-2`).
    Fastai(FastaiHead),
}

/// The names of torchvision's classifier (cut for transfer learning).
pub const OWN_HEAD_PREFIX: &str = "fc.";

pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<Block>,
    head: Head,
    trainable: Vec<TrainParam>,
    groups: Option<TransferGroups>,
}

impl ResNet {
    /// A freshly initialised network whose variables live in `varmap` (which
    /// should be empty). Initial weights are a function of `rng` alone.
    pub fn new(
        depth: ResNetDepth,
        num_classes: usize,
        varmap: &VarMap,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        Self::with_head(depth, num_classes, HeadKind::Own, varmap, device, rng)
    }

    /// As `new`; with `HeadKind::Fastai` the body (everything before
    /// `avgpool`) gets fastai's head instead of `fc`, and the parameters are
    /// split body / head.
    pub fn with_head(
        depth: ResNetDepth,
        num_classes: usize,
        head: HeadKind,
        varmap: &VarMap,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        Self::build(depth, num_classes, head, varmap, device, DType::F32, rng)
    }

    /// As `new` with variables of `dtype` (float64 for checks against
    /// references computed in float64).
    pub fn with_dtype(
        depth: ResNetDepth,
        num_classes: usize,
        varmap: &VarMap,
        device: &Device,
        dtype: DType,
        rng: Rng,
    ) -> Result<Self> {
        Self::build(
            depth,
            num_classes,
            HeadKind::Own,
            varmap,
            device,
            dtype,
            rng,
        )
    }

    fn build(
        depth: ResNetDepth,
        num_classes: usize,
        head: HeadKind,
        varmap: &VarMap,
        device: &Device,
        dtype: DType,
        rng: Rng,
    ) -> Result<Self> {
        // Training allocates many multi-MiB tensors per step: keep them in the
        // heap (idempotent; every program that trains a model gets it).
        tune_allocator();
        let mut rng = rng;
        // Drawn only for fastai's head so a plain model's weights stay as before.
        let dropout_seed = (head == HeadKind::Fastai).then(|| rng.next_u64());
        let mut pb = ParamBuilder::new(varmap, device, rng).with_dtype(dtype);
        let conv1 = pb.conv2d("conv1", 3, 64, 7, 2, 3)?;
        let bn1 = pb.batch_norm("bn1", 64)?;
        let mut blocks = Vec::new();
        let mut c_in = 64;
        let expansion = depth.expansion();
        for (stage, ((width, stride), count)) in
            STAGES.into_iter().zip(depth.blocks_per_stage()).enumerate()
        {
            for i in 0..count {
                let name = format!("layer{}.{i}", stage + 1);
                let stride = if i == 0 { stride } else { 1 };
                let block = if expansion == 1 {
                    Block::basic(&mut pb, &name, c_in, width, stride)?
                } else {
                    Block::bottleneck(&mut pb, &name, c_in, width, stride)?
                };
                blocks.push(block);
                c_in = width * expansion;
            }
        }
        let head = match dropout_seed {
            None => Head::Own(pb.linear("fc", c_in, num_classes)?),
            Some(seed) => Head::Fastai(FastaiHead::new(&mut pb, c_in, num_classes, seed)?),
        };
        let norms = pb.norm_names().to_vec();
        let trainable = pb.into_trainable();
        // fastai's `_resnet_split`: conv1, bn1 (relu, maxpool), layer1, layer2 | layer3, layer4 | head.
        let groups = matches!(head, Head::Fastai(_)).then(|| {
            TransferGroups::split(&trainable, &norms, HEAD_PREFIX).with_body_split(|name| {
                ["conv1.", "bn1.", "layer1.", "layer2."]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
        });
        Ok(ResNet {
            conv1,
            bn1,
            blocks,
            head,
            trainable,
            groups,
        })
    }
}

impl crate::models::Classifier for ResNet {
    fn trainable(&self) -> &[TrainParam] {
        &self.trainable
    }

    /// NCHW images -> logits (N, num_classes).
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let x = self.conv1.forward(x)?;
        let x = self.bn1.forward_relu(&x, train)?;
        let mut x = max_pool2d(&x, 3, 2, 1)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        match &self.head {
            // AdaptiveAvgPool2d((1, 1)) + flatten.
            Head::Own(fc) => fc.forward(&adaptive_avg_pool2d(&x, (1, 1))?.flatten_from(1)?),
            Head::Fastai(head) => head.forward_t(&x, train),
        }
    }

    fn begin_step(&self, step: usize) {
        if let Head::Fastai(head) = &self.head {
            head.begin_step(step as u64);
        }
    }

    fn transfer_groups(&self) -> Option<&TransferGroups> {
        self.groups.as_ref()
    }
}

/// A residual block: conv + BN pairs (ReLU between them, none after the last),
/// then ReLU(branch + identity).
struct Block {
    /// `conv1`/`bn1`, `conv2`/`bn2` (and `conv3`/`bn3` in a Bottleneck).
    path: Vec<(Conv2d, BatchNorm2d)>,
    /// 1x1 conv + BN on the identity path when the shape changes.
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Block {
    /// torchvision's BasicBlock: 3x3 (stride) -> 3x3.
    fn basic(
        pb: &mut ParamBuilder,
        name: &str,
        c_in: usize,
        width: usize,
        stride: usize,
    ) -> Result<Self> {
        // Creation order is torchvision's, so the Rng draws land on the same layers.
        let path = vec![
            Self::conv_bn(pb, name, 1, c_in, width, 3, stride)?,
            Self::conv_bn(pb, name, 2, width, width, 3, 1)?,
        ];
        let downsample = Self::downsample(pb, name, c_in, width, stride)?;
        Ok(Block { path, downsample })
    }

    /// torchvision's Bottleneck: 1x1 -> 3x3 (stride) -> 1x1 to 4x the width.
    fn bottleneck(
        pb: &mut ParamBuilder,
        name: &str,
        c_in: usize,
        width: usize,
        stride: usize,
    ) -> Result<Self> {
        let c_out = width * 4;
        let path = vec![
            Self::conv_bn(pb, name, 1, c_in, width, 1, 1)?,
            Self::conv_bn(pb, name, 2, width, width, 3, stride)?,
            Self::conv_bn(pb, name, 3, width, c_out, 1, 1)?,
        ];
        let downsample = Self::downsample(pb, name, c_in, c_out, stride)?;
        Ok(Block { path, downsample })
    }

    /// `{name}.conv{i}` (padding keeps the size for odd kernels) and `{name}.bn{i}`.
    fn conv_bn(
        pb: &mut ParamBuilder,
        name: &str,
        i: usize,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<(Conv2d, BatchNorm2d)> {
        let conv = pb.conv2d(
            &format!("{name}.conv{i}"),
            c_in,
            c_out,
            kernel,
            stride,
            kernel / 2,
        )?;
        let bn = pb.batch_norm(&format!("{name}.bn{i}"), c_out)?;
        Ok((conv, bn))
    }

    fn downsample(
        pb: &mut ParamBuilder,
        name: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
    ) -> Result<Option<(Conv2d, BatchNorm2d)>> {
        if stride == 1 && c_in == c_out {
            return Ok(None);
        }
        Ok(Some((
            pb.conv2d(&format!("{name}.downsample.0"), c_in, c_out, 1, stride, 0)?,
            pb.batch_norm(&format!("{name}.downsample.1"), c_out)?,
        )))
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (last, inner) = self.path.split_last().expect("a block has convolutions");
        let mut out = x.clone();
        for (conv, bn) in inner {
            out = bn.forward_relu(&conv.forward(&out)?, train)?;
        }
        let out = last.1.forward_t(&last.0.forward(&out)?, train)?;
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        add_relu(&out, &identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Classifier;

    fn build(num_classes: usize, seed: u64) -> (ResNet, VarMap) {
        build_depth(ResNetDepth::R18, num_classes, seed)
    }

    fn build_depth(depth: ResNetDepth, num_classes: usize, seed: u64) -> (ResNet, VarMap) {
        let varmap = VarMap::new();
        let model = ResNet::new(depth, num_classes, &varmap, &Device::Cpu, Rng::new(seed)).unwrap();
        (model, varmap)
    }

    #[test]
    fn has_torchvision_names_and_shapes() {
        let (model, varmap) = build(6, 1);
        let data = varmap.data().lock().unwrap();
        let shape = |n: &str| {
            data.get(n)
                .unwrap_or_else(|| panic!("missing {n}"))
                .dims()
                .to_vec()
        };
        assert_eq!(shape("conv1.weight"), [64, 3, 7, 7]);
        assert_eq!(shape("bn1.running_var"), [64]);
        assert_eq!(shape("layer1.0.conv1.weight"), [64, 64, 3, 3]);
        assert_eq!(shape("layer1.1.bn2.bias"), [64]);
        assert_eq!(shape("layer2.0.downsample.0.weight"), [128, 64, 1, 1]);
        assert_eq!(shape("layer2.0.downsample.1.running_mean"), [128]);
        assert_eq!(shape("layer4.1.conv2.weight"), [512, 512, 3, 3]);
        assert_eq!(shape("fc.weight"), [6, 512]);
        assert_eq!(shape("fc.bias"), [6]);
        assert!(!data.contains_key("layer1.0.downsample.0.weight"));
        // torchvision's resnet18 state_dict: 122 tensors, of which 20 are
        // num_batches_tracked (not kept here) and 40 running stats.
        assert_eq!(data.len(), 102);
        assert_eq!(model.trainable().len(), 62);
        let params: usize = model.trainable().iter().map(|p| p.var.elem_count()).sum();
        // torchvision resnet18 with 1000 classes has 11_689_512; the fc differs.
        assert_eq!(params, 11_689_512 - 513 * 1000 + 513 * 6);
        let no_decay: Vec<&str> = model
            .trainable()
            .iter()
            .filter(|p| !p.weight_decay)
            .map(|p| p.name.as_str())
            .collect();
        assert!(
            no_decay.contains(&"fc.bias") && no_decay.contains(&"layer3.0.downsample.1.weight")
        );
        assert!(
            !no_decay
                .iter()
                .any(|n| n.ends_with("conv1.weight") || *n == "fc.weight")
        );
    }

    #[test]
    fn init_follows_torchvision_and_the_seed() {
        let (_, a) = build(4, 5);
        let (_, b) = build(4, 5);
        let (_, c) = build(4, 6);
        let get = |m: &VarMap, n: &str| -> Vec<f32> {
            m.data().lock().unwrap()[n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(
            get(&a, "layer3.1.conv1.weight"),
            get(&b, "layer3.1.conv1.weight")
        );
        assert_ne!(
            get(&a, "layer3.1.conv1.weight"),
            get(&c, "layer3.1.conv1.weight")
        );
        // kaiming_normal_ fan_out: std = sqrt(2 / (256 * 9)).
        let w = get(&a, "layer3.1.conv1.weight");
        let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        let want = (2.0 / (256.0 * 9.0f64)).sqrt();
        assert!((std / want - 1.0).abs() < 0.02, "{std} vs {want}");
        let fc = get(&a, "fc.weight");
        let bound = 1.0 / 512f32.sqrt();
        assert!(fc.iter().all(|v| v.abs() <= bound));
        assert!(get(&a, "bn1.weight").iter().all(|v| *v == 1.0));
        assert!(get(&a, "bn1.bias").iter().all(|v| *v == 0.0));
    }

    #[test]
    fn forward_shapes_and_running_stats() {
        let (model, varmap) = build(3, 2);
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..2 * 3 * 32 * 32).map(|_| rng.normal() as f32).collect();
        let x = Tensor::from_vec(x, (2, 3, 32, 32), &Device::Cpu).unwrap();
        let running = |name: &str| -> Vec<f32> {
            varmap.data().lock().unwrap()[name]
                .as_tensor()
                .to_vec1()
                .unwrap()
        };
        let before = running("bn1.running_mean");
        let y = model.forward_t(&x, false).unwrap();
        assert_eq!(y.dims(), [2, 3]);
        assert_eq!(
            running("bn1.running_mean"),
            before,
            "eval mode leaves running stats alone"
        );
        let y = model.forward_t(&x, true).unwrap();
        assert_eq!(y.dims(), [2, 3]);
        assert_eq!(y.dtype(), DType::F32);
        assert_ne!(
            running("bn1.running_mean"),
            before,
            "training mode updates running stats"
        );
    }

    #[test]
    fn resnet34_and_50_match_torchvision() {
        // torchvision 0.29.2 (tests/reference/model_counts.py): 1000 classes
        // 21,797,672 and 25,557,032; 4 classes 21,286,724 and 23,516,228.
        for (depth, reference, want) in [
            (ResNetDepth::R34, "resnet34_keys", 21_286_724),
            (ResNetDepth::R50, "resnet50_keys", 23_516_228),
        ] {
            let (model, varmap) = build_depth(depth, 4, 3);
            crate::models::tests::assert_same_names(&varmap, reference);
            let params: usize = model.trainable().iter().map(|p| p.var.elem_count()).sum();
            assert_eq!(params, want, "{depth:?}");
        }
        let (model, _) = build_depth(ResNetDepth::R34, 1000, 3);
        let params: usize = model.trainable().iter().map(|p| p.var.elem_count()).sum();
        assert_eq!(params, 21_797_672);
        let (model, varmap) = build_depth(ResNetDepth::R50, 1000, 3);
        let params: usize = model.trainable().iter().map(|p| p.var.elem_count()).sum();
        assert_eq!(params, 25_557_032);
        // Bottleneck 1x1 convs are initialised as every conv: kaiming fan_out.
        let w: Vec<f32> = varmap.data().lock().unwrap()["layer3.2.conv3.weight"]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        let want = (2.0 / 1024.0f64).sqrt();
        assert!((std / want - 1.0).abs() < 0.02, "{std} vs {want}");
        let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.forward_t(&x, true).unwrap().dims(), [2, 1000]);
    }
}
