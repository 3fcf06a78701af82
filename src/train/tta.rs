//! Test-time augmentation: how fastai's `Learner.tta` combines predictions.
//!
//! fastai predicts the set once with the validation transforms (`plain`) and `n`
//! times with the training augmentations (`augmented`), all as probability rows,
//! then blends them. Running the passes is the learner's job; this is the blend.

use crate::error::{Error, Result};

/// Probability rows: one row per sample, one column per class.
pub type Rows = Vec<Vec<f64>>;

/// What `combine_tta` returns, as fastai's `tta` return value.
#[derive(Debug, Clone, PartialEq)]
pub enum TtaOutput {
    /// The final predictions (a blend, or the element-wise max).
    Combined(Rows),
    /// `beta = None` without `use_max`: the averaged augmented predictions and the
    /// plain ones, left for the caller to combine.
    Separate { augmented: Rows, plain: Rows },
}

/// fastai's default weight of the plain (un-augmented) predictions.
pub const TTA_BETA: f64 = 0.25;

/// Combine as fastai's `Learner.tta(beta, use_max)`:
/// * `use_max`: element-wise `max(plain, max over passes of augmented)`; fastai
///   checks `use_max` first, so `beta` is ignored then.
/// * otherwise `aug = mean over passes`, and with `Some(beta)`:
///   `torch.lerp(aug, plain, beta) = (1 - beta) * aug + beta * plain`;
///   with `None`: both, unblended.
///
/// `augmented[k]` is pass k's rows; every pass must have `plain`'s shape.
pub fn combine_tta<T, R>(
    plain: &[R],
    augmented: &[Vec<R>],
    beta: Option<f64>,
    use_max: bool,
) -> Result<TtaOutput>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
{
    check_shapes(plain, augmented)?;
    let plain = to_f64(plain);
    let passes: Vec<Rows> = augmented.iter().map(|pass| to_f64(pass)).collect();
    if use_max {
        let max = passes
            .iter()
            .fold(plain, |acc, pass| zip_with(&acc, pass, f64::max));
        return Ok(TtaOutput::Combined(max));
    }
    let n = passes.len() as f64;
    let sum = passes[1..].iter().fold(passes[0].clone(), |acc, pass| {
        zip_with(&acc, pass, |a, b| a + b)
    });
    let mean = map(&sum, |s| s / n);
    Ok(match beta {
        Some(beta) => TtaOutput::Combined(zip_with(&mean, &plain, |a, p| a + beta * (p - a))),
        None => TtaOutput::Separate {
            augmented: mean,
            plain,
        },
    })
}

fn check_shapes<T, R: AsRef<[T]>>(plain: &[R], augmented: &[Vec<R>]) -> Result<()> {
    if augmented.is_empty() {
        return Err(Error::Internal(
            "TTA needs at least one augmented pass (fastai's n >= 1)".into(),
        ));
    }
    let same = |pass: &Vec<R>| {
        pass.len() == plain.len()
            && pass
                .iter()
                .zip(plain)
                .all(|(a, p)| a.as_ref().len() == p.as_ref().len())
    };
    if let Some(k) = augmented.iter().position(|pass| !same(pass)) {
        return Err(Error::Internal(format!(
            "TTA: augmented pass {k} does not have the plain predictions' shape"
        )));
    }
    Ok(())
}

fn to_f64<T: Copy + Into<f64>, R: AsRef<[T]>>(rows: &[R]) -> Rows {
    rows.iter()
        .map(|r| r.as_ref().iter().map(|&v| v.into()).collect())
        .collect()
}

fn map(a: &Rows, f: impl Fn(f64) -> f64) -> Rows {
    a.iter()
        .map(|r| r.iter().map(|&x| f(x)).collect())
        .collect()
}

fn zip_with(a: &Rows, b: &Rows, f: impl Fn(f64, f64) -> f64) -> Rows {
    a.iter()
        .zip(b)
        .map(|(ra, rb)| ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two samples, two classes; two augmented passes.
    fn plain() -> Vec<[f32; 2]> {
        vec![[0.6, 0.4], [0.2, 0.8]]
    }
    fn augmented() -> Vec<Vec<[f32; 2]>> {
        vec![vec![[0.8, 0.2], [0.5, 0.5]], vec![[0.4, 0.6], [0.1, 0.9]]]
    }

    fn assert_rows(got: &Rows, want: &[[f64; 2]]) {
        for (g, w) in got.iter().zip(want) {
            for (x, y) in g.iter().zip(w) {
                assert!((x - y).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        }
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn blend_is_lerp_of_mean_augmented_towards_plain() {
        // mean aug = [[0.6, 0.4], [0.3, 0.7]]
        // 0.75 * aug + 0.25 * plain = [[0.6, 0.4], [0.275, 0.725]]
        let out = combine_tta(&plain(), &augmented(), Some(TTA_BETA), false).unwrap();
        let TtaOutput::Combined(rows) = out else {
            panic!("expected combined, got {out:?}")
        };
        assert_rows(&rows, &[[0.6, 0.4], [0.275, 0.725]]);
        // beta = 1 is the plain prediction, beta = 0 the augmented mean.
        let TtaOutput::Combined(rows) =
            combine_tta(&plain(), &augmented(), Some(1.0), false).unwrap()
        else {
            panic!()
        };
        assert_rows(&rows, &[[0.6, 0.4], [0.2, 0.8]]);
    }

    #[test]
    fn beta_none_returns_both() {
        let out = combine_tta(&plain(), &augmented(), None, false).unwrap();
        let TtaOutput::Separate { augmented, plain } = out else {
            panic!("expected separate, got {out:?}")
        };
        assert_rows(&augmented, &[[0.6, 0.4], [0.3, 0.7]]);
        assert_rows(&plain, &[[0.6, 0.4], [0.2, 0.8]]);
    }

    #[test]
    fn use_max_takes_the_element_wise_max_and_ignores_beta() {
        // max(plain, aug0, aug1) = [[0.8, 0.6], [0.5, 0.9]]
        for beta in [None, Some(0.25)] {
            let out = combine_tta(&plain(), &augmented(), beta, true).unwrap();
            let TtaOutput::Combined(rows) = out else {
                panic!("expected combined, got {out:?}")
            };
            assert_rows(&rows, &[[0.8, 0.6], [0.5, 0.9]]);
        }
    }

    #[test]
    fn shape_errors() {
        let none: Vec<Vec<[f32; 2]>> = vec![];
        assert!(combine_tta(&plain(), &none, Some(0.25), false).is_err());
        let short = vec![vec![[0.5f32, 0.5]]];
        assert!(combine_tta(&plain(), &short, Some(0.25), false).is_err());
    }
}
