//! Synthetic label noise and how well label correction undoes it: the
//! measuring tools of the noisy-label experiment (`examples/noisy_labels.rs`).

use crate::rng::Rng;

/// The `Rng` stream of the flips, apart from every other use of the seed.
const FLIP_STREAM: u64 = 0x464C_4950_0000_0000; // "FLIP"

/// A copy of `classes` with `round(rate * n)` items, chosen at random, moved
/// to a different class drawn uniformly from the other `n_classes - 1`
/// (symmetric noise, the usual synthetic setting). Same seed, same flips.
pub fn flip_labels(classes: &[usize], n_classes: usize, rate: f64, seed: u64) -> Vec<usize> {
    let mut noisy = classes.to_vec();
    if n_classes < 2 {
        return noisy;
    }
    let n_flips =
        ((rate.clamp(0.0, 1.0) * classes.len() as f64).round() as usize).min(classes.len());
    let mut rng = Rng::derived(seed, FLIP_STREAM);
    // A partial Fisher-Yates shuffle picks n_flips distinct items.
    let mut order: Vec<usize> = (0..classes.len()).collect();
    for i in 0..n_flips {
        let j = i + rng.below(order.len() - i);
        order.swap(i, j);
        let item = order[i];
        // One of the other classes: skip over the true one.
        let other = rng.below(n_classes - 1);
        noisy[item] = if other >= classes[item] {
            other + 1
        } else {
            other
        };
    }
    noisy
}

/// How the corrections of one or more folds compare with the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorrectionScore {
    /// Label changes made.
    pub corrections: usize,
    /// Changes whose new label is the true one.
    pub restoring: usize,
    /// Training labels that were wrong (flipped) when training started.
    pub flipped: usize,
    /// Of those, the ones right at the end.
    pub recovered: usize,
    /// Training labels that were right at the start and wrong at the end.
    pub broken: usize,
}

impl CorrectionScore {
    /// Score one fold: `truth`, `given` (the noisy labels training started
    /// with) and `final_labels` are per training item; `changes` lists every
    /// correction as (item, new label) in the order made.
    pub fn of_fold(
        truth: &[usize],
        given: &[usize],
        final_labels: &[usize],
        changes: &[(usize, usize)],
    ) -> Self {
        let mut s = CorrectionScore {
            corrections: changes.len(),
            restoring: changes
                .iter()
                .filter(|&&(item, new)| truth.get(item) == Some(&new))
                .count(),
            ..Default::default()
        };
        for ((&t, &g), &f) in truth.iter().zip(given).zip(final_labels) {
            if g != t {
                s.flipped += 1;
                s.recovered += usize::from(f == t);
            } else if f != t {
                s.broken += 1;
            }
        }
        s
    }

    pub fn add(&mut self, other: &CorrectionScore) {
        self.corrections += other.corrections;
        self.restoring += other.restoring;
        self.flipped += other.flipped;
        self.recovered += other.recovered;
        self.broken += other.broken;
    }

    /// Share of corrections that restored the true label.
    pub fn precision(&self) -> Option<f64> {
        (self.corrections > 0).then(|| self.restoring as f64 / self.corrections as f64)
    }

    /// Share of flipped labels that were right at the end.
    pub fn recall(&self) -> Option<f64> {
        (self.flipped > 0).then(|| self.recovered as f64 / self.flipped as f64)
    }
}

/// The precision a corrector that relabels items at random would have: a
/// random item is wrong with probability `rate`, and a random other class is
/// then its true one with probability 1 / (C - 1).
pub fn chance_precision(rate: f64, n_classes: usize) -> f64 {
    if n_classes < 2 {
        return 0.0;
    }
    rate / (n_classes - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_the_asked_share_to_other_classes_reproducibly() {
        let classes: Vec<usize> = (0..1000).map(|i| i % 4).collect();
        let noisy = flip_labels(&classes, 4, 0.2, 7);
        let changed: Vec<usize> = (0..1000).filter(|&i| noisy[i] != classes[i]).collect();
        // Exactly 200 items flipped, each to a class in range.
        assert_eq!(changed.len(), 200);
        assert!(noisy.iter().all(|&c| c < 4));
        assert_eq!(flip_labels(&classes, 4, 0.2, 7), noisy);
        assert_ne!(flip_labels(&classes, 4, 0.2, 8), noisy);
        // Every wrong class is used: flips are drawn from all others.
        for c in 0..4 {
            let targets: std::collections::BTreeSet<usize> = changed
                .iter()
                .filter(|&&i| classes[i] == c)
                .map(|&i| noisy[i])
                .collect();
            assert_eq!(targets.len(), 3, "class {c}: {targets:?}");
        }
        assert_eq!(flip_labels(&classes, 4, 0.0, 7), classes);
        let all = flip_labels(&classes, 4, 1.0, 7);
        assert!(all.iter().zip(&classes).all(|(a, b)| a != b));
    }

    #[test]
    fn scores_count_restorations_recoveries_and_damage() {
        let truth = [0, 1, 2, 0, 1];
        let given = [1, 1, 2, 2, 1]; // items 0 and 3 flipped
        // Item 0 fixed (restoring), item 3 moved to another wrong class,
        // item 1 broken, then item 1 moved back (restoring).
        let changes = [(0, 0), (3, 1), (1, 0), (1, 1)];
        let final_labels = [0, 1, 2, 1, 1];
        let s = CorrectionScore::of_fold(&truth, &given, &final_labels, &changes);
        assert_eq!(
            s,
            CorrectionScore {
                corrections: 4,
                restoring: 2,
                flipped: 2,
                recovered: 1,
                broken: 0,
            }
        );
        assert_eq!(s.precision(), Some(0.5));
        assert_eq!(s.recall(), Some(0.5));
        assert_eq!(CorrectionScore::default().precision(), None);
        assert!((chance_precision(0.2, 6) - 0.04).abs() < 1e-12);
    }
}
