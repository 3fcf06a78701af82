//! timm's ViT against orchard's, from tests/reference/vit_tiny_formula.json
//! (made by tests/reference/vit_tiny_formula.py, which states the formulas):
//! PyTorch's bicubic resampling on a fixed tensor (antialias off and on), and
//! vit_tiny's eval logits at 64 px and 32x48 px, where the 14x14 position
//! embeddings are resampled to 4x4 and 2x3 grids as timm does.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use orchard::config::ModelConfig;
use orchard::models::{self, layers::resample::resample_grid};
use orchard::rng::Rng;

fn reference() -> serde_json::Value {
    serde_json::from_str(include_str!("reference/vit_tiny_formula.json")).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn bicubic_resampling_matches_torch_interpolate() {
    let r = reference();
    let input = &r["interpolate_input"];
    let shape: Vec<usize> = serde_json::from_value(input["shape"].clone()).unwrap();
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let values = floats(&input["values"]);
    // (C, H, W) -> rows of pixels (H*W, C).
    let grid = Tensor::from_vec(values, (c, h * w), &Device::Cpu)
        .unwrap()
        .t()
        .unwrap()
        .contiguous()
        .unwrap();
    let cases = r["interpolate"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let size: Vec<usize> = serde_json::from_value(case["size"].clone()).unwrap();
        let aa = case["antialias"].as_bool().unwrap();
        let got = resample_grid(&grid, (h, w), (size[0], size[1]), aa).unwrap();
        let got: Vec<f64> = got.t().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = floats(&case["out"]);
        assert_eq!(got.len(), want.len());
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max);
        // The weight matrices are built in f64 and stored in f32 (resample_grid
        // casts them), so agreement is at f32 precision.
        assert!(err < 1e-6, "{size:?} antialias={aa}: max error {err}");
    }
}

/// Entry j, flat index i: the reference script's formula.
fn formula(name: &str, shape: &[usize], j: usize) -> Vec<f64> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|i| {
            let fi = i as f64;
            let s = (0.37 * fi + 1.3 * j as f64 + 0.01 * (fi % 97.0) * (fi % 89.0)).sin();
            if name == "cls_token" || name == "pos_embed" {
                0.5 * s
            } else if name.ends_with("bias") {
                0.1 * s
            } else if shape.len() >= 2 {
                s / ((n / shape[0]) as f64).sqrt()
            } else {
                1.0 + 0.1 * s
            }
        })
        .collect()
}

#[test]
fn eval_logits_match_timm_with_resampled_position_embeddings() {
    let r = reference();
    let config = ModelConfig {
        arch: "vit_tiny".into(),
        ..ModelConfig::default()
    };
    let varmap = VarMap::new();
    let model = models::build(&config, 5, &varmap, &Device::Cpu, Rng::new(0)).unwrap();
    let entries: Vec<String> = serde_json::from_value(r["entries"].clone()).unwrap();
    {
        let data = varmap.data().lock().unwrap();
        assert_eq!(
            entries.len(),
            data.len(),
            "timm's state_dict and orchard's variables"
        );
        for (j, name) in entries.iter().enumerate() {
            let var = data
                .get(name)
                .unwrap_or_else(|| panic!("orchard has no {name}"));
            let shape = var.dims().to_vec();
            let t = Tensor::from_vec(formula(name, &shape, j), shape, &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            var.set(&t).unwrap();
        }
    }
    for (k, input) in r["inputs"].as_array().unwrap().iter().enumerate() {
        let shape: Vec<usize> = serde_json::from_value(input["shape"].clone()).unwrap();
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|i| (0.011 * i as f64 + k as f64).sin() as f32)
            .collect();
        let x = Tensor::from_vec(x, shape.as_slice(), &Device::Cpu).unwrap();
        let got: Vec<Vec<f32>> = model.forward_t(&x, false).unwrap().to_vec2().unwrap();
        let want: Vec<Vec<f64>> = serde_json::from_value(input["logits"].clone()).unwrap();
        let scale = want.iter().flatten().fold(0.0f64, |m, w| m.max(w.abs()));
        let err = got
            .iter()
            .flatten()
            .zip(want.iter().flatten())
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max)
            / scale;
        // torch's own float32 run is within `f32_vs_f64` (~5e-7) of the float64
        // reference; orchard's float32 is held to 1e-5 of the largest logit.
        println!(
            "{shape:?}: orchard vs timm (f64) {err:.2e}, torch f32 vs f64 {}",
            input["f32_vs_f64"]
        );
        assert!(err < 1e-5, "{shape:?}: relative error {err:.3e}");
    }
}
