//! Stratified k-fold assignment.
//!
//! Single-label data follows scikit-learn's `StratifiedKFold` allocation exactly
//! (fastai-semantics.md section 10): the classes are sorted and dealt round-robin
//! into the folds, so per-class fold counts differ by at most one and so do fold
//! sizes. Which images of a class land in which fold is then a seeded shuffle with
//! orchard's own generator, so the same seed gives the same folds on any machine.
//! Multi-label data uses iterative stratification (Sechidis, Tsoumakas and
//! Vlahavas, 2011).

use super::dataset::Dataset;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The sub-stream of the seed used for fold assignment.
const FOLD_STREAM: u64 = 1;

/// A fold number per item, in item order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    pub k: usize,
    pub assignment: Vec<usize>,
}

impl Folds {
    /// Item indices of fold `f` (its validation part).
    pub fn valid_indices(&self, f: usize) -> Vec<usize> {
        (0..self.assignment.len())
            .filter(|&i| self.assignment[i] == f)
            .collect()
    }

    /// Item indices of every other fold (the training part of fold `f`).
    pub fn train_indices(&self, f: usize) -> Vec<usize> {
        (0..self.assignment.len())
            .filter(|&i| self.assignment[i] != f)
            .collect()
    }

    /// fold x class counts (a multi-label item counts once per label).
    pub fn counts(&self, ds: &Dataset) -> Vec<Vec<usize>> {
        let mut t = vec![vec![0; ds.num_classes()]; self.k];
        for (item, &f) in ds.items.iter().zip(&self.assignment) {
            for &c in &item.labels {
                t[f][c] += 1;
            }
        }
        t
    }

    /// Number of items per fold.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.k];
        for &f in &self.assignment {
            s[f] += 1;
        }
        s
    }
}

/// Check that `k` can stratify this data set: at least 2, and no larger than
/// the smallest class (else some fold would have none of it).
pub fn check_k(ds: &Dataset, k: usize) -> Result<()> {
    if k < 2 {
        return Err(Error::input(format!(
            "--k {k}: k-fold cross-validation needs at least 2 folds\nfix: use --k 5 (the usual choice) or any k >= 2"
        )));
    }
    let counts = ds.class_counts();
    if let Some((c, &n)) = counts.iter().enumerate().min_by_key(|&(_, n)| *n)
        && k > n
    {
        let fix = if n < 2 {
            format!(
                "{} has {n} image(s), too few for any k-fold split: add images of it, or remove it from the labels",
                ds.classes[c]
            )
        } else {
            format!("use --k {n} or less, or add images of {}", ds.classes[c])
        };
        return Err(Error::input(format!(
            "--k {k} is larger than the smallest class: {} has only {n} image(s), so some folds would have none\nfix: {fix}",
            ds.classes[c]
        )));
    }
    Ok(())
}

/// Assign folds: stratified k-fold for single-label data, iterative
/// stratification for multi-label data.
pub fn assign_folds(ds: &Dataset, k: usize, seed: u64) -> Result<Folds> {
    check_k(ds, k)?;
    let mut rng = Rng::derived(seed, FOLD_STREAM);
    let assignment = if ds.task.is_multi_label() {
        iterative_stratification(ds, k, &mut rng)
    } else {
        stratified(ds, k, &mut rng)
    };
    Ok(Folds { k, assignment })
}

/// scikit-learn's allocation: classes are numbered by first appearance, the
/// numbers sorted, and fold i gets `bincount(sorted[i::k])`. Returns fold x class
/// (by class index) counts.
pub fn sklearn_allocation(labels: &[usize], num_classes: usize, k: usize) -> Vec<Vec<usize>> {
    let mut rank_of = vec![usize::MAX; num_classes];
    let mut class_of_rank = Vec::new();
    for &c in labels {
        if rank_of[c] == usize::MAX {
            rank_of[c] = class_of_rank.len();
            class_of_rank.push(c);
        }
    }
    let mut sorted: Vec<usize> = labels.iter().map(|&c| rank_of[c]).collect();
    sorted.sort_unstable();
    let mut alloc = vec![vec![0; num_classes]; k];
    for (pos, &r) in sorted.iter().enumerate() {
        alloc[pos % k][class_of_rank[r]] += 1;
    }
    alloc
}

