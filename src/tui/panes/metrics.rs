//! fastai's per-epoch table: epoch, train_loss, valid_loss, accuracy, roc_auc, time.
//!
//! When the pane is narrow, columns are left out by priority (valid loss and
//! accuracy stay longest) instead of being cut mid-number; roc_auc appears
//! only when a validation had one.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{metric, pane_block};
use crate::tui::eta::format_clock;
use crate::tui::state::{App, EpochRow};
use crate::tui::theme::Theme;

/// One column: header, width, priority (lower stays longer), value.
struct Column {
    header: &'static str,
    width: u16,
    priority: u8,
    value: fn(&EpochRow) -> String,
}

const COLUMNS: [Column; 6] = [
    Column {
        header: "epoch",
        width: 5,
        priority: 0,
        value: |r| r.epoch.to_string(),
    },
    Column {
        header: "train_loss",
        width: 10,
        priority: 4,
        value: |r| metric(r.train_loss),
    },
    Column {
        header: "valid_loss",
        width: 10,
        priority: 1,
        value: |r| metric(r.valid_loss),
    },
    Column {
        header: "accuracy",
        width: 8,
        priority: 1,
        value: |r| metric(r.accuracy),
    },
    Column {
        header: "roc_auc",
        width: 8,
        priority: 2,
        value: |r| r.roc_auc.map_or("—".to_string(), metric),
    },
    Column {
        header: "time",
        width: 5,
        priority: 3,
        value: |r| format_clock(r.seconds),
    },
];

/// The columns that fit in `width` (one space between columns), in table order.
fn visible_columns(width: u16, with_auc: bool) -> Vec<&'static Column> {
    let mut candidates: Vec<&Column> = COLUMNS
        .iter()
        .filter(|c| with_auc || c.header != "roc_auc")
        .collect();
    let total = |cols: &[&Column]| {
        cols.iter().map(|c| c.width).sum::<u16>() + cols.len().saturating_sub(1) as u16
    };
    while total(&candidates) > width && candidates.len() > 1 {
        let drop = candidates
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (c.priority, *i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        candidates.remove(drop);
    }
    candidates
}

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
    let with_auc = rows.iter().any(|r| r.roc_auc.is_some());
    let columns = visible_columns(inner.width, with_auc);
    // Newest epochs win when the pane is short (one line goes to the header).
    let fit = usize::from(inner.height.saturating_sub(1));
    let shown = &rows[rows.len().saturating_sub(fit)..];
    let body = shown.iter().map(|row| {
        Row::new(
            columns
                .iter()
                .map(|c| Cell::from(Line::from((c.value)(row)).right_aligned())),
        )
        .style(theme.text)
    });
    let header = Row::new(
        columns
            .iter()
            .map(|c| Cell::from(Line::from(c.header).right_aligned())),
    )
    .style(theme.table_header);
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| Constraint::Length(c.width))
        .collect();
    frame.render_widget(Table::new(body, widths).header(header), inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(width: u16, auc: bool) -> Vec<&'static str> {
        visible_columns(width, auc)
            .iter()
            .map(|c| c.header)
            .collect()
    }

    #[test]
    fn narrow_panes_drop_whole_columns_by_priority() {
        assert_eq!(
            headers(80, true),
            [
                "epoch",
                "train_loss",
                "valid_loss",
                "accuracy",
                "roc_auc",
                "time"
            ]
        );
        assert_eq!(
            headers(41, true),
            ["epoch", "valid_loss", "accuracy", "roc_auc", "time"]
        );
        assert_eq!(
            headers(35, true),
            ["epoch", "valid_loss", "accuracy", "roc_auc"]
        );
        assert_eq!(
            headers(41, false),
            ["epoch", "valid_loss", "accuracy", "time"]
        );
        assert_eq!(headers(3, true), ["epoch"]);
    }
}
