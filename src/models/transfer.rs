//! Transfer learning as fastai's `vision_learner`: a pretrained body (its own
//! classifier cut off), fastai's head on top, and the parameters split into a
//! body group and a head group (fastai's default splitter for a model without
//! its own metadata), with the body's norm parameters listed apart because they
//! keep training while the body is frozen (`train_bn=True`).

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::models::efficientnet::{self, EfficientNetLite0};
use crate::models::head::HEAD_PREFIX;
use crate::models::resnet::{self, ResNet};
use crate::models::vit::{self, VisionTransformer};
use crate::models::weights::{self, LoadMode};
use crate::models::xresnet::{self, XResNet};
use crate::models::{
    Classifier, build, check_options, resnet_depth, vit_size, xresnet_depth, xresnet_options,
};
use crate::rng::Rng;
use crate::train::params::TrainParam;
use candle_core::Device;
use candle_nn::VarMap;

/// Which classifier a model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// The architecture's own (e.g. EfficientNet's pool + `_fc`).
    Own,
    /// fastai's `create_head` (for a pretrained body).
    Fastai,
}

/// fastai's parameter groups of a transfer-learning model.
#[derive(Debug, Clone)]
pub struct TransferGroups {
    /// Group 0: every body parameter.
    pub body: Vec<TrainParam>,
    /// Group 1: the head.
    pub head: Vec<TrainParam>,
    /// The body's norm weights and biases: trained even while the body is frozen.
    pub body_norms: Vec<TrainParam>,
    /// The body's parameter groups once unfrozen: `[body]`, or two halves where
    /// fastai's metadata splits the body (`_resnet_split`, `_xresnet_split`).
    pub body_parts: Vec<Vec<TrainParam>>,
}

impl TransferGroups {
    /// Splits `params` on the head's name prefix; `norms` names the norm parameters.
    pub fn split(params: &[TrainParam], norms: &[String], head_prefix: &str) -> Self {
        let (head, body): (Vec<_>, Vec<_>) = params
            .iter()
            .cloned()
            .partition(|p| p.name.starts_with(head_prefix));
        let body_norms = body
            .iter()
            .filter(|p| norms.contains(&p.name))
            .cloned()
            .collect();
        TransferGroups {
            body_parts: vec![body.clone()],
            body,
            head,
            body_norms,
        }
    }

    /// Splits the body in two groups, the parameters `in_first` names first
    /// (fastai's resnet and xresnet splitters: `m[0][:6]`, `m[0][:3]`).
    pub fn with_body_split(mut self, in_first: impl Fn(&str) -> bool) -> Self {
        let (first, second): (Vec<_>, Vec<_>) =
            self.body.iter().cloned().partition(|p| in_first(&p.name));
        self.body_parts = vec![first, second];
        self
    }
}

/// Architectures that can start from pretrained weights.
pub const PRETRAINED_ARCHS: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "xresnet18",
    "xresnet34",
    "xresnet50",
    "efficientnet_lite0",
    "vit_tiny",
    "vit_small",
];

/// The model a run's `[model]` section describes: `build(arch)` from scratch,
/// or with `pretrained` a body loaded from that file (its classifier skipped)
/// under fastai's head. `load_weights = false` builds the same structure
/// without reading the file (a checkpoint will overwrite every variable).
///
/// The body is what fastai's `vision_learner` keeps: torchvision's resnets
/// cut before `avgpool` (`cut=-2`), fastai's xresnets before their pool
/// (`cut=-4`), EfficientNet before its pool and `_fc`, and a timm ViT with
/// `num_classes=0` (the normed class token; `create_timm_model` then adds the
/// head without a pool).
pub fn build_configured(
    model: &ModelConfig,
    num_classes: usize,
    varmap: &VarMap,
    device: &Device,
    rng: Rng,
    load_weights: bool,
) -> Result<Box<dyn Classifier>> {
    let Some(path) = &model.pretrained else {
        return build(model, num_classes, varmap, device, rng);
    };
    check_options(model)?;
    let head = HeadKind::Fastai;
    let arch = model.arch.as_str();
    let (net, own_head): (Box<dyn Classifier>, &str) = if let Some(depth) = resnet_depth(arch) {
        let net = ResNet::with_head(depth, num_classes, head, varmap, device, rng)?;
        (Box::new(net), resnet::OWN_HEAD_PREFIX)
    } else if let Some(depth) = xresnet_depth(arch) {
        let net = XResNet::with_head(
            depth,
            xresnet_options(model),
            num_classes,
            head,
            varmap,
            device,
            rng,
        )?;
        (Box::new(net), xresnet::OWN_HEAD_PREFIX)
    } else if let Some(size) = vit_size(arch) {
        let net = VisionTransformer::new(size, num_classes, head, varmap, device, rng)?;
        (Box::new(net), vit::OWN_HEAD_PREFIX)
    } else if arch == "efficientnet_lite0" {
        let net = EfficientNetLite0::new(num_classes, head, varmap, device, rng)?;
        (Box::new(net), efficientnet::OWN_HEAD_PREFIX)
    } else {
        return Err(Error::input(format!(
            "model.pretrained is set but model.arch = {arch:?} has no pretrained loading\nfix: use model.arch = one of {}, or remove model.pretrained",
            PRETRAINED_ARCHS.join(", ")
        )));
    };
    if load_weights {
        let mut tensors = weights::read_weights(path)?;
        if vit_size(arch).is_some() {
            vit::fit_pos_embed(&mut tensors)?;
        }
        let skip = [HEAD_PREFIX, own_head];
        weights::load_into(varmap, &tensors, path, LoadMode::SkipHead(&skip))?;
    }
    Ok(net)
}
