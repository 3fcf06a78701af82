//! Progressive label correction (PLC), the techniques document's algorithm
//! (section 11): after a warm-up, after every training iteration, an item of
//! the batch whose predicted class differs from its current label is relabelled
//! to the predicted class when `|p_predicted - p_labelled| > theta`; theta
//! falls over training on a schedule, and the user can set it by hand
//! (`SetTheta`), after which the schedule continues from that value.
//!
//! Only training labels change, per fold; validation labels never do, so the
//! metrics stay honest. This module is the rule and the schedule; `fit` calls
//! it and keeps the labels.

use crate::config::{LabelCorrectionConfig, ThetaSchedule};

/// theta over the steps of one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThetaScheduler {
    schedule: ThetaSchedule,
    end: f64,
    total_steps: usize,
    /// The first step that may correct (warm-up share of all steps).
    first_step: usize,
    /// (step, theta) the schedule runs from: the warm-up's end and `theta_start`,
    /// or the latest `SetTheta`.
    anchor: (usize, f64),
}

impl ThetaScheduler {
    pub fn new(cfg: &LabelCorrectionConfig, total_steps: usize) -> Self {
        let first_step = (cfg.warmup * total_steps as f64).ceil() as usize;
        ThetaScheduler {
            schedule: cfg.schedule,
            end: cfg.theta_end,
            total_steps,
            first_step,
            anchor: (first_step, cfg.theta_start),
        }
    }

    /// theta at `step`, or None during the warm-up (no corrections yet).
    pub fn theta(&self, step: usize) -> Option<f64> {
        if step < self.first_step {
            return None;
        }
        let (from, start) = self.anchor;
        if self.schedule == ThetaSchedule::Constant {
            return Some(start);
        }
        // Share of the way from the anchor to the last step (the last step ends at `end`).
        let span = self.total_steps.saturating_sub(1).saturating_sub(from);
        let pos = if span == 0 {
            1.0
        } else {
            (step.saturating_sub(from) as f64 / span as f64).min(1.0)
        };
        Some(match self.schedule {
            ThetaSchedule::Linear => start + (self.end - start) * pos,
            ThetaSchedule::Cosine => {
                self.end + (start - self.end) * (1.0 + (std::f64::consts::PI * pos).cos()) / 2.0
            }
            ThetaSchedule::Constant => start,
        })
    }

    /// `SetTheta(theta)` at `step`: from here the schedule runs from `theta`
    /// to `theta_end` over the remaining steps (a constant one stays at it).
    pub fn set(&mut self, step: usize, theta: f64) {
        self.anchor = (step.max(self.first_step), theta);
    }

    /// The anchor to keep in a checkpoint, so a resumed fold continues a
    /// hand-set theta.
    pub fn anchor(&self) -> (usize, f64) {
        self.anchor
    }
}

/// One label changed by PLC.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    /// Index of the item in the fold's training list.
    pub item: usize,
    pub old: usize,
    pub new: usize,
    pub p_old: f32,
    pub p_new: f32,
}

/// The rule: items (`items[i]` is the training index of `probs[i]`) whose
/// predicted class differs from `labels[items[i]]` by more than `theta` in
/// probability are corrected to the predicted class.
pub fn corrections(
    probs: &[Vec<f32>],
    items: &[usize],
    labels: &[u32],
    theta: f64,
) -> Vec<Correction> {
    probs
        .iter()
        .zip(items)
        .filter_map(|(p, &item)| {
            let old = *labels.get(item)? as usize;
            let new = argmax(p)?;
            let (p_old, p_new) = (*p.get(old)?, p[new]);
            (new != old && (p_new - p_old).abs() as f64 > theta).then_some(Correction {
                item,
                old,
                new,
                p_old,
                p_new,
            })
        })
        .collect()
}

