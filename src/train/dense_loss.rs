//! The training loss when targets are rows of numbers rather than class
//! indices: soft labels (rows of probabilities) and multi-label data (0/1
//! rows).
//!
//! fastai's MixUp/CutMix mix such targets instead of mixing two losses
//! (`MixHandler` when the loss has no `y_int`): the batch's targets become
//! `lam * y + (1 - lam) * y[perm]`, the same weights its images got. For
//! one-hot rows and the softmax cross-entropy, that is exactly the per-sample
//! lerp of the two losses fastai uses for integer targets (the loss is linear
//! in the target), which a test below checks.

use crate::augment::mix::Mixed;
use crate::error::{Error, Result};
use crate::train::loss::{Reduction, bce_with_logits, soft_target_cross_entropy};
use candle_core::{Device, Tensor};

/// Targets given as rows of numbers instead of the samples' classes.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseTargets {
    /// One row per training sample: soft labels (probabilities) or, for
    /// multi-label data, 0/1 rows (or their soft blend).
    pub train: Vec<Vec<f32>>,
    /// Multi-label data: the 0/1 row of every validation sample. None:
    /// validation scores the samples' classes (soft labels change only what
    /// the model trains on).
    pub valid: Option<Vec<Vec<f32>>>,
    pub loss: DenseLoss,
    /// Multi-label: each class's weight on its positive term (torch's
    /// `pos_weight`, `training.pos_weight`); None = 1 for every class.
    pub pos_weight: Option<Vec<f32>>,
}

impl DenseTargets {
    /// Soft labels of a single-label fold.
    pub fn soft(train: Vec<Vec<f32>>) -> Self {
        DenseTargets {
            train,
            valid: None,
            loss: DenseLoss::SoftmaxCrossEntropy,
            pos_weight: None,
        }
    }

    /// A multi-label fold: sigmoid outputs, binary cross-entropy per class.
    pub fn multi_label(train: Vec<Vec<f32>>, valid: Vec<Vec<f32>>) -> Self {
        DenseTargets {
            train,
            valid: Some(valid),
            loss: DenseLoss::BinaryCrossEntropy,
            pos_weight: None,
        }
    }
}

/// Which loss the dense targets feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseLoss {
    /// Softmax cross-entropy against probability rows (soft labels).
    SoftmaxCrossEntropy,
    /// Sigmoid binary cross-entropy per class (multi-label).
    BinaryCrossEntropy,
}

/// The `(N, C)` f32 target tensor of a batch: row `i` is `rows[indices[i]]`.
pub fn batch_targets(rows: &[Vec<f32>], indices: &[usize], device: &Device) -> Result<Tensor> {
    let n_classes = rows.first().map_or(0, Vec::len);
    let mut flat = Vec::with_capacity(indices.len() * n_classes);
    for &i in indices {
        let row = rows.get(i).ok_or_else(|| {
            Error::Internal(format!("target row {i} of {} requested", rows.len()))
        })?;
        flat.extend_from_slice(row);
    }
    Ok(Tensor::from_vec(flat, (indices.len(), n_classes), device)?)
}

/// `lam * y + (1 - lam) * y[perm]` per sample (MixUp's lam per sample,
/// CutMix's one lam for all).
pub fn mix_targets(targets: &Tensor, mix: &Mixed) -> Result<Tensor> {
    let n = targets.dim(0)?;
    if mix.perm.len() != n || !(mix.lam.len() == n || mix.lam.len() == 1) {
        return Err(Error::Internal(format!(
            "mix_targets: {n} targets, {} partners and {} lambdas",
            mix.perm.len(),
            mix.lam.len()
        )));
    }
    let device = targets.device();
    let perm: Vec<u32> = mix.perm.iter().map(|&p| p as u32).collect();
    let partner = targets.index_select(&Tensor::from_vec(perm, n, device)?, 0)?;
    let lam =
        Tensor::from_vec(mix.lam.clone(), (mix.lam.len(), 1), device)?.to_dtype(targets.dtype())?;
    // partner + lam * (own - partner): torch.lerp(partner, own, lam).
    Ok((targets - &partner)?.broadcast_mul(&lam)?.add(&partner)?)
}

