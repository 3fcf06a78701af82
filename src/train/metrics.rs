//! Validation metrics on plain numbers (no tensors), as fastai's `metrics.py` and
//! the scikit-learn functions fastai wraps.
//!
//! Scores are rows, one per sample, of f32 or f64 (`&[Vec<f32>]`, `&[[f64; 4]]`, ...):
//! class probabilities for single-label tasks, logits or probabilities for
//! multi-label ones. Single-label targets are class indices; multi-label targets
//! are rows of bools. Mismatched lengths or an empty input are errors, not panics.

use crate::error::{Error, Result};
use std::cmp::Ordering;

/// Index of the largest score of each row (the first one on ties, as
/// `torch.argmax`); fastai decodes single-label predictions this way.
pub fn predicted_classes<T, R>(scores: &[R]) -> Vec<usize>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
{
    scores.iter().map(|row| argmax(row.as_ref())).collect()
}

/// Share of samples whose top-scoring class is the target (fastai `accuracy`).
pub fn accuracy<T, R>(scores: &[R], targets: &[usize]) -> Result<f64>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
{
    same_length(scores.len(), targets.len(), "accuracy")?;
    let predicted = predicted_classes(scores);
    let hits = predicted
        .iter()
        .zip(targets)
        .filter(|(p, t)| p == t)
        .count();
    Ok(hits as f64 / targets.len() as f64)
}

/// `1 - accuracy` (fastai `error_rate`).
pub fn error_rate<T, R>(scores: &[R], targets: &[usize]) -> Result<f64>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
{
    Ok(1.0 - accuracy(scores, targets)?)
}

/// `matrix[actual][predicted]` counts, as sklearn's `confusion_matrix` and fastai's
/// `ClassificationInterpretation` (rows: true class, columns: predicted class).
pub fn confusion_matrix(
    predicted: &[usize],
    targets: &[usize],
    n_classes: usize,
) -> Result<Vec<Vec<usize>>> {
    same_length(predicted.len(), targets.len(), "confusion matrix")?;
    let mut matrix = vec![vec![0; n_classes]; n_classes];
    for (&p, &t) in predicted.iter().zip(targets) {
        if p >= n_classes || t >= n_classes {
            return Err(Error::Internal(format!(
                "confusion matrix: class {} is outside 0..{n_classes}",
                p.max(t)
            )));
        }
        matrix[t][p] += 1;
    }
    Ok(matrix)
}

/// One class's scores from a confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of samples of this class.
    pub support: usize,
}

/// Precision, recall and F1 of each class, as sklearn's
/// `precision_recall_fscore_support(average=None, zero_division=0)`: a ratio with
/// a zero denominator (a class never predicted, or absent) counts as 0.
pub fn per_class_scores(confusion: &[Vec<usize>]) -> Vec<ClassScores> {
    let n = confusion.len();
    (0..n)
        .map(|c| {
            let tp = confusion[c].get(c).copied().unwrap_or(0) as f64;
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().filter_map(|row| row.get(c)).sum();
            let fn_ = support as f64 - tp;
            let fp = predicted as f64 - tp;
            ClassScores {
                precision: ratio(tp, predicted as f64),
                recall: ratio(tp, support as f64),
                f1: f_beta(tp, fp, fn_, 1.0),
                support,
            }
        })
        .collect()
}

/// Area under the ROC curve of one score column against its binary truth, with
/// tied scores handled as sklearn's `roc_auc_score` (a diagonal step, i.e. the
/// trapezoid rule): computed as the Mann-Whitney statistic with average ranks,
/// which equals it. `Ok(None)` when only one truth value is present (AUC is
/// undefined; sklearn raises). NaN scores are an error.
pub fn roc_auc<T: Copy + Into<f64>>(scores: &[T], positive: &[bool]) -> Result<Option<f64>> {
    same_length(scores.len(), positive.len(), "ROC AUC")?;
    let scores: Vec<f64> = scores.iter().map(|&s| s.into()).collect();
    if scores.iter().any(|s| s.is_nan()) {
        return Err(Error::Internal("ROC AUC: a score is NaN".into()));
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Ranks 1..=n; a run of equal scores shares the mean of its ranks.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end].iter().filter(|&&i| positive[i]).count();
        positive_rank_sum += mean_rank * positives as f64;
        start = end;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Ok(Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n)))
}

