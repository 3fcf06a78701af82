//! `orchard schedule --policy one-cycle|flat-cos --lr-max X --steps N [--pct-start P]
//! [--div D] [--div-final F] [--format table|csv|json]`
//!
//! Prints `step,lr,mom` for steps 0..N-1. The numbers come from
//! `train::planned_schedule`, the function the training loop calls, so what this
//! prints is exactly what training would use.

use crate::cli::{Format, ScheduleArgs, SchedulePolicyArg};
use crate::config::{SchedulePolicy, TrainingConfig};
use crate::error::{Error, Result};
use crate::train::planned_schedule;
use std::fmt::Write;

/// fastai's `pct_start` defaults: `fit_one_cycle` 0.25, `fit_flat_cos` 0.75.
const ONE_CYCLE_PCT_START: f64 = 0.25;
const FLAT_COS_PCT_START: f64 = 0.75;

pub fn schedule(args: ScheduleArgs) -> Result<()> {
    let config = training_config(&args)?;
    // One "epoch" of N steps: the schedule depends only on the total step count.
    let steps = planned_schedule(&config, args.steps);
    let text = match args.format {
        Format::Csv => csv(&steps),
        Format::Table => table(&steps),
        Format::Json => json(&steps)?,
    };
    super::print_out(&text)
}

/// Most steps printed: ten million rows is already far more than any run.
const MAX_STEPS: usize = 10_000_000;

/// The training configuration these flags describe, after checking them.
fn training_config(args: &ScheduleArgs) -> Result<TrainingConfig> {
    let defaults = TrainingConfig::default();
    let (policy, default_pct) = match args.policy {
        SchedulePolicyArg::OneCycle => (SchedulePolicy::OneCycle, ONE_CYCLE_PCT_START),
        SchedulePolicyArg::FlatCos => (SchedulePolicy::FlatCos, FLAT_COS_PCT_START),
    };
    if args.steps == 0 {
        return Err(Error::input(
            "--steps 0: a schedule needs at least 1 step\nfix: give the number of optimiser steps, e.g. --steps 100 (epochs x batches per epoch)",
        ));
    }
    if args.steps > MAX_STEPS {
        return Err(Error::input(format!(
            "--steps {}: at most {MAX_STEPS} steps\nfix: give the number of optimiser steps of a run (epochs x batches per epoch)",
            args.steps
        )));
    }
    if !(args.lr_max.is_finite() && args.lr_max > 0.0) {
        return Err(Error::input(format!(
            "--lr-max {}: the peak learning rate must be a positive number\nfix: e.g. --lr-max 1e-3 (fastai's default)",
            args.lr_max
        )));
    }
    let pct_start = args.pct_start.unwrap_or(default_pct);
    if !(0.0..1.0).contains(&pct_start) {
        return Err(Error::input(format!(
            "--pct-start {pct_start}: expected a share of training in [0, 1)\nfix: e.g. --pct-start {default_pct} (fastai's default for this policy)"
        )));
    }
    if args.div.is_some() && policy == SchedulePolicy::FlatCos {
        return Err(Error::input(
            "--div: flat-cos starts at --lr-max and has no warm-up divisor\nfix: drop --div, or use --policy one-cycle",
        ));
    }
    let div = args.div.unwrap_or(defaults.div);
    let div_final = args.div_final.unwrap_or(defaults.div_final);
    for (flag, value, default) in [
        ("--div", div, defaults.div),
        ("--div-final", div_final, defaults.div_final),
    ] {
        if !(value.is_finite() && value > 0.0) {
            return Err(Error::input(format!(
                "{flag} {value}: the learning rate is divided by it, so it must be a positive number\nfix: e.g. {flag} {default} (fastai's default)"
            )));
        }
    }
    Ok(TrainingConfig {
        epochs: 1,
        lr: args.lr_max,
        policy,
        pct_start: Some(pct_start),
        div,
        div_final,
        ..defaults
    })
}

/// Full precision (Rust's shortest round-trip form), for scripts and tests.
fn csv(steps: &[(f64, f64)]) -> String {
    let mut out = String::from("step,lr,mom\n");
    for (i, (lr, mom)) in steps.iter().enumerate() {
        let _ = writeln!(out, "{i},{lr},{mom}");
    }
    out
}

fn table(steps: &[(f64, f64)]) -> String {
    let mut out = format!("{:>6}  {:>12}  {:>8}\n", "step", "lr", "mom");
    for (i, (lr, mom)) in steps.iter().enumerate() {
        let _ = writeln!(out, "{i:>6}  {lr:>12.4e}  {mom:>8.4}");
    }
    out
}

fn json(steps: &[(f64, f64)]) -> Result<String> {
    let rows: Vec<_> = steps
        .iter()
        .enumerate()
        .map(|(step, (lr, mom))| serde_json::json!({ "step": step, "lr": lr, "mom": mom }))
        .collect();
    Ok(serde_json::to_string_pretty(&rows).map_err(|e| Error::Internal(e.to_string()))? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(policy: SchedulePolicyArg) -> ScheduleArgs {
        ScheduleArgs {
            policy,
            lr_max: 1e-3,
            steps: 8,
            pct_start: None,
            div: None,
            div_final: None,
            format: Format::Csv,
        }
    }

    #[test]
    fn defaults_are_fastais_per_policy() {
        let one = training_config(&args(SchedulePolicyArg::OneCycle)).unwrap();
        assert_eq!((one.pct_start(), one.div, one.div_final), (0.25, 25.0, 1e5));
        let flat = training_config(&args(SchedulePolicyArg::FlatCos)).unwrap();
        assert_eq!((flat.pct_start(), flat.div_final), (0.75, 1e5));
        assert_eq!(flat.policy, SchedulePolicy::FlatCos);
    }

    /// A change to good flags, and the flag its error must start with.
    type BadCase = (fn(&mut ScheduleArgs), &'static str);

    #[test]
    fn bad_flags_name_the_flag() {
        let cases: [BadCase; 6] = [
            (|a| a.steps = 0, "--steps"),
            (|a| a.lr_max = -1e-3, "--lr-max"),
            (|a| a.pct_start = Some(1.0), "--pct-start"),
            (|a| a.div = Some(0.0), "--div"),
            (|a| a.div_final = Some(f64::NAN), "--div-final"),
            (
                |a| {
                    a.policy = SchedulePolicyArg::FlatCos;
                    a.div = Some(10.0)
                },
                "--div",
            ),
        ];
        for (change, flag) in cases {
            let mut a = args(SchedulePolicyArg::OneCycle);
            change(&mut a);
            let err = training_config(&a).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().starts_with(flag), "{err}");
        }
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_step() {
        let text = csv(&[(0.1, 0.9), (0.2, 0.85)]);
        assert_eq!(text, "step,lr,mom\n0,0.1,0.9\n1,0.2,0.85\n");
    }
}
