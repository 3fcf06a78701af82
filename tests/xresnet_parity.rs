//! fastai's xresnet18 (Mish, sa=True) with formula weights, eval mode: orchard's
//! logits against fastai's, from tests/reference/xresnet18_formula.json (made by
//! tests/reference/xresnet18_formula.py, which states the formulas). Checks the
//! whole structure at once: stem, ceil-mode average pooling on the identity
//! path, the 1x1 identity convs, Mish, SimpleSelfAttention with spectral norm,
//! and the head.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use orchard::config::{Activation, ModelConfig};
use orchard::models;
use orchard::rng::Rng;

#[test]
fn eval_logits_match_fastai() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("reference/xresnet18_formula.json")).unwrap();
    let config = ModelConfig {
        arch: "xresnet18".into(),
        activation: Activation::Mish,
        self_attention: true,
        ..ModelConfig::default()
    };
    let varmap = VarMap::new();
    let model = models::build(&config, 4, &varmap, &Device::Cpu, Rng::new(0)).unwrap();
    let entries: Vec<String> = serde_json::from_value(reference["entries"].clone()).unwrap();
    {
        let data = varmap.data().lock().unwrap();
        let mut set = 0;
        for (j, name) in entries.iter().enumerate() {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let var = data
                .get(name)
                .unwrap_or_else(|| panic!("orchard has no {name}"));
            let shape = var.dims().to_vec();
            let n: usize = shape.iter().product();
            let s = |i: usize| (0.37 * i as f64 + 1.3 * j as f64).sin();
            let values: Vec<f64> = (0..n)
                .map(|i| {
                    if name.ends_with("gamma") {
                        0.5
                    } else if name.ends_with("weight_u") || name.ends_with("weight_v") {
                        s(i)
                    } else if name.ends_with("running_var") {
                        1.0 + 0.5 * s(i).powi(2)
                    } else if name.ends_with("running_mean") || name.ends_with("bias") {
                        0.1 * s(i)
                    } else if shape.len() >= 2 {
                        s(i) / ((n / shape[0]) as f64).sqrt()
                    } else {
                        1.0 + 0.1 * s(i)
                    }
                })
                .collect();
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
            "every orchard variable is in fastai's state_dict"
        );
    }
    let n = 2 * 3 * 48 * 48;
    let x: Vec<f32> = (0..n).map(|i| (0.011 * i as f64).sin() as f32).collect();
    let x = Tensor::from_vec(x, (2, 3, 48, 48), &Device::Cpu).unwrap();
    let got: Vec<Vec<f32>> = model.forward_t(&x, false).unwrap().to_vec2().unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(reference["eval_logits"].clone()).unwrap();
    let err = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(g, w)| (*g as f64 - w).abs() / w.abs())
        .fold(0.0, f64::max);
    eprintln!("xresnet18 eval logits: max relative error {err:.3e}");
    assert!(err < 1e-4, "{got:?} vs {want:?} ({err:.3e})");
}
