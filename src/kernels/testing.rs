//! Test helpers shared by the kernels' tests: seeded random tensors, the
//! largest difference between two tensors, and a finite-difference gradient check.

use crate::rng::Rng;
use candle_core::{DType, Device, Shape, Tensor, Var};

/// Standard-normal values from a seeded `Rng`, as a CPU tensor of `dtype`.
pub fn random_tensor<S: Into<Shape>>(shape: S, dtype: DType, seed: u64) -> Tensor {
    let shape = shape.into();
    let mut rng = Rng::new(seed);
    let v: Vec<f64> = (0..shape.elem_count()).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// max |a - b| over all elements (shapes must match).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Checks the gradients of `f` with respect to each f64 input against central
/// finite differences of the objective sum(f(inputs) * R), R a fixed random
/// tensor. At most ~30 elements per input are probed, spread over the tensor,
/// which keeps the check fast while still touching borders and interiors.
pub fn check_gradients(
    inputs: &[Tensor],
    seed: u64,
    f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&tensors).unwrap();
    let r = random_tensor(out.dims(), DType::F64, seed);
    let objective = |ts: &[Tensor]| -> f64 {
        (f(ts).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let h = 1e-6;
    for (which, var) in vars.iter().enumerate() {
        let analytic: Vec<f64> = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for input {which}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = inputs[which].flatten_all().unwrap().to_vec1().unwrap();
        let step = (base.len() / 30).max(1);
        for j in (0..base.len()).step_by(step).chain([base.len() - 1]) {
            let probe = |delta: f64| {
                let mut v = base.clone();
                v[j] += delta;
                let mut ts: Vec<Tensor> = inputs.to_vec();
                ts[which] = Tensor::from_vec(v, inputs[which].shape(), &Device::Cpu).unwrap();
                objective(&ts)
            };
            let numeric = (probe(h) - probe(-h)) / (2.0 * h);
            let tol = 1e-5 * (1.0 + numeric.abs());
            assert!(
                (numeric - analytic[j]).abs() < tol,
                "input {which} element {j}: numeric {numeric} vs analytic {}",
                analytic[j]
            );
        }
    }
}
