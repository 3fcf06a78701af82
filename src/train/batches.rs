//! Training images, decoded once, and the batches built from them.
//!
//! Each file is decoded once per size (in parallel) and resized for the
//! training size (squished to it, or, for the item transforms that need the
//! aspect ratio, scaled with the ratio kept; see `augment::pipeline`). The u8
//! pixels stay for all epochs: in memory up to a bound (`data.cache_mb`), the
//! rest in a memory-mapped spill file, so no epoch after the first decodes a
//! file again. Each batch is turned into a normalised NCHW f32 tensor only
//! when it is needed.

use crate::data::decode::{decode_resized, resize_rgb};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ImageNet's per-channel statistics on [0, 1] values (fastai's `imagenet_stats`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Files decoded at a time while the cache fills: bounds what is held beyond
/// `CacheOptions::max_bytes` while spilling.
const DECODE_CHUNK: usize = 256;

/// One labelled image file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub path: PathBuf,
    pub class: usize,
}

/// Where the resized pixels live.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// Bytes of pixels kept in memory; the images after that go to the spill file.
    pub max_bytes: usize,
    /// Directory of the spill file (the run's cache directory); the system's
    /// temporary directory when None. The file is unlinked as soon as it is
    /// created, so nothing is left behind.
    pub spill_dir: Option<PathBuf>,
}

impl CacheOptions {
    /// Everything in memory.
    pub fn in_memory() -> Self {
        CacheOptions {
            max_bytes: usize::MAX,
            spill_dir: None,
        }
    }

    /// `mb` megabytes in memory, the rest spilled into `spill_dir`.
    pub fn bounded(mb: u64, spill_dir: Option<&Path>) -> Self {
        CacheOptions {
            max_bytes: usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            spill_dir: spill_dir.map(Path::to_path_buf),
        }
    }
}

/// One cached image.
enum Stored {
    Memory(RgbImage),
    /// `w * h * 3` bytes at `offset` in the spill file.
    Spilled {
        offset: usize,
        w: u32,
        h: u32,
    },
}

/// Decoded, resized images (HWC u8) and their classes. A clone shares the
/// pixels (the loader's worker reads them while training changes labels).
#[derive(Clone)]
pub struct ImageSet {
    size: usize,
    pixels: Arc<Vec<Stored>>,
    spill: Option<Arc<memmap2::Mmap>>,
    classes: Vec<u32>,
}

/// The spill file while it is written.
struct SpillWriter {
    out: std::io::BufWriter<std::fs::File>,
    len: usize,
    dir: PathBuf,
}

impl SpillWriter {
    fn create(dir: Option<&Path>) -> Result<Self> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let file = tempfile::tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(SpillWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            len: 0,
            dir,
        })
    }

    /// Append `img`'s pixels; returns where they are.
    fn push(&mut self, img: &RgbImage) -> Result<Stored> {
        self.out
            .write_all(img.as_raw())
            .map_err(|e| Error::io(&self.dir, e))?;
        let offset = self.len;
        self.len += img.as_raw().len();
        Ok(Stored::Spilled {
            offset,
            w: img.width(),
            h: img.height(),
        })
    }

    fn map(self) -> Result<memmap2::Mmap> {
        let dir = self.dir;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&dir, e.into_error()))?;
        // SAFETY: the file is an unlinked temporary only this process holds
        // and nothing writes to it any more, so the mapping cannot change.
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&dir, e))
    }
}

impl ImageSet {
    /// Decode and resize every sample to `size` x `size`. A missing or corrupt
    /// file is an error naming it.
    pub fn load(samples: &[Sample], size: u32) -> Result<Self> {
        Self::load_with(samples, size, |_| (size, size))
    }

    /// Decode every sample and resize it to `dims(original (w, h))`; `size` is
    /// the side of the batches built from it. Everything stays in memory.
    pub fn load_with(
        samples: &[Sample],
        size: u32,
        dims: impl Fn((u32, u32)) -> (u32, u32) + Sync,
    ) -> Result<Self> {
        Self::load_cached(samples, size, dims, &CacheOptions::in_memory())
    }

