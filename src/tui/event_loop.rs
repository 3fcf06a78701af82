//! The dashboard's loop: keys, engine events and a render tick, one `select!`.
//!
//! Drawing happens only on the tick and only when something changed, so a
//! burst of events (replaying a long events.jsonl, fast batches) costs one
//! frame per tick, at most ten a second.

use std::io;
use std::sync::mpsc::Sender;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::MissedTickBehavior;

use super::input::handle_key;
use super::keymap::Keymap;
use super::state::{App, ThetaKeys};
use super::terminal::TerminalGuard;
use super::theme::{ColorSupport, Theme};
use super::ui::draw_with_keymap;
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
pub async fn run_dashboard(
    mut events: UnboundedReceiver<Stamped>,
    commands: Sender<Command>,
    options: DashboardOptions,
) -> io::Result<()> {
    let theme = options.theme.for_terminal(ColorSupport::detect());
    let keymap = options.keymap;
    let mut guard = TerminalGuard::enter()?;
    let mut app = App::default();
    app.attached = options.attached;
    app.theta_keys = options.theta_keys;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(frame_interval(options.fps));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut events_open = true;

    while !app.should_exit() {
        tokio::select! {
            _ = tick.tick() => {
                if dirty {
                    guard.terminal.draw(|frame| draw_with_keymap(frame, &app, &theme, &keymap))?;
                    dirty = false;
                }
            }
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) if key.kind == KeyEventKind::Press => {
                    if let Some(command) = handle_key(&mut app, &keymap, &key)
                        && commands.send(command).is_err()
                    {
                        // The engine dropped its receiver: nothing will answer.
                        app.engine_disconnected();
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                // The terminal's input closed; there is no way to steer any more.
                None => break,
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
                        if !app.state.is_ended() && !app.attached {
                            break;
                        }
                    }
                }
                dirty = true;
            }
        }
    }
    Ok(())
}

/// `run_dashboard` on a current-thread tokio runtime of its own, for callers
/// that are not async. Must not be called from inside a tokio runtime.
pub fn run_dashboard_blocking(
    events: UnboundedReceiver<Stamped>,
    commands: Sender<Command>,
    options: DashboardOptions,
) -> io::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_dashboard(events, commands, options))
}
