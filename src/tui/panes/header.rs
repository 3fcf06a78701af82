//! Top bar: state badge, where the run is (data set, fold, epoch, step), the
//! model, and a gauge over the whole run with its ETA.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};

use super::pane_block;
use crate::run::Command;
use crate::tui::eta::format_duration;
use crate::tui::state::{App, RunState};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    // Bordered when there is room; on a very short screen the two lines go bare.
    let inner = if area.height >= 4 {
        let block = pane_block("orchard", theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        inner
    } else {
        area
    };
    let [info, gauge] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(info_line(app, theme)), info);
    if !gauge.is_empty() {
        frame.render_widget(
            Gauge::default()
                .gauge_style(theme.gauge)
                .ratio(app.progress().clamp(0.0, 1.0))
                .label(gauge_label(app))
                .use_unicode(true),
            gauge,
        );
    }
}

/// The words under a command that has been sent but not yet acknowledged.
pub fn pending_text(command: &Command) -> &'static str {
    match command {
        Command::Pause => "pausing…",
        Command::Resume => "resuming…",
        Command::Stop => "stopping…",
        Command::ResizeNow { .. } => "resize requested…",
        Command::SetTheta { .. } => "setting theta…",
    }
}

/// Badge first, so a narrow screen cuts the details, never the state.
fn info_line(app: &App, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(
        format!(" {} ", app.state.label()),
        theme.state(&app.state),
    )];
    if let Some(command) = &app.pending {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(pending_text(command), theme.pending));
    }
    let Some(plan) = &app.plan else {
        spans.push(Span::styled(" waiting for the run to start", theme.muted));
        return Line::from(spans);
    };
    let mut parts = vec![plan.dataset.name.clone()];
    if let (Some(fold), Some((position, count))) = (app.fold, app.fold_position()) {
        parts.push(format!("fold {fold} ({position}/{count})"));
    }
    if let Some(epoch) = app.epoch {
        parts.push(format!("epoch {}/{}", epoch + 1, plan.epochs));
    }
    if let (Some(step), Some(per_fold)) = (app.step, app.steps_per_fold()) {
        parts.push(format!("step {}/{per_fold}", step + 1));
    }
    parts.push(format!("{} px", plan.size));
    // Label correction's threshold: what the engine last acknowledged, else
    // where the +/- keys start from.
    parts.push(format!(
        "θ {:.2}",
        app.theta.unwrap_or(app.theta_keys.start)
    ));
    parts.push(plan.arch.clone());
    parts.push(plan.device.clone());
    let separator = Span::styled(" · ", theme.muted);
    spans.push(Span::raw(" "));
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(separator.clone());
        }
        spans.push(Span::styled(part, theme.text));
    }
    Line::from(spans)
}

fn gauge_label(app: &App) -> String {
    let percent = (app.progress() * 100.0).floor();
    let steps = match app.total_steps() {
        Some(total) => format!(
            "{}/{total} steps · {percent:.0}%",
            app.done_steps().min(total)
        ),
        None => format!("{percent:.0}%"),
    };
    let elapsed = app
        .elapsed_seconds()
        .map(|s| format!(" · {} elapsed", format_duration(s)))
        .unwrap_or_default();
    let eta = match app.state {
        RunState::Waiting => return "waiting for the engine…".to_string(),
        RunState::Running => match app.eta_seconds() {
            Some(s) => format!(" · ETA {}", format_duration(s)),
            None => " · ETA …".to_string(),
        },
        RunState::Paused => " · ETA paused".to_string(),
        RunState::Stopping => " · ends after this epoch".to_string(),
        RunState::Ended(_) => String::new(),
    };
    format!("{steps}{eta}{elapsed}")
}
