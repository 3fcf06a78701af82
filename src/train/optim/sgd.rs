//! fastai's `SGD(params, lr, mom=0., wd=0.)`: decoupled weight decay, then
//! `sgd_step` when built with mom = 0, else undampened `average_grad` +
//! `momentum_step` (momentum is the scheduled `mom`). Nesterov is torch's form.

use crate::kernels::Rule;

/// `momentum` is whether the optimiser was built with a mom above 0; `mom` is
/// this step's (scheduled) value.
pub(super) fn rule(lr: f64, decay: f64, momentum: bool, mom: f64, nesterov: bool) -> Rule {
    if momentum {
        Rule::Momentum {
            decay,
            lr,
            mom,
            nesterov,
        }
    } else {
        Rule::Sgd { decay, lr }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, OptimSettings, Optimizer, StepHypers};

    fn run(settings: OptimSettings, hs: &[StepHypers], g: f64) -> f64 {
        let p = param("w", &[1.0], true);
        let mut opt = Optimizer::new(vec![p.clone()], settings).unwrap();
        for h in hs {
            opt.step(&grads(&[&p], &[g]), *h).unwrap();
        }
        values(&p)[0]
    }

    #[test]
    fn plain_sgd_ignores_the_scheduled_mom() {
        // mom = 0 at construction: p = p*(1 - lr*wd) - lr*g, whatever mom the schedule says.
        // lr 0.1, wd 0.01, g 0.5: 1*0.999 - 0.05 = 0.949; 0.949*0.999 - 0.05 = 0.898051.
        let s = OptimSettings {
            wd: 0.01,
            ..OptimSettings::sgd()
        };
        let h = StepHypers { lr: 0.1, mom: 0.9 };
        assert!((run(s, &[h, h], 0.5) - 0.898051).abs() < 1e-15);
    }

    #[test]
    fn momentum_is_undampened_and_scheduled() {
        // m = mom*m + g; p -= lr*m. g = 1, lr 0.1: m 1, p 0.9; m 1.9, p 0.71;
        // then mom 0.8: m = 0.8*1.9 + 1 = 2.52, p = 0.71 - 0.252 = 0.458.
        let s = OptimSettings {
            mom: 0.9,
            ..OptimSettings::sgd()
        };
        let h = |mom| StepHypers { lr: 0.1, mom };
        assert!((run(s, &[h(0.9), h(0.9), h(0.8)], 1.0) - 0.458).abs() < 1e-15);
    }

    #[test]
    fn nesterov_steps_along_g_plus_mom_m() {
        // torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True), g = 1:
        // m 1, p = 1 - 0.1*(1 + 0.9) = 0.81; m 1.9, p = 0.81 - 0.1*(1 + 1.71) = 0.539.
        let s = OptimSettings {
            algorithm: Algorithm::Sgd { nesterov: true },
            mom: 0.9,
            ..OptimSettings::sgd()
        };
        let h = StepHypers { lr: 0.1, mom: 0.9 };
        assert!((run(s, &[h, h], 1.0) - 0.539).abs() < 1e-15);
    }
}
