//! Theme files: `themes/NAME.toml`, named after helix's themes.
//!
//! ```toml
//! inherits = "default"            # optional; the chain ends at the built-in ANSI-16 theme
//!
//! [palette]                       # named colours: "#rrggbb" or an ANSI name
//! accent = "#89b4fa"
//!
//! border = { fg = "gray" }        # one key per role of `Theme`
//! title = { fg = "accent", modifiers = ["bold"] }
//! muted = "dark-gray"             # a bare colour is the foreground
//! ```
//!
//! Inheritance works as in helix: the palettes and roles of the chain are merged
//! first (a child's palette entry replaces its parent's, a child's role replaces
//! the whole role), then every role is resolved against the merged palette, so a
//! child that only changes the palette recolours its parent's roles. Roles no
//! file sets keep the built-in `Theme::ansi16()` style.
//!
//! A name is looked up in `./themes/`, then in the source tree's `themes/`, then
//! among the shipped themes compiled into the binary, so a name resolves
//! wherever the binary runs. Anything with a `/` or ending in `.toml` is a path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use toml::{Table, Value};

use super::theme::Theme;
use crate::error::{Error, Result};

/// The directory of theme files, relative to the working directory.
pub const THEME_DIR: &str = "themes";

/// The shipped themes, compiled in: (name, TOML text).
pub const BUILTIN_THEMES: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Colour names a theme may use besides `#rrggbb` and its palette.
pub const ANSI_COLOUR_NAMES: &[(&str, Color)] = &[
    ("reset", Color::Reset),
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("dark-gray", Color::DarkGray),
    ("light-red", Color::LightRed),
    ("light-green", Color::LightGreen),
    ("light-yellow", Color::LightYellow),
    ("light-blue", Color::LightBlue),
    ("light-magenta", Color::LightMagenta),
    ("light-cyan", Color::LightCyan),
    ("white", Color::White),
];

/// Text attributes a role's `modifiers` may list.
pub const MODIFIER_NAMES: &[(&str, Modifier)] = &[
    ("bold", Modifier::BOLD),
    ("dim", Modifier::DIM),
    ("italic", Modifier::ITALIC),
    ("underlined", Modifier::UNDERLINED),
    ("slow-blink", Modifier::SLOW_BLINK),
    ("rapid-blink", Modifier::RAPID_BLINK),
    ("reversed", Modifier::REVERSED),
    ("hidden", Modifier::HIDDEN),
    ("crossed-out", Modifier::CROSSED_OUT),
];

/// A loaded theme and where each of its parts came from.
#[derive(Debug, Clone)]
pub struct LoadedTheme {
    pub theme: Theme,
    /// The files of the inheritance chain, the one asked for first.
    pub chain: Vec<String>,
    /// For each role a file of the chain sets, that file; roles missing here
    /// have the built-in `Theme::ansi16()` style.
    pub role_origins: BTreeMap<&'static str, String>,
}

/// Load a theme by `NAME` or `PATH` (as `--theme` takes it).
pub fn load_theme(spec: &str) -> Result<Theme> {
    resolve_theme(spec).map(|t| t.theme)
}

/// Load a theme by `NAME` or `PATH`, keeping the inheritance chain and which
/// file set each role.
pub fn resolve_theme(spec: &str) -> Result<LoadedTheme> {
    let first = locate(spec, None)?;
    resolve_chain(first)
}

/// Parse one theme from TOML text, with `inherits` looked up as for `--theme`
/// (and beside `dir`, when given). `origin` names the text in errors.
pub fn parse_theme(text: &str, origin: &str, dir: Option<&Path>) -> Result<LoadedTheme> {
    resolve_chain(Source {
        id: format!("<text>{origin}"),
        origin: origin.to_string(),
        dir: dir.map(Path::to_path_buf),
        text: text.to_string(),
    })
}

/// The theme names `--theme` accepts: files in `./themes/` and the source
/// tree's `themes/`, and the shipped themes; sorted, without duplicates.
pub fn available_themes() -> Vec<String> {
    let mut names: Vec<String> = BUILTIN_THEMES.iter().map(|(n, _)| n.to_string()).collect();
    for dir in search_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Parse a colour literal: `#rrggbb` or an ANSI name (see `ANSI_COLOUR_NAMES`;
/// `grey` is accepted for `gray`, `_` for `-`).
pub fn parse_colour(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        return Some(Color::Rgb(byte(0)?, byte(2)?, byte(4)?));
    }
    let name = s
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-")
        .replace("grey", "gray");
    ANSI_COLOUR_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, c)| c)
}

