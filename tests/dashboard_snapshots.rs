//! The dashboard drawn from a recorded event stream on ratatui's `TestBackend`.
//!
//! Snapshots pin the text; colours are not in them, so a few style assertions
//! check the roles that carry meaning (state badge, current fold, pending).

use orchard::run::reviews::{CorrectionsFile, PlcRow, Review, ReviewRow};
use orchard::run::{Command, Event, LossItem, Stamped};
use orchard::tui::images::ImagePane;
use orchard::tui::keymap::{ACTIONS, Action, Keymap};
use orchard::tui::{App, Theme, draw, draw_with_images, draw_with_keymap, handle_action};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

const FIXTURE: &str = include_str!("fixtures/run_events.jsonl");

fn recorded_events() -> Vec<Stamped> {
    FIXTURE
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("fixture line is a Stamped event"))
        .collect()
}

fn recorded_app() -> App {
    App::from_events(&recorded_events())
}

fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| draw(frame, app, &Theme::default()))
        .expect("draw");
    terminal.backend().buffer().clone()
}

/// The screen as plain text, one line per row, trailing spaces kept. The
/// dashboard draws only single-width characters, so cells map to columns.
fn screen_text(buffer: &Buffer) -> String {
    (0..buffer.area.height)
        .map(|y| row(buffer, y) + "\n")
        .collect()
}

/// Row `y` of the screen as text.
fn row(buffer: &Buffer, y: u16) -> String {
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol().to_string())
        .collect()
}

/// Position of the first cell of `needle` on the screen.
fn find(buffer: &Buffer, needle: &str) -> Option<(u16, u16)> {
    (0..buffer.area.height).find_map(|y| {
        let line = row(buffer, y);
        let byte = line.find(needle)?;
        let x = line[..byte].chars().count();
        Some((u16::try_from(x).ok()?, y))
    })
}

#[test]
fn fixture_replays_to_the_expected_state() {
    let app = recorded_app();
    assert_eq!(app.state.label(), "RUNNING");
    assert_eq!((app.fold, app.epoch, app.step), (Some(0), Some(2), Some(9)));
    assert_eq!(app.total_steps(), Some(100));
    assert_eq!(app.done_steps(), 10);
    assert_eq!(app.current_fold_epochs().count(), 2);
    // The pause (11.5 s .. 23 s) cleared the rate window: 24.2 .. 31.1 over 3 steps.
    let eta = app.eta_seconds().expect("an ETA");
    assert!((eta - 90.0 * 6.9 / 3.0).abs() < 1e-3, "{eta}");
}

#[test]
fn dashboard_80x24() {
    insta::assert_snapshot!(
        "dashboard_80x24",
        screen_text(&render(&recorded_app(), 80, 24))
    );
}

#[test]
fn dashboard_120x40() {
    insta::assert_snapshot!(
        "dashboard_120x40",
        screen_text(&render(&recorded_app(), 120, 40))
    );
}

#[test]
fn stop_question_80x24() {
    let mut app = recorded_app();
    handle_action(&mut app, Action::Quit);
    insta::assert_snapshot!("stop_question_80x24", screen_text(&render(&app, 80, 24)));
}

#[test]
fn help_overlay_120x40() {
    let mut app = recorded_app();
    handle_action(&mut app, Action::ToggleHelp);
    insta::assert_snapshot!("help_overlay_120x40", screen_text(&render(&app, 120, 40)));
}

#[test]
fn stopped_run_80x24() {
    let mut events = recorded_events();
    let end = events.last().map(|e| e.time).unwrap_or(0.0) + 1.0;
    events.push(Stamped {
        time: end,
        event: Event::Stopping { step: 9 },
    });
    events.push(Stamped {
        time: end + 2.0,
        event: Event::RunEnded {
            status: "stopped".into(),
            message: "stopped by the user after epoch 2 of fold 0".into(),
        },
    });
    let app = App::from_events(&events);
    assert_eq!(app.state.label(), "STOPPED");
    insta::assert_snapshot!("stopped_run_80x24", screen_text(&render(&app, 80, 24)));
}

