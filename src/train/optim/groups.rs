//! Parameter groups with their own learning rates, as fastai's `lr=slice(a, b)`
//! (`Optimizer.set_hyper`): a slice with a start spreads the groups' lrs
//! geometrically from a to b (`even_mults`); `slice(None, b)` gives b/10 to
//! every group but the last; a single lr applies to all groups.

use crate::error::{Error, Result};
use crate::train::params::TrainParam;

/// fastai's `even_mults(start, stop, n)`: `n` values from `start` to `stop`,
/// each `(stop/start)^(1/(n-1))` times the one before. One group gets `stop`.
pub fn even_mults(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![stop; n];
    }
    let step = (stop / start).powf(1.0 / (n - 1) as f64);
    (0..n).map(|i| start * step.powi(i as i32)).collect()
}

/// A learning rate for parameter groups.
#[derive(Debug, Clone, PartialEq)]
pub enum Lr {
    /// The same lr for every group (fastai: a float).
    Single(f64),
    /// fastai's `slice(start, stop)`; `start` None (or 0, as fastai's `if v.start`)
    /// means `slice(stop)`.
    Slice { start: Option<f64>, stop: f64 },
    /// One lr per group, first group first (fastai: a list).
    PerGroup(Vec<f64>),
}

impl Lr {
    /// The peak lr of each of `n` groups (feed to `Optimizer::with_groups`; the
    /// schedule is built on the last one).
    pub fn per_group(&self, n: usize) -> Result<Vec<f64>> {
        if n == 0 {
            return Err(Error::Internal(
                "learning rates for 0 parameter groups".into(),
            ));
        }
        let lrs = match self {
            Lr::Single(lr) => vec![*lr; n],
            Lr::Slice {
                start: Some(start),
                stop,
            } if *start != 0.0 => even_mults(*start, *stop, n),
            Lr::Slice { stop, .. } => {
                let mut lrs = vec![stop / 10.0; n - 1];
                lrs.push(*stop);
                lrs
            }
            Lr::PerGroup(lrs) if lrs.len() == n => lrs.clone(),
            // fastai repeats a list of one for every group.
            Lr::PerGroup(lrs) if lrs.len() == 1 => vec![lrs[0]; n],
            Lr::PerGroup(lrs) => {
                return Err(Error::input(format!(
                    "{} learning rates given for {n} parameter groups",
                    lrs.len()
                )));
            }
        };
        match lrs.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            Some(lr) => Err(Error::input(format!(
                "learning rate {lr} in {self:?} is not a positive number"
            ))),
            None => Ok(lrs),
        }
    }
}

/// Splits parameters into `n_groups` groups (fastai's splitter), keeping their
/// order within each group; `group_of` says which group a parameter goes to,
/// e.g. `|p| usize::from(p.name.starts_with("fc."))` for body and head.
pub fn split_params(
    params: Vec<TrainParam>,
    n_groups: usize,
    group_of: impl Fn(&TrainParam) -> usize,
) -> Result<Vec<Vec<TrainParam>>> {
    let mut groups = vec![Vec::new(); n_groups];
    for p in params {
        let g = group_of(&p);
        let Some(group) = groups.get_mut(g) else {
            return Err(Error::Internal(format!(
                "parameter {} assigned to group {g} of {n_groups}",
                p.name
            )));
        };
        group.push(p);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn even_mults_is_geometric_from_start_to_stop() {
        // fine_tune's slice(1e-5, 1e-3) over 3 groups: 1e-5, 1e-4, 1e-3.
        assert_close(&even_mults(1e-5, 1e-3, 3), &[1e-5, 1e-4, 1e-3], 1e-18);
        // 4 groups: ratio 100^(1/3) = 4.641588833612779.
        let r = 4.641588833612779;
        assert_close(
            &even_mults(1e-5, 1e-3, 4),
            &[1e-5, 1e-5 * r, 1e-5 * r * r, 1e-3],
            1e-17,
        );
        assert_eq!(even_mults(1e-5, 1e-3, 1), [1e-3]);
    }

    #[test]
    fn lr_forms_per_group() {
        let slice = Lr::Slice {
            start: Some(1e-4),
            stop: 1e-2,
        };
        assert_close(&slice.per_group(3).unwrap(), &[1e-4, 1e-3, 1e-2], 1e-17);
        let open = Lr::Slice {
            start: None,
            stop: 1e-2,
        };
        assert_eq!(open.per_group(3).unwrap(), [1e-3, 1e-3, 1e-2]);
        let zero = Lr::Slice {
            start: Some(0.0),
            stop: 1e-2,
        };
        assert_eq!(zero.per_group(2).unwrap(), [1e-3, 1e-2]);
        assert_eq!(Lr::Single(3e-3).per_group(2).unwrap(), [3e-3, 3e-3]);
        assert_eq!(Lr::PerGroup(vec![1.0]).per_group(2).unwrap(), [1.0, 1.0]);
        assert!(Lr::PerGroup(vec![1.0, 2.0]).per_group(3).is_err());
        assert!(Lr::Single(-1.0).per_group(2).is_err());
        assert!(Lr::Single(1.0).per_group(0).is_err());
    }

    #[test]
    fn split_keeps_order_within_groups() {
        let names = ["conv1.weight", "fc.weight", "bn1.bias", "fc.bias"];
        let params: Vec<_> = names.iter().map(|n| param(n, &[0.0], true)).collect();
        let groups = split_params(params.clone(), 2, |p| {
            usize::from(p.name.starts_with("fc."))
        })
        .unwrap();
        let names_of = |g: &Vec<TrainParam>| g.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names_of(&groups[0]), ["conv1.weight", "bn1.bias"]);
        assert_eq!(names_of(&groups[1]), ["fc.weight", "fc.bias"]);
        assert!(split_params(params, 2, |_| 2).is_err());
    }
}
