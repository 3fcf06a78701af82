//! The table of keys. The handler looks actions up here and the help overlay
//! and footer are printed from here, so they cannot disagree.
//!
//! Every action can be rebound in a TOML keymap file (`--keymap FILE`, else
//! `~/.config/orchard/keymap.toml` when it exists). A file lists only what it
//! changes; each listed action gets exactly the keys given:
//!
//! ```toml
//! [main]
//! toggle_pause = ["space", "p"]
//! stop_run = "ctrl-s"
//!
//! [stop_question]
//! confirm_stop = ["y", "enter"]
//! ```

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a key asks the dashboard to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pause a running run, resume a paused one.
    TogglePause,
    /// Leave the dashboard (a run this dashboard started asks to stop it first).
    Quit,
    /// Ask to stop the run, from any dashboard.
    StopRun,
    /// Raise label correction's threshold by one step.
    ThetaUp,
    /// Lower label correction's threshold by one step.
    ThetaDown,
    /// Progressive resizing: go to the next size at the next epoch boundary.
    ResizeNow,
    /// Show the next pane where panes share a place as tabs.
    NextTab,
    /// Show the previous one.
    PrevTab,
    /// The loss pane: log scale on/off.
    ToggleLogScale,
    /// The PLC log: older / newer corrections.
    PlcOlder,
    PlcNewer,
    ToggleHelp,
    CloseOverlay,
    /// "yes" in the stop question.
    ConfirmStop,
    /// "no" in the stop question.
    CancelStop,
    /// Open the mislabeled-item viewer.
    OpenViewer,
    /// Viewer: the next / previous item of the list.
    NextItem,
    PrevItem,
    /// Viewer: switch between the highest losses and PLC's corrections.
    SwitchList,
    /// Viewer: the suggested label (PLC's, or the prediction) is right.
    AcceptLabel,
    /// Viewer: the label in the data is right.
    RejectLabel,
    /// Viewer: choose another class from the class list.
    SetClass,
    CloseViewer,
    /// Class list: move the cursor, take the class, or close the list.
    NextClass,
    PrevClass,
    ChooseClass,
    CancelClass,
}

/// Where a binding applies: the stop question takes the keyboard while open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Main,
    ConfirmStop,
    /// The mislabeled-item viewer.
    Viewer,
    /// The class list the viewer opens to set another class.
    ClassPicker,
}

impl Context {
    /// Every context, in the order help lists them.
    pub const ALL: [Context; 4] = [
        Context::Main,
        Context::ConfirmStop,
        Context::Viewer,
        Context::ClassPicker,
    ];
}

impl Context {
    /// The section name in a keymap file.
    pub fn section(self) -> &'static str {
        match self {
            Context::Main => "main",
            Context::ConfirmStop => "stop_question",
            Context::Viewer => "viewer",
            Context::ClassPicker => "class_list",
        }
    }
}

/// One key: a code plus the modifiers that must be held (Shift is ignored for
/// characters, because terminals disagree on whether `?` or `Y` carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

/// Named keys of the keymap file, besides single characters.
const NAMED_KEYS: &[(&str, KeyCode)] = &[
    ("space", KeyCode::Char(' ')),
    ("esc", KeyCode::Esc),
    ("enter", KeyCode::Enter),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
];

const KEY_NAME_FIX: &str = "a single character (q, +, ?), a name (space, esc, enter, tab, backtab, backspace, up, down, left, right, pageup, pagedown, home, end, f1..f12), optionally after ctrl- or alt-";

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

    /// Parse a key as written in a keymap file: `q`, `space`, `ctrl-c`, `f5`.
    pub fn parse(text: &str) -> Option<Key> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        // "-" alone is the minus key, not an empty modifier.
        while rest.len() > 1 {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                modifiers |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                modifiers |= KeyModifiers::ALT;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if let Some((_, code)) = NAMED_KEYS.iter().find(|(n, _)| *n == lower) {
                    *code
                } else {
                    let n: u8 = lower.strip_prefix('f')?.parse().ok()?;
                    if !(1..=12).contains(&n) {
                        return None;
                    }
                    KeyCode::F(n)
                }
            }
        };
        Some(Key { code, modifiers })
    }

    /// The key as help and footer write it (and as a keymap file accepts it).
    pub fn name(&self) -> String {
        let mut name = String::new();
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            name.push_str("ctrl-");
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            name.push_str("alt-");
        }
        match self.code {
            KeyCode::F(n) => name.push_str(&format!("f{n}")),
            KeyCode::Char(c) if c != ' ' => name.push(c),
            code => {
                let word = NAMED_KEYS
                    .iter()
                    .find(|(_, k)| *k == code)
                    .map_or("?", |(n, _)| n);
                name.push_str(word);
            }
        }
        name
    }
}

