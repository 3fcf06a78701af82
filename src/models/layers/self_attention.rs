//! fastai's `SimpleSelfAttention(n_in, ks=1, sym=False)` (layers.py), the
//! imagewoof leaderboard's self-attention: with x flattened to (B, C, N),
//!   out = gamma * (x xᵀ) (W x) + x
//! where W is a 1x1 Conv1d (C -> C, no bias) under PyTorch's `spectral_norm`
//! and gamma starts at 0, so the layer starts as the identity.
//!
//! Spectral norm divides W by its largest singular value sigma, estimated as
//! PyTorch's `torch.nn.utils.spectral_norm` does: buffers u and v hold the
//! power-iteration vectors; in training mode each forward first runs one
//! iteration (v = norm(Wᵀu), u = norm(Wv), no gradient) and stores them; then
//! sigma = uᵀWv with u and v constant, so the gradient flows through W in both
//! the numerator and sigma. In eval mode u and v are used as stored.
//! Names are PyTorch's: `gamma`, `conv.weight_orig`, `conv.weight_u`, `conv.weight_v`.

use crate::error::Result;
use crate::train::params::ParamBuilder;
use candle_core::{D, Tensor, Var};

/// PyTorch's `spectral_norm` eps (guards the normalisation of u and v).
const SPECTRAL_EPS: f64 = 1e-12;

pub struct SimpleSelfAttention {
    /// (1,): the residual scale, 0 at first.
    gamma: Tensor,
    /// (C, C, 1): the Conv1d weight before spectral normalisation.
    weight_orig: Tensor,
    /// (C,): the power iteration's left and right singular vector estimates.
    u: Var,
    v: Var,
}

impl SimpleSelfAttention {
    /// A fresh layer as fastai builds it: W from `kaiming_normal_` (fan_in),
    /// u and v normalised standard-normal draws, gamma 0.
    pub fn new(pb: &mut ParamBuilder, name: &str, channels: usize) -> Result<Self> {
        let weight_orig = pb.kaiming_normal_fan_in(
            &format!("{name}.conv.weight_orig"),
            &[channels, channels, 1],
        )?;
        let unit = |v: Vec<f32>| {
            let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            v.iter()
                .map(|x| (*x as f64 / norm.max(SPECTRAL_EPS)) as f32)
                .collect()
        };
        let u = unit(pb.normals(channels));
        let v = unit(pb.normals(channels));
        let u = pb.buffer(&format!("{name}.conv.weight_u"), u, &[channels])?;
        let v = pb.buffer(&format!("{name}.conv.weight_v"), v, &[channels])?;
        let gamma = pb.decayed(&format!("{name}.gamma"), vec![0.0], &[1])?;
        Ok(SimpleSelfAttention {
            gamma,
            weight_orig,
            u,
            v,
        })
    }

    /// NCHW in, NCHW out. `train` runs the power iteration (and updates u, v).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let flat = x.reshape((b, c, h * w))?;
        let weight = self.spectral_weight(train)?;
        let conv_x = weight.broadcast_left(b)?.contiguous()?.matmul(&flat)?;
        let x_xt = flat.matmul(&flat.t()?.contiguous()?)?;
        let attended = x_xt.matmul(&conv_x)?;
        let out = (attended.broadcast_mul(&self.gamma)? + &flat)?;
        out.reshape((b, c, h, w))
    }

    /// W / sigma, as a (C, C) matrix.
    fn spectral_weight(&self, train: bool) -> candle_core::Result<Tensor> {
        let c = self.weight_orig.dim(0)?;
        let w = self.weight_orig.reshape((c, c))?;
        if train {
            let fixed = w.detach();
            let v = unit(&fixed.t()?.matmul(&self.u.as_tensor().unsqueeze(1)?)?)?;
            let u = unit(&fixed.matmul(&v)?)?;
            self.v.set(&v.squeeze(1)?)?;
            self.u.set(&u.squeeze(1)?)?;
        }
        // Copies, so that a later update of the buffers cannot reach this graph.
        let u = self.u.as_tensor().copy()?.detach().unsqueeze(0)?;
        let v = self.v.as_tensor().copy()?.detach().unsqueeze(1)?;
        let sigma = u.matmul(&w.matmul(&v)?)?;
        w.broadcast_div(&sigma)
    }
}

