//! What the dashboard costs the training loop, measured with the real binary
//! on the demo data (same seed and config every run).
//!
//!   cargo bench --bench dashboard_overhead
//!
//! The main figure is CPU time, which a busy machine does not distort the
//! way it distorts throughput: one run with the dashboard drawing into a
//! 120x40 pseudo-terminal, and per-thread CPU time (utime + stime) read from
//! `/proc/PID/task/*/stat` while it trains. The dashboard runs on a thread
//! named `orchard-ui` (`tui::event_loop::UI_THREAD`), and threads it starts
//! inherit that name (crossterm's key waiter), so its share is
//!
//!   overhead = CPU(threads named orchard-ui) / CPU(everything else in the process)
//!
//! where "everything else" is the process's total from `/proc/PID/stat`
//! (which keeps the time of threads that have exited: batch loaders, rayon's
//! workers) minus the dashboard's. While training keeps every core busy, each
//! CPU second the dashboard takes is one training does not get, so this is
//! the throughput it costs. The last sample is taken when `run_ended` appears
//! in events.jsonl, before `q` is pressed, so the dashboard's idle time after
//! the run does not count. The pseudo-terminal's output is read by a vt100
//! parser as a terminal would (so drawing never blocks on a full pty buffer);
//! that parser's CPU is the terminal's cost, outside orchard, and is printed
//! apart.
//!
//! As secondary information, each pair also trains the same run `--headless`
//! and compares training steps/s from the runs' own `events.jsonl` (per epoch,
//! from the first batch event to the last, so validation and start-up are left
//! out). On a shared machine that ratio is dominated by noise.
//!
//! Env: ORCHARD_BENCH_REPS (default 3) pairs of runs, ORCHARD_BENCH_EPOCHS
//! (default 3), ORCHARD_BENCH_LIMIT (default 120 images).

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The dashboard's thread name, as `orchard::tui::event_loop::UI_THREAD`.
const UI_THREAD: &str = orchard::tui::event_loop::UI_THREAD;

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
    let mut epochs: BTreeMap<u64, (f64, f64, usize)> = Default::default();
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

/// CPU seconds of a process: its total and each live thread's.
#[derive(Debug, Clone, Default)]
struct CpuSample {
    /// utime + stime of the whole process, exited threads included.
    total: f64,
    /// (thread name, CPU seconds) of every live thread.
    threads: Vec<(String, f64)>,
}

impl CpuSample {
    /// CPU seconds of the live threads called `name`, and how many there are.
    fn named(&self, name: &str) -> (f64, usize) {
        self.threads
            .iter()
            .filter(|(n, _)| n == name)
            .fold((0.0, 0), |(s, k), (_, cpu)| (s + cpu, k + 1))
    }
}

/// (name, utime + stime in seconds) from a `/proc/.../stat` line. The name
/// is in parentheses and may hold spaces, so fields are counted after the
/// last ')': state is field 3 of stat(5), utime 14 and stime 15.
fn parse_stat(text: &str, ticks_per_second: f64) -> Option<(String, f64)> {
    let name = text.get(text.find('(')? + 1..text.rfind(')')?)?.to_string();
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) as f64 / ticks_per_second))
}

/// None once the process is gone.
fn sample_cpu(pid: u32) -> Option<CpuSample> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let (_, total) = parse_stat(&std::fs::read_to_string(proc_dir.join("stat")).ok()?, ticks)?;
    let mut threads = Vec::new();
    for task in std::fs::read_dir(proc_dir.join("task")).ok()?.flatten() {
        // A thread may exit between listing and reading: skip it.
        if let Some(thread) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text, ticks))
        {
            threads.push(thread);
        }
    }
    Some(CpuSample { total, threads })
}

/// CPU seconds the calling thread has used.
fn own_thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec owned by this frame.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// What a dashboard run cost.
struct DashboardRun {
    /// The orchard process's CPU when the run ended.
    cpu: CpuSample,
    /// Bytes the dashboard wrote to the terminal, and the CPU seconds the
    /// vt100 parser (standing in for the terminal) took to read them.
    terminal_bytes: usize,
    terminal_cpu: f64,
}

