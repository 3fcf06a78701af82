//! The training and validation batches as fastai builds them: item transforms
//! on each cached u8 image (Resize / RandomResizedCrop, FlipItem,
//! DihedralItem), then on f32 [0, 1] CHW: aug_transforms, Normalize, and
//! MixUp/CutMix. Training draws everything from the batch's seed; validation
//! uses the fixed (centre) behaviour and no batch augmentation or mixing.

use super::batch::BatchAugment;
use super::fused;
use super::item::{self, Method, PadMode, RrcParams};
use super::mix::{self, Mixed};
use super::normalize::Normalization;
use crate::config::{MixMethod, MixingConfig, PadModeChoice, ResizeMethod, RunConfig};
use crate::error::Result;
use crate::rng::Rng;
use crate::train::batches::{CacheOptions, ImageSet, Sample};
use crate::train::loss::{Reduction, cross_entropy, label_smoothing_cross_entropy, mix_losses};
use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;
use std::borrow::Cow;

/// Rng stream of the augmentation draws (the batch order uses the epoch number).
const AUG_STREAM: u64 = 0x4155_474D_0000_0000; // "AUGM"

/// The seed of one training batch's draws.
pub fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    Rng::derived(seed ^ AUG_STREAM, ((epoch as u64) << 32) | batch as u64).next_u64()
}

/// The size an image is cached at for `method` at training side `size`:
/// squish caches the final square; the others keep the aspect ratio, scaled
/// (never up) so the side that Resize fits becomes `size`, and crop or pad
/// then only cut or add pixels. RandomResizedCrop takes its crops from the
/// same shorter-side-`size` image.
pub fn cached_dims(orig: (u32, u32), size: u32, method: ResizeMethod) -> (u32, u32) {
    let (w, h) = (orig.0 as f64, orig.1 as f64);
    let side = match method {
        ResizeMethod::Squish => return (size, size),
        ResizeMethod::Crop | ResizeMethod::RandomResizedCrop => w.min(h),
        ResizeMethod::Pad => w.max(h),
    };
    let scale = (size as f64 / side).min(1.0);
    (
        ((w * scale).round() as u32).max(1),
        ((h * scale).round() as u32).max(1),
    )
}

/// Decode and cache the images of `samples` for this config's item transforms.
pub fn load_set(samples: &[Sample], cfg: &RunConfig) -> Result<ImageSet> {
    load_set_at(samples, cfg, cfg.training.size)
}

/// `load_set` for images of `size` pixels (progressive resizing).
pub fn load_set_at(samples: &[Sample], cfg: &RunConfig, size: u32) -> Result<ImageSet> {
    load_set_in(samples, cfg, size, None)
}

/// `load_set_at` with `data.cache_mb` of pixels in memory and the rest in a
/// spill file in `spill_dir` (the run's cache directory; None: the system's
/// temporary directory).
pub fn load_set_in(
    samples: &[Sample],
    cfg: &RunConfig,
    size: u32,
    spill_dir: Option<&std::path::Path>,
) -> Result<ImageSet> {
    let method = cfg.augmentation.resize;
    let cache = CacheOptions::bounded(cfg.data.cache_mb, spill_dir);
    ImageSet::load_cached(samples, size, |d| cached_dims(d, size, method), &cache)
}

/// A built batch: (N, 3, S, S) f32 normalised images, (N,) u32 classes, and
/// what the loss needs when the batch was mixed.
pub struct Batch {
    pub x: Tensor,
    pub y: Tensor,
    pub mix: Option<Mixed>,
}

/// The same batch as plain vectors (pictures, benchmarks).
pub struct RawBatch {
    pub data: Vec<f32>,
    pub labels: Vec<u32>,
    pub size: usize,
    pub mix: Option<Mixed>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub size: u32,
    pub resize: ResizeMethod,
    pub pad: PadMode,
    pub rrc: RrcParams,
    pub item_flip: bool,
    pub item_dihedral: bool,
    pub batch: Option<BatchAugment>,
    pub norm: Normalization,
    pub mixing: MixingConfig,
}

