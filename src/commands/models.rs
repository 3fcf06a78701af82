//! `orchard models [--classes N]`: every architecture `--arch` accepts, with its
//! parameter count for N outputs, what it is, and which weights it accepts.
//!
//! The counts come from building each model (default options), so they are what
//! training would use, not numbers copied from elsewhere.

use crate::cli::ModelsArgs;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::models::{ARCHS, parameter_count};

/// Most outputs a count is computed for (a model that size is built here).
const MAX_CLASSES: usize = 100_000;

pub fn models(args: ModelsArgs) -> Result<()> {
    if !(1..=MAX_CLASSES).contains(&args.classes) {
        return Err(Error::input(format!(
            "--classes {}: expected 1..={MAX_CLASSES} outputs\nfix: give the number of classes of your data, e.g. --classes 4",
            args.classes
        )));
    }
    super::print_out(&table(args.classes)?)
}

/// The table: a header, then one row per architecture.
pub fn table(classes: usize) -> Result<String> {
    let mut rows = vec![[
        "arch".to_string(),
        format!("params ({classes} classes)"),
        "description".to_string(),
        "weights".to_string(),
    ]];
    for arch in ARCHS {
        let config = ModelConfig {
            arch: arch.name.to_string(),
            ..ModelConfig::default()
        };
        rows.push([
            arch.name.to_string(),
            thousands(parameter_count(&config, classes)?),
            arch.about.to_string(),
            arch.weights.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        // Counts right-aligned, text left-aligned; no trailing spaces.
        let line = format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// 11689512 -> "11,689,512".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(11_689_512), "11,689,512");
    }
}
