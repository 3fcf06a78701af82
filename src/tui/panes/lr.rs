//! The whole planned learning-rate curve of one fold, with a marker at the
//! current step, so the user sees where in the one-cycle the run is, and a
//! line where the image size changes: dim where progressive resizing plans
//! it, bright where the current fold did resize (by plan or by `r`).

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
    let resizes = resize_marks(app, schedule.len());
    let now = app.step.and_then(|s| Some((s, schedule.get(s)?)));
    let title = match (now, resize_text(&resizes)) {
        (Some((step, lr)), None) => format!(
            "learning rate · {} at step {}/{}",
            lr_text(*lr),
            step + 1,
            schedule.len()
        ),
        // Shorter words, so the sizes fit beside them.
        (Some((step, lr)), Some(sizes)) => format!(
            "lr {} · step {}/{} · {sizes}",
            lr_text(*lr),
            step + 1,
            schedule.len()
        ),
        (None, Some(sizes)) => format!("learning rate · {sizes}"),
        (None, None) => "learning rate".to_string(),
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
    let lines: Vec<[(f64, f64); 2]> = resizes
        .iter()
        .map(|r| [(r.step as f64, 0.0), (r.step as f64, top)])
        .collect();
    // Resize lines first: the curve and the current step are drawn over them.
    let mut datasets: Vec<Dataset> = resizes
        .iter()
        .zip(&lines)
        .map(|(r, line)| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(if r.done { theme.warning } else { theme.muted })
                .data(line)
        })
        .collect();
    datasets.push(
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.lr_curve)
            .data(&curve),
    );
    datasets.push(
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.lr_marker)
            .data(&marker),
    );
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

/// A size change on the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ResizeMark {
    step: usize,
    epoch: usize,
    size: u32,
    /// The current fold did change to this size here.
    done: bool,
}

/// The current fold's resizes, then the planned ones it has not reached,
/// at the first step of their epoch; none outside the schedule.
fn resize_marks(app: &App, steps: usize) -> Vec<ResizeMark> {
    let Some(plan) = app.plan.as_ref() else {
        return Vec::new();
    };
    let per_epoch = app
        .steps_per_epoch
        .unwrap_or(steps / plan.epochs.max(1))
        .max(1);
    let mut marks: Vec<ResizeMark> = app
        .resizes
        .iter()
        .filter(|r| Some(r.fold) == app.fold)
        .map(|r| ResizeMark {
            step: r.epoch * per_epoch,
            epoch: r.epoch,
            size: r.size,
            done: true,
        })
        .collect();
    let reached = app.epoch.unwrap_or(0);
    for &(epoch, size) in &plan.size_schedule {
        // A planned change the fold has passed either happened (marked
        // above) or was overtaken by an `r`: it is no longer a plan.
        if epoch > reached && !marks.iter().any(|m| m.epoch == epoch) {
            marks.push(ResizeMark {
                step: epoch * per_epoch,
                epoch,
                size,
                done: false,
            });
        }
    }
    marks.retain(|m| m.step > 0 && m.step < steps);
    marks.sort_by_key(|m| m.step);
    marks
}

/// "size 96@e1 128@e3?" for the title: px at epoch; planned changes end in `?`.
fn resize_text(marks: &[ResizeMark]) -> Option<String> {
    if marks.is_empty() {
        return None;
    }
    let parts: Vec<String> = marks
        .iter()
        .map(|m| format!("{}@e{}{}", m.size, m.epoch, if m.done { "" } else { "?" }))
        .collect();
    Some(format!("size {}", parts.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Event;
    use crate::tui::state::tests::{run_started, stamped};

    #[test]
    fn planned_and_done_resizes_are_marked_at_their_epochs_first_step() {
        let mut app = App::from_events(&[run_started(0.0)]);
        // 4 steps over 2 epochs: 2 steps per epoch; make it 4 epochs of 1.
        if let Some(plan) = &mut app.plan {
            plan.epochs = 4;
            plan.size_schedule = vec![(1, 96), (3, 128)];
        }
        app.apply(&stamped(
            1.0,
            Event::FoldStarted {
                fold: 0,
                n_train: 4,
                n_valid: 2,
                train_counts: vec![2, 2],
                steps_per_epoch: 1,
            },
        ));
        app.apply(&stamped(2.0, Event::EpochStarted { fold: 0, epoch: 0 }));
        let planned = resize_marks(&app, 4);
        assert_eq!(
            planned.iter().map(|m| (m.step, m.done)).collect::<Vec<_>>(),
            vec![(1, false), (3, false)]
        );
        // Epoch 1 resized as planned; an `r` in epoch 2 went to 112 px.
        app.apply(&stamped(
            3.0,
            Event::Resized {
                fold: 0,
                epoch: 1,
                size: 96,
            },
        ));
        app.apply(&stamped(
            4.0,
            Event::Resized {
                fold: 0,
                epoch: 2,
                size: 112,
            },
        ));
        app.apply(&stamped(5.0, Event::EpochStarted { fold: 0, epoch: 2 }));
        let marks = resize_marks(&app, 4);
        assert_eq!(
            marks
                .iter()
                .map(|m| (m.step, m.size, m.done))
                .collect::<Vec<_>>(),
            vec![(1, 96, true), (2, 112, true), (3, 128, false)]
        );
        assert_eq!(
            resize_text(&marks).as_deref(),
            Some("size 96@e1 112@e2 128@e3?")
        );
        // Another fold's resizes are not this fold's.
        app.apply(&stamped(
            6.0,
            Event::FoldStarted {
                fold: 1,
                n_train: 4,
                n_valid: 2,
                train_counts: vec![2, 2],
                steps_per_epoch: 1,
            },
        ));
        assert!(resize_marks(&app, 4).iter().all(|m| !m.done));
    }
}
