//! `orchard schedule` run as the real binary, its numbers checked against
//! fastai's schedule formulas written out here from first principles.

use std::f64::consts::PI;
use std::process::Command;

/// Run the binary; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orchard"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CSV rows as (step, lr, mom).
fn parse(csv: &str) -> (String, Vec<(usize, f64, f64)>) {
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 3, "{line}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    (header, rows)
}

/// fastai's SchedCos(start, end) at t in [0, 1].
fn cos_sched(start: f64, end: f64, t: f64) -> f64 {
    start + (1.0 + (PI * (1.0 - t)).cos()) * (end - start) / 2.0
}

/// fastai's combined_cos(pct, start, middle, end) at pos = step / n_steps.
fn combined_cos(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    if pos < pct {
        cos_sched(start, middle, pos / pct)
    } else {
        cos_sched(middle, end, (pos - pct) / (1.0 - pct))
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
}

#[test]
fn one_cycle_csv_follows_fastais_formula() {
    let (code, out, err) = run(&[
        "schedule",
        "--policy",
        "one-cycle",
        "--lr-max",
        "0.01",
        "--steps",
        "100",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let (header, rows) = parse(&out);
    assert_eq!(header, "step,lr,mom");
    assert_eq!(rows.len(), 100);
    // Defaults: pct_start 0.25, div 25, div_final 1e5, moms (0.95, 0.85, 0.95).
    for &(step, lr, mom) in &rows {
        let pos = step as f64 / 100.0;
        let want_lr = combined_cos(0.25, 0.01 / 25.0, 0.01, 0.01 / 1e5, pos);
        let want_mom = combined_cos(0.25, 0.95, 0.85, 0.95, pos);
        assert!(close(lr, want_lr), "step {step}: lr {lr} vs {want_lr}");
        assert!(close(mom, want_mom), "step {step}: mom {mom} vs {want_mom}");
    }
    // First step: lr_max / div and the top momentum.
    assert!(close(rows[0].1, 4e-4) && close(rows[0].2, 0.95));
    // Peak at step 25 (pos = pct_start): lr_max and the bottom momentum.
    let peak = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    assert!(close(peak, 0.01) && close(rows[25].1, 0.01) && close(rows[25].2, 0.85));
    // Last step sees pos 0.99, short of the end: t = 0.74 / 0.75 of the anneal.
    let t: f64 = 0.74 / 0.75;
    let last_lr = 0.01 + (1.0 + (PI * (1.0 - t)).cos()) * (1e-7 - 0.01) / 2.0;
    assert!(close(rows[99].1, last_lr), "{} vs {last_lr}", rows[99].1);
    assert!(rows[99].1 < 1e-5 && rows[99].1 > 1e-7);
}

#[test]
fn flat_cos_is_flat_then_anneals_with_constant_momentum() {
    let (code, out, err) = run(&[
        "schedule",
        "--policy",
        "flat-cos",
        "--lr-max",
        "0.002",
        "--steps",
        "40",
        "--div-final",
        "1000",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let (header, rows) = parse(&out);
    assert_eq!(header, "step,lr,mom");
    assert_eq!(rows.len(), 40);
    for &(step, lr, mom) in &rows {
        // Default pct_start 0.75: flat for steps 0..30, then cosine to lr / 1000.
        let want = combined_cos(0.75, 0.002, 0.002, 0.002 / 1000.0, step as f64 / 40.0);
        assert!(close(lr, want), "step {step}: {lr} vs {want}");
        // fastai does not schedule momentum here: Adam's beta1 throughout.
        assert_eq!(mom, 0.9, "step {step}");
    }
    assert!(close(rows[29].1, 0.002) && rows[31].1 < 0.002);
}

#[test]
fn table_is_the_default_format() {
    let (code, out, err) = run(&["schedule", "--lr-max", "1e-3", "--steps", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["step", "lr", "mom"])
    );
    assert_eq!(out.lines().count(), 4, "{out}");
}

#[test]
fn bad_values_exit_2_naming_the_flag() {
    for (args, flag) in [
        (&["--lr-max", "0.01", "--steps", "0"][..], "--steps 0"),
        (
            &["--lr-max", "-0.01", "--steps", "10"][..],
            "--lr-max -0.01",
        ),
        (
            &["--lr-max", "0.01", "--steps", "10", "--pct-start", "1"][..],
            "--pct-start 1",
        ),
    ] {
        let mut all = vec!["schedule"];
        all.extend_from_slice(args);
        let (code, out, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains(flag) && err.contains("fix:"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn absurd_step_counts_are_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orchard"))
        .args(["schedule", "--lr-max", "1e-3", "--steps", "1000000000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--steps"));
}
