//! Vision Transformers with patch 16 as timm builds `vit_tiny_patch16_224`
//! (embed 192, 3 heads) and `vit_small_patch16_224` (384, 6 heads): 12
//! pre-norm blocks, MLP ratio 4, qkv bias, a class token, LayerNorm eps 1e-6,
//! exact (erf) GELU, no dropout. Parameter names are timm's (`cls_token`,
//! `pos_embed`, `patch_embed.proj.*`, `blocks.N.attn.qkv.*`, `norm.*`,
//! `head.*`), so timm checkpoints load one to one.
//!
//! The position embeddings are kept for timm's 224 px (a 14 x 14 grid), the
//! size the checkpoints have. Any other image size is served as timm's
//! `dynamic_img_size=True` does: every forward resamples the embeddings to the
//! image's patch grid with `resample_abs_pos_embed` (bicubic, antialiased, the
//! class token's row aside), a linear map, so gradients flow back to the
//! 14 x 14 parameters and progressive resizing needs nothing special.
//!
//! Initialisation is timm's (`init_weights_vit_timm`) where training from
//! scratch depends on it: `pos_embed` and every Linear `trunc_normal_(std=.02)`
//! with zero biases, `cls_token` normal with std 1e-6, LayerNorms 1 / 0, the
//! patch convolution PyTorch's default.

use crate::error::Result;
use crate::kernels::Conv2d;
use crate::models::head::{FastaiHead, HEAD_PREFIX};
use crate::models::layers::resample::resample_pos_embed;
use crate::models::{HeadKind, TransferGroups};
use crate::rng::Rng;
use crate::train::params::{ParamBuilder, TrainParam};
use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Linear, VarMap};
use std::collections::HashMap;

/// Pixels per patch side.
pub const PATCH: usize = 16;
/// Transformer blocks.
const DEPTH: usize = 12;
/// Hidden width of the MLP, in multiples of the embedding width.
const MLP_RATIO: usize = 4;
/// timm's ViT LayerNorm epsilon.
const LN_EPS: f64 = 1e-6;
/// The patch grid the position embeddings are stored for (timm's img_size 224).
pub const GRID: usize = 224 / PATCH;
/// timm resamples position embeddings with antialiasing on (its
/// `resample_abs_pos_embed` default since timm 0.9, used by
/// `dynamic_img_size` and by `checkpoint_filter_fn`).
pub const POS_ANTIALIAS: bool = true;

/// The names of timm's classifier (`head.weight`, `head.bias`), cut for
/// transfer learning (fastai's head lives under `head.0.` ... `head.6.`).
pub const OWN_HEAD_PREFIX: &str = "head.";

/// Fits a checkpoint's `pos_embed` to the 14 x 14 grid orchard keeps, as
/// timm's `checkpoint_filter_fn` does for a model of another size (e.g. a
/// `vit_tiny_patch16_384` file has a 24 x 24 grid): square grids assumed, the
/// class token's row kept. Other shapes are left for the loader to report.
pub fn fit_pos_embed(tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let Some(pos) = tensors.get("pos_embed") else {
        return Ok(());
    };
    let Ok((1, tokens, _)) = pos.dims3() else {
        return Ok(());
    };
    let side = ((tokens - 1) as f64).sqrt().round() as usize;
    if tokens < 2 || side * side + 1 != tokens || side == GRID {
        return Ok(());
    }
    let fitted = resample_pos_embed(
        &pos.to_dtype(DType::F32)?,
        (side, side),
        (GRID, GRID),
        POS_ANTIALIAS,
    )?;
    tensors.insert("pos_embed".into(), fitted);
    Ok(())
}

/// The two sizes orchard builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VitSize {
    Tiny,
    Small,
}

impl VitSize {
    /// (embedding width, attention heads).
    pub fn dims(self) -> (usize, usize) {
        match self {
            VitSize::Tiny => (192, 3),
            VitSize::Small => (384, 6),
        }
    }
}

