//! Training images in memory and the batches built from them.
//!
//! Each file is decoded once (in parallel) and resized for the training size
//! (squished to it, or, for the item transforms that need the aspect ratio,
//! scaled with the ratio kept; see `augment::pipeline`); the u8 pixels stay in
//! memory for all epochs, and each batch is turned into a normalised NCHW f32
//! tensor only when it is needed.

use crate::data::decode::{decode_rgb, resize_rgb};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;
use std::path::PathBuf;

/// ImageNet's per-channel statistics on [0, 1] values (fastai's `imagenet_stats`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One labelled image file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub path: PathBuf,
    pub class: usize,
}

/// Decoded, resized images (HWC u8) and their classes.
pub struct ImageSet {
    size: usize,
    pixels: Vec<RgbImage>,
    classes: Vec<u32>,
}

impl ImageSet {
    /// Decode and resize every sample to `size` x `size`. A missing or corrupt
    /// file is an error naming it.
    pub fn load(samples: &[Sample], size: u32) -> Result<Self> {
        Self::load_with(samples, size, |_| (size, size))
    }

    /// Decode every sample and resize it to `dims(original (w, h))`; `size` is
    /// the side of the batches built from it.
    pub fn load_with(
        samples: &[Sample],
        size: u32,
        dims: impl Fn((u32, u32)) -> (u32, u32) + Sync,
    ) -> Result<Self> {
        let pixels = samples
            .par_iter()
            .map(|s| {
                let img = decode_rgb(&s.path)?;
                let (w, h) = dims(img.dimensions());
                Ok(resize_rgb(&img, w.max(1), h.max(1)))
            })
            .collect::<Result<Vec<_>>>()?;
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
            pixels,
            classes,
        })
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

    /// The cached (resized) images.
    pub fn images(&self) -> &[RgbImage] {
        &self.pixels
    }

    /// Image `i` and its class; an out-of-range index is our bug.
    pub fn get(&self, i: usize) -> Result<(&RgbImage, u32)> {
        match (self.pixels.get(i), self.classes.get(i)) {
            (Some(p), Some(&c)) => Ok((p, c)),
            _ => Err(Error::Internal(format!(
                "batch index {i} out of {} images",
                self.len()
            ))),
        }
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
                img
            } else {
                squished = resize_rgb(img, self.size as u32, self.size as u32);
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
