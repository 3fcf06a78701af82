//! The current fold's losses as the loss chart plots them: every batch's
//! loss, fastai's smoothed training loss, and the validation loss per epoch.
//!
//! Steps are 1-based here ("step 10" is the 10th batch of the fold, as the
//! header counts), so an epoch's validation point, placed at the number of
//! batches done when the epoch ended, sits on the x of the epoch's last batch.

/// fastai's `AvgSmoothLoss` default.
pub const SMOOTHING_BETA: f64 = 0.98;
/// How many batches of one fold are kept. A longer fold is thinned to every
/// other batch rather than cut, so the chart keeps showing the whole fold.
const MAX_BATCHES: usize = 4096;

/// fastai's `AvgSmoothLoss`: an exponentially weighted moving average,
/// `avg = beta*avg + (1-beta)*loss`, debiased as `avg / (1 - beta^n)` so the
/// first batches are not pulled towards the zero it starts from. fastai resets
/// it at the start of every fit, which for orchard is every fold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothLoss {
    beta: f64,
    avg: f64,
    count: i32,
}

impl SmoothLoss {
    pub fn new(beta: f64) -> Self {
        SmoothLoss {
            beta,
            avg: 0.0,
            count: 0,
        }
    }

    /// Add a batch's loss and return the smoothed loss so far. As in fastai,
    /// a non-finite loss (a diverged batch) makes every later value non-finite
    /// too: the chart then shows the smoothed curve ending there.
    pub fn push(&mut self, loss: f64) -> f64 {
        self.count = self.count.saturating_add(1);
        self.avg = self.beta * self.avg + (1.0 - self.beta) * loss;
        self.avg / (1.0 - self.beta.powi(self.count))
    }
}

impl Default for SmoothLoss {
    fn default() -> Self {
        SmoothLoss::new(SMOOTHING_BETA)
    }
}

/// One training batch on the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchLoss {
    /// 1-based step within the fold.
    pub step: usize,
    pub loss: f64,
    pub smoothed: f64,
}

/// The loss series of the fold being trained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossHistory {
    /// Batches, oldest first (every other one of the oldest once thinned).
    pub batches: Vec<BatchLoss>,
    /// (1-based step of the epoch's last batch, validation loss), one per
    /// ended epoch of the fold.
    pub valid: Vec<(usize, f64)>,
    smoother: SmoothLoss,
}

impl LossHistory {
    /// A new fold: nothing plotted, smoothing starts again.
    pub fn clear(&mut self) {
        *self = LossHistory::default();
    }

    /// The batch at 0-based `step` of the fold had `loss`.
    pub fn push_batch(&mut self, step: usize, loss: f64) {
        if self.batches.len() >= MAX_BATCHES {
            // Thin the whole history, not the newest batches: keep the
            // newest and every second one before it.
            let newest = self.batches.len() - 1;
            let mut i = 0;
            self.batches.retain(|_| {
                let keep = (newest - i).is_multiple_of(2);
                i += 1;
                keep
            });
        }
        let smoothed = self.smoother.push(loss);
        self.batches.push(BatchLoss {
            step: step.saturating_add(1),
            loss,
            smoothed,
        });
    }

    /// An epoch ended after `steps_done` batches of the fold with `valid_loss`.
    pub fn push_valid(&mut self, steps_done: usize, valid_loss: f64) {
        self.valid.push((steps_done, valid_loss));
    }

    /// The latest batch's loss.
    pub fn last_loss(&self) -> Option<f64> {
        self.batches.last().map(|b| b.loss)
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.valid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_fastais_debiased_moving_average() {
        // By hand, beta = 0.98:
        // n=1: avg = 0.02*2.0 = 0.04;            0.04 / 0.02 = 2
        // n=2: avg = 0.98*0.04 + 0.02*1.0 = 0.0592;  0.0592 / 0.0396 = 148/99
        // n=3: avg = 0.98*0.0592 + 0.02*0.5 = 0.068016;
        //      0.068016 / (1 - 0.941192) = 0.068016 / 0.058808 = 8502/7351
        let mut s = SmoothLoss::default();
        let got: Vec<f64> = [2.0, 1.0, 0.5].iter().map(|&x| s.push(x)).collect();
        let want = [2.0, 148.0 / 99.0, 8502.0 / 7351.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn smoothing_restarts_with_each_fold() {
        let mut h = LossHistory::default();
        h.push_batch(0, 2.0);
        h.push_batch(1, 1.0);
        h.push_valid(2, 1.5);
        h.clear();
        assert!(h.is_empty());
        h.push_batch(0, 0.7);
        assert_eq!(
            h.batches,
            vec![BatchLoss {
                step: 1,
                loss: 0.7,
                smoothed: 0.7
            }]
        );
    }

    #[test]
    fn a_long_fold_is_thinned_not_cut() {
        let mut h = LossHistory::default();
        for step in 0..MAX_BATCHES + 1 {
            h.push_batch(step, 1.0);
        }
        assert_eq!(h.batches.len(), MAX_BATCHES / 2 + 1);
        // Still from the fold's start to the newest batch, at even spacing.
        assert_eq!(h.batches.first().map(|b| b.step), Some(2));
        assert_eq!(h.batches[1].step - h.batches[0].step, 2);
        assert_eq!(h.batches.last().map(|b| b.step), Some(MAX_BATCHES + 1));
    }
}
