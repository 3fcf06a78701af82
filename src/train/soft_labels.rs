//! Soft labelling (techniques section 10): the training targets of a run are
//! blended from the given labels and a finished k-fold run's out-of-fold
//! predictions, `alpha * label + (1 - alpha) * predicted`, so the model is
//! punished less for disagreeing with a label that may be wrong.
//!
//! Each item's OOF prediction came from the fold model that did not train on
//! it, which is what makes it an honest second opinion. The blended targets of
//! a run are written to `RUN_DIR/soft_targets.csv` when it starts, so a resumed
//! run trains on the same targets even if the OOF file has moved since.

use crate::config::{PredictedTarget, SoftLabelsConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The file a run keeps its blended targets in.
pub const TARGETS_FILE: &str = "soft_targets.csv";

/// Out-of-fold probabilities by image id, as `oof.csv` holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassTable {
    pub classes: Vec<String>,
    pub rows: HashMap<String, Vec<f32>>,
}

/// Read a `image_id,...,<one column per class>` table whose last
/// `classes.len()` columns are probabilities (oof.csv has `fold,label` between;
/// soft_targets.csv has nothing between). The class columns must be the data
/// set's classes, in its order.
pub fn read_class_table(path: &Path, classes: &[String]) -> Result<ClassTable> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let n = classes.len();
    let first_class = header.len().saturating_sub(n);
    let columns: Vec<&str> = header.iter().skip(first_class).collect();
    if header.get(0) != Some("image_id") || header.len() <= n || columns != classes {
        return Err(Error::input(format!(
            "{}: expected the header image_id,...,{} (the data set's classes, in order), got {}\nfix: use the oof.csv of a finished run on the same data set",
            path.display(),
            classes.join(","),
            header.iter().collect::<Vec<_>>().join(",")
        )));
    }
    let mut rows = HashMap::new();
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = r + 2;
        let id = record.get(0).unwrap_or_default().to_string();
        let mut probs = Vec::with_capacity(n);
        for (c, class) in classes.iter().enumerate() {
            let cell = record.get(first_class + c).unwrap_or_default();
            let p: f32 = cell.trim().parse().map_err(|_| {
                Error::input(format!(
                    "{} row {line} ({id}), column {class}: {cell:?} is not a number\nfix: use the oof.csv exactly as the run wrote it",
                    path.display()
                ))
            })?;
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::input(format!(
                    "{} row {line} ({id}), column {class}: {p} is not a probability in [0, 1]\nfix: use the oof.csv exactly as the run wrote it",
                    path.display()
                )));
            }
            probs.push(p);
        }
        if rows.insert(id.clone(), probs).is_some() {
            return Err(Error::input(format!(
                "{} row {line}: image {id} appears twice\nfix: each image has one out-of-fold row; use the oof.csv of one finished run",
                path.display()
            )));
        }
    }
    Ok(ClassTable {
        classes: classes.to_vec(),
        rows,
    })
}

/// `alpha * label + (1 - alpha) * predicted` for one item. `label` is the
/// item's one-hot (or, multi-label, multi-hot) row. For single-label data the
/// prediction is renormalised to sum to 1 (oof.csv rounds to 6 decimals) and
/// its argmax is a one-hot row; for multi-label data each class is its own
/// yes/no question and argmax means "p >= 0.5".
pub fn blend(
    label: &[f32],
    predicted: &[f32],
    alpha: f64,
    mode: PredictedTarget,
    multi_label: bool,
) -> Vec<f32> {
    let predicted: Vec<f32> = match (mode, multi_label) {
        (PredictedTarget::Probs, true) => predicted.to_vec(),
        (PredictedTarget::Probs, false) => {
            let sum: f32 = predicted.iter().sum();
            if sum > 0.0 {
                predicted.iter().map(|p| p / sum).collect()
            } else {
                vec![1.0 / predicted.len() as f32; predicted.len()]
            }
        }
        (PredictedTarget::Argmax, true) => predicted
            .iter()
            .map(|&p| if p >= 0.5 { 1.0 } else { 0.0 })
            .collect(),
        (PredictedTarget::Argmax, false) => {
            let best = crate::train::metrics::predicted_classes(&[predicted])[0];
            (0..predicted.len())
                .map(|c| if c == best { 1.0 } else { 0.0 })
                .collect()
        }
    };
    let a = alpha as f32;
    label
        .iter()
        .zip(&predicted)
        .map(|(&l, &p)| a * l + (1.0 - a) * p)
        .collect()
}

