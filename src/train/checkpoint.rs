//! Per-fold checkpoints: the model's variables (running statistics included),
//! the optimiser's state, the fold's progress and its last validation, in ONE
//! safetensors file that replaces the previous one atomically after every epoch.
//!
//! One file, written to a temporary name, flushed to disk and renamed over the
//! old one, means a kill at any moment leaves either the previous epoch's
//! checkpoint or this one, never a mix of the two. Progress lives in the
//! file's metadata (JSON under the key `orchard`), tensors are prefixed
//! `model.` and `optim.`, and the last validation's probabilities are the
//! tensor `valid_probs` (so a finished fold can be reported without retraining).

use crate::augment::Normalization;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const META_KEY: &str = "orchard";
const MODEL: &str = "model.";
const OPTIM: &str = "optim.";
const VALID_PROBS: &str = "valid_probs";
const TRAIN_LABELS: &str = "train_labels";
const TRAIN_ROWS: &str = "train_rows";
const CORRECTION: &str = "plc.";

/// Where a fold has got to: everything a resumed run needs besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub fold: usize,
    /// Completed epochs (each checkpoint is written at the end of one).
    pub epochs_done: usize,
    /// The fold's total epochs when the checkpoint was written.
    pub epochs: usize,
    /// Optimiser steps taken (the schedule's position).
    pub steps_done: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub accuracy: f64,
    /// The mean/std the fold's batches were normalised with: inference must use the same.
    pub normalization: Normalization,
    /// The image size of the last epoch (progressive resizing may have grown
    /// it); absent in checkpoints from before progressive resizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Label correction's (step, theta) anchor (a hand-set theta survives resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theta_anchor: Option<(usize, f64)>,
}

impl Progress {
    pub fn finished(&self) -> bool {
        self.epochs_done >= self.epochs
    }
}

/// Everything of a fold at the end of an epoch.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub progress: Progress,
    /// The model's variables by their (PyTorch) names.
    pub model: HashMap<String, Tensor>,
    /// The optimiser's state by name.
    pub optimizer: HashMap<String, Tensor>,
    /// Softmax probabilities of the fold's validation images after this epoch.
    pub valid_probs: Vec<Vec<f32>>,
    /// The training labels as label correction left them (empty without it).
    pub train_labels: Vec<u32>,
    /// Multi-label training rows as label correction left them (empty without it).
    pub train_rows: Vec<Vec<f32>>,
    /// The label-correction rule's own state by name (the ratio method's
    /// softmax history and delta; empty otherwise).
    pub correction_state: HashMap<String, Tensor>,
}

/// `RUN_DIR/checkpoints/fold<F>.safetensors`.
pub fn fold_path(run_dir: &Path, fold: usize) -> PathBuf {
    run_dir
        .join("checkpoints")
        .join(format!("fold{fold}.safetensors"))
}