#[test]
fn nothing_panics_at_odd_sizes() {
    let empty = App::default();
    let mut full = recorded_app();
    for (width, height) in [
        (0, 0),
        (1, 1),
        (20, 5),
        (10, 40),
        (200, 3),
        (59, 30),
        (80, 12),
        (300, 100),
    ] {
        render(&empty, width, height);
        render(&full, width, height);
    }
    for action in [Action::ToggleHelp, Action::Quit] {
        full.overlay = Default::default();
        handle_action(&mut full, action);
        for (width, height) in [(1, 1), (20, 5), (30, 8)] {
            render(&full, width, height);
        }
    }
}

#[test]
fn state_badge_uses_the_running_style() {
    let buffer = render(&recorded_app(), 120, 40);
    let (x, y) = find(&buffer, "RUNNING").expect("badge on screen");
    let theme = Theme::default();
    let expected = theme.state_running;
    assert_eq!(buffer[(x, y)].fg, expected.fg.expect("badge fg"));
    assert_eq!(buffer[(x, y)].bg, expected.bg.expect("badge bg"));
}

#[test]
fn pending_pause_is_shown_in_its_style_until_acknowledged() {
    let mut app = recorded_app();
    assert_eq!(
        handle_action(&mut app, Action::TogglePause),
        Some(Command::Pause)
    );
    let buffer = render(&app, 120, 40);
    let (x, y) = find(&buffer, "pausing…").expect("pending text on screen");
    assert_eq!(Some(buffer[(x, y)].fg), Theme::default().pending.fg);
    assert!(
        find(&buffer, "RUNNING").is_some(),
        "badge waits for the ack"
    );

    let step = app.step.unwrap_or(0);
    app.apply(&Stamped::now(Event::Paused { step }));
    let buffer = render(&app, 120, 40);
    assert!(find(&buffer, "pausing…").is_none());
    assert!(find(&buffer, "PAUSED").is_some());
}

#[test]
fn current_fold_row_is_highlighted() {
    let buffer = render(&recorded_app(), 120, 40);
    let (x, y) = find(&buffer, "▶ 0").expect("current fold marker");
    assert_eq!(Some(buffer[(x, y)].fg), Theme::default().current.fg);
    // The next row is fold 1: same place, not highlighted.
    assert_eq!(buffer[(x + 2, y + 1)].symbol(), "1");
    assert_ne!(Some(buffer[(x + 2, y + 1)].fg), Theme::default().current.fg);
}

/// A real recording: `orchard train --headless --fold 0` on the demo set (5 epochs
/// at 64 px), replayed to its end.
const REAL_RUN: &str = include_str!("fixtures/demo_fold0_events.jsonl");

#[test]
fn real_recorded_run_replays_to_its_end() {
    let events: Vec<Stamped> = REAL_RUN
        .lines()
        .map(|line| serde_json::from_str(line).expect("a recorded Stamped event"))
        .collect();
    let app = App::from_events(&events);
    assert!(app.run_is_over());
    assert_eq!(app.current_fold_epochs().count(), 5);
    insta::assert_snapshot!("real_run_ended_120x40", screen_text(&render(&app, 120, 40)));
}

#[test]
fn confusion_tab_80x24() {
    let mut app = recorded_app();
    // Tabs at 80x24: folds, confusion, data set, label correction.
    handle_action(&mut app, Action::NextTab);
    let buffer = render(&app, 80, 24);
    assert!(find(&buffer, "confusion").is_some());
    insta::assert_snapshot!("confusion_tab_80x24", screen_text(&buffer));
}

#[test]
fn confusion_pane_120x40() {
    // On a large screen the confusion matrix is the first tab.
    let buffer = render(&recorded_app(), 120, 40);
    insta::assert_snapshot!("confusion_pane_120x40", screen_text(&buffer));
}

