//! The whole planned learning-rate curve of one fold, with a marker at the
//! current step, so the user sees where in the one-cycle the run is.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};

use super::{lr_text, pane_block};
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let schedule = app
        .plan
        .as_ref()
        .map(|p| p.lr_schedule.as_slice())
        .unwrap_or_default();
    let title = match app.step.and_then(|s| Some((s, schedule.get(s)?))) {
        Some((step, lr)) => format!(
            "learning rate · {} at step {}/{}",
            lr_text(*lr),
            step + 1,
            schedule.len()
        ),
        None => "learning rate".to_string(),
    };
    let block = pane_block(&title, theme);
    let curve: Vec<(f64, f64)> = schedule
        .iter()
        .enumerate()
        .filter(|(_, lr)| lr.is_finite())
        .map(|(i, &lr)| (i as f64, lr))
        .collect();
    if curve.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new(Span::styled("no schedule yet", theme.muted)),
            inner,
        );
        return;
    }
    // Chart has no automatic bounds: the curve spans step 0..n-1 and 0..peak.
    let last_step = (schedule.len().saturating_sub(1) as f64).max(1.0);
    let peak = curve.iter().map(|&(_, lr)| lr).fold(0.0, f64::max);
    let top = if peak > 0.0 { peak * 1.05 } else { 1.0 };
    let marker: Vec<(f64, f64)> = match app.step {
        Some(step) if step < schedule.len() => vec![(step as f64, 0.0), (step as f64, top)],
        _ => Vec::new(),
    };
    let datasets = vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.lr_curve)
            .data(&curve),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.lr_marker)
            .data(&marker),
    ];
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .style(theme.muted)
                .bounds([0.0, last_step])
                .labels(["0".to_string(), schedule.len().to_string()]),
        )
        .y_axis(
            Axis::default()
                .style(theme.muted)
                .bounds([0.0, top])
                .labels(["0".to_string(), lr_text(peak)]),
        );
    frame.render_widget(chart, area);
}
