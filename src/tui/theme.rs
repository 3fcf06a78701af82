//! Every colour and text attribute the dashboard uses, by role.
//!
//! Panes never name a colour: they ask for a role (`theme.border`,
//! `theme.state(..)`), so a theme file (`theme_file`) only has to fill this
//! struct. The default uses the 16 ANSI colours only, because those survive
//! SSH, tmux and terminals without true-colour support, and follow the user's
//! palette.

use ratatui::style::{Color, Modifier, Style};

use super::state::{EndStatus, RunState};

/// Declares `Theme` and its list of role names from one list, so a role added
/// here is at once a struct field, a key theme files may set, and a role every
/// shipped theme is tested to define.
macro_rules! theme_roles {
    ($( $(#[$doc:meta])* $role:ident, )*) => {
        /// Styles by role. Fields are public so a theme loader can override any of them.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            $( $(#[$doc])* pub $role: Style, )*
        }

        impl Theme {
            /// Every role's name, as written in theme files, in declaration order.
            pub const ROLES: &'static [&'static str] = &[$(stringify!($role)),*];

            /// The style of a role by name; `None` for an unknown name.
            pub fn role(&self, name: &str) -> Option<Style> {
                match name {
                    $( stringify!($role) => Some(self.$role), )*
                    _ => None,
                }
            }

            /// The style of a role by name, to override it; `None` for an unknown name.
            pub fn role_mut(&mut self, name: &str) -> Option<&mut Style> {
                match name {
                    $( stringify!($role) => Some(&mut self.$role), )*
                    _ => None,
                }
            }

            /// Every role with its style, in declaration order.
            pub fn roles(&self) -> impl Iterator<Item = (&'static str, Style)> + '_ {
                [$( (stringify!($role), self.$role) ),*].into_iter()
            }
        }
    };
}

theme_roles! {
    /// The whole screen, painted before the panes: set a `bg` here for a
    /// theme that brings its own background (a light theme on a dark terminal).
    background,
    /// Ordinary text.
    text,
    /// Secondary text: labels, units, hints.
    muted,
    /// Pane borders.
    border,
    /// Pane titles.
    title,
    /// Table header rows.
    table_header,
    /// The row or item that is "now": the current fold, the latest epoch.
    current,
    /// The filled part of the progress gauge.
    gauge,
    /// The raw per-batch training loss: the loss chart's dim series (the noise
    /// under the smoothed curve) and the sparkline of the newest batches.
    loss,
    /// The loss chart's smoothed training loss (fastai's moving average).
    loss_smoothed,
    /// The loss chart's validation loss, one point per epoch.
    loss_valid,
    /// The planned learning-rate curve.
    lr_curve,
    /// The marker at the current step on the learning-rate curve.
    lr_marker,
    /// Proportion bars in the data set pane.
    share_bar,
    /// Key names in the footer and the help overlay.
    key,
    /// Warnings.
    warning,
    /// Errors and failed runs.
    error,
    /// Good news: a run that completed.
    success,
    /// A command sent but not yet acknowledged ("pausing…").
    pending,
    /// State badge: training.
    state_running,
    /// State badge: paused.
    state_paused,
    /// State badge: a stop was acknowledged, the run ends after this epoch.
    state_stopping,
    /// State badge: waiting for the first event, or a run that was stopped.
    state_idle,
}

impl Theme {
    /// The default: the terminal's own 16 ANSI colours.
    pub fn ansi16() -> Self {
        let bold = Modifier::BOLD;
        Theme {
            background: Style::new(),
            text: Style::new(),
            muted: Style::new().fg(Color::DarkGray),
            border: Style::new().fg(Color::Gray),
            title: Style::new().fg(Color::Cyan).add_modifier(bold),
            table_header: Style::new().fg(Color::Yellow).add_modifier(bold),
            current: Style::new().fg(Color::LightCyan).add_modifier(bold),
            gauge: Style::new().fg(Color::Green).bg(Color::Black),
            loss: Style::new().fg(Color::Magenta),
            loss_smoothed: Style::new().fg(Color::LightMagenta),
            loss_valid: Style::new().fg(Color::LightGreen),
            lr_curve: Style::new().fg(Color::Blue),
            lr_marker: Style::new().fg(Color::LightYellow),
            share_bar: Style::new().fg(Color::Cyan),
            key: Style::new().fg(Color::LightYellow).add_modifier(bold),
            warning: Style::new().fg(Color::Yellow),
            error: Style::new().fg(Color::LightRed).add_modifier(bold),
            success: Style::new().fg(Color::LightGreen).add_modifier(bold),
            pending: Style::new()
                .fg(Color::Yellow)
                .add_modifier(Modifier::ITALIC),
            state_running: Style::new()
                .fg(Color::Black)
                .bg(Color::Green)
                .add_modifier(bold),
            state_paused: Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(bold),
            state_stopping: Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(bold),
            state_idle: Style::new()
                .fg(Color::Black)
                .bg(Color::Gray)
                .add_modifier(bold),
        }
    }

    /// The badge style for a run state.
    pub fn state(&self, state: &RunState) -> Style {
        match state {
            RunState::Waiting => self.state_idle,
            RunState::Stopping => self.state_stopping,
            RunState::Running => self.state_running,
            RunState::Paused => self.state_paused,
            RunState::Ended(EndStatus::Completed) => self.success,
            RunState::Ended(EndStatus::Stopped) => self.state_idle,
            RunState::Ended(EndStatus::Failed) => self.error,
        }
    }
}

/// What colours the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSupport {
    /// 24-bit colour: RGB colours are sent as they are.
    TrueColor,
    /// Only the 16 ANSI colours are trusted: RGB colours are mapped to the nearest.
    Ansi16,
}