#[test]
fn confusion_diagonal_and_mistakes_have_their_styles() {
    let mut events = recorded_events();
    let n = recorded_app().plan.expect("a plan").dataset.classes.len();
    let mut confusion = vec![vec![0; n]; n];
    confusion[0][0] = 97;
    confusion[1][0] = 83;
    events.push(Stamped {
        time: events.last().map_or(0.0, |e| e.time) + 1.0,
        event: Event::EpochEnded {
            fold: 0,
            epoch: 2,
            train_loss: 1.0,
            valid_loss: 1.0,
            accuracy: 0.5,
            seconds: 1.0,
            roc_auc: None,
            f_beta: None,
            confusion,
        },
    });
    let buffer = render(&App::from_events(&events), 120, 40);
    let (x, y) = find(&buffer, "actual").expect("the matrix header");
    // Only the matrix: right of and below its header.
    let in_matrix = |needle: &str| {
        (y + 1..buffer.area.height)
            .find_map(|row_y| {
                let line: String = (x..buffer.area.width)
                    .map(|cx| buffer[(cx, row_y)].symbol().to_string())
                    .collect();
                let at = line.find(needle)?;
                Some((x + u16::try_from(line[..at].chars().count()).ok()?, row_y))
            })
            .unwrap_or_else(|| panic!("{needle} not in the matrix"))
    };
    let theme = Theme::default();
    assert_eq!(Some(buffer[in_matrix("97")].fg), theme.success.fg);
    assert_eq!(Some(buffer[in_matrix("83")].fg), theme.warning.fg);
}

/// The recorded run with label correction on and `n` corrections after it
/// (the last one a multi-label style switch, to show label sets).
fn app_with_corrections(n: usize) -> App {
    let mut events = recorded_events();
    let t0 = events.last().map_or(0.0, |e| e.time);
    for i in 0..n {
        let sets = (i + 1 == n).then(|| orchard::run::LabelSets {
            old: vec![0, 2],
            new: vec![2],
        });
        events.push(Stamped {
            time: t0 + i as f64,
            event: Event::LabelCorrected {
                fold: 0,
                epoch: 2,
                step: 9 + i,
                image: format!("/data/images/tux_{i:04}.jpg"),
                old: i % 6,
                new: (i + 1) % 6,
                p_old: 0.125,
                p_new: 0.75,
                theta: 0.8 - 0.01 * i as f64,
                sets,
            },
        });
    }
    let mut app = App::from_events(&events);
    app.theta_keys = orchard::tui::ThetaKeys {
        enabled: true,
        start: 0.9,
        end: 0.5,
        ..Default::default()
    };
    app
}

#[test]
fn plc_log_120x40_lists_corrections_newest_first_and_scrolls() {
    let mut app = app_with_corrections(14);
    // On a large screen the label-correction log is the second tab.
    handle_action(&mut app, Action::NextTab);
    let buffer = render(&app, 120, 40);
    let text = screen_text(&buffer);
    assert!(text.contains("θ 0.67"), "{text}");
    assert!(text.contains("14 corrections"), "{text}");
    // The newest first: the multi-label switch, with its sets.
    let newest = find(&buffer, "tux_0013").expect("the newest correction").1;
    let older = find(&buffer, "tux_0012").expect("the one before").1;
    assert!(newest < older, "{text}");
    assert!(text.contains("mammal fruit → fruit"), "{text}");
    let theta_at = find(&buffer, "θ 0.67 · linear").expect("theta in the pane");
    assert_eq!(Some(buffer[theta_at].fg), Theme::default().current.fg);
    insta::assert_snapshot!("plc_log_120x40", text);
    // `[` goes to older corrections, `]` back.
    handle_action(&mut app, Action::PlcOlder);
    let scrolled = screen_text(&render(&app, 120, 40));
    assert!(
        !scrolled.contains("tux_0013") && scrolled.contains("tux_0008"),
        "{scrolled}"
    );
    handle_action(&mut app, Action::PlcNewer);
    assert_eq!(screen_text(&render(&app, 120, 40)), text);
}

#[test]
fn plc_log_says_when_label_correction_is_off() {
    let mut app = recorded_app();
    handle_action(&mut app, Action::NextTab);
    let text = screen_text(&render(&app, 120, 40));
    assert!(
        text.contains("Label correction is off for this run."),
        "{text}"
    );
}

#[test]
fn tab_cycles_through_the_shared_place() {
    let mut app = recorded_app();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let text = screen_text(&render(&app, 80, 24));
        let title = [
            "folds 1/4",
            "confusion 2/4",
            "data set 3/4",
            "label correction 4/4",
        ]
        .iter()
        .position(|needle| text.contains(needle));
        seen.push(title);
        assert_eq!(title, Some(seen.len() - 1), "{text}");
        handle_action(&mut app, Action::NextTab);
    }
    assert!(seen.iter().all(|s| s.is_some()), "{seen:?}");
    // Four presses come back to the first tab.
    assert_eq!(
        screen_text(&render(&app, 80, 24)),
        screen_text(&render(&recorded_app(), 80, 24))
    );
}

