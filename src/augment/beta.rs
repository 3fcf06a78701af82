//! Gamma and Beta draws on the crate's own `Rng`, so MixUp/CutMix lambdas are
//! part of the seeded, never-changing stream (a distribution crate may change
//! its algorithm between releases, and with it every run's batches).

use crate::rng::Rng;

/// Gamma(shape, 1) by Marsaglia and Tsang (2000). For shape < 1 the standard
/// boost: Gamma(a) = Gamma(a + 1) * U^(1/a). `shape` must be > 0 (callers check).
pub fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = rng.next_f64().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = rng.next_f64();
        if u < 1.0 - 0.0331 * x * x * x * x
            || u.max(f64::MIN_POSITIVE).ln() < 0.5 * x * x + d * (1.0 - v + v.ln())
        {
            return d * v;
        }
    }
}

/// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
pub fn beta(rng: &mut Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    if x + y <= 0.0 {
        // Both underflowed (tiny shapes): the distribution is then all at 0 or 1.
        return if rng.next_f64() < a / (a + b) {
            1.0
        } else {
            0.0
        };
    }
    x / (x + y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(a: f64, b: f64) -> (f64, f64) {
        let mut rng = Rng::new(11);
        let n = 40_000;
        let draws: Vec<f64> = (0..n).map(|_| beta(&mut rng, a, b)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        (mean, var)
    }

    #[test]
    fn beta_moments_match() {
        // mean a/(a+b), variance ab/((a+b)^2 (a+b+1)).
        for (a, b) in [(0.4, 0.4), (1.0, 1.0), (2.0, 5.0)] {
            let (m, v) = moments(a, b);
            let em = a / (a + b);
            let ev = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!((m - em).abs() < 0.01, "a={a} b={b}: mean {m} vs {em}");
            assert!((v - ev).abs() < 0.01, "a={a} b={b}: var {v} vs {ev}");
        }
    }

    #[test]
    fn gamma_mean_is_shape() {
        let mut rng = Rng::new(3);
        for shape in [0.3, 1.0, 4.5] {
            let n = 40_000;
            let m = (0..n).map(|_| gamma(&mut rng, shape)).sum::<f64>() / n as f64;
            assert!((m - shape).abs() < 0.05 * shape.max(1.0), "{shape}: {m}");
        }
    }
}
