//! fastai's Brightness and Contrast, composed into one LightingTfm: in logit
//! space, `x = sigmoid(contrast * (logit(x) + logit(brightness)))` on [0, 1]
//! values, before normalisation.

/// One image's lighting draws. Neutral: brightness 0.5 (logit 0), contrast 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lighting {
    pub brightness: f64,
    pub contrast: f64,
}

impl Lighting {
    pub const NEUTRAL: Lighting = Lighting {
        brightness: 0.5,
        contrast: 1.0,
    };

    pub fn is_neutral(&self) -> bool {
        *self == Self::NEUTRAL
    }

    /// Apply to [0, 1] values in place.
    pub fn apply(&self, x: &mut [f32]) {
        let shift = logit(self.brightness as f32);
        let mul = self.contrast as f32;
        for v in x {
            let l = (logit(*v) + shift) * mul;
            *v = 1.0 / (1.0 + (-l).exp());
        }
    }
}

/// fastai's `logit`: the input clamped to [1e-7, 1 - 1e-7] first.
pub fn logit(x: f32) -> f32 {
    let x = x.clamp(1e-7, 1.0 - 1e-7);
    (x / (1.0 - x)).ln()
}

/// Brightness's draw range: U(0.5 (1 - L), 0.5 (1 + L)).
pub fn brightness_range(max_lighting: f64) -> (f64, f64) {
    (0.5 * (1.0 - max_lighting), 0.5 * (1.0 + max_lighting))
}

/// Contrast's draw: exp(U(log(1 - L), -log(1 - L))); this is the range of the
/// uniform before `exp`.
pub fn contrast_log_range(max_lighting: f64) -> (f64, f64) {
    let l = (1.0 - max_lighting).ln();
    (l, -l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_lighting_is_the_identity() {
        let mut x: Vec<f32> = (0..=100).map(|i| i as f32 / 100.0).collect();
        let orig = x.clone();
        Lighting::NEUTRAL.apply(&mut x);
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5, "{b} -> {a}");
        }
    }

    #[test]
    fn brightness_and_contrast_follow_the_logit_formula() {
        let l = Lighting {
            brightness: 0.6,
            contrast: 1.5,
        };
        let mut x = [0.25f32, 0.5, 0.9];
        l.apply(&mut x);
        for (got, v) in x.iter().zip([0.25f64, 0.5, 0.9]) {
            let lg = (v / (1.0 - v)).ln() + (0.6f64 / 0.4).ln();
            let want = 1.0 / (1.0 + (-(lg * 1.5)).exp());
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert_eq!(brightness_range(0.2), (0.4, 0.6));
        let (lo, hi) = contrast_log_range(0.2);
        assert!((lo.exp() - 0.8).abs() < 1e-12 && (hi.exp() - 1.25).abs() < 1e-12);
    }
}
