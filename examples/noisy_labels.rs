//! The noisy-label experiment (issue "Noisy labels"): flip a share of the
//! training labels at random, train k folds with and without progressive
//! label correction (PLC) and with soft labels, and score everything on
//! validation folds whose labels were left untouched.
//!
//! ```sh
//! cargo run --release --example noisy_labels -- --data data/demo
//! cargo run --release --example noisy_labels -- --data ../shared/datasets/elpv \
//!     --config benches/noisy_elpv.toml --rates 0.2,0.4
//! ```
//!
//! Per flip rate it trains three k-fold runs on the same folds (assigned on
//! the true labels) and the same flipped labels:
//! - plain: the noisy labels as they are; its out-of-fold probabilities feed
//! - soft: targets `alpha * noisy + (1 - alpha) * OOF` (soft_labels.alpha /
//!   .predicted of the config), and
//! - PLC: label_correction on with the config's settings, once per rule in
//!   `--methods` (threshold, ratio),
//!
//! plus one clean run (no flips) for reference. Validation always uses the
//! true labels. PLC's precision is the share of its corrections that restored
//! the true label; recall the share of flipped training labels that were right
//! at the end of their fold. It prints a Markdown table (and writes it to
//! `--out`, never over an existing file).

use anyhow::{Context, Result, bail};
use clap::Parser;
use orchard::config::{CorrectionMethod, RunConfig};
use orchard::data::{DataSpec, Dataset, Folds, assign_folds, load_dataset};
use orchard::run::Event;
use orchard::train::dense_loss::DenseTargets;
use orchard::train::noise::{CorrectionScore, chance_precision, flip_labels};
use orchard::train::soft_labels::blend;
use orchard::train::{FitHooks, Flow, FoldData, Sample, fit_fold};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The data set (true labels).
    #[arg(long, default_value = "data/demo")]
    data: PathBuf,
    /// A run configuration for every run (epochs, size, lr, PLC's theta, soft_labels.alpha ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Shares of labels to flip, comma-separated.
    #[arg(long, default_value = "0.2,0.4", value_delimiter = ',')]
    rates: Vec<f64>,
    /// Seed of the flips (the runs use the config's seeds).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// PLC rules to compare, comma-separated: threshold (the techniques
    /// document's, default) and/or ratio (the published variant).
    #[arg(long, default_value = "threshold,ratio", value_delimiter = ',')]
    methods: Vec<String>,
    /// Train only the first N folds (all when absent). The soft-label rows
    /// need every fold's OOF predictions, so they are left out then.
    #[arg(long)]
    train_folds: Option<usize>,
    /// Only the PLC runs (no clean, plain noisy or soft-label rows), e.g. to
    /// add a rule to a table made before.
    #[arg(long)]
    plc_only: bool,
    /// Write the table here too (must not exist).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One row of the results table.
struct Row {
    condition: String,
    rate: f64,
    accuracy: f64,
    roc_auc: Option<f64>,
    score: Option<CorrectionScore>,
    seconds: f64,
}

/// Collects PLC's corrections of one fold; prints each epoch's line.
#[derive(Default)]
struct Recorder {
    changes: Vec<(String, usize)>,
}

impl FitHooks for Recorder {
    fn event(&mut self, event: Event) {
        match event {
            Event::LabelCorrected { image, new, .. } => self.changes.push((image, new)),
            Event::EpochEnded {
                fold,
                epoch,
                valid_loss,
                accuracy,
                ..
            } => eprintln!(
                "  fold {fold} epoch {epoch}: valid_loss {valid_loss:.4} accuracy {accuracy:.4}"
            ),
            _ => {}
        }
    }
    fn between_batches(&mut self, _step: usize) -> Flow {
        Flow::Continue
    }
}

enum Variant<'a> {
    Plain,
    Soft(&'a [Vec<f32>]),
    Plc(CorrectionMethod),
}

/// What one k-fold run gives back.
struct KFold {
    accuracy: f64,
    roc_auc: Option<f64>,
    /// Validation probabilities by item (every item is validated once).
    oof: Vec<Vec<f32>>,
    score: CorrectionScore,
}

