//! Kill and resume: the real binary killed with SIGKILL in the middle of an
//! epoch, then `orchard train --resume RUN_DIR`, ends with the same metrics and
//! out-of-fold probabilities as an uninterrupted run.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Two folds of three epochs on a slice of the demo set, small and fast.
fn train_args(run_dir: &Path) -> Vec<String> {
    [
        "train",
        "--data",
        demo().to_str().unwrap(),
        "--headless",
        "--limit",
        "80",
        "--k",
        "2",
        "--epochs",
        "3",
        "--size",
        "32",
        "--bs",
        "8",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        // The line being written when the process was killed may be cut short.
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (fold, valid_loss, accuracy) of the last FoldEnded of each fold.
fn fold_results(run_dir: &Path) -> Vec<(u64, f64, f64)> {
    let mut out: Vec<(u64, f64, f64)> = Vec::new();
    for e in events(run_dir) {
        if e["event"] == "fold_ended" {
            let fold = e["fold"].as_u64().unwrap();
            out.retain(|r| r.0 != fold);
            out.push((
                fold,
                e["valid_loss"].as_f64().unwrap(),
                e["accuracy"].as_f64().unwrap(),
            ));
        }
    }
    out.sort_by_key(|r| r.0);
    out
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_same_metrics() {
    let t = tempfile::tempdir().unwrap();
    let whole = t.path().join("whole");
    let out = orchard().args(train_args(&whole)).output().unwrap();
    assert!(out.status.success(), "{out:?}");

    // The same run, killed once fold 0 is in its second epoch.
    let killed = t.path().join("killed");
    let mut child = orchard()
        .args(train_args(&killed))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let in_epoch_1 = events(&killed)
            .iter()
            .any(|e| e["event"] == "batch" && e["fold"] == 0 && e["epoch"] == 1);
        if in_epoch_1 {
            break;
        }
        assert!(Instant::now() < deadline, "fold 0 never reached epoch 1");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(
        !events(&killed).iter().any(|e| e["event"] == "run_ended"),
        "the kill came too late to test anything"
    );
    assert!(killed.join("checkpoints/fold0.safetensors").is_file());

    let (code, stdout, stderr) =
        run(&["train", "--resume", killed.to_str().unwrap(), "--headless"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("fold 0 resumed from its checkpoint"),
        "{stdout}"
    );
    assert!(stdout.contains("run completed"), "{stdout}");

    let (a, b) = (fold_results(&whole), fold_results(&killed));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a, b, "uninterrupted vs killed and resumed");
    assert_eq!(
        sorted_lines(&whole.join("oof.csv")),
        sorted_lines(&killed.join("oof.csv"))
    );

    // Resuming a finished run retrains nothing and changes nothing.
    let (code, stdout, stderr) =
        run(&["train", "--resume", killed.to_str().unwrap(), "--headless"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(!stdout.contains("epoch  train_loss"), "{stdout}");
    assert_eq!(
        sorted_lines(&whole.join("oof.csv")),
        sorted_lines(&killed.join("oof.csv"))
    );
}

#[test]
fn resume_refuses_what_is_not_a_run_and_extra_flags() {
    let t = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&["train", "--resume", t.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an orchard run directory"), "{err}");
    let (code, _, err) = run(&[
        "train",
        "--resume",
        t.path().to_str().unwrap(),
        "--epochs",
        "3",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--epochs"), "{err}");
}
