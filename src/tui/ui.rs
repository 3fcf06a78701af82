//! Draw the whole screen from the state: layout, panes, then any overlay.

use ratatui::Frame;
use ratatui::layout::Rect;

use ratatui::text::{Line, Span};

use super::images::ImagePane;
use super::keymap::Keymap;
use super::layout::{self, Tab};
use super::panes;
use super::state::{App, Overlay};
use super::theme::Theme;

/// Every pane's drawing function has this shape.
type PaneRender = fn(&mut Frame, Rect, &App, &Theme);

/// Draw every pane that fits `frame`'s size, then the open overlay on top,
/// with the default keys in footer and help.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    draw_with_keymap(frame, app, theme, &Keymap::default());
}

/// `draw`, with footer and help printed from `keymap`.
pub fn draw_with_keymap(frame: &mut Frame, app: &App, theme: &Theme, keymap: &Keymap) {
    draw_with_images(frame, app, theme, keymap, None);
}

/// `draw_with_keymap`, with the viewer's images drawn by `images` (none: the
/// viewer says where an image would be).
pub fn draw_with_images(
    frame: &mut Frame,
    app: &App,
    theme: &Theme,
    keymap: &Keymap,
    images: Option<&mut ImagePane>,
) {
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
    let optional: [(Option<Rect>, PaneRender); 6] = [
        (panes.dataset, panes::dataset::render),
        (panes.folds, panes::folds::render),
        (panes.loss, panes::loss::render),
        (panes.lr, panes::lr::render),
        (panes.metrics, panes::metrics::render),
        (panes.plc, panes::plc::render),
    ];
    for (area, render) in optional {
        if let Some(area) = area.filter(|a| !a.is_empty()) {
            render(frame, area, app, theme);
        }
    }
    if let Some(area) = panes.tabbed.filter(|a| !a.is_empty())
        && !panes.tabs.is_empty()
    {
        let current = app.tab % panes.tabs.len();
        tab_render(panes.tabs[current])(frame, area, app, theme);
        draw_tab_strip(frame, area, panes.tabs, current, theme);
    }
    if let Some(area) = panes.footer.filter(|a| !a.is_empty()) {
        panes::footer::render(frame, area, app, theme, keymap);
    }

    match app.overlay {
        Overlay::None => {}
        Overlay::Help => panes::help::render(frame, area, theme, keymap),
        Overlay::ConfirmStop => panes::confirm::render(frame, area, theme, keymap),
        Overlay::Viewer => panes::viewer::render(frame, area, app, theme, keymap, images),
    }
}

fn tab_render(tab: Tab) -> PaneRender {
    match tab {
        Tab::Folds => panes::folds::render,
        Tab::Confusion => panes::confusion::render,
        Tab::Dataset => panes::dataset::render,
        Tab::Plc => panes::plc::render,
    }
}

/// The tab names over the shared place's top border, the shown one in the
/// title style. It replaces the pane's own title; a strip too long for the
/// border keeps only the shown tab and how to get to the others.
fn draw_tab_strip(frame: &mut Frame, area: Rect, tabs: &[Tab], current: usize, theme: &Theme) {
    let room = usize::from(area.width.saturating_sub(2));
    let mut spans = vec![Span::styled(" ", theme.border)];
    for (i, tab) in tabs.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" │ ", theme.border));
        }
        let style = if i == current {
            theme.title
        } else {
            theme.muted
        };
        spans.push(Span::styled(tab.title(), style));
    }
    spans.push(Span::styled(" ", theme.border));
    let mut line = Line::from(spans);
    if line.width() > room {
        line = Line::from(vec![
            Span::styled(format!(" {} ", tabs[current].title()), theme.title),
            Span::styled(format!("{}/{} ", current + 1, tabs.len()), theme.muted),
        ]);
    }
    let strip = Rect {
        x: area.x + 1,
        y: area.y,
        width: area.width.saturating_sub(2),
        height: 1.min(area.height),
    };
    // Repaint the border under the strip first: the pane's title is longer
    // than some strips and must not show through.
    let border_line = "─".repeat(usize::from(strip.width));
    frame.render_widget(Span::styled(border_line, theme.border), strip);
    frame.render_widget(line, strip);
}
