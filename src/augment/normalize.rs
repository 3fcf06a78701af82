//! fastai's `Normalize.from_stats`: (x - mean) / std per channel on [0, 1]
//! values, with ImageNet's statistics or the training images' own. The stats a
//! run used are written to its directory (`normalization.json`) so that
//! inference normalises the same way.

use crate::config::NormStats;
use crate::error::{Error, Result};
use crate::train::batches::{IMAGENET_MEAN, IMAGENET_STD};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// "imagenet", "dataset" or "tflite".
    pub source: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    pub fn imagenet() -> Self {
        Normalization {
            source: "imagenet".into(),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Per-channel mean and std of [0, 1] pixel values over `images` (the same
    /// sums as `orchard stats`, on the images as the run caches them).
    pub fn from_images<I>(images: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<RgbImage>,
    {
        let mut s = [0f64; 3];
        let mut sq = [0f64; 3];
        let mut n = 0u64;
        for img in images {
            let img: &RgbImage = img.borrow();
            for p in img.pixels() {
                for c in 0..3 {
                    let v = p[c] as f64 / 255.0;
                    s[c] += v;
                    sq[c] += v * v;
                }
            }
            n += img.pixels().len() as u64;
        }
        if n == 0 {
            return Err(Error::input(
                "normalize = \"dataset\" needs at least one training pixel\nfix: check the data set",
            ));
        }
        let nf = n as f64;
        let mean = s.map(|v| v / nf);
        let std: [f64; 3] =
            std::array::from_fn(|c| (sq[c] / nf - mean[c] * mean[c]).max(0.0).sqrt());
        Ok(Normalization {
            source: "dataset".into(),
            mean: mean.map(|v| v as f32),
            // A flat channel gives x - mean = 0 everywhere; any positive std keeps it 0.
            std: std.map(|v| v.max(1e-6) as f32),
        })
    }

    /// The configured statistics; dataset statistics come from `images`.
    pub fn for_config<I>(stats: NormStats, images: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<RgbImage>,
    {
        match stats {
            NormStats::Imagenet => Ok(Self::imagenet()),
            NormStats::Dataset => Self::from_images(images),
            NormStats::Tflite => Ok(Normalization {
                source: "tflite".into(),
                mean: [127.0 / 255.0; 3],
                std: [128.0 / 255.0; 3],
            }),
        }
    }

    /// Normalise a CHW image (3 planes of `plane` values) in place.
    pub fn apply(&self, chw: &mut [f32]) {
        let plane = chw.len() / 3;
        for (c, p) in chw.chunks_mut(plane.max(1)).take(3).enumerate() {
            let (m, inv) = (self.mean[c], 1.0 / self.std[c]);
            for v in p {
                *v = (*v - m) * inv;
            }
        }
    }

    /// Undo `apply` (fastai's `decodes`: x * std + mean), for pictures.
    pub fn decode(&self, chw: &mut [f32]) {
        let plane = chw.len() / 3;
        for (c, p) in chw.chunks_mut(plane.max(1)).take(3).enumerate() {
            for v in p {
                *v = *v * self.std[c] + self.mean[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_then_decode_round_trips() {
        let n = Normalization::imagenet();
        let mut x = vec![0.0f32, 0.5, 1.0, 0.2, 0.3, 0.4];
        let orig = x.clone();
        n.apply(&mut x);
        assert!((x[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        // Planes of 2 values: x[3] = 0.2 is the second value of channel 1.
        assert!((x[3] - (0.2 - 0.456) / 0.224).abs() < 1e-6, "{x:?}");
        n.decode(&mut x);
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn dataset_stats_are_per_channel() {
        let a = RgbImage::from_pixel(2, 2, image::Rgb([0, 255, 51]));
        let b = RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 51]));
        let n = Normalization::from_images([&a, &b]).unwrap();
        assert_eq!(n.source, "dataset");
        assert!((n.mean[0] - 0.5).abs() < 1e-6 && (n.std[0] - 0.5).abs() < 1e-6);
        assert!((n.mean[1] - 1.0).abs() < 1e-6 && n.std[1] > 0.0);
        assert!((n.mean[2] - 0.2).abs() < 1e-6);
        assert!(Normalization::from_images(Vec::<RgbImage>::new()).is_err());
    }
}
