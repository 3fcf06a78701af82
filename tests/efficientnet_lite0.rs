//! EfficientNet-Lite0 with the converted ImageNet weights of `../shared/weights`
//! against the shared references: the logits of the formula input
//! (`../shared/reference/effnet-lite0-formula-input.json`) and the classes of
//! three demo photos named in the weights' README.
//!
//! Uses `../shared` (beside the checkout). A fresh clone without `../shared`
//! skips with a SKIP line; a `../shared` that lacks these files fails, naming
//! the missing file.

use candle_core::{D, Device, Tensor};
use candle_nn::VarMap;
use orchard::models::efficientnet::EfficientNetLite0;
use orchard::models::weights::{LoadMode, load_file};
use orchard::models::{Classifier, HeadKind};
use orchard::rng::Rng;
use std::path::PathBuf;

fn shared() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("SKIP: {} is absent (fresh clone)", dir.display());
        None
    }
}

fn need(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: this test needs the shared weights/references (see ../shared/README.md)",
        path.display()
    );
    path
}

fn imagenet_model(shared: &std::path::Path) -> EfficientNetLite0 {
    let varmap = VarMap::new();
    let model =
        EfficientNetLite0::new(1000, HeadKind::Own, &varmap, &Device::Cpu, Rng::new(0)).unwrap();
    let weights = need(shared.join("weights/efficientnet_lite0.safetensors"));
    let report = load_file(&varmap, &weights, LoadMode::Strict).unwrap();
    assert!(report.skipped.is_empty());
    model
}

fn top5(logits: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]));
    idx.truncate(5);
    idx
}

#[test]
fn formula_input_gives_the_reference_logits() {
    let Some(shared) = shared() else { return };
    let model = imagenet_model(&shared);
    let path = need(shared.join("reference/effnet-lite0-formula-input.json"));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let r = &reference["formula_input"];
    let n = 3 * 224 * 224;
    let x: Vec<f32> = (0..n).map(|i| (0.011 * i as f64).sin() as f32).collect();
    let x = Tensor::from_vec(x, (1, 3, 224, 224), &Device::Cpu).unwrap();
    let logits: Vec<f32> = model
        .forward_t(&x, false)
        .unwrap()
        .get(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    for (i, want) in r["logits_first10"].as_array().unwrap().iter().enumerate() {
        let want = want.as_f64().unwrap();
        assert!(
            (logits[i] as f64 - want).abs() < 1e-3,
            "logit {i}: {} vs {want}",
            logits[i]
        );
    }
    let want_top5: Vec<usize> = r["top5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(top5(&logits), want_top5);
    let sum: f64 = logits.iter().map(|v| *v as f64).sum();
    let want_sum = r["logit_sum"].as_f64().unwrap();
    assert!((sum - want_sum).abs() < 1e-2, "sum {sum} vs {want_sum}");
}

/// RGB squished to 224x224 with a bicubic filter (PIL's BICUBIC is Catmull-Rom;
/// the 175 px elephant is between "African elephant" and "tusker", and
/// bilinear upscaling tips it to tusker, in PyTorch as here), then
/// (x - 127) / 128 as the TFLite model expects.
fn photo(path: PathBuf) -> Tensor {
    let img = image::open(need(path)).unwrap().to_rgb8();
    let img = image::imageops::resize(&img, 224, 224, image::imageops::FilterType::CatmullRom);
    let mut chw = vec![0f32; 3 * 224 * 224];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            chw[c * 224 * 224 + (y * 224 + x) as usize] = (p[c] as f32 - 127.0) / 128.0;
        }
    }
    Tensor::from_vec(chw, (1, 3, 224, 224), &Device::Cpu).unwrap()
}

#[test]
fn demo_photos_are_recognised() {
    let Some(shared) = shared() else { return };
    let model = imagenet_model(&shared);
    let images = shared.join("datasets/tuxpaint6/images");
    // The weights README: elephant -> 386 (African elephant), strawberry -> 949,
    // king penguin -> 145.
    for (file, class) in [
        ("tux_0042_elephant.jpg", 386u32),
        ("tux_0136_strawberry.jpg", 949),
        ("tux_0089_penguin.jpg", 145),
    ] {
        let logits = model.forward_t(&photo(images.join(file)), false).unwrap();
        let got = logits.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap()[0];
        assert_eq!(got, class, "{file}");
    }
}