fn stratified(ds: &Dataset, k: usize, rng: &mut Rng) -> Vec<usize> {
    let labels: Vec<usize> = ds.items.iter().map(|it| it.class()).collect();
    let alloc = sklearn_allocation(&labels, ds.num_classes(), k);
    let mut assignment = vec![0; labels.len()];
    for c in 0..ds.num_classes() {
        // The fold labels of this class, e.g. [0,0,1,1,2], shuffled, then handed out
        // to the class's items in their CSV order (as scikit-learn does).
        let mut fold_labels: Vec<usize> = alloc
            .iter()
            .enumerate()
            .flat_map(|(f, row)| std::iter::repeat_n(f, row[c]))
            .collect();
        rng.shuffle(&mut fold_labels);
        let members = (0..labels.len()).filter(|&i| labels[i] == c);
        for (i, f) in members.zip(fold_labels) {
            assignment[i] = f;
        }
    }
    assignment
}

/// Sechidis et al. 2011, Algorithm 1, with seeded tie-breaking.
fn iterative_stratification(ds: &Dataset, k: usize, rng: &mut Rng) -> Vec<usize> {
    let n = ds.len();
    let nc = ds.num_classes();
    // Desired number of items per fold, and per (fold, label).
    let mut want: Vec<f64> = vec![n as f64 / k as f64; k];
    let counts = ds.class_counts();
    let mut want_label: Vec<Vec<f64>> = (0..k)
        .map(|_| counts.iter().map(|&c| c as f64 / k as f64).collect())
        .collect();
    let mut assignment = vec![usize::MAX; n];
    // Visit items in a seeded random order so ties inside a label are broken fairly.
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut remaining: Vec<usize> = counts.clone();
    let mut left = n;

    let pick_fold = |cands: &[usize], rng: &mut Rng| cands[rng.below(cands.len())];

    while left > 0 {
        // The label with the fewest remaining items (but some), ties by index.
        let label = (0..nc)
            .filter(|&l| remaining[l] > 0)
            .min_by_key(|&l| remaining[l]);
        let members: Vec<usize> = match label {
            Some(l) => order
                .iter()
                .copied()
                .filter(|&i| assignment[i] == usize::MAX && ds.items[i].labels.contains(&l))
                .collect(),
            // Items without any label: spread by fold size alone.
            None => order
                .iter()
                .copied()
                .filter(|&i| assignment[i] == usize::MAX)
                .collect(),
        };
        for i in members {
            let cands: Vec<usize> = match label {
                Some(l) => {
                    let best = (0..k).map(|f| want_label[f][l]).fold(f64::MIN, f64::max);
                    let tied: Vec<usize> = (0..k).filter(|&f| want_label[f][l] == best).collect();
                    let best_total = tied.iter().map(|&f| want[f]).fold(f64::MIN, f64::max);
                    tied.into_iter()
                        .filter(|&f| want[f] == best_total)
                        .collect()
                }
                None => {
                    let best = want.iter().copied().fold(f64::MIN, f64::max);
                    (0..k).filter(|&f| want[f] == best).collect()
                }
            };
            let f = pick_fold(&cands, rng);
            assignment[i] = f;
            want[f] -= 1.0;
            for &l in &ds.items[i].labels {
                want_label[f][l] -= 1.0;
                remaining[l] -= 1;
            }
            left -= 1;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Item, LabelLayout, TaskType};

    fn dataset(labels: Vec<Vec<usize>>, nc: usize, task: TaskType) -> Dataset {
        Dataset {
            source: "mem".into(),
            classes: (0..nc).map(|c| format!("c{c}")).collect(),
            items: labels
                .into_iter()
                .enumerate()
                .map(|(i, labels)| Item {
                    id: format!("i{i}"),
                    path: format!("i{i}.jpg").into(),
                    labels,
                })
                .collect(),
            task,
            layout: LabelLayout::OneHot {
                id_column: "image_id".into(),
            },
        }
    }

    #[test]
    fn counts_differ_by_at_most_one() {
        let labels: Vec<Vec<usize>> = (0..103)
            .map(|i| vec![if i % 7 == 0 { 2 } else { i % 2 }])
            .collect();
        let ds = dataset(labels, 3, TaskType::MultiClass);
        for k in [2, 3, 5, 10] {
            let folds = assign_folds(&ds, k, 3).unwrap();
            let t = folds.counts(&ds);
            for c in 0..3 {
                let col: Vec<usize> = t.iter().map(|r| r[c]).collect();
                assert!(
                    col.iter().max().unwrap() - col.iter().min().unwrap() <= 1,
                    "k={k} class {c}: {col:?}"
                );
            }
            let s = folds.sizes();
            assert!(
                s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
                "k={k} sizes {s:?}"
            );
        }
    }

    #[test]
    fn same_seed_same_folds_other_seed_other_folds() {
        let labels: Vec<Vec<usize>> = (0..60).map(|i| vec![i % 3]).collect();
        let ds = dataset(labels, 3, TaskType::MultiClass);
        let a = assign_folds(&ds, 5, 1).unwrap();
        assert_eq!(a, assign_folds(&ds, 5, 1).unwrap());
        assert_ne!(a, assign_folds(&ds, 5, 2).unwrap());
        // The fixed stream makes the folds a contract: pin the first few.
        assert_eq!(
            &a.assignment[..6],
            &[0, 1, 2, 4, 4, 3][..],
            "fold stream changed: users' folds would change"
        );
    }

    #[test]
    fn train_and_valid_partition_the_items() {
        let labels: Vec<Vec<usize>> = (0..20).map(|i| vec![i % 2]).collect();
        let ds = dataset(labels, 2, TaskType::Binary);
        let folds = assign_folds(&ds, 4, 0).unwrap();
        for f in 0..4 {
            let mut all = folds.valid_indices(f);
            all.extend(folds.train_indices(f));
            all.sort();
            assert_eq!(all, (0..20).collect::<Vec<_>>());
        }
    }

    #[test]
    fn iterative_stratification_balances_labels() {
        let mut rng = Rng::new(9);
        let labels: Vec<Vec<usize>> = (0..200)
            .map(|_| {
                let mut l: Vec<usize> = (0..4).filter(|_| rng.next_f64() < 0.35).collect();
                if l.is_empty() {
                    l.push(rng.below(4));
                }
                l
            })
            .collect();
        let ds = dataset(labels, 4, TaskType::MultiLabel);
        let folds = assign_folds(&ds, 5, 1).unwrap();
        let t = folds.counts(&ds);
        for c in 0..4 {
            let col: Vec<usize> = t.iter().map(|r| r[c]).collect();
            assert!(
                col.iter().max().unwrap() - col.iter().min().unwrap() <= 2,
                "class {c}: {col:?}"
            );
        }
        // Iterative stratification balances labels first; fold sizes may drift by
        // a few items (as in the paper), but not by much.
        let s = folds.sizes();
        assert!(
            s.iter().max().unwrap() - s.iter().min().unwrap() <= 8,
            "sizes {s:?}"
        );
    }

    #[test]
    fn k_is_checked_against_the_smallest_class() {
        let labels: Vec<Vec<usize>> = (0..20).map(|i| vec![if i < 3 { 1 } else { 0 }]).collect();
        let ds = dataset(labels, 2, TaskType::Binary);
        let err = assign_folds(&ds, 4, 0).unwrap_err().to_string();
        assert!(err.contains("c1 has only 3"), "{err}");
        assert!(
            assign_folds(&ds, 1, 0)
                .unwrap_err()
                .to_string()
                .contains("at least 2")
        );
    }
}
