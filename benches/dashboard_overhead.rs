//! What the dashboard costs the training loop: the same run (demo data, same
//! seed and config) trained headless and with the dashboard drawing in a
//! pseudo-terminal, alternately, several times; throughput in steps/s from
//! the run's own `events.jsonl`.
//!
//!   cargo bench --bench dashboard_overhead
//!
//! Steps/s counts only training: per epoch, the batches after the first over
//! the time from the first batch event to the last (validation, data loading
//! and the dashboard's start are left out, the same way for both modes). The
//! pseudo-terminal's output is read and fed to a vt100 parser as a terminal
//! would, so drawing is never slowed by a full pty buffer.
//!
//! Env: ORCHARD_BENCH_REPS (default 3) pairs of runs, ORCHARD_BENCH_EPOCHS
//! (default 3), ORCHARD_BENCH_LIMIT (default 120 images).

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn train_args(run_dir: &Path, epochs: usize, limit: usize) -> Vec<String> {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo");
    [
        "train",
        "--data",
        demo.to_str().unwrap(),
        "--limit",
        &limit.to_string(),
        "--k",
        "3",
        "--fold",
        "0",
        "--epochs",
        &epochs.to_string(),
        "--size",
        "64",
        "--bs",
        "8",
        "--seed",
        "7",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Training steps per second of a finished run (see the module doc).
fn steps_per_second(run_dir: &Path) -> f64 {
    let text = std::fs::read_to_string(run_dir.join("events.jsonl")).expect("events.jsonl");
    // epoch -> (first batch time, last batch time, batches)
    let mut epochs: std::collections::BTreeMap<u64, (f64, f64, usize)> = Default::default();
    for line in text.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["event"] != "batch" {
            continue;
        }
        let (t, epoch) = (v["time"].as_f64().unwrap(), v["epoch"].as_u64().unwrap());
        let e = epochs.entry(epoch).or_insert((t, t, 0));
        e.1 = t;
        e.2 += 1;
    }
    let (steps, seconds) = epochs.values().fold((0usize, 0.0), |(s, d), &(a, b, n)| {
        (s + n.saturating_sub(1), d + (b - a))
    });
    steps as f64 / seconds
}

fn headless(run_dir: &Path, epochs: usize, limit: usize) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchard"));
    command
        .args(train_args(run_dir, epochs, limit))
        .arg("--headless")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // A session of its own, as the pty run has: with the kernel's scheduler
    // autogroups, a new session is a new group with its own share of the
    // CPUs, and a run in the bench's session would compete with it instead.
    // SAFETY: setsid in the forked child before exec; async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command.status().expect("start orchard");
    assert!(status.success(), "headless run failed: {status:?}");
}

fn with_dashboard(run_dir: &Path, epochs: usize, limit: usize) {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_orchard"));
    cmd.args(train_args(run_dir, epochs, limit));
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).expect("start orchard");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    std::thread::spawn(move || {
        let mut parser = vt100::Parser::new(40, 120, 0);
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            parser.process(&buf[..n]);
        }
    });
    let log = run_dir.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"run_ended\"")
    {
        assert!(Instant::now() < deadline, "the dashboard run did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A finished run stays on screen until q.
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let status = child.wait().expect("wait");
    assert!(status.success(), "dashboard run failed: {status:?}");
}

fn main() {
    // `cargo bench` passes --bench; anything else (a filter) is ignored.
    let reps = env_usize("ORCHARD_BENCH_REPS", 3);
    let epochs = env_usize("ORCHARD_BENCH_EPOCHS", 3);
    let limit = env_usize("ORCHARD_BENCH_LIMIT", 120);
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    println!("pair  headless steps/s  dashboard steps/s  dashboard/headless");
    for rep in 0..reps {
        let run = |name: &str| -> PathBuf { dir.path().join(format!("{name}-{rep}")) };
        // Alternate which goes first, so a slow spell of the machine does not
        // always hit the same mode.
        let (h, d) = (run("headless"), run("dashboard"));
        if rep % 2 == 0 {
            headless(&h, epochs, limit);
            with_dashboard(&d, epochs, limit);
        } else {
            with_dashboard(&d, epochs, limit);
            headless(&h, epochs, limit);
        }
        let (hs, ds) = (steps_per_second(&h), steps_per_second(&d));
        println!("{rep:<5} {hs:<17.3} {ds:<18.3} {:.4}", ds / hs);
        rows.push((hs, ds));
    }
    let ratios: Vec<f64> = rows.iter().map(|(h, d)| d / h).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (lo, hi) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| {
            (a.min(r), b.max(r))
        });
    let hs: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let ds: Vec<f64> = rows.iter().map(|r| r.1).collect();
    println!(
        "mean: headless {:.3} steps/s, dashboard {:.3} steps/s; ratio mean {:.4} (min {lo:.4}, max {hi:.4}); overhead {:+.2}%",
        mean(&hs),
        mean(&ds),
        mean(&ratios),
        (1.0 - mean(&ds) / mean(&hs)) * 100.0
    );
}
