//! fastai's fine_tune on a pretrained EfficientNet-Lite0 body, through the
//! fold loop: the frozen epoch changes only the head and the body's
//! BatchNorm parameters, and a fold stopped at the unfreeze or inside the
//! unfrozen phase and resumed from its checkpoint ends exactly as an
//! uninterrupted one.
//!
//! The "pretrained" file is a freshly initialised EfficientNet-Lite0 with a
//! 1000-class `_fc`, saved as safetensors: what matters here is the plumbing.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use orchard::config::{Recipe, RunConfig};
use orchard::models::HeadKind;
use orchard::models::efficientnet::EfficientNetLite0;
use orchard::rng::Rng;
use orchard::run::Event;
use orchard::train::checkpoint;
use orchard::train::{FitHooks, Flow, FoldData, Sample, fit_fold};
use std::collections::HashMap;
use std::path::Path;

#[derive(Default)]
struct Recorder {
    losses: Vec<f64>,
    lrs: Vec<f64>,
    stop_at: Option<usize>,
}

impl FitHooks for Recorder {
    fn event(&mut self, event: Event) {
        if let Event::Batch { loss, lr, .. } = event {
            self.losses.push(loss);
            self.lrs.push(lr);
        }
    }
    fn between_batches(&mut self, step: usize) -> Flow {
        if Some(step) == self.stop_at {
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

fn pretrained_file(dir: &Path) -> std::path::PathBuf {
    let vm = VarMap::new();
    EfficientNetLite0::new(1000, HeadKind::Own, &vm, &Device::Cpu, Rng::new(77)).unwrap();
    let path = dir.join("imagenet.safetensors");
    vm.save(&path).unwrap();
    path
}

fn config(pretrained: &Path) -> RunConfig {
    let mut cfg = RunConfig::default();
    cfg.model.arch = "efficientnet_lite0".into();
    cfg.model.pretrained = Some(pretrained.to_path_buf());
    let t = &mut cfg.training;
    t.recipe = Recipe::FineTune;
    t.epochs = 3;
    t.freeze_epochs = 1;
    t.size = 32;
    t.batch_size = 4;
    t.lr = 2e-3;
    cfg.validate().unwrap();
    cfg
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v(a) == v(b)
}

#[test]
fn frozen_epoch_trains_head_and_norms_and_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = FoldData {
        train: two_colours(dir.path(), "t", 4, 1),
        valid: two_colours(dir.path(), "v", 1, 2),
        num_classes: 2,
        dense_targets: None,
    };
    let file = pretrained_file(dir.path());
    let cfg = config(&file);
    let whole = {
        let mut rec = Recorder::default();
        let r = fit_fold(&cfg, 0, &data, &mut rec, None).unwrap();
        assert_eq!(rec.losses.len(), 6, "3 epochs x 2 steps");
        // fastai's fine_tune: the frozen cycle peaks at lr, the unfrozen one at lr/2,
        // starting from lr/2/5 (div 5).
        assert!((rec.lrs[2] - 1e-3 / 5.0).abs() < 1e-12, "{:?}", rec.lrs);
        r
    };

    // Stop at the unfreeze (step 2): the checkpoint holds the frozen epoch.
    let ckpt = dir.path().join("ckpt/fold0.safetensors");
    let mut first = Recorder {
        stop_at: Some(2),
        ..Default::default()
    };
    fit_fold(&cfg, 0, &data, &mut first, Some(&ckpt)).unwrap();
    let saved = checkpoint::load(&ckpt, &Device::Cpu).unwrap().unwrap();
    assert_eq!(saved.progress.steps_done, 2);
    let before = tensors(&file);
    for (name, changed) in [
        ("_blocks.3._expand_conv.weight", false),
        ("_conv_head.weight", false),
        ("_conv_stem.weight", false),
        ("_blocks.3._bn1.weight", true),
        ("_bn1.bias", true),
    ] {
        assert_eq!(!same(&saved.model[name], &before[name]), changed, "{name}");
    }
    assert!(saved.model.contains_key("head.8.weight"));
    assert!(!saved.model.contains_key("_fc.weight"));

    // Resume at the unfreeze, stop inside the unfrozen phase, resume again.
    let mut second = Recorder {
        stop_at: Some(5),
        ..Default::default()
    };
    fit_fold(&cfg, 0, &data, &mut second, Some(&ckpt)).unwrap();
    assert_eq!(checkpoint::progress(&ckpt).unwrap().unwrap().steps_done, 4);
    let mut third = Recorder::default();
    let resumed = fit_fold(&cfg, 0, &data, &mut third, Some(&ckpt)).unwrap();
    assert_eq!(resumed.epochs_done, 3);
    assert_eq!(resumed.valid_loss.to_bits(), whole.valid_loss.to_bits());
    assert_eq!(resumed.valid_probs, whole.valid_probs);
    assert_eq!(resumed.train_loss.to_bits(), whole.train_loss.to_bits());
}
