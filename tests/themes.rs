//! Theme files: every shipped theme parses, sets every role and is readable;
//! inheritance, cycles and bad keys; the 16-colour fallback; `--theme` on the
//! real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use orchard::tui::theme::{ColorSupport, nearest_ansi16};
use orchard::tui::theme_file::{BUILTIN_THEMES, load_theme, resolve_theme};
use orchard::tui::{Theme, theme_file};
use ratatui::style::{Color, Modifier, Style};

fn themes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("themes")
}

/// Every `themes/*.toml`, sorted.
fn theme_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(themes_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_str().unwrap().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn every_theme_file_parses_and_sets_every_role() {
    let files = theme_files();
    let names: Vec<String> = files.iter().map(|f| stem(f)).collect();
    for want in ["default", "dark", "light", "high-contrast"] {
        assert!(
            names.iter().any(|n| n == want),
            "themes/{want}.toml missing"
        );
    }
    for file in &files {
        let loaded = resolve_theme(p(file)).unwrap_or_else(|e| panic!("{e}"));
        // Set by a file of the chain, not left to the built-in fallback:
        // `Theme::ROLES` comes from the struct itself, so a new role fails here
        // until every shipped theme styles it.
        for role in Theme::ROLES {
            assert!(
                loaded.role_origins.contains_key(role),
                "{}: role `{role}` is not set (directly or via inherits)",
                file.display()
            );
        }
    }
}

#[test]
fn every_theme_file_is_embedded_and_resolves_by_name() {
    let files = theme_files();
    assert_eq!(
        files.len(),
        BUILTIN_THEMES.len(),
        "embed every shipped theme"
    );
    for file in &files {
        let name = stem(file);
        let (_, text) = BUILTIN_THEMES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not in BUILTIN_THEMES"));
        assert_eq!(*text, std::fs::read_to_string(file).unwrap(), "{name}");
        assert_eq!(load_theme(&name).unwrap(), load_theme(p(file)).unwrap());
    }
    let available = theme_file::available_themes();
    for name in ["default", "dark", "light", "high-contrast"] {
        assert!(available.iter().any(|n| n == name), "{available:?}");
    }
}

#[test]
fn default_file_is_the_builtin_ansi16_theme() {
    let loaded = resolve_theme(p(&themes_dir().join("default.toml"))).unwrap();
    assert_eq!(loaded.theme, Theme::ansi16());
    assert_eq!(loaded.chain.len(), 1, "default.toml inherits nothing");
    assert_eq!(loaded.role_origins.len(), Theme::ROLES.len());
    assert_eq!(load_theme("default").unwrap(), Theme::default());
}

#[test]
fn a_child_overrides_roles_and_palette_and_inherits_the_rest() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "base.toml",
        r##"
        title = { fg = "accent", modifiers = ["bold"] }
        border = { fg = "accent" }
        muted = { fg = "#101010" }
        [palette]
        accent = "#0000ff"
        "##,
    );
    let child = write(
        t.path(),
        "child.toml",
        r##"
        inherits = "base"
        muted = { fg = "white", bg = "black" }
        [palette]
        accent = "#00ff00"
        "##,
    );
    let loaded = resolve_theme(p(&child)).unwrap();
    let theme = &loaded.theme;
    let green = Color::Rgb(0, 255, 0);
    // The parent's roles are resolved against the merged palette.
    assert_eq!(
        theme.title,
        Style::new().fg(green).add_modifier(Modifier::BOLD)
    );
    assert_eq!(theme.border, Style::new().fg(green));
    // The child's role replaces the parent's whole role.
    assert_eq!(theme.muted, Style::new().fg(Color::White).bg(Color::Black));
    // Set by no file: the built-in default, root of every chain.
    assert_eq!(theme.gauge, Theme::ansi16().gauge);
    assert_eq!(loaded.chain.len(), 2);
    assert!(loaded.role_origins["title"].ends_with("base.toml"));
    assert!(loaded.role_origins["muted"].ends_with("child.toml"));
    assert!(!loaded.role_origins.contains_key("gauge"));

    // A shipped theme as parent, by name; and a parent by relative path.
    let over_dark = write(
        t.path(),
        "over-dark.toml",
        "inherits = \"dark\"\ntitle = { fg = \"#ff0000\" }\nkey = { fg = \"red\" }\n",
    );
    let theme = load_theme(p(&over_dark)).unwrap();
    let dark = load_theme("dark").unwrap();
    assert_eq!(theme.title, Style::new().fg(Color::Rgb(255, 0, 0)));
    assert_eq!(theme.text, dark.text);
    // The inherited palette's `red` shadows the ANSI name.
    assert_eq!(theme.key.fg, dark.error.fg);
    std::fs::create_dir(t.path().join("sub")).unwrap();
    let by_path = write(
        &t.path().join("sub"),
        "x.toml",
        "inherits = \"../base.toml\"\n",
    );
    let theme = load_theme(p(&by_path)).unwrap();
    assert_eq!(theme.border, Style::new().fg(Color::Rgb(0, 0, 255)));
}

