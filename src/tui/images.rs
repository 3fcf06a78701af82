//! Images in the terminal for the mislabeled-item viewer (`ratatui-image`).
//!
//! The graphics protocol is picked by asking the terminal, once, before the
//! dashboard reads its keys: a kitty graphics query, the primary device
//! attributes (a `4` there means sixel), iTerm2's own report, and a device
//! status report that every terminal answers, which marks the end of the
//! answers. The answers are read with `poll`, up to a deadline, and nothing
//! keeps reading after it: a terminal that does not answer costs the
//! deadline once and gets halfblocks, and no key press is ever swallowed by
//! a late reader. Inside tmux (which passes such queries on unreliably) and
//! wherever stdin is not a terminal, no query is sent: halfblocks.
//!
//! `ORCHARD_IMAGES=halfblocks|kitty|sixel|iterm2` skips the question.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui_image::StatefulImage;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::StatefulProtocol;

/// How long the terminal may take to answer; over a slow SSH link a late
/// answer only means halfblocks.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(800);

/// kitty graphics query (a 1x1 image, query only), iTerm2's report, the
/// cell size in pixels, primary device attributes, device status report.
const QUERY: &str = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\\x1b[1337n\x1b[16t\x1b[c\x1b[5n";

/// What the terminal said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answers {
    pub kitty: bool,
    pub sixel: bool,
    pub iterm2: bool,
    /// Cell size in pixels (width, height).
    pub cell: Option<(u16, u16)>,
    /// The device status report arrived: every answer is in.
    pub complete: bool,
}

/// Read the answers out of the bytes the terminal sent back.
pub fn parse_answers(bytes: &[u8]) -> Answers {
    let text = String::from_utf8_lossy(bytes);
    let mut answers = Answers {
        kitty: text.contains("\x1b_Gi=31;OK"),
        iterm2: text.contains("\x1b[ITERM2"),
        complete: text.contains("\x1b[0n"),
        ..Answers::default()
    };
    // Primary device attributes: ESC [ ? p1 ; p2 ; ... c
    if let Some(start) = text.find("\x1b[?") {
        let rest = &text[start + 3..];
        if let Some(end) = rest.find('c') {
            answers.sixel = rest[..end].split(';').any(|p| p == "4");
        }
    }
    // Cell size: ESC [ 6 ; height ; width t
    if let Some(start) = text.find("\x1b[6;") {
        let rest = &text[start + 4..];
        if let Some(end) = rest.find('t') {
            let mut parts = rest[..end].split(';').map(|p| p.parse::<u16>().ok());
            if let (Some(Some(h)), Some(Some(w))) = (parts.next(), parts.next())
                && w > 0
                && h > 0
            {
                answers.cell = Some((w, h));
            }
        }
    }
    answers
}

/// The protocol for these answers: kitty, else sixel, else iTerm2, else halfblocks.
pub fn protocol_for(answers: &Answers) -> ProtocolType {
    if answers.kitty {
        ProtocolType::Kitty
    } else if answers.sixel {
        ProtocolType::Sixel
    } else if answers.iterm2 {
        ProtocolType::Iterm2
    } else {
        ProtocolType::Halfblocks
    }
}

fn in_tmux() -> bool {
    std::env::var_os("TMUX").is_some_and(|v| !v.is_empty())
        || std::env::var("TERM").is_ok_and(|t| t.starts_with("tmux") || t.starts_with("screen"))
}

fn forced_protocol() -> Option<ProtocolType> {
    match std::env::var("ORCHARD_IMAGES").ok()?.as_str() {
        "halfblocks" => Some(ProtocolType::Halfblocks),
        "kitty" => Some(ProtocolType::Kitty),
        "sixel" => Some(ProtocolType::Sixel),
        "iterm2" => Some(ProtocolType::Iterm2),
        _ => None,
    }
}

/// A picker with `protocol` and the cell size in pixels (10x20 when unknown:
/// it only scales images, halfblocks do not use it).
#[allow(deprecated)] // from_fontsize: the one way to give a queried cell size.
fn picker(protocol: ProtocolType, cell: Option<(u16, u16)>) -> Picker {
    let mut picker = match cell {
        Some(size) => Picker::from_fontsize(size.into()),
        None => Picker::halfblocks(),
    };
    picker.set_protocol_type(protocol);
    picker
}

/// Halfblocks, for tests and terminals that did not answer.
pub fn halfblocks() -> Picker {
    picker(ProtocolType::Halfblocks, None)
}

/// Ask the terminal (in raw mode, before anything else reads its input).
pub fn query_picker(timeout: Duration) -> Picker {
    if let Some(protocol) = forced_protocol() {
        return picker(protocol, window_cell_size());
    }
    if in_tmux() || !io::IsTerminal::is_terminal(&io::stdin()) {
        return halfblocks();
    }
    let answers = ask(timeout).unwrap_or_default();
    picker(
        protocol_for(&answers),
        answers.cell.or_else(window_cell_size),
    )
}

/// Send the query and collect answers until the status report or the deadline.
fn ask(timeout: Duration) -> io::Result<Answers> {
    let mut out = io::stdout();
    out.write_all(QUERY.as_bytes())?;
    out.flush()?;
    let stdin = io::stdin();
    let fd = stdin.as_raw_fd();
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        if ready <= 0 || poll.revents & libc::POLLIN == 0 {
            break;
        }
        let mut buf = [0u8; 256];
        // poll said there is input: this read does not block.
        let n = stdin.lock().read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        if parse_answers(&bytes).complete {
            break;
        }
    }
    Ok(parse_answers(&bytes))
}

/// Cell size from the window size in pixels, where the terminal reports it.
fn window_cell_size() -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    let ok = unsafe { libc::ioctl(io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0 && size.ws_row > 0 && size.ws_xpixel > 0 && size.ws_ypixel > 0)
        .then(|| (size.ws_xpixel / size.ws_col, size.ws_ypixel / size.ws_row))
        .filter(|&(w, h)| w > 0 && h > 0)
}

/// The viewer's image: decoded once per selected file, encoded for the
/// terminal's protocol by ratatui-image when drawn.
pub struct ImagePane {
    picker: Picker,
    shown: Option<(PathBuf, Result<StatefulProtocol, String>)>,
}

impl ImagePane {
    pub fn new(picker: Picker) -> Self {
        ImagePane {
            picker,
            shown: None,
        }
    }

    /// The protocol's name, for the viewer's title.
    pub fn protocol_name(&self) -> &'static str {
        match self.picker.protocol_type() {
            ProtocolType::Halfblocks => "halfblocks",
            ProtocolType::Sixel => "sixel",
            ProtocolType::Kitty => "kitty",
            ProtocolType::Iterm2 => "iTerm2",
        }
    }

    /// Draw `path` into `area`; `Err` with the reason when it cannot be shown.
    pub fn render(&mut self, frame: &mut Frame, area: Rect, path: &Path) -> Result<(), String> {
        if self.shown.as_ref().is_none_or(|(p, _)| p != path) {
            let loaded = image::ImageReader::open(path)
                .map_err(|e| e.to_string())
                .and_then(|r| r.with_guessed_format().map_err(|e| e.to_string()))
                .and_then(|r| r.decode().map_err(|e| e.to_string()))
                .map(|img| self.picker.new_resize_protocol(img));
            self.shown = Some((path.to_path_buf(), loaded));
        }
        match &mut self.shown {
            Some((_, Ok(protocol))) => {
                frame.render_stateful_widget(StatefulImage::default(), area, protocol);
                Ok(())
            }
            Some((_, Err(e))) => Err(e.clone()),
            None => Err("no image".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_pick_kitty_then_sixel_then_iterm2_then_halfblocks() {
        let kitty = parse_answers(b"\x1b_Gi=31;OK\x1b\\\x1b[?62;4;22c\x1b[0n");
        assert!(kitty.kitty && kitty.sixel && kitty.complete);
        assert_eq!(protocol_for(&kitty), ProtocolType::Kitty);
        let sixel = parse_answers(b"\x1b[6;20;10t\x1b[?62;4;22c\x1b[0n");
        assert_eq!(protocol_for(&sixel), ProtocolType::Sixel);
        assert_eq!(sixel.cell, Some((10, 20)));
        let iterm = parse_answers(b"\x1b[ITERM2 3.5.0n\x1b[?62;22c\x1b[0n");
        assert_eq!(protocol_for(&iterm), ProtocolType::Iterm2);
        // A plain VT220: attributes without 4 (the 4 of 64 does not count).
        let plain = parse_answers(b"\x1b[?64;1;2c\x1b[0n");
        assert_eq!(protocol_for(&plain), ProtocolType::Halfblocks);
        // Nothing came back in time.
        let silent = parse_answers(b"");
        assert!(!silent.complete);
        assert_eq!(protocol_for(&silent), ProtocolType::Halfblocks);
    }

    #[test]
    fn halfblocks_draw_an_image_and_a_bad_file_gives_a_reason() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("red.png");
        // 160 px: larger than the 8x4 cells (80x80 px at 10x20 px a cell),
        // so it is scaled down to fill them.
        image::RgbImage::from_pixel(160, 160, image::Rgb([255, 0, 0]))
            .save(&path)
            .unwrap();
        let mut pane = ImagePane::new(halfblocks());
        assert_eq!(pane.protocol_name(), "halfblocks");
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(8, 4)).unwrap();
        terminal
            .draw(|f| pane.render(f, f.area(), &path).unwrap())
            .unwrap();
        let buffer = terminal.backend().buffer();
        let drawn = buffer
            .content()
            .iter()
            .filter(|c| matches!(c.fg, ratatui::style::Color::Rgb(r, g, b) if r > 200 && g < 40 && b < 40))
            .count();
        assert!(drawn >= 16, "the image does not fill the area: {buffer:?}");
        let missing = t.path().join("missing.jpg");
        terminal
            .draw(|f| assert!(pane.render(f, f.area(), &missing).is_err()))
            .unwrap();
    }
}
