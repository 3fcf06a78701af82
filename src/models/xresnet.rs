//! fastai's `xresnet18/34/50` ("Bag of Tricks" ResNet, vision/models/xresnet.py)
//! with the imagewoof toolbox's options: Mish instead of ReLU, a
//! SimpleSelfAttention layer, and MaxBlurPool instead of the stem's max-pool.
//!
//! The layout is fastai's `nn.Sequential`, and so are the parameter names:
//!   0, 1, 2   stem ConvLayers 3->32 (stride 2), 32->32, 32->64: conv (no bias) `.0`, BN `.1`, act
//!   3         MaxPool(3, 2, 1) (or MaxBlurPool; no parameters either way)
//!   4..=7     stages of ResBlocks `4.0`, `4.1`, ...: `convpath.K` ConvLayers,
//!             the last with a zero-initialised BN and no act; `idpath` =
//!             [AvgPool2d(2, ceil_mode) if stride 2] + [1x1 ConvLayer, no act, if the width changes]
//!   8, 9, 10  AdaptiveAvgPool, Flatten, Dropout(p = 0, the default: the identity)
//!   11        Linear
//! so fastai state_dicts map one to one (minus `num_batches_tracked`, which
//! orchard does not keep). Init is fastai's `init_cnn`: kaiming_normal_ (fan_in)
//! on every conv and linear weight, every bias 0, BN weights 1 (0 for each
//! block's last BN: `NormType.BatchZero`).

use crate::config::Activation;
use crate::error::Result;
use crate::kernels::{
    BatchNorm2d, Conv2d, PoolWindow, adaptive_avg_pool2d, add_relu, avg_pool2d_with, max_pool2d,
    mish, tune_allocator,
};
use crate::models::head::{FastaiHead, HEAD_PREFIX};
use crate::models::layers::{SimpleSelfAttention, max_blur_pool};
use crate::models::{HeadKind, TransferGroups};
use crate::rng::Rng;
use crate::train::params::{ParamBuilder, TrainParam};
use candle_core::{Device, Module, ModuleT, Tensor};
use candle_nn::{Linear, VarMap};

/// fastai's stem widths after the 3 input channels (`stem_szs`).
const STEM: [usize; 3] = [32, 32, 64];
/// Stage widths before a block's expansion (`block_szs`).
const WIDTHS: [usize; 4] = [64, 128, 256, 512];
/// Index of the first stage in fastai's Sequential (after stem and pool).
const FIRST_STAGE: usize = 4;
/// Index of the Linear head (after pool, flatten, dropout).
const HEAD: usize = 11;
/// The names of fastai's own classifier Linear (cut for transfer learning).
pub const OWN_HEAD_PREFIX: &str = "11.";

/// The xresnets orchard builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XResNetDepth {
    X18,
    X34,
    X50,
}

impl XResNetDepth {
    /// Blocks per stage and expansion, as fastai's `xresnet18/34/50`.
    fn layout(self) -> ([usize; 4], usize) {
        match self {
            XResNetDepth::X18 => ([2, 2, 2, 2], 1),
            XResNetDepth::X34 => ([3, 4, 6, 3], 1),
            XResNetDepth::X50 => ([3, 4, 6, 3], 4),
        }
    }
}

/// The imagewoof toolbox's options (config keys `model.activation`,
/// `model.self_attention`, `model.maxblurpool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XResNetOptions {
    pub activation: Activation,
    /// fastai's `sa=True`.
    pub self_attention: bool,
    pub max_blur_pool: bool,
}

/// fastai's own classifier (pool, flatten, dropout, `11` Linear), or
/// fastai's transfer-learning head.
enum Head {
    Own(Linear),
    /// `vision_learner` cuts an xresnet before its pool (`cut=-4`).
    Fastai(FastaiHead),
}

pub struct XResNet {
    stem: Vec<ConvLayer>,
    options: XResNetOptions,
    blocks: Vec<ResBlock>,
    head: Head,
    trainable: Vec<TrainParam>,
    groups: Option<TransferGroups>,
}

impl XResNet {
    /// A freshly initialised network whose variables live in `varmap` (which
    /// should be empty). Initial weights are a function of `rng` alone.
    pub fn new(
        depth: XResNetDepth,
        options: XResNetOptions,
        num_classes: usize,
        varmap: &VarMap,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        Self::with_head(
            depth,
            options,
            num_classes,
            HeadKind::Own,
            varmap,
            device,
            rng,
        )
    }

