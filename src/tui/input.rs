//! What a key press does to the dashboard, and which command it sends.
//!
//! Kept apart from the terminal loop so tests can press keys on an `App`.

use crossterm::event::KeyEvent;

use crate::run::Command;

use super::keymap::{Action, Context, Keymap};
use super::state::{App, Overlay, RunState};

/// `app.tab` counts modulo this, a multiple of every tab count up to 16
/// (their least common multiple), so stepping back from 0 lands on the last
/// tab whatever the layout.
const TAB_CYCLE: usize = 720_720;

/// Apply a key to the state; returns the command to send to the engine, if any.
/// How many rows `[` / `]` move the PLC log.
const PLC_PAGE: usize = 5;

pub fn handle_key(app: &mut App, keymap: &Keymap, key: &KeyEvent) -> Option<Command> {
    let context = match app.overlay {
        Overlay::ConfirmStop => Context::ConfirmStop,
        Overlay::Viewer if app.viewer.picking.is_some() => Context::ClassPicker,
        Overlay::Viewer => Context::Viewer,
        Overlay::None | Overlay::Help => Context::Main,
    };
    let action = keymap.action_for(context, key)?;
    handle_action(app, action)
}

/// Apply an action (from a key, or from a test) to the state.
pub fn handle_action(app: &mut App, action: Action) -> Option<Command> {
    match action {
        Action::TogglePause => toggle_pause(app),
        // An attached dashboard only watches: leaving it leaves the run alone.
        Action::Quit if app.attached => {
            app.quit = true;
            None
        }
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
        Action::StopRun => {
            if !app.run_is_over() && !app.stop_requested {
                app.overlay = Overlay::ConfirmStop;
            }
            None
        }
        Action::ThetaUp => set_theta(app, 1.0),
        Action::ThetaDown => set_theta(app, -1.0),
        Action::ResizeNow => send_once(app, Command::ResizeNow { size: None }),
        Action::NextTab => {
            app.tab = (app.tab + 1) % TAB_CYCLE;
            None
        }
        Action::PrevTab => {
            app.tab = (app.tab % TAB_CYCLE + TAB_CYCLE - 1) % TAB_CYCLE;
            None
        }
        Action::ToggleLogScale => {
            app.log_scale = !app.log_scale;
            None
        }
        Action::PlcOlder => {
            let last = app.corrections.len().saturating_sub(1);
            app.plc_scroll = (app.plc_scroll + PLC_PAGE).min(last);
            None
        }
        Action::PlcNewer => {
            app.plc_scroll = app.plc_scroll.saturating_sub(PLC_PAGE);
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
        Action::OpenViewer
        | Action::NextItem
        | Action::PrevItem
        | Action::SwitchList
        | Action::AcceptLabel
        | Action::RejectLabel
        | Action::SetClass
        | Action::CloseViewer
        | Action::NextClass
        | Action::PrevClass
        | Action::ChooseClass
        | Action::CancelClass => {
            super::viewer::handle(app, action);
            None
        }
    }
}

fn toggle_pause(app: &mut App) -> Option<Command> {
    let command = match app.state {
        RunState::Running => Command::Pause,
        RunState::Paused => Command::Resume,
        RunState::Waiting | RunState::Stopping | RunState::Ended(_) => return None,
    };
    send_once(app, command)
}

/// Theta one step up (`direction` 1) or down (-1) from the last acknowledged
/// value (or the configured start), kept in [0, 1].
fn set_theta(app: &mut App, direction: f64) -> Option<Command> {
    let keys = app.theta_keys;
    let from = app.theta.unwrap_or(keys.start);
    // Rounded so that repeated steps of 0.05 read 0.85, not 0.8500000000000001.
    let theta = ((from + direction * keys.step).clamp(0.0, 1.0) * 1e6).round() / 1e6;
    send_once(app, Command::SetTheta { theta })
}

/// Send `command` unless another one is still waiting for its answer: a
/// second press before the engine has answered would only queue a
/// contradiction (or a step from a value the engine has not confirmed).
fn send_once(app: &mut App, command: Command) -> Option<Command> {
    let live = matches!(app.state, RunState::Running | RunState::Paused);
    if app.pending.is_some() || app.stop_requested || !live || app.engine_gone {
        return None;
    }
    app.pending = Some(command.clone());
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Event;
    use crate::tui::state::ThetaKeys;
    use crate::tui::state::tests::{run_started, stamped};
    use crossterm::event::{KeyCode, KeyModifiers};

    fn press(app: &mut App, c: char) -> Option<Command> {
        handle_key(
            app,
            &Keymap::default(),
            &KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
        )
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
    fn tabs_step_both_ways_and_l_toggles_the_log_scale() {
        let mut app = App::from_events(&[run_started(0.0)]);
        press(&mut app, 'h');
        // Back from the first tab is the last one, for any number of tabs.
        for n in [2, 3, 5, 7] {
            assert_eq!(app.tab % n, n - 1);
        }
        press(&mut app, 'j');
        assert_eq!(app.tab, 0);
        let right = KeyEvent::new(KeyCode::Right, KeyModifiers::NONE);
        handle_key(&mut app, &Keymap::default(), &right);
        assert_eq!(app.tab, 1);
        assert!(!app.log_scale);
        press(&mut app, 'l');
        assert!(app.log_scale);
        press(&mut app, 'l');
        assert!(!app.log_scale);
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
        handle_key(
            &mut app,
            &Keymap::default(),
            &KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        );
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
            &Keymap::default(),
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

    #[test]
    fn plus_and_minus_step_theta_from_the_acknowledged_value() {
        let mut app = App::from_events(&[run_started(0.0)]);
        app.theta_keys = ThetaKeys {
            start: 0.9,
            step: 0.05,
            ..ThetaKeys::default()
        };
        assert_eq!(
            press(&mut app, '+'),
            Some(Command::SetTheta { theta: 0.95 })
        );
        assert_eq!(press(&mut app, '+'), None, "one step in flight at a time");
        app.apply(&stamped(
            1.0,
            Event::ThetaSet {
                step: 2,
                theta: 0.95,
            },
        ));
        assert_eq!(app.pending, None);
        assert_eq!(press(&mut app, '+'), Some(Command::SetTheta { theta: 1.0 }));
        app.apply(&stamped(
            2.0,
            Event::ThetaSet {
                step: 3,
                theta: 1.0,
            },
        ));
        assert_eq!(
            press(&mut app, '+'),
            Some(Command::SetTheta { theta: 1.0 }),
            "kept at most 1"
        );
        app.apply(&stamped(
            3.0,
            Event::ThetaSet {
                step: 4,
                theta: 1.0,
            },
        ));
        assert_eq!(
            press(&mut app, '-'),
            Some(Command::SetTheta { theta: 0.95 })
        );
    }

    #[test]
    fn r_requests_a_resize_pending_until_acknowledged() {
        let mut app = App::from_events(&[run_started(0.0)]);
        assert_eq!(
            press(&mut app, 'r'),
            Some(Command::ResizeNow { size: None })
        );
        assert_eq!(app.pending, Some(Command::ResizeNow { size: None }));
        assert_eq!(
            press(&mut app, ' '),
            None,
            "the resize waits for its answer"
        );
        app.apply(&stamped(
            1.0,
            Event::ResizeRequested {
                step: 4,
                size: None,
            },
        ));
        assert_eq!(app.pending, None);
    }

    #[test]
    fn steering_keys_do_nothing_before_the_start_or_after_the_end() {
        let mut app = App::default();
        assert_eq!(press(&mut app, '+'), None);
        assert_eq!(press(&mut app, 'r'), None);
        app.apply(&run_started(0.0));
        app.apply(&stamped(
            1.0,
            Event::RunEnded {
                status: "completed".into(),
                message: String::new(),
            },
        ));
        assert_eq!(press(&mut app, '-'), None);
        assert_eq!(press(&mut app, 's'), None);
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn an_attached_dashboard_leaves_on_q_and_stops_only_on_s_then_y() {
        let mut app = App::from_events(&[run_started(0.0)]);
        app.attached = true;
        assert_eq!(press(&mut app, 'q'), None);
        assert!(app.should_exit(), "q leaves at once, the run goes on");

        let mut app = App::from_events(&[run_started(0.0)]);
        app.attached = true;
        assert_eq!(press(&mut app, 's'), None);
        assert_eq!(app.overlay, Overlay::ConfirmStop);
        assert_eq!(press(&mut app, 'y'), Some(Command::Stop));
    }
}
