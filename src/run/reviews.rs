//! `RUN_DIR/corrections.csv` read back, and the reviews a person adds to it.
//!
//! The engine appends one row per label correction (`CorrectionsLog`); the
//! mislabeled-item viewer appends review rows to the same file:
//!
//! ```text
//! fold,epoch,step,image_id,old_label,new_label,p_old,p_new,theta,review
//! 0,1,7,Train_3,healthy,rust,0.120000,0.810000,0.500000,
//! ,,,Train_3,healthy,rust,,,,accepted
//! ```
//!
//! A review row has no fold, epoch or step (it is about the image, not about
//! one fold's copy of its label), `old_label` is the label in the user's data
//! and `new_label` the label the reviewer settled on; the `review` column says
//! how (`accepted`, `rejected`, `set`). PLC rows leave it empty, and files
//! written before the column existed (nine columns) read the same, as PLC rows.
//!
//! Every row goes out in one `write` to a file opened for appending, so an
//! engine and any number of dashboards (other processes, via `orchard
//! attach`) can append at once without mixing their lines. The latest review
//! of an image wins.

use crate::error::{Error, Result};
use crate::run::rundir::CorrectionsLog;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// What a reviewer decided about an image's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Review {
    /// PLC's label is right: use it, whatever the majority of folds says.
    Accepted,
    /// PLC was wrong: keep the label of the user's data.
    Rejected,
    /// Neither: the reviewer chose another class.
    Set,
}

impl Review {
    pub fn as_str(self) -> &'static str {
        match self {
            Review::Accepted => "accepted",
            Review::Rejected => "rejected",
            Review::Set => "set",
        }
    }

    pub fn parse(text: &str) -> Option<Review> {
        match text {
            "accepted" => Some(Review::Accepted),
            "rejected" => Some(Review::Rejected),
            "set" => Some(Review::Set),
            _ => None,
        }
    }
}

/// One label correction made by PLC during training.
#[derive(Debug, Clone, PartialEq)]
pub struct PlcRow {
    pub fold: usize,
    pub epoch: usize,
    pub image_id: String,
    pub old: String,
    pub new: String,
    pub p_old: Option<f64>,
    pub p_new: Option<f64>,
}

/// One review of an image's label.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub image_id: String,
    /// The label in the user's data.
    pub original: String,
    /// The label the reviewer settled on (the original one when rejected).
    pub label: String,
    pub review: Review,
}

/// Everything in `corrections.csv`, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorrectionsFile {
    pub plc: Vec<PlcRow>,
    pub reviews: Vec<ReviewRow>,
}

impl CorrectionsFile {
    /// The latest review of each image.
    pub fn latest_reviews(&self) -> HashMap<&str, &ReviewRow> {
        self.reviews
            .iter()
            .map(|r| (r.image_id.as_str(), r))
            .collect()
    }
}

/// Read `RUN_DIR/corrections.csv`; a missing file is an empty one (a run
/// without label correction). A damaged row is bad input naming the row.
pub fn read_corrections(run_dir: &Path) -> Result<CorrectionsFile> {
    let path = run_dir.join(CorrectionsLog::FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CorrectionsFile::default());
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let bad = |row: usize, why: String| {
        Error::input(format!(
            "{} row {row}: {why}\nfix: corrections.csv is written by orchard; restore it or delete the damaged rows",
            path.display()
        ))
    };
    // Flexible: review rows (ten fields) may follow a nine-column header of
    // a file begun by an older orchard.
    // A line cut short by a killed process is not a row yet.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(whole.as_bytes());
    let mut file = CorrectionsFile::default();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let r = record.map_err(|e| bad(row, e.to_string()))?;
        let field = |n: usize| {
            r.get(n)
                .map(String::from)
                .ok_or_else(|| bad(row, format!("column {} is missing", n + 1)))
        };
        let review = r.get(9).unwrap_or("");
        if !review.is_empty() {
            let review = Review::parse(review).ok_or_else(|| {
                bad(
                    row,
                    format!("review {review:?} is not accepted, rejected or set"),
                )
            })?;
            file.reviews.push(ReviewRow {
                image_id: field(3)?,
                original: field(4)?,
                label: field(5)?,
                review,
            });
            continue;
        }
        let number = |n: usize| -> Result<usize> {
            field(n)?
                .parse()
                .map_err(|_| bad(row, format!("column {} is not a number", n + 1)))
        };
        let probability = |n: usize| r.get(n).and_then(|v| v.parse::<f64>().ok());
        file.plc.push(PlcRow {
            fold: number(0)?,
            epoch: number(1)?,
            image_id: field(3)?,
            old: field(4)?,
            new: field(5)?,
            p_old: probability(6),
            p_new: probability(7),
        });
    }
    Ok(file)
}

