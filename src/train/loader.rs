//! The training loader: a worker thread builds the next batches (decoding is
//! already done: it runs the item and batch transforms from the cache) while
//! the model trains on the current one, at most `ahead` batches in advance
//! (a bounded channel). Each batch depends only on its indices and seed, so
//! the order and content are those of building them in the training thread;
//! the labels are read when a batch is taken, so a label corrected since the
//! worker built it is the corrected one.

use crate::augment::Pipeline;
use crate::augment::pipeline::{Batch, RawBatch};
use crate::error::{Error, Result};
use crate::train::batches::ImageSet;
use candle_core::{Device, Tensor};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// One epoch's training batches, in order.
pub struct Loader {
    /// Built ahead by the worker; None when `ahead` is 0 (built on demand).
    ahead: Option<(Receiver<Result<RawBatch>>, JoinHandle<()>)>,
    pipeline: Pipeline,
    batches: std::vec::IntoIter<(Vec<usize>, u64)>,
}

impl Loader {
    /// Batches `batches[b]` drawn with `seeds[b]`, up to `ahead` of them built
    /// in advance on a worker thread.
    pub fn new(
        pipeline: &Pipeline,
        set: &ImageSet,
        batches: Vec<Vec<usize>>,
        seeds: Vec<u64>,
        ahead: usize,
    ) -> Self {
        let jobs: Vec<(Vec<usize>, u64)> = batches.into_iter().zip(seeds).collect();
        let worker = (ahead > 0).then(|| {
            let (tx, rx) = sync_channel(ahead);
            let (p, set, jobs) = (pipeline.clone(), set.clone(), jobs.clone());
            let handle = std::thread::spawn(move || {
                for (idx, seed) in jobs {
                    // A send fails when the loop stopped early: nothing more to build.
                    if tx.send(p.raw_batch(&set, &idx, Some(seed))).is_err() {
                        return;
                    }
                }
            });
            (rx, handle)
        });
        Loader {
            ahead: worker,
            pipeline: pipeline.clone(),
            batches: jobs.into_iter(),
        }
    }

    /// The next batch as tensors on `device`, its labels taken from `set`
    /// now; None after the last.
    pub fn next_batch(&mut self, set: &ImageSet, device: &Device) -> Result<Option<Batch>> {
        let Some((idx, seed)) = self.batches.next() else {
            return Ok(None);
        };
        let raw = match &self.ahead {
            Some((rx, _)) => rx
                .recv()
                .map_err(|_| Error::Internal("the batch loader's worker ended early".into()))??,
            None => self.pipeline.raw_batch(set, &idx, Some(seed))?,
        };
        let labels: Vec<u32> = idx
            .iter()
            .map(|&i| set.get(i).map(|x| x.1))
            .collect::<Result<_>>()?;
        let (n, s) = (labels.len(), raw.size);
        Ok(Some(Batch {
            x: Tensor::from_vec(raw.data, (n, 3, s, s), device)?,
            y: Tensor::from_vec(labels, n, device)?,
            mix: raw.mix,
        }))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        if let Some((rx, handle)) = self.ahead.take() {
            // Dropping the receiver first unblocks a worker waiting to send.
            drop(rx);
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::{Normalization, batch_seed, load_set};
    use crate::config::RunConfig;
    use crate::train::batches::{Sample, training_batches};
    use image::RgbImage;

    #[test]
    fn prefetched_batches_equal_batches_built_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<Sample> = (0..10)
            .map(|i| {
                let img = RgbImage::from_fn(18, 15 + i, |x, y| {
                    image::Rgb([(x * 11) as u8, (y * 5) as u8, (i * 20) as u8])
                });
                let path = dir.path().join(format!("{i}.png"));
                img.save(&path).unwrap();
                Sample {
                    path,
                    class: i as usize % 2,
                }
            })
            .collect();
        let mut cfg = RunConfig::default();
        cfg.training.size = 12;
        cfg.augmentation.batch_augment = true;
        let mut set = load_set(&samples, &cfg).unwrap();
        let p = Pipeline::new(&cfg, Normalization::imagenet());
        let batches = training_batches(set.len(), 3, 5, 1);
        let seeds: Vec<u64> = (0..batches.len()).map(|b| batch_seed(5, 1, b)).collect();
        let direct: Vec<Vec<f32>> = batches
            .iter()
            .zip(&seeds)
            .map(|(idx, &s)| p.raw_batch(&set, idx, Some(s)).unwrap().data)
            .collect();
        for ahead in [0, 1, 3] {
            let mut loader = Loader::new(&p, &set, batches.clone(), seeds.clone(), ahead);
            let mut got = Vec::new();
            while let Some(b) = loader.next_batch(&set, &Device::Cpu).unwrap() {
                got.push(b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            }
            assert_eq!(got, direct, "ahead {ahead}");
        }
        // Labels are read when the batch is taken.
        let mut loader = Loader::new(&p, &set, batches.clone(), seeds.clone(), 2);
        let flipped: Vec<u32> = set.classes().iter().map(|c| 1 - c).collect();
        set.set_classes(&flipped).unwrap();
        let b = loader.next_batch(&set, &Device::Cpu).unwrap().unwrap();
        let want: Vec<u32> = batches[0].iter().map(|&i| flipped[i]).collect();
        assert_eq!(b.y.to_vec1::<u32>().unwrap(), want);
        // Dropping a loader mid-epoch stops its worker.
        drop(loader);
    }
}
