//! Bottom line: the most important message on the left, key hints on the right.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::keymap::{Context, Keymap};
use crate::tui::state::{App, EndStatus, RunState};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, keymap: &Keymap) {
    let hints = hint_line(theme, keymap);
    let hints_width = u16::try_from(hints.width()).unwrap_or(u16::MAX);
    let [message_area, hints_area] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(hints_width)]).areas(area);
    if let Some((text, style)) = message(app, theme) {
        frame.render_widget(Paragraph::new(Span::styled(text, style)), message_area);
    }
    frame.render_widget(Paragraph::new(hints), hints_area);
}

/// "space pause/resume  q quit  ? help", from the key table (first key of each).
fn hint_line(theme: &Theme, keymap: &Keymap) -> Line<'static> {
    let mut spans = Vec::new();
    for binding in keymap
        .bindings_in(Context::Main)
        .filter(|b| !b.info.hint.is_empty())
    {
        let Some(key) = binding.keys.first() else {
            continue;
        };
        spans.push(Span::styled(format!(" {}", key.name()), theme.key));
        spans.push(Span::styled(
            format!(" {} ", binding.info.hint),
            theme.muted,
        ));
    }
    Line::from(spans)
}

/// What the user most needs to know now, by priority.
fn message(app: &App, theme: &Theme) -> Option<(String, Style)> {
    if let RunState::Ended(status) = app.state {
        let style = match status {
            EndStatus::Completed => theme.success,
            EndStatus::Stopped => theme.muted,
            EndStatus::Failed => theme.error,
        };
        let what = app.end_message.as_deref().unwrap_or_default();
        let status = app.state.label().to_lowercase();
        return Some((format!(" run {status}: {what} · q leaves"), style));
    }
    if app.engine_gone && app.attached {
        return Some((
            " not running: its history only (nobody answers on control.sock) · q leaves".into(),
            theme.muted,
        ));
    }
    if app.engine_gone {
        return Some((
            " the engine stopped sending events · q leaves".into(),
            theme.error,
        ));
    }
    if app.stop_requested {
        return Some((
            " stopping after this epoch · q again leaves now".into(),
            theme.pending,
        ));
    }
    let last = app.warnings.last()?;
    let more = match app.warnings.len() {
        0 | 1 => String::new(),
        n => format!(" (+{} earlier)", n - 1),
    };
    Some((format!(" ⚠ {last}{more}"), theme.warning))
}
