//! A run: the engine thread, its Commands and Events, and the run directory.

pub mod control;
pub mod engine;
pub mod events;
pub mod headless;
mod resume;
pub mod reviews;
pub mod rundir;

pub use engine::{EngineHandle, FoldOutcome, RunOutcome, RunPlan, start};
pub use events::{Command, DatasetSummary, Event, LabelSets, LossItem, Stamped};
pub use rundir::RunDir;
