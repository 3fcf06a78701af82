//! `orchard attach RUN_DIR`: a dashboard on a run another process runs (or
//! ran). It replays the run's history, follows it live over `control.sock`
//! and sends the keys' Commands there; leaving (`q`, a closed terminal) never
//! stops the run. Not on a terminal, it prints the headless lines instead, so
//! `orchard attach RUN_DIR | tail` follows a run too.

use crate::cli::AttachArgs;
use crate::config::RunConfig;
use crate::data::{DataSpec, Dataset, load_dataset};
use crate::error::{Error, Result};
use crate::run::{control, headless};
use crate::tui::{DashboardOptions, Keymap, ThetaKeys};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

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
        run_dir: Some(args.run_dir.clone()),
        image_paths: Arc::new(run_image_paths(&config)),
    };
    crate::tui::run_dashboard_blocking(attachment.events, attachment.commands, options)
        .map(|_| ())
        .map_err(|e| Error::Internal(format!("the dashboard failed: {e}")))
}

/// Image id -> image file of a data set, for the viewer.
pub fn image_paths(ds: &Dataset) -> HashMap<String, PathBuf> {
    ds.items
        .iter()
        .map(|i| (i.id.clone(), i.path.clone()))
        .collect()
}

/// The run's data read again for its image files; a data set that moved or
/// went away only costs the viewer its pictures of corrected images.
fn run_image_paths(config: &RunConfig) -> HashMap<String, PathBuf> {
    let spec = DataSpec {
        path: config.data.path.clone(),
        images: config.data.images.clone(),
        task: config.data.task.forced(),
    };
    load_dataset(&spec)
        .map(|ds| image_paths(&ds))
        .unwrap_or_default()
}

/// Where `+`/`-` start and how far they step: the run's `[label_correction]`.
pub fn theta_keys(config: &RunConfig) -> ThetaKeys {
    ThetaKeys::from_config(&config.label_correction)
}
