//! The dashboard's loop: keys, engine events and a render tick, one `select!`.
//!
//! Drawing happens only on the tick and only when something changed, so a
//! burst of events (replaying a long events.jsonl, fast batches) costs one
//! frame per tick, at most ten a second.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::MissedTickBehavior;

use super::images::{ImagePane, QUERY_TIMEOUT, query_picker};
use super::input::handle_key;
use super::keymap::Keymap;
use super::state::{App, Overlay, ThetaKeys};
use super::terminal::{TerminalGuard, redirect_output};
use super::theme::{ColorSupport, Theme};
use super::ui::draw_with_images;
use crate::run::reviews::{append_review, read_corrections};
use crate::run::{Command, Stamped};

/// How a dashboard looks and behaves, beside the run it shows.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    pub theme: Theme,
    /// Most redraws a second.
    pub fps: u32,
    pub keymap: Keymap,
    /// Watching a run another process started (`orchard attach`): `q`
    /// leaves without stopping it, and a closed event stream is its history.
    pub attached: bool,
    pub theta_keys: ThetaKeys,
    /// The run directory as this process reaches it: the viewer's reviews
    /// go to its corrections.csv, and a lost terminal's messages to its
    /// output.log. None: no reviews are written.
    pub run_dir: Option<PathBuf>,
    /// Image id -> image file of the run's data, for the viewer.
    pub image_paths: Arc<HashMap<String, PathBuf>>,
}

/// Why the dashboard returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardExit {
    /// The user left, or the run ended and the user left after it.
    Left,
    /// The terminal went away (SIGHUP, its input closed). A dashboard that
    /// runs its own engine returns only once the run has ended, having kept
    /// training without a screen; an attached one returns at once.
    TerminalLost,
}

/// The shortest time between two frames for `fps` redraws a second at most.
fn frame_interval(fps: u32) -> Duration {
    Duration::from_millis(1000 / u64::from(fps.clamp(1, 60)))
}