    /// `load_with`, keeping `cache.max_bytes` of pixels in memory (images in
    /// sample order, so which ones spill does not depend on the threads) and
    /// the rest in a memory-mapped spill file.
    pub fn load_cached(
        samples: &[Sample],
        size: u32,
        dims: impl Fn((u32, u32)) -> (u32, u32) + Sync,
        cache: &CacheOptions,
    ) -> Result<Self> {
        let mut pixels = Vec::with_capacity(samples.len());
        let mut in_memory = 0usize;
        let mut spill: Option<SpillWriter> = None;
        for chunk in samples.chunks(DECODE_CHUNK) {
            let decoded = chunk
                .par_iter()
                .map(|s| decode_resized(&s.path, &dims))
                .collect::<Result<Vec<_>>>()?;
            for img in decoded {
                let bytes = img.as_raw().len();
                if spill.is_none() && in_memory.saturating_add(bytes) <= cache.max_bytes {
                    in_memory += bytes;
                    pixels.push(Stored::Memory(img));
                } else {
                    // Once one image spills, the rest follow (order stays simple).
                    if spill.is_none() {
                        spill = Some(SpillWriter::create(cache.spill_dir.as_deref())?);
                    }
                    let writer = spill.as_mut().expect("created just above");
                    pixels.push(writer.push(&img)?);
                }
            }
        }
        let spill = match spill {
            Some(w) if w.len > 0 => Some(Arc::new(w.map()?)),
            _ => None,
        };
        let classes = samples
            .iter()
            .map(|s| {
                u32::try_from(s.class).map_err(|_| {
                    Error::input(format!(
                        "{}: class index {} is too large",
                        s.path.display(),
                        s.class
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageSet {
            size: size as usize,
            pixels: Arc::new(pixels),
            spill,
            classes,
        })
    }

    /// How many images are in the spill file rather than in memory.
    pub fn spilled(&self) -> usize {
        self.pixels
            .iter()
            .filter(|p| matches!(p, Stored::Spilled { .. }))
            .count()
    }

    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    pub fn classes(&self) -> &[u32] {
        &self.classes
    }

    /// Replace every class (label correction keeps its own labels per fold and
    /// puts them back after each reload). The count must match.
    pub fn set_classes(&mut self, classes: &[u32]) -> Result<()> {
        if classes.len() != self.classes.len() {
            return Err(Error::Internal(format!(
                "{} labels for {} images",
                classes.len(),
                self.classes.len()
            )));
        }
        self.classes.copy_from_slice(classes);
        Ok(())
    }

    /// The side of the square batches built from this set.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The cached (resized) images, in order (spilled ones are copied out).
    pub fn images(&self) -> impl Iterator<Item = Cow<'_, RgbImage>> + '_ {
        (0..self.len()).map(|i| self.image(i).expect("index in range"))
    }

    /// Cached image `i`: borrowed from memory, or copied out of the spill
    /// file. An out-of-range index is our bug.
    pub fn image(&self, i: usize) -> Result<Cow<'_, RgbImage>> {
        let out_of_range =
            || Error::Internal(format!("batch index {i} out of {} images", self.len()));
        match self.pixels.get(i).ok_or_else(out_of_range)? {
            Stored::Memory(img) => Ok(Cow::Borrowed(img)),
            &Stored::Spilled { offset, w, h } => {
                let len = w as usize * h as usize * 3;
                let bytes = self
                    .spill
                    .as_ref()
                    .and_then(|m| m.get(offset..offset + len))
                    .ok_or_else(|| Error::Internal(format!("image {i} is past the spill file")))?;
                let img = RgbImage::from_raw(w, h, bytes.to_vec())
                    .ok_or_else(|| Error::Internal(format!("image {i}: bad spilled size")))?;
                Ok(Cow::Owned(img))
            }
        }
    }

    /// Image `i` and its class; an out-of-range index is our bug.
    pub fn get(&self, i: usize) -> Result<(Cow<'_, RgbImage>, u32)> {
        let class = *self.classes.get(i).ok_or_else(|| {
            Error::Internal(format!("batch index {i} out of {} images", self.len()))
        })?;
        Ok((self.image(i)?, class))
    }

    /// The images at `indices` as a normalised (N, 3, size, size) f32 tensor,
    /// and their classes as a (N,) u32 tensor.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        let plane = self.size * self.size;
        let mut data = vec![0f32; indices.len() * 3 * plane];
        // Precomputed per channel: (v/255 - mean)/std = v*scale + shift.
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * IMAGENET_STD[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| -IMAGENET_MEAN[c] / IMAGENET_STD[c]);
        let mut labels = Vec::with_capacity(indices.len());
        for (image, &i) in data.chunks_mut(3 * plane).zip(indices) {
            let (img, _) = self.get(i)?;
            let squished;
            let hwc = if img.dimensions() == (self.size as u32, self.size as u32) {
                &*img
            } else {
                squished = resize_rgb(&img, self.size as u32, self.size as u32);
                &squished
            };
            for (p, rgb) in hwc.as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    image[c * plane + p] = rgb[c] as f32 * scale[c] + shift[c];
                }
            }
            labels.push(self.classes[i]);
        }
        let n = indices.len();
        let images = Tensor::from_vec(data, (n, 3, self.size, self.size), device)?;
        let labels = Tensor::from_vec(labels, n, device)?;
        Ok((images, labels))
    }
}

/// Training batches per epoch: full batches only (fastai's `drop_last` for the
/// training loader), but one batch of everything when there is less than a batch.
pub fn steps_per_epoch(n_train: usize, batch_size: usize) -> usize {
    (n_train / batch_size.max(1)).max(1)
}

/// The training batches of one epoch: a shuffle seeded by (seed, epoch), cut
/// into `steps_per_epoch` batches.
pub fn training_batches(
    n_train: usize,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n_train).collect();
    Rng::derived(seed, epoch as u64).shuffle(&mut order);
    if n_train < batch_size {
        return vec![order];
    }
    order.chunks_exact(batch_size).map(|c| c.to_vec()).collect()
}