/// The blended target of every item of `ds`, in item order. Every item must
/// have an OOF row.
pub fn soft_targets(ds: &Dataset, cfg: &SoftLabelsConfig) -> Result<Option<Vec<Vec<f32>>>> {
    let Some(path) = &cfg.oof else {
        return Ok(None);
    };
    let oof = read_class_table(path, &ds.classes)?;
    let multi_label = ds.task.is_multi_label();
    let mut missing = Vec::new();
    let mut targets = Vec::with_capacity(ds.len());
    for item in &ds.items {
        let Some(predicted) = oof.rows.get(&item.id) else {
            missing.push(item.id.as_str());
            continue;
        };
        let mut label = vec![0.0; ds.num_classes()];
        for &c in &item.labels {
            label[c] = 1.0;
        }
        targets.push(blend(
            &label,
            predicted,
            cfg.alpha,
            cfg.predicted,
            multi_label,
        ));
    }
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).copied().collect();
        return Err(Error::input(format!(
            "{}: no out-of-fold prediction for {} of the {} images (e.g. {})\nfix: use the oof.csv of a finished run that trained all folds on this data set (soft_labels.oof / --soft-labels)",
            path.display(),
            missing.len(),
            ds.len(),
            shown.join(", ")
        )));
    }
    Ok(Some(targets))
}

