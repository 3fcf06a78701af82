//! fastai's `Adam(params, lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)`:
//! decoupled weight decay, dampened first moment, bias corrections with the
//! step's own (scheduled) beta1: `p -= lr * (m/d1) / (sqrt(v/d2) + eps)`.

use crate::kernels::Rule;

pub(super) fn rule(lr: f64, decay: f64, beta1: f64, beta2: f64, eps: f64, t: u64) -> Rule {
    let t = t.min(i32::MAX as u64) as i32;
    let debias1 = 1.0 - beta1.powi(t);
    let debias2 = 1.0 - beta2.powi(t);
    Rule::Adam {
        decay,
        beta1,
        beta2,
        step: lr / debias1,
        inv_sqrt_debias2: 1.0 / debias2.sqrt(),
        eps,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{OptimSettings, Optimizer, StepHypers};

    /// The update written out in scalars, from the semantics document.
    fn reference(p0: f64, g: f64, hs: &[StepHypers], wd: f64) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, h) in hs.iter().enumerate() {
            let t = t as i32 + 1;
            p *= 1.0 - h.lr * wd;
            m = h.mom * m + (1.0 - h.mom) * g;
            v = 0.99 * v + (1.0 - 0.99) * g * g;
            p -= h.lr * (m / (1.0 - h.mom.powi(t))) / ((v / (1.0 - 0.99f64.powi(t))).sqrt() + 1e-5);
        }
        p
    }

    #[test]
    fn constant_gradient_steps_lr_over_one_plus_eps() {
        // g constant: m/d1 = g and v/d2 = g², so each step is lr*g/(|g| + eps).
        let p = param("w", &[1.0], true);
        let s = OptimSettings {
            wd: 0.0,
            ..OptimSettings::adam()
        };
        let mut opt = Optimizer::new(vec![p.clone()], s).unwrap();
        for _ in 0..3 {
            opt.step(&grads(&[&p], &[1.0]), StepHypers { lr: 0.1, mom: 0.9 })
                .unwrap();
        }
        assert_close(&values(&p), &[1.0 - 0.3 / 1.00001], 1e-15);
    }

    #[test]
    fn matches_the_scalar_formula_with_scheduled_beta1_and_decay() {
        let decayed = param("w", &[1.0, -2.0], true);
        let plain = param("b", &[0.5, 3.0], false);
        let mut opt =
            Optimizer::new(vec![decayed.clone(), plain.clone()], OptimSettings::adam()).unwrap();
        let hs: Vec<StepHypers> = (0..4)
            .map(|i| StepHypers {
                lr: 0.01 * (i + 1) as f64,
                mom: 0.95 - 0.03 * i as f64,
            })
            .collect();
        for h in &hs {
            opt.step(&grads(&[&decayed, &plain], &[0.3, -1.7]), *h)
                .unwrap();
        }
        assert_eq!(opt.steps(), 4);
        let want_w = [
            reference(1.0, 0.3, &hs, 0.01),
            reference(-2.0, -1.7, &hs, 0.01),
        ];
        let want_b = [
            reference(0.5, 0.3, &hs, 0.0),
            reference(3.0, -1.7, &hs, 0.0),
        ];
        assert_close(&values(&decayed), &want_w, 1e-12);
        assert_close(&values(&plain), &want_b, 1e-12);
    }
}
