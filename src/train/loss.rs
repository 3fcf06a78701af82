//! Loss functions, as fastai's `losses.py` and torch's `nn.functional`.
//!
//! Every loss takes raw logits (no softmax or sigmoid applied), works in the
//! logits' float type (f32 or f64) and is built from candle ops only, so
//! `loss.backward()` gives the gradient. Shapes: logits `(N, C)`; integer class
//! targets `(N,)` of u8/u32/i64; probability or multi-hot targets `(N, C)`.
//!
//! Bad arguments (wrong shapes, an integer target where probabilities were
//! expected, eps outside [0, 1]) are returned as errors, never panics.

use crate::error::{Error, Result};
use candle_core::{D, DType, Tensor};

/// fastai's default smoothing for `LabelSmoothingCrossEntropy`.
pub const LABEL_SMOOTHING_EPS: f64 = 0.1;

/// How per-sample (or per-element) losses become the returned tensor, as torch's
/// `reduction=`: `Mean` and `Sum` give a scalar, `None` keeps one loss per sample
/// (per element for BCE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    None,
}

impl Reduction {
    fn apply(self, losses: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Reduction::Mean => losses.mean_all()?,
            Reduction::Sum => losses.sum_all()?,
            Reduction::None => losses.clone(),
        })
    }
}

/// Cross-entropy of integer class targets: `-log_softmax(logits)[i, y_i]`,
/// reduced (torch `F.cross_entropy(logits, y)`, fastai `CrossEntropyLossFlat`).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, reduction: Reduction) -> Result<Tensor> {
    check_class_targets(logits, targets)?;
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    reduction.apply(&nll_per_sample(&log_probs, targets)?)
}

/// fastai's `LabelSmoothingCrossEntropy(eps)` without class weights:
/// per sample `(1 - eps) * nll_i + eps / C * sum_j(-log_softmax_ij)`.
/// fastai writes the `mean` case as `eps/C * mean_i(-sum_j lp_ij) + (1-eps) * nll`,
/// which is the mean of these per-sample values; it equals torch's
/// `F.cross_entropy(logits, y, label_smoothing=eps)` for every reduction.
pub fn label_smoothing_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    eps: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    check_eps(eps, "label smoothing eps")?;
    check_class_targets(logits, targets)?;
    let n_classes = logits.dim(1)? as f64;
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = nll_per_sample(&log_probs, targets)?;
    let uniform = log_probs.sum(1)?.neg()?;
    let per_sample = (nll.affine(1.0 - eps, 0.0)? + uniform.affine(eps / n_classes, 0.0)?)?;
    reduction.apply(&per_sample)
}

/// Cross-entropy against probability rows (each target row sums to 1, as
/// MixUp's mixed one-hot targets): per sample `-sum_j t_ij * log_softmax_ij`.
/// Mean divides by N, as torch's `F.cross_entropy` with probability targets.
pub fn soft_target_cross_entropy(
    logits: &Tensor,
    target_probs: &Tensor,
    reduction: Reduction,
) -> Result<Tensor> {
    let targets = float_targets_like(logits, target_probs, "soft targets")?;
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let per_sample = (log_probs * targets)?.sum(1)?.neg()?;
    reduction.apply(&per_sample)
}

/// MixUp / CutMix loss for integer targets, as fastai's `MixHandler.lf`:
/// `lerp(loss_partner, loss_own, lam)`, i.e. per sample
/// `lam_i * loss_own_i + (1 - lam_i) * loss_partner_i`, then reduced.
///
/// `loss_own` and `loss_partner` are per-sample losses (`Reduction::None`) of the
/// mixed batch's predictions against the sample's own targets and against its
/// mixing partner's (the shuffled targets). `lam` is `(N,)` for MixUp (fastai draws
/// one lam per sample) or a scalar for CutMix (one lam per batch).
pub fn mix_losses(
    loss_own: &Tensor,
    loss_partner: &Tensor,
    lam: &Tensor,
    reduction: Reduction,
) -> Result<Tensor> {
    if loss_own.dims() != loss_partner.dims() || loss_own.rank() != 1 {
        return Err(Error::Internal(format!(
            "mix_losses: expected two per-sample loss vectors of one length, got {:?} and {:?}",
            loss_own.dims(),
            loss_partner.dims()
        )));
    }
    if !(lam.rank() == 0 || lam.dims() == loss_own.dims()) {
        return Err(Error::Internal(format!(
            "mix_losses: lam must be a scalar or one value per sample {:?}, got {:?}",
            loss_own.dims(),
            lam.dims()
        )));
    }
    let lam = lam.to_dtype(loss_own.dtype())?;
    // partner + lam * (own - partner): torch.lerp's form, one multiply.
    let mixed = (loss_own - loss_partner)?
        .broadcast_mul(&lam)?
        .add(loss_partner)?;
    reduction.apply(&mixed)
}

