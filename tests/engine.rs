//! The engine on its own thread: pause really stops between batches, every
//! command is acknowledged, and a run writes its directory.

mod common;
use common::*;
use orchard::config::RunConfig;
use orchard::data::{DataSpec, load_dataset};
use orchard::run::{Command, Event, RunPlan, Stamped, start};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

fn tiny_config(data: &std::path::Path) -> RunConfig {
    let mut cfg = RunConfig::default();
    cfg.data.path = data.to_path_buf();
    cfg.folds.k = 2;
    cfg.folds.fold = Some(0);
    cfg.training.size = 16;
    cfg.training.batch_size = 2;
    cfg.training.epochs = 2;
    cfg
}

/// Wait for the next event matching `pred`, failing after `secs`.
fn wait_for(
    rx: &mut UnboundedReceiver<Stamped>,
    secs: u64,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(s) => {
                let hit = pred(&s.event);
                seen.push(s.event);
                if hit {
                    return seen;
                }
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
    panic!("event not seen within {secs}s; saw {seen:?}");
}

#[test]
fn pause_stops_batches_until_resume() {
    let t = tempfile::tempdir().unwrap();
    let data = one_hot_dataset(&t.path().join("data"), &["red", "blue"], &[12, 12]);
    let cfg = tiny_config(&data);
    let ds = load_dataset(&DataSpec::new(&data)).unwrap();
    let plan = RunPlan::prepare(cfg, ds, &t.path().join("run")).unwrap();
    let mut h = start(plan).unwrap();

    wait_for(&mut h.events, 60, |e| matches!(e, Event::Batch { .. }));
    h.commands.send(Command::Pause).unwrap();
    wait_for(&mut h.events, 60, |e| matches!(e, Event::Paused { .. }));
    // While paused, nothing at all may happen: no batch, no epoch end.
    std::thread::sleep(Duration::from_millis(800));
    let mut while_paused = Vec::new();
    while let Ok(s) = h.events.try_recv() {
        while_paused.push(s.event);
    }
    assert!(
        while_paused.is_empty(),
        "events while paused: {while_paused:?}"
    );

    h.commands.send(Command::Resume).unwrap();
    wait_for(&mut h.events, 60, |e| matches!(e, Event::Resumed { .. }));
    wait_for(&mut h.events, 60, |e| matches!(e, Event::Batch { .. }));
    let rest = wait_for(&mut h.events, 120, |e| matches!(e, Event::RunEnded { .. }));
    match rest.last().unwrap() {
        Event::RunEnded { status, .. } => assert_eq!(status, "completed"),
        _ => unreachable!(),
    }
    let outcome = h.thread.join().unwrap().unwrap();
    assert!(!outcome.stopped);
}

#[test]
fn stop_is_acknowledged_and_ends_after_the_epoch() {
    let t = tempfile::tempdir().unwrap();
    let data = one_hot_dataset(&t.path().join("data"), &["red", "blue"], &[12, 12]);
    let mut cfg = tiny_config(&data);
    cfg.training.epochs = 5;
    let ds = load_dataset(&DataSpec::new(&data)).unwrap();
    let plan = RunPlan::prepare(cfg, ds, &t.path().join("run")).unwrap();
    let mut h = start(plan).unwrap();
    wait_for(&mut h.events, 60, |e| matches!(e, Event::Batch { .. }));
    h.commands.send(Command::Stop).unwrap();
    let seen = wait_for(&mut h.events, 120, |e| matches!(e, Event::RunEnded { .. }));
    assert!(
        seen.iter().any(|e| matches!(e, Event::Stopping { .. })),
        "{seen:?}"
    );
    let epochs_ended = seen
        .iter()
        .filter(|e| matches!(e, Event::EpochEnded { .. }))
        .count();
    assert_eq!(
        epochs_ended, 1,
        "the current epoch finishes, no more: {seen:?}"
    );
    match seen.last().unwrap() {
        Event::RunEnded { status, .. } => assert_eq!(status, "stopped"),
        _ => unreachable!(),
    }
    assert!(h.thread.join().unwrap().unwrap().stopped);
}

#[test]
fn a_nan_loss_pauses_a_watched_run_and_stops_an_unwatched_one() {
    let t = tempfile::tempdir().unwrap();
    let data = one_hot_dataset(&t.path().join("data"), &["red", "blue"], &[12, 12]);
    let ds = load_dataset(&DataSpec::new(&data)).unwrap();
    let mut cfg = tiny_config(&data);
    // Every Adam step moves a weight by about lr: the logits overflow at once.
    cfg.training.lr = 1e30;

    // Watched: a warning, then Paused; Resume continues, Stop ends the run.
    let mut plan = RunPlan::prepare(cfg.clone(), ds.clone(), &t.path().join("watched")).unwrap();
    plan.interactive = true;
    let mut h = start(plan).unwrap();
    let seen = wait_for(&mut h.events, 60, |e| matches!(e, Event::Paused { .. }));
    assert!(
        seen.iter().any(
            |e| matches!(e, Event::Warning { message } if message.contains("step was skipped"))
        ),
        "{seen:?}"
    );
    h.commands.send(Command::Stop).unwrap();
    wait_for(&mut h.events, 60, |e| matches!(e, Event::RunEnded { .. }));
    assert!(h.thread.join().unwrap().unwrap().stopped);

    // Unwatched (headless): the run stops by itself instead of waiting forever.
    let plan = RunPlan::prepare(cfg, ds, &t.path().join("unwatched")).unwrap();
    let mut h = start(plan).unwrap();
    let seen = wait_for(&mut h.events, 60, |e| matches!(e, Event::RunEnded { .. }));
    assert!(
        seen.iter().any(|e| matches!(e, Event::Stopping { .. })),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|e| matches!(e, Event::Paused { .. })));
    assert!(h.thread.join().unwrap().unwrap().stopped);
}

