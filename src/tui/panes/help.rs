//! The `?` overlay: every key, printed from the key table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::pane_block;
use crate::tui::keymap::{Binding, Context, Keymap};
use crate::tui::theme::Theme;

/// The widest key label, so help sentences line up.
const KEY_COLUMN: usize = 10;

/// Every action with its keys, its sentence and its name in a keymap file.
pub fn render(frame: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap) {
    let mut lines: Vec<Line> = keymap
        .bindings_in(Context::Main)
        .map(|b| binding_line(b, theme))
        .collect();
    for (context, heading) in [
        (Context::ConfirmStop, "In the stop question:"),
        (Context::Viewer, "In the mislabeled-item viewer:"),
        (Context::ClassPicker, "In its class list:"),
    ] {
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(heading, theme.muted)));
        lines.extend(keymap.bindings_in(context).map(|b| binding_line(b, theme)));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        " [name]: the action's name in a keymap file (--keymap FILE)",
        theme.muted,
    )));

    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let popup = area.centered(Constraint::Max(110), Constraint::Max(height));
    frame.render_widget(Clear, popup);
    // Clear resets to the terminal's colours; themes with a background repaint it.
    frame.buffer_mut().set_style(popup, theme.background);
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block("keys · ? or esc closes", theme))
            .wrap(Wrap { trim: false }),
        popup,
    );
}

fn binding_line(binding: &Binding, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!(" {:>KEY_COLUMN$}  ", binding.label()), theme.key),
        Span::styled(binding.info.help, theme.text),
        Span::styled(format!(" [{}]", binding.info.name), theme.muted),
    ])
}