#[test]
fn help_lists_every_action_of_the_keymap() {
    let mut app = recorded_app();
    handle_action(&mut app, Action::ToggleHelp);
    let text = screen_text(&render(&app, 120, 40));
    for info in ACTIONS {
        assert!(
            text.contains(&format!("[{}]", info.name)),
            "{} missing:\n{text}",
            info.name
        );
        assert!(
            text.contains(info.help),
            "{} help missing:\n{text}",
            info.name
        );
    }
}

#[test]
fn help_and_footer_follow_a_rebound_keymap() {
    let keymap = Keymap::from_toml(
        "[main]\ntoggle_pause = [\"p\"]\ntoggle_help = [\"f1\"]\n",
        "test.toml",
    )
    .unwrap();
    let mut app = recorded_app();
    handle_action(&mut app, Action::ToggleHelp);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|frame| draw_with_keymap(frame, &app, &Theme::default(), &keymap))
        .unwrap();
    let text = screen_text(terminal.backend().buffer());
    assert!(text.contains("p  pause training"), "{text}");
    assert!(text.contains("f1  show or hide"), "{text}");
    assert!(text.contains(" p pause/resume"), "footer:\n{text}");
    assert!(!text.contains("space pause/resume"), "{text}");
}

#[test]
fn theta_is_in_the_header_and_pending_until_acknowledged() {
    let mut app = recorded_app();
    assert!(screen_text(&render(&app, 120, 40)).contains("θ 0.90"));
    let sent = handle_action(&mut app, Action::ThetaDown);
    assert_eq!(sent, Some(Command::SetTheta { theta: 0.85 }));
    let text = screen_text(&render(&app, 120, 40));
    assert!(text.contains("setting theta…"), "{text}");
    app.apply(&Stamped::now(Event::ThetaSet {
        step: 9,
        theta: 0.85,
    }));
    let text = screen_text(&render(&app, 120, 40));
    assert!(
        text.contains("θ 0.85") && !text.contains("setting theta…"),
        "{text}"
    );
}

/// The recorded run plus a validation's highest losses and PLC's log, as the
/// viewer gets them.
fn app_with_viewer_items(image: &str) -> App {
    let mut events = recorded_events();
    let time = events.last().map(|e| e.time).unwrap_or(0.0) + 1.0;
    let item = |id: &str, label: usize, probs: Vec<f32>| LossItem {
        image_id: id.into(),
        image: image.into(),
        label,
        loss: -(probs[label] as f64).ln(),
        probs,
    };
    events.push(Stamped {
        time,
        event: Event::ValidationTopLosses {
            fold: 0,
            epoch: 1,
            items: vec![
                item("Train_17", 0, vec![0.02, 0.91, 0.01, 0.02, 0.02, 0.02]),
                item("Train_4", 2, vec![0.10, 0.05, 0.15, 0.60, 0.05, 0.05]),
                item("Train_88", 5, vec![0.30, 0.05, 0.05, 0.05, 0.05, 0.50]),
            ],
        },
    });
    let mut app = App::from_events(&events);
    app.corrections_file = CorrectionsFile {
        plc: vec![PlcRow {
            fold: 0,
            epoch: 1,
            image_id: "Train_23".into(),
            old: "bird".into(),
            new: "fish".into(),
            p_old: Some(0.08),
            p_new: Some(0.83),
        }],
        reviews: vec![ReviewRow {
            image_id: "Train_4".into(),
            original: "fruit".into(),
            label: "fruit".into(),
            review: Review::Rejected,
        }],
    };
    handle_action(&mut app, Action::OpenViewer);
    app
}

#[test]
fn viewer_without_images_120x40() {
    let app = app_with_viewer_items("/nonexistent/Train_17.jpg");
    let buffer = render(&app, 120, 40);
    insta::assert_snapshot!("viewer_without_images_120x40", screen_text(&buffer));
    // The selected item is drawn in the "current" role.
    let (x, y) = find(&buffer, "▶ ").expect("a selected item");
    assert_eq!(buffer[(x + 2, y)].fg, Theme::default().current.fg.unwrap());
}