/// Write the blended targets (`image_id,<classes>`), refusing to overwrite.
pub fn write_targets(path: &Path, ds: &Dataset, targets: &[Vec<f32>]) -> Result<()> {
    let file = crate::run::rundir::create_new_file(path)?;
    let mut w = csv::Writer::from_writer(file);
    let csv_err = |e: csv::Error| Error::Internal(format!("{}: {e}", path.display()));
    let mut header = vec!["image_id".to_string()];
    header.extend(ds.classes.iter().cloned());
    w.write_record(&header).map_err(csv_err)?;
    for (item, t) in ds.items.iter().zip(targets) {
        let mut row = vec![item.id.clone()];
        // 9 significant digits: f32 values read back bit for bit.
        row.extend(t.iter().map(|v| format!("{v:.9e}")));
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// Read back the targets a run wrote, in `ds`'s item order.
pub fn read_targets(path: &Path, ds: &Dataset) -> Result<Vec<Vec<f32>>> {
    let table = read_class_table(path, &ds.classes)?;
    ds.items
        .iter()
        .map(|item| {
            table.rows.get(&item.id).cloned().ok_or_else(|| {
                Error::input(format!(
                    "{}: no soft target for image {}\nfix: restore the run's own {TARGETS_FILE}",
                    path.display(),
                    item.id
                ))
            })
        })
        .collect()
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            Error::input(format!(
                "{}: no such file\nfix: give the oof.csv of a finished run (soft_labels.oof / --soft-labels)",
                path.display()
            ))
        }
        _ => Error::input(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Item, LabelLayout, TaskType};

    fn dataset(labels: &[usize]) -> Dataset {
        Dataset {
            source: "d".into(),
            classes: vec!["a".into(), "b".into(), "c".into()],
            items: labels
                .iter()
                .enumerate()
                .map(|(i, &l)| Item {
                    id: format!("img{i}"),
                    path: format!("img{i}.png").into(),
                    labels: vec![l],
                })
                .collect(),
            task: TaskType::MultiClass,
            layout: LabelLayout::ClassFolders,
        }
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn blend_follows_the_formula() {
        // 0.7 * [0,1,0] + 0.3 * [0.2,0.3,0.5]
        let t = blend(
            &[0.0, 1.0, 0.0],
            &[0.2, 0.3, 0.5],
            0.7,
            PredictedTarget::Probs,
            false,
        );
        assert!(close(&t, &[0.06, 0.79, 0.15]), "{t:?}");
        // argmax of the prediction is class 2
        let t = blend(
            &[0.0, 1.0, 0.0],
            &[0.2, 0.3, 0.5],
            0.7,
            PredictedTarget::Argmax,
            false,
        );
        assert!(close(&t, &[0.0, 0.7, 0.3]), "{t:?}");
        // multi-label: each class on its own, argmax = p >= 0.5
        let t = blend(
            &[1.0, 0.0, 1.0],
            &[0.9, 0.6, 0.1],
            0.5,
            PredictedTarget::Argmax,
            true,
        );
        assert!(close(&t, &[1.0, 0.5, 0.5]), "{t:?}");
        let t = blend(
            &[1.0, 0.0, 1.0],
            &[0.9, 0.6, 0.1],
            0.5,
            PredictedTarget::Probs,
            true,
        );
        assert!(close(&t, &[0.95, 0.3, 0.55]), "{t:?}");
        // alpha = 1 is the plain label; rounding in the file is renormalised away
        let t = blend(
            &[1.0, 0.0, 0.0],
            &[0.333333, 0.333333, 0.333333],
            0.0,
            PredictedTarget::Probs,
            false,
        );
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn targets_come_from_the_oof_rows_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let oof = dir.path().join("oof.csv");
        std::fs::write(
            &oof,
            "image_id,fold,label,a,b,c\nimg1,0,b,0.1,0.1,0.8\nimg0,1,a,0.5,0.25,0.25\n",
        )
        .unwrap();
        let ds = dataset(&[0, 1]);
        let cfg = SoftLabelsConfig {
            oof: Some(oof.clone()),
            alpha: 0.5,
            predicted: PredictedTarget::Probs,
        };
        let t = soft_targets(&ds, &cfg).unwrap().unwrap();
        assert!(close(&t[0], &[0.75, 0.125, 0.125]), "{t:?}");
        assert!(close(&t[1], &[0.05, 0.55, 0.4]), "{t:?}");
        // What a run writes reads back bit for bit.
        let kept = dir.path().join(TARGETS_FILE);
        write_targets(&kept, &ds, &t).unwrap();
        assert_eq!(read_targets(&kept, &ds).unwrap(), t);
        // ... and is never overwritten.
        assert_eq!(write_targets(&kept, &ds, &t).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn bad_oof_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&[0, 1]);
        let check = |text: &str, needle: &str| {
            let oof = dir.path().join("oof.csv");
            std::fs::write(&oof, text).unwrap();
            let cfg = SoftLabelsConfig {
                oof: Some(oof),
                ..SoftLabelsConfig::default()
            };
            let err = soft_targets(&ds, &cfg).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let msg = err.to_string();
            assert!(msg.contains("oof.csv") && msg.contains(needle), "{msg}");
        };
        check("image_id,fold,label,a,c,b\n", "expected the header");
        check(
            "image_id,fold,label,a,b,c\nimg0,0,a,0.5,x,0.5\n",
            "row 2 (img0), column b",
        );
        check(
            "image_id,fold,label,a,b,c\nimg0,0,a,0.5,1.5,0.5\n",
            "not a probability",
        );
        check(
            "image_id,fold,label,a,b,c\nimg0,0,a,0.5,0.5,0\n",
            "1 of the 2 images (e.g. img1)",
        );
        check(
            "image_id,fold,label,a,b,c\nimg0,0,a,1,0,0\nimg0,0,a,1,0,0\n",
            "appears twice",
        );
        let cfg = SoftLabelsConfig {
            oof: Some(dir.path().join("nope.csv")),
            ..SoftLabelsConfig::default()
        };
        let msg = soft_targets(&ds, &cfg).unwrap_err().to_string();
        assert!(msg.contains("nope.csv: no such file"), "{msg}");
    }
}
