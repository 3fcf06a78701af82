//! `RunConfig`: everything a run needs to know, as TOML.
//!
//! Defaults follow fastai's where fastai has one (learning rate 1e-3, weight decay
//! 0.01, one-cycle with pct_start 0.25, div 25, div_final 1e5, moms 0.95-0.85-0.95,
//! Adam eps 1e-5 / beta2 0.99, aug_transforms' parameters, MixUp alpha 0.4, CutMix
//! alpha 1.0, TTA n=4 beta=0.25). Where fastai has no default (image size, epochs,
//! batch size on a CPU) we pick values that train the embedded demo set in a few
//! minutes on a laptop; `orchard config --default` prints them all with comments.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never silently
//! falls back to a default.

use crate::data::TaskType;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The embedded demo data set, relative to the repository root.
pub const DEMO_DATA: &str = "data/demo";

/// Resolve a data path: the demo set's relative path also works from any
/// directory, as long as the checkout the binary was built from is still there.
pub fn resolve_data_path(path: &Path) -> PathBuf {
    if path == Path::new(DEMO_DATA) && !path.exists() {
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_DATA);
        if built.exists() {
            return built;
        }
    }
    path.to_path_buf()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub data: DataConfig,
    pub folds: FoldConfig,
    pub model: ModelConfig,
    pub training: TrainingConfig,
    pub augmentation: AugmentationConfig,
    pub mixing: MixingConfig,
    pub label_correction: LabelCorrectionConfig,
    pub soft_labels: SoftLabelsConfig,
    pub tta: TtaConfig,
    pub dashboard: DashboardConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TaskChoice {
    /// Detect from the labels.
    #[default]
    Auto,
    Binary,
    MultiClass,
    MultiLabel,
}

impl From<TaskType> for TaskChoice {
    fn from(t: TaskType) -> Self {
        match t {
            TaskType::Binary => TaskChoice::Binary,
            TaskType::MultiClass => TaskChoice::MultiClass,
            TaskType::MultiLabel => TaskChoice::MultiLabel,
        }
    }
}