/// A column vector divided by its L2 norm (at least eps), as F.normalize.
fn unit(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus2)?
        .sqrt()?
        .maximum(SPECTRAL_EPS)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{check_gradients, random_tensor};
    use crate::rng::Rng;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// A layer with given f64 tensors, as the gradient checks need.
    fn layer(gamma: &Tensor, w: &Tensor, u: &Tensor, v: &Tensor) -> SimpleSelfAttention {
        SimpleSelfAttention {
            gamma: gamma.clone(),
            weight_orig: w.clone(),
            u: Var::from_tensor(u).unwrap(),
            v: Var::from_tensor(v).unwrap(),
        }
    }

    fn vec(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The layer written out with plain loops, from fastai's forward.
    fn naive(x: &[f64], gamma: f64, wn: &[f64], b: usize, c: usize, n: usize) -> Vec<f64> {
        let at = |bi: usize, ci: usize, k: usize| x[(bi * c + ci) * n + k];
        let mut out = vec![0.0; b * c * n];
        for bi in 0..b {
            for i in 0..c {
                for k in 0..n {
                    // sum_j (x xᵀ)[i][j] * (W x)[j][k]
                    let mut s = 0.0;
                    for j in 0..c {
                        let xxt: f64 = (0..n).map(|m| at(bi, i, m) * at(bi, j, m)).sum();
                        let wx: f64 = (0..c).map(|l| wn[j * c + l] * at(bi, l, k)).sum();
                        s += xxt * wx;
                    }
                    out[(bi * c + i) * n + k] = gamma * s + at(bi, i, k);
                }
            }
        }
        out
    }

    /// u, v after one power iteration and sigma = uᵀWv, with plain loops.
    fn power_iteration(w: &[f64], u: &[f64], c: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let normed = |x: Vec<f64>| {
            let n = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            x.into_iter().map(|v| v / n).collect::<Vec<_>>()
        };
        let v = normed(
            (0..c)
                .map(|j| (0..c).map(|i| w[i * c + j] * u[i]).sum())
                .collect(),
        );
        let u = normed(
            (0..c)
                .map(|i| (0..c).map(|j| w[i * c + j] * v[j]).sum())
                .collect(),
        );
        let sigma = (0..c)
            .map(|i| u[i] * (0..c).map(|j| w[i * c + j] * v[j]).sum::<f64>())
            .sum();
        (u, v, sigma)
    }

    #[test]
    fn forward_follows_fastai_in_train_and_eval_mode() {
        let (b, c, h, w) = (2, 3, 2, 3);
        let x = random_tensor((b, c, h, w), DType::F64, 31);
        let wt = random_tensor((c, c, 1), DType::F64, 32);
        let u0 = random_tensor((c,), DType::F64, 33);
        let v0 = random_tensor((c,), DType::F64, 34);
        let gamma = Tensor::new(&[0.7f64], &Device::Cpu).unwrap();
        let sa = layer(&gamma, &wt, &u0, &v0);

        let (u1, v1, sigma) = power_iteration(&vec(&wt), &vec(&u0), c);
        let wn: Vec<f64> = vec(&wt).iter().map(|v| v / sigma).collect();
        let got = vec(&sa.forward_t(&x, true).unwrap());
        let want = naive(&vec(&x), 0.7, &wn, b, c, h * w);
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-9 * (1.0 + e.abs()), "train: {g} vs {e}");
        }
        // The buffers hold the new estimates.
        for (g, e) in vec(sa.u.as_tensor()).iter().zip(&u1) {
            assert!((g - e).abs() < 1e-12);
        }
        for (g, e) in vec(sa.v.as_tensor()).iter().zip(&v1) {
            assert!((g - e).abs() < 1e-12);
        }

        let stored = vec(sa.u.as_tensor());
        // Eval: sigma = u1ᵀ W v1 from the stored vectors, no update.
        let sigma_eval: f64 = (0..c)
            .map(|i| u1[i] * (0..c).map(|j| vec(&wt)[i * c + j] * v1[j]).sum::<f64>())
            .sum();
        let wn: Vec<f64> = vec(&wt).iter().map(|v| v / sigma_eval).collect();
        let got = vec(&sa.forward_t(&x, false).unwrap());
        let want = naive(&vec(&x), 0.7, &wn, b, c, h * w);
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-9 * (1.0 + e.abs()), "eval: {g} vs {e}");
        }
        assert_eq!(vec(sa.u.as_tensor()), stored, "eval mode keeps u");
    }

    #[test]
    fn gradients_match_finite_differences_in_f64() {
        let (b, c, h, w) = (2, 3, 2, 2);
        let x = random_tensor((b, c, h, w), DType::F64, 41);
        let wt = random_tensor((c, c, 1), DType::F64, 42);
        let u = random_tensor((c,), DType::F64, 43);
        let v = random_tensor((c,), DType::F64, 44);
        // gamma != 0, or W would get no gradient at all.
        let gamma = Tensor::new(&[0.3f64], &Device::Cpu).unwrap();
        // Eval mode: u and v stay fixed between the probes (train mode would
        // move them at every call, which finite differences cannot follow).
        check_gradients(&[x, gamma, wt], 45, |t| {
            layer(&t[1], &t[2], &u, &v).forward_t(&t[0], false)
        });
    }

    #[test]
    fn starts_as_the_identity_with_fastai_names() {
        let varmap = VarMap::new();
        let mut pb = ParamBuilder::new(&varmap, &Device::Cpu, Rng::new(1));
        let sa = SimpleSelfAttention::new(&mut pb, "4.1.convpath.2", 8).unwrap();
        let trainable: Vec<String> = pb.into_trainable().into_iter().map(|p| p.name).collect();
        assert_eq!(
            trainable,
            ["4.1.convpath.2.conv.weight_orig", "4.1.convpath.2.gamma"]
        );
        let data = varmap.data().lock().unwrap();
        assert_eq!(data["4.1.convpath.2.conv.weight_u"].dims(), [8]);
        assert_eq!(data["4.1.convpath.2.conv.weight_v"].dims(), [8]);
        drop(data);
        let x = random_tensor((2, 8, 3, 3), DType::F32, 5);
        let y = sa.forward_t(&x, true).unwrap();
        assert_eq!(
            vec(&y.to_dtype(DType::F64).unwrap()),
            vec(&x.to_dtype(DType::F64).unwrap())
        );
        let norm: f32 =
            sa.u.as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