/// One class of a multi-label item switched on or off by PLC.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    /// Index of the item in the fold's training list.
    pub item: usize,
    pub class: usize,
    /// The class's new state (true: the image now has it).
    pub present: bool,
    /// Probability of the labelled state.
    pub p_old: f32,
    /// Probability of the predicted state.
    pub p_new: f32,
}

/// The rule for multi-label items, one class at a time on sigmoid outputs:
/// each class is a two-way choice (present with p, absent with 1 - p), and
/// a class whose predicted state (p > 0.5) differs from the label
/// (`rows[item][class] > 0.5`) is flipped when `|p_predicted - p_labelled|
/// = |2p - 1| > theta`, the single-label rule on that choice.
pub fn flips(probs: &[Vec<f32>], items: &[usize], rows: &[Vec<f32>], theta: f64) -> Vec<Flip> {
    let mut out = Vec::new();
    for (p, &item) in probs.iter().zip(items) {
        let Some(row) = rows.get(item) else {
            continue;
        };
        for (class, (&p, &label)) in p.iter().zip(row).enumerate() {
            let (labelled, predicted) = (label > 0.5, p > 0.5);
            let p_new = if predicted { p } else { 1.0 - p };
            let p_old = 1.0 - p_new;
            if labelled != predicted && (p_new - p_old).abs() as f64 > theta {
                out.push(Flip {
                    item,
                    class,
                    present: predicted,
                    p_old,
                    p_new,
                });
            }
        }
    }
    out
}

