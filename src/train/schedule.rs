//! Learning-rate and momentum schedules, as fastai's `callback/schedule.py`.
//!
//! fastai computes each step's hyper-parameters from the share of training done,
//! `pct = i / n_steps`, set before step i runs (so the last step sees (n-1)/n and
//! the schedule's end value is approached but never reached).

use std::f64::consts::PI;

/// fastai's `SchedCos(start, end)`: a half cosine from `start` (pos 0) to `end` (pos 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedCos {
    pub start: f64,
    pub end: f64,
}

impl SchedCos {
    pub fn at(&self, pos: f64) -> f64 {
        self.start + (1.0 + (PI * (1.0 - pos)).cos()) * (self.end - self.start) / 2.0
    }
}

/// fastai's `combined_cos(pct, start, middle, end)`: cosine from `start` to
/// `middle` over the first `pct` of training, then from `middle` to `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CombinedCos {
    pub pct: f64,
    pub first: SchedCos,
    pub second: SchedCos,
}

pub fn combined_cos(pct: f64, start: f64, middle: f64, end: f64) -> CombinedCos {
    CombinedCos {
        pct,
        first: SchedCos { start, end: middle },
        second: SchedCos { start: middle, end },
    }
}

impl CombinedCos {
    /// The value at `pos` in [0, 1], with fastai's `combine_scheds` boundaries:
    /// the second phase owns `pos >= pct`, and `pos == 1` is the second phase's end.
    pub fn at(&self, pos: f64) -> f64 {
        if pos >= 1.0 {
            return self.second.at(1.0);
        }
        if pos >= self.pct {
            self.second.at((pos - self.pct) / (1.0 - self.pct))
        } else {
            self.first.at(pos / self.pct)
        }
    }
}

/// fastai's `fit_one_cycle` schedule: (lr, beta1) of each of `n_steps` steps.
/// lr warms from `lr_max/div` to `lr_max` over `pct_start`, then anneals towards
/// `lr_max/div_final`; momentum goes `moms[0] -> moms[1] -> moms[2]` at the same pace.
pub fn one_cycle(
    n_steps: usize,
    lr_max: f64,
    div: f64,
    div_final: f64,
    pct_start: f64,
    moms: [f64; 3],
) -> Vec<(f64, f64)> {
    let lr = combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final);
    let mom = combined_cos(pct_start, moms[0], moms[1], moms[2]);
    positions(n_steps)
        .map(|pos| (lr.at(pos), mom.at(pos)))
        .collect()
}

/// fastai's `fit_flat_cos` schedule: lr flat at `lr` for `pct_start`, then a
/// cosine down towards `lr/div_final`. fastai does not schedule momentum here, so
/// every step gets the optimiser's own `mom` unchanged.
pub fn flat_cos(
    n_steps: usize,
    lr: f64,
    div_final: f64,
    pct_start: f64,
    mom: f64,
) -> Vec<(f64, f64)> {
    let sched = combined_cos(pct_start, lr, lr, lr / div_final);
    positions(n_steps).map(|pos| (sched.at(pos), mom)).collect()
}

/// i / n for i in 0..n.
fn positions(n_steps: usize) -> impl Iterator<Item = f64> {
    (0..n_steps).map(move |i| i as f64 / n_steps as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn sched_cos_ends_and_middle() {
        let s = SchedCos {
            start: 1.0,
            end: 3.0,
        };
        assert!(close(s.at(0.0), 1.0));
        assert!(close(s.at(0.5), 2.0));
        assert!(close(s.at(1.0), 3.0));
        // (1 + cos(0.75 pi)) / 2 = (1 - sqrt(2)/2) / 2
        assert!(close(s.at(0.25), 1.0 + 2.0 * (1.0 - 0.5f64.sqrt()) / 2.0));
    }

    #[test]
    fn one_cycle_matches_hand_values() {
        // 8 steps, pct_start 0.25: steps 0 and 1 warm up, step 2 is the peak.
        let s = one_cycle(8, 1e-3, 25.0, 1e5, 0.25, [0.95, 0.85, 0.95]);
        assert_eq!(s.len(), 8);
        assert!(close(s[0].0, 1e-3 / 25.0), "{}", s[0].0);
        assert!(close(s[0].1, 0.95));
        // Step 1: pos 0.125 = halfway through warm-up: the mean of start and peak.
        assert!(close(s[1].0, (4e-5 + 1e-3) / 2.0), "{}", s[1].0);
        assert!(close(s[1].1, 0.90), "{}", s[1].1);
        assert!(close(s[2].0, 1e-3));
        assert!(close(s[2].1, 0.85));
        // Step 5: pos 0.625 = halfway through annealing.
        assert!(close(s[5].0, (1e-3 + 1e-8) / 2.0), "{}", s[5].0);
        assert!(close(s[5].1, 0.90), "{}", s[5].1);
        // Last step: pos 7/8, 5/6 of the way down: 1e-8 + (1 + cos(pi/6))/2 ... from the far end.
        let t: f64 = (0.875 - 0.25) / 0.75;
        let want = 1e-3 + (1.0 + (PI * (1.0 - t)).cos()) * (1e-8 - 1e-3) / 2.0;
        assert!(close(s[7].0, want), "{} vs {want}", s[7].0);
        assert!(s[7].0 < 1e-4 && s[7].1 > 0.94);
    }

    #[test]
    fn one_cycle_ends_near_lr_over_div_final() {
        let s = one_cycle(1000, 1e-2, 25.0, 1e5, 0.25, [0.95, 0.85, 0.95]);
        let (lr, mom) = s[999];
        assert!(lr < 1e-6 && lr > 1e-7, "{lr}");
        assert!((mom - 0.95).abs() < 1e-4, "{mom}");
        let peak = s.iter().map(|x| x.0).fold(0.0, f64::max);
        assert!(close(peak, 1e-2));
        assert!(close(s[250].0, 1e-2));
    }

    #[test]
    fn zero_pct_start_starts_at_the_peak() {
        let s = one_cycle(4, 1.0, 25.0, 1e5, 0.0, [0.95, 0.85, 0.95]);
        assert!(close(s[0].0, 1.0));
        assert!(close(s[0].1, 0.85));
    }

    #[test]
    fn flat_cos_is_flat_then_falls() {
        let s = flat_cos(8, 1e-3, 1e5, 0.75, 0.9);
        for (lr, mom) in &s[..6] {
            assert!(close(*lr, 1e-3));
            assert!(close(*mom, 0.9));
        }
        // Step 7: pos 0.875, halfway through the fall.
        assert!(close(s[7].0, (1e-3 + 1e-8) / 2.0), "{}", s[7].0);
        assert!(close(s[7].1, 0.9));
    }

    #[test]
    fn empty_schedule() {
        assert!(one_cycle(0, 1e-3, 25.0, 1e5, 0.25, [0.95, 0.85, 0.95]).is_empty());
    }
}
