//! The pre-scan of `data.on_corrupt = "skip"`: before folds are made, every
//! distinct image is decoded once (in parallel; JPEGs at 1/8 scale, see
//! `decode::check_decodes`), and the rows whose file does not decode are
//! taken out of the data set. Doing it before the folds keeps labels, folds,
//! OOF rows and checkpoints about the same images; doing it in the loader
//! would leave holes in them.
//!
//! The run records what it left out in `RUN_DIR/skipped.csv`; its
//! `folds.csv` lists only the images kept, and a resumed run trains exactly
//! the images of `folds.csv`, so it sees the same data set without scanning
//! again.

use super::dataset::Dataset;
use super::decode::check_decodes;
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file a run lists its skipped images in.
pub const SKIPPED_FILE: &str = "skipped.csv";

/// One image file left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The ids of the rows that named it (one, unless rows share a file).
    pub ids: Vec<String>,
    pub path: PathBuf,
    /// The decoder's complaint (first line of the error, without the path).
    pub reason: String,
}

/// `ds` without the rows whose image does not decode, and those images (each
/// file once, in data set order). Every image failing, or a class losing all
/// of its images, is an input error naming what to fix.
pub fn drop_undecodable(mut ds: Dataset) -> Result<(Dataset, Vec<Skipped>)> {
    let mut distinct: Vec<&Path> = ds.items.iter().map(|i| i.path.as_path()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let bad: HashMap<PathBuf, String> = distinct
        .par_iter()
        .filter_map(|&p| {
            check_decodes(p)
                .err()
                .map(|e| (p.to_path_buf(), reason(p, &e)))
        })
        .collect();
    if bad.is_empty() {
        return Ok((ds, Vec::new()));
    }
    let counts_before = ds.class_counts();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut at: HashMap<PathBuf, usize> = HashMap::new();
    ds.items.retain(|item| {
        let Some(why) = bad.get(&item.path) else {
            return true;
        };
        match at.get(&item.path) {
            Some(&k) => skipped[k].ids.push(item.id.clone()),
            None => {
                at.insert(item.path.clone(), skipped.len());
                skipped.push(Skipped {
                    ids: vec![item.id.clone()],
                    path: item.path.clone(),
                    reason: why.clone(),
                });
            }
        }
        false
    });
    let first = &skipped[0];
    if ds.items.is_empty() {
        return Err(Error::input(format!(
            "{}: none of its {} image file(s) decodes (the first: {}: {})\nfix: check that data.path / data.images point at the real images",
            ds.source.display(),
            skipped.len(),
            first.path.display(),
            first.reason
        )));
    }
    let counts_after = ds.class_counts();
    let emptied: Vec<&str> = (0..ds.num_classes())
        .filter(|&c| counts_before[c] > 0 && counts_after[c] == 0)
        .map(|c| ds.classes[c].as_str())
        .collect();
    if !emptied.is_empty() {
        return Err(Error::input(format!(
            "{}: no image of class {} decodes ({} corrupt file(s) in all, the first: {}: {})\nfix: replace the class's images, or remove the class's rows",
            ds.source.display(),
            emptied.join(", "),
            skipped.len(),
            first.path.display(),
            first.reason
        )));
    }
    Ok((ds, skipped))
}

/// The first line of a decoding error, without the file name it starts with.
fn reason(path: &Path, e: &Error) -> String {
    let msg = e.to_string();
    let line = msg.lines().next().unwrap_or_default();
    let prefix = format!("{}: ", path.display());
    line.strip_prefix(&prefix).unwrap_or(line).to_string()
}

/// `image_id,file,reason`, one row per skipped row id.
pub fn write_skipped(path: &Path, skipped: &[Skipped]) -> Result<()> {
    let io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        other => Error::Internal(format!("{}: {other:?}", path.display())),
    };
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(["image_id", "file", "reason"]).map_err(io)?;
    for s in skipped {
        for id in &s.ids {
            let file = s.path.display().to_string();
            w.write_record([id.as_str(), file.as_str(), s.reason.as_str()])
                .map_err(io)?;
        }
    }
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Item, LabelLayout, TaskType};

    fn jpeg(path: &Path, v: u8) {
        image::RgbImage::from_pixel(16, 16, image::Rgb([v, 100, 200]))
            .save(path)
            .unwrap();
    }

    fn dataset(dir: &Path, classes: &[usize]) -> Dataset {
        let items = classes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let path = dir.join(format!("i{i}.jpg"));
                jpeg(&path, i as u8);
                Item {
                    id: format!("i{i}"),
                    path,
                    labels: vec![c],
                }
            })
            .collect();
        Dataset {
            source: dir.to_path_buf(),
            classes: vec!["a".into(), "b".into()],
            items,
            task: TaskType::MultiClass,
            layout: LabelLayout::ClassFolders,
        }
    }

    #[test]
    fn undecodable_rows_leave_and_each_file_is_reported_once() {
        let t = tempfile::tempdir().unwrap();
        let mut ds = dataset(t.path(), &[0, 0, 1, 1]);
        std::fs::write(t.path().join("i1.jpg"), b"not a picture").unwrap();
        let bytes = std::fs::read(t.path().join("i2.jpg")).unwrap();
        std::fs::write(t.path().join("i2.jpg"), &bytes[..bytes.len() / 2]).unwrap();
        // A second row naming the same broken file.
        let mut twin = ds.items[1].clone();
        twin.id = "i1b".into();
        ds.items.push(twin);
        let (kept, skipped) = drop_undecodable(ds).unwrap();
        let ids: Vec<&str> = kept.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i0", "i3"]);
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0].ids, ["i1", "i1b"]);
        assert_eq!(skipped[1].ids, ["i2"]);
        assert!(
            !skipped[0].reason.contains("i1.jpg"),
            "{}",
            skipped[0].reason
        );
        let csv = t.path().join(SKIPPED_FILE);
        write_skipped(&csv, &skipped).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.starts_with("image_id,file,reason\ni1,"), "{text}");
    }

    #[test]
    fn a_clean_data_set_is_returned_as_it_was() {
        let t = tempfile::tempdir().unwrap();
        let ds = dataset(t.path(), &[0, 1]);
        let (kept, skipped) = drop_undecodable(ds.clone()).unwrap();
        assert_eq!(kept.items, ds.items);
        assert!(skipped.is_empty());
    }

    #[test]
    fn a_class_left_without_images_is_an_input_error() {
        let t = tempfile::tempdir().unwrap();
        let ds = dataset(t.path(), &[0, 0, 1]);
        std::fs::write(t.path().join("i2.jpg"), b"garbage").unwrap();
        let err = drop_undecodable(ds).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("class b"), "{err}");
        assert!(err.to_string().contains("i2.jpg"), "{err}");
    }

    #[test]
    fn nothing_decoding_is_an_input_error() {
        let t = tempfile::tempdir().unwrap();
        let ds = dataset(t.path(), &[0, 1]);
        std::fs::write(t.path().join("i0.jpg"), b"x").unwrap();
        std::fs::write(t.path().join("i1.jpg"), b"y").unwrap();
        let err = drop_undecodable(ds).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("none of its 2"), "{err}");
    }
}
