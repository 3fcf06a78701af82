//! The orchard binary: parse the command line, run the command, map errors to
//! exit codes (2: bad input the user can fix; 1: our fault).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = orchard::cli::Cli::parse();
    match orchard::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            // The library's messages already carry their cause; print them once.
            let report = anyhow::Error::new(e);
            eprintln!("error: {report}");
            ExitCode::from(code as u8)
        }
    }
}
