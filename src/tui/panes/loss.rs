//! The current fold's loss: a chart of every batch's loss (dim), fastai's
//! smoothed training loss and the validation loss per epoch, over a legend
//! line with the latest values, and a sparkline of the newest batches.
//!
//! The chart's x axis is the whole fold so far, from its first batch to its
//! latest, not a scrolling window of the last few batches: a user watching a
//! fold wants the trend since its start and every epoch's validation point,
//! which a window of one batch per braille dot would cut to part of an epoch
//! on a long fold. The newest batches in detail are the sparkline's job (one
//! column each). The y range is that of the plotted points (all three
//! series), padded a little, so the curves fill the height.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Sparkline, SparklineBar};

use super::pane_block;
use crate::tui::loss_history::LossHistory;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// The sparkline's full height, in the units `sparkline_bars` returns.
pub const SPARK_TOP: u64 = 1000;
/// Where the window's lowest loss sits. Not zero, so the best batch still
/// shows as a short bar rather than as empty space.
pub const SPARK_FLOOR: u64 = 100;
/// Share of the y range added above and below the plotted points, so the
/// highest and lowest do not sit on the pane's border.
const Y_PADDING: f64 = 0.05;
/// Inner height from which the sparkline gets a row under the chart.
const MIN_HEIGHT_FOR_SPARKLINE: u16 = 6;

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

/// The chart's three series as plotted: (x = 1-based step, y), y already on
/// the log scale when it is on, points that cannot be plotted left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub raw: Vec<(f64, f64)>,
    pub smoothed: Vec<(f64, f64)>,
    pub valid: Vec<(f64, f64)>,
    pub log_scale: bool,
}

impl Series {
    /// Log scale: ln(loss), so a loss falling from 2 to 0.02 keeps its late
    /// progress visible; it applies to all three series alike. A loss of 0 or
    /// less has no logarithm and, like a non-finite one, is a gap.
    pub fn of(losses: &LossHistory, log_scale: bool) -> Self {
        let y = |loss: f64| {
            let y = if log_scale { loss.ln() } else { loss };
            (y.is_finite() && (loss > 0.0 || !log_scale)).then_some(y)
        };
        Series {
            raw: losses
                .batches
                .iter()
                .filter_map(|b| Some((b.step as f64, y(b.loss)?)))
                .collect(),
            smoothed: losses
                .batches
                .iter()
                .filter_map(|b| Some((b.step as f64, y(b.smoothed)?)))
                .collect(),
            valid: losses
                .valid
                .iter()
                .filter_map(|&(step, loss)| Some((step as f64, y(loss)?)))
                .collect(),
            log_scale,
        }
    }

    fn points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.raw.iter().chain(&self.smoothed).chain(&self.valid)
    }

    /// First and last step plotted.
    pub fn steps(&self) -> Option<(f64, f64)> {
        bounds(self.points().map(|p| p.0))
    }

    /// The x axis: first to last step; a single step gets a unit-wide range.
    pub fn x_bounds(&self) -> Option<[f64; 2]> {
        let (lo, hi) = self.steps()?;
        Some([lo, hi.max(lo + 1.0)])
    }

    /// The plotted values' range, padded by `Y_PADDING` of it on both sides;
    /// a flat series gets a band around its value.
    pub fn y_bounds(&self) -> Option<[f64; 2]> {
        let (lo, hi) = bounds(self.points().map(|p| p.1))?;
        let pad = if hi > lo {
            (hi - lo) * Y_PADDING
        } else {
            (hi.abs() * Y_PADDING).max(1e-3)
        };
        // A loss is not negative: padding must not make the axis say it could
        // be (on the log scale a negative y is a loss below 1, and fine).
        let floor = if lo >= 0.0 && !self.log_scale {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        Some([(lo - pad).max(floor), hi + pad])
    }
}

/// Least and greatest of `values`; None when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let series = Series::of(&app.losses, app.log_scale);
    let scale = if app.log_scale { "loss (log)" } else { "loss" };
    let title = match series.steps() {
        Some((first, last)) if first < last => format!("{scale} · steps {first}–{last}"),
        Some((step, _)) => format!("{scale} · step {step}"),
        None => scale.to_string(),
    };
    let block = pane_block(&title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (Some(x), Some(y)) = (series.x_bounds(), series.y_bounds()) else {
        frame.render_widget(
            Paragraph::new(Span::styled("no batches yet", theme.muted)),
            inner,
        );
        return;
    };
    let spark_height = u16::from(inner.height >= MIN_HEIGHT_FOR_SPARKLINE);
    let [legend, chart, spark] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(spark_height),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(legend_line(app, legend.width, theme)),
        legend,
    );
    render_chart(frame, chart, &series, x, y, theme);
    if !spark.is_empty() {
        render_sparkline(frame, spark, app, theme);
    }
}

fn render_chart(
    frame: &mut Frame,
    area: Rect,
    series: &Series,
    x: [f64; 2],
    y: [f64; 2],
    theme: &Theme,
) {
    let line = |data, style: Style| {
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(style)
            .data(data)
    };
    // Drawn in this order, so the smoothed curve lies over the noise and the
    // validation over both; each epoch's point also gets a dot, which shows
    // even before there is a second point to draw a line to.
    let datasets = vec![
        line(&series.raw, theme.loss),
        line(&series.smoothed, theme.loss_smoothed),
        line(&series.valid, theme.loss_valid),
        Dataset::default()
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(theme.loss_valid)
            .data(&series.valid),
    ];
    // The labels are losses even on the log scale: ln(loss) means nothing to
    // a reader.
    let label = |v: f64| loss_text(if series.log_scale { v.exp() } else { v });
    let chart = Chart::new(datasets)
        // The steps are in the title: an x axis would cost two of few rows.
        .x_axis(Axis::default().bounds(x))
        .y_axis(
            Axis::default()
                .style(theme.muted)
                .bounds(y)
                .labels([label(y[0]), label(y[1])]),
        );
    frame.render_widget(chart, area);
}

