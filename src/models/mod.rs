//! The architectures orchard trains, behind one interface.
//!
//! Every model is built by `build(model_config, ...)` from the name users give
//! with `--arch` / `model.arch`, keeps its variables in a `VarMap` under the
//! names of the library its weights come from (torchvision, fastai, timm), and
//! exposes the trainable ones for the optimiser. `ARCHS` lists what exists, for
//! `orchard models` and for the config's validation.

pub mod dropout;
pub mod efficientnet;
pub mod head;
pub mod layers;
pub mod resnet;
pub mod transfer;
pub mod vit;
pub mod weights;
pub mod xresnet;

pub use transfer::{HeadKind, TransferGroups, build_configured};

use crate::config::{Activation, ModelConfig};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::train::params::TrainParam;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use resnet::{ResNet, ResNetDepth};
use xresnet::{XResNet, XResNetDepth, XResNetOptions};

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
    /// Which weights it accepts (names it can map one to one).
    pub weights: &'static str,
}

/// Every architecture, in the order `orchard models` lists them.
pub const ARCHS: &[ArchInfo] = &[
    ArchInfo {
        name: "resnet18",
        about: "torchvision ResNet-18",
        weights: "--pretrained: torchvision resnet18 .pth / .safetensors",
    },
    ArchInfo {
        name: "resnet34",
        about: "torchvision ResNet-34",
        weights: "--pretrained: torchvision resnet34 .pth / .safetensors",
    },
    ArchInfo {
        name: "resnet50",
        about: "torchvision ResNet-50 (v1.5 bottlenecks)",
        weights: "--pretrained: torchvision resnet50 .pth / .safetensors",
    },
    ArchInfo {
        name: "xresnet18",
        about: "fastai xresnet18 (Bag of Tricks); mish, self_attention, maxblurpool",
        weights: "--pretrained: fastai xresnet18 state_dict .pth / .safetensors",
    },
    ArchInfo {
        name: "xresnet34",
        about: "fastai xresnet34 (Bag of Tricks); mish, self_attention, maxblurpool",
        weights: "--pretrained: fastai xresnet34 state_dict .pth / .safetensors",
    },
    ArchInfo {
        name: "xresnet50",
        about: "fastai xresnet50 (Bag of Tricks); mish, self_attention, maxblurpool",
        weights: "--pretrained: fastai xresnet50 state_dict .pth / .safetensors",
    },
    ArchInfo {
        name: "efficientnet_lite0",
        about: "EfficientNet-Lite0 (TF Lite: ReLU6, no SE)",
        weights: "--pretrained: efficientnet_lite0 .safetensors / .pth (lukemelas' names)",
    },
    ArchInfo {
        name: "vit_tiny",
        about: "timm vit_tiny_patch16_224 (any size: pos-emb resampled)",
        weights: "--pretrained: timm vit_tiny_patch16_* .safetensors / .pth",
    },
    ArchInfo {
        name: "vit_small",
        about: "timm vit_small_patch16_224 (any size: pos-emb resampled)",
        weights: "--pretrained: timm vit_small_patch16_* .safetensors / .pth",
    },
];

/// The ViT behind an arch name, if it is one.
pub(crate) fn vit_size(arch: &str) -> Option<vit::VitSize> {
    match arch {
        "vit_tiny" => Some(vit::VitSize::Tiny),
        "vit_small" => Some(vit::VitSize::Small),
        _ => None,
    }
}

/// Whether `arch` names an architecture `build` knows.
pub fn is_known(arch: &str) -> bool {
    ARCHS.iter().any(|a| a.name == arch)
}

/// The xresnet behind an arch name, if it is one (the archs that take the
/// imagewoof toolbox's options).
pub(crate) fn xresnet_depth(arch: &str) -> Option<XResNetDepth> {
    match arch {
        "xresnet18" => Some(XResNetDepth::X18),
        "xresnet34" => Some(XResNetDepth::X34),
        "xresnet50" => Some(XResNetDepth::X50),
        _ => None,
    }
}

/// The torchvision ResNet behind an arch name, if it is one.
pub(crate) fn resnet_depth(arch: &str) -> Option<ResNetDepth> {
    match arch {
        "resnet18" => Some(ResNetDepth::R18),
        "resnet34" => Some(ResNetDepth::R34),
        "resnet50" => Some(ResNetDepth::R50),
        _ => None,
    }
}

/// The imagewoof toolbox's options of `model` (for an xresnet).
pub(crate) fn xresnet_options(model: &ModelConfig) -> XResNetOptions {
    XResNetOptions {
        activation: model.activation,
        self_attention: model.self_attention,
        max_blur_pool: model.maxblurpool,
    }
}

/// Refuse toolbox options (`model.activation`, `model.self_attention`,
/// `model.maxblurpool`) on an arch that has no place for them, rather than
/// silently training without them.
pub fn check_options(model: &ModelConfig) -> Result<()> {
    if xresnet_depth(&model.arch).is_some() {
        return Ok(());
    }
    let set: Vec<&str> = [
        (
            "activation = \"mish\"",
            model.activation != Activation::Relu,
        ),
        ("self_attention = true", model.self_attention),
        ("maxblurpool = true", model.maxblurpool),
    ]
    .into_iter()
    .filter_map(|(key, on)| on.then_some(key))
    .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "config key model.{} (or its command-line flag): only the xresnet archs have it, but model.arch is {:?}\nfix: use --arch xresnet18 (or xresnet34, xresnet50), or drop the option",
        set.join(", model."),
        model.arch
    )))
}