impl TaskChoice {
    pub fn forced(self) -> Option<TaskType> {
        match self {
            TaskChoice::Auto => None,
            TaskChoice::Binary => Some(TaskType::Binary),
            TaskChoice::MultiClass => Some(TaskType::MultiClass),
            TaskChoice::MultiLabel => Some(TaskType::MultiLabel),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnCorrupt {
    /// Stop with a message naming the file (exit 2).
    #[default]
    Fail,
    /// Decode every image once before the folds are made, warn about each
    /// file that does not decode and leave its rows out (`data::scan`; the
    /// list goes to `RUN_DIR/skipped.csv`).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A directory with train.csv and images/, a CSV file, or a folder of class folders.
    pub path: PathBuf,
    /// Where the images of a CSV are, when not in `images/` beside it.
    pub images: Option<PathBuf>,
    pub task: TaskChoice,
    pub on_corrupt: OnCorrupt,
    /// Megabytes of resized pixels kept in memory; the rest go to a
    /// memory-mapped file in the run's cache directory.
    pub cache_mb: u64,
    /// Training batches a worker thread builds ahead of the model (0: built
    /// in the training thread when needed).
    pub prefetch: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: PathBuf::from(DEMO_DATA),
            images: None,
            task: TaskChoice::Auto,
            on_corrupt: OnCorrupt::Fail,
            cache_mb: 4096,
            prefetch: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FoldConfig {
    pub k: usize,
    pub seed: u64,
    /// Train only this fold (0-based); all folds when absent.
    pub fold: Option<usize>,
    /// Repeat the training images of a class N times: `{ multiple_diseases = 3 }`.
    pub oversample: BTreeMap<String, usize>,
    /// Keep a share F of the training images of a class: `{ rust = 0.5 }`.
    pub undersample: BTreeMap<String, f64>,
}

impl Default for FoldConfig {
    fn default() -> Self {
        FoldConfig {
            k: 5,
            seed: 42,
            fold: None,
            oversample: BTreeMap::new(),
            undersample: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub arch: String,
    /// Pretrained weights (safetensors or .pth) to start from.
    pub pretrained: Option<PathBuf>,
    /// The imagewoof toolbox (xresnet archs only): the activation function.
    pub activation: Activation,
    /// fastai's SimpleSelfAttention in the first stage's last block (xresnet only).
    pub self_attention: bool,
    /// MaxBlurPool instead of the stem's max-pool (xresnet only).
    pub maxblurpool: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: "resnet18".into(),
            pretrained: None,
            activation: Activation::Relu,
            self_attention: false,
            maxblurpool: false,
        }
    }
}

/// A model's activation function (`model.activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// fastai's default.
    #[default]
    Relu,
    /// x * tanh(softplus(x)) (PyTorch's nn.Mish).
    Mish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulePolicy {
    #[default]
    OneCycle,
    FlatCos,
}

/// fastai's optimisers (`training.optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerChoice {
    /// fastai's `Adam` (decoupled weight decay).
    #[default]
    Adamw,
    Sgd,
    Radam,
    /// Lookahead(RAdam).
    Ranger,
}

impl OptimizerChoice {
    /// fastai's defaults: (mom, eps, wd) of `Adam`, `SGD`, `RAdam` and `ranger`.
    fn defaults(self) -> (f64, f64, f64) {
        match self {
            OptimizerChoice::Adamw => (0.9, 1e-5, 0.01),
            // SGD has no eps; the value is unused.
            OptimizerChoice::Sgd => (0.0, 1e-5, 0.0),
            OptimizerChoice::Radam => (0.9, 1e-5, 0.0),
            OptimizerChoice::Ranger => (0.95, 1e-6, 0.01),
        }
    }
}

/// How a fold trains (`training.recipe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// fastai's `fit_one_cycle` / `fit_flat_cos` on every parameter.
    #[default]
    Fit,
    /// fastai's `Learner.fine_tune`: `freeze_epochs` with the pretrained body
    /// frozen, then the rest unfrozen with discriminative learning rates.
    FineTune,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Epochs per fold (with `recipe = fine-tune`, the frozen ones included).
    pub epochs: usize,
    /// Square image side in pixels (of the first epochs, when `size_schedule` grows it).
    pub size: u32,
    /// Progressive resizing: `[epoch, size]` steps; from `epoch` (0-based) on,
    /// the images are `size` pixels. Epochs and sizes strictly increase.
    pub size_schedule: Vec<(usize, u32)>,
    pub batch_size: usize,
    /// Peak learning rate (fastai: `lr_max` of fit_one_cycle, default 1e-3).
    pub lr: f64,
    pub optimizer: OptimizerChoice,
    /// Decoupled weight decay; absent = the optimiser's fastai default, see `weight_decay()`.
    pub weight_decay: Option<f64>,
    /// Decay norm params and biases too (fastai's `wd_bn_bias`).
    pub wd_bn_bias: bool,
    pub policy: SchedulePolicy,
    /// Share of steps before the peak (one-cycle) or before the anneal (flat-cos);
    /// absent = fastai's default for the policy (0.25 / 0.75), see `pct_start()`.
    pub pct_start: Option<f64>,
    pub div: f64,
    pub div_final: f64,
    /// (start, middle, end) of the one-cycle momentum / beta1 schedule.
    pub moms: [f64; 3],
    /// Momentum (SGD) / beta1 (Adam family) when the policy does not schedule it,
    /// and for SGD whether it has momentum at all; absent = fastai's default, see `mom()`.
    pub mom: Option<f64>,
    pub beta2: f64,
    /// Absent = the optimiser's fastai default, see `eps()`.
    pub eps: Option<f64>,
    /// Nesterov momentum (SGD only).
    pub nesterov: bool,
    /// Wrap the optimiser in Lookahead (always on for ranger).
    pub lookahead: bool,
    pub lookahead_k: usize,
    pub lookahead_alpha: f64,
    /// Clip the gradients' global L2 norm to this (torch's `clip_grad_norm_`); none if absent.
    pub grad_clip: Option<f64>,
    /// Multi-label: a class's weight on the positive term of its binary
    /// cross-entropy (torch's `pos_weight`): `{ defective = 3.0 }`; 1 for the rest.
    pub pos_weight: BTreeMap<String, f64>,
    /// Multi-label: a class counts as predicted when its sigmoid is above
    /// this (accuracy_multi's and F-beta's `thresh`).
    pub multi_label_threshold: f64,
    /// Multi-label: beta of the F-beta reported after each epoch (fastai's
    /// `FBetaMulti(beta, average='samples')`).
    pub f_beta: f64,
    /// Label smoothing eps of the cross-entropy (fastai's
    /// `LabelSmoothingCrossEntropy(eps)`; 0 = plain cross-entropy).
    pub label_smoothing: f64,
    /// Seed of shuffling, augmentation and initialisation.
    pub seed: u64,
    /// `cpu`, `cuda:N` or `auto`.
    pub device: String,
    pub recipe: Recipe,
    /// fine-tune: the first epochs, trained with the body frozen (fastai: 1).
    pub freeze_epochs: usize,
    /// fine-tune: the body's lr is the head's / lr_mult once unfrozen (fastai: 100).
    pub lr_mult: f64,
    /// fine-tune: the unfrozen cycle starts at lr / fine_tune_div (fastai's fine_tune div: 5).
    pub fine_tune_div: f64,
}

impl TrainingConfig {
    /// `pct_start`, or fastai's default for the policy: `fit_one_cycle` 0.25,
    /// `fit_flat_cos` 0.75.
    pub fn pct_start(&self) -> f64 {
        self.pct_start.unwrap_or(match (self.recipe, self.policy) {
            (Recipe::FineTune, _) => 0.3,
            (Recipe::Fit, SchedulePolicy::OneCycle) => 0.25,
            (Recipe::Fit, SchedulePolicy::FlatCos) => 0.75,
        })
    }

    /// `mom`, or the optimiser's fastai default (Adam/RAdam 0.9, ranger 0.95, SGD 0).
    pub fn mom(&self) -> f64 {
        self.mom.unwrap_or(self.optimizer.defaults().0)
    }

    /// `eps`, or the optimiser's fastai default (Adam/RAdam 1e-5, ranger 1e-6).
    pub fn eps(&self) -> f64 {
        self.eps.unwrap_or(self.optimizer.defaults().1)
    }

    /// `weight_decay`, or the optimiser's fastai default (Adam/ranger 0.01, RAdam/SGD 0).
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay.unwrap_or(self.optimizer.defaults().2)
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            epochs: 5,
            size: 64,
            size_schedule: Vec::new(),
            batch_size: 32,
            lr: 1e-3,
            optimizer: OptimizerChoice::Adamw,
            weight_decay: None,
            wd_bn_bias: false,
            policy: SchedulePolicy::OneCycle,
            pct_start: None,
            div: 25.0,
            div_final: 1e5,
            moms: [0.95, 0.85, 0.95],
            mom: None,
            beta2: 0.99,
            eps: None,
            nesterov: false,
            lookahead: false,
            lookahead_k: 6,
            lookahead_alpha: 0.5,
            grad_clip: None,
            pos_weight: BTreeMap::new(),
            multi_label_threshold: 0.5,
            f_beta: 1.0,
            label_smoothing: 0.0,
            seed: 42,
            device: "cpu".into(),
            recipe: Recipe::Fit,
            freeze_epochs: 1,
            lr_mult: 100.0,
            fine_tune_div: 5.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMethod {
    #[default]
    Squish,
    Crop,
    Pad,
    /// fastai's RandomResizedCrop (training); resize then centre crop (validation).
    RandomResizedCrop,
}

/// How Resize's pad method fills outside the image (fastai's PadMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PadModeChoice {
    #[default]
    Reflection,
    Zeros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NormStats {
    /// ImageNet mean/std (for pretrained models).
    #[default]
    Imagenet,
    /// The training images' own per-channel mean/std (`orchard stats`).
    Dataset,
    /// (x - 127) / 128 on 0..255 pixels: what EfficientNet-Lite's TF Lite
    /// weights were trained with.
    Tflite,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentationConfig {
    pub resize: ResizeMethod,
    pub pad_mode: PadModeChoice,
    /// Smallest area share of RandomResizedCrop (resize = "random-resized-crop").
    pub rrc_min_scale: f64,
    /// FlipItem(p=0.5) on each training image.
    pub item_flip: bool,
    /// DihedralItem(p=1.0) on each training image.
    pub item_dihedral: bool,
    pub normalize: NormStats,
    /// Apply fastai's aug_transforms on batches.
    pub batch_augment: bool,
    pub mult: f64,
    pub do_flip: bool,
    pub flip_vert: bool,
    pub max_rotate: f64,
    pub min_zoom: f64,
    pub max_zoom: f64,
    pub max_lighting: f64,
    pub max_warp: f64,
    pub p_affine: f64,
    pub p_lighting: f64,
    pub min_scale: f64,
}

impl Default for AugmentationConfig {
    fn default() -> Self {
        AugmentationConfig {
            resize: ResizeMethod::Squish,
            pad_mode: PadModeChoice::Reflection,
            rrc_min_scale: 0.08,
            item_flip: false,
            item_dihedral: false,
            normalize: NormStats::Imagenet,
            batch_augment: false,
            mult: 1.0,
            do_flip: true,
            flip_vert: false,
            max_rotate: 10.0,
            min_zoom: 1.0,
            max_zoom: 1.1,
            max_lighting: 0.2,
            max_warp: 0.2,
            p_affine: 0.75,
            p_lighting: 0.75,
            min_scale: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MixMethod {
    #[default]
    None,
    Mixup,
    Cutmix,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixingConfig {
    pub method: MixMethod,
    pub mixup_alpha: f64,
    pub cutmix_alpha: f64,
}

impl Default for MixingConfig {
    fn default() -> Self {
        MixingConfig {
            method: MixMethod::None,
            mixup_alpha: 0.4,
            cutmix_alpha: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ThetaSchedule {
    #[default]
    Linear,
    Constant,
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelCorrectionConfig {
    pub enabled: bool,
    pub method: CorrectionMethod,
    /// Share of all iterations before the first correction.
    pub warmup: f64,
    pub theta_start: f64,
    pub theta_end: f64,
    pub schedule: ThetaSchedule,
    /// Step of the dashboard's +/- keys.
    pub theta_step: f64,
    /// The ratio method: epochs of training softmax averaged per item.
    pub window: usize,
    /// The ratio method: relabel when p(label) / p(argmax) is below delta.
    pub delta_start: f64,
    /// The ratio method: delta's raise after an epoch that changed few labels.
    pub delta_step: f64,
    pub delta_max: f64,
    /// The ratio method: "few" = below this share of the training items.
    pub min_changed: f64,
}

/// Which PLC rule corrects labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CorrectionMethod {
    /// The techniques document's rule: after every iteration,
    /// |p_predicted - p_labelled| > theta on the batch's softmax.
    #[default]
    Threshold,
    /// The published variant (Zhang et al., ICLR 2021): after every epoch,
    /// p(label) / p(argmax) of the softmax averaged over recent epochs below delta.
    Ratio,
}

impl Default for LabelCorrectionConfig {
    fn default() -> Self {
        LabelCorrectionConfig {
            enabled: false,
            method: CorrectionMethod::Threshold,
            warmup: 0.2,
            theta_start: 0.9,
            theta_end: 0.5,
            schedule: ThetaSchedule::Linear,
            theta_step: 0.05,
            window: 3,
            // The published code's defaults.
            delta_start: 0.3,
            delta_step: 0.1,
            delta_max: 0.9,
            min_changed: 0.001,
        }
    }
}

/// Soft labelling's "predicted" part: the OOF probabilities themselves, or
/// their argmax as a one-hot row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PredictedTarget {
    #[default]
    Probs,
    Argmax,
}

/// Soft labelling (techniques section 10): train on
/// `alpha * label + (1 - alpha) * predicted`, predicted from a finished k-fold
/// run's out-of-fold probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftLabelsConfig {
    /// The `oof.csv` of a finished k-fold run on the same images; None = off.
    pub oof: Option<PathBuf>,
    /// Weight of the given label.
    pub alpha: f64,
    pub predicted: PredictedTarget,
}

impl Default for SoftLabelsConfig {
    fn default() -> Self {
        SoftLabelsConfig {
            oof: None,
            // Your label keeps most of the weight; the OOF prediction softens it.
            alpha: 0.7,
            predicted: PredictedTarget::Probs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtaConfig {
    pub n: usize,
    pub beta: f64,
    pub use_max: bool,
}

impl Default for TtaConfig {
    fn default() -> Self {
        TtaConfig {
            n: 4,
            beta: 0.25,
            use_max: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    pub theme: String,
    /// Most redraws per second.
    pub fps: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            theme: "default".into(),
            fps: 10,
        }
    }
}

/// Most epochs a run may plan (the whole schedule is kept in memory and shown).
pub const MAX_EPOCHS: usize = 10_000;
/// Most repeats of one class's images when oversampling.
pub const MAX_OVERSAMPLE: usize = 1_000;

/// One line of documentation for every key, printed by `orchard config --default`.
/// A test checks that every key of the default config has one.
const KEY_DOCS: &[(&str, &str, &str)] = &[
    (
        "data",
        "path",
        "a directory with train.csv and images/, a CSV file, or a folder of class folders",
    ),
    (
        "data",
        "images",
        "where a CSV's images are when not in images/ beside it",
    ),
    (
        "data",
        "task",
        "auto | binary | multi-class | multi-label (auto detects from the labels)",
    ),
    (
        "data",
        "on_corrupt",
        "fail | skip: what to do with an image that cannot be decoded (skip: checked before the folds are made, listed in the run's skipped.csv)",
    ),
    (
        "data",
        "cache_mb",
        "megabytes of resized pixels kept in memory (default 4096); the rest go to a memory-mapped file in the run's cache/",
    ),
    (
        "data",
        "prefetch",
        "training batches a worker thread builds ahead of the model (default 2; 0: none)",
    ),
    (
        "folds",
        "k",
        "number of stratified folds (>= 2, <= the smallest class)",
    ),
    (
        "folds",
        "seed",
        "seed of the fold assignment: the same seed gives the same folds on any machine",
    ),
    (
        "folds",
        "fold",
        "train only this fold (0-based); all folds when absent",
    ),
    (
        "folds",
        "oversample",
        "repeat a class's TRAINING images N times, e.g. { multiple_diseases = 3 }",
    ),
    (
        "folds",
        "undersample",
        "keep a share F of a class's TRAINING images, e.g. { rust = 0.5 }",
    ),
    (
        "model",
        "arch",
        "architecture: resnet18 | resnet34 | resnet50 | xresnet18 | xresnet34 | xresnet50 | efficientnet_lite0 | vit_tiny | vit_small (`orchard models` lists them all)",
    ),
    (
        "model",
        "pretrained",
        "weights file (safetensors or zip .pth) for the body, its classifier skipped; adds fastai's head (vision_learner); every arch (`orchard models` says which files); absent = from scratch",
    ),
    (
        "model",
        "activation",
        "relu | mish: the activation of every layer (xresnet archs only; fastai: relu)",
    ),
    (
        "model",
        "self_attention",
        "fastai's SimpleSelfAttention (sa=True) in the first stage's last block (xresnet archs only)",
    ),
    (
        "model",
        "maxblurpool",
        "MaxBlurPool (2x2 max-pool, stride 1, then a 3x3 binomial blur, stride 2) instead of the stem's max-pool (xresnet archs only)",
    ),
    ("training", "epochs", "epochs per fold"),
    ("training", "size", "square image side in pixels"),
    (
        "training",
        "size_schedule",
        "progressive resizing: [[epoch, size], ...], e.g. [[3, 96]] = 96 px from epoch 3 (0-based) on",
    ),
    (
        "training",
        "batch_size",
        "images per batch (fastai: 64; 32 suits small sets on a CPU)",
    ),
    (
        "training",
        "lr",
        "peak learning rate (fastai lr_max, default 1e-3)",
    ),
    (
        "training",
        "optimizer",
        "adamw | sgd | radam | ranger (fastai's Adam, SGD, RAdam, ranger = Lookahead(RAdam))",
    ),
    (
        "training",
        "weight_decay",
        "decoupled weight decay; absent = fastai's default for the optimizer (adamw/ranger 0.01, sgd/radam 0)",
    ),
    (
        "training",
        "wd_bn_bias",
        "also decay norm weights and all biases (fastai: false)",
    ),
    ("training", "policy", "one-cycle | flat-cos"),
    (
        "training",
        "pct_start",
        "share of steps before the peak (one-cycle) or the anneal (flat-cos); absent = fastai's 0.25 / 0.75",
    ),
    ("training", "div", "initial lr = lr / div (fastai: 25)"),
    (
        "training",
        "div_final",
        "final lr = lr / div_final (fastai: 1e5)",
    ),
    (
        "training",
        "moms",
        "one-cycle momentum (beta1) start, middle, end (fastai: 0.95, 0.85, 0.95)",
    ),
    (
        "training",
        "beta2",
        "Adam's second-moment decay (fastai sqr_mom: 0.99)",
    ),
    (
        "training",
        "mom",
        "momentum (sgd) / beta1 (adamw, radam, ranger) when the policy does not schedule it (flat-cos); for sgd, 0 = no momentum even under one-cycle, as fastai; absent = fastai's default (0.9 adamw/radam, 0.95 ranger, 0 sgd)",
    ),
    (
        "training",
        "eps",
        "Adam-family epsilon; absent = fastai's default (1e-5 adamw/radam, 1e-6 ranger)",
    ),
    (
        "training",
        "nesterov",
        "Nesterov momentum, sgd only, needs mom > 0 (torch's form; fastai has none)",
    ),
    (
        "training",
        "lookahead",
        "wrap the optimizer in Lookahead (always on for ranger)",
    ),
    (
        "training",
        "lookahead_k",
        "Lookahead: steps between syncs of the slow weights (fastai: 6)",
    ),
    (
        "training",
        "lookahead_alpha",
        "Lookahead: share of the way the slow weights move at a sync, in (0, 1] (fastai: 0.5)",
    ),
    (
        "training",
        "grad_clip",
        "clip the gradients' global L2 norm to this before each step (fastai's GradientClip; absent: no clipping)",
    ),
    (
        "training",
        "pos_weight",
        "multi-label only: a class's weight on the positive term of its BCE (torch's pos_weight), e.g. { defective = 3.0 }; unlisted classes 1",
    ),
    (
        "training",
        "multi_label_threshold",
        "multi-label only: a class is predicted when its sigmoid is above this, for accuracy and F-beta (fastai: 0.5)",
    ),
    (
        "training",
        "f_beta",
        "multi-label only: beta of the F-beta (average over samples, fastai's FBetaMulti) reported each epoch; 1 = F1",
    ),
    (
        "training",
        "label_smoothing",
        "eps of LabelSmoothingCrossEntropy for training and validation loss, in [0, 1) (fastai's loss: 0.1; 0 = plain cross-entropy)",
    ),
    (
        "training",
        "seed",
        "seed of initialisation, shuffling and augmentation",
    ),
    ("training", "device", "cpu | cuda:N | auto"),
    (
        "training",
        "recipe",
        "fit (one cycle on everything) | fine-tune (fastai's fine_tune: freeze_epochs with the body frozen at lr, then unfrozen at lr/2 for the head and lr/2/lr_mult for the body; needs model.pretrained and one-cycle)",
    ),
    (
        "training",
        "freeze_epochs",
        "fine-tune: how many of the epochs train with the body frozen (its BatchNorm still trains); fastai: 1",
    ),
    (
        "training",
        "lr_mult",
        "fine-tune: the unfrozen body's lr is the head's divided by this (fastai: 100)",
    ),
    (
        "training",
        "fine_tune_div",
        "fine-tune: the unfrozen cycle starts at lr / fine_tune_div (fastai's fine_tune div: 5); training.div is the frozen cycle's",
    ),
    (
        "augmentation",
        "resize",
        "squish | crop | pad (fastai Resize method) | random-resized-crop",
    ),
    (
        "augmentation",
        "pad_mode",
        "reflection | zeros: how resize = \"pad\" fills (fastai: reflection)",
    ),
    (
        "augmentation",
        "rrc_min_scale",
        "smallest area share of random-resized-crop (fastai: 0.08)",
    ),
    (
        "augmentation",
        "item_flip",
        "FlipItem(p=0.5) on every training image",
    ),
    (
        "augmentation",
        "item_dihedral",
        "DihedralItem: one of the 8 symmetries of every training image",
    ),
    (
        "augmentation",
        "normalize",
        "imagenet | dataset (the training images' own mean/std) | tflite ((x - 127) / 128, for the pretrained efficientnet_lite0)",
    ),
    (
        "augmentation",
        "batch_augment",
        "apply fastai's aug_transforms to every training batch",
    ),
    (
        "augmentation",
        "mult",
        "multiplies max_rotate, max_lighting and max_warp (fastai: 1.0)",
    ),
    (
        "augmentation",
        "do_flip",
        "random horizontal flip (fastai: true)",
    ),
    (
        "augmentation",
        "flip_vert",
        "all 8 dihedral symmetries instead of horizontal flips (fastai: false)",
    ),
    (
        "augmentation",
        "max_rotate",
        "largest rotation in degrees (fastai: 10)",
    ),
    ("augmentation", "min_zoom", "smallest zoom (fastai: 1.0)"),
    ("augmentation", "max_zoom", "largest zoom (fastai: 1.1)"),
    (
        "augmentation",
        "max_lighting",
        "brightness/contrast strength (fastai: 0.2)",
    ),
    (
        "augmentation",
        "max_warp",
        "perspective warp strength (fastai: 0.2)",
    ),
    (
        "augmentation",
        "p_affine",
        "probability of the affine part per image (fastai: 0.75)",
    ),
    (
        "augmentation",
        "p_lighting",
        "probability of the lighting part per image (fastai: 0.75)",
    ),
    (
        "augmentation",
        "min_scale",
        "below 1: RandomResizedCrop on the batch with this smallest scale (fastai: 1.0 = off)",
    ),
    ("mixing", "method", "none | mixup | cutmix (training only)"),
    (
        "mixing",
        "mixup_alpha",
        "MixUp's Beta(alpha, alpha) (fastai: 0.4)",
    ),
    (
        "mixing",
        "cutmix_alpha",
        "CutMix's Beta(alpha, alpha) (fastai: 1.0)",
    ),
    (
        "label_correction",
        "enabled",
        "progressive label correction (PLC) during training",
    ),
    (
        "label_correction",
        "method",
        "threshold (|p_pred - p_label| > theta per iteration) | ratio (published: averaged p_label/p_max < delta per epoch)",
    ),
    (
        "label_correction",
        "warmup",
        "share of all iterations before the first correction",
    ),
    (
        "label_correction",
        "theta_start",
        "correction threshold after warm-up",
    ),
    (
        "label_correction",
        "theta_end",
        "correction threshold at the end of training",
    ),
    (
        "label_correction",
        "schedule",
        "linear | constant | cosine: theta from start to end",
    ),
    (
        "label_correction",
        "theta_step",
        "how much the dashboard's +/- keys move theta (delta for the ratio method)",
    ),
    (
        "label_correction",
        "window",
        "ratio method: epochs of training softmax averaged per item",
    ),
    (
        "label_correction",
        "delta_start",
        "ratio method: relabel when p(label) / p(argmax) < delta",
    ),
    (
        "label_correction",
        "delta_step",
        "ratio method: delta's raise after an epoch that changed few labels",
    ),
    (
        "label_correction",
        "delta_max",
        "ratio method: delta's ceiling",
    ),
    (
        "label_correction",
        "min_changed",
        "ratio method: fewer changes than this share of the items raise delta",
    ),
    (
        "soft_labels",
        "oof",
        "oof.csv of a finished k-fold run on the same images: train on soft labels blended from it",
    ),
    (
        "soft_labels",
        "alpha",
        "weight of the given label: target = alpha * label + (1 - alpha) * predicted",
    ),
    (
        "soft_labels",
        "predicted",
        "probs | argmax: the OOF probabilities, or their argmax as a one-hot row",
    ),
    ("tta", "n", "augmented passes per image (fastai: 4)"),
    (
        "tta",
        "beta",
        "weight of the plain pass: (1-beta)*mean(aug) + beta*plain (fastai: 0.25)",
    ),
    (
        "tta",
        "use_max",
        "combine with the max instead of the mean (fastai: false)",
    ),
    (
        "dashboard",
        "theme",
        "a theme name from themes/ or a path to a theme TOML",
    ),
    ("dashboard", "fps", "most redraws per second"),
];

fn key_doc(section: &str, key: &str) -> Option<&'static str> {
    KEY_DOCS
        .iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .map(|(_, _, d)| *d)
}

impl RunConfig {
    /// Read a config file; unknown keys and bad values name the key and the file.
    pub fn load(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse TOML text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<RunConfig> {
        toml::from_str(text).map_err(|e| {
            let span = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            Error::input(format!(
                "{origin}{span}: {}\nfix: correct that key or value; `orchard config --default` prints every key with its meaning",
                e.message().trim()
            ))
        })
    }

    /// Check values that parse but cannot work, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::input(format!(
                "config key {key} (or its command-line flag): {why}\nfix: change that value; `orchard config --default` lists every key"
            )))
        };
        let t = &self.training;
        if self.folds.k < 2 {
            return bad(
                "folds.k",
                &format!("is {}, but k-fold needs at least 2 folds", self.folds.k),
            );
        }
        if let Some(f) = self.folds.fold
            && f >= self.folds.k
        {
            return bad(
                "folds.fold",
                &format!("is {f}, but folds are numbered 0..{}", self.folds.k - 1),
            );
        }
        if t.epochs == 0 {
            return bad("training.epochs", "must be at least 1");
        }
        if t.epochs > MAX_EPOCHS {
            return bad(
                "training.epochs",
                &format!(
                    "is {}, more than the {MAX_EPOCHS} orchard plans for",
                    t.epochs
                ),
            );
        }
        if t.batch_size == 0 {
            return bad("training.batch_size", "must be at least 1");
        }
        if !(8..=4096).contains(&t.size) {
            return bad(
                "training.size",
                &format!("is {}, expected 8..=4096 pixels", t.size),
            );
        }
        let mut last = (0, t.size);
        for &(epoch, size) in &t.size_schedule {
            let step = format!("[{epoch}, {size}]");
            if epoch <= last.0 || epoch >= t.epochs {
                return bad(
                    "training.size_schedule",
                    &format!(
                        "step {step}: epochs must increase and lie in 1..{} (the run has {} epochs)",
                        t.epochs, t.epochs
                    ),
                );
            }
            if size <= last.1 || size > 4096 {
                return bad(
                    "training.size_schedule",
                    &format!(
                        "step {step}: sizes must grow past training.size ({}) and the step before, up to 4096",
                        t.size
                    ),
                );
            }
            last = (epoch, size);
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return bad("training.lr", "must be a positive number");
        }
        if !(0.0..1.0).contains(&t.pct_start()) {
            return bad("training.pct_start", "must be in [0, 1)");
        }
        self.validate_recipe()?;
        if t.div <= 0.0 || t.div_final <= 0.0 {
            return bad("training.div / training.div_final", "must be positive");
        }
        self.validate_optimizer()?;
        crate::models::check_options(&self.model)?;
        for (class, share) in &self.folds.undersample {
            if !(*share > 0.0 && *share <= 1.0) {
                return bad(
                    &format!("folds.undersample.{class}"),
                    &format!("is {share}, expected a share in (0, 1]"),
                );
            }
        }
        for (class, n) in &self.folds.oversample {
            if *n > MAX_OVERSAMPLE {
                return bad(
                    &format!("folds.oversample.{class}"),
                    &format!("is {n}, more than {MAX_OVERSAMPLE} repeats"),
                );
            }
            if *n == 0 {
                return bad(
                    &format!("folds.oversample.{class}"),
                    "must be at least 1 (1 = unchanged)",
                );
            }
        }
        if !(1..=60).contains(&self.dashboard.fps) {
            return bad(
                "dashboard.fps",
                &format!(
                    "is {}, expected 1..=60 redraws a second",
                    self.dashboard.fps
                ),
            );
        }
        let a = &self.augmentation;
        for (key, p) in [
            ("augmentation.p_affine", a.p_affine),
            ("augmentation.p_lighting", a.p_lighting),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, &format!("is {p}, expected a probability in [0, 1]"));
            }
        }
        if !(a.min_zoom > 0.0 && a.min_zoom <= a.max_zoom && a.max_zoom.is_finite()) {
            return bad(
                "augmentation.min_zoom / max_zoom",
                "expected 0 < min_zoom <= max_zoom",
            );
        }
        if !(a.mult.is_finite() && a.mult >= 0.0) {
            return bad("augmentation.mult", "must be a number >= 0");
        }
        if !(0.0..1.0).contains(&(a.max_lighting * a.mult)) {
            return bad(
                "augmentation.max_lighting",
                "times mult must be in [0, 1) (contrast draws log(1 - max_lighting))",
            );
        }
        if !(0.0..1.0).contains(&(a.max_warp * a.mult)) || !(a.max_rotate * a.mult).is_finite() {
            return bad(
                "augmentation.max_warp / max_rotate",
                "max_warp times mult must be in [0, 1), max_rotate finite",
            );
        }
        for (key, v) in [
            ("augmentation.min_scale", a.min_scale),
            ("augmentation.rrc_min_scale", a.rrc_min_scale),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(key, &format!("is {v}, expected a share in (0, 1]"));
            }
        }
        for (key, v) in [
            ("mixing.mixup_alpha", self.mixing.mixup_alpha),
            ("mixing.cutmix_alpha", self.mixing.cutmix_alpha),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(key, &format!("is {v}, expected a positive number"));
            }
        }
        let lc = &self.label_correction;
        if !(0.0..1.0).contains(&lc.warmup) {
            return bad("label_correction.warmup", "must be a share in [0, 1)");
        }
        for (key, v) in [
            ("label_correction.theta_start", lc.theta_start),
            ("label_correction.theta_end", lc.theta_end),
        ] {
            // theta bounds a difference of two probabilities.
            if !(0.0..=1.0).contains(&v) {
                return bad(key, &format!("is {v}, expected a value in [0, 1]"));
            }
        }
        if !(lc.theta_step > 0.0 && lc.theta_step <= 1.0) {
            return bad("label_correction.theta_step", "must be in (0, 1]");
        }
        if lc.window == 0 {
            return bad("label_correction.window", "must be at least 1 epoch");
        }
        for (key, v) in [
            ("label_correction.delta_start", lc.delta_start),
            ("label_correction.delta_step", lc.delta_step),
            ("label_correction.delta_max", lc.delta_max),
            ("label_correction.min_changed", lc.min_changed),
        ] {
            // delta bounds a ratio of probabilities; the others are shares.
            if !(0.0..=1.0).contains(&v) {
                return bad(key, &format!("is {v}, expected a value in [0, 1]"));
            }
        }
        let sl = &self.soft_labels;
        if !(0.0..=1.0).contains(&sl.alpha) {
            return bad(
                "soft_labels.alpha",
                &format!("is {}, expected a weight in [0, 1]", sl.alpha),
            );
        }
        // PLC changes hard labels; a soft target has none to change.
        if lc.enabled && sl.oof.is_some() {
            return bad(
                "label_correction.enabled",
                "cannot be combined with soft_labels.oof (PLC corrects hard labels); use one of the two",
            );
        }
        // PLC reads each item's prediction off its training forward pass; a
        // mixed image's prediction is about two items, not one.
        if lc.enabled && self.mixing.method != MixMethod::None {
            return bad(
                "label_correction.enabled",
                "cannot be combined with mixing.method = mixup/cutmix (a mixed image's prediction belongs to two items); set mixing.method = \"none\"",
            );
        }
        Ok(())
    }

    /// The optimiser's keys: values no step can run with.
    fn validate_optimizer(&self) -> Result<()> {
        let bad = |key: &str, why: String| {
            Err(Error::input(format!(
                "config key training.{key} (or its command-line flag): {why}\nfix: change that value; `orchard config --default` lists every key"
            )))
        };
        let t = &self.training;
        let momentum = |x: f64| (0.0..1.0).contains(&x);
        if let Some(wd) = t.weight_decay
            && !(wd.is_finite() && wd >= 0.0)
        {
            return bad("weight_decay", format!("is {wd}, expected a number >= 0"));
        }
        if let Some(mom) = t.mom
            && !momentum(mom)
        {
            return bad("mom", format!("is {mom}, expected a value in [0, 1)"));
        }
        if let Some(m) = t.moms.iter().find(|m| !momentum(**m)) {
            return bad("moms", format!("has {m}, expected values in [0, 1)"));
        }
        if !momentum(t.beta2) {
            return bad(
                "beta2",
                format!("is {}, expected a value in [0, 1)", t.beta2),
            );
        }
        if let Some(eps) = t.eps
            && !(eps.is_finite() && eps > 0.0)
        {
            return bad("eps", format!("is {eps}, expected a positive number"));
        }
        if t.nesterov && t.optimizer != OptimizerChoice::Sgd {
            return bad(
                "nesterov",
                "is true, but only optimizer = \"sgd\" has Nesterov momentum".into(),
            );
        }
        if t.nesterov && t.mom() == 0.0 {
            return bad(
                "nesterov",
                "is true, but sgd has no momentum (training.mom is 0); set training.mom, e.g. 0.9"
                    .into(),
            );
        }
        if t.lookahead_k == 0 {
            return bad("lookahead_k", "must be at least 1".into());
        }
        if !(t.lookahead_alpha > 0.0 && t.lookahead_alpha <= 1.0) {
            return bad(
                "lookahead_alpha",
                format!("is {}, expected a value in (0, 1]", t.lookahead_alpha),
            );
        }
        if let Some(c) = t.grad_clip
            && !(c.is_finite() && c > 0.0)
        {
            return bad("grad_clip", format!("is {c}, expected a number > 0"));
        }
        if !(t.multi_label_threshold > 0.0 && t.multi_label_threshold < 1.0) {
            return bad(
                "multi_label_threshold",
                format!("is {}, expected a value in (0, 1)", t.multi_label_threshold),
            );
        }
        if !(t.f_beta.is_finite() && t.f_beta > 0.0) {
            return bad("f_beta", format!("is {}, expected a number > 0", t.f_beta));
        }
        if let Some((class, w)) = t
            .pos_weight
            .iter()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0))
        {
            return bad(
                &format!("pos_weight.{class}"),
                format!("is {w}, expected a number > 0"),
            );
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return bad(
                "label_smoothing",
                format!("is {}, expected a value in [0, 1)", t.label_smoothing),
            );
        }
        Ok(())
    }

    /// fine-tune's keys and the combinations it cannot run with.
    fn validate_recipe(&self) -> Result<()> {
        let t = &self.training;
        let bad = |key: &str, why: String, fix: &str| {
            Err(Error::input(format!("config key {key}: {why}\nfix: {fix}")))
        };
        if t.recipe == Recipe::Fit {
            return Ok(());
        }
        if self.model.pretrained.is_none() {
            return bad(
                "training.recipe",
                "is \"fine-tune\", which freezes a pretrained body, but model.pretrained is not set".into(),
                "set model.pretrained (or --pretrained FILE), or use recipe = \"fit\"",
            );
        }
        if t.policy != SchedulePolicy::OneCycle {
            return bad(
                "training.policy",
                "is \"flat-cos\", but fine-tune runs fastai's two one-cycle schedules".into(),
                "remove training.policy (or set \"one-cycle\"), or use recipe = \"fit\"",
            );
        }
        if t.freeze_epochs >= t.epochs {
            return bad(
                "training.freeze_epochs",
                format!(
                    "is {}, but training.epochs is {}: fine-tune needs at least one unfrozen epoch after the frozen ones",
                    t.freeze_epochs, t.epochs
                ),
                "raise training.epochs above freeze_epochs (fastai's fine_tune(n) runs freeze_epochs + n epochs)",
            );
        }
        if !(t.lr_mult.is_finite() && t.lr_mult >= 1.0) {
            return bad(
                "training.lr_mult",
                format!("is {}, expected a number >= 1", t.lr_mult),
                "use fastai's 100, or 1 for one lr everywhere",
            );
        }
        if !(t.fine_tune_div.is_finite() && t.fine_tune_div > 0.0) {
            return bad(
                "training.fine_tune_div",
                format!("is {}, expected a number > 0", t.fine_tune_div),
                "use fastai's 5",
            );
        }
        Ok(())
    }

    /// Refuse settings whose feature is not built yet, instead of silently
    /// training without it.
    pub fn check_supported(&self) -> Result<()> {
        let not_yet = |key: &str, value: &str, fix: &str| {
            Err(Error::input(format!(
                "config key {key} = {value}: not available yet in this version of orchard\nfix: {fix}"
            )))
        };
        if !crate::models::is_known(&self.model.arch) {
            let known: Vec<_> = crate::models::ARCHS.iter().map(|a| a.name).collect();
            return not_yet(
                "model.arch",
                &format!("{:?}", self.model.arch),
                &format!(
                    "use one of {} (`orchard models` lists them)",
                    known.join(", ")
                ),
            );
        }
        if self.model.pretrained.is_some()
            && !crate::models::transfer::PRETRAINED_ARCHS.contains(&self.model.arch.as_str())
        {
            return not_yet(
                "model.pretrained with model.arch",
                &format!("{:?}", self.model.arch),
                &format!(
                    "use model.arch = one of {} for pretrained weights, or remove model.pretrained",
                    crate::models::transfer::PRETRAINED_ARCHS.join(", ")
                ),
            );
        }
        if self.training.device != "cpu" {
            return not_yet(
                "training.device",
                &format!("{:?}", self.training.device),
                "use \"cpu\" (CUDA comes with the cuda feature)",
            );
        }
        Ok(())
    }

    /// The default config as commented TOML (`orchard config --default`).
    pub fn default_toml() -> String {
        Self::default().to_commented_toml()
    }

    /// This config as TOML with a comment above every key.
    pub fn to_commented_toml(&self) -> String {
        let value = toml::Value::try_from(self).expect("config serialises");
        let table = value.as_table().expect("config is a table");
        let mut out = String::from(
            "# orchard run configuration. Every key is optional; absent keys take these defaults.\n\
             # Defaults follow fastai where fastai has one.\n",
        );
        // Serialise section by section in declaration order so the output reads like the docs.
        let order = [
            "data",
            "folds",
            "model",
            "training",
            "augmentation",
            "mixing",
            "label_correction",
            "soft_labels",
            "tta",
            "dashboard",
        ];
        for section in order {
            out.push_str(&format!("\n[{section}]\n"));
            let mut keys: Vec<&str> = KEY_DOCS
                .iter()
                .filter(|(s, _, _)| *s == section)
                .map(|(_, k, _)| *k)
                .collect();
            keys.dedup();
            let sec = table.get(section).and_then(|v| v.as_table());
            for key in keys {
                let doc = key_doc(section, key).unwrap_or("");
                out.push_str(&format!("# {doc}\n"));
                match sec.and_then(|t| t.get(key)) {
                    Some(v) => out.push_str(&format!("{key} = {}\n", inline_value(v))),
                    // Optional keys that are unset are shown commented out.
                    None => out.push_str(&format!("# {key} = \n")),
                }
            }
        }
        out
    }
}

/// A key as TOML needs it: bare when it can be, quoted otherwise (a class name
/// such as "late blight" is a valid oversampling key).
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

fn inline_value(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) if t.is_empty() => "{}".into(),
        toml::Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), inline_value(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        toml::Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_parses_back_to_default() {
        let text = RunConfig::default_toml();
        let back = RunConfig::parse(&text, "default").unwrap();
        assert_eq!(back, RunConfig::default());
    }

    #[test]
    fn every_key_is_documented() {
        let value = toml::Value::try_from(RunConfig::default()).unwrap();
        for (section, sec) in value.as_table().unwrap() {
            for key in sec.as_table().unwrap().keys() {
                assert!(
                    key_doc(section, key).is_some(),
                    "{section}.{key} has no doc line"
                );
            }
        }
    }

    #[test]
    fn class_names_that_need_quotes_survive_the_round_trip() {
        let mut c = RunConfig::default();
        c.folds.oversample.insert("late blight".into(), 3);
        let back = RunConfig::parse(&c.to_commented_toml(), "written").unwrap();
        assert_eq!(back.folds.oversample.get("late blight"), Some(&3));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = RunConfig::parse("[training]\nepochz = 3\n", "my.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("epochz") && msg.contains("my.toml"), "{msg}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn impossible_values_are_named() {
        let mut c = RunConfig::default();
        c.folds.k = 1;
        assert!(c.validate().unwrap_err().to_string().contains("folds.k"));
        let mut c = RunConfig::default();
        c.folds.undersample.insert("rust".into(), 1.5);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("folds.undersample.rust")
        );
    }

    #[test]
    fn size_schedule_parses_and_its_impossible_steps_are_named() {
        let c = RunConfig::parse(
            "[training]\nepochs = 6\nsize = 64\nsize_schedule = [[2, 96], [4, 128]]\n",
            "grow.toml",
        )
        .unwrap();
        assert_eq!(c.training.size_schedule, [(2, 96), (4, 128)]);
        c.validate().unwrap();
        for (steps, why) in [
            (vec![(0, 96)], "epochs must increase"),
            (vec![(6, 96)], "epochs must increase"),
            (vec![(3, 96), (2, 128)], "epochs must increase"),
            (vec![(2, 64)], "sizes must grow"),
            (vec![(2, 96), (4, 96)], "sizes must grow"),
            (vec![(2, 5000)], "sizes must grow"),
        ] {
            let mut bad = c.clone();
            bad.training.size_schedule = steps.clone();
            let err = bad.validate().unwrap_err().to_string();
            assert!(
                err.contains("training.size_schedule") && err.contains(why),
                "{steps:?}: {err}"
            );
        }
    }

    #[test]
    fn impossible_optimizer_values_are_named() {
        type Breaker = fn(&mut TrainingConfig);
        let cases: [(&str, Breaker); 11] = [
            ("training.weight_decay", |t| t.weight_decay = Some(-0.1)),
            ("training.mom", |t| t.mom = Some(1.0)),
            ("training.moms", |t| t.moms[1] = -0.5),
            ("training.beta2", |t| t.beta2 = 1.0),
            ("training.eps", |t| t.eps = Some(0.0)),
            ("training.nesterov", |t| t.nesterov = true),
            ("training.nesterov", |t| {
                t.optimizer = OptimizerChoice::Sgd;
                t.nesterov = true;
            }),
            ("training.lookahead_k", |t| t.lookahead_k = 0),
            ("training.lookahead_alpha", |t| t.lookahead_alpha = 1.5),
            ("training.grad_clip", |t| t.grad_clip = Some(0.0)),
            ("training.label_smoothing", |t| t.label_smoothing = 1.0),
        ];
        for (key, break_it) in cases {
            let mut c = RunConfig::default();
            break_it(&mut c.training);
            let err = c.validate().unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
        let mut c = RunConfig::default();
        c.training.optimizer = OptimizerChoice::Sgd;
        c.training.mom = Some(0.9);
        c.training.nesterov = true;
        c.validate().unwrap();
    }

    #[test]
    fn optimizer_keys_parse_with_fastai_defaults() {
        let c = RunConfig::parse("[training]\noptimizer = \"ranger\"\n", "t").unwrap();
        let t = &c.training;
        assert_eq!(t.optimizer, OptimizerChoice::Ranger);
        assert_eq!((t.mom(), t.eps(), t.weight_decay()), (0.95, 1e-6, 0.01));
        let c =
            RunConfig::parse("[training]\noptimizer = \"sgd\"\nweight_decay = 0.1\n", "t").unwrap();
        assert_eq!((c.training.mom(), c.training.weight_decay()), (0.0, 0.1));
        let err = RunConfig::parse("[training]\noptimizer = \"adam\"\n", "t").unwrap_err();
        assert!(err.to_string().contains("adamw"), "{err}");
    }
}
