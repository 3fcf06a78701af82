//! `orchard train --detach`: the run goes on in a background process that a
//! closed terminal or a dropped SSH connection cannot reach.
//!
//! The background process is this binary again (`train --resume RUN_DIR
//! --headless` on the directory this process has just prepared), started in a
//! session of its own (`setsid`), so the terminal's hangup signal is never
//! sent to it, with its output in `RUN_DIR/output.log`. Dashboards come and go
//! through `RUN_DIR/control.sock` (`orchard attach`).

use crate::error::{Error, Result};
use crate::run::control::SOCKET_NAME;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long the background run may take to load its data and listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// Start the prepared run in `run_dir` in the background; return once it
/// listens on its control socket, so an `orchard attach` right after this
/// finds it live.
pub fn start_detached(run_dir: &Path) -> Result<()> {
    let socket = run_dir.join(SOCKET_NAME);
    // `--detach --resume` of a run that is still running: say so here, with
    // exit code 2, rather than as the background process's early death.
    if UnixStream::connect(&socket).is_ok() {
        return Err(Error::input(format!(
            "{}: this run is still running (it answers on {SOCKET_NAME})\nfix: watch it with `orchard attach {}`",
            run_dir.display(),
            run_dir.display()
        )));
    }
    let log_path = run_dir.join("output.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let log_for_stderr = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Internal(format!("cannot find this program to start it again: {e}")))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("train")
        .arg("--resume")
        .arg(run_dir)
        .arg("--headless")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr);
    // SAFETY: runs in the forked child before exec; setsid is async-signal-safe
    // and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::Internal(format!("cannot start the background run: {e}")))?;
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if UnixStream::connect(&socket).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::Internal(format!(
                "the background run ended at once ({status}); {}:\n{}",
                log_path.display(),
                output.trim_end()
            )));
        }
        if Instant::now() > deadline {
            eprintln!(
                "warning: the background run does not listen on {} yet; see {}",
                socket.display(),
                log_path.display()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("run directory: {}", run_dir.display());
    println!(
        "running in the background as process {}; its output goes to {}",
        child.id(),
        log_path.display()
    );
    println!("watch and steer it: orchard attach {}", run_dir.display());
    Ok(())
}