/// What the program knows about an action: where it applies, its name in a
/// keymap file, its words in footer and help, and its default keys.
#[derive(Debug, Clone, Copy)]
pub struct ActionInfo {
    pub action: Action,
    pub context: Context,
    /// The name in a keymap file.
    pub name: &'static str,
    /// A word or two for the footer; empty = not in the footer.
    pub hint: &'static str,
    /// A sentence for the help overlay.
    pub help: &'static str,
    pub default_keys: &'static [Key],
}

/// Every action, in the order help lists them.
pub const ACTIONS: &[ActionInfo] = &[
    ActionInfo {
        action: Action::TogglePause,
        context: Context::Main,
        name: "toggle_pause",
        hint: "pause/resume",
        help: "pause training between two batches, or resume it",
        default_keys: &[Key::plain(' ')],
    },
    ActionInfo {
        action: Action::Quit,
        context: Context::Main,
        name: "quit",
        hint: "quit",
        help: "leave; a run this dashboard started asks to stop first",
        default_keys: &[Key::plain('q'), Key::ctrl('c')],
    },
    ActionInfo {
        action: Action::StopRun,
        context: Context::Main,
        name: "stop_run",
        hint: "",
        help: "stop the run (asks first), also from `orchard attach`",
        default_keys: &[Key::plain('s')],
    },
    ActionInfo {
        action: Action::ThetaUp,
        context: Context::Main,
        name: "theta_up",
        hint: "",
        help: "raise label correction's theta by one step",
        default_keys: &[Key::plain('+'), Key::plain('=')],
    },
    ActionInfo {
        action: Action::ThetaDown,
        context: Context::Main,
        name: "theta_down",
        hint: "",
        help: "lower label correction's theta by one step",
        default_keys: &[Key::plain('-')],
    },
    ActionInfo {
        action: Action::ResizeNow,
        context: Context::Main,
        name: "resize_now",
        hint: "",
        help: "go to the next image size at the next epoch",
        default_keys: &[Key::plain('r')],
    },
    ActionInfo {
        action: Action::NextTab,
        context: Context::Main,
        name: "next_tab",
        hint: "",
        help: "next pane where panes share a place (tabs)",
        default_keys: &[
            Key::code(KeyCode::Tab),
            Key::code(KeyCode::Right),
            Key::plain('j'),
        ],
    },
    // `l` of hjkl is the log scale (the issue asks for both); h and k go back.
    ActionInfo {
        action: Action::PrevTab,
        context: Context::Main,
        name: "prev_tab",
        hint: "",
        help: "previous pane where panes share a place (tabs)",
        default_keys: &[
            Key::code(KeyCode::BackTab),
            Key::code(KeyCode::Left),
            Key::plain('h'),
            Key::plain('k'),
        ],
    },
    ActionInfo {
        action: Action::ToggleLogScale,
        context: Context::Main,
        name: "log_scale",
        hint: "",
        help: "loss chart: log scale on/off",
        default_keys: &[Key::plain('l')],
    },
    ActionInfo {
        action: Action::PlcOlder,
        context: Context::Main,
        name: "plc_older",
        hint: "",
        help: "label-correction log: scroll to older corrections",
        default_keys: &[Key::plain('['), Key::code(KeyCode::PageUp)],
    },
    ActionInfo {
        action: Action::PlcNewer,
        context: Context::Main,
        name: "plc_newer",
        hint: "",
        help: "label-correction log: scroll to newer corrections",
        default_keys: &[Key::plain(']'), Key::code(KeyCode::PageDown)],
    },
    ActionInfo {
        action: Action::ToggleHelp,
        context: Context::Main,
        name: "toggle_help",
        hint: "help",
        help: "show or hide this help",
        default_keys: &[Key::plain('?')],
    },
    ActionInfo {
        action: Action::CloseOverlay,
        context: Context::Main,
        name: "close_overlay",
        hint: "",
        help: "close this help",
        default_keys: &[Key::code(KeyCode::Esc)],
    },
    ActionInfo {
        action: Action::ConfirmStop,
        context: Context::ConfirmStop,
        name: "confirm_stop",
        hint: "stop",
        help: "stop: this epoch validates, a checkpoint is written",
        default_keys: &[Key::plain('y'), Key::plain('Y')],
    },
    ActionInfo {
        action: Action::CancelStop,
        context: Context::ConfirmStop,
        name: "cancel_stop",
        hint: "keep training",
        help: "keep training",
        default_keys: &[Key::plain('n'), Key::plain('N'), Key::code(KeyCode::Esc)],
    },
    ActionInfo {
        action: Action::OpenViewer,
        context: Context::Main,
        name: "open_viewer",
        hint: "",
        help: "mislabeled-item viewer: highest losses, PLC's corrections",
        default_keys: &[Key::plain('m')],
    },
    ActionInfo {
        action: Action::NextItem,
        context: Context::Viewer,
        name: "next_item",
        hint: "",
        help: "next item",
        default_keys: &[Key::code(KeyCode::Down), Key::plain('j')],
    },
    ActionInfo {
        action: Action::PrevItem,
        context: Context::Viewer,
        name: "prev_item",
        hint: "",
        help: "previous item",
        default_keys: &[Key::code(KeyCode::Up), Key::plain('k')],
    },
    ActionInfo {
        action: Action::SwitchList,
        context: Context::Viewer,
        name: "switch_list",
        hint: "other list",
        help: "switch lists: highest losses / PLC's corrections",
        default_keys: &[Key::code(KeyCode::Tab)],
    },
    ActionInfo {
        action: Action::AcceptLabel,
        context: Context::Viewer,
        name: "accept",
        hint: "accept",
        help: "accept the suggested label (PLC's, or the prediction)",
        default_keys: &[Key::plain('a')],
    },
    ActionInfo {
        action: Action::RejectLabel,
        context: Context::Viewer,
        name: "reject",
        hint: "reject",
        help: "reject it: the label in the data stays",
        default_keys: &[Key::plain('x')],
    },
    ActionInfo {
        action: Action::SetClass,
        context: Context::Viewer,
        name: "set_class",
        hint: "set class",
        help: "choose another class from the class list",
        default_keys: &[Key::plain('c')],
    },
    ActionInfo {
        action: Action::CloseViewer,
        context: Context::Viewer,
        name: "close_viewer",
        hint: "close",
        help: "back to the dashboard",
        default_keys: &[Key::code(KeyCode::Esc), Key::plain('m'), Key::plain('q')],
    },
    ActionInfo {
        action: Action::NextClass,
        context: Context::ClassPicker,
        name: "next_class",
        hint: "",
        help: "next class",
        default_keys: &[Key::code(KeyCode::Down), Key::plain('j')],
    },
    ActionInfo {
        action: Action::PrevClass,
        context: Context::ClassPicker,
        name: "prev_class",
        hint: "",
        help: "previous class",
        default_keys: &[Key::code(KeyCode::Up), Key::plain('k')],
    },
    ActionInfo {
        action: Action::ChooseClass,
        context: Context::ClassPicker,
        name: "choose_class",
        hint: "set",
        help: "set the item's label to this class",
        default_keys: &[Key::code(KeyCode::Enter)],
    },
    ActionInfo {
        action: Action::CancelClass,
        context: Context::ClassPicker,
        name: "cancel_class",
        hint: "cancel",
        help: "close the class list without a change",
        default_keys: &[Key::code(KeyCode::Esc)],
    },
];

