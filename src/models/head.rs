//! fastai's `create_head(nf, n_out)` with its defaults (concat pool, first
//! BN, ps = 0.5, lin_ftrs [512]), as `vision_learner` puts it on a pretrained
//! body:
//!
//! ```text
//! 0 AdaptiveConcatPool2d  cat([max, avg], 1)        -> 2*nf
//! 1 Flatten
//! 2 BatchNorm1d(2*nf)     weight 1, bias 1e-3 (fastai's BatchNorm init)
//! 3 Dropout(0.25)
//! 4 Linear(2*nf, 512, bias=False)   kaiming_normal_
//! 5 ReLU
//! 6 BatchNorm1d(512)
//! 7 Dropout(0.5)
//! 8 Linear(512, n_out, bias=False)  kaiming_normal_
//! ```
//!
//! The Linear layers have no bias because a BatchNorm precedes each (fastai's
//! `LinBnDrop(bn=True)`). Names follow fastai's Sequential: `head.2.weight`,
//! `head.4.weight`, ..., `head.8.weight`.
//!
//! A body that pools itself (a timm ViT: `TimmBody.needs_pool` is false) gets
//! `create_head(pool=False)`: no pool and flatten, nf features as they are, so
//! the layers shift by two (`head.0` BN, `head.2` Linear, `head.4`, `head.6`).

use crate::error::Result;
use crate::kernels::{BatchNorm2d, adaptive_avg_pool2d, adaptive_max_pool2d};
use crate::models::dropout::Dropout;
use crate::train::params::ParamBuilder;
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::Linear;

/// The prefix of every head parameter.
pub const HEAD_PREFIX: &str = "head.";
/// fastai's `BatchNorm` init of the bias.
const BN_BIAS_INIT: f32 = 1e-3;
/// PyTorch's BatchNorm1d eps.
const BN_EPS: f64 = 1e-5;
/// Hidden width (fastai's `lin_ftrs=None` -> [512]).
const HIDDEN: usize = 512;
/// fastai's `ps=0.5`: the last dropout gets it, the first half of it.
const PS: (f64, f64) = (0.25, 0.5);

pub struct FastaiHead {
    /// Concat-pool (N, nf, H, W) features first; false: take (N, nf) as they are.
    pool: bool,
    bn1: BatchNorm2d,
    drop1: Dropout,
    lin1: Linear,
    bn2: BatchNorm2d,
    drop2: Dropout,
    lin2: Linear,
}

impl FastaiHead {
    /// A head for `nf` body features and `n_out` classes; `seed` seeds its dropouts.
    pub fn new(pb: &mut ParamBuilder, nf: usize, n_out: usize, seed: u64) -> Result<Self> {
        Self::with_pool(pb, nf, n_out, seed, true)
    }

    /// `create_head(nf, n_out, pool=False)`, for a body that returns (N, nf).
    pub fn without_pool(pb: &mut ParamBuilder, nf: usize, n_out: usize, seed: u64) -> Result<Self> {
        Self::with_pool(pb, nf, n_out, seed, false)
    }

    fn with_pool(
        pb: &mut ParamBuilder,
        nf: usize,
        n_out: usize,
        seed: u64,
        pool: bool,
    ) -> Result<Self> {
        // Without the pool and flatten layers the Sequential's indices start at 0.
        let (first, features) = if pool { (2, 2 * nf) } else { (0, nf) };
        let name = |i: usize| format!("head.{}", first + i);
        let bn1 = pb.batch_norm_with(&name(0), features, BN_EPS, BN_BIAS_INIT)?;
        let lin1 = pb.linear_kaiming_no_bias(&name(2), features, HIDDEN)?;
        let bn2 = pb.batch_norm_with(&name(4), HIDDEN, BN_EPS, BN_BIAS_INIT)?;
        let lin2 = pb.linear_kaiming_no_bias(&name(6), HIDDEN, n_out)?;
        Ok(FastaiHead {
            pool,
            bn1,
            drop1: Dropout::new(PS.0, seed),
            lin1,
            bn2,
            drop2: Dropout::new(PS.1, seed ^ 0x5EED),
            lin2,
        })
    }

