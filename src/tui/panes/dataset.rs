//! Data set statistics: task, image count, and per class its count and share.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::pane_block;
use crate::tui::state::App;
use crate::tui::theme::Theme;

const CLASS_WIDTH: u16 = 12;
const COUNT_WIDTH: u16 = 6;
const SHARE_WIDTH: u16 = 6;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let block = pane_block("data set", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(plan) = &app.plan else {
        frame.render_widget(
            Paragraph::new(Span::styled("no data set yet", theme.muted)),
            inner,
        );
        return;
    };
    let data = &plan.dataset;
    let [summary, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    let summary_line = Line::from(vec![
        Span::styled(data.name.clone(), theme.current),
        Span::styled(
            format!(
                " · {} · {} images · {} classes",
                data.task,
                data.images,
                data.classes.len()
            ),
            theme.muted,
        ),
    ]);
    frame.render_widget(Paragraph::new(summary_line), summary);

    let total: usize = data.class_counts.iter().sum();
    let largest = data.class_counts.iter().copied().max().unwrap_or(0);
    // The bar fills what the three text columns and their gaps leave.
    let bar_width = table_area
        .width
        .saturating_sub(CLASS_WIDTH + COUNT_WIDTH + SHARE_WIDTH + 3);
    let rows = data.classes.iter().enumerate().map(|(i, class)| {
        let count = data.class_counts.get(i).copied().unwrap_or(0);
        let share = if total > 0 {
            count as f64 / total as f64
        } else {
            0.0
        };
        // Bars are relative to the largest class so the smallest stays visible.
        let bar_cells = if largest > 0 {
            (count as f64 / largest as f64 * f64::from(bar_width)).round() as usize
        } else {
            0
        };
        Row::new(vec![
            Cell::from(class.clone()),
            Cell::from(Line::from(count.to_string()).right_aligned()),
            Cell::from(Line::from(format!("{:.1}%", share * 100.0)).right_aligned()),
            Cell::from(Span::styled("█".repeat(bar_cells), theme.share_bar)),
        ])
    });
    let header = Row::new(vec![
        Cell::from("class"),
        Cell::from(Line::from("images").right_aligned()),
        Cell::from(Line::from("share").right_aligned()),
        Cell::from(""),
    ])
    .style(theme.table_header);
    let table = Table::new(
        rows,
        [
            Constraint::Length(CLASS_WIDTH),
            Constraint::Length(COUNT_WIDTH),
            Constraint::Length(SHARE_WIDTH),
            Constraint::Fill(1),
        ],
    )
    .header(header);
    frame.render_widget(table, table_area);
}