/// A freshly initialised `model.arch` (with `model`'s options) with
/// `num_classes` outputs, its variables in `varmap` (which should be empty).
/// Initial weights are a function of `rng` alone.
pub fn build(
    model: &ModelConfig,
    num_classes: usize,
    varmap: &VarMap,
    device: &Device,
    rng: Rng,
) -> Result<Box<dyn Classifier>> {
    check_options(model)?;
    let resnet = |depth| -> Result<Box<dyn Classifier>> {
        Ok(Box::new(ResNet::new(
            depth,
            num_classes,
            varmap,
            device,
            rng.clone(),
        )?))
    };
    match model.arch.as_str() {
        arch if resnet_depth(arch).is_some() => {
            resnet(resnet_depth(arch).expect("checked by the guard"))
        }
        arch if xresnet_depth(arch).is_some() => {
            let options = xresnet_options(model);
            let depth = xresnet_depth(arch).expect("checked by the guard");
            Ok(Box::new(XResNet::new(
                depth,
                options,
                num_classes,
                varmap,
                device,
                rng,
            )?))
        }
        "efficientnet_lite0" => Ok(Box::new(efficientnet::EfficientNetLite0::new(
            num_classes,
            HeadKind::Own,
            varmap,
            device,
            rng,
        )?)),
        arch if vit_size(arch).is_some() => Ok(Box::new(vit::VisionTransformer::new(
            vit_size(arch).expect("checked by the guard"),
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

/// The number of trainable parameters of `model` with `num_classes` outputs,
/// counted on a freshly built model (as PyTorch's `sum(p.numel() for p in
/// m.parameters())`: running statistics and other buffers excluded).
pub fn parameter_count(model: &ModelConfig, num_classes: usize) -> Result<usize> {
    let varmap = VarMap::new();
    let built = build(model, num_classes, &varmap, &Device::Cpu, Rng::new(0))?;
    Ok(built.trainable().iter().map(|p| p.var.elem_count()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference names and shapes from PyTorch (tests/reference/model_counts.py).
    pub(crate) fn reference_keys(key: &str) -> Vec<(String, Vec<usize>)> {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/reference/model_counts.json")).unwrap();
        serde_json::from_value(json[key].clone()).unwrap()
    }

    /// Our variables' names and shapes, next to the reference state_dict's
    /// (which also lists `num_batches_tracked`, a counter orchard does not keep).
    pub(crate) fn assert_same_names(varmap: &VarMap, reference: &str) {
        let mut want: Vec<(String, Vec<usize>)> = reference_keys(reference)
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        let data = varmap.data().lock().unwrap();
        let mut got: Vec<(String, Vec<usize>)> = data
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    fn config(arch: &str) -> ModelConfig {
        ModelConfig {
            arch: arch.into(),
            ..ModelConfig::default()
        }
    }

    #[test]
    fn toolbox_options_change_counts_as_in_fastai() {
        // fastai 2.8.12, n_out=4 (tests/reference/model_counts.py):
        // xresnet18 11,197,796; sa=True 11,201,893 (+ a 64x64 conv and gamma);
        // act_cls=Mish unchanged. MaxBlurPool has no parameters.
        let mut c = config("xresnet18");
        assert_eq!(parameter_count(&c, 4).unwrap(), 11_197_796);
        c.self_attention = true;
        assert_eq!(parameter_count(&c, 4).unwrap(), 11_201_893);
        c.activation = Activation::Mish;
        c.maxblurpool = true;
        assert_eq!(parameter_count(&c, 4).unwrap(), 11_201_893);
        // xresnet50 with sa: the attention sits on 256 channels.
        let mut c = config("xresnet50");
        c.self_attention = true;
        assert_eq!(parameter_count(&c, 4).unwrap(), 23_600_997);
    }

    #[test]
    fn vit_counts_equal_timms() {
        // timm 1.0.31: sum(p.numel() for p in create_model(name, num_classes=k).parameters()).
        for (arch, k, want) in [
            ("vit_tiny", 1000, 5_717_416),
            ("vit_tiny", 4, 5_525_188),
            ("vit_small", 1000, 22_050_664),
            ("vit_small", 4, 21_667_204),
        ] {
            assert_eq!(
                parameter_count(&config(arch), k).unwrap(),
                want,
                "{arch} {k}"
            );
        }
    }

    #[test]
    fn options_on_other_archs_are_refused_with_the_key() {
        let mut c = config("resnet18");
        c.activation = Activation::Mish;
        let err = check_options(&c).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("model.activation"), "{err}");
        let mut c = config("resnet34");
        c.maxblurpool = true;
        let err = build(&c, 4, &VarMap::new(), &Device::Cpu, Rng::new(0))
            .err()
            .unwrap();
        assert!(err.to_string().contains("model.maxblurpool"), "{err}");
        let err = build(
            &config("resnet99"),
            4,
            &VarMap::new(),
            &Device::Cpu,
            Rng::new(0),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("xresnet50"), "{err}");
    }

    #[test]
    fn every_listed_arch_builds() {
        for arch in ARCHS {
            assert!(is_known(arch.name));
            let model = build(
                &config(arch.name),
                2,
                &VarMap::new(),
                &Device::Cpu,
                Rng::new(1),
            )
            .unwrap();
            let x = Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
            assert_eq!(
                model.forward_t(&x, false).unwrap().dims(),
                [2, 2],
                "{}",
                arch.name
            );
        }
    }
}
