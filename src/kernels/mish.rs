//! Mish, x * tanh(softplus(x)) (Misra 2019; PyTorch's `nn.Mish`), as one
//! multi-threaded pass each way.
//!
//! A composite of candle ops would keep four full-size intermediates per
//! activation alive for the backward, and `log(1 + exp(x))` overflows for large
//! x; this op keeps only its input. Values are computed in f64 and rounded, so
//! the f32 result is the correctly rounded formula.

use crate::kernels::float::{Float, dispatch2};
use candle_core::{CustomOp1, CustomOp2, Layout, Shape, Tensor};

/// x * tanh(softplus(x)). Differentiable.
pub fn mish(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() {
        // softplus(x) = log(1 + exp(x)), written to stay finite for large x.
        let softplus = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        return x * softplus.tanh()?;
    }
    x.contiguous()?.apply_op1(Mish)
}

/// softplus as PyTorch computes it (threshold 20: x itself above, where
/// log1p(exp(x)) == x in f32 anyway).
fn softplus(x: f64) -> f64 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

fn mish_value(x: f64) -> f64 {
    x * softplus(x).tanh()
}

/// d/dx x*tanh(sp(x)) = tanh(sp) + x * (1 - tanh(sp)^2) * sigmoid(x), as sp' = sigmoid.
fn mish_slope(x: f64) -> f64 {
    let t = softplus(x).tanh();
    let sigmoid = 1.0 / (1.0 + (-x).exp());
    t + x * (1.0 - t * t) * sigmoid
}

/// `relu::map2` with the formula in f64 (Mish needs exp/tanh at full precision).
fn map2<T: Float>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64 + Sync) -> Vec<T> {
    super::relu::map2(a, b, |a, b| T::from_f64(f(a.to_f64(), b.to_f64())))
}

struct Mish;

impl CustomOp1 for Mish {
    fn name(&self) -> &'static str {
        "orchard-mish"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        // The storage is passed twice only to reuse the dtype dispatch.
        let out = dispatch2!("mish", (s, l), (s, l), |x, _same| map2(x, x, |x, _| {
            mish_value(x)
        }));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = x
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &MishBackward)?;
        Ok(Some(g))
    }
}

/// (x, upstream gradient) -> gradient with respect to x.
struct MishBackward;

impl CustomOp2 for MishBackward {
    fn name(&self) -> &'static str {
        "orchard-mish-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &Layout,
        s2: &candle_core::CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "mish backward: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let out = dispatch2!("mish backward", (s1, l1), (s2, l2), |x, g| map2(
            x,
            g,
            |x, g| g * mish_slope(x)
        ));
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{check_gradients, random_tensor};
    use candle_core::{DType, Device};

    #[test]
    fn values_follow_the_formula() {
        // Reference values from the definition, written out independently:
        // mish(x) = x * tanh(ln(1 + e^x)).
        let xs = [-30.0f64, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5, 30.0];
        let x = Tensor::new(&xs, &Device::Cpu).unwrap();
        let y: Vec<f64> = mish(&x).unwrap().to_vec1().unwrap();
        for (&x, &y) in xs.iter().zip(&y) {
            let want = x * (1.0 + x.exp()).ln().tanh();
            assert!((y - want).abs() < 1e-12, "mish({x}) = {y}, want {want}");
        }
        // Known points: mish(0) = 0, mish(1) = tanh(ln(1+e)) = 0.8650983882673103.
        assert_eq!(y[4], 0.0);
        assert!((y[6] - 0.865_098_388_267_310_3).abs() < 1e-12);
        // Large inputs neither overflow nor lose the identity tail.
        assert_eq!(y[8], 30.0);
        let big = Tensor::new(&[100f32, -100.0], &Device::Cpu).unwrap();
        let v: Vec<f32> = mish(&big).unwrap().to_vec1().unwrap();
        assert_eq!(v[0], 100.0);
        assert!(v[1].abs() < 1e-30);
    }

    #[test]
    fn gradient_matches_finite_differences_in_f64() {
        let x = (random_tensor((2, 3, 4, 5), DType::F64, 11) * 3.0).unwrap();
        check_gradients(std::slice::from_ref(&x), 12, |t| mish(&t[0]));
    }

    #[test]
    fn f32_matches_f64() {
        let x = random_tensor((1000,), DType::F64, 13);
        let a: Vec<f64> = mish(&x).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = mish(&x.to_dtype(DType::F32).unwrap())
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - *b as f64).abs() < 1e-6);
        }
    }
}
