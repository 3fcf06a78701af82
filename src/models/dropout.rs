//! Dropout whose masks are a function of a seed and the training step.
//!
//! candle's `dropout` draws from an unseeded generator, so two runs (or a run
//! and its resumed continuation) would drop different units. Here each layer
//! has its own seed and the model is told the step before each training
//! forward (`Classifier::begin_step`), so the mask of step s is the same in an
//! uninterrupted run and in one resumed from a checkpoint.

use crate::rng::Rng;
use candle_core::Tensor;
use std::sync::atomic::{AtomicU64, Ordering};

/// PyTorch's `nn.Dropout(p)`: in training, zero each value with probability
/// `p` and scale the others by `1 / (1 - p)`; identity otherwise.
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    seed: u64,
    step: AtomicU64,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout {
            p,
            seed,
            step: AtomicU64::new(0),
        }
    }

    /// The step whose mask the next training forward uses.
    pub fn begin_step(&self, step: u64) {
        self.step.store(step, Ordering::Relaxed);
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mut rng = Rng::derived(self.seed, self.step.load(Ordering::Relaxed));
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.next_f64() < self.p { 0.0 } else { keep })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn drops_about_p_scales_the_rest_and_repeats_per_step() {
        let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
        let run = |d: &Dropout, train| -> Vec<f32> {
            d.forward_t(&x, train)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let d = Dropout::new(0.25, 7);
        d.begin_step(3);
        let a: Vec<f32> = run(&d, true);
        let zeros = a.iter().filter(|v| **v == 0.0).count() as f64 / a.len() as f64;
        // 10_000 Bernoulli(0.25) draws: standard deviation 0.0043.
        assert!((zeros - 0.25).abs() < 0.02, "{zeros}");
        assert!(
            a.iter()
                .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6)
        );
        let again: Vec<f32> = run(&d, true);
        assert_eq!(a, again, "same step, same mask");
        d.begin_step(4);
        let next: Vec<f32> = run(&d, true);
        assert_ne!(a, next);
        let eval: Vec<f32> = run(&d, false);
        assert!(eval.iter().all(|v| *v == 1.0));
    }
}
