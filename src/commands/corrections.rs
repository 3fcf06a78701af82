//! `orchard corrections RUN_DIR [--export FILE]`: what label correction did in a
//! run, and the corrected labels as a new CSV (the user's file is never touched).
//!
//! Each fold corrects its own copy of the training labels, so an image (in the
//! training part of k-1 folds) can end with different labels in different
//! folds. The exported label is the one most of those folds ended with, a
//! fold that never corrected the image counting for its original label; a tie
//! keeps the original.
//!
//! A person's review (the dashboard's mislabeled-item viewer, see
//! `run::reviews`) overrides that vote: an accepted correction is applied
//! even where the majority would not, a rejected one is not applied, and a
//! class the reviewer set is used. The latest review of an image counts.
//!
//! In a multi-label run a label is the image's set of classes, written as in
//! the multi-label CSV (`a b`, space-separated; empty for none), and the
//! vote is between the sets the folds ended with.

use crate::cli::CorrectionsArgs;
use crate::config::{RunConfig, TaskChoice};
use crate::error::{Error, Result};
use crate::run::reviews::{self, Review, ReviewRow};
use crate::run::rundir::create_new_file;
use crate::train::checkpoint;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// One row of corrections.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrectionRecord {
    pub fold: usize,
    pub epoch: usize,
    pub image_id: String,
    pub old: String,
    pub new: String,
}

/// The original labels of a run: `folds.csv` (`image_id,<class columns>,fold`).
pub struct RunLabels {
    pub classes: Vec<String>,
    /// image id -> (class, fold), in the file's order; multi-label: the
    /// space-separated class set instead of the class.
    pub images: Vec<(String, String, usize)>,
    pub multi_label: bool,
}

impl RunLabels {
    /// Whether `class` is (in) `label`.
    fn has(&self, label: &str, class: &str) -> bool {
        if self.multi_label {
            label.split(' ').any(|c| c == class)
        } else {
            label == class
        }
    }
}

pub fn corrections(args: CorrectionsArgs) -> Result<()> {
    let run_dir = &args.run_dir;
    let labels = read_folds(run_dir)?;
    let file_rows = reviews::read_corrections(run_dir)?;
    let rows: Vec<CorrectionRecord> = file_rows
        .plc
        .iter()
        .map(|r| CorrectionRecord {
            fold: r.fold,
            epoch: r.epoch,
            image_id: r.image_id.clone(),
            old: r.old.clone(),
            new: r.new.clone(),
        })
        .collect();
    let latest: HashMap<String, ReviewRow> = file_rows
        .latest_reviews()
        .into_iter()
        .map(|(id, r)| (id.to_string(), r.clone()))
        .collect();
    // Refuse an existing file before printing anything.
    let file = args.export.as_deref().map(create_new_file).transpose()?;
    print!("{}", summary(&rows, &labels));
    print!("{}", review_summary(&latest));
    if let (Some(out), Some(mut file)) = (&args.export, file) {
        let trained: Vec<usize> = (0..labels.k())
            .filter(|&f| checkpoint::fold_path(run_dir, f).is_file())
            .collect();
        let finals = final_labels(&rows, &labels, &trained, &latest);
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["image_id".to_string()];
        header.extend(labels.classes.iter().cloned());
        let bad = |e: csv::Error| Error::Internal(format!("{}: {e}", out.display()));
        w.write_record(&header).map_err(bad)?;
        for (id, original, _) in &labels.images {
            let label = finals.get(id).unwrap_or(original);
            let mut row = vec![id.clone()];
            row.extend(
                labels
                    .classes
                    .iter()
                    .map(|c| if labels.has(label, c) { "1" } else { "0" }.to_string()),
            );
            w.write_record(&row).map_err(bad)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::Internal(format!("{}: {e}", out.display())))?;
        file.write_all(&bytes).map_err(|e| Error::io(out, e))?;
        let changed = labels
            .images
            .iter()
            .filter(|(id, original, _)| finals.get(id).is_some_and(|l| l != original))
            .count();
        println!(
            "wrote {} ({} images, {changed} with a corrected label)",
            out.display(),
            labels.images.len()
        );
    }
    Ok(())
}

