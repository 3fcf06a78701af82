//! Seconds per training step, measured from batch timestamps.
//!
//! The rate comes from a sliding window of recent batches rather than from the
//! run's start, so a slow first batch (allocation, cache warm-up) soon stops
//! mattering. Gaps between epochs (validation) stay inside the window on
//! purpose: they are real time the remaining epochs will spend too. A pause is
//! not: the window is cleared when the run pauses.

use std::collections::VecDeque;

/// How many recent batch timestamps the rate is taken over.
const WINDOW: usize = 32;

/// Batch timestamps of the recent past.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepTimer {
    times: VecDeque<f64>,
}

impl StepTimer {
    /// Note that a batch finished at `time` (seconds since the Unix epoch).
    pub fn record(&mut self, time: f64) {
        if !time.is_finite() {
            return;
        }
        if self.times.len() == WINDOW {
            self.times.pop_front();
        }
        self.times.push_back(time);
    }

    /// Forget the window, e.g. after a pause, whose length says nothing about speed.
    pub fn reset(&mut self) {
        self.times.clear();
    }

    /// Mean seconds per step over the window; `None` until two batches are known.
    pub fn seconds_per_step(&self) -> Option<f64> {
        let (first, last) = (self.times.front()?, self.times.back()?);
        let intervals = self.times.len().checked_sub(1).filter(|&n| n > 0)?;
        let rate = (last - first) / intervals as f64;
        (rate.is_finite() && rate >= 0.0).then_some(rate)
    }

    /// Estimated seconds left for `remaining_steps` more steps.
    pub fn eta_seconds(&self, remaining_steps: usize) -> Option<f64> {
        Some(self.seconds_per_step()? * remaining_steps as f64)
    }
}

/// `75` -> "1m15s", `3725` -> "1h02m", `9.4` -> "9s"; what a header has room for.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "--".to_string();
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `75` -> "01:15", as fastai's metrics table prints epoch times.
pub fn format_clock(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "--:--".to_string();
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_until_two_batches() {
        let mut t = StepTimer::default();
        assert_eq!(t.seconds_per_step(), None);
        t.record(10.0);
        assert_eq!(t.seconds_per_step(), None);
        t.record(10.5);
        assert_eq!(t.seconds_per_step(), Some(0.5));
    }

    #[test]
    fn eta_is_rate_times_remaining_steps() {
        let mut t = StepTimer::default();
        for i in 0..10 {
            t.record(100.0 + 0.5 * i as f64);
        }
        assert_eq!(t.eta_seconds(90), Some(45.0));
    }

    #[test]
    fn window_forgets_a_slow_start() {
        let mut t = StepTimer::default();
        t.record(0.0);
        for i in 0..WINDOW {
            t.record(60.0 + i as f64); // first step took a minute, then 1 s each
        }
        assert_eq!(t.seconds_per_step(), Some(1.0));
    }

    #[test]
    fn reset_drops_the_rate() {
        let mut t = StepTimer::default();
        t.record(1.0);
        t.record(2.0);
        t.reset();
        assert_eq!(t.seconds_per_step(), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(9.4), "9s");
        assert_eq!(format_duration(75.0), "1m15s");
        assert_eq!(format_duration(3725.0), "1h02m");
        assert_eq!(format_duration(f64::NAN), "--");
        assert_eq!(format_clock(75.0), "01:15");
        assert_eq!(format_clock(3725.0), "1:02:05");
    }
}