/// Index of the largest value (the first of equal ones, as torch's argmax).
fn argmax(p: &[f32]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &v) in p.iter().enumerate() {
        if best.is_none_or(|b| v > p[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(schedule: ThetaSchedule) -> LabelCorrectionConfig {
        LabelCorrectionConfig {
            enabled: true,
            warmup: 0.2,
            theta_start: 0.9,
            theta_end: 0.5,
            schedule,
            theta_step: 0.05,
            ..LabelCorrectionConfig::default()
        }
    }

    #[test]
    fn the_rule_corrects_exactly_the_confident_disagreements() {
        let probs = vec![
            vec![0.05, 0.90, 0.05], // label 0, predicted 1, gap 0.85 > 0.5: corrected
            vec![0.30, 0.60, 0.10], // label 0, predicted 1, gap 0.30: kept
            vec![0.10, 0.10, 0.80], // label 2 = predicted: kept
            vec![0.70, 0.00, 0.30], // label 1, predicted 0, gap 0.70: corrected
            vec![0.50, 0.50, 0.00], // a tie predicts the first class = label 0: kept
        ];
        let labels = [9, 0, 0, 2, 1, 0]; // item 0 is not in this batch
        let items = [1, 2, 3, 4, 5];
        let got = corrections(&probs, &items, &labels, 0.5);
        assert_eq!(
            got,
            [
                Correction {
                    item: 1,
                    old: 0,
                    new: 1,
                    p_old: 0.05,
                    p_new: 0.90
                },
                Correction {
                    item: 4,
                    old: 1,
                    new: 0,
                    p_old: 0.0,
                    p_new: 0.70
                },
            ]
        );
        // The comparison is strict: a gap equal to theta is not enough.
        assert!(corrections(&[vec![0.2, 0.8]], &[0], &[0], 0.6000001).is_empty());
        assert_eq!(corrections(&[vec![0.2, 0.8]], &[0], &[0], 0.59).len(), 1);
    }

    #[test]
    fn theta_waits_for_the_warm_up_then_falls_linearly_to_the_end() {
        // 101 steps, warm-up 20%: steps 0..=20 -> none at 0..20, 0.9 at step 21?
        // ceil(0.2 * 101) = 21 is the first step; the last (100) is at theta_end.
        let s = ThetaScheduler::new(&cfg(ThetaSchedule::Linear), 101);
        assert_eq!(s.theta(20), None);
        assert_eq!(s.theta(21), Some(0.9));
        let mid = s.theta(21 + 79 / 2).unwrap();
        assert!((mid - (0.9 - 0.4 * (39.0 / 79.0))).abs() < 1e-12, "{mid}");
        assert!((s.theta(100).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn cosine_and_constant_schedules() {
        let s = ThetaScheduler::new(&cfg(ThetaSchedule::Cosine), 11);
        // first step ceil(2.2) = 3, span 7: halfway (3 + 3.5) is the mean.
        assert_eq!(s.theta(3), Some(0.9));
        assert!((s.theta(10).unwrap() - 0.5).abs() < 1e-12);
        let quarter = s.theta(3).unwrap() - s.theta(5).unwrap();
        let want = 0.2 * (1.0 - (std::f64::consts::PI * 2.0 / 7.0).cos());
        assert!((quarter - want).abs() < 1e-12, "{quarter} vs {want}");
        let c = ThetaScheduler::new(&cfg(ThetaSchedule::Constant), 11);
        assert_eq!(c.theta(2), None);
        assert_eq!(c.theta(10), Some(0.9));
    }

    #[test]
    fn set_theta_restarts_the_schedule_from_the_new_value() {
        let mut s = ThetaScheduler::new(&cfg(ThetaSchedule::Linear), 101);
        s.set(60, 0.7);
        assert_eq!(s.theta(60), Some(0.7));
        // From 0.7 at step 60 to 0.5 at step 100.
        assert!((s.theta(80).unwrap() - 0.6).abs() < 1e-12);
        assert!((s.theta(100).unwrap() - 0.5).abs() < 1e-12);
        // Set during the warm-up: it holds from the first correcting step.
        let mut early = ThetaScheduler::new(&cfg(ThetaSchedule::Constant), 101);
        early.set(3, 0.4);
        assert_eq!(early.theta(10), None);
        assert_eq!(early.theta(21), Some(0.4));
        assert_eq!(early.anchor(), (21, 0.4));
    }

    #[test]
    fn multi_label_flips_follow_the_rule_class_by_class() {
        // Item 0: class 0 labelled present, p = 0.1 -> |2p-1| = 0.8 > 0.5: flip off.
        //         class 1 labelled absent, p = 0.7 -> 0.4, not > 0.5: kept.
        //         class 2 labelled present, p = 0.9: agrees, kept.
        // Item 2: classes 0 and 1 labelled absent, p = 0.95 / 0.96 -> 0.9 / 0.92: on;
        //         class 2 labelled present, p = 0.2 -> 0.6: off.
        let rows = vec![vec![1.0, 0.0, 1.0], vec![0.0; 3], vec![0.0, 0.0, 1.0]];
        let probs = vec![vec![0.1, 0.7, 0.9], vec![0.95, 0.96, 0.2]];
        let got = flips(&probs, &[0, 2], &rows, 0.5);
        let expect = vec![
            Flip {
                item: 0,
                class: 0,
                present: false,
                p_old: 0.1,
                p_new: 0.9,
            },
            Flip {
                item: 2,
                class: 0,
                present: true,
                p_old: 1.0 - 0.95,
                p_new: 0.95,
            },
            Flip {
                item: 2,
                class: 1,
                present: true,
                p_old: 1.0 - 0.96,
                p_new: 0.96,
            },
            Flip {
                item: 2,
                class: 2,
                present: false,
                p_old: 0.2,
                p_new: 0.8,
            },
        ];
        assert_eq!(got.len(), expect.len(), "{got:?}");
        for (g, e) in got.iter().zip(&expect) {
            assert_eq!((g.item, g.class, g.present), (e.item, e.class, e.present));
            assert!((g.p_old - e.p_old).abs() < 1e-6 && (g.p_new - e.p_new).abs() < 1e-6);
        }
        // theta 0.91 leaves only the largest gap (0.92).
        let strict = flips(&probs, &[0, 2], &rows, 0.91);
        assert_eq!(strict.len(), 1, "{strict:?}");
        assert_eq!((strict[0].item, strict[0].class), (2, 1));
    }
}
