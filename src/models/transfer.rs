//! Transfer learning as fastai's `vision_learner`: a pretrained body (its own
//! classifier cut off), fastai's head on top, and the parameters split into a
//! body group and a head group (fastai's default splitter for a model without
//! its own metadata), with the body's norm parameters listed apart because they
//! keep training while the body is frozen (`train_bn=True`).

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::models::efficientnet::{self, EfficientNetLite0};
use crate::models::head::HEAD_PREFIX;
use crate::models::weights::{self, LoadMode};
use crate::models::{Classifier, build};
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
            body,
            head,
            body_norms,
        }
    }
}

/// Architectures that can start from pretrained weights.
pub const PRETRAINED_ARCHS: &[&str] = &["efficientnet_lite0"];

/// The model a run's `[model]` section describes: `build(arch)` from scratch,
/// or with `pretrained` a body loaded from that file (its classifier skipped)
/// under fastai's head. `load_weights = false` builds the same structure
/// without reading the file (a checkpoint will overwrite every variable).
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
    let net = match model.arch.as_str() {
        "efficientnet_lite0" => {
            EfficientNetLite0::new(num_classes, HeadKind::Fastai, varmap, device, rng)?
        }
        other => {
            return Err(Error::input(format!(
                "model.pretrained is set but model.arch = {other:?} has no pretrained loading yet\nfix: use model.arch = one of {}, or remove model.pretrained",
                PRETRAINED_ARCHS.join(", ")
            )));
        }
    };
    if load_weights {
        let skip = [HEAD_PREFIX, efficientnet::OWN_HEAD_PREFIX];
        weights::load_file(varmap, path, LoadMode::SkipHead(&skip))?;
    }
    Ok(Box::new(net))
}
