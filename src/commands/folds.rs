//! `orchard folds DATA --k K [--seed S] [--format table|csv|json] [--out FILE]
//! [--oversample CLASS=N] [--undersample CLASS=F]`

use crate::cli::{FoldsArgs, Format};
use crate::data::sampling::{Resampling, class_counts};
use crate::data::{Dataset, Folds, assign_folds};
use crate::error::{Error, Result};
use crate::run::rundir::{already_exists, write_folds_csv};
use serde::Serialize;

#[derive(Serialize)]
struct FoldReport {
    k: usize,
    seed: u64,
    classes: Vec<String>,
    /// fold x class counts of the validation parts (= the folds themselves).
    counts: Vec<Vec<usize>>,
    sizes: Vec<usize>,
    /// Per fold, training counts per class before and after resampling (only
    /// when resampling was asked for).
    training: Vec<TrainingCounts>,
}

#[derive(Serialize)]
struct TrainingCounts {
    fold: usize,
    before: Vec<usize>,
    after: Vec<usize>,
}

pub fn folds(args: FoldsArgs) -> Result<()> {
    // Checked before the data is read, so a wrong --out fails at once; the
    // write itself refuses again (create_new) in case the file appears meanwhile.
    if let Some(out) = &args.out
        && out.exists()
    {
        return Err(already_exists(out));
    }
    let ds = super::load_data_args(&args.data)?;
    let folds = assign_folds(&ds, args.k, args.seed)?;
    let (over, under) = super::resample_maps(&args.resample);
    let resampling = Resampling::from_names(&ds, &over, &under)?;
    let training: Vec<TrainingCounts> = if over.is_empty() && under.is_empty() {
        Vec::new()
    } else {
        (0..folds.k)
            .map(|f| {
                let train = folds.train_indices(f);
                TrainingCounts {
                    fold: f,
                    before: class_counts(&ds, &train),
                    after: class_counts(&ds, &resampling.apply(&ds, &train, args.seed, f)),
                }
            })
            .collect()
    };
    if let Some(out) = &args.out {
        write_folds_csv(out, &ds, &folds)?;
    }
    let report = FoldReport {
        k: folds.k,
        seed: args.seed,
        classes: ds.classes.clone(),
        counts: folds.counts(&ds),
        sizes: folds.sizes(),
        training,
    };
    let text = match args.format {
        Format::Table => table(&ds, &folds, &report),
        Format::Csv => {
            let mut s = String::from("fold,class,count\n");
            for (f, row) in report.counts.iter().enumerate() {
                for (c, n) in row.iter().enumerate() {
                    s.push_str(&format!("{f},{},{n}\n", ds.classes[c]));
                }
            }
            s
        }
        Format::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?
                + "\n"
        }
    };
    super::print_out(&text)?;
    if let Some(out) = &args.out {
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// The fold x class table of the techniques document, plus resampled training
/// counts when asked for.
fn table(ds: &Dataset, folds: &Folds, report: &FoldReport) -> String {
    let w = ds.classes.iter().map(|c| c.len()).max().unwrap_or(5).max(6);
    let mut s = format!(
        "{} images, {} classes, {} folds (seed {})\n\n",
        ds.len(),
        ds.num_classes(),
        folds.k,
        report.seed
    );
    s.push_str(&format!("{:<6}", "fold"));
    for c in &ds.classes {
        s.push_str(&format!(" {c:>w$}"));
    }
    s.push_str(&format!(" {:>w$}\n", "total"));
    for (f, row) in report.counts.iter().enumerate() {
        s.push_str(&format!("{f:<6}"));
        for n in row {
            s.push_str(&format!(" {n:>w$}"));
        }
        s.push_str(&format!(" {:>w$}\n", report.sizes[f]));
    }
    s.push_str(&format!("{:<6}", "all"));
    for n in ds.class_counts() {
        s.push_str(&format!(" {n:>w$}"));
    }
    s.push_str(&format!(" {:>w$}\n", ds.len()));
    if !report.training.is_empty() {
        s.push_str("\ntraining part of each fold, before -> after resampling (validation parts unchanged)\n");
        s.push_str(&format!("{:<6}", "fold"));
        for c in &ds.classes {
            s.push_str(&format!(" {c:>w2$}", w2 = w.max(11)));
        }
        s.push_str(&format!(" {:>13}\n", "total"));
        for t in &report.training {
            s.push_str(&format!("{:<6}", t.fold));
            for (b, a) in t.before.iter().zip(&t.after) {
                s.push_str(&format!(" {:>w2$}", format!("{b} -> {a}"), w2 = w.max(11)));
            }
            let (tb, ta): (usize, usize) = (t.before.iter().sum(), t.after.iter().sum());
            s.push_str(&format!(" {:>13}\n", format!("{tb} -> {ta}")));
        }
    }
    s
}
