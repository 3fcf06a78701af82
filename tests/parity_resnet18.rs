//! Parity with torchvision's ResNet-18 (4 classes), using
//! `../shared/reference/parity-resnet18.json`: every weight and the input are
//! given by formulas, and the file holds what PyTorch computed from them: eval
//! and train-mode logits, the cross-entropy of the train-mode logits and, per
//! parameter, the sum and sum of squares of its gradient.
//!
//! The reference lives beside the checkout (CI has it). On a fresh clone
//! without `../shared` this test says so and skips, unless `CI` is set, in
//! which case a missing file is a failure.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use orchard::config::ModelConfig;
use orchard::models::resnet::{ResNet, ResNetDepth};
use orchard::models::{self, Classifier};
use orchard::rng::Rng;
use orchard::train::loss::{Reduction, cross_entropy};
use serde_json::Value;
use std::path::Path;

/// Tolerances of the task: logits 1e-4 and gradient statistics 1e-3
/// (relative), the loss 1e-5.
const LOGITS_RTOL: f64 = 1e-4;
const LOSS_RTOL: f64 = 1e-5;
const GRAD_RTOL: f64 = 1e-3;

fn reference() -> Option<Value> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/parity-resnet18.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Some(serde_json::from_str::<Value>(&text).unwrap()["torchvision_resnet18"].clone())
        }
        Err(e) if std::env::var_os("CI").is_some() => panic!(
            "{}: {e}\nthe parity reference must be present in CI (../shared/reference beside the checkout)",
            path.display()
        ),
        Err(e) => {
            eprintln!(
                "SKIP: {} is absent ({e}): ../shared is not beside this checkout",
                path.display()
            );
            None
        }
    }
}

/// The weight formula: s = sin(0.37 i + 1.3 j) over flat index i of entry j,
/// shaped by the entry's kind.
fn formula_values(j: usize, shape: &[usize], kind: &str) -> Vec<f64> {
    let numel: usize = shape.iter().product();
    let s = |i: usize| (0.37 * i as f64 + 1.3 * j as f64).sin();
    (0..numel)
        .map(|i| match kind {
            "fan_in" => s(i) / ((numel / shape[0]) as f64).sqrt(),
            "one" => 1.0 + 0.1 * s(i),
            "small" => 0.1 * s(i),
            "var" => 1.0 + 0.5 * s(i).powi(2),
            "zero" => 0.0,
            other => panic!("unknown weight kind {other}"),
        })
        .collect()
}

/// torchvision's resnet18 built by orchard, every variable set by the formula.
fn formula_model(r: &Value) -> (Box<dyn Classifier>, VarMap) {
    let varmap = VarMap::new();
    let config = ModelConfig::default();
    assert_eq!(config.arch, "resnet18");
    let model = models::build(&config, 4, &varmap, &Device::Cpu, Rng::new(0)).unwrap();
    let entries = r["weights"]["entries"].as_array().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut set = 0;
    for e in entries {
        let name = e["name"].as_str().unwrap();
        if name.ends_with("num_batches_tracked") {
            // A step counter orchard does not keep (momentum is fixed at 0.1).
            continue;
        }
        let j = e["j"].as_u64().unwrap() as usize;
        let shape: Vec<usize> = serde_json::from_value(e["shape"].clone()).unwrap();
        let values = formula_values(j, &shape, e["kind"].as_str().unwrap());
        let var = data
            .get(name)
            .unwrap_or_else(|| panic!("orchard has no {name}"));
        let t = Tensor::from_vec(values, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        var.set(&t).unwrap();
        set += 1;
    }
    assert_eq!(
        set,
        data.len(),
        "every orchard variable is in the reference"
    );
    drop(data);
    (model, varmap)
}

fn formula_input(r: &Value) -> Tensor {
    let shape: Vec<usize> = serde_json::from_value(r["input"]["shape"].clone()).unwrap();
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n).map(|i| (0.011 * i as f64).sin() as f32).collect();
    Tensor::from_vec(x, shape, &Device::Cpu).unwrap()
}

/// max over entries of |got - want| / |want|.
fn max_rel(got: &Tensor, want: &Value) -> f64 {
    let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len());
    got.iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(g, w)| (*g as f64 - w).abs() / w.abs())
        .fold(0.0, f64::max)
}

#[test]
fn eval_logits_match_torchvision() {
    let Some(r) = reference() else { return };
    let (model, _) = formula_model(&r);
    let logits = model.forward_t(&formula_input(&r), false).unwrap();
    let err = max_rel(&logits, &r["eval_logits"]);
    eprintln!("eval logits: max relative error {err:.3e}");
    assert!(err < LOGITS_RTOL, "eval logits off by {err:.3e} (relative)");
}

