//! Command-line definitions (clap). `main.rs` parses them and calls `commands::run`.

use crate::data::TaskType;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "orchard",
    version,
    about = "Train image classifiers with the fastai toolbox and steer them from a terminal dashboard",
    long_about = "Train image classifiers with the fastai toolbox and steer them from a terminal dashboard.\n\
                  Without a command, trains on the embedded demo data set with the dashboard."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Cmd {
    /// Train a model (k-fold) with the dashboard, or headless when not on a terminal.
    Train(TrainArgs),
    /// Print data set statistics: class balance, image sizes, formats, mean/std.
    Stats(StatsArgs),
    /// Print the stratified k-fold table, optionally with resampled training counts.
    Folds(FoldsArgs),
    /// Print the run configuration as commented TOML.
    Config(ConfigArgs),
    /// Print the learning-rate and momentum of each step, as the training loop uses them.
    Schedule(ScheduleArgs),
    /// Predict new images with a run's fold models (their mean) into a submission CSV.
    Predict(PredictArgs),
    /// Save a grid of one training batch after all transforms, labels underneath (PNG).
    ShowBatch(ShowBatchArgs),
    /// Save a grid of N augmented versions of one image (PNG).
    AugmentPreview(AugmentPreviewArgs),
    /// List every architecture with its parameter count, description and accepted weights.
    Models(ModelsArgs),
    /// Summarise a run's label corrections; `--export` writes the corrected labels to a new CSV.
    Corrections(CorrectionsArgs),
    /// Watch and steer a run another process is running (or look at a finished
    /// one); leaving never stops the run.
    Attach(AttachArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CorrectionsArgs {
    /// The run directory.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Write `image_id,<class columns>` with the corrected labels to this new file
    /// (never overwritten; your own CSV is never touched).
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {
    /// Number of outputs (classes) the parameter counts are for.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub classes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The run directory (`orchard train --detach` prints it).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The dashboard's colours [default: the run's dashboard.theme].
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// A keymap file (TOML) [default: ~/.config/orchard/keymap.toml if it exists].
    #[arg(long, value_name = "FILE")]
    pub keymap: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The run directory of a trained (or partly trained) run.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The images: a directory with test.csv and images/, a CSV of ids, or a folder of images.
    #[arg(long, value_name = "DATA")]
    pub data: PathBuf,
    /// The images of a CSV, when not in images/ beside it.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Only this fold's model instead of the mean of all folds.
    #[arg(long, value_name = "K")]
    pub fold: Option<usize>,
    /// Test-time augmentation as fastai's Learner.tta, with the run's [tta] settings
    /// (n passes with the training transforms, blended with beta or max).
    #[arg(long)]
    pub tta: bool,
    /// The submission to write (image_id,<classes>); never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

/// Where the data is. DATA defaults to the embedded demo set.
#[derive(Debug, Clone, Args, Default)]
pub struct DataArgs {
    /// A directory with train.csv and images/, a CSV file, or a folder of class folders
    /// [default: the embedded demo set]
    #[arg(value_name = "DATA")]
    pub data: Option<PathBuf>,
    /// The images of a CSV, when not in images/ beside it.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Force the task type instead of detecting it from the labels.
    #[arg(long, value_enum)]
    pub task: Option<TaskType>,
}

/// `CLASS=VALUE` rules for resampling.
#[derive(Debug, Clone, Args, Default)]
pub struct ResampleArgs {
    /// Repeat the training images of CLASS N times (repeatable), e.g. multiple_diseases=3.
    #[arg(long, value_name = "CLASS=N", value_parser = parse_class_usize)]
    pub oversample: Vec<(String, usize)>,
    /// Keep a share F of the training images of CLASS (repeatable), e.g. rust=0.5.
    #[arg(long, value_name = "CLASS=F", value_parser = parse_class_f64)]
    pub undersample: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Images are squished to this square size before mean/std are computed.
    #[arg(long, default_value_t = 128, value_name = "PX")]
    pub stats_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct FoldsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Number of folds.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write image_id,<label columns>,fold to this file (never overwrites).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub resample: ResampleArgs,
}

/// The settings of the picture commands: a config's [training], [augmentation]
/// and [mixing] sections, with flags on top.
#[derive(Debug, Clone, Args, Default)]
pub struct PictureArgs {
    /// A run configuration (TOML) whose size, seed, augmentation and mixing are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Square image side in pixels [default: the config's training.size].
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
    /// Seed of the draws [default: the config's training.seed].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Write the picture to this PNG file (never overwrites).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ShowBatchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub picture: PictureArgs,
    /// Images in the batch [default: the config's training.batch_size].
    #[arg(long, value_name = "N")]
    pub bs: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct AugmentPreviewArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub picture: PictureArgs,
    /// The image_id of the image to augment.
    #[arg(long, value_name = "ID")]
    pub image: String,
    /// Number of augmented versions.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Print the defaults (the only mode for now; kept explicit so a later
    /// `orchard config FILE` can print a resolved file).
    #[arg(long)]
    pub default: bool,
}

/// The schedules of `orchard schedule`, named as fastai's fit methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchedulePolicyArg {
    /// fit_one_cycle: cosine warm-up to --lr-max, then cosine annealing; momentum 0.95-0.85-0.95.
    OneCycle,
    /// fit_flat_cos: flat at --lr-max, then cosine annealing; momentum constant (Adam's beta1).
    FlatCos,
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    #[arg(long, value_enum, default_value_t = SchedulePolicyArg::OneCycle)]
    pub policy: SchedulePolicyArg,
    /// Peak learning rate (fit_one_cycle's lr_max, fit_flat_cos's lr).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub lr_max: f64,
    /// Number of optimiser steps (epochs x batches per epoch).
    #[arg(long, value_name = "N")]
    pub steps: usize,
    /// Share of steps before annealing starts [default: 0.25 one-cycle, 0.75 flat-cos].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub pct_start: Option<f64>,
    /// One-cycle starts at lr_max / D [default: 25].
    #[arg(long, value_name = "D", allow_negative_numbers = true)]
    pub div: Option<f64>,
    /// The schedule anneals towards lr_max / F [default: 1e5].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub div_final: Option<f64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Args, Default)]
pub struct TrainArgs {
    /// A run configuration (TOML); flags override its values.
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// A directory with train.csv and images/, a CSV file, or a folder of class folders.
    #[arg(long, value_name = "DATA")]
    pub data: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub task: Option<TaskType>,
    /// Plain fastai-style progress lines instead of the dashboard.
    #[arg(long)]
    pub headless: bool,
    /// Run in the background, immune to a closed terminal or SSH connection:
    /// prints the run directory and returns; watch it with `orchard attach`.
    #[arg(long)]
    pub detach: bool,
    /// A keymap file (TOML) [default: ~/.config/orchard/keymap.toml if it exists].
    #[arg(long, value_name = "FILE")]
    pub keymap: Option<PathBuf>,
    /// The dashboard's colours: a theme name (themes/NAME.toml or a shipped one:
    /// default, dark, light, high-contrast) or the path of a theme file
    /// [default: the config's dashboard.theme].
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// The run directory (must not exist or be empty) [default: runs/<time>-<data set>].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Continue a killed or stopped run from its checkpoints, with its own
    /// config.toml and folds.csv (no other training flags allowed).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = [
        "config", "data", "images", "task", "run_dir", "epochs", "size", "bs", "lr",
        "seed", "k", "fold", "limit", "oversample", "undersample", "arch", "activation",
        "self_attention", "maxblurpool", "pretrained", "soft_labels",
    ])]
    pub resume: Option<PathBuf>,
    /// Pretrained weights (safetensors or zip .pth) for the body of model.arch;
    /// its classifier is replaced by fastai's head [default: the config's model.pretrained].
    #[arg(long, value_name = "FILE")]
    pub pretrained: Option<PathBuf>,
    /// Soft labelling: the oof.csv of a finished k-fold run on the same images;
    /// trains on `alpha * label + (1 - alpha) * predicted` [default: the
    /// config's soft_labels.oof].
    #[arg(long, value_name = "OOF_CSV")]
    pub soft_labels: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Square image side in pixels.
    #[arg(long, value_name = "PX")]
    pub size: Option<u32>,
    /// Batch size.
    #[arg(long, value_name = "N")]
    pub bs: Option<usize>,
    /// Peak learning rate.
    #[arg(long, value_name = "X")]
    pub lr: Option<f64>,
    /// Seed of folds, initialisation, shuffling and augmentation.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Number of folds.
    #[arg(long)]
    pub k: Option<usize>,
    /// Train only this fold (0-based).
    #[arg(long, value_name = "K")]
    pub fold: Option<usize>,
    /// The architecture (`orchard models` lists them) [default: the config's model.arch].
    #[arg(long, value_name = "NAME")]
    pub arch: Option<String>,
    /// The activation of an xresnet [default: the config's model.activation].
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
    /// fastai's SimpleSelfAttention in an xresnet (model.self_attention = true).
    #[arg(long)]
    pub self_attention: bool,
    /// MaxBlurPool instead of an xresnet's stem max-pool (model.maxblurpool = true).
    #[arg(long)]
    pub maxblurpool: bool,
    /// Use only the first N images of the data set (quick checks).
    #[arg(long, value_name = "N", hide = true)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub resample: ResampleArgs,
}

/// `--activation` values (the config's `model.activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActivationArg {
    Relu,
    Mish,
}

fn split_rule(s: &str) -> Result<(String, &str), String> {
    let (class, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected CLASS=VALUE, got {s:?}"))?;
    if class.is_empty() {
        return Err(format!("expected CLASS=VALUE, got {s:?} (no class)"));
    }
    Ok((class.to_string(), value))
}

fn parse_class_usize(s: &str) -> Result<(String, usize), String> {
    let (c, v) = split_rule(s)?;
    let n = v
        .parse()
        .map_err(|_| format!("{s:?}: {v:?} is not a whole number"))?;
    Ok((c, n))
}

fn parse_class_f64(s: &str) -> Result<(String, f64), String> {
    let (c, v) = split_rule(s)?;
    let f = v
        .parse()
        .map_err(|_| format!("{s:?}: {v:?} is not a number"))?;
    Ok((c, f))
}