    pub fn begin_step(&self, step: u64) {
        self.drop1.begin_step(step);
        self.drop2.begin_step(step);
    }

    /// Body features (N, nf, H, W) (or (N, nf) without the pool) -> logits (N, n_out).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        let pooled = if self.pool {
            Tensor::cat(
                &[
                    adaptive_max_pool2d(x, (1, 1))?,
                    adaptive_avg_pool2d(x, (1, 1))?,
                ],
                1,
            )?
        } else {
            x.reshape((n, (), 1, 1))?
        };
        // BatchNorm1d on (N, C) is BatchNorm2d on (N, C, 1, 1).
        let x = self.bn1.forward_t(&pooled, train)?.reshape((n, ()))?;
        let x = self
            .lin1
            .forward(&self.drop1.forward_t(&x, train)?)?
            .relu()?;
        let c = x.dim(1)?;
        let x = self
            .bn2
            .forward_t(&x.reshape((n, c, 1, 1))?, train)?
            .reshape((n, c))?;
        self.lin2.forward(&self.drop2.forward_t(&x, train)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn fastai_names_shapes_init_and_forward() {
        let vm = VarMap::new();
        let mut pb = ParamBuilder::new(&vm, &Device::Cpu, Rng::new(1));
        let head = FastaiHead::new(&mut pb, 320, 4, 9).unwrap();
        let trainable = pb.into_trainable();
        let names: Vec<&str> = trainable.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "head.2.weight",
                "head.2.bias",
                "head.4.weight",
                "head.6.weight",
                "head.6.bias",
                "head.8.weight"
            ]
        );
        let get = |n: &str| -> Vec<f32> {
            vm.data().lock().unwrap()[n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert!(get("head.2.bias").iter().all(|v| *v == 1e-3));
        assert!(get("head.6.weight").iter().all(|v| *v == 1.0));
        // kaiming_normal_ fan_in: std sqrt(2 / 640).
        let w = get("head.4.weight");
        assert_eq!(w.len(), 512 * 640);
        let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        assert!((std / (2.0 / 640f64).sqrt() - 1.0).abs() < 0.01, "{std}");
        assert_eq!(vm.data().lock().unwrap()["head.8.weight"].dims(), [4, 512]);

        // Eval mode with fresh running stats (mean 0, var 1): the head is
        // lin2(bn2(relu(lin1(bn1(concat(max, avg)))))) with BN(x) = x / sqrt(1 + eps) + 1e-3.
        let x = Tensor::arange(0f32, (2 * 320 * 2 * 2) as f32, &Device::Cpu)
            .unwrap()
            .reshape((2, 320, 2, 2))
            .unwrap()
            .affine(1e-3, -0.5)
            .unwrap();
        let y = head.forward_t(&x, false).unwrap();
        assert_eq!(y.dims(), [2, 4]);
        let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let bn = |v: f64| v / (1.0 + BN_EPS).sqrt() + 1e-3;
        let w1 = get("head.4.weight");
        let w2 = get("head.8.weight");
        for img in 0..2 {
            let plane = |c: usize| &xs[(img * 320 + c) * 4..][..4];
            let mut feats: Vec<f64> = (0..320)
                .map(|c| plane(c).iter().fold(f32::MIN, |a, b| a.max(*b)) as f64)
                .collect();
            feats.extend((0..320).map(|c| plane(c).iter().map(|v| *v as f64).sum::<f64>() / 4.0));
            let hidden: Vec<f64> = (0..512)
                .map(|j| {
                    let s: f64 = (0..640)
                        .map(|i| w1[j * 640 + i] as f64 * bn(feats[i]))
                        .sum();
                    bn(s.max(0.0))
                })
                .collect();
            let got: Vec<f32> = y.get(img).unwrap().to_vec1().unwrap();
            for k in 0..4 {
                let want: f64 = (0..512).map(|j| w2[k * 512 + j] as f64 * hidden[j]).sum();
                assert!(
                    (got[k] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()),
                    "{got:?} {want}"
                );
            }
        }
        let t = head
            .forward_t(&x.to_dtype(DType::F32).unwrap(), true)
            .unwrap();
        assert_eq!(t.dims(), [2, 4]);
    }
}