/// Binary cross-entropy on logits for multi-label targets (`(N, C)`, 0/1 or
/// probabilities), torch's `F.binary_cross_entropy_with_logits(x, t, pos_weight)`.
///
/// * `label_smoothing`: targets become `t * (1 - eps) + eps / 2` before the loss.
///   Neither torch nor fastai has a BCE smoothing option; this is Keras'
///   `binary_crossentropy(label_smoothing=eps)` convention and what torch's softmax
///   `label_smoothing` does for two classes (squeeze towards 0.5). `0.0` = off.
/// * `pos_weight`: `(C,)`, multiplies the positive term of each class, as torch:
///   `-(pw_c * t * log(sigmoid x) + (1 - t) * log(1 - sigmoid x))`. With smoothing,
///   it applies to the smoothed target (torch on the smoothed tensor).
///
/// Computed as torch does, `(1 - t) * x + (1 + (pw - 1) * t) * softplus(-x)`, with
/// softplus in log-sum-exp form so large |x| neither overflows nor loses the gradient.
/// `Reduction::Mean` averages over all N*C elements (torch's default).
pub fn bce_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    label_smoothing: f64,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    check_eps(label_smoothing, "BCE label smoothing eps")?;
    let mut targets = float_targets_like(logits, targets, "BCE targets")?;
    if label_smoothing > 0.0 {
        targets = targets.affine(1.0 - label_smoothing, label_smoothing / 2.0)?;
    }
    let negative_part = targets.affine(-1.0, 1.0)?.mul(logits)?;
    let weight = match pos_weight {
        None => None,
        Some(pw) => {
            let n_classes = logits.dim(1)?;
            if pw.dims() != [n_classes] {
                return Err(Error::Internal(format!(
                    "bce_with_logits: pos_weight must have one value per class ({n_classes}), got {:?}",
                    pw.dims()
                )));
            }
            let pw = pw.to_dtype(logits.dtype())?.unsqueeze(0)?;
            // 1 + (pw - 1) * t
            Some(
                targets
                    .broadcast_mul(&pw.affine(1.0, -1.0)?)?
                    .affine(1.0, 1.0)?,
            )
        }
    };
    let softplus = softplus(&logits.neg()?)?;
    let positive_part = match weight {
        Some(w) => (w * softplus)?,
        None => softplus,
    };
    reduction.apply(&(negative_part + positive_part)?)
}

/// `log(1 + exp(x))`, stable for any x: `m + log(exp(-m) + exp(x - m))` with
/// `m = max(x, 0)` detached. Both exponents are <= 0, and because `m` cancels
/// mathematically, detaching it leaves the gradient exact (sigmoid x) everywhere,
/// including x = 0 where a `relu`/`abs` form would give a zero subgradient.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let m = x.relu()?.detach();
    let sum = (m.neg()?.exp()? + (x - &m)?.exp()?)?;
    Ok((sum.log()? + m)?)
}

/// `-log_probs[i, targets[i]]` for each sample i.
fn nll_per_sample(log_probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(log_probs
        .gather(&targets.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?)
}

fn check_eps(eps: f64, what: &str) -> Result<()> {
    if (0.0..=1.0).contains(&eps) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "{what} {eps}: expected a value in [0, 1] (fastai's default is {LABEL_SMOOTHING_EPS})"
        )))
    }
}

fn check_logits(logits: &Tensor) -> Result<(usize, usize)> {
    match *logits.dims() {
        [n, c] if c > 0 && logits.dtype().is_float() => Ok((n, c)),
        _ => Err(Error::Internal(format!(
            "loss: logits must be a float (N, C) tensor with C >= 1, got {:?} {:?}",
            logits.dtype(),
            logits.dims()
        ))),
    }
}

/// Integer class targets: `(N,)`, an integer dtype, each in 0..C. The range is
/// checked here because an out-of-range index is a data bug worth a clear message.
fn check_class_targets(logits: &Tensor, targets: &Tensor) -> Result<()> {
    let (n, c) = check_logits(logits)?;
    if !matches!(targets.dtype(), DType::U8 | DType::U32 | DType::I64) || targets.dims() != [n] {
        return Err(Error::Internal(format!(
            "loss: class targets must be an integer (N,) = ({n},) tensor, got {:?} {:?}",
            targets.dtype(),
            targets.dims()
        )));
    }
    let max = targets.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    if let Some(bad) = max.iter().find(|&&t| t < 0 || t as usize >= c) {
        return Err(Error::Internal(format!(
            "loss: class target {bad} is outside 0..{c}"
        )));
    }
    Ok(())
}

