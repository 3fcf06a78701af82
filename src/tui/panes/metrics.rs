//! fastai's per-epoch table: epoch, train_loss, valid_loss, accuracy, time.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{metric, pane_block};
use crate::tui::eta::format_clock;
use crate::tui::state::{App, EpochRow};
use crate::tui::theme::Theme;

const HEADERS: [&str; 5] = ["epoch", "train_loss", "valid_loss", "accuracy", "time"];

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let title = match app.fold {
        Some(fold) => format!("metrics · fold {fold}"),
        None => "metrics".to_string(),
    };
    let block = pane_block(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows: Vec<&EpochRow> = app.current_fold_epochs().collect();
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no epoch has ended yet", theme.muted)),
            inner,
        );
        return;
    }
    // Newest epochs win when the pane is short (one line goes to the header).
    let fit = usize::from(inner.height.saturating_sub(1));
    let shown = &rows[rows.len().saturating_sub(fit)..];
    let body = shown.iter().map(|row| {
        Row::new(
            [
                row.epoch.to_string(),
                metric(row.train_loss),
                metric(row.valid_loss),
                metric(row.accuracy),
                format_clock(row.seconds),
            ]
            .map(|text| Cell::from(Line::from(text).right_aligned())),
        )
        .style(theme.text)
    });
    let header = Row::new(HEADERS.map(|h| Cell::from(Line::from(h).right_aligned())))
        .style(theme.table_header);
    let widths = [
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(5),
    ];
    frame.render_widget(Table::new(body, widths).header(header), inner);
}
