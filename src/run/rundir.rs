//! The run directory: everything a run writes, and nothing the user gave it.
//!
//! ```text
//! RUN_DIR/config.toml    the resolved config
//!         folds.csv      image_id,<class columns>,fold
//!         events.jsonl   one stamped Event per line (append-only)
//!         metrics.csv    one row per epoch and fold
//!         oof.csv        out-of-fold probabilities of every finished fold
//!         normalization.json  per fold, the mean/std its batches were normalised with
//!         corrections.csv  label corrections (progressive label correction)
//!         checkpoints/foldK.safetensors  weights, optimiser state, progress
//! ```

use crate::config::RunConfig;
use crate::data::{Dataset, Folds};
use crate::error::{Error, Result};
use crate::run::events::{Event, Stamped};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Create a new run directory. An existing non-empty directory is refused:
    /// a run never writes over an earlier run or over the user's files.
    pub fn create(path: &Path) -> Result<RunDir> {
        if path.exists() {
            let empty = path.is_dir()
                && std::fs::read_dir(path)
                    .map_err(|e| Error::io(path, e))?
                    .next()
                    .is_none();
            if !empty {
                return Err(Error::input(format!(
                    "{}: already exists and is not empty\nfix: pick a new --run-dir (runs never overwrite anything)",
                    path.display()
                )));
            }
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// `runs/<UTC time>-<data set name>`, with a counter if that exists already.
    pub fn default_path(dataset_name: &str) -> PathBuf {
        let stamp = utc_stamp(std::time::SystemTime::now());
        let base = PathBuf::from("runs").join(format!("{stamp}-{dataset_name}"));
        let mut p = base.clone();
        let mut n = 2;
        while p.exists() {
            p = PathBuf::from(format!("{}-{n}", base.display()));
            n += 1;
        }
        p
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_config(&self, cfg: &RunConfig) -> Result<()> {
        let p = self.file("config.toml");
        std::fs::write(&p, cfg.to_commented_toml()).map_err(|e| Error::io(&p, e))
    }

    pub fn write_folds(&self, ds: &Dataset, folds: &Folds) -> Result<()> {
        let p = self.file("folds.csv");
        write_folds_csv(&p, ds, folds)
    }

    /// `normalization.json`: `{"folds": {"0": {"source", "mean", "std"}, ...}}`,
    /// rewritten after each fold so inference finds the statistics of every
    /// finished fold.
    pub fn write_normalization(
        &self,
        per_fold: &std::collections::BTreeMap<usize, crate::augment::Normalization>,
    ) -> Result<()> {
        let p = self.file("normalization.json");
        let folds: serde_json::Map<String, serde_json::Value> = per_fold
            .iter()
            .map(|(f, n)| Ok((f.to_string(), serde_json::to_value(n)?)))
            .collect::<std::result::Result<_, serde_json::Error>>()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let text = serde_json::to_string_pretty(&serde_json::json!({ "folds": folds }))
            .map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))
    }
}

impl RunDir {
    /// Remove fold `fold`'s rows from `oof.csv` (atomically: a new file renamed
    /// over it); nothing to do when there are none.
    pub fn drop_oof_rows(&self, fold: usize) -> Result<()> {
        let fold = fold.to_string();
        // Column 1 is the fold.
        self.drop_csv_rows("oof.csv", |r| r.get(1) == Some(fold.as_str()))
    }

    /// Remove fold `fold`'s label corrections from epoch `from_epoch` on: a
    /// resumed fold redoes those epochs (its labels come from the checkpoint of
    /// the epoch before). Review rows (see `run::reviews`) are a person's
    /// decisions about an image, not training's: they always stay.
    pub fn drop_correction_rows(&self, fold: usize, from_epoch: usize) -> Result<()> {
        let fold = fold.to_string();
        self.drop_csv_rows(CorrectionsLog::FILE, |r| {
            r.get(9).is_none_or(str::is_empty)
                && r.get(0) == Some(fold.as_str())
                && r.get(1)
                    .and_then(|e| e.parse::<usize>().ok())
                    .is_some_and(|e| e >= from_epoch)
        })
    }