/// Counts per class pair and per fold and epoch, as printed.
pub fn summary(rows: &[CorrectionRecord], labels: &RunLabels) -> String {
    let mut out = String::new();
    let images: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.image_id.as_str()).collect();
    out.push_str(&format!(
        "{} correction(s) of {} image(s) (data set of {} images)\n",
        rows.len(),
        images.len(),
        labels.images.len()
    ));
    if rows.is_empty() {
        return out;
    }
    let mut pairs: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut epochs: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for r in rows {
        *pairs.entry((&r.old, &r.new)).or_default() += 1;
        *epochs.entry((r.fold, r.epoch)).or_default() += 1;
    }
    out.push_str("\nfrom -> to: count\n");
    let mut by_count: Vec<_> = pairs.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let shown = |l: &str| {
        if l.is_empty() {
            "(none)".to_string()
        } else {
            l.to_string()
        }
    };
    for ((old, new), n) in by_count {
        out.push_str(&format!("  {} -> {}: {n}\n", shown(old), shown(new)));
    }
    out.push_str("\nfold epoch: count\n");
    for ((fold, epoch), n) in epochs {
        out.push_str(&format!("  {fold} {epoch}: {n}\n"));
    }
    out
}

/// How many images were reviewed, and how; nothing when none was.
pub fn review_summary(latest: &HashMap<String, ReviewRow>) -> String {
    if latest.is_empty() {
        return String::new();
    }
    let count = |kind: Review| latest.values().filter(|r| r.review == kind).count();
    format!(
        "\nreviewed: {} image(s): {} accepted, {} rejected, {} set to another class\n",
        latest.len(),
        count(Review::Accepted),
        count(Review::Rejected),
        count(Review::Set)
    )
}

impl RunLabels {
    /// The number of folds.
    pub fn k(&self) -> usize {
        self.images.iter().map(|(_, _, f)| f + 1).max().unwrap_or(0)
    }
}

/// For each corrected or reviewed image, its exported label: the latest
/// review's if there is one, else the label most of the `trained` folds it
/// was a training image of ended with (see the module doc).
pub fn final_labels(
    rows: &[CorrectionRecord],
    labels: &RunLabels,
    trained: &[usize],
    reviewed: &HashMap<String, ReviewRow>,
) -> HashMap<String, String> {
    // (image, fold) -> the fold's last label for it; rows are in time order per fold.
    let mut last: HashMap<(&str, usize), &str> = HashMap::new();
    for r in rows {
        last.insert((&r.image_id, r.fold), &r.new);
    }
    let mut finals = HashMap::new();
    for (id, original, valid_fold) in &labels.images {
        if let Some(review) = reviewed.get(id) {
            let label = match review.review {
                // The user's data is the reference, not what the row says.
                Review::Rejected => original,
                Review::Accepted | Review::Set => &review.label,
            };
            finals.insert(id.clone(), label.clone());
            continue;
        }
        if !rows.iter().any(|r| &r.image_id == id) {
            continue;
        }
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for &fold in trained.iter().filter(|&f| f != valid_fold) {
            let label = last.get(&(id.as_str(), fold)).copied().unwrap_or(original);
            *votes.entry(label).or_default() += 1;
        }
        let top = votes.values().copied().max().unwrap_or(0);
        let winners: Vec<&str> = votes
            .iter()
            .filter(|(_, n)| **n == top)
            .map(|(l, _)| *l)
            .collect();
        let label = if winners.len() == 1 {
            winners[0]
        } else {
            original
        };
        finals.insert(id.clone(), label.to_string());
    }
    finals
}

fn read_folds(run_dir: &Path) -> Result<RunLabels> {
    let path = run_dir.join("folds.csv");
    if !path.is_file() {
        return Err(Error::input(format!(
            "{}: not an orchard run directory (no folds.csv)\nfix: pass the directory a run printed when it started",
            run_dir.display()
        )));
    }
    let bad = |row: usize, why: &str| {
        Error::input(format!(
            "{} row {row}: {why}\nfix: folds.csv is written by orchard; restore it from the run",
            path.display()
        ))
    };
    let mut reader = csv::Reader::from_path(&path).map_err(|e| bad(1, &e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(1, &e.to_string()))?
        .iter()
        .map(String::from)
        .collect();
    if header.len() < 4 || header.last().map(String::as_str) != Some("fold") {
        return Err(bad(1, "expected image_id,<class columns>,fold"));
    }
    let classes = header[1..header.len() - 1].to_vec();
    let multi_label = run_is_multi_label(run_dir)?;
    let mut images = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = record.map_err(|e| bad(row, &e.to_string()))?;
        let mut set = classes
            .iter()
            .enumerate()
            .filter(|(c, _)| record.get(c + 1) == Some("1"))
            .map(|(_, name)| name.as_str());
        let class = if multi_label {
            set.collect::<Vec<_>>().join(" ")
        } else {
            set.next()
                .map(String::from)
                .ok_or_else(|| bad(row, "no class column is 1"))?
        };
        let fold = record
            .get(header.len() - 1)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad(row, "the fold is not a number"))?;
        images.push((record.get(0).unwrap_or_default().to_string(), class, fold));
    }
    Ok(RunLabels {
        classes,
        images,
        multi_label,
    })
}

