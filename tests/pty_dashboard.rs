//! End to end in a pseudo-terminal: the real binary opens the dashboard, space
//! pauses (PAUSED appears once the engine acknowledges), q asks whether to stop,
//! y stops the run, and the terminal is handed back.

mod common;
use common::*;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("{needle:?} not on screen within {secs}s; screen:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn dashboard_pauses_and_stops_in_a_pty() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_orchard"));
    cmd.args([
        "train",
        "--data",
        demo().to_str().unwrap(),
        "--limit",
        "60",
        "--k",
        "3",
        "--fold",
        "0",
        "--epochs",
        "20",
        "--size",
        "32",
        "--bs",
        "4",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let parser = Arc::new(Mutex::new(vt100::Parser::new(40, 120, 0)));
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
    let screen = Screen { parser };

    screen.wait_for("RUNNING", 60);
    // Wait until training is really under way (a batch has been drawn).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap_or_default()
        .contains("\"batch\"")
    {
        assert!(Instant::now() < deadline, "no batch within 60s");
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.write_all(b" ").unwrap();
    writer.flush().unwrap();
    screen.wait_for("PAUSED", 30);

    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    screen.wait_for("Stop the run?", 10);
    writer.write_all(b"y").unwrap();
    writer.flush().unwrap();

    // The dashboard exits once the engine reports the run ended.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not exit; screen:\n{}",
            screen.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");

    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(events.contains("\"paused\""), "{events}");
    assert!(events.contains("\"stopping\""), "{events}");
    assert!(events.contains("\"status\":\"stopped\""), "{events}");
    // The terminal was handed back: the alternate screen is left.
    assert!(!screen.parser.lock().unwrap().screen().alternate_screen());
}

/// A dropped SSH connection: the terminal hangs up (SIGHUP) and goes away.
/// The run a dashboard started itself trains on without a screen, writes its
/// run directory to the end and exits normally.
#[test]
fn a_hung_up_dashboard_keeps_its_run_training_to_the_end() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_orchard"));
    cmd.args([
        "train",
        "--data",
        demo().to_str().unwrap(),
        "--limit",
        "60",
        "--k",
        "3",
        "--fold",
        "0",
        "--epochs",
        "3",
        "--size",
        "32",
        "--bs",
        "4",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let parser = Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0)));
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
    let screen = Screen { parser };
    screen.wait_for("RUNNING", 60);
    let events = || std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !events().contains("\"batch\"") {
        assert!(Instant::now() < deadline, "no batch within 60s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection drops: SIGHUP, and the terminal is gone for good.
    let pid = child.process_id().expect("pid") as i32;
    // SAFETY: a plain kill(2) of the process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    drop(pair.master);

    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end; events:\n{}",
            events()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "exit status {status:?}");
    let log = events();
    assert!(log.contains("\"status\":\"completed\""), "{log}");
    assert!(!log.contains("\"stopping\""), "{log}");
    assert_eq!(log.matches("\"event\":\"epoch_ended\"").count(), 3, "{log}");
    assert!(run_dir.join("checkpoints/fold0.safetensors").is_file());
    // What the process still had to say went to the run's output.log.
    let output = std::fs::read_to_string(run_dir.join("output.log")).unwrap_or_default();
    assert!(output.contains("run finished"), "output.log:\n{output}");
}
