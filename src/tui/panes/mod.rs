//! One file per pane. Each has `render(frame, area, app, theme)` and draws
//! only from `App`; none of them change state.

pub mod confirm;
pub mod confusion;
pub mod dataset;
pub mod folds;
pub mod footer;
pub mod header;
pub mod help;
pub mod loss;
pub mod lr;
pub mod metrics;
pub mod plc;
pub mod viewer;

use ratatui::text::{Line, Span};
use ratatui::widgets::Block;

use super::theme::Theme;

/// The bordered frame every pane sits in.
pub(crate) fn pane_block(title: &str, theme: &Theme) -> Block<'static> {
    Block::bordered()
        .border_style(theme.border)
        .title(Line::from(Span::styled(format!(" {title} "), theme.title)))
}

/// `x` with 6 decimals as fastai prints metrics, or a dash when it is not a number.
pub(crate) fn metric(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        "—".to_string()
    }
}

/// A learning rate in the short scientific form, e.g. "8.3e-4".
pub(crate) fn lr_text(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1e}")
    } else {
        "—".to_string()
    }
}