    /// Rewrite the CSV `name` without the data rows `drop` selects (atomically:
    /// a new file renamed over it); nothing to do when none is selected.
    fn drop_csv_rows(&self, name: &str, drop: impl Fn(&csv::StringRecord) -> bool) -> Result<()> {
        let path = self.file(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut kept = csv::Writer::from_writer(Vec::new());
        let mut dropped = 0;
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
            // Row 0 is the header.
            if row > 0 && drop(&record) {
                dropped += 1;
                continue;
            }
            kept.write_record(&record)
                .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        }
        if dropped == 0 {
            return Ok(());
        }
        let bytes = kept
            .into_inner()
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        let tmp = self.file(&format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// Append one fold's out-of-fold probabilities to `oof.csv`
    /// (`image_id,fold,label,<one probability column per class>`), written
    /// when the fold has finished, from its last epoch's validation.
    pub fn append_oof(
        &self,
        ds: &Dataset,
        valid: &[usize],
        fold: usize,
        probs: &[Vec<f32>],
    ) -> Result<()> {
        let path = self.file("oof.csv");
        let new = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut w = csv::Writer::from_writer(file);
        let csv_err = |e: csv::Error| Error::Internal(format!("{}: {e}", path.display()));
        if new {
            let mut header = vec!["image_id".to_string(), "fold".into(), "label".into()];
            header.extend(ds.classes.iter().cloned());
            w.write_record(&header).map_err(csv_err)?;
        }
        for (&i, p) in valid.iter().zip(probs) {
            let item = &ds.items[i];
            let labels: Vec<&str> = item
                .labels
                .iter()
                .map(|&c| ds.classes[c].as_str())
                .collect();
            let mut row = vec![item.id.clone(), fold.to_string(), labels.join(" ")];
            row.extend(p.iter().map(|v| format!("{v:.6}")));
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(|e| Error::io(&path, e))
    }
}

/// The refusal to write over a file the user already has.
pub fn already_exists(path: &Path) -> Error {
    Error::input(format!(
        "{}: the file already exists\nfix: choose a new file name (orchard never overwrites files)",
        path.display()
    ))
}

/// A new file at `path`; an existing one is refused with `already_exists`
/// (checked by the OS, so a file that appears meanwhile is not replaced either).
pub fn create_new_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                already_exists(path)
            } else {
                Error::io(path, e)
            }
        })
}