fn run_kfold(
    n_folds: usize,
    cfg: &RunConfig,
    ds: &Dataset,
    folds: &Folds,
    truth: &[usize],
    noisy: &[usize],
    variant: &Variant,
) -> Result<KFold> {
    let mut cfg = cfg.clone();
    cfg.label_correction.enabled = false;
    if let Variant::Plc(method) = variant {
        cfg.label_correction.enabled = true;
        cfg.label_correction.method = *method;
    }
    let mut oof = vec![Vec::new(); ds.len()];
    let (mut acc, mut aucs) = (Vec::new(), Vec::new());
    let mut score = CorrectionScore::default();
    for f in 0..n_folds.min(folds.k) {
        let train = folds.train_indices(f);
        let valid = folds.valid_indices(f);
        let sample = |i: usize, class: usize| Sample {
            path: ds.items[i].path.clone(),
            class,
        };
        let data = FoldData {
            train: train.iter().map(|&i| sample(i, noisy[i])).collect(),
            valid: valid.iter().map(|&i| sample(i, truth[i])).collect(),
            num_classes: ds.num_classes(),
            dense_targets: match variant {
                Variant::Soft(rows) => Some(DenseTargets::soft(
                    train.iter().map(|&i| rows[i].clone()).collect(),
                )),
                _ => None,
            },
        };
        let mut rec = Recorder::default();
        let r = fit_fold(&cfg, f, &data, &mut rec, None)?;
        acc.push(r.accuracy);
        aucs.extend(r.roc_auc);
        for (&i, p) in valid.iter().zip(r.valid_probs) {
            oof[i] = p;
        }
        // Replay the fold's corrections on its starting labels.
        let position: HashMap<String, usize> = data
            .train
            .iter()
            .enumerate()
            .map(|(pos, s)| (s.path.display().to_string(), pos))
            .collect();
        let given: Vec<usize> = train.iter().map(|&i| noisy[i]).collect();
        let fold_truth: Vec<usize> = train.iter().map(|&i| truth[i]).collect();
        let mut current = given.clone();
        let mut changes = Vec::new();
        for (image, new) in &rec.changes {
            let pos = *position
                .get(image)
                .with_context(|| format!("corrected image {image} is not in fold {f}"))?;
            current[pos] = *new;
            changes.push((pos, *new));
        }
        score.add(&CorrectionScore::of_fold(
            &fold_truth,
            &given,
            &current,
            &changes,
        ));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(KFold {
        accuracy: mean(&acc),
        roc_auc: (!aucs.is_empty()).then(|| mean(&aucs)),
        oof,
        score,
    })
}

/// One Markdown table row.
fn row_line(r: &Row, c: usize) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    let (n, prec, rec, broken) = match &r.score {
        Some(s) => (
            s.corrections.to_string(),
            format!(
                "{} ({:.1}%)",
                pct(s.precision()),
                chance_precision(r.rate, c) * 100.0
            ),
            format!("{} of {}", pct(s.recall()), s.flipped),
            s.broken.to_string(),
        ),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    };
    format!(
        "| {:.0}% | {} | {:.4} | {} | {n} | {prec} | {rec} | {broken} | {:.0} s |\n",
        r.rate * 100.0,
        r.condition,
        r.accuracy,
        r.roc_auc.map_or("-".into(), |v| format!("{v:.4}")),
        r.seconds
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = match &args.config {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    cfg.validate()?;
    let ds = load_dataset(&DataSpec {
        path: orchard::config::resolve_data_path(&args.data),
        images: None,
        task: None,
    })?;
    if ds.task.is_multi_label() {
        bail!(
            "{}: the experiment needs single-label data",
            ds.source.display()
        );
    }
    let methods = args
        .methods
        .iter()
        .map(|m| match m.as_str() {
            "threshold" => Ok(CorrectionMethod::Threshold),
            "ratio" => Ok(CorrectionMethod::Ratio),
            other => bail!("--methods: {other:?} is not threshold or ratio"),
        })
        .collect::<Result<Vec<_>>>()?;
    let folds = assign_folds(&ds, cfg.folds.k, cfg.folds.seed)?;
    let truth: Vec<usize> = ds.items.iter().map(|it| it.class()).collect();
    let n_folds = args.train_folds.unwrap_or(folds.k).clamp(1, folds.k);
    let c = ds.num_classes();
    eprintln!(
        "{}: {} images, {} classes, {} folds, {} epochs at {} px",
        ds.display_name(),
        ds.len(),
        c,
        folds.k,
        cfg.training.epochs,
        cfg.training.size
    );
    let mut rows = Vec::new();
    let mut timed = |condition: String, rate: f64, f: &mut dyn FnMut() -> Result<KFold>| {
        let corrects = condition.starts_with("PLC");
        eprintln!("== {condition}, {:.0}% flipped", rate * 100.0);
        let start = Instant::now();
        let k = f()?;
        let row = Row {
            condition,
            rate,
            accuracy: k.accuracy,
            roc_auc: k.roc_auc,
            score: corrects.then_some(k.score),
            seconds: start.elapsed().as_secs_f64(),
        };
        // Each row as soon as it is measured: a long experiment shows its
        // progress, and a stopped one keeps what it had.
        eprint!("{}", row_line(&row, c));
        rows.push(row);
        Ok::<KFold, anyhow::Error>(k)
    };
    if !args.plc_only {
        timed("clean labels".into(), 0.0, &mut || {
            run_kfold(n_folds, &cfg, &ds, &folds, &truth, &truth, &Variant::Plain)
        })?;
    }
    for &rate in &args.rates {
        let noisy = flip_labels(&truth, c, rate, args.seed);
        for &method in &methods {
            let lc = &cfg.label_correction;
            let name = match method {
                CorrectionMethod::Threshold => format!(
                    "PLC threshold, theta {} -> {} {:?}",
                    lc.theta_start, lc.theta_end, lc.schedule
                ),
                CorrectionMethod::Ratio => format!(
                    "PLC ratio, delta {} (+{} up to {}), window {}",
                    lc.delta_start, lc.delta_step, lc.delta_max, lc.window
                ),
            }
            .to_lowercase()
            .replacen("plc", "PLC", 1);
            timed(name, rate, &mut || {
                run_kfold(
                    n_folds,
                    &cfg,
                    &ds,
                    &folds,
                    &truth,
                    &noisy,
                    &Variant::Plc(method),
                )
            })?;
        }
        if args.plc_only {
            continue;
        }
        let plain = timed("noisy labels".into(), rate, &mut || {
            run_kfold(n_folds, &cfg, &ds, &folds, &truth, &noisy, &Variant::Plain)
        })?;
        if n_folds < folds.k {
            continue;
        }
        let soft: Vec<Vec<f32>> = (0..ds.len())
            .map(|i| {
                let mut label = vec![0.0; c];
                label[noisy[i]] = 1.0;
                blend(
                    &label,
                    &plain.oof[i],
                    cfg.soft_labels.alpha,
                    cfg.soft_labels.predicted,
                    false,
                )
            })
            .collect();
        let name = format!(
            "soft labels (alpha {}, {:?})",
            cfg.soft_labels.alpha, cfg.soft_labels.predicted
        )
        .to_lowercase();
        timed(name, rate, &mut || {
            run_kfold(
                n_folds,
                &cfg,
                &ds,
                &folds,
                &truth,
                &noisy,
                &Variant::Soft(&soft),
            )
        })?;
    }
    let mut table = format!(
        "{} ({} images, {} classes), {} of {} folds x {} epochs at {} px, {}; flips seed {}; PLC warm-up {} of the iterations\n\n",
        ds.display_name(),
        ds.len(),
        c,
        n_folds,
        folds.k,
        cfg.training.epochs,
        cfg.training.size,
        cfg.model.arch,
        args.seed,
        cfg.label_correction.warmup,
    );
    table.push_str("| flipped | training | accuracy | mean ROC AUC | corrections | PLC precision (chance) | PLC recall | right labels made wrong | time |\n");
    table.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        table.push_str(&row_line(r, c));
    }
    print!("{table}");
    if let Some(out) = &args.out {
        let mut f = orchard::run::rundir::create_new_file(out)?;
        f.write_all(table.as_bytes())?;
    }
    Ok(())
}
