//! ResNet-18 exactly as torchvision builds it, with torchvision's parameter
//! names (`layer1.0.conv1.weight`, `layer2.0.downsample.1.running_mean`, ...)
//! so that torchvision checkpoints map onto it one to one.
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
use crate::rng::Rng;
use crate::train::params::{ParamBuilder, TrainParam};
use candle_core::{Device, Module, ModuleT, Tensor};
use candle_nn::{Linear, VarMap};

/// Width of the four stages and their first block's stride.
const STAGES: [(usize, usize); 4] = [(64, 1), (128, 2), (256, 2), (512, 2)];
/// BasicBlocks per stage in ResNet-18.
const BLOCKS_PER_STAGE: usize = 2;

pub struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    fc: Linear,
    trainable: Vec<TrainParam>,
}

impl ResNet18 {
    /// A freshly initialised network whose variables live in `varmap` (which
    /// should be empty). Initial weights are a function of `rng` alone.
    pub fn new(num_classes: usize, varmap: &VarMap, device: &Device, rng: Rng) -> Result<Self> {
        // Training allocates many multi-MiB tensors per step: keep them in the
        // heap (idempotent; every program that trains a model gets it).
        tune_allocator();
        let mut pb = ParamBuilder::new(varmap, device, rng);
        let conv1 = pb.conv2d("conv1", 3, 64, 7, 2, 3)?;
        let bn1 = pb.batch_norm("bn1", 64)?;
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, (width, stride)) in STAGES.into_iter().enumerate() {
            for i in 0..BLOCKS_PER_STAGE {
                let name = format!("layer{}.{i}", stage + 1);
                let stride = if i == 0 { stride } else { 1 };
                blocks.push(BasicBlock::new(&mut pb, &name, c_in, width, stride)?);
                c_in = width;
            }
        }
        let fc = pb.linear("fc", c_in, num_classes)?;
        Ok(ResNet18 {
            conv1,
            bn1,
            blocks,
            fc,
            trainable: pb.into_trainable(),
        })
    }
}

impl crate::models::Classifier for ResNet18 {
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
        // AdaptiveAvgPool2d((1, 1)) + flatten.
        let x = adaptive_avg_pool2d(&x, (1, 1))?.flatten_from(1)?;
        self.fc.forward(&x)
    }
}

struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    /// 1x1 conv + BN on the identity path when the shape changes.
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn new(
        pb: &mut ParamBuilder,
        name: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
    ) -> Result<Self> {
        // Creation order is torchvision's, so the Rng draws land on the same layers.
        let conv1 = pb.conv2d(&format!("{name}.conv1"), c_in, c_out, 3, stride, 1)?;
        let bn1 = pb.batch_norm(&format!("{name}.bn1"), c_out)?;
        let conv2 = pb.conv2d(&format!("{name}.conv2"), c_out, c_out, 3, 1, 1)?;
        let bn2 = pb.batch_norm(&format!("{name}.bn2"), c_out)?;
        let downsample = if stride != 1 || c_in != c_out {
            Some((
                pb.conv2d(&format!("{name}.downsample.0"), c_in, c_out, 1, stride, 0)?,
                pb.batch_norm(&format!("{name}.downsample.1"), c_out)?,
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let out = self.bn1.forward_relu(&self.conv1.forward(x)?, train)?;
        let out = self.bn2.forward_t(&self.conv2.forward(&out)?, train)?;
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
    use candle_core::DType;

    fn build(num_classes: usize, seed: u64) -> (ResNet18, VarMap) {
        let varmap = VarMap::new();
        let model = ResNet18::new(num_classes, &varmap, &Device::Cpu, Rng::new(seed)).unwrap();
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
}