/// Write `ckpt` to `path` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, t) in &ckpt.model {
        tensors.push((format!("{MODEL}{name}"), t.to_device(&Device::Cpu)?));
    }
    for (name, t) in &ckpt.optimizer {
        tensors.push((format!("{OPTIM}{name}"), t.to_device(&Device::Cpu)?));
    }
    for (name, t) in &ckpt.correction_state {
        tensors.push((format!("{CORRECTION}{name}"), t.to_device(&Device::Cpu)?));
    }
    let rows = ckpt.valid_probs.len();
    let cols = ckpt.valid_probs.first().map_or(0, Vec::len);
    let flat: Vec<f32> = ckpt.valid_probs.iter().flatten().copied().collect();
    if flat.len() != rows * cols {
        return Err(Error::Internal("ragged validation probabilities".into()));
    }
    tensors.push((
        VALID_PROBS.into(),
        Tensor::from_vec(flat, (rows, cols), &Device::Cpu)?,
    ));
    if !ckpt.train_labels.is_empty() {
        let n = ckpt.train_labels.len();
        tensors.push((
            TRAIN_LABELS.into(),
            Tensor::from_vec(ckpt.train_labels.clone(), n, &Device::Cpu)?,
        ));
    }
    if let Some(cols) = ckpt.train_rows.first().map(Vec::len) {
        let flat: Vec<f32> = ckpt.train_rows.iter().flatten().copied().collect();
        let n = ckpt.train_rows.len();
        if flat.len() != n * cols {
            return Err(Error::Internal("ragged training label rows".into()));
        }
        tensors.push((
            TRAIN_ROWS.into(),
            Tensor::from_vec(flat, (n, cols), &Device::Cpu)?,
        ));
    }
    let meta = serde_json::to_string(&ckpt.progress)
        .map_err(|e| Error::Internal(format!("checkpoint metadata: {e}")))?;
    let bytes = safetensors::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(HashMap::from([(META_KEY.to_string(), meta)])),
    )
    .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;

    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("{}: no parent directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("safetensors.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
    // The data must be on disk before the rename makes it the checkpoint.
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Only the progress of the checkpoint at `path` (its header), `None` if there is none.
pub fn progress(path: &Path) -> Result<Option<Progress>> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    // safetensors caps its header at 100 MB.
    if n > 100_000_000 {
        return Err(damaged(path, "header too large".into()));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| damaged(path, e.to_string()))?;
    let meta = json
        .get("__metadata__")
        .and_then(|m| m.get(META_KEY))
        .and_then(|m| m.as_str())
        .ok_or_else(|| damaged(path, "no progress metadata".into()))?;
    serde_json::from_str(meta)
        .map(Some)
        .map_err(|e| damaged(path, e.to_string()))
}

fn damaged(path: &Path, why: String) -> Error {
    Error::input(format!(
        "{}: not a readable orchard checkpoint ({why})\nfix: delete it to retrain that fold from the start",
        path.display()
    ))
}

/// Read the checkpoint at `path`, `None` if there is none. A damaged file is
/// an input error naming it (it can only come from outside: writes are atomic).
pub fn load(path: &Path, device: &Device) -> Result<Option<Checkpoint>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let damaged = |why: String| damaged(path, why);
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| damaged(e.to_string()))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| damaged("no progress metadata".into()))?;
    let progress: Progress = serde_json::from_str(meta).map_err(|e| damaged(e.to_string()))?;
    let all = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| damaged(e.to_string()))?;
    let mut model = HashMap::new();
    let mut optimizer = HashMap::new();
    let mut valid_probs = Vec::new();
    let mut train_labels = Vec::new();
    let mut train_rows = Vec::new();
    let mut correction_state = HashMap::new();
    for (name, t) in all {
        if let Some(n) = name.strip_prefix(MODEL) {
            model.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix(OPTIM) {
            optimizer.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix(CORRECTION) {
            correction_state.insert(n.to_string(), t);
        } else if name == VALID_PROBS {
            valid_probs = t
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()
                .map_err(|e| damaged(e.to_string()))?;
        } else if name == TRAIN_ROWS {
            train_rows = t
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()
                .map_err(|e| damaged(e.to_string()))?;
        } else if name == TRAIN_LABELS {
            train_labels = t
                .to_dtype(DType::U32)?
                .to_vec1::<u32>()
                .map_err(|e| damaged(e.to_string()))?;
        }
    }
    Ok(Some(Checkpoint {
        progress,
        model,
        optimizer,
        valid_probs,
        train_labels,
        train_rows,
        correction_state,
    }))
}

/// Copy a checkpoint's model tensors into the live variables of `varmap`. Every
/// variable must be present with its shape: a checkpoint of another model is
/// refused, with the names that differ.
pub fn restore_model(varmap: &candle_nn::VarMap, saved: &HashMap<String, Tensor>) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Internal("variable map lock poisoned".into()))?;
    let mut problems = Vec::new();
    for (name, var) in vars.iter() {
        match saved.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if t.shape() != var.shape() => problems.push(format!(
                "{name}: checkpoint {:?}, model {:?}",
                t.dims(),
                var.dims()
            )),
            Some(t) => var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?,
        }
    }
    for name in saved.keys().filter(|n| !vars.contains_key(*n)) {
        problems.push(format!("unexpected {name}"));
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(Error::input(format!(
            "the checkpoint does not fit the model: {}",
            problems.join(", ")
        )));
    }
    Ok(())
}

