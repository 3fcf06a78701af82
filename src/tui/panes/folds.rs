//! The stratified split: images per fold and class, the current fold marked,
//! and each finished fold's validation accuracy.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::pane_block;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// Below this inner width the accuracy column is dropped.
const ACCURACY_MIN_WIDTH: u16 = 50;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let block = pane_block("folds", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(plan) = &app.plan else {
        frame.render_widget(
            Paragraph::new(Span::styled("no folds yet", theme.muted)),
            inner,
        );
        return;
    };
    let show_accuracy = inner.width >= ACCURACY_MIN_WIDTH;

    // Class names are cut to their column's width from the end, so "vegetable"
    // reads "veg", not "ble" as right-aligned truncation would leave it.
    let fixed = 4 + 5 + if show_accuracy { 5 } else { 0 };
    let n_classes = plan.dataset.classes.len().max(1);
    let gaps = n_classes + if show_accuracy { 2 } else { 1 };
    let class_width = usize::from(inner.width).saturating_sub(fixed + gaps) / n_classes;
    let mut header = vec![Cell::from("fold")];
    header.extend(plan.dataset.classes.iter().map(|c| {
        let short: String = c.chars().take(class_width).collect();
        Cell::from(Line::from(short).right_aligned())
    }));
    header.push(Cell::from(Line::from("total").right_aligned()));
    if show_accuracy {
        header.push(Cell::from(Line::from("acc").right_aligned()));
    }

    let rows = plan.fold_counts.iter().enumerate().map(|(fold, counts)| {
        let is_current = app.fold == Some(fold);
        let marker = if is_current { "▶" } else { " " };
        let mut cells = vec![Cell::from(format!("{marker} {fold}"))];
        cells.extend(
            counts
                .iter()
                .map(|n| Cell::from(Line::from(n.to_string()).right_aligned())),
        );
        cells.push(Cell::from(
            Line::from(counts.iter().sum::<usize>().to_string()).right_aligned(),
        ));
        if show_accuracy {
            let accuracy = app
                .fold_results
                .iter()
                .rev()
                .find(|r| r.fold == fold)
                .map(|r| format!("{:.3}", r.accuracy))
                .unwrap_or_default();
            cells.push(Cell::from(Line::from(accuracy).right_aligned()));
        }
        let style = if is_current {
            theme.current
        } else if plan.folds.contains(&fold) {
            theme.text
        } else {
            // A fold this run does not train (e.g. `--fold 2`).
            theme.muted
        };
        Row::new(cells).style(style)
    });

    let mut widths = vec![Constraint::Length(4)];
    widths.extend(plan.dataset.classes.iter().map(|_| Constraint::Fill(1)));
    widths.push(Constraint::Length(5));
    if show_accuracy {
        widths.push(Constraint::Length(5));
    }
    let table = Table::new(rows, widths).header(Row::new(header).style(theme.table_header));
    frame.render_widget(table, inner);
}
