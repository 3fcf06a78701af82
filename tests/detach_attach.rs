//! Runs that outlive the terminal, end to end with the real binary:
//! `orchard train --detach` starts a background run; `orchard attach` in a
//! pseudo-terminal shows it; a dashboard killed by SIGHUP (a dropped SSH
//! connection) leaves the run going; a second attach sees it; `q` in an
//! attached dashboard leaves without stopping; a stop over the socket ends it.

mod common;
use common::*;
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the machine running the tests may be small and busy.
const WAIT: u64 = 180;

/// A dashboard in a pseudo-terminal, its screen kept by a vt100 parser.
struct Dashboard {
    parser: Arc<Mutex<vt100::Parser>>,
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    _master: Box<dyn MasterPty + Send>,
}

impl Dashboard {
    fn attach(run_dir: &Path, rows: u16, cols: u16) -> Dashboard {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_orchard"));
        cmd.args(["attach", run_dir.to_str().unwrap()]);
        cmd.env("TERM", "xterm-256color");
        // No user keymap from the machine running the tests.
        cmd.env("XDG_CONFIG_HOME", run_dir.join("no-config"));
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let feed = parser.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        Dashboard {
            parser,
            child,
            writer,
            _master: pair.master,
        }
    }

    fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(WAIT);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not on screen within {WAIT}s; screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn press(&mut self, keys: &[u8]) {
        self.writer.write_all(keys).unwrap();
        self.writer.flush().unwrap();
    }

    /// Wait for the dashboard process to end; its exit status.
    fn wait_exit(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(WAIT);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard did not exit; screen:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Kills the background run if the test ends early, so no orphan trains on.
struct RunProcess(i32);

impl Drop for RunProcess {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2) of the pid this test started.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}

fn events_text(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap_or_default()
}

fn batch_count(run_dir: &Path) -> usize {
    events_text(run_dir).matches("\"event\":\"batch\"").count()
}

/// Wait until `cond` holds on the event log.
fn wait_log(run_dir: &Path, what: &str, cond: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(WAIT);
    while !cond(&events_text(run_dir)) {
        assert!(Instant::now() < deadline, "not within {WAIT}s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_detached(run_dir: &Path) -> (RunProcess, String) {
    let (code, stdout, stderr) = run(&[
        "train",
        "--detach",
        "--data",
        demo().to_str().unwrap(),
        "--limit",
        "60",
        "--k",
        "3",
        "--fold",
        "0",
        "--epochs",
        "200",
        "--size",
        "32",
        "--bs",
        "4",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let pid: i32 = stdout
        .split("as process ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in:\n{stdout}"));
    (RunProcess(pid), stdout)
}

#[test]
fn a_detached_run_survives_a_hung_up_dashboard_and_takes_new_ones() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let (_process, stdout) = start_detached(&run_dir);
    assert!(
        stdout.contains(&format!("run directory: {}", run_dir.display())),
        "{stdout}"
    );
    assert!(stdout.contains("orchard attach"), "{stdout}");
    // The detached command returned only once the run listens.
    assert!(run_dir.join("control.sock").exists());

    let mut first = Dashboard::attach(&run_dir, 24, 80);
    first.wait_for("RUNNING");
    wait_log(&run_dir, "a first batch", |log| log.contains("\"batch\""));
    // SIGHUP, as a terminal sends when the SSH connection drops.
    let pid = first.child.process_id().expect("dashboard pid") as i32;
    // SAFETY: a plain kill(2) of the dashboard this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    first.wait_exit();

    // The run goes on: new batches arrive after the dashboard is gone.
    let before = batch_count(&run_dir);
    wait_log(&run_dir, "new batches after the hangup", |log| {
        log.matches("\"event\":\"batch\"").count() > before + 2
    });
    assert!(!events_text(&run_dir).contains("\"stopping\""));

    // A second dashboard sees the live run, its history included.
    let mut second = Dashboard::attach(&run_dir, 40, 120);
    second.wait_for("RUNNING");
    // The replayed history includes the first validation's confusion matrix.
    second.wait_for("right (diagonal)");
    second.wait_for("? help");
    if let Some(out) = std::env::var_os("ORCHARD_FRAME_OUT") {
        // For the README: a real frame of an attached dashboard.
        std::fs::write(PathBuf::from(out), second.text()).unwrap();
    }
    // Resuming a run that is running is refused before anything starts.
    let (code, _, stderr) = run(&["train", "--resume", run_dir.to_str().unwrap(), "--detach"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("still running"), "{stderr}");
    // q leaves an attached dashboard at once, and the run keeps going.
    second.press(b"q");
    assert!(second.wait_exit().success());
    let before = batch_count(&run_dir);
    wait_log(&run_dir, "batches after q", |log| {
        log.matches("\"event\":\"batch\"").count() > before + 2
    });
    assert!(!events_text(&run_dir).contains("\"stopping\""));

    // Stopped over the socket, as any client may: the run ends and its
    // socket goes away.
    let mut socket = std::os::unix::net::UnixStream::connect(run_dir.join("control.sock")).unwrap();
    socket.write_all(b"{\"command\":\"stop\"}\n").unwrap();
    wait_log(&run_dir, "the run ended", |log| {
        log.contains("\"run_ended\"")
    });
    let deadline = Instant::now() + Duration::from_secs(WAIT);
    while run_dir.join("control.sock").exists() {
        assert!(Instant::now() < deadline, "control.sock was not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(events_text(&run_dir).contains("\"status\":\"stopped\""));

    // Attaching to the finished run shows its history.
    let mut late = Dashboard::attach(&run_dir, 24, 80);
    late.wait_for("STOPPED");
    late.press(b"q");
    assert!(late.wait_exit().success());
}

#[test]
fn attaching_to_a_killed_run_shows_its_history_despite_a_stale_socket() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let (process, _) = start_detached(&run_dir);
    wait_log(&run_dir, "a first batch", |log| log.contains("\"batch\""));
    // Killed hard: the socket file stays behind, nobody answers on it.
    drop(process);
    let deadline = Instant::now() + Duration::from_secs(WAIT);
    while std::os::unix::net::UnixStream::connect(run_dir.join("control.sock")).is_ok() {
        assert!(Instant::now() < deadline, "the killed run still answers");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(run_dir.join("control.sock").exists());

    let mut dashboard = Dashboard::attach(&run_dir, 24, 80);
    dashboard.wait_for("history only");
    dashboard.press(b"q");
    assert!(dashboard.wait_exit().success());

    // The stale socket does not stop a resume either: the resumed run listens
    // on a fresh one and obeys a stop sent there.
    let (code, stdout, stderr) = run(&["train", "--resume", run_dir.to_str().unwrap(), "--detach"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let pid: i32 = stdout
        .split("as process ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in:\n{stdout}"));
    let _resumed = RunProcess(pid);
    let mut socket = std::os::unix::net::UnixStream::connect(run_dir.join("control.sock")).unwrap();
    socket.write_all(b"{\"command\":\"stop\"}\n").unwrap();
    wait_log(&run_dir, "the resumed run ended", |log| {
        log.contains("\"status\":\"stopped\"")
    });
}
