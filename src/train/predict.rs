//! Predicting new images with a finished run: the k fold models as an
//! ensemble (the mean of their softmax probabilities), as fastai users do for
//! a Kaggle submission.

use crate::augment::{Pipeline, batch_seed, load_set_at};
use crate::config::{MixMethod, RunConfig, TaskChoice, TtaConfig};
use crate::data::unlabelled::TestImage;
use crate::error::{Error, Result};
use crate::models::{self, Classifier};
use crate::rng::Rng;
use crate::train::batches::{ImageSet, Sample, validation_batches};
use crate::train::checkpoint::{self, Progress};
use crate::train::resizing::SizePlan;
use crate::train::tta::{TtaOutput, combine_tta};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

/// Images per forward pass.
const BATCH: usize = 32;
/// Seeds of the TTA passes' augmentations ("TTA").
const TTA_STREAM: u64 = 0x5454_4100_0000_0000;

/// The ensemble's output.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub classes: Vec<String>,
    /// One row per image, in input order: the mean of the folds' probabilities.
    pub probs: Vec<Vec<f32>>,
    /// The folds used and how far each had trained.
    pub folds: Vec<Progress>,
}

/// The class names of a run, from its `folds.csv` header (`image_id,<classes>,fold`).
pub fn run_classes(run_dir: &Path) -> Result<Vec<String>> {
    let path = run_dir.join("folds.csv");
    let mut reader = csv::Reader::from_path(&path).map_err(|e| {
        Error::input(format!(
            "{}: {e}\nfix: pass a run directory",
            path.display()
        ))
    })?;
    let header = reader
        .headers()
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    let cols: Vec<String> = header.iter().map(String::from).collect();
    match cols.as_slice() {
        [first, classes @ .., last]
            if first == "image_id" && last == "fold" && classes.len() >= 2 =>
        {
            Ok(classes.to_vec())
        }
        _ => Err(Error::input(format!(
            "{}: expected the header image_id,<classes>,fold\nfix: restore the run's own folds.csv",
            path.display()
        ))),
    }
}