/// Float targets of the logits' shape, converted to the logits' dtype.
fn float_targets_like(logits: &Tensor, targets: &Tensor, what: &str) -> Result<Tensor> {
    check_logits(logits)?;
    if targets.dims() != logits.dims() {
        return Err(Error::Internal(format!(
            "loss: {what} must have the logits' shape {:?}, got {:?}",
            logits.dims(),
            targets.dims()
        )));
    }
    Ok(targets.to_dtype(logits.dtype())?)
}

#[cfg(test)]
mod tests {
    //! Reference numbers come from torch 2.15 (float64) via
    //! benches/reference/losses.py; each test names the torch call.
    use super::*;
    use candle_core::{Device, Var};

    const LOGITS: [[f64; 4]; 3] = [
        [1.0, -0.5, 2.0, 0.3],
        [0.2, 0.1, -1.2, 3.0],
        [-2.0, 0.5, 0.5, 1.5],
    ];
    const TARGETS: [u32; 3] = [2, 0, 3];
    const SOFT: [[f64; 4]; 3] = [
        [0.1, 0.2, 0.6, 0.1],
        [0.7, 0.1, 0.1, 0.1],
        [0.0, 0.0, 0.5, 0.5],
    ];
    const BCE_LOGITS: [[f64; 3]; 2] = [[0.5, -1.5, 30.0], [-40.0, 0.0, 2.5]];
    const BCE_TARGETS: [[f64; 3]; 2] = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
    const POS_WEIGHT: [f64; 3] = [1.0, 3.0, 0.5];