impl ColorSupport {
    /// True colour when `COLORTERM` says so (`truecolor` or `24bit`, the
    /// convention terminals and SSH/tmux setups that forward it follow);
    /// anything else gets the 16-colour fallback, which renders everywhere.
    pub fn detect() -> Self {
        Self::from_colorterm(std::env::var("COLORTERM").ok().as_deref())
    }

    /// The decision `detect` makes, for a given value of `COLORTERM`.
    pub fn from_colorterm(value: Option<&str>) -> Self {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "truecolor" || v == "24bit" => ColorSupport::TrueColor,
            _ => ColorSupport::Ansi16,
        }
    }
}

/// The 16 ANSI colours with the RGB values the mapping compares against: the
/// VGA palette (also the Linux console's), whose normal colours are the
/// "obvious" ones (pure red is `Red`, not `LightRed`). Real terminals differ a
/// little, but keep this order of dark/bright and hue.
const ANSI16: [(Color, [u8; 3]); 16] = [
    (Color::Black, [0, 0, 0]),
    (Color::Red, [170, 0, 0]),
    (Color::Green, [0, 170, 0]),
    (Color::Yellow, [170, 85, 0]),
    (Color::Blue, [0, 0, 170]),
    (Color::Magenta, [170, 0, 170]),
    (Color::Cyan, [0, 170, 170]),
    (Color::Gray, [170, 170, 170]),
    (Color::DarkGray, [85, 85, 85]),
    (Color::LightRed, [255, 85, 85]),
    (Color::LightGreen, [85, 255, 85]),
    (Color::LightYellow, [255, 255, 85]),
    (Color::LightBlue, [85, 85, 255]),
    (Color::LightMagenta, [255, 85, 255]),
    (Color::LightCyan, [85, 255, 255]),
    (Color::White, [255, 255, 255]),
];

/// The ANSI colour nearest to an RGB one.
///
/// Distance: the "redmean" weighted Euclidean distance in sRGB,
/// `(2 + r̄/256)·ΔR² + 4·ΔG² + (2 + (255 - r̄)/256)·ΔB²` with `r̄` the mean of the
/// two reds — a cheap approximation of perceived difference that weighs green
/// most, as the eye does, without converting to a perceptual colour space.
pub fn nearest_ansi16(r: u8, g: u8, b: u8) -> Color {
    let distance = |[r2, g2, b2]: [u8; 3]| {
        let mean_r = (f64::from(r) + f64::from(r2)) / 2.0;
        let dr = f64::from(r) - f64::from(r2);
        let dg = f64::from(g) - f64::from(g2);
        let db = f64::from(b) - f64::from(b2);
        (2.0 + mean_r / 256.0) * dr * dr
            + 4.0 * dg * dg
            + (2.0 + (255.0 - mean_r) / 256.0) * db * db
    };
    ANSI16
        .iter()
        .min_by(|a, b| distance(a.1).total_cmp(&distance(b.1)))
        .map(|&(colour, _)| colour)
        .unwrap_or(Color::Reset)
}

/// The RGB value of an xterm 256-colour index from 16 up (the 6x6x6 cube and
/// the grey ramp); indices below 16 are the ANSI colours themselves.
fn indexed_rgb(index: u8) -> Option<[u8; 3]> {
    match index {
        0..=15 => None,
        16..=231 => {
            let i = index - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + 40 * v };
            Some([level(i / 36), level((i / 6) % 6), level(i % 6)])
        }
        232..=255 => {
            let v = 8 + 10 * (index - 232);
            Some([v, v, v])
        }
    }
}