/// The model's variables as (name, tensor) for a checkpoint.
pub fn model_tensors(varmap: &candle_nn::VarMap) -> Result<HashMap<String, Tensor>> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| Error::Internal("variable map lock poisoned".into()))?;
    // A copy: the variables keep changing after the checkpoint is taken.
    vars.iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
        Checkpoint {
            progress: Progress {
                fold: 2,
                epochs_done: 1,
                epochs: 3,
                steps_done: 7,
                train_loss: 0.5,
                valid_loss: 0.25,
                accuracy: 0.75,
                normalization: Normalization::imagenet(),
                size: Some(96),
                theta_anchor: Some((5, 0.25)),
            },
            model: HashMap::from([("fc.weight".into(), t(&[1.0, -2.0]))]),
            optimizer: HashMap::from([("fc.weight.exp_avg".into(), t(&[0.1, 0.2]))]),
            valid_probs: vec![vec![0.25, 0.75], vec![0.5, 0.5]],
            train_labels: vec![1, 0, 2],
            train_rows: vec![vec![1.0, 0.0], vec![0.25, 1.0], vec![0.0, 0.0]],
            correction_state: HashMap::from([(
                "delta".to_string(),
                Tensor::new(&[0.25f64], &Device::Cpu).unwrap(),
            )]),
        }
    }

    #[test]
    fn round_trips_exactly_and_replaces_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = fold_path(dir.path(), 2);
        assert!(load(&path, &Device::Cpu).unwrap().is_none());
        let mut ckpt = sample();
        save(&path, &ckpt).unwrap();
        ckpt.progress.epochs_done = 2;
        save(&path, &ckpt).unwrap();
        let back = load(&path, &Device::Cpu).unwrap().unwrap();
        assert_eq!(back.progress, ckpt.progress);
        assert_eq!(back.valid_probs, ckpt.valid_probs);
        assert_eq!(back.train_labels, ckpt.train_labels);
        assert_eq!(back.train_rows, ckpt.train_rows);
        let v = |m: &HashMap<String, Tensor>, k: &str| m[k].to_vec1::<f32>().unwrap();
        assert_eq!(v(&back.model, "fc.weight"), [1.0, -2.0]);
        assert_eq!(v(&back.optimizer, "fc.weight.exp_avg"), [0.1, 0.2]);
        let delta = back.correction_state["delta"].to_vec1::<f64>().unwrap();
        assert_eq!(delta, [0.25]);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["fold2.safetensors"]);
    }

    #[test]
    fn a_damaged_checkpoint_is_an_input_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = fold_path(dir.path(), 0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
        let err = load(&path, &Device::Cpu).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("fold0.safetensors"), "{err}");
    }

    #[test]
    fn restoring_into_another_model_lists_the_differences() {
        let varmap = candle_nn::VarMap::new();
        varmap
            .get(
                (2,),
                "fc.weight",
                candle_nn::Init::Const(0.0),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        varmap
            .get(
                (1,),
                "fc.bias",
                candle_nn::Init::Const(0.0),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let saved = sample().model;
        let err = restore_model(&varmap, &saved).unwrap_err().to_string();
        assert!(err.contains("missing fc.bias"), "{err}");
        let mut saved = saved;
        saved.insert(
            "fc.bias".into(),
            Tensor::new(&[3f32], &Device::Cpu).unwrap(),
        );
        restore_model(&varmap, &saved).unwrap();
        let w = model_tensors(&varmap).unwrap();
        assert_eq!(w["fc.weight"].to_vec1::<f32>().unwrap(), [1.0, -2.0]);
        assert_eq!(w["fc.bias"].to_vec1::<f32>().unwrap(), [3.0]);
    }
}