/// ROC AUC of each column and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnwiseAuc {
    /// One entry per column; `None` where the column's truth has one value only.
    pub per_column: Vec<Option<f64>>,
    /// Mean over the columns that have an AUC; `None` if none has.
    pub mean: Option<f64>,
    /// Columns left out of the mean (truth all positive or all negative), so a
    /// report can say "mean of 3 of 4 columns; skipped: multiple_diseases".
    pub skipped: Vec<usize>,
}

/// Mean column-wise ROC AUC, Plant Pathology's Kaggle metric:
/// `mean_c roc_auc(truth[:, c], scores[:, c])`. Columns whose truth holds one value
/// only (common in a small validation fold) have no AUC; they are skipped and
/// listed in `skipped` rather than failing the whole metric as sklearn's
/// `roc_auc_score(average='macro')` does. For single-label data pass
/// `one_hot(targets)` as truth.
pub fn mean_columnwise_roc_auc<T, R, L>(scores: &[R], truth: &[L]) -> Result<ColumnwiseAuc>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
    L: AsRef<[bool]>,
{
    let n_columns = check_multi_label(scores, truth, "column-wise ROC AUC")?;
    let mut per_column = Vec::with_capacity(n_columns);
    for c in 0..n_columns {
        let column: Vec<f64> = scores.iter().map(|r| r.as_ref()[c].into()).collect();
        let positive: Vec<bool> = truth.iter().map(|r| r.as_ref()[c]).collect();
        per_column.push(roc_auc(&column, &positive)?);
    }
    let defined: Vec<f64> = per_column.iter().flatten().copied().collect();
    let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
    let skipped = (0..n_columns)
        .filter(|&c| per_column[c].is_none())
        .collect();
    Ok(ColumnwiseAuc {
        per_column,
        mean,
        skipped,
    })
}

/// Class indices as one-hot rows of bools.
pub fn one_hot(targets: &[usize], n_classes: usize) -> Result<Vec<Vec<bool>>> {
    targets
        .iter()
        .map(|&t| {
            if t >= n_classes {
                return Err(Error::Internal(format!(
                    "one_hot: class {t} is outside 0..{n_classes}"
                )));
            }
            Ok((0..n_classes).map(|c| c == t).collect())
        })
        .collect()
}

/// What multi-label scores are: fastai's metrics take logits and apply a sigmoid
/// (`sigmoid=True`); say `Probabilities` when it has been applied already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreKind {
    Logits,
    Probabilities,
}

/// fastai's `accuracy_multi(inp, targ, thresh, sigmoid)`: the share of all
/// (sample, class) cells where `probability > threshold` (strictly) equals the truth.
pub fn accuracy_multi<T, R, L>(
    scores: &[R],
    truth: &[L],
    threshold: f64,
    kind: ScoreKind,
) -> Result<f64>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
    L: AsRef<[bool]>,
{
    let n_columns = check_multi_label(scores, truth, "accuracy_multi")?;
    let predicted = thresholded(scores, threshold, kind);
    let hits: usize = predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| p.iter().zip(t.as_ref()).filter(|(a, b)| a == b).count())
        .sum();
    Ok(hits as f64 / (scores.len() * n_columns) as f64)
}

/// How F-beta scores of a multi-label batch are averaged (sklearn's `average=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FBetaAverage {
    /// F-beta of each sample's label set, then the mean over samples. fastai's
    /// `FBetaMulti` default.
    #[default]
    Samples,
    /// F-beta of each class column, then the unweighted mean over classes.
    Macro,
}