/// `image_id,<one 0/1 column per class>,fold`, quoted where a field needs it.
/// `create_new` refuses to replace an existing file (`orchard folds --out`).
pub fn write_folds_csv(path: &Path, ds: &Dataset, folds: &Folds) -> Result<()> {
    let file = create_new_file(path)?;
    let mut w = csv::Writer::from_writer(file);
    let csv_err = |e: csv::Error| Error::Internal(format!("{}: {e}", path.display()));
    let mut header = vec!["image_id".to_string()];
    header.extend(ds.classes.iter().cloned());
    header.push("fold".into());
    w.write_record(&header).map_err(csv_err)?;
    for (item, f) in ds.items.iter().zip(&folds.assignment) {
        let mut row = vec![item.id.clone()];
        row.extend(
            (0..ds.num_classes())
                .map(|c| if item.labels.contains(&c) { "1" } else { "0" }.to_string()),
        );
        row.push(f.to_string());
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// Appends stamped events to `events.jsonl`, one flushed line each, so a reader
/// (an attached dashboard, a test) never sees half an event.
pub struct EventLog {
    path: PathBuf,
    file: File,
}

impl EventLog {
    pub fn open(path: PathBuf) -> Result<EventLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(EventLog { path, file })
    }

    pub fn append(&mut self, ev: &Stamped) -> Result<()> {
        let mut line = serde_json::to_string(ev).map_err(|e| Error::Internal(e.to_string()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Appends one row per finished epoch to `metrics.csv`.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

/// Open a CSV the run appends to, writing `header` when the file is new (a
/// resumed run appends to its own file).
fn open_csv_log(path: &Path, header: &str) -> Result<File> {
    let new = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    if new {
        file.write_all(header.as_bytes())
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(file)
}

impl MetricsLog {
    pub const HEADER: &'static str = "fold,epoch,train_loss,valid_loss,accuracy,roc_auc,seconds\n";

    pub fn open(path: PathBuf) -> Result<MetricsLog> {
        let file = open_csv_log(&path, Self::HEADER)?;
        Ok(MetricsLog { path, file })
    }

    pub fn record(&mut self, ev: &Event) -> Result<()> {
        if let Event::EpochEnded {
            fold,
            epoch,
            train_loss,
            valid_loss,
            accuracy,
            seconds,
            roc_auc,
            ..
        } = ev
        {
            // An undefined AUC is an empty field, as pandas reads a missing value.
            let auc = roc_auc.map_or(String::new(), |a| format!("{a:.6}"));
            let row = format!(
                "{fold},{epoch},{train_loss:.6},{valid_loss:.6},{accuracy:.6},{auc},{seconds:.3}\n"
            );
            self.file
                .write_all(row.as_bytes())
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Appends one row per label correction to `corrections.csv`, with the
/// user's image ids and class names (never to the user's own CSV). Reviews of
/// the corrections go to the same file (`run::reviews`).
pub struct CorrectionsLog {
    path: PathBuf,
    file: File,
    /// The file has the `review` column (files of older runs do not, and
    /// their rows keep nine fields so the file stays rectangular).
    review_column: bool,
    /// Image file (as the event names it) -> the id in the user's CSV.
    ids: HashMap<String, String>,
    classes: Vec<String>,
}

impl CorrectionsLog {
    pub const FILE: &'static str = "corrections.csv";
    pub const HEADER: &'static str =
        "fold,epoch,step,image_id,old_label,new_label,p_old,p_new,theta,review\n";

    pub fn open(path: PathBuf, ds: &Dataset) -> Result<CorrectionsLog> {
        let file = open_csv_log(&path, Self::HEADER)?;
        let mut header = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(File::open(&path).map_err(|e| Error::io(&path, e))?),
            &mut header,
        )
        .map_err(|e| Error::io(&path, e))?;
        let review_column = header.trim_end().ends_with(",review");
        let ids = ds
            .items
            .iter()
            .map(|i| (i.path.display().to_string(), i.id.clone()))
            .collect();
        Ok(CorrectionsLog {
            path,
            file,
            review_column,
            ids,
            classes: ds.classes.clone(),
        })
    }

    pub fn record(&mut self, ev: &Event) -> Result<()> {
        if let Event::LabelCorrected {
            fold,
            epoch,
            step,
            image,
            old,
            new,
            p_old,
            p_new,
            theta,
            sets,
        } = ev
        {
            let class = |c: &usize| {
                self.classes
                    .get(*c)
                    .cloned()
                    .unwrap_or_else(|| c.to_string())
            };
            let id = self
                .ids
                .get(image)
                .cloned()
                .unwrap_or_else(|| image.clone());
            let mut fields = vec![
                fold.to_string(),
                epoch.to_string(),
                step.to_string(),
                id,
                // A multi-label correction writes the image's whole label
                // sets, in the multi-label CSV's notation (`a b`).
                match sets {
                    Some(s) => names(&s.old, &class),
                    None => class(old),
                },
                match sets {
                    Some(s) => names(&s.new, &class),
                    None => class(new),
                },
                format!("{p_old:.6}"),
                format!("{p_new:.6}"),
                format!("{theta:.6}"),
            ];
            if self.review_column {
                // Empty: made by training, not reviewed.
                fields.push(String::new());
            }
            let mut row = csv::Writer::from_writer(Vec::new());
            row.write_record(&fields)
                .map_err(|e| Error::Internal(format!("{}: {e}", self.path.display())))?;
            let bytes = row
                .into_inner()
                .map_err(|e| Error::Internal(format!("{}: {e}", self.path.display())))?;
            self.file
                .write_all(&bytes)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Class names joined by spaces (an empty set is an empty field).
fn names(classes: &[usize], name: &dyn Fn(&usize) -> String) -> String {
    classes.iter().map(name).collect::<Vec<_>>().join(" ")
}

/// `YYYYmmdd-HHMMSS` in UTC (civil-from-days, Howard Hinnant's algorithm), to
/// avoid a date crate for one file name.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamp_matches_known_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_906_420);
        // 2026-11-28 22:53:40 UTC
        assert_eq!(utc_stamp(t), "20261128-225340");
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn corrections_are_logged_with_ids_and_names_and_redone_epochs_dropped() {
        use crate::data::{Item, LabelLayout, TaskType};
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::create(&t.path().join("run")).unwrap();
        let item = |id: &str, class| Item {
            id: id.into(),
            path: t.path().join(format!("{id}.jpg")),
            labels: vec![class],
        };
        let ds = Dataset {
            source: t.path().into(),
            classes: vec!["healthy".into(), "rust, early".into()],
            items: vec![item("Train_0", 0), item("Train_1", 1)],
            task: TaskType::Binary,
            layout: LabelLayout::ClassFolders,
        };
        let corrected = |fold, epoch, image: &str| Event::LabelCorrected {
            fold,
            epoch,
            step: 7,
            image: t.path().join(image).display().to_string(),
            old: 0,
            new: 1,
            p_old: 0.125,
            p_new: 0.75,
            theta: 0.5,
            sets: None,
        };
        let mut log = CorrectionsLog::open(run.file(CorrectionsLog::FILE), &ds).unwrap();
        log.record(&corrected(0, 1, "Train_0.jpg")).unwrap();
        log.record(&corrected(1, 1, "Train_1.jpg")).unwrap();
        log.record(&corrected(0, 2, "Train_1.jpg")).unwrap();
        // Other events write nothing.
        log.record(&Event::Warning {
            message: "x".into(),
        })
        .unwrap();
        drop(log);
        let read = || std::fs::read_to_string(run.file(CorrectionsLog::FILE)).unwrap();
        assert_eq!(
            read(),
            format!(
                "{}0,1,7,Train_0,healthy,\"rust, early\",0.125000,0.750000,0.500000,\n\
                 1,1,7,Train_1,healthy,\"rust, early\",0.125000,0.750000,0.500000,\n\
                 0,2,7,Train_1,healthy,\"rust, early\",0.125000,0.750000,0.500000,\n",
                CorrectionsLog::HEADER
            )
        );
        // A reviewer accepts Train_1's correction meanwhile.
        let review = crate::run::reviews::ReviewRow {
            image_id: "Train_1".into(),
            original: "healthy".into(),
            label: "rust, early".into(),
            review: crate::run::reviews::Review::Accepted,
        };
        crate::run::reviews::append_review(&run.path, &review).unwrap();
        // Fold 0 resumed after epoch 1 redoes epoch 2: only that row goes,
        // the review stays.
        run.drop_correction_rows(0, 2).unwrap();
        let rows: Vec<String> = read().lines().map(String::from).collect();
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(rows[1].starts_with("0,1,7,Train_0") && rows[2].starts_with("1,1,7,Train_1"));
        assert_eq!(rows[3], ",,,Train_1,healthy,\"rust, early\",,,,accepted");
        // Even a resume that redoes every epoch of every fold keeps it.
        run.drop_correction_rows(0, 0).unwrap();
        run.drop_correction_rows(1, 0).unwrap();
        let file = crate::run::reviews::read_corrections(&run.path).unwrap();
        assert!(file.plc.is_empty());
        assert_eq!(file.reviews, vec![review]);
        // Reopening appends without a second header.
        CorrectionsLog::open(run.file(CorrectionsLog::FILE), &ds).unwrap();
        assert_eq!(read().matches("fold,epoch").count(), 1);
    }

    #[test]
    fn a_non_empty_directory_is_never_reused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("mine.txt"), "precious").unwrap();
        let err = RunDir::create(t.path()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            std::fs::read_to_string(t.path().join("mine.txt")).unwrap(),
            "precious"
        );
        let fresh = t.path().join("new");
        assert!(RunDir::create(&fresh).is_ok());
    }

    #[test]
    fn a_multi_label_correction_writes_the_label_sets() {
        use crate::data::{Item, LabelLayout, TaskType};
        use crate::run::LabelSets;
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::create(&t.path().join("run")).unwrap();
        let item = |id: &str| Item {
            id: id.into(),
            path: t.path().join(format!("{id}.jpg")),
            labels: vec![0],
        };
        let ds = Dataset {
            source: t.path().into(),
            classes: vec!["defective".into(), "mono".into(), "poly".into()],
            items: vec![item("cell_1")],
            task: TaskType::MultiLabel,
            layout: LabelLayout::ClassFolders,
        };
        let flip = |old: Vec<usize>, new: Vec<usize>, class| Event::LabelCorrected {
            fold: 0,
            epoch: 3,
            step: 40,
            image: t.path().join("cell_1.jpg").display().to_string(),
            old: class,
            new: class,
            p_old: 0.25,
            p_new: 0.75,
            theta: 0.4,
            sets: Some(LabelSets { old, new }),
        };
        let mut log = CorrectionsLog::open(run.file(CorrectionsLog::FILE), &ds).unwrap();
        log.record(&flip(vec![0, 1], vec![1], 0)).unwrap();
        log.record(&flip(vec![1], vec![], 1)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(run.file(CorrectionsLog::FILE)).unwrap();
        assert_eq!(
            text,
            format!(
                "{}0,3,40,cell_1,defective mono,mono,0.250000,0.750000,0.400000,\n\
                 0,3,40,cell_1,mono,,0.250000,0.750000,0.400000,\n",
                CorrectionsLog::HEADER
            )
        );
    }
}