#[test]
fn resize_now_and_set_theta_are_acknowledged_and_resize_switches_at_the_next_epoch() {
    let t = tempfile::tempdir().unwrap();
    let data = one_hot_dataset(&t.path().join("data"), &["red", "blue"], &[12, 12]);
    let mut cfg = tiny_config(&data);
    cfg.training.epochs = 3;
    cfg.training.size_schedule = vec![(2, 24)];
    let ds = load_dataset(&DataSpec::new(&data)).unwrap();
    let plan = RunPlan::prepare(cfg, ds, &t.path().join("run")).unwrap();
    let mut h = start(plan).unwrap();

    // Pause inside epoch 0 so the request surely lands before epoch 1 starts.
    wait_for(&mut h.events, 60, |e| matches!(e, Event::Batch { .. }));
    h.commands.send(Command::Pause).unwrap();
    wait_for(&mut h.events, 60, |e| matches!(e, Event::Paused { .. }));
    h.commands.send(Command::ResizeNow { size: None }).unwrap();
    wait_for(&mut h.events, 60, |e| {
        matches!(e, Event::ResizeRequested { size: None, .. })
    });
    h.commands.send(Command::SetTheta { theta: 0.4 }).unwrap();
    wait_for(
        &mut h.events,
        60,
        |e| matches!(e, Event::ThetaSet { theta, .. } if *theta == 0.4),
    );
    h.commands.send(Command::Resume).unwrap();
    let seen = wait_for(&mut h.events, 120, |e| matches!(e, Event::RunEnded { .. }));
    let resized: Vec<(usize, u32)> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Resized { epoch, size, .. } => Some((*epoch, *size)),
            _ => None,
        })
        .collect();
    // Brought forward from epoch 2 to epoch 1; the planned step is then passed over.
    assert_eq!(resized, [(1, 24)], "{seen:?}");
    h.thread.join().unwrap().unwrap();
}