/// The train-mode check, in float64 on both sides.
///
/// The shared file's train-mode numbers are PyTorch's float32 ones, and they
/// are rounding noise: with batch 2 at 64 px, layer4's training-mode BatchNorm
/// normalises each channel over 8 values whose spread float32 has mostly
/// rounded away. tests/reference/parity_resnet18_f64.py recomputes them in
/// float64 from the same formulas and measures PyTorch's own float32 run
/// against that: logits up to 54% off, the loss 7.8%, gradient sums of
/// squares up to 99.8% (`torch_f32_vs_f64` in the JSON). Perturbing the
/// weights by float32 rounding alone moves the float64 logits by ~4%, so the
/// problem's condition number is ~1e6: no float32 implementation can meet
/// 1e-4 on it, and a tolerance loose enough for float32 would test nothing.
/// In float64 (rounding ~1e-16, amplified to ~1e-10) the task's tolerances
/// are meaningful, so orchard's ResNet-18 runs in float64 here and is held to
/// them: logits 1e-4, loss 1e-5, gradient sums and sums of squares 1e-3.
#[test]
fn train_mode_logits_loss_and_gradients_match_torchvision_in_f64() {
    let r: Value =
        serde_json::from_str(include_str!("reference/parity_resnet18_f64.json")).unwrap();
    let varmap = VarMap::new();
    let model = ResNet::with_dtype(
        ResNetDepth::R18,
        4,
        &varmap,
        &Device::Cpu,
        DType::F64,
        Rng::new(0),
    )
    .unwrap();
    {
        let data = varmap.data().lock().unwrap();
        let mut set = 0;
        for e in r["entries"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let j = e["j"].as_u64().unwrap() as usize;
            let shape: Vec<usize> = serde_json::from_value(e["shape"].clone()).unwrap();
            let values = formula_values(j, &shape, e["kind"].as_str().unwrap());
            let t = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
            data[name].set(&t).unwrap();
            set += 1;
        }
        assert_eq!(
            set,
            data.len(),
            "every orchard variable is in the reference"
        );
    }
    let n = 2 * 3 * 64 * 64;
    let x: Vec<f64> = (0..n).map(|i| (0.011 * i as f64).sin()).collect();
    let x = Tensor::from_vec(x, (2, 3, 64, 64), &Device::Cpu).unwrap();
    let logits = model.forward_t(&x, true).unwrap();
    let got: Vec<Vec<f64>> = logits.to_vec2().unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(r["train_logits"].clone()).unwrap();
    let err = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max);
    eprintln!("train logits (f64): max relative error {err:.3e}");
    assert!(err < LOGITS_RTOL, "train-mode logits off by {err:.3e}");

    let targets: Vec<u32> = serde_json::from_value(r["targets"].clone()).unwrap();
    let targets = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
    let loss = cross_entropy(&logits, &targets, Reduction::Mean).unwrap();
    let got: f64 = loss.to_dtype(DType::F64).unwrap().to_scalar().unwrap();
    let want = r["train_ce_loss"].as_f64().unwrap();
    let err = (got - want).abs() / want.abs();
    eprintln!("loss (f64): {got} vs {want}, relative error {err:.3e}");
    assert!(err < LOSS_RTOL, "loss {got} vs {want}");

    let grads = loss.backward().unwrap();
    let reference = r["grads"].as_object().unwrap();
    let mut worst = (0.0f64, String::new());
    for p in model.trainable() {
        let want = &reference[&p.name];
        let g: Vec<f64> = grads
            .get(&p.var)
            .unwrap_or_else(|| panic!("no gradient for {}", p.name))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let sum: f64 = g.iter().sum();
        let sumsq: f64 = g.iter().map(|v| v * v).sum();
        let (want_sum, want_sumsq) = (
            want["sum"].as_f64().unwrap(),
            want["sumsq"].as_f64().unwrap(),
        );
        // fc.bias's gradient sums to 0 over the classes (softmax): compare a
        // cancelled sum on the scale of its entries, sqrt(n * sumsq).
        let scale = (g.len() as f64 * want_sumsq).sqrt();
        let sum_err = (sum - want_sum).abs() / want_sum.abs().max(1e-6 * scale);
        let sumsq_err = (sumsq - want_sumsq).abs() / want_sumsq;
        for (what, err) in [("sum", sum_err), ("sumsq", sumsq_err)] {
            if err > worst.0 {
                worst = (err, format!("{} {what}", p.name));
            }
            assert!(
                err < GRAD_RTOL,
                "{} {what}: relative error {err:.3e}",
                p.name
            );
        }
    }
    eprintln!(
        "gradients (f64): worst relative error {:.3e} ({})",
        worst.0, worst.1
    );
}
