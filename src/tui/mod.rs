//! The terminal dashboard.
//!
//! State (`state::App`) is built only by folding the engine's `Stamped` events
//! and by key presses (`input`); drawing (`ui::draw` and `panes/`) only reads
//! it. The loop (`event_loop`) and the terminal (`terminal`) are the only parts
//! that touch a real terminal, so everything else runs in tests on ratatui's
//! `TestBackend`.

pub mod eta;
pub mod event_loop;
pub mod images;
pub mod input;
pub mod keymap;
pub mod layout;
pub mod loss_history;
pub mod panes;
pub mod state;
pub mod terminal;
pub mod theme;
pub mod theme_file;
pub mod ui;
pub mod viewer;

pub use event_loop::{DashboardExit, DashboardOptions, run_dashboard, run_dashboard_blocking};
pub use input::{handle_action, handle_key};
pub use keymap::Keymap;
pub use state::{App, EndStatus, Overlay, RunState, ThetaKeys};
pub use theme::{ColorSupport, Theme};
pub use theme_file::load_theme;
pub use ui::{draw, draw_with_images, draw_with_keymap};