impl Pipeline {
    pub fn new(cfg: &RunConfig, norm: Normalization) -> Self {
        let a = &cfg.augmentation;
        Pipeline {
            size: cfg.training.size,
            resize: a.resize,
            pad: match a.pad_mode {
                PadModeChoice::Reflection => PadMode::Reflection,
                PadModeChoice::Zeros => PadMode::Zeros,
            },
            rrc: RrcParams {
                min_scale: a.rrc_min_scale,
                ..RrcParams::default()
            },
            item_flip: a.item_flip,
            item_dihedral: a.item_dihedral,
            batch: a.batch_augment.then(|| BatchAugment::from_config(a)),
            norm,
            mixing: cfg.mixing.clone(),
        }
    }

    /// The item transforms of one cached image: `rng` in training, None in validation.
    /// Borrowed where Resize leaves the cached image as it is (it already
    /// has the target size) and nothing random changes it: no copy.
    pub fn item<'a>(&self, img: &'a RgbImage, rng: Option<&mut Rng>) -> Cow<'a, RgbImage> {
        match self.item_unmirrored(img, rng) {
            (out, true) => item::mirror(out),
            (out, false) => out,
        }
    }

    /// `item`, except that FlipItem's mirror is returned as a flag instead of
    /// done: the fused kernel reads the image mirrored at no cost, where
    /// mirroring it here is a copy of every image drawn (a few percent of a
    /// warm epoch). The draws are `item`'s, in the same order.
    pub fn item_unmirrored<'a>(
        &self,
        img: &'a RgbImage,
        mut rng: Option<&mut Rng>,
    ) -> (Cow<'a, RgbImage>, bool) {
        let s = (self.size, self.size);
        let out = match self.resize {
            ResizeMethod::Squish => item::squish(img, s),
            ResizeMethod::Crop | ResizeMethod::Pad => {
                let method = if self.resize == ResizeMethod::Crop {
                    Method::Crop
                } else {
                    Method::Pad
                };
                let pcts = item::resize_pcts(rng.as_deref_mut());
                item::resize(img, s, method, self.pad, pcts)
            }
            ResizeMethod::RandomResizedCrop => Cow::Owned(item::random_resized_crop(
                img,
                s,
                &self.rrc,
                rng.as_deref_mut(),
            )),
        };
        // FlipItem and DihedralItem are training-only (fastai's split_idx = 0).
        let Some(rng) = rng else {
            return (out, false);
        };
        let mirrored = self.item_flip && item::flip_drawn(0.5, rng);
        if self.item_dihedral {
            // The dihedral symmetry comes after the flip: the flip is done here.
            let out = if mirrored { item::mirror(out) } else { out };
            return (item::dihedral_item(out, 1.0, rng), false);
        }
        (out, mirrored)
    }

    /// Build a batch as vectors; `seed` = Some(batch seed) for training.
    pub fn raw_batch(
        &self,
        set: &ImageSet,
        indices: &[usize],
        seed: Option<u64>,
    ) -> Result<RawBatch> {
        self.raw_batch_with(set, indices, seed, true)
    }

    /// `raw_batch`, choosing the path: `fused` = the one-pass kernel
    /// (`fused::augment_normalize`) where it applies, else the unfused
    /// reference (f32 copy, resample, lighting, normalise in turn). Both give
    /// the same batch to 1e-5.
    pub fn raw_batch_with(
        &self,
        set: &ImageSet,
        indices: &[usize],
        seed: Option<u64>,
        fused: bool,
    ) -> Result<RawBatch> {
        let s = self.size as usize;
        let len = 3 * s * s;
        let labels: Vec<u32> = indices
            .iter()
            .map(|&i| set.get(i).map(|x| x.1))
            .collect::<Result<_>>()?;
        let n = indices.len();
        let item_seed = seed.map(|s| Rng::derived(s, 1).next_u64());
        // Item k's own random stream.
        let item_rng = |k: usize| item_seed.map(|s| Rng::derived(s, k as u64));
        let aug_seed = seed.map(|seed| Rng::derived(seed, 2).next_u64());
        let plan = match (aug_seed, &self.batch) {
            (Some(seed), Some(b)) => Some(b.draws(n, s, s, seed)),
            _ => None,
        };
        // RandomResizedCropGPU resamples a second time after the affine one.
        let crop = plan.as_ref().and_then(|p| p.1);
        let mut data;
        if fused && crop.is_none() && len <= fused::FUSED_MAX_BYTES {
            let draws = plan.as_ref().map(|p| &p.0);
            // Not zeroed first: the kernel writes every value (zeroing 19 MB
            // per batch of 32 at 224 px was a few percent of a warm epoch).
            data = Vec::with_capacity(n * len);
            data.spare_capacity_mut()[..n * len]
                .par_chunks_mut(len)
                .zip(indices)
                .enumerate()
                .try_for_each(|(k, (chw, &i))| -> Result<()> {
                    let img = set.image(i)?;
                    let (out, mirrored) = self.item_unmirrored(&img, item_rng(k).as_mut());
                    let draw = draws.map(|d| &d[k]);
                    fused::augment_normalize_uninit(&out, mirrored, draw, &self.norm, chw);
                    Ok(())
                })?;
            // SAFETY: every chunk was written in full (the loop above returns
            // early on any error, dropping `data` at length 0).
            unsafe { data.set_len(n * len) };
        } else {
            data = vec![0f32; n * len];
            data.par_chunks_mut(len)
                .zip(indices)
                .enumerate()
                .try_for_each(|(k, (chw, &i))| -> Result<()> {
                    let img = set.image(i)?;
                    to_chw(&self.item(&img, item_rng(k).as_mut()), chw);
                    Ok(())
                })?;
            if let (Some(seed), Some(b)) = (aug_seed, &self.batch) {
                b.apply_batch(&mut data, 3, s, s, seed);
            }
            data.par_chunks_mut(len)
                .for_each(|chw| self.norm.apply(chw));
        }
        let mix = match (seed, self.mixing.method) {
            (None, _) | (_, MixMethod::None) => None,
            (Some(seed), method) => {
                let mut rng = Rng::derived(seed, 3);
                Some(match method {
                    MixMethod::Mixup => mix::mixup(&mut data, n, self.mixing.mixup_alpha, &mut rng),
                    _ => mix::cutmix(&mut data, n, 3, s, s, self.mixing.cutmix_alpha, &mut rng),
                })
            }
        };
        Ok(RawBatch {
            data,
            labels,
            size: s,
            mix,
        })
    }

    /// A training batch: every random transform drawn from `seed`.
    pub fn train_batch(
        &self,
        set: &ImageSet,
        indices: &[usize],
        seed: u64,
        device: &Device,
    ) -> Result<Batch> {
        self.to_batch(self.raw_batch(set, indices, Some(seed))?, device)
    }

    /// A validation batch: centre/validation item transforms, nothing random.
    pub fn valid_batch(&self, set: &ImageSet, indices: &[usize], device: &Device) -> Result<Batch> {
        self.to_batch(self.raw_batch(set, indices, None)?, device)
    }

    fn to_batch(&self, raw: RawBatch, device: &Device) -> Result<Batch> {
        let n = raw.labels.len();
        let s = raw.size;
        Ok(Batch {
            x: Tensor::from_vec(raw.data, (n, 3, s, s), device)?,
            y: Tensor::from_vec(raw.labels, n, device)?,
            mix: raw.mix,
        })
    }
}