    fn logits(dtype: DType) -> Tensor {
        Tensor::new(&LOGITS, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }
    fn targets() -> Tensor {
        Tensor::new(&TARGETS, &Device::Cpu).unwrap()
    }
    fn values(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }
    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{got:?}\nvs {want:?}"
            );
        }
    }

    #[test]
    fn cross_entropy_matches_torch() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
            // F.cross_entropy(x, y) and reduction='none'
            let mean = cross_entropy(&logits(dtype), &targets(), Reduction::Mean).unwrap();
            assert_eq!(mean.dtype(), dtype);
            assert_close(&values(&mean), &[1.3272821398479744], tol);
            let none = cross_entropy(&logits(dtype), &targets(), Reduction::None).unwrap();
            assert_close(
                &values(&none),
                &[0.4902032144153275, 2.92295086782584, 0.5686923373027561],
                tol,
            );
        }
    }

    #[test]
    fn cross_entropy_is_stable_for_huge_logits() {
        // F.cross_entropy([[1000., 0., -1000.]], [1]) = 1000
        let x = Tensor::new(&[[1000f32, 0.0, -1000.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1u32], &Device::Cpu).unwrap();
        let loss = cross_entropy(&x, &y, Reduction::Mean).unwrap();
        assert_close(&values(&loss), &[1000.0], 1e-6);
    }

    #[test]
    fn label_smoothing_matches_torch_label_smoothing() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
            let x = logits(dtype);
            let ls = |eps, red| {
                values(&label_smoothing_cross_entropy(&x, &targets(), eps, red).unwrap())
            };
            // F.cross_entropy(x, y, label_smoothing=0.1, reduction=...)
            assert_close(&ls(0.1, Reduction::Mean), &[1.4056154731813078], tol);
            assert_close(&ls(0.1, Reduction::Sum), &[4.2168464195439235], tol);
            assert_close(
                &ls(0.1, Reduction::None),
                &[0.6202032144153276, 2.89045086782584, 0.7061923373027561],
                tol,
            );
            // F.cross_entropy(x, y, label_smoothing=0.3)
            assert_close(&ls(0.3, Reduction::Mean), &[1.5622821398479743], tol);
            // eps = 0 is plain cross-entropy.
            assert_close(&ls(0.0, Reduction::Mean), &[1.3272821398479744], tol);
        }
    }

    #[test]
    fn label_smoothing_gradient_matches_torch_and_finite_differences() {
        let x = Var::from_tensor(&logits(DType::F64)).unwrap();
        let loss = |t: &Tensor| {
            label_smoothing_cross_entropy(t, &targets(), 0.1, Reduction::Mean).unwrap()
        };
        let grads = loss(x.as_tensor()).backward().unwrap();
        let grad = values(grads.get(x.as_tensor()).unwrap());
        // torch.autograd.grad(F.cross_entropy(x, y, label_smoothing=0.1), x)
        assert_close(
            &grad,
            &[
                0.06677562040673433,
                0.008425739543268973,
                -0.10416602922713637,
                0.028964669277133086,
                -0.2904084097653255,
                0.007885808226434794,
                -0.003913101602577255,
                0.28643570314146805,
                -0.0026334218070733217,
                0.06110580441187336,
                0.06110580441187336,
                -0.11957818701667342,
            ],
            1e-12,
        );
        assert_close(
            &grad,
            &finite_difference(&LOGITS.concat(), (3, 4), loss),
            1e-7,
        );
    }

    #[test]
    fn soft_targets_match_torch_probability_targets() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
            let t = Tensor::new(&SOFT, &Device::Cpu).unwrap();
            // F.cross_entropy(x, t) with t float probabilities, and reduction='none'
            let mean = soft_target_cross_entropy(&logits(dtype), &t, Reduction::Mean).unwrap();
            assert_close(&values(&mean), &[1.7072821398479743], tol);
            let none = soft_target_cross_entropy(&logits(dtype), &t, Reduction::None).unwrap();
            assert_close(
                &values(&none),
                &[1.2602032144153275, 2.79295086782584, 1.0686923373027561],
                tol,
            );
        }
    }

    #[test]
    fn one_hot_soft_targets_are_plain_cross_entropy() {
        let mut one_hot = [[0f64; 4]; 3];
        for (row, &y) in one_hot.iter_mut().zip(&TARGETS) {
            row[y as usize] = 1.0;
        }
        let t = Tensor::new(&one_hot, &Device::Cpu).unwrap();
        let soft = soft_target_cross_entropy(&logits(DType::F64), &t, Reduction::Mean).unwrap();
        assert_close(&values(&soft), &[1.3272821398479744], 1e-12);
    }

    #[test]
    fn mixed_losses_match_fastai_lerp() {
        let x = logits(DType::F64);
        let partner = Tensor::new(&[0u32, 3, 2], &Device::Cpu).unwrap();
        let own_loss = cross_entropy(&x, &targets(), Reduction::None).unwrap();
        let partner_loss = cross_entropy(&x, &partner, Reduction::None).unwrap();
        // torch.lerp(F.cross_entropy(x, yp, reduction='none'),
        //            F.cross_entropy(x, y, reduction='none'), lam).mean()
        let lam = Tensor::new(&[0.7f64, 0.55, 0.9], &Device::Cpu).unwrap();
        let mixed = mix_losses(&own_loss, &partner_loss, &lam, Reduction::Mean).unwrap();
        assert_close(&values(&mixed), &[1.0406154731813078], 1e-12);
        // CutMix: one scalar lam = 0.3 for the batch (and an f32 lam on f64 losses).
        let lam = Tensor::new(0.3f32, &Device::Cpu).unwrap();
        let mixed = mix_losses(&own_loss, &partner_loss, &lam, Reduction::Mean).unwrap();
        assert_close(&values(&mixed), &[1.1406154731813078], 1e-7);
        // lam = 1 is the unmixed loss.
        let lam = Tensor::ones(3, DType::F64, &Device::Cpu).unwrap();
        let mixed = mix_losses(&own_loss, &partner_loss, &lam, Reduction::Mean).unwrap();
        assert_close(&values(&mixed), &[1.3272821398479744], 1e-12);
    }

    fn bce_inputs(dtype: DType) -> (Tensor, Tensor, Tensor) {
        let d = &Device::Cpu;
        let x = Tensor::new(&BCE_LOGITS, d)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let t = Tensor::new(&BCE_TARGETS, d).unwrap();
        let pw = Tensor::new(&POS_WEIGHT, d).unwrap();
        (x, t, pw)
    }

    #[test]
    fn bce_with_logits_matches_torch() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-6)] {
            let (x, t, pw) = bce_inputs(dtype);
            let bce = |eps, pw, red| values(&bce_with_logits(&x, &t, eps, pw, red).unwrap());
            // F.binary_cross_entropy_with_logits(z, yt) and reduction='none'
            assert_close(&bce(0.0, None, Reduction::Mean), &[0.6579211961692413], tol);
            let none = bce(0.0, None, Reduction::None);
            let want = [
                0.4740769841801067,
                0.20141327798275244,
                9.357622968839737e-14,
                0.0,
                std::f64::consts::LN_2, // torch printed 0.6931471805599453 (x = 0)
                2.5788897342925496,
            ];
            assert_close(&none, &want, tol);
            // Far-out logits (30 and -40) neither overflow nor hit log(0). torch uses
            // log1p for log(1 + 9e-14); our log(1 + u) is off by ~1e-16 absolute there.
            // In f32, 1 + 9e-14 rounds to 1 and our loss is 0 where torch's log1p keeps
            // 9.4e-14: a difference no f32 loss sum can see.
            if dtype == DType::F64 {
                assert!((none[2] - want[2]).abs() < 1e-15, "{none:?}");
            }
            assert_eq!(none[3], 0.0, "{none:?}");
            // ... pos_weight=pw
            assert_close(
                &bce(0.0, Some(&pw), Reduction::Mean),
                &[0.8889702563558818],
                tol,
            );
            // ... on yt*(1-0.1)+0.1/2
            assert_close(&bce(0.1, None, Reduction::Mean), &[1.2370878628359077], tol);
            // ... on the smoothed targets, pos_weight=pw, reduction='sum'
            assert_close(
                &bce(0.1, Some(&pw), Reduction::Sum),
                &[8.90767590452026],
                tol,
            );
        }
    }

    #[test]
    fn bce_gradient_matches_torch_and_finite_differences() {
        let (x, t, pw) = bce_inputs(DType::F64);
        let x = Var::from_tensor(&x).unwrap();
        let loss = |z: &Tensor| bce_with_logits(z, &t, 0.1, Some(&pw), Reduction::Sum).unwrap();
        let grads = loss(x.as_tensor()).backward().unwrap();
        let grad = values(grads.get(x.as_tensor()).unwrap());
        // torch.autograd.grad(F.binary_cross_entropy_with_logits(z, ys, pos_weight=pw,
        //                     reduction='sum'), z)
        let want = [
            -0.3275406687981455,
            0.05066807618699193,
            0.04999999999995092,
            -0.049999999999999996,
            -1.4000000000000001,
            0.8760382744792875,
        ];
        assert_close(&grad, &want, 1e-12);
        assert_close(
            &grad,
            &finite_difference(&BCE_LOGITS.concat(), (2, 3), loss),
            1e-7,
        );
        // At x = 0 exactly (element [1][1]) the gradient is the true -1.4, not a
        // zero subgradient: checked above via want[4].
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let x = logits(DType::F64);
        let float_targets = Tensor::new(&[2f32, 0.0, 3.0], &Device::Cpu).unwrap();
        assert!(cross_entropy(&x, &float_targets, Reduction::Mean).is_err());
        let out_of_range = Tensor::new(&[2u32, 0, 4], &Device::Cpu).unwrap();
        assert!(cross_entropy(&x, &out_of_range, Reduction::Mean).is_err());
        let short = Tensor::new(&[2u32, 0], &Device::Cpu).unwrap();
        assert!(label_smoothing_cross_entropy(&x, &short, 0.1, Reduction::Mean).is_err());
        let err = label_smoothing_cross_entropy(&x, &targets(), 1.5, Reduction::Mean);
        assert_eq!(err.unwrap_err().exit_code(), 2);
        let (bx, bt, _) = bce_inputs(DType::F64);
        let wrong_pw = Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        assert!(bce_with_logits(&bx, &bt, 0.0, Some(&wrong_pw), Reduction::Mean).is_err());
        assert!(soft_target_cross_entropy(&x, &bt, Reduction::Mean).is_err());
        let lam = Tensor::new(&[0.5f64, 0.5], &Device::Cpu).unwrap();
        let l = cross_entropy(&x, &targets(), Reduction::None).unwrap();
        assert!(mix_losses(&l, &l, &lam, Reduction::Mean).is_err());
    }

    /// Central differences of a scalar loss in each input element (f64).
    fn finite_difference(
        input: &[f64],
        shape: (usize, usize),
        loss: impl Fn(&Tensor) -> Tensor,
    ) -> Vec<f64> {
        let h = 1e-6;
        let at = |v: &[f64]| {
            let t = Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
            loss(&t).to_scalar::<f64>().unwrap()
        };
        (0..input.len())
            .map(|i| {
                let mut plus = input.to_vec();
                let mut minus = input.to_vec();
                plus[i] += h;
                minus[i] -= h;
                (at(&plus) - at(&minus)) / (2.0 * h)
            })
            .collect()
    }
}