/// A colour the 16-colour terminal can show: RGB and 256-colour values become
/// the nearest ANSI colour; ANSI colours and `Reset` stay as they are.
pub fn to_ansi16(colour: Color) -> Color {
    match colour {
        Color::Rgb(r, g, b) => nearest_ansi16(r, g, b),
        Color::Indexed(i) => match indexed_rgb(i) {
            Some([r, g, b]) => nearest_ansi16(r, g, b),
            None => ANSI16[usize::from(i)].0,
        },
        other => other,
    }
}

impl Theme {
    /// This theme with every colour one of the 16 ANSI colours (see `to_ansi16`).
    pub fn to_ansi16(&self) -> Theme {
        let mut out = self.clone();
        for &name in Theme::ROLES {
            if let Some(style) = out.role_mut(name) {
                style.fg = style.fg.map(to_ansi16);
                style.bg = style.bg.map(to_ansi16);
                style.underline_color = style.underline_color.map(to_ansi16);
            }
        }
        out
    }

    /// This theme as the terminal can show it: unchanged with true colour,
    /// mapped to the 16 ANSI colours otherwise.
    pub fn for_terminal(&self, support: ColorSupport) -> Theme {
        match support {
            ColorSupport::TrueColor => self.clone(),
            ColorSupport::Ansi16 => self.to_ansi16(),
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::ansi16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every colour of the default theme is one of the 16 ANSI ones (or the
    /// terminal's default), never RGB or 256-colour, so it is safe over SSH.
    #[test]
    fn default_theme_uses_only_ansi16_colours() {
        let t = Theme::ansi16();
        for (_, style) in t.roles() {
            for colour in [style.fg, style.bg].into_iter().flatten() {
                assert!(
                    !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                    "{colour:?} is not an ANSI-16 colour"
                );
            }
        }
    }

    #[test]
    fn each_state_has_a_distinct_badge() {
        let t = Theme::ansi16();
        assert_ne!(t.state(&RunState::Running), t.state(&RunState::Paused));
        assert_ne!(t.state(&RunState::Paused), t.state(&RunState::Stopping));
        assert_eq!(t.state(&RunState::Ended(EndStatus::Failed)), t.error);
    }

    #[test]
    fn roles_list_matches_the_struct() {
        let t = Theme::ansi16();
        assert_eq!(t.roles().count(), Theme::ROLES.len());
        for &name in Theme::ROLES {
            assert!(t.role(name).is_some(), "{name}");
        }
        assert_eq!(t.role("no_such_role"), None);
        assert_eq!(t.role("title"), Some(t.title));
    }

    #[test]
    fn pure_colours_map_to_the_obvious_ansi_colour() {
        assert_eq!(nearest_ansi16(255, 0, 0), Color::Red);
        assert_eq!(nearest_ansi16(0, 255, 0), Color::Green);
        assert_eq!(nearest_ansi16(0, 0, 255), Color::Blue);
        assert_eq!(nearest_ansi16(255, 255, 255), Color::White);
        assert_eq!(nearest_ansi16(0, 0, 0), Color::Black);
        assert_eq!(nearest_ansi16(255, 255, 0), Color::LightYellow);
        assert_eq!(nearest_ansi16(100, 100, 100), Color::DarkGray);
        assert_eq!(to_ansi16(Color::Indexed(196)), Color::Red);
        assert_eq!(to_ansi16(Color::Indexed(9)), Color::LightRed);
        assert_eq!(to_ansi16(Color::Reset), Color::Reset);
    }

    #[test]
    fn fallback_leaves_no_rgb_and_detection_reads_colorterm() {
        let mut t = Theme::ansi16();
        t.title = t
            .title
            .fg(Color::Rgb(0x89, 0xb4, 0xfa))
            .bg(Color::Indexed(236));
        let mapped = t.for_terminal(ColorSupport::Ansi16);
        for (_, style) in mapped.roles() {
            for colour in [style.fg, style.bg].into_iter().flatten() {
                assert!(!matches!(colour, Color::Rgb(..) | Color::Indexed(_)));
            }
        }
        assert_eq!(mapped.title.add_modifier, t.title.add_modifier);
        assert_eq!(t.for_terminal(ColorSupport::TrueColor), t);
        for (value, want) in [
            (Some("truecolor"), ColorSupport::TrueColor),
            (Some("24bit"), ColorSupport::TrueColor),
            (Some("256color"), ColorSupport::Ansi16),
            (None, ColorSupport::Ansi16),
        ] {
            assert_eq!(ColorSupport::from_colorterm(value), want, "{value:?}");
        }
    }
}
