//! ReLU and the residual "add then ReLU" as single multi-threaded passes.
//!
//! candle's ReLU forward and backward are chains of elementwise ops on its own
//! spinning thread pool; ResNet runs ReLU on every block's full-size
//! activations, so one fused rayon pass each way matters. The backward needs
//! only the output (ReLU passes the gradient where the output is positive),
//! which candle hands to `bwd`, so nothing extra is stored.

use crate::kernels::float::{Float, dispatch2};
use candle_core::{CustomOp1, CustomOp2, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 15;

/// max(x, 0) (NaN stays NaN, as in PyTorch). Differentiable.
pub fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

/// max(a + b, 0): a residual connection followed by ReLU. Differentiable in both.
pub fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if a.shape() != b.shape() {
        bail!("add_relu: shapes {:?} and {:?} differ", a.dims(), b.dims());
    }
    if !a.device().is_cpu() {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// The gradient `grad` where `out` (a ReLU's output) is positive, else 0.
pub(crate) fn relu_mask(out: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    out.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &ReluMask)
}

fn clamp<T: Float>(v: T) -> T {
    // `v < 0` is false for NaN, so NaN passes through.
    if v < T::ZERO { T::ZERO } else { v }
}

/// `f` of each pair of elements, in parallel chunks (the element-wise kernels share it).
pub(crate) fn map2<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        });
    out
}

fn relu_of<T: Float>(x: &[T]) -> Vec<T> {
    map2(x, x, |v, _| clamp(v))
}

fn add_relu_of<T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    map2(a, b, |a, b| clamp(a + b))
}

fn mask_of<T: Float>(y: &[T], g: &[T]) -> Vec<T> {
    map2(y, g, |y, g| if y > T::ZERO { g } else { T::ZERO })
}

fn same_shape(a: &Layout, b: &Layout, op: &str) -> candle_core::Result<()> {
    if a.shape() != b.shape() {
        bail!("{op}: shapes {:?} and {:?} differ", a.dims(), b.dims());
    }
    Ok(())
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "orchard-relu"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        // The storage is passed twice only to reuse the dtype dispatch.
        let out = dispatch2!("relu", (s, l), (s, l), |x, _same| relu_of(x));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(relu_mask(res, grad)?))
    }
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "orchard-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &Layout,
        s2: &candle_core::CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        same_shape(l1, l2, "add_relu")?;
        let out = dispatch2!("add_relu", (s1, l1), (s2, l2), |a, b| add_relu_of(a, b));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = relu_mask(res, grad)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

struct ReluMask;

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "orchard-relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &Layout,
        s2: &candle_core::CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        same_shape(l1, l2, "relu backward")?;
        let out = dispatch2!("relu backward", (s1, l1), (s2, l2), |y, g| mask_of(y, g));
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{check_gradients, max_abs_diff, random_tensor};
    use candle_core::{DType, Device, Var};

    #[test]
    fn matches_candle_in_f32() {
        let a = Var::from_tensor(&random_tensor((2, 3, 5, 7), DType::F32, 1)).unwrap();
        let b = Var::from_tensor(&random_tensor((2, 3, 5, 7), DType::F32, 2)).unwrap();
        let r = random_tensor((2, 3, 5, 7), DType::F32, 3);
        let pairs = [
            (relu(&a).unwrap(), a.relu().unwrap()),
            (
                add_relu(&a, &b).unwrap(),
                (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap(),
            ),
        ];
        for (ours, stock) in pairs {
            assert!(max_abs_diff(&ours, &stock) < 1e-7);
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (stock * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&a, &b] {
                match (g1.get(v), g2.get(v)) {
                    (Some(x), Some(y)) => assert!(max_abs_diff(x, y) < 1e-7),
                    (x, y) => assert_eq!(x.is_some(), y.is_some()),
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_in_f64() {
        // Normal draws are almost surely further than the step from 0.
        let a = random_tensor((1, 2, 3, 4), DType::F64, 4);
        let b = random_tensor((1, 2, 3, 4), DType::F64, 5);
        check_gradients(std::slice::from_ref(&a), 6, |t| relu(&t[0]));
        check_gradients(&[a, b], 7, |t| add_relu(&t[0], &t[1]));
    }

    #[test]
    fn nan_passes_and_shapes_must_match() {
        let x = Tensor::new(&[f32::NAN, -1.0, 2.0], &Device::Cpu).unwrap();
        let y: Vec<f32> = relu(&x).unwrap().to_vec1().unwrap();
        assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 2.0);
        let z = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        assert!(add_relu(&x, &z).is_err());
    }
}