#[test]
fn viewer_class_list_and_corrections_80x24() {
    let mut app = app_with_viewer_items("/nonexistent/Train_17.jpg");
    handle_action(&mut app, Action::SwitchList);
    handle_action(&mut app, Action::SetClass);
    handle_action(&mut app, Action::NextClass);
    insta::assert_snapshot!(
        "viewer_class_list_and_corrections_80x24",
        screen_text(&render(&app, 80, 24))
    );
}

#[test]
fn viewer_draws_the_image_with_halfblocks_100x30() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("Train_17.png");
    // Top half white, bottom half black: halfblocks show both.
    image::RgbImage::from_fn(400, 400, |_, y| {
        if y < 200 {
            image::Rgb([255, 255, 255])
        } else {
            image::Rgb([0, 0, 0])
        }
    })
    .save(&path)
    .unwrap();
    let app = app_with_viewer_items(path.to_str().unwrap());
    let mut pane = ImagePane::new(orchard::tui::images::halfblocks());
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("test terminal");
    terminal
        .draw(|frame| {
            draw_with_images(
                frame,
                &app,
                &Theme::default(),
                &Keymap::default(),
                Some(&mut pane),
            )
        })
        .expect("draw");
    let buffer = terminal.backend().buffer().clone();
    let text = screen_text(&buffer);
    assert!(text.contains("image · halfblocks"), "{text}");
    let white = buffer
        .content()
        .iter()
        .filter(|c| matches!(c.fg, ratatui::style::Color::Rgb(r, g, b) if r > 240 && g > 240 && b > 240))
        .count();
    assert!(white > 10, "no image drawn:\n{text}");
    insta::assert_snapshot!("viewer_halfblocks_100x30", text);
}

#[test]
fn lr_pane_marks_planned_and_done_resizes() {
    let mut events = recorded_events();
    if let Some(Stamped {
        event: Event::RunStarted { size_schedule, .. },
        ..
    }) = events.first_mut()
    {
        *size_schedule = vec![(1, 96), (3, 128)];
    }
    let time = events.last().map(|e| e.time).unwrap_or(0.0);
    // The fixture's fold 0 is in epoch 2; epoch 1 began at 96 px.
    events.insert(
        events.len() - 1,
        Stamped {
            time,
            event: Event::Resized {
                fold: 0,
                epoch: 1,
                size: 96,
            },
        },
    );
    let app = App::from_events(&events);
    let text = screen_text(&render(&app, 120, 40));
    assert!(text.contains("size 96@e1 128@e3?"), "{text}");
    insta::assert_snapshot!("lr_pane_resizes_120x40", text);
}

/// The loss chart's three series and the sparkline are drawn in their roles'
/// styles: the legend names, an epoch's validation dot, a raw-loss braille
/// cell and a sparkline bar.
#[test]
fn loss_series_have_their_styles() {
    let buffer = render(&recorded_app(), 120, 40);
    let theme = Theme::default();
    for (text, style) in [
        ("batch 1.121", theme.loss),
        ("smoothed 1.516", theme.loss_smoothed),
        ("valid 1.209", theme.loss_valid),
    ] {
        let (x, y) = find(&buffer, text).unwrap_or_else(|| panic!("{text} on screen"));
        assert_eq!(Some(buffer[(x, y)].fg), style.fg, "{text}");
    }
    // The loss pane: from its legend down to its bottom border.
    let (left, top) = find(&buffer, "batch 1.121").unwrap();
    let pane = |x: u16, y: u16| x >= left && x < left + 56 && y > top && y < top + 10;
    let cells = || {
        (0..buffer.area.height)
            .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
            .filter(|&(x, y)| pane(x, y))
            .map(|p| &buffer[p])
    };
    let dots: Vec<_> = cells().filter(|c| c.symbol() == "•").collect();
    assert_eq!(dots.len(), 2, "one dot per ended epoch");
    assert!(dots.iter().all(|c| Some(c.fg) == theme.loss_valid.fg));
    let braille = |c: &&ratatui::buffer::Cell| {
        c.symbol()
            .chars()
            .next()
            .is_some_and(|ch| ('\u{2801}'..='\u{28ff}').contains(&ch))
    };
    for role in [theme.loss, theme.loss_smoothed] {
        assert!(
            cells().filter(braille).any(|c| Some(c.fg) == role.fg),
            "a braille cell in {role:?}"
        );
    }
    assert!(
        cells().any(|c| c.symbol() == "█" && Some(c.fg) == theme.loss.fg),
        "the sparkline in the loss style"
    );
}
