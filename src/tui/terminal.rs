//! Taking over the terminal and giving it back, on every way out.
//!
//! `TerminalGuard` enters raw mode and the alternate screen and restores both
//! when dropped (normal return, `?` error). A panic unwinds through the guard
//! too, but only after the panic message was printed into the alternate
//! screen, where it vanishes; so a panic hook restores the terminal first and
//! then runs the previous hook, and the message lands on the normal screen.

use std::io::{self, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// True while a guard holds the terminal; the panic hook does nothing otherwise,
/// so a later panic in a plain CLI command prints no stray escape codes.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// The terminal in dashboard mode; restores it when dropped.
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = enable_raw_mode()
            .and_then(|()| execute!(io::stdout(), EnterAlternateScreen, Hide))
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(err) => {
                // Half-entered (e.g. raw mode on, alternate screen failed): undo.
                restore();
                Err(err)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave raw mode and the alternate screen, show the cursor. Safe to call twice.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Errors are ignored: this runs while leaving, often while panicking,
        // and there is nobody left to report them to.
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

/// Point stdin and stdout at /dev/null and stderr at `log` (appended; else
/// /dev/null too), for a process whose terminal is gone: every later write
/// (the terminal's restore, a message, a panic's report) then succeeds
/// instead of failing on the dead terminal, and nothing waits on its input.
pub fn redirect_output(log: Option<&std::path::Path>) {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    let err = log
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .or_else(|| null.as_ref().ok().and_then(|f| f.try_clone().ok()));
    // SAFETY: dup2 onto the standard descriptors, with descriptors this
    // function holds open for the duration of the calls.
    unsafe {
        if let Ok(null) = &null {
            libc::dup2(null.as_raw_fd(), libc::STDIN_FILENO);
            libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
        }
        if let Some(err) = &err {
            libc::dup2(err.as_raw_fd(), libc::STDERR_FILENO);
        }
    }
}

/// Chain a terminal-restoring hook in front of whatever hook was there, once.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