/// PyTorch's LayerNorm over the last axis, from differentiable ops (candle's
/// fused layer_norm has no backward pass).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(pb: &mut ParamBuilder, name: &str, dim: usize) -> Result<Self> {
        let (weight, bias) = pb.layer_norm(name, dim)?;
        Ok(LayerNorm { weight, bias })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + LN_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// timm's `Block`: x + attn(norm1(x)), then x + mlp(norm2(x)).
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Block {
    fn new(pb: &mut ParamBuilder, name: &str, dim: usize, heads: usize) -> Result<Self> {
        let hidden = dim * MLP_RATIO;
        Ok(Block {
            norm1: LayerNorm::new(pb, &format!("{name}.norm1"), dim)?,
            qkv: pb.linear_trunc_normal(&format!("{name}.attn.qkv"), dim, 3 * dim)?,
            proj: pb.linear_trunc_normal(&format!("{name}.attn.proj"), dim, dim)?,
            norm2: LayerNorm::new(pb, &format!("{name}.norm2"), dim)?,
            fc1: pb.linear_trunc_normal(&format!("{name}.mlp.fc1"), dim, hidden)?,
            fc2: pb.linear_trunc_normal(&format!("{name}.mlp.fc2"), hidden, dim)?,
            heads,
        })
    }

    /// Multi-head self-attention on (B, N, C): softmax(q k^T / sqrt(d)) v per head.
    fn attention(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let d = c / self.heads;
        // (B, N, 3, H, d) -> (3, B, H, N, d), as timm's reshape + permute.
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, n, 3, self.heads, d))?
            .permute((2, 0, 3, 1, 4))?;
        let part = |i: usize| qkv.get(i)?.contiguous();
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = (q * (d as f64).powf(-0.5))?.matmul(&k.t()?.contiguous()?)?;
        // candle_nn's softmax_last_dim has no backward pass; this one is composed.
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        self.proj.forward(&out)
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = (x + self.attention(&self.norm1.forward(x)?)?)?;
        let h = self.fc1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?;
        x + self.fc2.forward(&h)?
    }
}

enum Head {
    /// timm's `head` Linear on the class token.
    Own(Linear),
    /// fastai's head without pooling (`create_timm_model`).
    Fastai(FastaiHead),
}

pub struct VisionTransformer {
    patch_embed: Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Head,
    trainable: Vec<TrainParam>,
    groups: Option<TransferGroups>,
}

impl VisionTransformer {
    /// A freshly initialised ViT of `size` with `num_classes` outputs whose
    /// variables live in `varmap`. With `HeadKind::Fastai` the classifier is
    /// fastai's head (on timm's `num_classes=0` body: the normed class token).
    pub fn new(
        size: VitSize,
        num_classes: usize,
        head: HeadKind,
        varmap: &VarMap,
        device: &Device,
        rng: Rng,
    ) -> Result<Self> {
        let (dim, heads) = size.dims();
        let mut rng = rng;
        let dropout_seed = rng.next_u64();
        let mut pb = ParamBuilder::new(varmap, device, rng);
        let cls_values: Vec<f32> = pb.normals(dim).iter().map(|v| v * 1e-6).collect();
        // fastai decays every parameter but norms and biases (it does not read
        // timm's `no_weight_decay`), so the token and embeddings are decayed.
        let cls_token = pb.decayed("cls_token", cls_values, &[1, 1, dim])?;
        let pos_embed = pb.trunc_normal("pos_embed", &[1, 1 + GRID * GRID, dim], 0.02, true)?;
        let patch_embed = pb.conv2d_default_with_bias("patch_embed.proj", 3, dim, PATCH, PATCH)?;
        let blocks = (0..DEPTH)
            .map(|i| Block::new(&mut pb, &format!("blocks.{i}"), dim, heads))
            .collect::<Result<Vec<_>>>()?;
        let norm = LayerNorm::new(&mut pb, "norm", dim)?;
        let head = match head {
            HeadKind::Own => Head::Own(pb.linear_trunc_normal("head", dim, num_classes)?),
            HeadKind::Fastai => Head::Fastai(FastaiHead::without_pool(
                &mut pb,
                dim,
                num_classes,
                dropout_seed,
            )?),
        };
        let norms = pb.norm_names().to_vec();
        let trainable = pb.into_trainable();
        let groups = matches!(head, Head::Fastai(_))
            .then(|| TransferGroups::split(&trainable, &norms, HEAD_PREFIX));
        Ok(VisionTransformer {
            patch_embed,
            cls_token,
            pos_embed,
            blocks,
            norm,
            head,
            trainable,
            groups,
        })
    }