/// One action and the keys bound to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub info: ActionInfo,
    pub keys: Vec<Key>,
}

impl PartialEq for ActionInfo {
    fn eq(&self, other: &Self) -> bool {
        self.action == other.action
    }
}

impl Binding {
    /// How the keys are written in help: "q, ctrl-c" ("unbound" when none).
    pub fn label(&self) -> String {
        if self.keys.is_empty() {
            return "unbound".into();
        }
        self.keys
            .iter()
            .map(Key::name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The keys of every action, defaults overridden by a keymap file.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            bindings: ACTIONS
                .iter()
                .map(|info| Binding {
                    info: *info,
                    keys: info.default_keys.to_vec(),
                })
                .collect(),
        }
    }
}

impl Keymap {
    /// The action bound to `event` in `context`, if any.
    pub fn action_for(&self, context: Context, event: &KeyEvent) -> Option<Action> {
        self.bindings_in(context)
            .find(|b| b.keys.iter().any(|k| k.matches(event)))
            .map(|b| b.info.action)
    }

    /// The bindings of one context, in table order.
    pub fn bindings_in(&self, context: Context) -> impl Iterator<Item = &Binding> {
        self.bindings
            .iter()
            .filter(move |b| b.info.context == context)
    }

    /// The keymap of `--keymap FILE` if given, else of the user's
    /// `keymap.toml` if there is one, else the defaults.
    pub fn resolve(flag: Option<&Path>) -> Result<Keymap> {
        match flag {
            Some(path) => Keymap::load(path),
            None => match user_keymap_path().filter(|p| p.is_file()) {
                Some(path) => Keymap::load(&path),
                None => Ok(Keymap::default()),
            },
        }
    }