/// HWC u8 -> CHW f32 in [0, 1] (fastai's IntToFloatTensor, div 255).
pub fn to_chw(img: &RgbImage, chw: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    for (p, rgb) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * plane + p] = rgb[c] as f32 * (1.0 / 255.0);
        }
    }
}

/// The training loss: cross-entropy (label-smoothed when `smoothing` > 0,
/// fastai's `LabelSmoothingCrossEntropy(eps)`), or for a mixed batch fastai's
/// `MixHandler.lf` for integer targets around it:
/// mean_i(lam_i * CE(pred_i, y_i) + (1 - lam_i) * CE(pred_i, y_perm[i])).
pub fn training_loss(
    logits: &Tensor,
    y: &Tensor,
    mix: Option<&Mixed>,
    smoothing: f64,
) -> Result<Tensor> {
    let loss = |y: &Tensor, reduction| {
        if smoothing > 0.0 {
            label_smoothing_cross_entropy(logits, y, smoothing, reduction)
        } else {
            cross_entropy(logits, y, reduction)
        }
    };
    let Some(m) = mix else {
        return loss(y, Reduction::Mean);
    };
    let perm: Vec<u32> = m.perm.iter().map(|&p| p as u32).collect();
    let perm = Tensor::from_vec(perm, m.perm.len(), y.device())?;
    let y_partner = y.index_select(&perm, 0)?;
    let own = loss(y, Reduction::None)?;
    let partner = loss(&y_partner, Reduction::None)?;
    let lam = Tensor::from_vec(m.lam.clone(), m.lam.len(), y.device())?;
    mix_losses(&own, &partner, &lam, Reduction::Mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(dir: &std::path::Path, n: usize, cfg: &RunConfig) -> ImageSet {
        let samples: Vec<Sample> = (0..n)
            .map(|i| {
                let img = RgbImage::from_fn(40 + i as u32, 30, |x, y| {
                    image::Rgb([(x * 5) as u8, (y * 7) as u8, (i * 40) as u8])
                });
                let path = dir.join(format!("{i}.png"));
                img.save(&path).unwrap();
                Sample { path, class: i % 2 }
            })
            .collect();
        load_set(&samples, cfg).unwrap()
    }

    fn full_config() -> RunConfig {
        let mut cfg = RunConfig::default();
        cfg.training.size = 16;
        cfg.augmentation.batch_augment = true;
        cfg.augmentation.resize = ResizeMethod::Crop;
        cfg.augmentation.item_flip = true;
        cfg.augmentation.min_scale = 0.5;
        cfg.mixing.method = MixMethod::Mixup;
        cfg
    }

    #[test]
    fn same_seed_same_batches() {
        let dir = tempfile::tempdir().unwrap();
        for method in [MixMethod::Mixup, MixMethod::Cutmix] {
            let mut cfg = full_config();
            cfg.mixing.method = method;
            let set = set_of(dir.path(), 4, &cfg);
            let p = Pipeline::new(&cfg, Normalization::imagenet());
            let a = p.raw_batch(&set, &[0, 1, 2, 3], Some(7)).unwrap();
            let b = p.raw_batch(&set, &[0, 1, 2, 3], Some(7)).unwrap();
            let c = p.raw_batch(&set, &[0, 1, 2, 3], Some(8)).unwrap();
            assert_eq!(a.data, b.data);
            assert_eq!(a.mix, b.mix);
            assert_ne!(a.data, c.data);
            assert_eq!(a.data.len(), 4 * 3 * 16 * 16);
        }
    }

    #[test]
    fn fused_batches_equal_the_unfused_reference() {
        let dir = tempfile::tempdir().unwrap();
        for (method, flip_vert) in [(MixMethod::Mixup, false), (MixMethod::Cutmix, true)] {
            let mut cfg = full_config();
            cfg.mixing.method = method;
            cfg.augmentation.flip_vert = flip_vert;
            // RandomResizedCropGPU takes the unfused path either way.
            cfg.augmentation.min_scale = 1.0;
            let set = set_of(dir.path(), 5, &cfg);
            let p = Pipeline::new(&cfg, Normalization::imagenet());
            for seed in [Some(3), Some(4), None] {
                let a = p
                    .raw_batch_with(&set, &[0, 1, 2, 3, 4], seed, true)
                    .unwrap();
                let b = p
                    .raw_batch_with(&set, &[0, 1, 2, 3, 4], seed, false)
                    .unwrap();
                assert_eq!(a.mix, b.mix);
                assert_eq!(a.labels, b.labels);
                let err = a
                    .data
                    .iter()
                    .zip(&b.data)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                // On normalised values (std ~0.225): 1e-5 on [0, 1] is ~4.5e-5.
                assert!(err < 5e-5, "{method:?} {seed:?}: max error {err}");
            }
        }
    }

    #[test]
    fn validation_is_deterministic_and_unmixed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = full_config();
        let set = set_of(dir.path(), 3, &cfg);
        let p = Pipeline::new(&cfg, Normalization::imagenet());
        let a = p.raw_batch(&set, &[0, 1, 2], None).unwrap();
        assert!(a.mix.is_none());
        // The centre crop of the cached image, normalised, nothing else.
        let cached = set.image(1).unwrap();
        let centre = item::resize(
            &cached,
            (16, 16),
            Method::Crop,
            PadMode::Reflection,
            (0.5, 0.5),
        );
        let mut want = vec![0f32; 3 * 256];
        to_chw(&centre, &mut want);
        Normalization::imagenet().apply(&mut want);
        assert_eq!(&a.data[768..1536], &want[..]);
    }

    #[test]
    fn cached_dims_keep_the_fitted_side() {
        assert_eq!(cached_dims((300, 200), 100, ResizeMethod::Crop), (150, 100));
        assert_eq!(cached_dims((300, 200), 100, ResizeMethod::Pad), (100, 67));
        assert_eq!(
            cached_dims((300, 200), 100, ResizeMethod::Squish),
            (100, 100)
        );
        // Never upscaled.
        assert_eq!(cached_dims((50, 40), 100, ResizeMethod::Crop), (50, 40));
    }

    #[test]
    fn smoothed_mixed_loss_is_the_lerp_of_two_label_smoothing_losses() {
        let rows = [[2.0f32, 0.0, -1.0], [0.5, 1.0, 0.0]];
        let logits = Tensor::new(&rows, &Device::Cpu).unwrap();
        let y = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let m = Mixed {
            perm: vec![1, 0],
            lam: vec![0.7, 0.55],
        };
        let eps = 0.1;
        // fastai: (1 - eps) * nll + eps / C * sum_j(-log_softmax_j), per sample.
        let ls = |r: [f32; 3], t: usize| {
            let lse = r.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
            let lp: Vec<f64> = r.iter().map(|&v| v as f64 - lse).collect();
            (1.0 - eps) * -lp[t] + eps / 3.0 * -lp.iter().sum::<f64>()
        };
        let ys = [0, 2];
        let want = (0..2)
            .map(|i| {
                m.lam[i] as f64 * ls(rows[i], ys[i])
                    + (1.0 - m.lam[i] as f64) * ls(rows[i], ys[m.perm[i]])
            })
            .sum::<f64>()
            / 2.0;
        let got = training_loss(&logits, &y, Some(&m), eps)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        let plain = training_loss(&logits, &y, None, eps)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want_plain = (ls(rows[0], 0) + ls(rows[1], 2)) / 2.0;
        assert!(
            (plain as f64 - want_plain).abs() < 1e-5,
            "{plain} vs {want_plain}"
        );
    }

    #[test]
    fn mixed_loss_is_the_lerp_of_two_cross_entropies() {
        let logits = Tensor::new(&[[2.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[0u32, 1, 0], &Device::Cpu).unwrap();
        let m = Mixed {
            perm: vec![1, 2, 0],
            lam: vec![0.6, 0.9, 0.5],
        };
        let got = training_loss(&logits, &y, Some(&m), 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let ce = |l: [f64; 2], t: usize| -(l[t] - (l[0].exp() + l[1].exp()).ln());
        let rows = [[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let ys = [0, 1, 0];
        let want: f64 = (0..3)
            .map(|i| {
                let lam = [0.6, 0.9, 0.5][i];
                lam * ce(rows[i], ys[i]) + (1.0 - lam) * ce(rows[i], ys[m.perm[i]])
            })
            .sum::<f64>()
            / 3.0;
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }
}