    /// timm's `forward_features` + the class-token pooling: images -> (N, dim).
    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let patches = self.patch_embed.forward(x)?;
        let (b, c, gh, gw) = patches.dims4()?;
        let tokens = patches.flatten_from(2)?.transpose(1, 2)?;
        let cls = self.cls_token.broadcast_as((b, 1, c))?;
        let pos = resample_pos_embed(&self.pos_embed, (GRID, GRID), (gh, gw), POS_ANTIALIAS)?;
        let mut x = Tensor::cat(&[cls, tokens], 1)?.broadcast_add(&pos)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        self.norm.forward(&x)?.narrow(1, 0, 1)?.squeeze(1)
    }
}

impl crate::models::Classifier for VisionTransformer {
    fn trainable(&self) -> &[TrainParam] {
        &self.trainable
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let f = self.features(x)?;
        match &self.head {
            Head::Own(linear) => linear.forward(&f),
            Head::Fastai(head) => head.forward_t(&f, train),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Classifier;

    fn stats(vm: &VarMap, name: &str) -> (f64, f64, usize) {
        let v: Vec<f32> = vm.data().lock().unwrap()[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt(), v.len())
    }

    #[test]
    fn timm_init_where_it_matters() {
        let vm = VarMap::new();
        VisionTransformer::new(
            VitSize::Tiny,
            10,
            HeadKind::Own,
            &vm,
            &Device::Cpu,
            Rng::new(3),
        )
        .unwrap();
        for name in [
            "pos_embed",
            "blocks.0.attn.qkv.weight",
            "blocks.11.mlp.fc2.weight",
        ] {
            let (mean, std, _) = stats(&vm, name);
            assert!(
                mean.abs() < 1e-3 && (std / 0.02 - 1.0).abs() < 0.02,
                "{name}: {mean} {std}"
            );
        }
        let (_, std, n) = stats(&vm, "cls_token");
        assert_eq!(n, 192);
        assert!((std / 1e-6 - 1.0).abs() < 0.2, "{std}");
        assert_eq!(stats(&vm, "blocks.3.attn.proj.bias"), (0.0, 0.0, 192));
        assert_eq!(stats(&vm, "norm.weight"), (1.0, 0.0, 192));
        // PyTorch's Conv2d default: uniform ±1/sqrt(768), std bound/sqrt(3).
        let (_, std, _) = stats(&vm, "patch_embed.proj.weight");
        let want = 1.0 / (768f64).sqrt() / 3f64.sqrt();
        assert!((std / want - 1.0).abs() < 0.02, "{std} {want}");
    }

    #[test]
    fn fastai_head_has_no_pool_and_splits_body_and_head() {
        let vm = VarMap::new();
        let m = VisionTransformer::new(
            VitSize::Tiny,
            3,
            HeadKind::Fastai,
            &vm,
            &Device::Cpu,
            Rng::new(1),
        )
        .unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(data["head.0.running_var"].dims(), [192]);
        assert_eq!(data["head.2.weight"].dims(), [512, 192]);
        assert_eq!(data["head.6.weight"].dims(), [3, 512]);
        assert!(!data.contains_key("head.weight"));
        drop(data);
        let g = m.transfer_groups().unwrap();
        assert_eq!(g.head.len(), 6);
        assert_eq!(g.body.len() + g.head.len(), m.trainable().len());
        // LayerNorms keep training in a frozen body (fastai's norm_types).
        assert_eq!(g.body_norms.len(), 2 * (2 * DEPTH + 1));
        assert!(g.body_norms.iter().any(|p| p.name == "blocks.5.norm2.bias"));
        // Any image size: 48 px is a 3 x 3 grid.
        let x = Tensor::zeros((2, 3, 48, 48), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(m.forward_t(&x, true).unwrap().dims(), [2, 3]);
    }

    #[test]
    fn gradients_reach_the_position_embeddings_through_the_resampling() {
        let vm = VarMap::new();
        let m = VisionTransformer::new(
            VitSize::Tiny,
            2,
            HeadKind::Own,
            &vm,
            &Device::Cpu,
            Rng::new(2),
        )
        .unwrap();
        let x = crate::kernels::testing::random_tensor((1, 3, 32, 32), candle_core::DType::F32, 4);
        let loss = m
            .forward_t(&x, true)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for p in m.trainable() {
            let g = grads
                .get(&p.var)
                .unwrap_or_else(|| panic!("no gradient for {}", p.name));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm.is_finite(), "{}", p.name);
        }
        let pos = vm.data().lock().unwrap()["pos_embed"].clone();
        let g = grads.get(&pos).unwrap().abs().unwrap();
        let g: f32 = g.sum_all().unwrap().to_scalar().unwrap();
        assert!(g > 0.0);
    }
}
