//! `orchard stats DATA [--format table|csv|json]`

use crate::cli::{Format, StatsArgs};
use crate::data::stats::compute_stats;
use crate::error::{Error, Result};

pub fn stats(args: StatsArgs) -> Result<()> {
    if !(8..=1024).contains(&args.stats_size) {
        return Err(Error::input(format!(
            "--stats-size {}: expected 8..=1024 pixels",
            args.stats_size
        )));
    }
    let ds = super::load_data_args(&args.data)?;
    let report = compute_stats(&ds, args.stats_size)?;
    let text = match args.format {
        Format::Table => report.to_table(),
        Format::Csv => report.to_csv(),
        Format::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?
                + "\n"
        }
    };
    super::print_out(&text)
}
