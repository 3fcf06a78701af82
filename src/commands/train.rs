//! `orchard train [CONFIG] [--data DATA] [--headless] ...`: resolve the config,
//! read the data, create the run directory, start the engine, and watch it with
//! the dashboard (or print fastai-style lines when headless / not a terminal).

use crate::cli::TrainArgs;
use crate::config::{RunConfig, TaskChoice};
use crate::data::{DataSpec, Dataset, load_dataset};
use crate::error::{Error, Result};
use crate::run::{Command, RunDir, RunPlan, engine, headless};
use std::io::IsTerminal;

/// The config file (or the defaults) with the command line's flags on top.
pub fn resolve_config(args: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = match &args.config {
        Some(p) if p.is_dir() || p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) => {
            return Err(Error::input(format!(
                "{}: `orchard train` takes a config file (TOML) here, not data\nfix: orchard train --data {}",
                p.display(),
                p.display()
            )));
        }
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    if let Some(d) = &args.data {
        cfg.data.path = d.clone();
    }
    if let Some(i) = &args.images {
        cfg.data.images = Some(i.clone());
    }
    if let Some(t) = args.task {
        cfg.data.task = TaskChoice::from(t);
    }
    if let Some(p) = &args.pretrained {
        cfg.model.pretrained = Some(p.clone());
    }
    if let Some(p) = &args.soft_labels {
        cfg.soft_labels.oof = Some(p.clone());
    }
    // Checked before the run directory exists, so a typo leaves nothing behind.
    if let Some(p) = &cfg.model.pretrained
        && !p.is_file()
    {
        return Err(Error::input(format!(
            "{}: no such weights file (model.pretrained / --pretrained)\nfix: give the path of a .safetensors or .pth file",
            p.display()
        )));
    }
    let t = &mut cfg.training;
    if let Some(v) = args.epochs {
        t.epochs = v;
    }
    if let Some(v) = args.size {
        t.size = v;
    }
    if let Some(v) = args.bs {
        t.batch_size = v;
    }
    if let Some(v) = args.lr {
        t.lr = v;
    }
    if let Some(v) = args.seed {
        t.seed = v;
        cfg.folds.seed = v;
    }
    if let Some(v) = args.k {
        cfg.folds.k = v;
    }
    if let Some(v) = args.fold {
        cfg.folds.fold = Some(v);
    }
    if let Some(arch) = &args.arch {
        cfg.model.arch = arch.clone();
    }
    if let Some(a) = args.activation {
        cfg.model.activation = match a {
            crate::cli::ActivationArg::Relu => crate::config::Activation::Relu,
            crate::cli::ActivationArg::Mish => crate::config::Activation::Mish,
        };
    }
    cfg.model.self_attention |= args.self_attention;
    cfg.model.maxblurpool |= args.maxblurpool;
    let (over, under) = super::resample_maps(&args.resample);
    cfg.folds.oversample.extend(over);
    cfg.folds.undersample.extend(under);
    cfg.validate()?;
    Ok(cfg)
}

/// Every `n`-th item so that `limit` items remain, keeping the class mix.
fn limit_items(mut ds: Dataset, limit: Option<usize>) -> Dataset {
    if let Some(n) = limit
        && n > 0
        && n < ds.len()
    {
        let len = ds.len();
        ds.items = (0..n).map(|i| ds.items[i * len / n].clone()).collect();
    }
    ds
}

/// A fresh run: config and flags, data, a new run directory.
fn new_plan(args: &TrainArgs) -> Result<(RunPlan, crate::tui::Theme)> {
    let cfg = resolve_config(args)?;
    // Checked before anything starts, headless too: a bad theme is a bad input.
    // The flag overrides the config's dashboard.theme.
    let theme = crate::tui::load_theme(args.theme.as_deref().unwrap_or(&cfg.dashboard.theme))?;
    cfg.check_supported()?;
    let spec = DataSpec {
        path: cfg.data.path.clone(),
        images: cfg.data.images.clone(),
        task: cfg.data.task.forced(),
    };
    let ds = limit_items(load_dataset(&spec)?, args.limit);
    let run_path = args
        .run_dir
        .clone()
        .unwrap_or_else(|| RunDir::default_path(&ds.display_name()));
    Ok((RunPlan::prepare(cfg, ds, &run_path)?, theme))
}

pub fn train(args: TrainArgs) -> Result<()> {
    // A bad keymap is bad input like a bad theme: reported before anything starts.
    let keymap = crate::tui::Keymap::resolve(args.keymap.as_deref())?;
    let (plan, theme) = match &args.resume {
        Some(run_dir) => {
            let plan = RunPlan::reopen(run_dir)?;
            let theme = crate::tui::load_theme(
                args.theme
                    .as_deref()
                    .unwrap_or(&plan.config.dashboard.theme),
            )?;
            (plan, theme)
        }
        None => new_plan(&args)?,
    };
    let run_path = plan.run_dir.path.clone();
    if args.detach {
        // The directory is prepared (config.toml, folds.csv): the background
        // process continues it as a resume that has nothing to resume yet.
        return super::detach::start_detached(&run_path);
    }
    let fps = plan.config.dashboard.fps;
    let theta_keys = super::attach::theta_keys(&plan.config);
    let use_dashboard =
        !args.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let mut plan = plan;
    plan.interactive = use_dashboard;
    let image_paths = std::sync::Arc::new(super::attach::image_paths(&plan.dataset));
    let handle = engine::start(plan)?;
    let mut terminal_lost = false;
    if use_dashboard {
        // Keep a sender: if the dashboard fails, the run is still stopped cleanly.
        let commands = handle.commands.clone();
        let options = crate::tui::DashboardOptions {
            theme,
            fps,
            keymap,
            attached: false,
            theta_keys,
            run_dir: Some(run_path.clone()),
            image_paths,
        };
        match crate::tui::run_dashboard_blocking(handle.events, handle.commands, options) {
            // The run went on without a screen and has ended.
            Ok(crate::tui::DashboardExit::TerminalLost) => terminal_lost = true,
            Ok(crate::tui::DashboardExit::Left) => {}
            Err(e) => eprintln!("the dashboard failed ({e})"),
        }
        // The dashboard is gone (stopped run, error): a run it started must
        // not wait, paused, for a Resume that can no longer come.
        if !terminal_lost && !handle.thread.is_finished() {
            let _ = commands.send(Command::Stop);
            eprintln!("stopping the run after its current epoch...");
        }
    } else {
        // Keep the sender alive: dropping it would tell the engine nobody steers.
        let _commands = handle.commands;
        headless::print_events(handle.events);
    }
    let outcome = handle
        .thread
        .join()
        .map_err(|_| Error::Internal("the engine thread panicked".into()))??;
    if !use_dashboard {
        println!("run directory: {}", run_path.display());
    } else {
        eprintln!(
            "run {}: {}",
            if outcome.stopped {
                "stopped"
            } else {
                "finished"
            },
            run_path.display()
        );
    }
    Ok(())
}
