//! The "Stop the run?" question, opened by `q` (or `s`), answers from the keymap.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::pane_block;
use crate::tui::keymap::{Context, Keymap};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap) {
    let mut answers = vec![Span::raw(" ")];
    for binding in keymap.bindings_in(Context::ConfirmStop) {
        let Some(key) = binding.keys.first() else {
            continue;
        };
        answers.push(Span::styled(key.name(), theme.key));
        answers.push(Span::styled(
            format!(" {}   ", binding.info.hint),
            theme.muted,
        ));
    }
    let lines = vec![
        Line::from(Span::styled(" Stop the run?", theme.title)),
        Line::from(Span::styled(
            " The current epoch finishes and a checkpoint is written.",
            theme.text,
        )),
        Line::default(),
        Line::from(answers),
    ];
    let popup = area.centered(Constraint::Max(62), Constraint::Max(6));
    frame.render_widget(Clear, popup);
    // Clear resets to the terminal's colours; themes with a background repaint it.
    frame.buffer_mut().set_style(popup, theme.background);
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block("stop", theme).border_style(theme.warning))
            .wrap(Wrap { trim: false }),
        popup,
    );
}