    /// As `new`; with `HeadKind::Fastai` the body (stem, pool and stages)
    /// gets fastai's head instead of its own, and the parameters are split
    /// body / head.
    pub fn with_head(
        depth: XResNetDepth,
        options: XResNetOptions,
        num_classes: usize,
        head: HeadKind,
        varmap: &VarMap,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        tune_allocator();
        let mut rng = rng;
        // Drawn only for fastai's head so a plain model's weights stay as before.
        let dropout_seed = (head == HeadKind::Fastai).then(|| rng.next_u64());
        let mut pb = ParamBuilder::new(varmap, device, rng);
        let mut stem = Vec::new();
        let mut c_in = 3;
        for (i, width) in STEM.into_iter().enumerate() {
            let stride = if i == 0 { 2 } else { 1 };
            stem.push(ConvLayer::new(
                &mut pb,
                &i.to_string(),
                c_in,
                width,
                3,
                stride,
                Norm::One,
            )?);
            c_in = width;
        }
        let (counts, expansion) = depth.layout();
        // fastai: block_szs = [64 // expansion, 64, 128, 256, 512], each times expansion.
        let mut c_in = 64 / expansion * expansion;
        let mut blocks = Vec::new();
        for (stage, (width, count)) in WIDTHS.into_iter().zip(counts).enumerate() {
            let c_out = width * expansion;
            for i in 0..count {
                let name = format!("{}.{i}", FIRST_STAGE + stage);
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                // fastai: `sa and i == len(layers) - 4` (the first stage), last block only.
                let attention = options.self_attention && stage == 0 && i == count - 1;
                let shape = BlockShape {
                    c_in,
                    width,
                    c_out,
                    stride,
                };
                blocks.push(ResBlock::new(&mut pb, &name, shape, expansion, attention)?);
                c_in = c_out;
            }
        }
        let head = match dropout_seed {
            None => Head::Own(pb.linear_fan_in(&HEAD.to_string(), c_in, num_classes)?),
            Some(seed) => Head::Fastai(FastaiHead::new(&mut pb, c_in, num_classes, seed)?),
        };
        let norms = pb.norm_names().to_vec();
        let trainable = pb.into_trainable();
        // fastai's `_xresnet_split`: the 3 stem convs | pool and stages | head.
        let groups = matches!(head, Head::Fastai(_)).then(|| {
            TransferGroups::split(&trainable, &norms, HEAD_PREFIX)
                .with_body_split(|name| ["0.", "1.", "2."].iter().any(|p| name.starts_with(p)))
        });
        Ok(XResNet {
            stem,
            options,
            blocks,
            head,
            trainable,
            groups,
        })
    }
}

