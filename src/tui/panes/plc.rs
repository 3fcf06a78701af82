//! Progressive label correction's log: theta now and its schedule, then the
//! corrections, newest first (`[` / `]` scroll to older / newer ones).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use crate::config::{CorrectionMethod, ThetaSchedule};
use crate::tui::state::{App, CorrectionRow};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let block = pane_block("label correction", theme);
    let rows = area.height.saturating_sub(2) as usize;
    let lines = lines(app, theme, rows);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The pane's text, `rows` lines at most.
fn lines(app: &App, theme: &Theme, rows: usize) -> Vec<Line<'static>> {
    let k = &app.theta_keys;
    let now = app.theta.unwrap_or(k.start);
    let mut out = Vec::new();
    if !k.enabled && app.corrections_total == 0 {
        out.push(Line::from(Span::styled(
            "Label correction is off for this run.",
            theme.text,
        )));
        out.push(Line::from(Span::styled(
            "[label_correction] enabled = true turns it on.",
            theme.muted,
        )));
        return out;
    }
    let schedule = match (k.method, k.schedule) {
        (CorrectionMethod::Ratio, _) => "ratio rule: relabel when p(label)/p(top) < delta".into(),
        (_, ThetaSchedule::Constant) => format!("constant after {:.0}% warm-up", k.warmup * 100.0),
        (_, s) => format!(
            "{} {:.2}→{:.2} after {:.0}% warm-up",
            if s == ThetaSchedule::Cosine {
                "cosine"
            } else {
                "linear"
            },
            k.start,
            k.end,
            k.warmup * 100.0
        ),
    };
    let name = if k.method == CorrectionMethod::Ratio {
        "delta"
    } else {
        "θ"
    };
    out.push(Line::from(vec![
        Span::styled(format!("{name} {now:.2} "), theme.current),
        Span::styled(format!("· {schedule} · ±{:.2}", k.step), theme.muted),
    ]));
    let shown = rows.saturating_sub(2);
    let newest_first: Vec<&CorrectionRow> = app.corrections.iter().rev().collect();
    let from = app.plc_scroll.min(newest_first.len().saturating_sub(1));
    let to = (from + shown).min(newest_first.len());
    let kept = app.corrections.len();
    let range = if kept == 0 {
        String::new()
    } else {
        format!(" · showing {}–{} newest", from + 1, to)
    };
    let older = if app.corrections_total > kept {
        format!(" (the last {kept} kept)")
    } else {
        String::new()
    };
    out.push(Line::from(Span::styled(
        format!("{} corrections{older}{range}", app.corrections_total),
        theme.text,
    )));
    let classes = app.plan.as_ref().map(|p| p.dataset.classes.clone());
    let class = |c: usize| {
        classes
            .as_ref()
            .and_then(|names| names.get(c).cloned())
            .unwrap_or_else(|| c.to_string())
    };
    let set = |cs: &[usize]| {
        if cs.is_empty() {
            "(none)".to_string()
        } else {
            cs.iter().map(|&c| class(c)).collect::<Vec<_>>().join(" ")
        }
    };
    for c in &newest_first[from..to] {
        let (old, new) = match &c.sets {
            Some(s) => (set(&s.old), set(&s.new)),
            None => (class(c.old), class(c.new)),
        };
        let image = std::path::Path::new(&c.image)
            .file_stem()
            .map_or(c.image.clone(), |s| s.to_string_lossy().into_owned());
        out.push(Line::from(vec![
            Span::styled(
                format!("f{} e{} s{:<5} ", c.fold, c.epoch, c.step),
                theme.muted,
            ),
            Span::styled(format!("{image} "), theme.text),
            Span::styled(format!("{old} → {new} "), theme.current),
            Span::styled(format!("{:.2}→{:.2}", c.p_old, c.p_new), theme.muted),
        ]));
    }
    out
}
