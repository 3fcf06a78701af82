//! Progressive label correction log. PLC is not implemented yet, so the pane
//! says so plainly instead of showing an empty box.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::pane_block;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let block = pane_block("label correction", theme);
    let theta = match app.theta {
        Some(t) => format!("theta {t:.2} (set from the dashboard)"),
        None => format!("theta {:.2} (start)", app.theta_keys.start),
    };
    let text = vec![
        Line::from(Span::styled(
            format!("{theta} · keys step it by {:.2}", app.theta_keys.step),
            theme.text,
        )),
        Line::from(Span::styled("Label correction (PLC) is off.", theme.text)),
        Line::from(Span::styled(
            "Corrected labels will be listed here when a run uses it.",
            theme.muted,
        )),
    ];
    frame.render_widget(
        Paragraph::new(text).block(block).wrap(Wrap { trim: true }),
        area,
    );
}
