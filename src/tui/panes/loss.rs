//! Live training loss of the current fold, one sparkline column per batch.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, SparklineBar};

use super::pane_block;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// The sparkline's full height, in the units `sparkline_bars` returns.
pub const SPARK_TOP: u64 = 1000;
/// Where the window's lowest loss sits. Not zero, so the best batch still
/// shows as a short bar rather than as empty space.
pub const SPARK_FLOOR: u64 = 100;

/// Map losses onto `SPARK_FLOOR..=SPARK_TOP` between the window's minimum and
/// maximum. ratatui's `Sparkline` draws u64 from a zero baseline, so plotting
/// raw losses would squash a slowly falling loss (2.1 -> 1.9) into a flat line.
/// Non-finite losses (a diverged batch) become gaps.
pub fn sparkline_bars(losses: &[f64]) -> Vec<Option<u64>> {
    let finite = losses.iter().copied().filter(|x| x.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let span = hi - lo;
    let room = (SPARK_TOP - SPARK_FLOOR) as f64;
    losses
        .iter()
        .map(|&x| {
            if !x.is_finite() {
                None
            } else if span > f64::EPSILON * hi.abs().max(1.0) {
                Some(SPARK_FLOOR + ((x - lo) / span * room).round() as u64)
            } else {
                // A flat window: draw it mid-height rather than as nothing.
                Some(SPARK_FLOOR + (room / 2.0) as u64)
            }
        })
        .collect()
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let block = pane_block(if app.log_scale { "loss (log)" } else { "loss" }, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if app.losses.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no batches yet", theme.muted)),
            inner,
        );
        return;
    }
    let [summary, chart] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    // The newest batches that fit, one column each.
    let window_len = usize::from(chart.width).min(app.losses.len());
    let window = &app.losses[app.losses.len() - window_len..];
    frame.render_widget(
        Paragraph::new(summary_line(window, app, summary.width, theme)),
        summary,
    );
    // Log scale: a loss falling from 2 to 0.02 keeps its late progress visible.
    let plotted: Vec<f64> = if app.log_scale {
        window
            .iter()
            .map(|&x| if x > 0.0 { x.ln() } else { f64::NAN })
            .collect()
    } else {
        window.to_vec()
    };
    let bars: Vec<SparklineBar> = sparkline_bars(&plotted)
        .into_iter()
        .map(SparklineBar::from)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(bars)
            .max(SPARK_TOP)
            .style(theme.loss),
        chart,
    );
}

/// "now 1.121 · range 1.121–1.934 · 10 batches": the scale the bars lost.
/// The batch count is left out when the line would not fit.
fn summary_line(window: &[f64], app: &App, width: u16, theme: &Theme) -> Line<'static> {
    let finite = || window.iter().copied().filter(|x| x.is_finite());
    let low = finite().fold(f64::INFINITY, f64::min);
    let high = finite().fold(f64::NEG_INFINITY, f64::max);
    let now = app.losses.last().copied().unwrap_or(f64::NAN);
    let text = |x: f64| {
        if x.is_finite() {
            format!("{x:.3}")
        } else {
            "—".into()
        }
    };
    let mut rest = format!(" · range {}–{}", text(low), text(high));
    let count = format!(" · {} batches", window.len());
    if 4 + text(now).chars().count() + rest.chars().count() + count.chars().count()
        <= usize::from(width)
    {
        rest.push_str(&count);
    }
    Line::from(vec![
        Span::styled("now ", theme.muted),
        Span::styled(text(now), theme.loss),
        Span::styled(rest, theme.muted),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_offset_by_the_window_minimum() {
        // A slow fall that would look flat from a zero baseline spans the full height.
        assert_eq!(
            sparkline_bars(&[2.1, 2.0, 1.9]),
            vec![Some(SPARK_TOP), Some(550), Some(SPARK_FLOOR)]
        );
    }

    #[test]
    fn flat_window_sits_mid_height() {
        assert_eq!(sparkline_bars(&[0.5, 0.5]), vec![Some(550), Some(550)]);
    }

    #[test]
    fn non_finite_losses_are_gaps_and_do_not_set_the_scale() {
        assert_eq!(
            sparkline_bars(&[1.0, f64::NAN, 2.0, f64::INFINITY]),
            vec![Some(SPARK_FLOOR), None, Some(SPARK_TOP), None]
        );
        assert!(sparkline_bars(&[]).is_empty());
        assert_eq!(sparkline_bars(&[f64::NAN]), vec![None]);
    }
}