/// fastai's `FBetaMulti(beta, thresh, sigmoid, average)` = sklearn's
/// `fbeta_score(truth, probability > threshold, beta, average)`. A sample (or
/// class) with no true and no predicted labels scores 0, as sklearn's default
/// `zero_division` (which fastai keeps).
pub fn fbeta_multi<T, R, L>(
    scores: &[R],
    truth: &[L],
    beta: f64,
    threshold: f64,
    kind: ScoreKind,
    average: FBetaAverage,
) -> Result<f64>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
    L: AsRef<[bool]>,
{
    let n_columns = check_multi_label(scores, truth, "fbeta_multi")?;
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(Error::Internal(format!(
            "fbeta_multi: beta {beta} must be > 0"
        )));
    }
    let predicted = thresholded(scores, threshold, kind);
    let truth: Vec<&[bool]> = truth.iter().map(|t| t.as_ref()).collect();
    // Count tp/fp/fn over the cells of one sample (Samples) or one class (Macro).
    let score_of = |cells: &mut dyn Iterator<Item = (bool, bool)>| {
        let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
        for (p, t) in cells {
            match (p, t) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
                (false, false) => {}
            }
        }
        f_beta(tp, fp, fn_, beta)
    };
    let groups: Vec<f64> = match average {
        FBetaAverage::Samples => (0..scores.len())
            .map(|i| score_of(&mut predicted[i].iter().copied().zip(truth[i].iter().copied())))
            .collect(),
        FBetaAverage::Macro => (0..n_columns)
            .map(|c| score_of(&mut (0..scores.len()).map(|i| (predicted[i][c], truth[i][c]))))
            .collect(),
    };
    Ok(groups.iter().sum::<f64>() / groups.len() as f64)
}

/// `(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)`, 0 when nothing is true or predicted.
fn f_beta(tp: f64, fp: f64, fn_: f64, beta: f64) -> f64 {
    let b2 = beta * beta;
    ratio((1.0 + b2) * tp, (1.0 + b2) * tp + b2 * fn_ + fp)
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

fn argmax<T: Copy + Into<f64>>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v.into().partial_cmp(&row[best].into()) == Some(Ordering::Greater) {
            best = i;
        }
    }
    best
}

fn thresholded<T, R>(scores: &[R], threshold: f64, kind: ScoreKind) -> Vec<Vec<bool>>
where
    T: Copy + Into<f64>,
    R: AsRef<[T]>,
{
    scores
        .iter()
        .map(|row| {
            row.as_ref()
                .iter()
                .map(|&s| {
                    let s: f64 = s.into();
                    let p = match kind {
                        ScoreKind::Logits => 1.0 / (1.0 + (-s).exp()),
                        ScoreKind::Probabilities => s,
                    };
                    p > threshold
                })
                .collect()
        })
        .collect()
}

fn same_length(a: usize, b: usize, what: &str) -> Result<()> {
    if a != b || a == 0 {
        return Err(Error::Internal(format!(
            "{what}: expected as many scores as targets, at least one, got {a} and {b}"
        )));
    }
    Ok(())
}

/// Scores and truth with the same number of rows (>= 1), all of one width (>= 1).
fn check_multi_label<T, R, L>(scores: &[R], truth: &[L], what: &str) -> Result<usize>
where
    R: AsRef<[T]>,
    L: AsRef<[bool]>,
{
    same_length(scores.len(), truth.len(), what)?;
    let width = scores[0].as_ref().len();
    let ragged = scores.iter().any(|r| r.as_ref().len() != width)
        || truth.iter().any(|r| r.as_ref().len() != width);
    if width == 0 || ragged {
        return Err(Error::Internal(format!(
            "{what}: every score and truth row needs the same number of columns (>= 1)"
        )));
    }
    Ok(width)
}

