//! Reopening a run directory to continue it (`orchard train --resume RUN_DIR`).
//!
//! A resumed run uses exactly what the run wrote at its start: `config.toml`
//! for every setting and `folds.csv` for which images it trains and in which
//! fold each one is (so a run started on a subset, or before images were added
//! to the data set, continues on the same images). Each fold then continues
//! from its checkpoint (see `train::checkpoint`).

use crate::config::RunConfig;
use crate::data::{DataSpec, Dataset, Folds, Resampling, load_dataset};
use crate::error::{Error, Result};
use crate::run::engine::RunPlan;
use crate::run::rundir::RunDir;
use crate::train::soft_labels;
use std::collections::HashMap;
use std::path::Path;

impl RunPlan {
    /// The plan of the run in `run_path`, to be continued.
    pub fn reopen(run_path: &Path) -> Result<RunPlan> {
        let config_path = run_path.join("config.toml");
        if !config_path.is_file() {
            return Err(Error::input(format!(
                "{}: not an orchard run directory (no config.toml)\nfix: pass the directory a run printed when it started",
                run_path.display()
            )));
        }
        let config = RunConfig::load(&config_path)?;
        config.validate()?;
        config.check_supported()?;
        let spec = DataSpec {
            path: config.data.path.clone(),
            images: config.data.images.clone(),
            task: config.data.task.forced(),
        };
        let full = load_dataset(&spec)?;
        let (dataset, folds) = restrict_to_folds_csv(full, &run_path.join("folds.csv"))?;
        if folds.k != config.folds.k {
            return Err(Error::input(format!(
                "{}: {} folds, but config.toml says folds.k = {}\nfix: restore the run's own folds.csv",
                run_path.join("folds.csv").display(),
                folds.k,
                config.folds.k
            )));
        }
        let resampling = Resampling::from_names(
            &dataset,
            &config.folds.oversample,
            &config.folds.undersample,
        )?;
        // The targets the run started with, even if the OOF file changed since.
        let soft_targets = match &config.soft_labels.oof {
            Some(_) => Some(soft_labels::read_targets(
                &run_path.join(soft_labels::TARGETS_FILE),
                &dataset,
            )?),
            None => None,
        };
        Ok(RunPlan {
            config,
            dataset,
            folds,
            resampling,
            run_dir: RunDir {
                path: run_path.to_path_buf(),
            },
            soft_targets,
            interactive: false,
        })
    }
}

/// The data set's items listed in `folds.csv` (`image_id,<classes>,fold`), in
/// that file's order, and their folds. Every listed image must still be there.
fn restrict_to_folds_csv(full: Dataset, path: &Path) -> Result<(Dataset, Folds)> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let fold_col = header.len().checked_sub(1).filter(|_| {
        header.get(0) == Some("image_id") && header.get(header.len() - 1) == Some("fold")
    });
    let Some(fold_col) = fold_col else {
        return Err(Error::input(format!(
            "{}: expected the header image_id,<classes>,fold\nfix: restore the run's own folds.csv",
            path.display()
        )));
    };
    let mut by_id: HashMap<String, crate::data::Item> = full
        .items
        .iter()
        .map(|item| (item.id.clone(), item.clone()))
        .collect();
    let mut items = Vec::new();
    let mut assignment = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = row + 2;
        let id = record.get(0).unwrap_or_default();
        let fold: usize = record
            .get(fold_col)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| {
                Error::input(format!(
                    "{} row {line} ({id}): the fold is not a number\nfix: restore the run's own folds.csv",
                    path.display()
                ))
            })?;
        let item = by_id.remove(id).ok_or_else(|| {
            Error::input(format!(
                "{} row {line}: image {id} is not in {} any more\nfix: put the image back (a resumed run trains the images it started with)",
                path.display(),
                full.source.display()
            ))
        })?;
        items.push(item);
        assignment.push(fold);
    }
    let k = assignment.iter().max().map_or(0, |m| m + 1);
    if items.is_empty() || (0..k).any(|f| !assignment.contains(&f)) {
        return Err(Error::input(format!(
            "{}: no images, or a fold with none\nfix: restore the run's own folds.csv",
            path.display()
        )));
    }
    let dataset = Dataset { items, ..full };
    Ok((dataset, Folds { k, assignment }))
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            Error::input(format!(
                "{}: missing\nfix: a run directory keeps its folds.csv; restore it",
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

    fn dataset(ids: &[&str]) -> Dataset {
        Dataset {
            source: "data".into(),
            classes: vec!["a".into(), "b".into()],
            items: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Item {
                    id: id.to_string(),
                    path: format!("{id}.png").into(),
                    labels: vec![i % 2],
                })
                .collect(),
            task: TaskType::Binary,
            layout: LabelLayout::OneHot {
                id_column: "image_id".into(),
            },
        }
    }

    #[test]
    fn keeps_the_listed_images_in_file_order_with_their_folds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("folds.csv");
        std::fs::write(&p, "image_id,a,b,fold\nz,1,0,1\nx,0,1,0\n").unwrap();
        let (ds, folds) = restrict_to_folds_csv(dataset(&["x", "y", "z"]), &p).unwrap();
        let ids: Vec<_> = ds.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["z", "x"]);
        assert_eq!(folds.assignment, [1, 0]);
        assert_eq!(folds.k, 2);
    }

    #[test]
    fn a_missing_image_or_bad_file_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("folds.csv");
        std::fs::write(&p, "image_id,a,b,fold\nx,1,0,0\ngone,0,1,1\n").unwrap();
        let err = restrict_to_folds_csv(dataset(&["x"]), &p).unwrap_err();
        assert!(err.to_string().contains("row 3: image gone"), "{err}");
        std::fs::write(&p, "image_id,a,b,fold\nx,1,0,zero\n").unwrap();
        let err = restrict_to_folds_csv(dataset(&["x"]), &p).unwrap_err();
        assert!(err.to_string().contains("row 2 (x)"), "{err}");
        let err = restrict_to_folds_csv(dataset(&["x"]), &dir.path().join("nope.csv")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