/// The text of one theme file and how to name it.
struct Source {
    /// Identity for cycle detection: the canonical path, or the built-in name.
    id: String,
    /// What errors call it.
    origin: String,
    /// Its directory, for `inherits` that names a sibling file.
    dir: Option<PathBuf>,
    text: String,
}

/// One role as a file writes it, before colours are resolved.
#[derive(Debug, Clone, Default)]
struct RoleSpec {
    fg: Option<String>,
    bg: Option<String>,
    modifiers: Modifier,
}

/// One parsed file.
struct ThemeFile {
    inherits: Option<String>,
    palette: Vec<(String, Color)>,
    roles: Vec<(&'static str, RoleSpec)>,
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(THEME_DIR)];
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(THEME_DIR);
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(&dirs[0], &manifest) {
        dirs.push(manifest);
    }
    dirs
}

fn is_path(spec: &str) -> bool {
    spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) || spec.ends_with(".toml")
}

fn read_file(path: &Path) -> Result<Source> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let id = path
        .canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    Ok(Source {
        id,
        origin: path.display().to_string(),
        dir: path.parent().map(Path::to_path_buf),
        text,
    })
}

/// Find a theme by name or path; `beside` is the directory of the file whose
/// `inherits` asks for it (looked in first).
fn locate(spec: &str, beside: Option<&Path>) -> Result<Source> {
    if is_path(spec) {
        let path = match beside {
            Some(dir) if Path::new(spec).is_relative() => dir.join(spec),
            _ => PathBuf::from(spec),
        };
        return read_file(&path);
    }
    let valid_name = !spec.is_empty()
        && spec
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid_name {
        let file = format!("{spec}.toml");
        let dirs = beside
            .map(Path::to_path_buf)
            .into_iter()
            .chain(search_dirs());
        for dir in dirs {
            let path = dir.join(&file);
            if path.is_file() {
                return read_file(&path);
            }
        }
        if let Some((name, text)) = BUILTIN_THEMES.iter().find(|(n, _)| *n == spec) {
            return Ok(Source {
                id: format!("<built-in>/{name}"),
                origin: format!("{THEME_DIR}/{name}.toml (built in)"),
                dir: None,
                text: text.to_string(),
            });
        }
    }
    Err(Error::input(format!(
        "unknown theme {spec:?}; available: {}\nfix: --theme NAME with one of those names, or --theme PATH to a theme file (.toml)",
        available_themes().join(", ")
    )))
}

/// Follow `inherits` from `first` to the root, then merge and resolve.
fn resolve_chain(first: Source) -> Result<LoadedTheme> {
    let mut chain: Vec<(Source, ThemeFile)> = Vec::new();
    let mut next = Some(first);
    while let Some(source) = next.take() {
        if let Some(pos) = chain.iter().position(|(s, _)| s.id == source.id) {
            let mut names: Vec<&str> = chain[pos..]
                .iter()
                .map(|(s, _)| s.origin.as_str())
                .collect();
            names.push(&source.origin);
            return Err(Error::input(format!(
                "theme inheritance cycle: {}\nfix: remove `inherits` from one of these files",
                names.join(" -> ")
            )));
        }
        let file = parse_file(&source)?;
        if let Some(parent) = &file.inherits {
            next = Some(locate(parent, source.dir.as_deref()).map_err(|e| match e {
                Error::Input(msg) => Error::input(format!("{}: inherits: {msg}", source.origin)),
                other => other,
            })?);
        }
        chain.push((source, file));
    }

    // Merge from the root down: children replace palette entries and whole roles.
    let mut palette: BTreeMap<&str, Color> = BTreeMap::new();
    let mut roles: BTreeMap<&'static str, (&RoleSpec, &str)> = BTreeMap::new();
    for (source, file) in chain.iter().rev() {
        for (name, colour) in &file.palette {
            palette.insert(name, *colour);
        }
        for (name, spec) in &file.roles {
            roles.insert(name, (spec, &source.origin));
        }
    }

    let mut theme = Theme::ansi16();
    let mut role_origins = BTreeMap::new();
    for (name, (spec, origin)) in roles {
        let colour = |key: &str, value: &Option<String>| -> Result<Option<Color>> {
            let Some(value) = value else { return Ok(None) };
            if let Some(c) = palette.get(value.as_str()) {
                return Ok(Some(*c));
            }
            parse_colour(value).map(Some).ok_or_else(|| {
                let names: Vec<&str> = palette.keys().copied().collect();
                Error::input(format!(
                    "{origin}: {name}.{key}: unknown colour {value:?}\nfix: use \"#rrggbb\", an ANSI name ({}){}",
                    ansi_names(),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(", or a palette name ({})", names.join(", "))
                    }
                ))
            })
        };
        let mut style = Style::new();
        if let Some(fg) = colour("fg", &spec.fg)? {
            style = style.fg(fg);
        }
        if let Some(bg) = colour("bg", &spec.bg)? {
            style = style.bg(bg);
        }
        if !spec.modifiers.is_empty() {
            style = style.add_modifier(spec.modifiers);
        }
        if let Some(slot) = theme.role_mut(name) {
            *slot = style;
        }
        role_origins.insert(name, origin.to_string());
    }
    Ok(LoadedTheme {
        theme,
        chain: chain.into_iter().map(|(s, _)| s.origin).collect(),
        role_origins,
    })
}

