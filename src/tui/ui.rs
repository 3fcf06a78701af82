//! Draw the whole screen from the state: layout, panes, then any overlay.

use ratatui::Frame;
use ratatui::layout::Rect;

use super::layout;
use super::panes;
use super::state::{App, Overlay};
use super::theme::Theme;

/// Every pane's drawing function has this shape.
type PaneRender = fn(&mut Frame, Rect, &App, &Theme);

/// Draw every pane that fits `frame`'s size, then the open overlay on top.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    // The theme's own background (if any) under every pane.
    frame.buffer_mut().set_style(area, theme.background);
    let table_rows = app
        .plan
        .as_ref()
        .map(|p| p.dataset.classes.len().max(p.fold_counts.len()))
        .unwrap_or(0);
    let panes = layout::plan(area, u16::try_from(table_rows).unwrap_or(u16::MAX));

    panes::header::render(frame, panes.header, app, theme);
    let optional: [(Option<Rect>, PaneRender); 7] = [
        (panes.dataset, panes::dataset::render),
        (panes.folds, panes::folds::render),
        (panes.loss, panes::loss::render),
        (panes.lr, panes::lr::render),
        (panes.metrics, panes::metrics::render),
        (panes.plc, panes::plc::render),
        (panes.footer, panes::footer::render),
    ];
    for (area, render) in optional {
        if let Some(area) = area.filter(|a| !a.is_empty()) {
            render(frame, area, app, theme);
        }
    }

    match app.overlay {
        Overlay::None => {}
        Overlay::Help => panes::help::render(frame, area, theme),
        Overlay::ConfirmStop => panes::confirm::render(frame, area, theme),
    }
}