/// Validation batches: every item in order, the last batch possibly short.
pub fn validation_batches(n: usize, batch_size: usize) -> Vec<Vec<usize>> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(batch_size.max(1))
        .map(|c| c.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_last_but_never_empty() {
        assert_eq!(steps_per_epoch(144, 32), 4);
        assert_eq!(steps_per_epoch(10, 32), 1);
        assert_eq!(steps_per_epoch(64, 32), 2);
        let b = training_batches(10, 4, 1, 0);
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|x| x.len() == 4));
        let b = training_batches(3, 4, 1, 0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 3);
    }

    #[test]
    fn shuffle_depends_on_epoch_and_seed_only() {
        assert_eq!(training_batches(20, 4, 7, 3), training_batches(20, 4, 7, 3));
        assert_ne!(training_batches(20, 4, 7, 3), training_batches(20, 4, 7, 4));
        assert_ne!(training_batches(20, 4, 7, 3), training_batches(20, 4, 8, 3));
    }

    #[test]
    fn validation_covers_everything_in_order() {
        let b = validation_batches(10, 4);
        assert_eq!(b, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert!(validation_batches(0, 4).is_empty());
    }

    #[test]
    fn batch_is_normalised_nchw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let mut img = image::RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 128]));
        img.put_pixel(0, 0, image::Rgb([0, 255, 0]));
        img.save(&path).unwrap();
        let set = ImageSet::load(&[Sample { path, class: 1 }], 4).unwrap();
        let (x, y) = set.batch(&[0, 0], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), [2, 3, 4, 4]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), [1, 1]);
        let (x, _) = set.batch(&[0], &Device::Cpu).unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let expect = |value: f32, c: usize| (value / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        // Channel planes: R then G then B; pixel (0,0) is green, the rest magenta-ish.
        assert!((v[0] - expect(0.0, 0)).abs() < 1e-5);
        assert!((v[1] - expect(255.0, 0)).abs() < 1e-5);
        assert!((v[16] - expect(255.0, 1)).abs() < 1e-5);
        assert!((v[17] - expect(0.0, 1)).abs() < 1e-5);
        assert!((v[33] - expect(128.0, 2)).abs() < 1e-5);
    }

    #[test]
    fn spilled_cache_gives_the_same_batches_and_never_decodes_again() {
        use crate::augment::{Normalization, Pipeline};
        use crate::config::RunConfig;
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<Sample> = (0..6)
            .map(|i| {
                let img = RgbImage::from_fn(20 + i, 14, |x, y| {
                    image::Rgb([(x * 9) as u8, (y * 13) as u8, (i * 30) as u8])
                });
                let path = dir.path().join(format!("{i}.png"));
                img.save(&path).unwrap();
                Sample {
                    path,
                    class: i as usize % 3,
                }
            })
            .collect();
        let dims = |_| (12, 12);
        let all = ImageSet::load_with(&samples, 12, dims).unwrap();
        // Room for two 12x12 images in memory; the other four spill.
        let spill_dir = dir.path().join("cache");
        let bounded = CacheOptions {
            max_bytes: 2 * 12 * 12 * 3,
            spill_dir: Some(spill_dir.clone()),
        };
        let small = ImageSet::load_cached(&samples, 12, dims, &bounded).unwrap();
        assert_eq!(all.spilled(), 0);
        assert_eq!(small.spilled(), 4);
        assert!(spill_dir.is_dir());
        // Epoch 2 onwards reads the cache only: the files can be gone.
        for s in &samples {
            std::fs::remove_file(&s.path).unwrap();
        }
        let mut cfg = RunConfig::default();
        cfg.training.size = 12;
        cfg.augmentation.batch_augment = true;
        let p = Pipeline::new(&cfg, Normalization::imagenet());
        for seed in [Some(1), Some(2), None] {
            let a = p.raw_batch(&all, &[5, 0, 3, 2], seed).unwrap();
            let b = p.raw_batch(&small, &[5, 0, 3, 2], seed).unwrap();
            assert_eq!(a.data, b.data);
            assert_eq!(a.labels, b.labels);
        }
        assert!(all.images().zip(small.images()).all(|(x, y)| *x == *y));
    }

    #[test]
    fn corrupt_file_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jpg");
        std::fs::write(&path, b"not an image at all").unwrap();
        let err = ImageSet::load(&[Sample { path, class: 0 }], 8)
            .err()
            .unwrap();
        assert!(err.to_string().contains("bad.jpg"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