/// Append one review row to `RUN_DIR/corrections.csv` (created with its
/// header if the run has none yet), in a single write.
pub fn append_review(run_dir: &Path, review: &ReviewRow) -> Result<()> {
    let path = run_dir.join(CorrectionsLog::FILE);
    let mut row = csv::Writer::from_writer(Vec::new());
    row.write_record([
        "",
        "",
        "",
        &review.image_id,
        &review.original,
        &review.label,
        "",
        "",
        "",
        review.review.as_str(),
    ])
    .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    let line = row
        .into_inner()
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    // A new file gets the header in the same write as the row, so a reader
    // never sees a file without one. Should the engine create it meanwhile,
    // create_new fails and the row is appended below its header instead.
    let fresh = OpenOptions::new().write(true).create_new(true).open(&path);
    let (mut file, bytes) = match fresh {
        Ok(file) => {
            let mut bytes = CorrectionsLog::HEADER.as_bytes().to_vec();
            bytes.extend_from_slice(&line);
            (file, bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (
            OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?,
            line,
        ),
        Err(e) => return Err(Error::io(&path, e)),
    };
    file.write_all(&bytes).map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(id: &str, label: &str, review: Review) -> ReviewRow {
        ReviewRow {
            image_id: id.into(),
            original: "healthy".into(),
            label: label.into(),
            review,
        }
    }

    #[test]
    fn reviews_are_appended_and_read_back_beside_plc_rows() {
        let t = tempfile::tempdir().unwrap();
        // A file begun by an older orchard: nine columns, no review column.
        std::fs::write(
            t.path().join(CorrectionsLog::FILE),
            "fold,epoch,step,image_id,old_label,new_label,p_old,p_new,theta\n\
             0,1,7,Train_3,healthy,\"rust, early\",0.120000,0.810000,0.500000\n",
        )
        .unwrap();
        append_review(
            t.path(),
            &review("Train_3", "rust, early", Review::Accepted),
        )
        .unwrap();
        append_review(t.path(), &review("Train_4", "scab", Review::Set)).unwrap();
        append_review(t.path(), &review("Train_3", "healthy", Review::Rejected)).unwrap();
        let text = std::fs::read_to_string(t.path().join(CorrectionsLog::FILE)).unwrap();
        assert!(
            text.ends_with(",,,Train_3,healthy,healthy,,,,rejected\n"),
            "{text}"
        );
        let file = read_corrections(t.path()).unwrap();
        assert_eq!(file.plc.len(), 1);
        assert_eq!(file.plc[0].new, "rust, early");
        assert_eq!(file.plc[0].p_new, Some(0.81));
        assert_eq!(file.reviews.len(), 3);
        assert_eq!(file.reviews[1], review("Train_4", "scab", Review::Set));
        // The latest review of Train_3 wins.
        assert_eq!(
            file.latest_reviews()["Train_3"].review,
            Review::Rejected,
            "{:?}",
            file.reviews
        );
    }

    #[test]
    fn a_review_in_a_run_without_corrections_creates_the_file_with_its_header() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            read_corrections(t.path()).unwrap(),
            CorrectionsFile::default()
        );
        append_review(t.path(), &review("a", "scab", Review::Set)).unwrap();
        let text = std::fs::read_to_string(t.path().join(CorrectionsLog::FILE)).unwrap();
        assert_eq!(
            text,
            format!("{},,,a,healthy,scab,,,,set\n", CorrectionsLog::HEADER)
        );
    }

    #[test]
    fn an_unknown_review_is_bad_input_naming_the_row() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join(CorrectionsLog::FILE),
            format!("{},,,a,healthy,scab,,,,maybe\n", CorrectionsLog::HEADER),
        )
        .unwrap();
        let err = read_corrections(t.path()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("row 2"), "{err}");
    }
}