/// Predict `images` with the fold models of `run_dir` (all folds with a
/// checkpoint, or only `only_fold`), each fold with the validation transforms
/// and normalisation it was trained with; with `tta`, as fastai's
/// `Learner.tta(n, beta, use_max)` (the run's `[tta]` settings) per fold before the folds are averaged.
pub fn predict_run(
    run_dir: &Path,
    images: &[TestImage],
    only_fold: Option<usize>,
    tta: bool,
) -> Result<Prediction> {
    let config_path = run_dir.join("config.toml");
    if !config_path.is_file() {
        return Err(Error::input(format!(
            "{}: not an orchard run directory (no config.toml)\nfix: pass the directory a run printed when it started",
            run_dir.display()
        )));
    }
    let cfg = RunConfig::load(&config_path)?;
    let tta: Option<&TtaConfig> = tta.then_some(&cfg.tta);
    let multi_label = cfg.data.task == TaskChoice::MultiLabel;
    let classes = run_classes(run_dir)?;
    let folds: Vec<usize> = match only_fold {
        Some(f) => vec![f],
        None => (0..cfg.folds.k).collect(),
    };
    let present: Vec<(usize, Progress)> = folds
        .iter()
        .filter_map(|&f| {
            checkpoint::progress(&checkpoint::fold_path(run_dir, f))
                .transpose()
                .map(|p| p.map(|p| (f, p)))
        })
        .collect::<Result<_>>()?;
    if present.is_empty() {
        return Err(Error::input(format!(
            "{}: no fold checkpoint{} in checkpoints/\nfix: train the run (or resume it) until a fold has finished an epoch",
            run_dir.display(),
            only_fold.map_or(String::new(), |f| format!(" of fold {f}"))
        )));
    }

    let device = Device::Cpu;
    let samples: Vec<Sample> = images
        .iter()
        .map(|i| Sample {
            path: i.path.clone(),
            class: 0,
        })
        .collect();
    // Decoded once per image size (folds of one run share it unless a
    // ResizeNow changed one), used by every fold model of that size.
    let sizes = SizePlan::from_config(&cfg.training);
    let mut sets: HashMap<u32, ImageSet> = HashMap::new();
    let mut sum = vec![vec![0f32; classes.len()]; images.len()];
    for (fold, progress) in &present {
        // Each fold predicts at the size its last epoch trained at.
        let size = sizes.resumed(progress.size, progress.epochs_done);
        let set = match sets.entry(size) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(load_set_at(&samples, &cfg, size)?)
            }
        };
        let set = &*set;
        let varmap = VarMap::new();
        // The checkpoint sets every variable: the pretrained file is not read.
        let model = models::build_configured(
            &cfg.model,
            classes.len(),
            &varmap,
            &device,
            Rng::new(0),
            false,
        )?;
        let ckpt = checkpoint::load(&checkpoint::fold_path(run_dir, *fold), &device)?
            .ok_or_else(|| Error::Internal(format!("fold {fold}'s checkpoint disappeared")))?;
        checkpoint::restore_model(&varmap, &ckpt.model)?;
        let mut pipeline = Pipeline::new(&cfg, progress.normalization.clone());
        pipeline.size = size;
        // TTA uses the training transforms; MixUp/CutMix are training callbacks in
        // fastai, not transforms, so they never apply to predictions.
        pipeline.mixing.method = MixMethod::None;
        let probs = match tta {
            None => probabilities(model.as_ref(), &pipeline, set, None, multi_label, &device)?,
            Some(t) => {
                let plain =
                    probabilities(model.as_ref(), &pipeline, set, None, multi_label, &device)?;
                let passes = (0..t.n)
                    .map(|pass| {
                        let seed = TTA_STREAM ^ ((*fold as u64) << 16) ^ pass as u64;
                        probabilities(
                            model.as_ref(),
                            &pipeline,
                            set,
                            Some(seed),
                            multi_label,
                            &device,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                match combine_tta(&plain, &passes, Some(t.beta), t.use_max)? {
                    TtaOutput::Combined(rows) => rows
                        .into_iter()
                        .map(|r| r.into_iter().map(|v| v as f32).collect())
                        .collect(),
                    TtaOutput::Separate { .. } => {
                        return Err(Error::Internal("TTA with a beta left unblended".into()));
                    }
                }
            }
        };
        for (row, p) in sum.iter_mut().zip(probs) {
            for (s, v) in row.iter_mut().zip(p) {
                *s += v;
            }
        }
    }
    let k = present.len() as f32;
    let probs = sum
        .into_iter()
        .map(|r| r.into_iter().map(|v| v / k).collect())
        .collect();
    Ok(Prediction {
        classes,
        probs,
        folds: present.into_iter().map(|(_, p)| p).collect(),
    })
}

/// Probabilities of every image of `set` in eval mode (softmax; per-class
/// sigmoid for a multi-label run): validation transforms without `seed`, the
/// training augmentations drawn from `seed` with it.
fn probabilities(
    model: &dyn Classifier,
    pipeline: &Pipeline,
    set: &ImageSet,
    seed: Option<u64>,
    multi_label: bool,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(set.len());
    for (b, batch) in validation_batches(set.len(), BATCH).iter().enumerate() {
        let x: Tensor = match seed {
            None => pipeline.valid_batch(set, batch, device)?.x,
            Some(s) => {
                pipeline
                    .train_batch(set, batch, batch_seed(s, 0, b), device)?
                    .x
            }
        };
        let logits = model.forward_t(&x, false)?;
        let logits = logits.to_dtype(DType::F32)?;
        let p = if multi_label {
            candle_nn::ops::sigmoid(&logits)?
        } else {
            candle_nn::ops::softmax_last_dim(&logits)?
        };
        out.extend(p.to_vec2::<f32>()?);
    }
    Ok(out)
}
