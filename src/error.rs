//! One error type for the library. `main.rs` turns it into an exit code:
//! bad input (anything the user can fix) exits with 2, everything else with 1.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something the user gave us is wrong: a file, a row, a flag, a config key.
    /// The message names the place and says how to fix it.
    #[error("{0}")]
    Input(String),

    /// An I/O failure on a file we were asked to read or write.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A failure inside the tensor engine (a bug or an out-of-memory, not bad input).
    #[error("tensor engine: {0}")]
    Candle(#[from] candle_core::Error),

    /// The run was stopped on request before it finished.
    #[error("run stopped")]
    Stopped,

    /// Anything else that is our fault, not the user's.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Build a bad-input error from a message (exit code 2).
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    /// Wrap an I/O error with the file it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// The process exit code for this error: 2 for anything the user can fix.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            // A file we were told to read that is missing or unreadable is the user's to fix.
            Error::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                2
            }
            _ => 1,
        }
    }
}