#[cfg(test)]
mod tests {
    //! Reference values from scikit-learn 1.9.1 via benches/reference/metrics.py;
    //! each test names the sklearn call.
    use super::*;

    const PROBS: [[f32; 3]; 8] = [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.3, 0.45, 0.25],
        [0.5, 0.4, 0.1],
        [0.2, 0.5, 0.3],
        [0.6, 0.3, 0.1],
        [0.1, 0.6, 0.3],
        [0.45, 0.1, 0.45],
    ];
    const TARGETS: [usize; 8] = [0, 1, 2, 1, 1, 0, 2, 0];

    // Multi-label logits and truth (4 samples, 3 labels).
    const LOGITS: [[f64; 3]; 4] = [
        [2.0, -1.0, 0.3],
        [-0.5, 0.2, -3.0],
        [1.0, 1.5, -0.1],
        [-2.0, -2.0, -2.0],
    ];
    const TRUTH: [[bool; 3]; 4] = [
        [true, false, false],
        [false, true, true],
        [true, true, false],
        [false, false, false],
    ];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_and_error_rate() {
        // The last row ties classes 0 and 2: the first wins, as torch.argmax.
        assert_eq!(predicted_classes(&PROBS), [0, 1, 1, 0, 1, 0, 1, 0]);
        // accuracy_score(y, pred)
        assert!(close(accuracy(&PROBS, &TARGETS).unwrap(), 0.625));
        assert!(close(error_rate(&PROBS, &TARGETS).unwrap(), 0.375));
        assert!(accuracy(&PROBS, &TARGETS[..3]).is_err());
        assert!(accuracy::<f32, [f32; 3]>(&[], &[]).is_err());
    }

    #[test]
    fn confusion_matrix_and_per_class_scores() {
        let predicted = predicted_classes(&PROBS);
        let cm = confusion_matrix(&predicted, &TARGETS, 3).unwrap();
        // confusion_matrix(y, pred, labels=[0, 1, 2])
        assert_eq!(cm, [[3, 0, 0], [1, 2, 0], [0, 2, 0]]);
        // precision_recall_fscore_support(y, pred, labels=[0,1,2], zero_division=0)
        let scores = per_class_scores(&cm);
        let want = [
            (0.75, 1.0, 0.8571428571428571, 3),
            (0.5, 0.6666666666666666, 0.5714285714285714, 3),
            (0.0, 0.0, 0.0, 2), // class 2 is never predicted
        ];
        for (got, (p, r, f, s)) in scores.iter().zip(want) {
            assert!(close(got.precision, p) && close(got.recall, r), "{got:?}");
            assert!(close(got.f1, f) && got.support == s, "{got:?}");
        }
        assert!(confusion_matrix(&[0, 3], &[0, 1], 3).is_err());
    }

    #[test]
    fn roc_auc_with_ties_matches_sklearn() {
        // roc_auc_score([0,0,1,1,1,0,1,0], [0.1,0.4,0.35,0.8,0.4,0.4,0.7,0.1])
        let scores = [0.1f32, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.1];
        let truth = [false, false, true, true, true, false, true, false];
        assert!(close(roc_auc(&scores, &truth).unwrap().unwrap(), 0.8125));
        // roc_auc_score([0,1,0,1], [0.5]*4): all tied = chance
        let all_tied = roc_auc(&[0.5f64; 4], &[false, true, false, true]).unwrap();
        assert!(close(all_tied.unwrap(), 0.5));
        // One class only: undefined, not an error.
        assert_eq!(roc_auc(&[0.1f64, 0.9], &[true, true]).unwrap(), None);
        assert!(roc_auc(&[f64::NAN, 0.9], &[true, false]).is_err());
    }

    #[test]
    fn mean_columnwise_roc_auc_skips_one_valued_columns() {
        let scores = [
            [0.8, 0.1, 0.05, 0.05],
            [0.1, 0.05, 0.7, 0.15],
            [0.05, 0.1, 0.5, 0.35],
            [0.2, 0.1, 0.3, 0.4],
            [0.3, 0.2, 0.3, 0.2],
            [0.3, 0.1, 0.3, 0.3],
        ];
        // Column 1 has no positive: skipped.
        let targets = [0, 2, 2, 3, 0, 2];
        let mut truth = one_hot(&targets, 4).unwrap();
        truth[2][3] = true; // a multi-label row
        let auc = mean_columnwise_roc_auc(&scores, &truth).unwrap();
        // [roc_auc_score(Y[:, c], S[:, c]) for c in (0, 2, 3)] and their mean
        let want = [Some(0.9375), None, Some(0.8888888888888888), Some(1.0)];
        for (got, want) in auc.per_column.iter().zip(want) {
            assert_eq!(got.is_some(), want.is_some());
            if let (Some(g), Some(w)) = (got, want) {
                assert!(close(*g, w), "{auc:?}");
            }
        }
        assert!(close(auc.mean.unwrap(), 0.9421296296296297), "{auc:?}");
        assert_eq!(auc.skipped, [1]);
    }

    #[test]
    fn accuracy_multi_takes_logits_or_probabilities() {
        // ((sigmoid(L) > 0.5) == T).mean(), as fastai accuracy_multi(sigmoid=True)
        let acc = accuracy_multi(&LOGITS, &TRUTH, 0.5, ScoreKind::Logits).unwrap();
        assert!(close(acc, 0.8333333333333334));
        // thresh=0.4 also counts sigmoid(-0.1) = 0.475: 9 of 12 cells.
        let acc = accuracy_multi(&LOGITS, &TRUTH, 0.4, ScoreKind::Logits).unwrap();
        assert!(close(acc, 0.75));
        let probs: Vec<Vec<f64>> = LOGITS
            .iter()
            .map(|r| r.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect())
            .collect();
        let acc = accuracy_multi(&probs, &TRUTH, 0.5, ScoreKind::Probabilities).unwrap();
        assert!(close(acc, 0.8333333333333334));
        assert!(accuracy_multi(&LOGITS, &TRUTH[..2], 0.5, ScoreKind::Logits).is_err());
    }

    #[test]
    fn fbeta_multi_matches_sklearn() {
        use FBetaAverage::*;
        let f = |beta, average| {
            fbeta_multi(&LOGITS, &TRUTH, beta, 0.5, ScoreKind::Logits, average).unwrap()
        };
        // fbeta_score(T, sigmoid(L) > 0.5, beta=b, average=...); the last sample has
        // no true and no predicted label and scores 0 (zero_division default).
        assert!(close(f(1.0, Samples), 0.5833333333333333));
        assert!(close(f(2.0, Samples), 0.5972222222222222));
        assert!(close(f(1.0, Macro), 0.6666666666666666));
        assert!(close(f(2.0, Macro), 0.6666666666666666));
        // A class with no true and no predicted label scores 0 under Macro:
        // fbeta_score(T2, T2, beta=1, average='macro') with column 2 empty = 2/3.
        let truth2 = [
            [true, false, false],
            [false, true, false],
            [true, true, false],
            [false, false, false],
        ];
        let perfect: Vec<Vec<f64>> = truth2
            .iter()
            .map(|r| r.iter().map(|&t| if t { 0.9 } else { 0.1 }).collect())
            .collect();
        let macro_ = fbeta_multi(&perfect, &truth2, 1.0, 0.5, ScoreKind::Probabilities, Macro);
        assert!(close(macro_.unwrap(), 0.6666666666666666));
        // ... and average='samples', beta=0.5 = 0.75
        let samples = fbeta_multi(
            &perfect,
            &truth2,
            0.5,
            0.5,
            ScoreKind::Probabilities,
            Samples,
        );
        assert!(close(samples.unwrap(), 0.75));
    }
}