/// The newest batches, one column each, scaled to their own range.
fn render_sparkline(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let batches = &app.losses.batches;
    let window = &batches[batches.len() - usize::from(area.width).min(batches.len())..];
    let plotted: Vec<f64> = window
        .iter()
        .map(|b| match app.log_scale {
            true if b.loss > 0.0 => b.loss.ln(),
            true => f64::NAN,
            false => b.loss,
        })
        .collect();
    let bars: Vec<SparklineBar> = sparkline_bars(&plotted)
        .into_iter()
        .map(SparklineBar::from)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(bars)
            .max(SPARK_TOP)
            .style(theme.loss),
        area,
    );
}

/// "batch 1.121  smoothed 1.482  valid 1.209": the legend, each name in its
/// series' style, with the latest values; closer together, then names only,
/// when that is too wide.
fn legend_line(app: &App, width: u16, theme: &Theme) -> Line<'static> {
    let losses = &app.losses;
    let entries = [
        ("batch", losses.last_loss(), theme.loss),
        (
            "smoothed",
            losses.batches.last().map(|b| b.smoothed),
            theme.loss_smoothed,
        ),
        ("valid", losses.valid.last().map(|v| v.1), theme.loss_valid),
    ];
    let with_values: Vec<String> = entries
        .iter()
        .map(|(name, value, _)| format!("{name} {}", value.map_or("—".into(), loss_text)))
        .collect();
    let len = |gap: usize| {
        with_values.iter().map(|t| t.chars().count()).sum::<usize>() + gap * (entries.len() - 1)
    };
    let room = usize::from(width);
    let (gap, values) = if len(2) <= room {
        ("  ", true)
    } else if len(1) <= room {
        (" ", true)
    } else {
        ("  ", false)
    };
    let mut spans = Vec::new();
    for (i, ((name, _, style), text)) in entries.iter().zip(with_values).enumerate() {
        if i > 0 {
            spans.push(Span::raw(gap));
        }
        spans.push(Span::styled(
            if values { text } else { name.to_string() },
            *style,
        ));
    }
    Line::from(spans)
}

/// A loss as the pane prints it: 3 decimals, or scientific when that would
/// read 0.000.
fn loss_text(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x.abs() >= 0.001 || x == 0.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.1e}")
    }
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

    fn history(losses: &[f64], valid: &[(usize, f64)]) -> LossHistory {
        let mut h = LossHistory::default();
        for (step, &loss) in losses.iter().enumerate() {
            h.push_batch(step, loss);
        }
        for &(step, loss) in valid {
            h.push_valid(step, loss);
        }
        h
    }

    fn close(a: [f64; 2], b: [f64; 2]) -> bool {
        (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9
    }

    #[test]
    fn y_range_is_the_plotted_points_padded() {
        // Batches 3.0 .. 1.0 and a validation point at 0.5 below them all:
        // the range is 0.5..3.0, padded by 5% of 2.5 on both sides.
        let h = history(&[3.0, 2.0, 1.0], &[(3, 0.5)]);
        let s = Series::of(&h, false);
        assert_eq!(s.valid, vec![(3.0, 0.5)]);
        assert_eq!(s.x_bounds(), Some([1.0, 3.0]));
        let y = s.y_bounds().unwrap();
        assert!(close(y, [0.5 - 0.125, 3.0 + 0.125]), "{y:?}");
        // The smoothed curve lies inside the batches' range, so it sets no bound.
        assert!(s.smoothed.iter().all(|p| p.1 > 1.0 && p.1 <= 3.0));
    }

    #[test]
    fn log_scale_applies_to_every_series_and_skips_what_has_no_log() {
        let h = history(&[1.0, 0.0, f64::NAN, 0.1], &[(2, 0.5)]);
        let s = Series::of(&h, true);
        // The batch of loss 0 and the NaN are gaps; the others are ln(loss).
        assert_eq!(s.raw, vec![(1.0, 0.0), (4.0, 0.1f64.ln())]);
        assert_eq!(s.valid, vec![(2.0, 0.5f64.ln())]);
        // As in fastai, the NaN batch ends the smoothed curve.
        assert_eq!(s.smoothed.len(), 2);
        let y = s.y_bounds().unwrap();
        let (lo, hi) = (0.1f64.ln(), 0.0);
        let pad = (hi - lo) * Y_PADDING;
        assert!(close(y, [lo - pad, hi + pad]), "{y:?}");
    }

    #[test]
    fn padding_does_not_take_the_axis_below_zero() {
        let s = Series::of(&history(&[2.0, 0.01], &[]), false);
        assert_eq!(s.y_bounds().map(|y| y[0]), Some(0.0));
        // On the log scale the same losses go below 0 (ln 0.01) and pad further.
        let s = Series::of(&history(&[2.0, 0.01], &[]), true);
        assert!(s.y_bounds().unwrap()[0] < 0.01f64.ln());
    }

    #[test]
    fn a_single_point_still_gets_a_range() {
        let s = Series::of(&history(&[0.7], &[]), false);
        assert_eq!(s.x_bounds(), Some([1.0, 2.0]));
        let y = s.y_bounds().unwrap();
        assert!(y[0] < 0.7 && 0.7 < y[1], "{y:?}");
        assert_eq!(Series::of(&LossHistory::default(), false).y_bounds(), None);
    }
}