/// Whether the run trained multi-label data (its config.toml records the task).
fn run_is_multi_label(run_dir: &Path) -> Result<bool> {
    let path = run_dir.join("config.toml");
    if !path.is_file() {
        return Ok(false);
    }
    Ok(RunConfig::load(&path)?.data.task == TaskChoice::MultiLabel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> RunLabels {
        // Three folds: each image trains in the two folds it does not validate.
        RunLabels {
            classes: vec!["cat".into(), "dog".into()],
            images: vec![
                ("a".into(), "cat".into(), 0),
                ("b".into(), "cat".into(), 1),
                ("c".into(), "dog".into(), 2),
            ],
            multi_label: false,
        }
    }

    fn row(fold: usize, epoch: usize, id: &str, old: &str, new: &str) -> CorrectionRecord {
        CorrectionRecord {
            fold,
            epoch,
            image_id: id.into(),
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn the_majority_of_training_folds_decides_and_a_tie_keeps_the_original() {
        let rows = vec![
            // a trains in folds 1 and 2; both end at dog.
            row(1, 0, "a", "cat", "dog"),
            row(2, 1, "a", "cat", "dog"),
            // b trains in folds 0 and 2; only fold 0 changed it: a tie.
            row(0, 1, "b", "cat", "dog"),
            // c: fold 0 changed it and changed it back, fold 1 changed it.
            row(0, 0, "c", "dog", "cat"),
            row(0, 2, "c", "cat", "dog"),
            row(1, 2, "c", "dog", "cat"),
        ];
        let none = HashMap::new();
        let finals = final_labels(&rows, &labels(), &[0, 1, 2], &none);
        // Only fold 0 trained: b's one vote is dog; a was never corrected there.
        let fold0 = final_labels(&rows, &labels(), &[0], &none);
        assert_eq!(fold0["b"], "dog");
        assert_eq!(fold0["a"], "cat");
        assert_eq!(finals["a"], "dog");
        assert_eq!(finals["b"], "cat");
        // fold 0 ended at dog, fold 1 at cat: a tie, the original (dog) stays.
        assert_eq!(finals["c"], "dog");
        let text = summary(&rows, &labels());
        assert!(text.starts_with("6 correction(s) of 3 image(s) (data set of 3 images)"));
        assert!(
            text.contains("  cat -> dog: 4\n  dog -> cat: 2\n"),
            "{text}"
        );
        assert!(
            text.contains("  0 0: 1\n  0 1: 1\n  0 2: 1\n  1 0: 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_review_overrides_the_vote_of_the_folds() {
        let rows = vec![
            // a: both training folds end at dog, but the reviewer rejects it.
            row(1, 0, "a", "cat", "dog"),
            row(2, 1, "a", "cat", "dog"),
            // b: a tie would keep cat; the reviewer accepts fold 0's dog.
            row(0, 1, "b", "cat", "dog"),
        ];
        let review = |id: &str, original: &str, label: &str, review| {
            (
                id.to_string(),
                ReviewRow {
                    image_id: id.into(),
                    original: original.into(),
                    label: label.into(),
                    review,
                },
            )
        };
        let reviewed: HashMap<String, ReviewRow> = [
            // The row of a rejection may name any label: the original wins.
            review("a", "cat", "dog", Review::Rejected),
            review("b", "cat", "dog", Review::Accepted),
            // c was never corrected; the reviewer sets it anyway.
            review("c", "dog", "cat", Review::Set),
        ]
        .into_iter()
        .collect();
        let finals = final_labels(&rows, &labels(), &[0, 1, 2], &reviewed);
        assert_eq!(finals["a"], "cat");
        assert_eq!(finals["b"], "dog");
        assert_eq!(finals["c"], "cat");
        let text = review_summary(&reviewed);
        assert!(
            text.contains("3 image(s): 1 accepted, 1 rejected, 1 set"),
            "{text}"
        );
    }
}
