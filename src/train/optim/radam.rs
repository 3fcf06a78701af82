//! fastai's `RAdam(params, lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.)`
//! (`radam_step`): Adam's moments, but while the variance of the adaptive lr is
//! intractable (r_t <= 5) an SGD-with-momentum step `p -= lr/d1 * m`; after
//! that Adam's step scaled by the rectification term.

use crate::kernels::Rule;

/// The rectification term of step `t` (from 1), or None while r_t <= 5:
/// `r_inf = 2/(1-b2) - 1`, `r_t = r_inf - 2t*b2^t/(1-b2^t)`,
/// `sqrt((r_t-4)(r_t-2)r_inf / ((r_inf-4)(r_inf-2)r_t))`.
/// With b2 = 0.99, r_t first exceeds 5 at t = 6.
pub fn rectification(beta2: f64, t: u64) -> Option<f64> {
    let t = t.min(i32::MAX as u64) as i32;
    let b2t = beta2.powi(t);
    let r_inf = 2.0 / (1.0 - beta2) - 1.0;
    let r = r_inf - 2.0 * t as f64 * b2t / (1.0 - b2t);
    (r > 5.0).then(|| ((r - 4.0) * (r - 2.0) * r_inf / ((r_inf - 4.0) * (r_inf - 2.0) * r)).sqrt())
}

pub(super) fn rule(lr: f64, decay: f64, beta1: f64, beta2: f64, eps: f64, t: u64) -> Rule {
    let ti = t.min(i32::MAX as u64) as i32;
    let debias1 = 1.0 - beta1.powi(ti);
    match rectification(beta2, t) {
        Some(r) => Rule::Adam {
            decay,
            beta1,
            beta2,
            step: lr * r / debias1,
            inv_sqrt_debias2: 1.0 / (1.0 - beta2.powi(ti)).sqrt(),
            eps,
        },
        None => Rule::AdamUnrectified {
            decay,
            beta1,
            beta2,
            step: lr / debias1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{OptimSettings, Optimizer, StepHypers};
    use super::*;

    #[test]
    fn switches_to_the_rectified_step_at_step_6_with_beta2_099() {
        // r_inf = 199; r_5 = 4.9598..., r_6 = 5.9413766923549..., so
        // rect_6 = sqrt(1.9413766923549 * 3.9413766923549 * 199 / (195 * 197 * 5.9413766923549)).
        for t in 1..=5 {
            assert_eq!(rectification(0.99, t), None, "step {t}");
        }
        let r6: f64 = 5.941376692354908;
        let want = (((r6 - 4.0) * (r6 - 2.0) * 199.0) / (195.0 * 197.0 * r6)).sqrt();
        assert!((rectification(0.99, 6).unwrap() - want).abs() < 1e-12);
        assert!((want - 0.0816791957820).abs() < 1e-12);
        assert!((rectification(0.99, 7).unwrap() - 0.103696131266).abs() < 1e-11);
    }

    #[test]
    fn steps_like_momentum_sgd_then_rectified_adam() {
        // g = 1 constant: m/d1 = 1 and v/d2 = 1. Steps 1-5 move p by lr each
        // (0.1), step 6 by lr*rect_6/(1 + eps), step 7 by lr*rect_7/(1 + eps).
        let p = param("w", &[1.0], true);
        let mut opt = Optimizer::new(vec![p.clone()], OptimSettings::radam()).unwrap();
        let h = StepHypers { lr: 0.1, mom: 0.9 };
        for _ in 0..5 {
            opt.step(&grads(&[&p], &[1.0]), h).unwrap();
        }
        assert_close(&values(&p), &[0.5], 1e-15);
        opt.step(&grads(&[&p], &[1.0]), h).unwrap();
        let after6 = 0.5 - 0.1 * 0.08167919578200449 / 1.00001;
        assert_close(&values(&p), &[after6], 1e-14);
        opt.step(&grads(&[&p], &[1.0]), h).unwrap();
        assert_close(
            &values(&p),
            &[after6 - 0.1 * 0.10369613126637578 / 1.00001],
            1e-14,
        );
    }

    #[test]
    fn early_steps_use_the_first_moment_only() {
        // g = 2 then -1, mom 0.9, lr 0.1, no decay: m1 = 0.2, d1 = 0.1, p = 1 - 0.1*2 = 0.8;
        // m2 = 0.18 - 0.1 = 0.08, d1 = 0.19, p = 0.8 - 0.1*0.08/0.19.
        let p = param("w", &[1.0], true);
        let mut opt = Optimizer::new(vec![p.clone()], OptimSettings::radam()).unwrap();
        let h = StepHypers { lr: 0.1, mom: 0.9 };
        opt.step(&grads(&[&p], &[2.0]), h).unwrap();
        assert_close(&values(&p), &[0.8], 1e-15);
        opt.step(&grads(&[&p], &[-1.0]), h).unwrap();
        assert_close(&values(&p), &[0.8 - 0.1 * 0.08 / 0.19], 1e-15);
    }
}
