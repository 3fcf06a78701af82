//! Where each pane goes for a given screen size.
//!
//! Pure arithmetic on `Rect`s, so the squeeze rules can be tested without
//! drawing. Progress, loss and metrics are what a user watches, so they stay;
//! the other panes share one place as tabs (`tab` shows the next), all of
//! them on a standard 80x24 terminal, and the two that need the most room
//! (confusion matrix, label correction) on a large screen.

use ratatui::layout::{Constraint, Layout, Rect};

/// Screen areas; `None` = the pane is dropped at this size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Panes {
    pub header: Rect,
    pub footer: Option<Rect>,
    pub dataset: Option<Rect>,
    pub folds: Option<Rect>,
    pub loss: Option<Rect>,
    pub lr: Option<Rect>,
    pub metrics: Option<Rect>,
    pub plc: Option<Rect>,
    /// The place the panes of `tabs` take turns in.
    pub tabbed: Option<Rect>,
    pub tabs: &'static [Tab],
}

/// A pane that can be shown as a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Folds,
    Confusion,
    Dataset,
    Plc,
}

impl Tab {
    /// The name on the tab strip.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Folds => "folds",
            Tab::Confusion => "confusion",
            Tab::Dataset => "data set",
            Tab::Plc => "label correction",
        }
    }
}

/// Tabs of a large screen, where data set and folds have places of their own.
const LARGE_TABS: &[Tab] = &[Tab::Confusion, Tab::Plc];
/// Tabs of a standard terminal: everything that is not a chart or the metrics.
const STANDARD_TABS: &[Tab] = &[Tab::Folds, Tab::Confusion, Tab::Dataset, Tab::Plc];

/// Below this width, panes stack instead of sitting side by side.
const MIN_SPLIT_WIDTH: u16 = 60;
/// Body height from which every pane gets a place.
const FULL_BODY_HEIGHT: u16 = 26;
/// Body height from which charts and tables get a row each.
const TWO_ROW_BODY_HEIGHT: u16 = 12;
/// Body height below which no pane fits usefully.
const MIN_BODY_HEIGHT: u16 = 5;

/// Plan the panes for `area`; `table_rows` is the most rows the data set and
/// fold tables need (classes or folds, whichever is more).
pub fn plan(area: Rect, table_rows: u16) -> Panes {
    let footer_height = if area.height >= 3 { 1 } else { 0 };
    // A bordered header needs 4 rows; on a very short screen its two lines go bare.
    let header_height = if area.height >= 10 {
        4
    } else {
        area.height.saturating_sub(footer_height).min(2)
    };
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(header_height),
        Constraint::Fill(1),
        Constraint::Length(footer_height),
    ])
    .areas(area);

    let mut panes = Panes {
        header,
        footer: (footer_height > 0).then_some(footer),
        ..Panes::default()
    };
    let wide = body.width >= MIN_SPLIT_WIDTH;

    if body.height >= FULL_BODY_HEIGHT && wide {
        // Rows + a summary line + a header + two borders.
        let top_height = table_rows.saturating_add(4).clamp(5, 12);
        let rest = body.height - top_height;
        let charts_height = rest * 45 / 100;
        let [top, charts, bottom] = Layout::vertical([
            Constraint::Length(top_height),
            Constraint::Length(charts_height),
            Constraint::Fill(1),
        ])
        .areas(body);
        let [dataset, folds] = side_by_side(top, 45);
        let [loss, lr] = side_by_side(charts, 50);
        let [metrics, tabbed] = side_by_side(bottom, 55);
        panes.dataset = Some(dataset);
        panes.folds = Some(folds);
        panes.loss = Some(loss);
        panes.lr = Some(lr);
        panes.metrics = Some(metrics);
        panes.tabbed = Some(tabbed);
        panes.tabs = LARGE_TABS;
    } else if body.height >= TWO_ROW_BODY_HEIGHT {
        let [charts, bottom] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(body);
        if wide {
            let [loss, lr] = side_by_side(charts, 50);
            let [metrics, tabbed] = side_by_side(bottom, 55);
            panes.loss = Some(loss);
            panes.lr = Some(lr);
            panes.metrics = Some(metrics);
            panes.tabbed = Some(tabbed);
            panes.tabs = STANDARD_TABS;
        } else {
            panes.loss = Some(charts);
            panes.metrics = Some(bottom);
        }
    } else if body.height >= MIN_BODY_HEIGHT {
        if wide {
            let [loss, metrics] = side_by_side(body, 45);
            panes.loss = Some(loss);
            panes.metrics = Some(metrics);
        } else {
            panes.loss = Some(body);
        }
    }
    panes
}

/// Split `area` into a left part of `left_percent` and a right part.
fn side_by_side(area: Rect, left_percent: u16) -> [Rect; 2] {
    Layout::horizontal([Constraint::Percentage(left_percent), Constraint::Fill(1)]).areas(area)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &Panes) -> Vec<Rect> {
        [
            p.dataset, p.folds, p.loss, p.lr, p.metrics, p.plc, p.tabbed, p.footer,
        ]
        .into_iter()
        .flatten()
        .chain([p.header])
        .collect()
    }

    fn assert_inside_and_apart(area: Rect, p: &Panes) {
        let rects = all(p);
        for (i, a) in rects.iter().enumerate() {
            assert_eq!(area.union(*a), area, "{a:?} leaves {area:?}");
            for b in &rects[i + 1..] {
                assert!(
                    a.is_empty() || b.is_empty() || !a.intersects(*b),
                    "{a:?} overlaps {b:?}"
                );
            }
        }
    }

    #[test]
    fn large_screen_shows_every_pane() {
        let area = Rect::new(0, 0, 120, 40);
        let p = plan(area, 6);
        assert!(p.dataset.is_some() && p.folds.is_some() && p.tabbed.is_some());
        assert!(p.loss.is_some() && p.lr.is_some() && p.metrics.is_some());
        assert_eq!(p.tabs, &[Tab::Confusion, Tab::Plc]);
        assert_eq!(p.header.height, 4);
        assert_inside_and_apart(area, &p);
    }

    #[test]
    fn standard_terminal_shows_the_static_panes_as_tabs() {
        let area = Rect::new(0, 0, 80, 24);
        let p = plan(area, 6);
        assert!(p.dataset.is_none() && p.plc.is_none() && p.folds.is_none());
        assert!(p.loss.is_some() && p.lr.is_some() && p.metrics.is_some());
        assert!(p.tabbed.is_some());
        assert_eq!(
            p.tabs,
            &[Tab::Folds, Tab::Confusion, Tab::Dataset, Tab::Plc]
        );
        assert_inside_and_apart(area, &p);
    }

    #[test]
    fn tiny_screens_keep_the_header_and_never_overlap() {
        for (w, h) in [(20, 5), (1, 1), (0, 0), (40, 9), (59, 30), (200, 3)] {
            let area = Rect::new(0, 0, w, h);
            let p = plan(area, 6);
            assert_inside_and_apart(area, &p);
        }
    }
}