    pub fn load(path: &Path) -> Result<Keymap> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Keymap::from_toml(&text, &path.display().to_string())
    }

    /// The defaults with the actions of `text` rebound; `origin` names the
    /// file in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Keymap> {
        let bad = |place: &str, what: String, fix: &str| {
            Error::input(format!("{origin}: {place}: {what}\nfix: {fix}"))
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::input(format!(
                "{origin}: not valid TOML: {}\nfix: see the keymap example in the README",
                e.message()
            ))
        })?;
        let mut keymap = Keymap::default();
        for (section, entries) in &table {
            let context = Context::ALL
                .into_iter()
                .find(|c| c.section() == section)
                .ok_or_else(|| {
                    bad(
                        &format!("[{section}]"),
                        "unknown section".into(),
                        "use [main], [stop_question], [viewer] or [class_list]",
                    )
                })?;
            let entries = entries.as_table().ok_or_else(|| {
                bad(
                    section,
                    "must be a section of `action = [keys]`".into(),
                    "write it as [main] with lines below it",
                )
            })?;
            for (name, value) in entries {
                let place = format!("[{section}] {name}");
                let names: Vec<&str> = keymap.bindings_in(context).map(|b| b.info.name).collect();
                let binding = keymap
                    .bindings
                    .iter_mut()
                    .find(|b| b.info.context == context && b.info.name == name)
                    .ok_or_else(|| {
                        bad(
                            &place,
                            "unknown action".into(),
                            &format!("the actions of [{section}] are {}", names.join(", ")),
                        )
                    })?;
                let texts: Vec<&str> = match value {
                    toml::Value::String(s) => vec![s.as_str()],
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            bad(
                                &place,
                                "every key must be a string".into(),
                                "write keys as strings, e.g. [\"q\", \"ctrl-c\"]",
                            )
                        })?,
                    _ => {
                        return Err(bad(
                            &place,
                            "must be a key or a list of keys".into(),
                            "write e.g. [\"q\", \"ctrl-c\"], or [] to unbind",
                        ));
                    }
                };
                binding.keys = texts
                    .iter()
                    .map(|t| {
                        Key::parse(t)
                            .ok_or_else(|| bad(&place, format!("{t:?} is not a key"), KEY_NAME_FIX))
                    })
                    .collect::<Result<_>>()?;
            }
        }
        keymap.check_conflicts(origin)?;
        Ok(keymap)
    }

    /// One key, one action per context: otherwise a press would be ambiguous.
    fn check_conflicts(&self, origin: &str) -> Result<()> {
        for context in Context::ALL {
            let bindings: Vec<&Binding> = self.bindings_in(context).collect();
            for (i, a) in bindings.iter().enumerate() {
                for b in &bindings[i + 1..] {
                    if let Some(key) = a.keys.iter().find(|k| b.keys.contains(k)) {
                        return Err(Error::input(format!(
                            "{origin}: [{}] the key {:?} is bound to both {} and {}\nfix: give one of them another key (a default counts too: rebind it)",
                            context.section(),
                            key.name(),
                            a.info.name,
                            b.info.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `$XDG_CONFIG_HOME/orchard/keymap.toml`, else `~/.config/orchard/keymap.toml`.
pub fn user_keymap_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("orchard").join("keymap.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    fn plain(c: char) -> KeyEvent {
        key(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn main_keys_map_to_actions() {
        let k = Keymap::default();
        let main = Context::Main;
        assert_eq!(k.action_for(main, &plain(' ')), Some(Action::TogglePause));
        assert_eq!(k.action_for(main, &plain('q')), Some(Action::Quit));
        assert_eq!(
            k.action_for(main, &key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        // '?' and '+' usually arrive with Shift held.
        assert_eq!(
            k.action_for(main, &key(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::ToggleHelp)
        );
        assert_eq!(
            k.action_for(main, &key(KeyCode::Char('+'), KeyModifiers::SHIFT)),
            Some(Action::ThetaUp)
        );
        assert_eq!(k.action_for(main, &plain('-')), Some(Action::ThetaDown));
        assert_eq!(k.action_for(main, &plain('r')), Some(Action::ResizeNow));
        assert_eq!(k.action_for(main, &plain('s')), Some(Action::StopRun));
    }

    #[test]
    fn plain_c_and_ctrl_q_are_not_bound() {
        let k = Keymap::default();
        assert_eq!(k.action_for(Context::Main, &plain('c')), None);
        assert_eq!(
            k.action_for(
                Context::Main,
                &key(KeyCode::Char('q'), KeyModifiers::CONTROL)
            ),
            None
        );
    }

    #[test]
    fn stop_question_keys_only_apply_in_their_context() {
        let k = Keymap::default();
        assert_eq!(
            k.action_for(Context::ConfirmStop, &plain('y')),
            Some(Action::ConfirmStop)
        );
        assert_eq!(k.action_for(Context::Main, &plain('y')), None);
        let esc = key(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(
            k.action_for(Context::ConfirmStop, &esc),
            Some(Action::CancelStop)
        );
        // Space must not pause behind the question.
        assert_eq!(k.action_for(Context::ConfirmStop, &plain(' ')), None);
    }

    #[test]
    fn every_action_has_a_name_help_and_default_keys() {
        for info in ACTIONS {
            assert!(!info.default_keys.is_empty(), "{:?}", info.action);
            assert!(!info.help.is_empty() && !info.name.is_empty());
        }
        // The defaults themselves have no conflicts.
        Keymap::default().check_conflicts("defaults").unwrap();
    }

    #[test]
    fn key_names_parse_and_print_back() {
        for text in [
            "q", "space", "ctrl-c", "alt-x", "f5", "esc", "tab", "+", "-",
        ] {
            let k = Key::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(k.name(), text);
        }
        assert_eq!(Key::parse("ENTER"), Some(Key::code(KeyCode::Enter)));
        for bad in ["", "spce", "f13", "ctrl-", "qq"] {
            assert_eq!(Key::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_keymap_file_rebinds_only_what_it_lists() {
        let k = Keymap::from_toml(
            "[main]\ntoggle_pause = [\"p\", \"space\"]\nstop_run = \"ctrl-s\"\n[stop_question]\nconfirm_stop = [\"enter\"]\n",
            "keymap.toml",
        )
        .unwrap();
        assert_eq!(
            k.action_for(Context::Main, &plain('p')),
            Some(Action::TogglePause)
        );
        assert_eq!(k.action_for(Context::Main, &plain('s')), None);
        assert_eq!(
            k.action_for(
                Context::Main,
                &key(KeyCode::Char('s'), KeyModifiers::CONTROL)
            ),
            Some(Action::StopRun)
        );
        assert_eq!(k.action_for(Context::Main, &plain('q')), Some(Action::Quit));
        assert_eq!(k.action_for(Context::ConfirmStop, &plain('y')), None);
        assert_eq!(
            k.action_for(
                Context::ConfirmStop,
                &key(KeyCode::Enter, KeyModifiers::NONE)
            ),
            Some(Action::ConfirmStop)
        );
    }

    fn error_of(text: &str) -> String {
        let e = Keymap::from_toml(text, "my-keys.toml").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        e.to_string()
    }

    #[test]
    fn bad_keymaps_name_the_file_the_key_and_the_fix() {
        let e = error_of("[main]\njump = \"j\"\n");
        assert!(
            e.starts_with("my-keys.toml: [main] jump: unknown action"),
            "{e}"
        );
        assert!(
            e.contains("fix: the actions of [main] are toggle_pause"),
            "{e}"
        );

        let e = error_of("[main]\nquit = \"spce\"\n");
        assert!(e.contains("[main] quit: \"spce\" is not a key"), "{e}");
        assert!(e.contains("fix: a single character"), "{e}");

        let e = error_of("[keys]\nquit = \"x\"\n");
        assert!(e.contains("[keys]: unknown section"), "{e}");

        let e = error_of("[main]\nquit = 3\n");
        assert!(e.contains("must be a key or a list of keys"), "{e}");

        // `p` for quit while toggle_pause keeps space and gets `p` too.
        let e = error_of("[main]\nquit = \"p\"\ntoggle_pause = [\"p\"]\n");
        assert!(
            e.contains("the key \"p\" is bound to both toggle_pause and quit"),
            "{e}"
        );
        // A default that is not rebound conflicts as well.
        let e = error_of("[main]\nquit = \"space\"\n");
        assert!(e.contains("toggle_pause and quit"), "{e}");

        let e = error_of("[main\n");
        assert!(e.contains("my-keys.toml: not valid TOML"), "{e}");
    }
}