impl crate::models::Classifier for XResNet {
    fn trainable(&self) -> &[TrainParam] {
        &self.trainable
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let act = self.options.activation;
        let mut x = x.clone();
        for layer in &self.stem {
            x = layer.forward_t(&x, train, Some(act))?;
        }
        x = if self.options.max_blur_pool {
            max_blur_pool(&x)?
        } else {
            max_pool2d(&x, 3, 2, 1)?
        };
        for block in &self.blocks {
            x = block.forward_t(&x, train, act)?;
        }
        match &self.head {
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

/// Which value a ConvLayer's BN weight starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    One,
    /// fastai's BatchZero.
    Zero,
}

/// fastai's `ConvLayer`: conv (no bias, padding ks // 2) `.0`, BatchNorm `.1`, then the activation.
struct ConvLayer {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvLayer {
    fn new(
        pb: &mut ParamBuilder,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        norm: Norm,
    ) -> Result<Self> {
        let conv = pb.conv2d_fan_in(
            &format!("{name}.0"),
            c_in,
            c_out,
            kernel,
            stride,
            kernel / 2,
        )?;
        let bn_name = format!("{name}.1");
        let bn = match norm {
            Norm::One => pb.batch_norm(&bn_name, c_out)?,
            Norm::Zero => pb.batch_norm_zero(&bn_name, c_out)?,
        };
        Ok(ConvLayer { conv, bn })
    }

    /// conv -> BN -> `act` (none for a block's last layer and the identity path).
    fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        act: Option<Activation>,
    ) -> candle_core::Result<Tensor> {
        let y = self.conv.forward(x)?;
        match act {
            None => self.bn.forward_t(&y, train),
            Some(Activation::Relu) => self.bn.forward_relu(&y, train),
            Some(Activation::Mish) => mish(&self.bn.forward_t(&y, train)?),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct BlockShape {
    c_in: usize,
    /// The inner width (the stage's width; a Bottleneck's 1x1 and 3x3 use it).
    width: usize,
    c_out: usize,
    stride: usize,
}

/// fastai's `ResBlock`: act(convpath(x) + idpath(x)).
struct ResBlock {
    convpath: Vec<ConvLayer>,
    attention: Option<SimpleSelfAttention>,
    /// AvgPool2d(2, ceil_mode=True) first on the identity path (stride 2).
    pool: bool,
    idconv: Option<ConvLayer>,
}

impl ResBlock {
    fn new(
        pb: &mut ParamBuilder,
        name: &str,
        s: BlockShape,
        expansion: usize,
        attention: bool,
    ) -> Result<Self> {
        let path = |k: usize| format!("{name}.convpath.{k}");
        let convpath = if expansion == 1 {
            vec![
                ConvLayer::new(pb, &path(0), s.c_in, s.width, 3, s.stride, Norm::One)?,
                ConvLayer::new(pb, &path(1), s.width, s.c_out, 3, 1, Norm::Zero)?,
            ]
        } else {
            vec![
                ConvLayer::new(pb, &path(0), s.c_in, s.width, 1, 1, Norm::One)?,
                ConvLayer::new(pb, &path(1), s.width, s.width, 3, s.stride, Norm::One)?,
                ConvLayer::new(pb, &path(2), s.width, s.c_out, 1, 1, Norm::Zero)?,
            ]
        };
        let attention = if attention {
            Some(SimpleSelfAttention::new(
                pb,
                &path(convpath.len()),
                s.c_out,
            )?)
        } else {
            None
        };
        let pool = s.stride != 1;
        let idconv = if s.c_in != s.c_out {
            // The pool, when there is one, is idpath.0 and the conv idpath.1.
            let index = usize::from(pool);
            Some(ConvLayer::new(
                pb,
                &format!("{name}.idpath.{index}"),
                s.c_in,
                s.c_out,
                1,
                1,
                Norm::One,
            )?)
        } else {
            None
        };
        Ok(ResBlock {
            convpath,
            attention,
            pool,
            idconv,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool, act: Activation) -> candle_core::Result<Tensor> {
        let (last, inner) = self
            .convpath
            .split_last()
            .expect("a block has convolutions");
        let mut out = x.clone();
        for layer in inner {
            out = layer.forward_t(&out, train, Some(act))?;
        }
        out = last.forward_t(&out, train, None)?;
        if let Some(sa) = &self.attention {
            out = sa.forward_t(&out, train)?;
        }
        let mut identity = x.clone();
        if self.pool {
            let window = PoolWindow {
                ceil_mode: true,
                ..PoolWindow::square(2, 2, 0)
            };
            identity = avg_pool2d_with(&identity, &window, true)?;
        }
        if let Some(conv) = &self.idconv {
            identity = conv.forward_t(&identity, train, None)?;
        }
        match act {
            Activation::Relu => add_relu(&out, &identity),
            Activation::Mish => mish(&(out + identity)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Classifier;
    use crate::models::tests::assert_same_names;
    use candle_core::DType;

    fn build(depth: XResNetDepth, options: XResNetOptions, classes: usize) -> (XResNet, VarMap) {
        let varmap = VarMap::new();
        let model =
            XResNet::new(depth, options, classes, &varmap, &Device::Cpu, Rng::new(7)).unwrap();
        (model, varmap)
    }

    fn count(model: &XResNet) -> usize {
        model.trainable().iter().map(|p| p.var.elem_count()).sum()
    }

    fn values(varmap: &VarMap, name: &str) -> Vec<f64> {
        varmap.data().lock().unwrap()[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn parameter_counts_match_fastai() {
        // fastai 2.8.12 xresnet18/34/50(n_out=4) (tests/reference/model_counts.py).
        let plain = XResNetOptions::default();
        for (depth, want) in [
            (XResNetDepth::X18, 11_197_796),
            (XResNetDepth::X34, 21_305_956),
            (XResNetDepth::X50, 23_535_460),
        ] {
            assert_eq!(count(&build(depth, plain, 4).0), want, "{depth:?}");
        }
        // n_out=1000: xresnet50 25,576,264.
        assert_eq!(count(&build(XResNetDepth::X50, plain, 1000).0), 25_576_264);
    }

    #[test]
    fn names_and_shapes_are_fastais() {
        let sa = XResNetOptions {
            self_attention: true,
            ..Default::default()
        };
        let (_, varmap) = build(XResNetDepth::X18, sa, 4);
        assert_same_names(&varmap, "xresnet18_sa_keys");
        let (_, varmap) = build(XResNetDepth::X50, sa, 4);
        assert_same_names(&varmap, "xresnet50_sa_keys");
    }

    #[test]
    fn init_follows_fastais_init_cnn() {
        let (model, varmap) = build(XResNetDepth::X18, XResNetOptions::default(), 4);
        let std = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        // kaiming_normal_ fan_in: std sqrt(2 / (c_in * k * k)).
        let w = values(&varmap, "5.1.convpath.0.0.weight");
        let want = (2.0 / (128.0 * 9.0f64)).sqrt();
        assert!((std(&w) / want - 1.0).abs() < 0.03, "{} vs {want}", std(&w));
        let fc = values(&varmap, "11.weight");
        assert!(
            fc.iter().any(|v| v.abs() > 1.0 / 512f64.sqrt()),
            "normal, not uniform"
        );
        assert!(values(&varmap, "11.bias").iter().all(|v| *v == 0.0));
        // BatchZero on each block's last BN, 1 elsewhere; every BN bias 0.
        assert!(
            values(&varmap, "4.0.convpath.1.1.weight")
                .iter()
                .all(|v| *v == 0.0)
        );
        assert!(
            values(&varmap, "4.0.convpath.0.1.weight")
                .iter()
                .all(|v| *v == 1.0)
        );
        assert!(
            values(&varmap, "5.0.idpath.1.1.weight")
                .iter()
                .all(|v| *v == 1.0)
        );
        assert!(values(&varmap, "2.1.bias").iter().all(|v| *v == 0.0));
        // No decay on BN weights and biases (fastai's wd_bn_bias=False).
        let decayed: Vec<&str> = model
            .trainable()
            .iter()
            .filter(|p| p.weight_decay)
            .map(|p| p.name.as_str())
            .collect();
        assert!(decayed.contains(&"0.0.weight") && decayed.contains(&"11.weight"));
        assert!(!decayed.contains(&"0.1.weight") && !decayed.contains(&"11.bias"));
    }

    #[test]
    fn zero_initialised_blocks_start_as_their_identity_path() {
        // With every block's last BN weight and bias at 0, a block outputs
        // act(idpath(x)): for stride-1 blocks without an id conv, act(x).
        // Checked on the first block of xresnet18 against the formula.
        let (model, _) = build(XResNetDepth::X18, XResNetOptions::default(), 3);
        let x = crate::kernels::testing::random_tensor((2, 64, 8, 8), DType::F32, 3);
        let y = model.blocks[0]
            .forward_t(&x, true, Activation::Relu)
            .unwrap();
        let want = x.relu().unwrap();
        assert!(crate::kernels::testing::max_abs_diff(&y, &want) < 1e-6);
        let y = model.blocks[0]
            .forward_t(&x, true, Activation::Mish)
            .unwrap();
        assert!(crate::kernels::testing::max_abs_diff(&y, &mish(&x).unwrap()) < 1e-6);
    }

    #[test]
    fn every_option_trains_forward_and_backward() {
        let options = XResNetOptions {
            activation: Activation::Mish,
            self_attention: true,
            max_blur_pool: true,
        };
        for depth in [XResNetDepth::X18, XResNetDepth::X50] {
            let (model, _) = build(depth, options, 5);
            let x = crate::kernels::testing::random_tensor((2, 3, 32, 32), DType::F32, 4);
            let y = model.forward_t(&x, true).unwrap();
            assert_eq!(y.dims(), [2, 5]);
            let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            for p in model.trainable() {
                let g = grads
                    .get(&p.var)
                    .unwrap_or_else(|| panic!("no gradient for {}", p.name));
                let finite: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(finite.is_finite(), "{}", p.name);
            }
            let y = model.forward_t(&x, false).unwrap();
            assert_eq!(y.dims(), [2, 5]);
        }
    }
}