#[test]
fn an_inheritance_cycle_is_an_error_naming_the_files() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a.toml", "inherits = \"b\"\n");
    write(t.path(), "b.toml", "inherits = \"c\"\n");
    write(t.path(), "c.toml", "inherits = \"a\"\n");
    let err = resolve_theme(p(&a)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("cycle"), "{msg}");
    for f in ["a.toml", "b.toml", "c.toml"] {
        assert!(msg.contains(f), "{f} missing from {msg}");
    }
    let own = write(t.path(), "own.toml", "inherits = \"own\"\n");
    let msg = resolve_theme(p(&own)).unwrap_err().to_string();
    assert!(msg.contains("cycle") && msg.contains("own.toml"), "{msg}");
}

#[test]
fn unknown_roles_colours_and_parents_name_the_file_and_key() {
    let t = tempfile::tempdir().unwrap();
    let cases = [
        (
            "role.toml",
            "titel = { fg = \"red\" }\n",
            "unknown role `titel`",
        ),
        (
            "colour.toml",
            "title = { fg = \"cyan\" }\nborder = { bg = \"grey50\" }\n",
            "border.bg: unknown colour \"grey50\"",
        ),
        (
            "palette.toml",
            "[palette]\naccent = \"#12345\"\n",
            "palette.accent: unknown colour",
        ),
        (
            "parent.toml",
            "inherits = \"nope\"\n",
            "unknown theme \"nope\"",
        ),
    ];
    for (name, text, needle) in cases {
        let path = write(t.path(), name, text);
        let err = load_theme(p(&path)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{name}");
        let msg = err.to_string();
        assert!(msg.contains(name), "{name} not named in {msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    // An error in a parent names the parent, not the child.
    write(t.path(), "bad-parent.toml", "key = { fg = \"nope\" }\n");
    let child = write(t.path(), "kid.toml", "inherits = \"bad-parent\"\n");
    let msg = load_theme(p(&child)).unwrap_err().to_string();
    assert!(msg.contains("bad-parent.toml: key.fg"), "{msg}");
    // A missing file is the user's to fix too.
    let err = load_theme(p(&t.path().join("missing.toml"))).unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

/// WCAG 2 relative luminance of an sRGB colour.
fn luminance(c: Color) -> f64 {
    let Color::Rgb(r, g, b) = c else {
        panic!("{c:?} is not RGB")
    };
    let lin = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

fn contrast(a: Color, b: Color) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Each role's foreground against its background (its own, or the screen's):
/// WCAG AA for text (4.5:1), 3:1 for borders and bars, AAA (7:1) everywhere in
/// the high-contrast theme.
#[test]
fn true_colour_themes_are_readable() {
    for name in ["dark", "light", "high-contrast"] {
        let theme = load_theme(name).unwrap();
        let screen = theme
            .background
            .bg
            .expect("a true-colour theme sets its background");
        for (role, style) in theme.roles() {
            let Some(fg) = style.fg else { continue };
            let bg = style.bg.unwrap_or(screen);
            let need = match (name, role) {
                ("high-contrast", _) => 7.0,
                (_, "border" | "gauge") => 3.0,
                _ => 4.5,
            };
            let got = contrast(fg, bg);
            assert!(got >= need, "{name}.{role}: contrast {got:.2} < {need}");
        }
    }
}

#[test]
fn without_true_colour_every_theme_is_ansi16_and_keeps_fg_apart_from_bg() {
    for (name, _) in BUILTIN_THEMES {
        let theme = load_theme(name).unwrap().for_terminal(ColorSupport::Ansi16);
        let screen = theme.background.bg;
        for (role, style) in theme.roles() {
            for colour in [style.fg, style.bg].into_iter().flatten() {
                assert!(
                    !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                    "{name}.{role}: {colour:?}"
                );
            }
            if let (Some(fg), Some(bg)) = (style.fg, style.bg.or(screen)) {
                assert_ne!(fg, bg, "{name}.{role} becomes invisible in 16 colours");
            }
        }
    }
    // The default is ANSI already: the fallback leaves it alone.
    assert_eq!(Theme::ansi16().to_ansi16(), Theme::ansi16());
}

#[test]
fn pure_rgb_colours_map_to_the_obvious_ansi_colour() {
    assert_eq!(nearest_ansi16(255, 0, 0), Color::Red);
    assert_eq!(nearest_ansi16(0, 255, 0), Color::Green);
    assert_eq!(nearest_ansi16(0, 0, 255), Color::Blue);
    assert_eq!(nearest_ansi16(255, 255, 255), Color::White);
    assert_eq!(nearest_ansi16(0, 0, 0), Color::Black);
}

fn orchard(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orchard"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn train_with_an_unknown_theme_fails_before_training() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("r");
    let (code, err) = orchard(&[
        "train",
        "--theme",
        "nope",
        "--headless",
        "--run-dir",
        p(&run_dir),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown theme \"nope\""), "{err}");
    assert!(
        err.contains("high-contrast"),
        "names the available themes: {err}"
    );
    assert!(!run_dir.exists(), "the run started");

    let bad = write(t.path(), "bad.toml", "title = { fg = \"cyann\" }\n");
    let (code, err) = orchard(&[
        "train",
        "--theme",
        p(&bad),
        "--headless",
        "--run-dir",
        p(&run_dir),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml: title.fg"), "{err}");
    assert!(!run_dir.exists(), "the run started");
}

#[test]
fn the_theme_flag_overrides_the_config() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("r");
    let config = write(t.path(), "run.toml", "[dashboard]\ntheme = \"nope\"\n");
    let (code, err) = orchard(&["train", p(&config), "--headless", "--run-dir", p(&run_dir)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown theme \"nope\""), "{err}");

    // With the flag, the config's bad theme is never looked at: the run gets as
    // far as the (missing) data set.
    let missing = t.path().join("no-data");
    let (code, err) = orchard(&[
        "train",
        p(&config),
        "--theme",
        "dark",
        "--data",
        p(&missing),
        "--headless",
        "--run-dir",
        p(&run_dir),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("theme"), "{err}");
    assert!(!run_dir.exists());
}

/// Every shipped theme reaches the screen: the state badge of a recorded run
/// is drawn in that theme's `state_running` style.
#[test]
fn every_theme_styles_the_dashboard() {
    use orchard::run::Stamped;
    use orchard::tui::{App, draw};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    let events: Vec<Stamped> = include_str!("fixtures/run_events.jsonl")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let app = App::from_events(&events);
    for (name, _) in BUILTIN_THEMES {
        let theme = load_theme(name).unwrap();
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal.draw(|frame| draw(frame, &app, &theme)).unwrap();
        let buffer = terminal.backend().buffer();
        let badge = (0..buffer.area.height)
            .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
            .find(|&(x, y)| {
                (0..7).all(|i| {
                    x + i < buffer.area.width
                        && buffer[(x + i, y)].symbol() == &"RUNNING"[i as usize..=i as usize]
                })
            })
            .unwrap_or_else(|| panic!("{name}: no RUNNING badge"));
        let cell = &buffer[badge];
        assert_eq!(Some(cell.fg), theme.state_running.fg, "{name}");
        assert_eq!(Some(cell.bg), theme.state_running.bg, "{name}");
    }
}
