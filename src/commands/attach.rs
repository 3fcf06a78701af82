//! `orchard attach RUN_DIR`: a dashboard on a run another process runs (or
//! ran). It replays the run's history, follows it live over `control.sock`
//! and sends the keys' Commands there; leaving (`q`, a closed terminal) never
//! stops the run. Not on a terminal, it prints the headless lines instead, so
//! `orchard attach RUN_DIR | tail` follows a run too.

use crate::cli::AttachArgs;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::run::{control, headless};
use crate::tui::{DashboardOptions, Keymap, ThetaKeys};
use std::io::IsTerminal;

pub fn attach(args: AttachArgs) -> Result<()> {
    // Everything that can be bad input is checked before the screen changes.
    let attachment = control::attach(&args.run_dir)?;
    let config = RunConfig::load(&args.run_dir.join("config.toml"))?;
    let theme = crate::tui::load_theme(args.theme.as_deref().unwrap_or(&config.dashboard.theme))?;
    let keymap = Keymap::resolve(args.keymap.as_deref())?;
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        headless::print_events(attachment.events);
        return Ok(());
    }
    let options = DashboardOptions {
        theme,
        fps: config.dashboard.fps,
        keymap,
        attached: true,
        theta_keys: theta_keys(&config),
    };
    crate::tui::run_dashboard_blocking(attachment.events, attachment.commands, options)
        .map_err(|e| Error::Internal(format!("the dashboard failed: {e}")))
}

/// Where `+`/`-` start and how far they step: the run's `[label_correction]`.
pub fn theta_keys(config: &RunConfig) -> ThetaKeys {
    ThetaKeys {
        start: config.label_correction.theta_start,
        step: config.label_correction.theta_step,
    }
}