/// Show the dashboard until the user leaves: after the run ended (`q`), after a
/// confirmed stop once `RunEnded` arrives, or at once with `q` while stopping.
///
/// `events` is the engine's stream; `commands` goes to the engine. The theme is
/// shown as the terminal can (RGB colours become ANSI ones without true
/// colour, see `ColorSupport::detect`). The terminal is restored on return, on
/// error and on panic.
///
/// A lost terminal (a dropped SSH connection sends SIGHUP; its input ends)
/// never stops the run: the dashboard stops drawing, points its output away
/// from the dead terminal, and (when it is not attached) keeps taking the
/// engine's events until the run ends.
pub async fn run_dashboard(
    mut events: UnboundedReceiver<Stamped>,
    commands: Sender<Command>,
    options: DashboardOptions,
) -> io::Result<DashboardExit> {
    // Before the terminal is taken: from here on a hangup cannot kill us.
    let mut hangup = signal(SignalKind::hangup())?;
    let theme = options.theme.for_terminal(ColorSupport::detect());
    let keymap = options.keymap;
    let mut guard = Some(TerminalGuard::enter()?);
    // The terminal is asked about images before anything else reads its keys.
    let mut images = ImagePane::new(query_picker(QUERY_TIMEOUT));
    let mut app = App::default();
    app.attached = options.attached;
    app.theta_keys = options.theta_keys;
    app.image_paths = options.image_paths;
    let run_dir = options.run_dir;
    let mut keys = Some(EventStream::new());
    let mut tick = tokio::time::interval(frame_interval(options.fps));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut events_open = true;
    let mut corrections = CorrectionsSync::default();
    let mut lost = false;

    loop {
        if lost {
            if !events_open || app.attached {
                break;
            }
        } else if app.should_exit() {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if !lost => {
                dirty |= corrections.sync(&mut app, run_dir.as_deref());
                if dirty && let Some(guard) = guard.as_mut() {
                    guard.terminal.draw(|frame| {
                        draw_with_images(frame, &app, &theme, &keymap, Some(&mut images));
                    })?;
                    dirty = false;
                }
            }
            _ = hangup.recv(), if !lost => {
                lost = true;
                release_lost_terminal(run_dir.as_deref(), &mut keys, &mut guard);
            }
            key = next_key(&mut keys), if keys.is_some() => match key {
                Some(Ok(TermEvent::Key(key))) if key.kind == KeyEventKind::Press => {
                    if let Some(command) = handle_key(&mut app, &keymap, &key)
                        && commands.send(command).is_err()
                    {
                        // The engine dropped its receiver: nothing will answer.
                        app.engine_disconnected();
                    }
                    // Reviews are written at once, not at the next frame.
                    corrections.sync(&mut app, run_dir.as_deref());
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                // The terminal's input closed or failed: it is gone, like
                // after a hangup (which may still be on its way).
                Some(Err(_)) | None => {
                    lost = true;
                    release_lost_terminal(run_dir.as_deref(), &mut keys, &mut guard);
                }
            },
            event = events.recv(), if events_open => {
                match event {
                    Some(event) => app.apply(&event),
                    None => {
                        events_open = false;
                        app.engine_disconnected();
                        // The engine died without saying the run ended (a panic, a
                        // crash): leave, so the caller can report what happened.
                        // An attached dashboard stays: the history is worth a look.
                        if !lost && !app.state.is_ended() && !app.attached {
                            break;
                        }
                    }
                }
                dirty = true;
            }
        }
    }
    Ok(if lost {
        DashboardExit::TerminalLost
    } else {
        DashboardExit::Left
    })
}

/// The next terminal event; only polled while `keys` is there.
async fn next_key(keys: &mut Option<EventStream>) -> Option<io::Result<TermEvent>> {
    match keys {
        Some(keys) => keys.next().await,
        None => None,
    }
}

/// The terminal is gone: stop reading and drawing it, and send whatever is
/// still printed (the terminal's restore, messages) where it cannot fail.
fn release_lost_terminal(
    run_dir: Option<&std::path::Path>,
    keys: &mut Option<EventStream>,
    guard: &mut Option<TerminalGuard>,
) {
    *keys = None;
    redirect_output(run_dir.map(|d| d.join("output.log")).as_deref());
    // Restoring writes to the (now redirected) output: harmless.
    *guard = None;
}

/// Keeps `App::corrections_file` in step with `RUN_DIR/corrections.csv`
/// while the viewer is open, and writes the viewer's reviews.
#[derive(Default)]
struct CorrectionsSync {
    /// `App::corrections_total` when the file was last read; None: never
    /// read, or the viewer was closed since.
    read_at: Option<usize>,
}

impl CorrectionsSync {
    /// Write queued reviews; re-read the file when the viewer opened or PLC
    /// changed labels since. True when the screen changed.
    fn sync(&mut self, app: &mut App, run_dir: Option<&std::path::Path>) -> bool {
        let Some(run_dir) = run_dir else {
            app.reviews_out.clear();
            return false;
        };
        let mut changed = false;
        for review in std::mem::take(&mut app.reviews_out) {
            if let Err(e) = append_review(run_dir, &review) {
                app.viewer.message = Some(format!("the review was not saved: {e}"));
            }
            // Read back below, with what other dashboards wrote meanwhile.
            self.read_at = None;
            changed = true;
        }
        if app.overlay != Overlay::Viewer {
            self.read_at = None;
            return changed;
        }
        if self.read_at != Some(app.corrections_total) {
            self.read_at = Some(app.corrections_total);
            match read_corrections(run_dir) {
                Ok(file) => app.corrections_file = file,
                Err(e) => app.viewer.message = Some(e.to_string()),
            }
            changed = true;
        }
        changed
    }
}

/// The name of the thread the dashboard runs on (`run_dashboard_blocking`).
pub const UI_THREAD: &str = "orchard-ui";

/// `run_dashboard` on a current-thread tokio runtime of its own, for callers
/// that are not async. Must not be called from inside a tokio runtime.
///
/// It runs on a thread named `UI_THREAD`, and the caller waits for it: so
/// the dashboard's CPU time can be told apart from training's in
/// `/proc/PID/task/*/stat` (benches/dashboard_overhead.rs measures it so).
/// On Linux a thread inherits its creator's name, so the thread crossterm
/// starts to wait for keys is counted with the dashboard too.
pub fn run_dashboard_blocking(
    events: UnboundedReceiver<Stamped>,
    commands: Sender<Command>,
    options: DashboardOptions,
) -> io::Result<DashboardExit> {
    let ui = std::thread::Builder::new()
        .name(UI_THREAD.into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(UI_THREAD)
                .build()?
                .block_on(run_dashboard(events, commands, options))
        })?;
    // A panic of the dashboard stays a panic of the caller, as before.
    ui.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