fn with_dashboard(run_dir: &Path, epochs: usize, limit: usize) -> DashboardRun {
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
    let pid = child.process_id().expect("the child's pid");
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let terminal = std::thread::spawn(move || {
        let mut parser = vt100::Parser::new(40, 120, 0);
        let mut buf = [0u8; 8192];
        let mut bytes = 0;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes += n;
            parser.process(&buf[..n]);
        }
        (bytes, own_thread_cpu())
    });
    let log = run_dir.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut cpu = CpuSample::default();
    loop {
        // Sampled before the check: the last sample is from when the run had ended.
        if let Some(sample) = sample_cpu(pid) {
            cpu = sample;
        }
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("\"run_ended\"")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the dashboard run did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A finished run stays on screen until q.
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let status = child.wait().expect("wait");
    assert!(status.success(), "dashboard run failed: {status:?}");
    drop(writer);
    drop(pair.master);
    let (terminal_bytes, terminal_cpu) = terminal.join().expect("the pty reader");
    DashboardRun {
        cpu,
        terminal_bytes,
        terminal_cpu,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| {
            (a.min(r), b.max(r))
        })
}

fn main() {
    // `cargo bench` passes --bench; anything else (a filter) is ignored.
    let reps = env_usize("ORCHARD_BENCH_REPS", 3).max(1);
    let epochs = env_usize("ORCHARD_BENCH_EPOCHS", 3);
    let limit = env_usize("ORCHARD_BENCH_LIMIT", 120);
    let dir = tempfile::tempdir().unwrap();
    let (mut shares, mut ratios) = (Vec::new(), Vec::new());
    let mut last = None;
    println!(
        "pair  dashboard CPU s  training CPU s  dashboard share  \
         headless steps/s  dashboard steps/s  dashboard/headless"
    );
    for rep in 0..reps {
        let run = |name: &str| -> PathBuf { dir.path().join(format!("{name}-{rep}")) };
        // Alternate which goes first, so a slow spell of the machine does not
        // always hit the same mode.
        let (h, d) = (run("headless"), run("dashboard"));
        let dash = if rep % 2 == 0 {
            headless(&h, epochs, limit);
            with_dashboard(&d, epochs, limit)
        } else {
            let dash = with_dashboard(&d, epochs, limit);
            headless(&h, epochs, limit);
            dash
        };
        let (ui, _) = dash.cpu.named(UI_THREAD);
        let training = dash.cpu.total - ui;
        let share = ui / training;
        let (hs, ds) = (steps_per_second(&h), steps_per_second(&d));
        println!(
            "{rep:<5} {ui:<16.2} {training:<15.2} {:<16} {hs:<17.3} {ds:<18.3} {:.4}",
            format!("{:.3}%", share * 100.0),
            ds / hs
        );
        shares.push(share);
        ratios.push(ds / hs);
        last = Some(dash);
    }
    let (lo, hi) = min_max(&shares);
    println!(
        "dashboard CPU / training CPU: mean {:.3}% (min {:.3}%, max {:.3}%) over {reps} run(s)",
        mean(&shares) * 100.0,
        lo * 100.0,
        hi * 100.0
    );
    let (rlo, rhi) = min_max(&ratios);
    println!(
        "secondary, steps/s with the dashboard / headless: mean {:.4} (min {rlo:.4}, max {rhi:.4})",
        mean(&ratios)
    );
    if let Some(dash) = last {
        // Where the CPU went in the last dashboard run, by thread name.
        let mut by_name: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (name, cpu) in &dash.cpu.threads {
            let e = by_name.entry(name).or_default();
            e.0 += cpu;
            e.1 += 1;
        }
        let live: f64 = dash.cpu.threads.iter().map(|t| t.1).sum();
        println!("last dashboard run, CPU s by thread name:");
        for (name, (cpu, n)) in by_name {
            println!("  {name:<20} {n:>3} thread(s) {cpu:>9.2}");
        }
        println!(
            "  {:<20} {:>13} {:>9.2}",
            "(exited threads)",
            "",
            dash.cpu.total - live
        );
        println!(
            "terminal side (vt100 parser, outside orchard): {} bytes, {:.3} CPU s",
            dash.terminal_bytes, dash.terminal_cpu
        );
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        println!("(/proc CPU times count in clock ticks of 1/{ticks} s, per thread)");
    }
}