/// The mean training loss of a batch with dense targets, after mixing (if the
/// batch was mixed) and label smoothing (`eps`: softmax targets become
/// `(1 - eps) * t + eps / C`, as `LabelSmoothingCrossEntropy` does for one-hot
/// targets; BCE targets become `(1 - eps) * t + eps / 2`).
pub fn dense_training_loss(
    logits: &Tensor,
    targets: &Tensor,
    mix: Option<&Mixed>,
    smoothing: f64,
    loss: DenseLoss,
    pos_weight: Option<&[f32]>,
) -> Result<Tensor> {
    let mut t = match mix {
        Some(m) => mix_targets(targets, m)?,
        None => targets.clone(),
    };
    match loss {
        DenseLoss::SoftmaxCrossEntropy => {
            if smoothing > 0.0 {
                let c = t.dim(1)? as f64;
                t = t.affine(1.0 - smoothing, smoothing / c)?;
            }
            soft_target_cross_entropy(logits, &t, Reduction::Mean)
        }
        DenseLoss::BinaryCrossEntropy => {
            let weight = pos_weight
                .map(|w| Tensor::from_slice(w, w.len(), logits.device()))
                .transpose()?;
            bce_with_logits(logits, &t, smoothing, weight.as_ref(), Reduction::Mean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::training_loss;

    fn logits() -> Tensor {
        let v: Vec<f32> = (0..12).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.7).collect();
        Tensor::from_vec(v, (4, 3), &Device::Cpu).unwrap()
    }

    fn scalar(t: &Tensor) -> f64 {
        t.to_scalar::<f32>().unwrap() as f64
    }

    #[test]
    fn one_hot_rows_give_fastais_integer_target_losses() {
        // With one-hot rows, mixing targets equals fastai's lerp of the two
        // losses, and smoothing equals LabelSmoothingCrossEntropy.
        let classes = [2u32, 0, 1, 2];
        let y = Tensor::new(&classes, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = classes
            .iter()
            .map(|&c| (0..3).map(|j| if j == c { 1.0 } else { 0.0 }).collect())
            .collect();
        let t = batch_targets(&rows, &[0, 1, 2, 3], &Device::Cpu).unwrap();
        let mixup = Mixed {
            perm: vec![3, 2, 0, 1],
            lam: vec![0.9, 0.6, 0.75, 0.5],
        };
        let cutmix = Mixed {
            perm: vec![1, 0, 3, 2],
            lam: vec![0.64; 4],
        };
        for mix in [None, Some(&mixup), Some(&cutmix)] {
            for eps in [0.0, 0.1] {
                let want = scalar(&training_loss(&logits(), &y, mix, eps).unwrap());
                let got = scalar(
                    &dense_training_loss(
                        &logits(),
                        &t,
                        mix,
                        eps,
                        DenseLoss::SoftmaxCrossEntropy,
                        None,
                    )
                    .unwrap(),
                );
                assert!(
                    (got - want).abs() < 1e-6,
                    "{mix:?} eps {eps}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn mixed_targets_follow_the_formula() {
        let rows = vec![vec![1.0, 0.0], vec![0.2, 0.8], vec![0.5, 0.5]];
        let t = batch_targets(&rows, &[2, 0, 1], &Device::Cpu).unwrap();
        let mix = Mixed {
            perm: vec![1, 2, 0],
            lam: vec![0.7, 0.9, 0.6],
        };
        let got = mix_targets(&t, &mix).unwrap().to_vec2::<f32>().unwrap();
        // own row [0.5,0.5] with partner [1,0] at 0.7; [1,0] with [0.2,0.8] at
        // 0.9; [0.2,0.8] with [0.5,0.5] at 0.6
        let want = [[0.65, 0.35], [0.92, 0.08], [0.32, 0.68]];
        for (g, w) in got.iter().zip(want) {
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{got:?}");
            }
        }
        let bad = Mixed {
            perm: vec![0],
            lam: vec![0.5],
        };
        assert!(mix_targets(&t, &bad).is_err());
    }

    #[test]
    fn bce_targets_are_mixed_then_smoothed() {
        let rows = vec![vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0]];
        let t = batch_targets(&rows, &[0, 1, 0, 1], &Device::Cpu).unwrap();
        let mix = Mixed {
            perm: vec![1, 0, 3, 2],
            lam: vec![0.8],
        };
        let got = scalar(
            &dense_training_loss(
                &logits(),
                &t,
                Some(&mix),
                0.1,
                DenseLoss::BinaryCrossEntropy,
                None,
            )
            .unwrap(),
        );
        // By hand: targets 0.8*own + 0.2*partner, then *0.9 + 0.05, then the
        // mean of the element-wise BCE on logits.
        let x = logits().to_vec2::<f32>().unwrap();
        let own = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
        let mut sum = 0.0f64;
        for i in 0..4 {
            for j in 0..3 {
                let mixed = 0.8 * own[i % 2][j] + 0.2 * own[(i + 1) % 2][j];
                let t = mixed * 0.9 + 0.05;
                let z = x[i][j] as f64;
                let p = 1.0 / (1.0 + (-z).exp());
                sum += -(t * p.ln() + (1.0 - t) * (1.0 - p).ln());
            }
        }
        let want = sum / 12.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn pos_weight_multiplies_each_class_positive_term() {
        // mean over cells of -(w_c * t * ln s(x) + (1 - t) * ln(1 - s(x))), by hand in f64.
        let rows = vec![vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 1.0]];
        let items = [0, 1, 1, 0];
        let t = batch_targets(&rows, &items, &Device::Cpu).unwrap();
        let w = [3.0f32, 1.0, 0.5];
        let got = scalar(
            &dense_training_loss(
                &logits(),
                &t,
                None,
                0.0,
                DenseLoss::BinaryCrossEntropy,
                Some(&w),
            )
            .unwrap(),
        );
        let x = logits().to_vec2::<f32>().unwrap();
        let mut sum = 0.0;
        for (r, &item) in items.iter().enumerate() {
            for c in 0..3 {
                let (xv, tv) = (x[r][c] as f64, rows[item][c] as f64);
                let s = 1.0 / (1.0 + (-xv).exp());
                sum -= w[c] as f64 * tv * s.ln() + (1.0 - tv) * (1.0 - s).ln();
            }
        }
        let want = sum / 12.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let unweighted = scalar(
            &dense_training_loss(
                &logits(),
                &t,
                None,
                0.0,
                DenseLoss::BinaryCrossEntropy,
                None,
            )
            .unwrap(),
        );
        let ones = scalar(
            &dense_training_loss(
                &logits(),
                &t,
                None,
                0.0,
                DenseLoss::BinaryCrossEntropy,
                Some(&[1.0; 3]),
            )
            .unwrap(),
        );
        assert!((unweighted - ones).abs() < 1e-7 && (unweighted - got).abs() > 1e-3);
    }
}