fn ansi_names() -> String {
    ANSI_COLOUR_NAMES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse one file's TOML: check every key, keep colour names unresolved
/// (a palette further down the chain may define them).
fn parse_file(source: &Source) -> Result<ThemeFile> {
    let origin = &source.origin;
    let table: Table = toml::from_str(&source.text)
        .map_err(|e| Error::input(format!("{origin}: not a valid theme file: {e}")))?;
    let mut file = ThemeFile {
        inherits: None,
        palette: Vec::new(),
        roles: Vec::new(),
    };
    for (key, value) in &table {
        match key.as_str() {
            "inherits" => {
                let Value::String(parent) = value else {
                    return Err(Error::input(format!(
                        "{origin}: inherits: expected a theme name or path in quotes"
                    )));
                };
                file.inherits = Some(parent.clone());
            }
            "palette" => {
                let Value::Table(entries) = value else {
                    return Err(Error::input(format!(
                        "{origin}: palette: expected a table of name = \"#rrggbb\""
                    )));
                };
                for (name, colour) in entries {
                    let parsed = colour.as_str().and_then(parse_colour).ok_or_else(|| {
                        Error::input(format!(
                            "{origin}: palette.{name}: unknown colour {colour}\nfix: use \"#rrggbb\" or an ANSI name ({})",
                            ansi_names()
                        ))
                    })?;
                    file.palette.push((name.clone(), parsed));
                }
            }
            role => {
                let Some(&name) = Theme::ROLES.iter().find(|r| **r == role) else {
                    return Err(Error::input(format!(
                        "{origin}: unknown role `{role}`\nfix: use one of: inherits, palette, {}",
                        Theme::ROLES.join(", ")
                    )));
                };
                file.roles.push((name, parse_role(origin, name, value)?));
            }
        }
    }
    Ok(file)
}

fn parse_role(origin: &str, role: &str, value: &Value) -> Result<RoleSpec> {
    let entries = match value {
        // A bare colour is the foreground.
        Value::String(fg) => {
            return Ok(RoleSpec {
                fg: Some(fg.clone()),
                ..RoleSpec::default()
            });
        }
        Value::Table(entries) => entries,
        _ => {
            return Err(Error::input(format!(
                "{origin}: {role}: expected {{ fg = \"..\", bg = \"..\", modifiers = [..] }} or a colour"
            )));
        }
    };
    let mut spec = RoleSpec::default();
    for (key, value) in entries {
        let colour = || {
            value.as_str().map(str::to_string).ok_or_else(|| {
                Error::input(format!(
                    "{origin}: {role}.{key}: expected a colour in quotes, got {value}"
                ))
            })
        };
        match key.as_str() {
            "fg" => spec.fg = Some(colour()?),
            "bg" => spec.bg = Some(colour()?),
            "modifiers" => {
                let bad = || {
                    Error::input(format!(
                        "{origin}: {role}.modifiers: expected a list of {}",
                        MODIFIER_NAMES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                };
                let list = value.as_array().ok_or_else(bad)?;
                for item in list {
                    let name = item.as_str().ok_or_else(bad)?;
                    let (_, m) = MODIFIER_NAMES
                        .iter()
                        .find(|(n, _)| *n == name.replace('_', "-"))
                        .ok_or_else(|| {
                            Error::input(format!(
                                "{origin}: {role}.modifiers: unknown modifier {name:?}\nfix: use {}",
                                MODIFIER_NAMES
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        })?;
                    spec.modifiers |= *m;
                }
            }
            other => {
                return Err(Error::input(format!(
                    "{origin}: {role}.{other}: unknown key\nfix: a role takes fg, bg and modifiers"
                )));
            }
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Theme> {
        parse_theme(text, "test.toml", None).map(|t| t.theme)
    }

    #[test]
    fn colours_parse_as_hex_or_ansi_names() {
        assert_eq!(parse_colour("#ff8000"), Some(Color::Rgb(255, 128, 0)));
        assert_eq!(parse_colour("#FF8000"), Some(Color::Rgb(255, 128, 0)));
        assert_eq!(parse_colour("dark-gray"), Some(Color::DarkGray));
        assert_eq!(parse_colour("dark_grey"), Some(Color::DarkGray));
        assert_eq!(parse_colour("light-cyan"), Some(Color::LightCyan));
        assert_eq!(parse_colour("reset"), Some(Color::Reset));
        for bad in ["#ff800", "#gg0000", "ff8000", "purple", ""] {
            assert_eq!(parse_colour(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_empty_file_is_the_builtin_default() {
        assert_eq!(parse("").unwrap(), Theme::ansi16());
    }

    #[test]
    fn roles_take_tables_bare_colours_and_palette_names() {
        let t = parse(
            r##"
            title = { fg = "accent", bg = "#000000", modifiers = ["bold", "italic"] }
            muted = "accent"
            [palette]
            accent = "#89b4fa"
            "##,
        )
        .unwrap();
        let accent = Color::Rgb(0x89, 0xb4, 0xfa);
        assert_eq!(
            t.title,
            Style::new()
                .fg(accent)
                .bg(Color::Rgb(0, 0, 0))
                .add_modifier(Modifier::BOLD | Modifier::ITALIC)
        );
        assert_eq!(t.muted, Style::new().fg(accent));
        // Untouched roles keep the built-in style.
        assert_eq!(t.border, Theme::ansi16().border);
    }

    #[test]
    fn a_palette_name_shadows_an_ansi_name() {
        let t = parse("text = { fg = \"red\" }\n[palette]\nred = \"#ff0000\"\n").unwrap();
        assert_eq!(t.text.fg, Some(Color::Rgb(255, 0, 0)));
    }

    #[test]
    fn bad_values_name_the_file_and_key() {
        let cases = [
            ("titel = {}", "unknown role `titel`"),
            (
                "title = { fg = \"cyann\" }",
                "title.fg: unknown colour \"cyann\"",
            ),
            ("title = { bg = 3 }", "title.bg: expected a colour"),
            (
                "title = { fg = \"red\", colour = \"red\" }",
                "title.colour: unknown key",
            ),
            (
                "title = { modifiers = [\"blod\"] }",
                "title.modifiers: unknown modifier",
            ),
            (
                "title = { modifiers = \"bold\" }",
                "title.modifiers: expected a list",
            ),
            ("title = 1", "title: expected"),
            ("inherits = 1", "inherits: expected"),
            (
                "[palette]\naccent = \"nope\"",
                "palette.accent: unknown colour",
            ),
            ("title = {", "not a valid theme file"),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{text}");
            let msg = err.to_string();
            assert!(msg.starts_with("test.toml: "), "{msg}");
            assert!(msg.contains(needle), "{text}: expected {needle:?} in {msg}");
        }
    }

    #[test]
    fn unknown_names_list_the_available_themes() {
        let err = load_theme("no-such-theme").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("\"no-such-theme\""), "{msg}");
        for name in ["default", "dark", "light", "high-contrast"] {
            assert!(msg.contains(name), "{name} missing from {msg}");
        }
    }

    #[test]
    fn shipped_themes_resolve_by_name() {
        for (name, _) in BUILTIN_THEMES {
            load_theme(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
