//! `--pretrained` for every architecture: a checkpoint in the source
//! library's names (torchvision resnet, fastai xresnet, timm ViT), written
//! here by orchard itself, loads as the body under fastai's head, its own
//! classifier skipped; the frozen phase of fine-tune then trains only the
//! head and the body's norm layers.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use orchard::config::{ModelConfig, Recipe, RunConfig};
use orchard::models::{self, build_configured};
use orchard::rng::Rng;
use orchard::train::checkpoint;
use orchard::train::{FitHooks, Flow, FoldData, Sample, fit_fold};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn config(arch: &str, pretrained: Option<PathBuf>) -> ModelConfig {
    ModelConfig {
        arch: arch.into(),
        pretrained,
        ..ModelConfig::default()
    }
}

/// A 1000-class model of `arch` as its library would save it.
fn checkpoint(dir: &Path, arch: &str) -> PathBuf {
    let vm = VarMap::new();
    models::build(&config(arch, None), 1000, &vm, &Device::Cpu, Rng::new(11)).unwrap();
    let path = dir.join(format!("{arch}.safetensors"));
    vm.save(&path).unwrap();
    path
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn snapshot(vm: &VarMap) -> HashMap<String, Vec<f32>> {
    vm.data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), values(v.as_tensor())))
        .collect()
}

#[test]
fn every_body_loads_under_fastais_head() {
    let dir = tempfile::tempdir().unwrap();
    // (arch, its own classifier's weight, head input width: 2*nf with the concat pool, nf without)
    for (arch, own, head_in) in [
        ("resnet18", "fc.weight", 1024),
        ("resnet50", "fc.weight", 4096),
        ("xresnet18", "11.weight", 1024),
        ("xresnet50", "11.weight", 4096),
        ("vit_tiny", "head.weight", 192),
    ] {
        let file = checkpoint(dir.path(), arch);
        let saved = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
        let vm = VarMap::new();
        let model = build_configured(
            &config(arch, Some(file.clone())),
            3,
            &vm,
            &Device::Cpu,
            Rng::new(5),
            true,
        )
        .unwrap();
        let loaded = snapshot(&vm);
        assert!(!loaded.contains_key(own), "{arch}: own classifier cut");
        let mut body = 0;
        for (name, v) in &loaded {
            if name.starts_with("head.") {
                continue;
            }
            assert_eq!(v, &values(&saved[name]), "{arch}: {name}");
            body += 1;
        }
        // Every tensor of the file but the classifier's weight and bias.
        assert_eq!(body, saved.len() - 2, "{arch}");
        let first_bn = if arch.starts_with("vit") {
            "head.0.weight"
        } else {
            "head.2.weight"
        };
        assert_eq!(loaded[first_bn].len(), head_in, "{arch}");
        let last = if arch.starts_with("vit") {
            "head.6.weight"
        } else {
            "head.8.weight"
        };
        assert_eq!(vm.data().lock().unwrap()[last].dims(), [3, 512], "{arch}");
        let groups = model.transfer_groups().expect("fastai's groups");
        assert_eq!(groups.head.len(), 6, "{arch}");
        assert!(!groups.body_norms.is_empty(), "{arch}");
        let x = Tensor::zeros((2, 3, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.forward_t(&x, true).unwrap().dims(), [2, 3], "{arch}");
    }
}

#[test]
fn a_checkpoint_of_another_vit_size_has_its_position_embeddings_resampled() {
    let dir = tempfile::tempdir().unwrap();
    let file = checkpoint(dir.path(), "vit_tiny");
    // As a vit_tiny_patch16_112 file: a 7x7 grid.
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let pos = Tensor::arange(0f32, (50 * 192) as f32, &Device::Cpu)
        .unwrap()
        .affine(1e-4, 0.0)
        .unwrap()
        .reshape((1, 50, 192))
        .unwrap();
    tensors.insert("pos_embed".into(), pos.clone());
    let small = dir.path().join("vit_112.safetensors");
    candle_core::safetensors::save(&tensors, &small).unwrap();
    let vm = VarMap::new();
    build_configured(
        &config("vit_tiny", Some(small)),
        3,
        &vm,
        &Device::Cpu,
        Rng::new(5),
        true,
    )
    .unwrap();
    let got = vm.data().lock().unwrap()["pos_embed"].as_tensor().clone();
    assert_eq!(got.dims(), [1, 197, 192]);
    let want = models::layers::resample::resample_pos_embed(&pos, (7, 7), (14, 14), true).unwrap();
    assert_eq!(values(&got), values(&want));
    // The class token's row is kept as it is.
    assert_eq!(
        values(&got.narrow(1, 0, 1).unwrap()),
        values(&pos.narrow(1, 0, 1).unwrap())
    );
}

/// Stops the fold after its first (frozen) epoch.
struct StopAt(usize);
impl FitHooks for StopAt {
    fn event(&mut self, _event: orchard::run::Event) {}
    fn between_batches(&mut self, step: usize) -> Flow {
        if step == self.0 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// `n` noisy red and `n` noisy blue 40x40 PNGs.
fn two_colours(dir: &Path, prefix: &str, n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    (0..2 * n)
        .map(|i| {
            let class = i % 2;
            let img = image::RgbImage::from_fn(40, 40, |_, _| {
                let noise = rng.below(60) as u8;
                if class == 0 {
                    image::Rgb([195 + noise, noise, noise])
                } else {
                    image::Rgb([noise, noise, 195 + noise])
                }
            });
            let path = dir.join(format!("{prefix}{i}.png"));
            img.save(&path).unwrap();
            Sample { path, class }
        })
        .collect()
}

#[test]
fn fine_tune_of_a_pretrained_resnet_and_vit_freezes_the_body_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = FoldData {
        train: two_colours(dir.path(), "t", 4, 1),
        valid: two_colours(dir.path(), "v", 1, 2),
        num_classes: 2,
        dense_targets: None,
    };
    for (arch, frozen, norm) in [
        ("resnet18", "layer3.0.conv1.weight", "layer3.0.bn1.weight"),
        (
            "xresnet18",
            "5.0.convpath.0.0.weight",
            "5.0.convpath.0.1.weight",
        ),
        (
            "vit_tiny",
            "blocks.4.attn.qkv.weight",
            "blocks.4.norm1.weight",
        ),
    ] {
        let file = checkpoint(dir.path(), arch);
        let mut cfg = RunConfig {
            model: config(arch, Some(file.clone())),
            ..RunConfig::default()
        };
        let t = &mut cfg.training;
        t.recipe = Recipe::FineTune;
        t.epochs = 2;
        t.freeze_epochs = 1;
        t.size = 32;
        t.batch_size = 4;
        t.lr = 2e-3;
        cfg.validate().unwrap();
        // Stopped at the unfreeze (8 images / bs 4 = 2 steps an epoch): the
        // checkpoint holds the frozen epoch's weights.
        let ckpt = dir.path().join(format!("{arch}/fold0.safetensors"));
        fit_fold(&cfg, 0, &data, &mut StopAt(2), Some(&ckpt)).unwrap();
        let before = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
        let after = checkpoint::load(&ckpt, &Device::Cpu)
            .unwrap()
            .unwrap()
            .model;
        let get = |m: &HashMap<String, Tensor>, n: &str| {
            values(m.get(n).unwrap_or_else(|| panic!("{arch}: no {n}")))
        };
        assert_eq!(
            get(&before, frozen),
            get(&after, frozen),
            "{arch}: {frozen} frozen"
        );
        assert_ne!(
            get(&before, norm),
            get(&after, norm),
            "{arch}: {norm} trains (train_bn)"
        );
    }
}
