//! `orchard predict RUN_DIR --data TEST --out submission.csv`: the run's fold
//! models as an ensemble, written in Kaggle's submission layout
//! (`image_id,<class columns>` with probabilities).

use crate::cli::PredictArgs;
use crate::data::unlabelled::load_test_images;
use crate::error::{Error, Result};
use crate::run::rundir::{already_exists, create_new_file};
use crate::train::predict::{Prediction, predict_run};
use std::path::Path;

pub fn predict(args: PredictArgs) -> Result<()> {
    // Refused before any work: orchard never overwrites a file.
    if args.out.exists() {
        return Err(already_exists(&args.out));
    }
    let images = load_test_images(&args.data, args.images.as_deref())?;
    let prediction = predict_run(&args.run_dir, &images, args.fold, args.tta)?;
    let ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
    write_submission(&args.out, &ids, &prediction)?;
    let unfinished: Vec<String> = prediction
        .folds
        .iter()
        .filter(|p| !p.finished())
        .map(|p| format!("fold {} ({} of {} epochs)", p.fold, p.epochs_done, p.epochs))
        .collect();
    if !unfinished.is_empty() {
        eprintln!(
            "warning: not fully trained: {} (resume the run to finish them)",
            unfinished.join(", ")
        );
    }
    eprintln!(
        "{} images, {} fold model(s) averaged -> {}",
        ids.len(),
        prediction.folds.len(),
        args.out.display()
    );
    Ok(())
}

fn write_submission(path: &Path, ids: &[&str], p: &Prediction) -> Result<()> {
    let file = create_new_file(path)?;
    let mut w = csv::Writer::from_writer(file);
    let csv_err = |e: csv::Error| Error::Internal(format!("{}: {e}", path.display()));
    let mut header = vec!["image_id".to_string()];
    header.extend(p.classes.iter().cloned());
    w.write_record(&header).map_err(csv_err)?;
    for (id, probs) in ids.iter().zip(&p.probs) {
        let mut row = vec![id.to_string()];
        row.extend(probs.iter().map(|v| format!("{v:.6}")));
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}
