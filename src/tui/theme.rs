//! Every colour and text attribute the dashboard uses, by role.
//!
//! Panes never name a colour: they ask for a role (`theme.border`,
//! `theme.state(..)`), so a later theme file only has to fill this struct.
//! The default uses the 16 ANSI colours only, because those survive SSH, tmux
//! and terminals without true-colour support, and follow the user's palette.

use ratatui::style::{Color, Modifier, Style};

use super::state::{EndStatus, RunState};

/// Styles by role. Fields are public so a theme loader can override any of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Ordinary text.
    pub text: Style,
    /// Secondary text: labels, units, hints.
    pub muted: Style,
    /// Pane borders.
    pub border: Style,
    /// Pane titles.
    pub title: Style,
    /// Table header rows.
    pub table_header: Style,
    /// The row or item that is "now": the current fold, the latest epoch.
    pub current: Style,
    /// The filled part of the progress gauge.
    pub gauge: Style,
    /// The loss sparkline.
    pub loss: Style,
    /// The planned learning-rate curve.
    pub lr_curve: Style,
    /// The marker at the current step on the learning-rate curve.
    pub lr_marker: Style,
    /// Proportion bars in the data set pane.
    pub share_bar: Style,
    /// Key names in the footer and the help overlay.
    pub key: Style,
    /// Warnings.
    pub warning: Style,
    /// Errors and failed runs.
    pub error: Style,
    /// Good news: a run that completed.
    pub success: Style,
    /// A command sent but not yet acknowledged ("pausing…").
    pub pending: Style,
    /// State badge: training.
    pub state_running: Style,
    /// State badge: paused.
    pub state_paused: Style,
    /// State badge: a stop was acknowledged, the run ends after this epoch.
    pub state_stopping: Style,
    /// State badge: waiting for the first event, or a run that was stopped.
    pub state_idle: Style,
}

impl Theme {
    /// The default: the terminal's own 16 ANSI colours.
    pub fn ansi16() -> Self {
        let bold = Modifier::BOLD;
        Theme {
            text: Style::new(),
            muted: Style::new().fg(Color::DarkGray),
            border: Style::new().fg(Color::Gray),
            title: Style::new().fg(Color::Cyan).add_modifier(bold),
            table_header: Style::new().fg(Color::Yellow).add_modifier(bold),
            current: Style::new().fg(Color::LightCyan).add_modifier(bold),
            gauge: Style::new().fg(Color::Green).bg(Color::Black),
            loss: Style::new().fg(Color::LightMagenta),
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
        let roles = [
            t.text,
            t.muted,
            t.border,
            t.title,
            t.table_header,
            t.current,
            t.gauge,
            t.loss,
            t.lr_curve,
            t.lr_marker,
            t.share_bar,
            t.key,
            t.warning,
            t.error,
            t.success,
            t.pending,
            t.state_running,
            t.state_paused,
            t.state_stopping,
            t.state_idle,
        ];
        for style in roles {
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
}
