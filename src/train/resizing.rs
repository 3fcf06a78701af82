//! Progressive resizing: which image size each epoch trains at.
//!
//! fastai users do it by hand (train at 128 px, then `dls = get_dls(224)` and
//! fit on); orchard plans it in `training.size_schedule` and lets the user
//! bring the next step forward with `ResizeNow` (the dashboard's `r`). Sizes
//! only grow: a schedule step at or below the current size (because a
//! `ResizeNow` got there first) is passed over. The switch happens at an epoch
//! boundary, so weights, optimiser state and the LR schedule simply carry on.

use crate::config::TrainingConfig;

/// Smallest and largest image side a `ResizeNow` may ask for (as `training.size`).
const SIZE_RANGE: std::ops::RangeInclusive<u32> = 8..=4096;

/// The planned sizes of one fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizePlan {
    start: u32,
    /// (epoch, size), epochs and sizes strictly increasing (the config checks).
    steps: Vec<(usize, u32)>,
}

/// What to do at an epoch boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeDecision {
    Keep,
    SwitchTo(u32),
    /// A `ResizeNow` that cannot be obeyed, and why (the size stays).
    Refused(String),
}

impl SizePlan {
    pub fn from_config(t: &TrainingConfig) -> Self {
        SizePlan {
            start: t.size,
            steps: t.size_schedule.clone(),
        }
    }

    /// The size epoch `epoch` trains at when nobody asks for a resize.
    pub fn scheduled(&self, epoch: usize) -> u32 {
        self.steps
            .iter()
            .take_while(|(e, _)| *e <= epoch)
            .last()
            .map_or(self.start, |&(_, s)| s)
    }

    /// The size a checkpointed fold's last epoch had: the one it recorded, or
    /// (checkpoints from before progressive resizing) the schedule's.
    pub fn resumed(&self, recorded: Option<u32>, epochs_done: usize) -> u32 {
        recorded.unwrap_or_else(|| self.scheduled(epochs_done.saturating_sub(1)))
    }

    /// The size the last epoch trains at when nobody asks for a resize.
    pub fn last(&self) -> u32 {
        self.steps.last().map_or(self.start, |&(_, s)| s)
    }

    /// The first planned size above `current`.
    pub fn next_after(&self, current: u32) -> Option<u32> {
        self.steps.iter().map(|&(_, s)| s).find(|&s| s > current)
    }

    /// The size for `epoch`, which starts now at `current` pixels, given a
    /// `ResizeNow` request (`Some(None)` = the next planned size). A request
    /// wins over the schedule; the schedule never shrinks the images.
    pub fn decide(&self, epoch: usize, current: u32, request: Option<Option<u32>>) -> SizeDecision {
        let wanted = match request {
            Some(Some(size)) if !SIZE_RANGE.contains(&size) => {
                return SizeDecision::Refused(format!(
                    "resize to {size} px refused: sizes are {}..={} px",
                    SIZE_RANGE.start(),
                    SIZE_RANGE.end()
                ));
            }
            Some(Some(size)) => size,
            Some(None) => match self.next_after(current) {
                Some(size) => size,
                None => {
                    return SizeDecision::Refused(format!(
                        "resize refused: training.size_schedule has no size above {current} px \
                         (add a step, e.g. size_schedule = [[{}, {}]])",
                        epoch.max(1),
                        current * 2
                    ));
                }
            },
            None => match self.steps.iter().find(|(e, _)| *e == epoch) {
                Some(&(_, size)) if size > current => size,
                _ => return SizeDecision::Keep,
            },
        };
        if wanted == current {
            SizeDecision::Keep
        } else {
            SizeDecision::SwitchTo(wanted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SizePlan {
        SizePlan {
            start: 64,
            steps: vec![(2, 96), (4, 128)],
        }
    }

    #[test]
    fn the_schedule_gives_each_epoch_its_size() {
        let p = plan();
        let sizes: Vec<u32> = (0..6).map(|e| p.scheduled(e)).collect();
        assert_eq!(sizes, [64, 64, 96, 96, 128, 128]);
        assert_eq!(p.last(), 128);
        // Without a request, only a step's own epoch switches.
        assert_eq!(p.decide(1, 64, None), SizeDecision::Keep);
        assert_eq!(p.decide(2, 64, None), SizeDecision::SwitchTo(96));
        assert_eq!(p.decide(3, 96, None), SizeDecision::Keep);
        assert_eq!(p.decide(4, 96, None), SizeDecision::SwitchTo(128));
    }

    #[test]
    fn resize_now_brings_the_next_step_forward_and_sizes_never_shrink() {
        let p = plan();
        assert_eq!(p.decide(1, 64, Some(None)), SizeDecision::SwitchTo(96));
        // Brought forward to 128 at epoch 3: the step at epoch 4 is passed over.
        assert_eq!(p.decide(3, 96, Some(None)), SizeDecision::SwitchTo(128));
        assert_eq!(p.decide(4, 128, None), SizeDecision::Keep);
        // An explicit size wins, even a smaller one the user asked for.
        assert_eq!(p.decide(1, 64, Some(Some(48))), SizeDecision::SwitchTo(48));
        assert_eq!(p.decide(1, 64, Some(Some(64))), SizeDecision::Keep);
    }

    #[test]
    fn impossible_requests_are_refused_with_the_reason() {
        let p = plan();
        let SizeDecision::Refused(why) = p.decide(5, 128, Some(None)) else {
            panic!("no size above 128 is planned");
        };
        assert!(why.contains("no size above 128"), "{why}");
        assert!(matches!(
            p.decide(1, 64, Some(Some(5000))),
            SizeDecision::Refused(_)
        ));
        let none = SizePlan {
            start: 64,
            steps: vec![],
        };
        assert!(matches!(
            none.decide(0, 64, Some(None)),
            SizeDecision::Refused(_)
        ));
        assert_eq!(none.scheduled(7), 64);
    }
}
