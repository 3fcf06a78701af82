//! The architectures orchard trains, behind one interface.
//!
//! Every model is built by `build(arch, ...)` from the name users give with
//! `--arch` / `model.arch`, keeps its variables in a `VarMap` under the names of
//! the library its weights come from (torchvision, fastai, timm), and exposes the
//! trainable ones for the optimiser. `ARCHS` lists what exists, for
//! `orchard models` and for the config's validation.

pub mod dropout;
pub mod efficientnet;
pub mod head;
pub mod resnet;
pub mod transfer;
pub mod weights;

pub use transfer::{HeadKind, TransferGroups, build_configured};

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::train::params::TrainParam;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

/// An image classifier: NCHW images in, logits (N, classes) out.
pub trait Classifier: Send {
    /// `train` selects batch statistics (and dropout) over running ones.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// Every parameter the optimiser updates (running statistics excluded).
    fn trainable(&self) -> &[TrainParam];
    /// The training step the next `forward_t(x, true)` belongs to: random
    /// layers (dropout) draw from it, so a resumed run draws as an uninterrupted one.
    fn begin_step(&self, _step: usize) {}
    /// fastai's body / head parameter groups, for a pretrained body with a new
    /// head (freezing, discriminative learning rates); None otherwise.
    fn transfer_groups(&self) -> Option<&TransferGroups> {
        None
    }
}

/// One architecture `build` knows.
#[derive(Debug, Clone, Copy)]
pub struct ArchInfo {
    /// The name used by `--arch` and `model.arch`.
    pub name: &'static str,
    /// What it is, in a few words.
    pub about: &'static str,
}

/// Every architecture, in the order `orchard models` lists them.
pub const ARCHS: &[ArchInfo] = &[
    ArchInfo {
        name: "resnet18",
        about: "torchvision ResNet-18 (parameter names as torchvision)",
    },
    ArchInfo {
        name: "efficientnet_lite0",
        about: "EfficientNet-Lite0 (names as lukemelas' EfficientNet-PyTorch); --pretrained takes ImageNet weights",
    },
];

/// Whether `arch` names an architecture `build` knows.
pub fn is_known(arch: &str) -> bool {
    ARCHS.iter().any(|a| a.name == arch)
}

/// A freshly initialised `arch` with `num_classes` outputs, its variables in
/// `varmap` (which should be empty). Initial weights are a function of `rng` alone.
pub fn build(
    arch: &str,
    num_classes: usize,
    varmap: &VarMap,
    device: &Device,
    rng: Rng,
) -> Result<Box<dyn Classifier>> {
    match arch {
        "resnet18" => Ok(Box::new(resnet::ResNet18::new(
            num_classes,
            varmap,
            device,
            rng,
        )?)),
        "efficientnet_lite0" => Ok(Box::new(efficientnet::EfficientNetLite0::new(
            num_classes,
            HeadKind::Own,
            varmap,
            device,
            rng,
        )?)),
        other => Err(Error::input(format!(
            "unknown architecture {other:?}\nfix: use one of {}",
            ARCHS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}
