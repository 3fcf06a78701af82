//! Predicting new images with a finished run: the k fold models as an
//! ensemble (the mean of their softmax probabilities), as fastai users do for
//! a Kaggle submission.

use crate::config::RunConfig;
use crate::data::unlabelled::TestImage;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::train::batches::{ImageSet, Sample, validation_batches};
use crate::train::checkpoint::{self, Progress};
use crate::train::resnet::ResNet18;
use candle_core::{DType, Device, ModuleT};
use candle_nn::VarMap;
use std::path::Path;

/// Images per forward pass.
const BATCH: usize = 32;

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
/// checkpoint, or only `only_fold`).
pub fn predict_run(
    run_dir: &Path,
    images: &[TestImage],
    only_fold: Option<usize>,
) -> Result<Prediction> {
    let config_path = run_dir.join("config.toml");
    if !config_path.is_file() {
        return Err(Error::input(format!(
            "{}: not an orchard run directory (no config.toml)\nfix: pass the directory a run printed when it started",
            run_dir.display()
        )));
    }
    let cfg = RunConfig::load(&config_path)?;
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
    // Decoded once, used by every fold model.
    let set = ImageSet::load(&samples, cfg.training.size)?;
    let mut sum = vec![vec![0f32; classes.len()]; images.len()];
    for (fold, _) in &present {
        let varmap = VarMap::new();
        let model = ResNet18::new(classes.len(), &varmap, &device, Rng::new(0))?;
        let ckpt = checkpoint::load(&checkpoint::fold_path(run_dir, *fold), &device)?
            .ok_or_else(|| Error::Internal(format!("fold {fold}'s checkpoint disappeared")))?;
        checkpoint::restore_model(&varmap, &ckpt.model)?;
        let mut row = 0;
        for batch in validation_batches(set.len(), BATCH) {
            let (x, _) = set.batch(&batch, &device)?;
            let logits = model.forward_t(&x, false)?;
            let p = candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?;
            for probs in p.to_vec2::<f32>()? {
                for (s, v) in sum[row].iter_mut().zip(probs) {
                    *s += v;
                }
                row += 1;
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
