//! The confusion matrix of the last validation: one row per actual class, one
//! column per predicted class. The diagonal (right) is in the success style,
//! mistakes in the warning style, zeros muted, so where the model errs shows
//! at a glance.
//!
//! Row names are cut to fit; column headers are the classes' first letters
//! (or their number when those collide), listed under the table when there is
//! room. Columns that do not fit are left out and counted in the title.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::pane_block;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// Widest row name; longer class names are cut.
const MAX_NAME_WIDTH: usize = 14;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let title = match app.epochs.last() {
        Some(row) if app.confusion.is_some() => {
            format!("confusion · fold {} epoch {}", row.fold, row.epoch)
        }
        _ => "confusion".to_string(),
    };
    let block = pane_block(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (Some(matrix), Some(plan)) = (&app.confusion, &app.plan) else {
        frame.render_widget(
            Paragraph::new(Span::styled("no validation has ended yet", theme.muted)),
            inner,
        );
        return;
    };
    let classes = &plan.dataset.classes;
    let n = matrix.len();
    let name_of = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
    let largest = matrix.iter().flatten().copied().max().unwrap_or(0);
    let cell_width = largest.to_string().len().max(3);
    let name_width = (0..n)
        .map(|c| name_of(c).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, MAX_NAME_WIDTH);
    // Columns that fit beside the row names (one space between columns).
    let room = usize::from(inner.width).saturating_sub(name_width + 1);
    let shown = (room / (cell_width + 1)).min(n);
    let headers = column_headers(classes, n, cell_width);

    let mut header = vec![Cell::from("actual\\pred")];
    header.extend(
        headers[..shown]
            .iter()
            .map(|h| Cell::from(Line::from(h.clone()).right_aligned())),
    );
    let rows = matrix.iter().enumerate().map(|(actual, counts)| {
        let mut cells = vec![Cell::from(cut(&name_of(actual), name_width))];
        cells.extend(
            counts
                .iter()
                .take(shown)
                .enumerate()
                .map(|(predicted, &k)| {
                    let style = cell_style(actual, predicted, k, theme);
                    Cell::from(Line::from(Span::styled(k.to_string(), style)).right_aligned())
                }),
        );
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(name_width as u16)];
    widths.extend((0..shown).map(|_| Constraint::Length(cell_width as u16)));

    let table_height = u16::try_from(n + 1).unwrap_or(u16::MAX);
    let [table_area, legend_area] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Fill(1)]).areas(inner);
    frame.render_widget(
        Table::new(rows, widths).header(Row::new(header).style(theme.table_header)),
        table_area,
    );
    let mut legend: Vec<Line> = Vec::new();
    if shown < n {
        legend.push(Line::from(Span::styled(
            format!("{} predicted column(s) do not fit", n - shown),
            theme.muted,
        )));
    }
    let correct: usize = (0..n).map(|c| matrix[c].get(c).copied().unwrap_or(0)).sum();
    let total: usize = matrix.iter().flatten().sum();
    legend.push(Line::from(Span::styled(
        format!("{correct} of {total} right (diagonal)"),
        theme.muted,
    )));
    if headers.iter().zip(0..n).any(|(h, c)| *h != name_of(c)) {
        let key: Vec<String> = (0..shown)
            .map(|c| format!("{}={}", headers[c].trim(), name_of(c)))
            .collect();
        legend.push(Line::from(Span::styled(key.join(" "), theme.muted)));
    }
    frame.render_widget(
        Paragraph::new(legend).wrap(ratatui::widgets::Wrap { trim: true }),
        legend_area,
    );
}

/// A short header per class: the name if it fits `width`, else its first
/// letters, else (when those collide) the class number.
fn column_headers(classes: &[String], n: usize, width: usize) -> Vec<String> {
    let names: Vec<String> = (0..n)
        .map(|c| classes.get(c).cloned().unwrap_or_else(|| c.to_string()))
        .collect();
    let cut_names: Vec<String> = names.iter().map(|s| cut(s, width)).collect();
    let unique = cut_names
        .iter()
        .enumerate()
        .all(|(i, a)| cut_names[i + 1..].iter().all(|b| a != b));
    if unique {
        cut_names
    } else {
        (0..n).map(|c| c.to_string()).collect()
    }
}

/// The first `width` characters of `s`.
fn cut(s: &str, width: usize) -> String {
    s.chars().take(width).collect()
}

fn cell_style(actual: usize, predicted: usize, count: usize, theme: &Theme) -> Style {
    if count == 0 {
        theme.muted
    } else if actual == predicted {
        theme.success
    } else {
        theme.warning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_cut_names_or_numbers_when_those_collide() {
        let classes: Vec<String> = ["apple", "banana", "cherry"].map(String::from).into();
        assert_eq!(column_headers(&classes, 3, 3), ["app", "ban", "che"]);
        let twins: Vec<String> = ["scab_a", "scab_b"].map(String::from).into();
        assert_eq!(column_headers(&twins, 2, 4), ["0", "1"]);
        // A matrix wider than the class list (a damaged log) still has headers.
        assert_eq!(column_headers(&classes[..1], 2, 3), ["app", "1"]);
    }

    #[test]
    fn diagonal_mistakes_and_zeros_have_their_styles() {
        let theme = Theme::default();
        assert_eq!(cell_style(1, 1, 5, &theme), theme.success);
        assert_eq!(cell_style(1, 0, 2, &theme), theme.warning);
        assert_eq!(cell_style(1, 0, 0, &theme), theme.muted);
    }
}
