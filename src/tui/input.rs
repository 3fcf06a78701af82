//! What a key press does to the dashboard, and which command it sends.
//!
//! Kept apart from the terminal loop so tests can press keys on an `App`.

use crossterm::event::KeyEvent;

use crate::run::Command;

use super::keymap::{Action, Context, action_for};
use super::state::{App, Overlay, RunState};

/// Apply a key to the state; returns the command to send to the engine, if any.
pub fn handle_key(app: &mut App, key: &KeyEvent) -> Option<Command> {
    let context = match app.overlay {
        Overlay::ConfirmStop => Context::ConfirmStop,
        Overlay::None | Overlay::Help => Context::Main,
    };
    let action = action_for(context, key)?;
    handle_action(app, action)
}

/// Apply an action (from a key, or from a test) to the state.
pub fn handle_action(app: &mut App, action: Action) -> Option<Command> {
    match action {
        Action::TogglePause => toggle_pause(app),
        Action::Quit => {
            if app.run_is_over() || app.stop_requested {
                // Nothing left to stop, or a stop is already on its way and the
                // user does not want to wait for the epoch to finish: leave now.
                app.quit = true;
            } else {
                app.overlay = Overlay::ConfirmStop;
            }
            None
        }
        Action::ToggleHelp => {
            app.overlay = match app.overlay {
                Overlay::Help => Overlay::None,
                _ => Overlay::Help,
            };
            None
        }
        Action::CloseOverlay => {
            app.overlay = Overlay::None;
            None
        }
        Action::ConfirmStop => {
            app.overlay = Overlay::None;
            if app.run_is_over() {
                // The run ended while the question was open.
                app.quit = true;
                return None;
            }
            app.stop_requested = true;
            app.pending = Some(Command::Stop);
            Some(Command::Stop)
        }
        Action::CancelStop => {
            app.overlay = Overlay::None;
            None
        }
    }
}

fn toggle_pause(app: &mut App) -> Option<Command> {
    // One command in flight at a time: a second press before the engine has
    // answered would only queue a contradiction.
    if app.pending.is_some() || app.stop_requested {
        return None;
    }
    let command = match app.state {
        RunState::Running => Command::Pause,
        RunState::Paused => Command::Resume,
        RunState::Waiting | RunState::Stopping | RunState::Ended(_) => return None,
    };
    app.pending = Some(command.clone());
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Event;
    use crate::tui::state::tests::{run_started, stamped};
    use crossterm::event::{KeyCode, KeyModifiers};

    fn press(app: &mut App, c: char) -> Option<Command> {
        handle_key(app, &KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    #[test]
    fn space_pauses_once_until_acknowledged() {
        let mut app = App::from_events(&[run_started(0.0)]);
        assert_eq!(press(&mut app, ' '), Some(Command::Pause));
        assert_eq!(app.pending, Some(Command::Pause));
        assert_eq!(app.state, RunState::Running, "the badge waits for the ack");
        assert_eq!(press(&mut app, ' '), None, "no second command in flight");
        app.apply(&stamped(1.0, Event::Paused { step: 3 }));
        assert_eq!(app.pending, None);
        assert_eq!(press(&mut app, ' '), Some(Command::Resume));
    }

    #[test]
    fn q_asks_then_y_stops_and_the_end_exits() {
        let mut app = App::from_events(&[run_started(0.0)]);
        assert_eq!(press(&mut app, 'q'), None);
        assert_eq!(app.overlay, Overlay::ConfirmStop);
        assert_eq!(
            press(&mut app, ' '),
            None,
            "space is not bound in the question"
        );
        assert_eq!(press(&mut app, 'y'), Some(Command::Stop));
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.should_exit());
        app.apply(&stamped(1.0, Event::Stopping { step: 3 }));
        assert_eq!(app.state, RunState::Stopping);
        app.apply(&stamped(
            2.0,
            Event::RunEnded {
                status: "stopped".into(),
                message: "stopped by the user".into(),
            },
        ));
        assert!(app.should_exit());
    }

    #[test]
    fn n_and_esc_close_the_question() {
        let mut app = App::from_events(&[run_started(0.0)]);
        press(&mut app, 'q');
        assert_eq!(press(&mut app, 'n'), None);
        assert_eq!(app.overlay, Overlay::None);
        press(&mut app, 'q');
        handle_key(&mut app, &KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.stop_requested);
    }

    #[test]
    fn q_after_the_end_exits_directly() {
        let mut app = App::from_events(&[
            run_started(0.0),
            stamped(
                1.0,
                Event::RunEnded {
                    status: "completed".into(),
                    message: String::new(),
                },
            ),
        ]);
        press(&mut app, 'q');
        assert!(app.quit);
        assert!(app.should_exit());
    }

    #[test]
    fn ctrl_c_behaves_like_q() {
        let mut app = App::from_events(&[run_started(0.0)]);
        handle_key(
            &mut app,
            &KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        );
        assert_eq!(app.overlay, Overlay::ConfirmStop);
    }

    #[test]
    fn question_mark_toggles_help() {
        let mut app = App::default();
        press(&mut app, '?');
        assert_eq!(app.overlay, Overlay::Help);
        press(&mut app, '?');
        assert_eq!(app.overlay, Overlay::None);
    }
}
