//! The one table of keys. The handler looks actions up here and the help
//! overlay and footer are printed from here, so they cannot disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks the dashboard to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pause a running run, resume a paused one.
    TogglePause,
    /// Ask to stop the run (or leave, once it has ended).
    Quit,
    ToggleHelp,
    CloseOverlay,
    /// "yes" in the stop question.
    ConfirmStop,
    /// "no" in the stop question.
    CancelStop,
}

/// Where a binding applies: the stop question takes the keyboard while open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Main,
    ConfirmStop,
}

/// One key: a code plus the modifiers that must be held (Shift is ignored for
/// characters, because terminals disagree on whether `?` or `Y` carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl Key {
    const fn plain(c: char) -> Self {
        Key {
            code: KeyCode::Char(c),
            modifiers: KeyModifiers::NONE,
        }
    }

    const fn ctrl(c: char) -> Self {
        Key {
            code: KeyCode::Char(c),
            modifiers: KeyModifiers::CONTROL,
        }
    }

    const fn code(code: KeyCode) -> Self {
        Key {
            code,
            modifiers: KeyModifiers::NONE,
        }
    }

    /// Whether a terminal key event is this key.
    pub fn matches(&self, event: &KeyEvent) -> bool {
        match (self.code, event.code) {
            (KeyCode::Char(want), KeyCode::Char(got)) => {
                let mut held = event.modifiers;
                held.remove(KeyModifiers::SHIFT);
                // With Ctrl held, terminals report the letter in either case.
                let same = if self.modifiers.contains(KeyModifiers::CONTROL) {
                    want.eq_ignore_ascii_case(&got)
                } else {
                    want == got
                };
                same && held == self.modifiers
            }
            (want, got) => want == got && event.modifiers == self.modifiers,
        }
    }
}

/// A row of the key table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    /// How the keys are written in help and footer.
    pub label: &'static str,
    /// A word or two for the footer; empty = not in the footer.
    pub hint: &'static str,
    /// A sentence for the help overlay.
    pub help: &'static str,
    pub action: Action,
}

/// Every key the dashboard knows.
pub const BINDINGS: &[Binding] = &[
    Binding {
        context: Context::Main,
        keys: &[Key::plain(' ')],
        label: "space",
        hint: "pause/resume",
        help: "pause training between two batches, or resume it",
        action: Action::TogglePause,
    },
    Binding {
        context: Context::Main,
        keys: &[Key::plain('q'), Key::ctrl('c')],
        label: "q, ctrl-c",
        hint: "stop",
        help: "stop the run (asks first); leave once it ended or is stopping",
        action: Action::Quit,
    },
    Binding {
        context: Context::Main,
        keys: &[Key::plain('?')],
        label: "?",
        hint: "help",
        help: "show or hide this help",
        action: Action::ToggleHelp,
    },
    Binding {
        context: Context::Main,
        keys: &[Key::code(KeyCode::Esc)],
        label: "esc",
        hint: "",
        help: "close this help",
        action: Action::CloseOverlay,
    },
    Binding {
        context: Context::ConfirmStop,
        keys: &[Key::plain('y'), Key::plain('Y')],
        label: "y",
        hint: "stop",
        help: "stop: the current epoch finishes and a checkpoint is written",
        action: Action::ConfirmStop,
    },
    Binding {
        context: Context::ConfirmStop,
        keys: &[Key::plain('n'), Key::plain('N'), Key::code(KeyCode::Esc)],
        label: "n, esc",
        hint: "keep training",
        help: "keep training",
        action: Action::CancelStop,
    },
];

/// The action bound to `event` in `context`, if any.
pub fn action_for(context: Context, event: &KeyEvent) -> Option<Action> {
    BINDINGS
        .iter()
        .filter(|b| b.context == context)
        .find(|b| b.keys.iter().any(|k| k.matches(event)))
        .map(|b| b.action)
}

/// The bindings of one context, in table order.
pub fn bindings_in(context: Context) -> impl Iterator<Item = &'static Binding> {
    BINDINGS.iter().filter(move |b| b.context == context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn main_keys_map_to_actions() {
        let none = KeyModifiers::NONE;
        assert_eq!(
            action_for(Context::Main, &key(KeyCode::Char(' '), none)),
            Some(Action::TogglePause)
        );
        assert_eq!(
            action_for(Context::Main, &key(KeyCode::Char('q'), none)),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(
                Context::Main,
                &key(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        );
        // '?' usually arrives with Shift held.
        assert_eq!(
            action_for(Context::Main, &key(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::ToggleHelp)
        );
    }

    #[test]
    fn plain_c_and_ctrl_q_are_not_bound() {
        assert_eq!(
            action_for(Context::Main, &key(KeyCode::Char('c'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            action_for(
                Context::Main,
                &key(KeyCode::Char('q'), KeyModifiers::CONTROL)
            ),
            None
        );
    }

    #[test]
    fn stop_question_keys_only_apply_in_their_context() {
        let y = key(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(
            action_for(Context::ConfirmStop, &y),
            Some(Action::ConfirmStop)
        );
        assert_eq!(action_for(Context::Main, &y), None);
        let esc = key(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(
            action_for(Context::ConfirmStop, &esc),
            Some(Action::CancelStop)
        );
        // Space must not pause behind the question.
        let space = key(KeyCode::Char(' '), KeyModifiers::NONE);
        assert_eq!(action_for(Context::ConfirmStop, &space), None);
    }

    #[test]
    fn every_binding_has_help_text_and_keys() {
        for b in BINDINGS {
            assert!(!b.keys.is_empty(), "{:?}", b.action);
            assert!(!b.help.is_empty() && !b.label.is_empty(), "{:?}", b.action);
        }
    }
}
