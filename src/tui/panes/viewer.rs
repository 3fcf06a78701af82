//! The mislabeled-item viewer, over the whole screen: the list on the left,
//! the selected image and its numbers on the right, the class list on top
//! when a class is being set.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph, Wrap};

use super::pane_block;
use crate::run::reviews::Review;
use crate::tui::images::ImagePane;
use crate::tui::keymap::{Context, Keymap};
use crate::tui::state::App;
use crate::tui::theme::Theme;
use crate::tui::viewer::{self, ViewItem, ViewerList};

/// Draw the viewer over `area`. Without an `ImagePane` (tests, a terminal
/// that cannot show images) the image place says so in words.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    theme: &Theme,
    keymap: &Keymap,
    images: Option<&mut ImagePane>,
) {
    frame.render_widget(Clear, area);
    frame.buffer_mut().set_style(area, theme.background);
    let [body, footer] = Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    let [list_area, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
    let items = viewer::items(app);
    let selected = app.viewer.selected.min(items.len().saturating_sub(1));
    render_list(frame, list_area, app, &items, selected, theme);
    let [image_area, details_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(8)]).areas(right);
    let item = items.get(selected);
    let protocol = images.as_ref().map_or("no images", |p| p.protocol_name());
    let image_block = pane_block(&format!("image · {protocol}"), theme);
    let inner = image_block.inner(image_area);
    frame.render_widget(image_block, image_area);
    let shown = match (item.and_then(|i| i.image.as_deref()), images) {
        (Some(path), Some(pane)) => pane.render(frame, inner, path),
        (Some(_), None) => Err("images are not shown here".into()),
        (None, _) => Err("no image file known for this item".into()),
    };
    if let (Err(why), Some(_)) = (&shown, item) {
        frame.render_widget(
            Paragraph::new(Span::styled(why.clone(), theme.muted)).wrap(Wrap { trim: true }),
            inner,
        );
    }
    render_details(frame, details_area, item, theme);
    frame.render_widget(footer_line(app, theme, keymap), footer);
    if let Some(cursor) = app.viewer.picking {
        render_class_list(frame, area, app, cursor, theme);
    }
}

fn render_list(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    items: &[ViewItem],
    selected: usize,
    theme: &Theme,
) {
    // The footer says which key switches lists.
    let title = format!("{} ({})", app.viewer.list.title(), items.len());
    let block = pane_block(&title, theme);
    if items.is_empty() {
        let why = match app.viewer.list {
            ViewerList::TopLosses => "no validation yet",
            ViewerList::Corrections => "no label corrected (yet)",
        };
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new(Span::styled(why, theme.muted)), inner);
        return;
    }
    let rows: Vec<ListItem> = items
        .iter()
        .map(|item| {
            let mut spans = vec![
                Span::styled(format!("{} ", review_mark(item)), review_style(item, theme)),
                Span::styled(item.image_id.clone(), theme.text),
                Span::styled(format!(" {} → {}", item.label, item.suggested), theme.muted),
            ];
            if let Some(p) = item.probs.first() {
                spans.push(Span::styled(format!(" {:.2}", p.1), theme.muted));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let list = List::new(rows)
        .block(block)
        .highlight_style(theme.current)
        .highlight_symbol("▶ ");
    let mut state = ListState::default().with_selected(Some(selected));
    frame.render_stateful_widget(list, area, &mut state);
}

/// One character per review state: ✓ accepted, ✗ rejected, = set, · none.
fn review_mark(item: &ViewItem) -> char {
    match item.review.as_ref().map(|r| r.review) {
        Some(Review::Accepted) => '✓',
        Some(Review::Rejected) => '✗',
        Some(Review::Set) => '=',
        None => '·',
    }
}

fn review_style(item: &ViewItem, theme: &Theme) -> ratatui::style::Style {
    match item.review.as_ref().map(|r| r.review) {
        Some(Review::Accepted) => theme.success,
        Some(Review::Rejected) => theme.error,
        Some(Review::Set) => theme.warning,
        None => theme.muted,
    }
}

fn render_details(frame: &mut Frame, area: Rect, item: Option<&ViewItem>, theme: &Theme) {
    let block = pane_block("item", theme);
    let Some(item) = item else {
        frame.render_widget(block, area);
        return;
    };
    let review = match &item.review {
        Some(r) => Span::styled(
            format!("reviewed: {} → {}", r.review.as_str(), r.label),
            review_style(item, theme),
        ),
        None => Span::styled("not reviewed", theme.muted),
    };
    let probs: Vec<Span> = item
        .probs
        .iter()
        .take(6)
        .flat_map(|(class, p)| {
            [
                Span::styled(format!("{class} "), theme.text),
                Span::styled(format!("{p:.3}  "), theme.current),
            ]
        })
        .collect();
    let lines = vec![
        Line::from(vec![
            Span::styled("image ", theme.muted),
            Span::styled(item.image_id.clone(), theme.title),
        ]),
        Line::from(vec![
            Span::styled("label ", theme.muted),
            Span::styled(item.label.clone(), theme.text),
            Span::styled("  suggested ", theme.muted),
            Span::styled(item.suggested.clone(), theme.text),
        ]),
        Line::from(Span::styled(item.detail.clone(), theme.muted)),
        Line::from(probs),
        Line::from(review),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn footer_line(app: &App, theme: &Theme, keymap: &Keymap) -> Line<'static> {
    let mut spans = Vec::new();
    if let Some(message) = &app.viewer.message {
        spans.push(Span::styled(format!("{message}  "), theme.pending));
    }
    for binding in keymap.bindings_in(Context::Viewer) {
        if binding.info.hint.is_empty() || binding.keys.is_empty() {
            continue;
        }
        spans.push(Span::styled(binding.keys[0].name(), theme.key));
        spans.push(Span::styled(
            format!(" {}  ", binding.info.hint),
            theme.muted,
        ));
    }
    Line::from(spans)
}

fn render_class_list(frame: &mut Frame, area: Rect, app: &App, cursor: usize, theme: &Theme) {
    let classes: &[String] = app
        .plan
        .as_ref()
        .map(|p| p.dataset.classes.as_slice())
        .unwrap_or_default();
    let height = u16::try_from(classes.len() + 2).unwrap_or(u16::MAX);
    let popup = area.centered(Constraint::Max(40), Constraint::Max(height));
    frame.render_widget(Clear, popup);
    frame.buffer_mut().set_style(popup, theme.background);
    let rows: Vec<ListItem> = classes
        .iter()
        .map(|c| ListItem::new(Span::styled(c.clone(), theme.text)))
        .collect();
    let list = List::new(rows)
        .block(pane_block("set the class · enter / esc", theme))
        .highlight_style(theme.current)
        .highlight_symbol("▶ ");
    let mut state = ListState::default().with_selected(Some(cursor));
    frame.render_stateful_widget(list, popup, &mut state);
}
