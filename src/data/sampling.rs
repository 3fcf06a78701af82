//! Over- and undersampling of the TRAINING part of a fold.
//!
//! The validation part is never resampled: its metrics must describe the data as
//! it is. The same function feeds `orchard folds` (which shows the counts) and the
//! training loader (which uses the indices), so what the table shows is what trains.

use super::dataset::Dataset;
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::collections::BTreeMap;

/// The sub-stream of the seed used for undersampling draws.
const SAMPLING_STREAM: u64 = 2;

/// Resampling rules by class index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resampling {
    /// class -> how many times its training images appear (>= 1).
    pub oversample: BTreeMap<usize, usize>,
    /// class -> share of its training images kept, in (0, 1].
    pub undersample: BTreeMap<usize, f64>,
}

impl Resampling {
    /// Resolve `CLASS=N` / `CLASS=F` rules by class name; an unknown class is an
    /// error that lists the known ones.
    pub fn from_names(
        ds: &Dataset,
        oversample: &BTreeMap<String, usize>,
        undersample: &BTreeMap<String, f64>,
    ) -> Result<Self> {
        let lookup = |name: &str, flag: &str| {
            ds.class_index(name).ok_or_else(|| {
                Error::input(format!(
                    "{flag} {name}: no class of that name\nfix: use one of: {}",
                    ds.classes.join(", ")
                ))
            })
        };
        let mut r = Resampling::default();
        for (name, &n) in oversample {
            if n == 0 {
                return Err(Error::input(format!(
                    "--oversample {name}=0: the factor must be at least 1 (1 = unchanged)\nfix: to drop images use --undersample {name}=F"
                )));
            }
            if n > crate::config::MAX_OVERSAMPLE {
                return Err(Error::input(format!(
                    "--oversample {name}={n}: at most {} repeats\nfix: a factor such as 2-10 is usual",
                    crate::config::MAX_OVERSAMPLE
                )));
            }
            r.oversample.insert(lookup(name, "--oversample")?, n);
        }
        for (name, &f) in undersample {
            if !(f > 0.0 && f <= 1.0) {
                return Err(Error::input(format!(
                    "--undersample {name}={f}: the share must be in (0, 1]\nfix: e.g. --undersample {name}=0.5 keeps half"
                )));
            }
            r.undersample.insert(lookup(name, "--undersample")?, f);
        }
        Ok(r)
    }

    /// Apply to the training indices of one fold: first undersample (a seeded
    /// choice of round(F * count) images of the class), then repeat the images of
    /// oversampled classes. A multi-label image belongs to a class if it carries
    /// it; when several rules apply, the largest repeat wins and it is dropped if
    /// any undersampling draw drops it. The result is in item order (the loader
    /// shuffles).
    pub fn apply(&self, ds: &Dataset, train: &[usize], seed: u64, fold: usize) -> Vec<usize> {
        let mut rng = Rng::derived(seed, SAMPLING_STREAM + 1000 * fold as u64);
        let mut keep = vec![true; train.len()];
        for (&class, &share) in &self.undersample {
            let mut members: Vec<usize> = (0..train.len())
                .filter(|&j| ds.items[train[j]].labels.contains(&class))
                .collect();
            let kept = (share * members.len() as f64).round() as usize;
            rng.shuffle(&mut members);
            for &j in &members[kept..] {
                keep[j] = false;
            }
        }
        let mut out = Vec::with_capacity(train.len());
        for (j, &i) in train.iter().enumerate() {
            if !keep[j] {
                continue;
            }
            let repeat = ds.items[i]
                .labels
                .iter()
                .filter_map(|c| self.oversample.get(c))
                .copied()
                .max()
                .unwrap_or(1);
            out.extend(std::iter::repeat_n(i, repeat));
        }
        out
    }
}

/// Per-class counts of a list of item indices.
pub fn class_counts(ds: &Dataset, indices: &[usize]) -> Vec<usize> {
    let mut counts = vec![0; ds.num_classes()];
    for &i in indices {
        for &c in &ds.items[i].labels {
            counts[c] += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Item, LabelLayout, TaskType};

    fn ds() -> Dataset {
        let labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2];
        Dataset {
            source: "mem".into(),
            classes: vec!["common".into(), "mid".into(), "rare".into()],
            items: labels
                .iter()
                .enumerate()
                .map(|(i, &c)| Item {
                    id: format!("i{i}"),
                    path: format!("i{i}.jpg").into(),
                    labels: vec![c],
                })
                .collect(),
            task: TaskType::MultiClass,
            layout: LabelLayout::OneHot {
                id_column: "image_id".into(),
            },
        }
    }

    #[test]
    fn oversample_repeats_and_undersample_keeps_a_share() {
        let d = ds();
        let over = BTreeMap::from([("rare".to_string(), 3)]);
        let under = BTreeMap::from([("common".to_string(), 0.5)]);
        let r = Resampling::from_names(&d, &over, &under).unwrap();
        let train: Vec<usize> = (0..11).collect();
        let out = r.apply(&d, &train, 7, 0);
        assert_eq!(class_counts(&d, &out), vec![4, 2, 3]);
        // Deterministic.
        assert_eq!(out, r.apply(&d, &train, 7, 0));
    }

    #[test]
    fn unknown_class_lists_the_known_ones() {
        let d = ds();
        let over = BTreeMap::from([("mystery".to_string(), 2)]);
        let err = Resampling::from_names(&d, &over, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mystery") && err.contains("common, mid, rare"),
            "{err}"
        );
    }

    #[test]
    fn only_the_given_indices_are_touched() {
        let d = ds();
        let over = BTreeMap::from([("rare".to_string(), 5)]);
        let r = Resampling::from_names(&d, &over, &BTreeMap::new()).unwrap();
        // The rare image (10) is not in this training part: nothing to repeat.
        let out = r.apply(&d, &[0, 1, 8], 1, 0);
        assert_eq!(out, vec![0, 1, 8]);
    }
}
