//! Pretrained weights from a real PyTorch `.pth` (tests/fixtures/tiny_state_dict.pth,
//! written by torch.save from tests/fixtures/make_tiny_pth.py), and the
//! command line's handling of `--pretrained`.

mod common;

use candle_core::{DType, Device, Var};
use candle_nn::VarMap;
use orchard::models::weights::{LoadMode, load_file, read_weights};
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_state_dict.pth")
}

fn model(fc_out: usize) -> VarMap {
    let vm = VarMap::new();
    {
        let mut data = vm.data().lock().unwrap();
        let z = |s: &[usize]| Var::zeros(s, DType::F32, &Device::Cpu).unwrap();
        for (name, shape) in [
            ("conv.weight", vec![2, 1, 3, 3]),
            ("bn.weight", vec![2]),
            ("bn.bias", vec![2]),
            ("bn.running_mean", vec![2]),
            ("bn.running_var", vec![2]),
            ("fc.weight", vec![fc_out, 2]),
            ("fc.bias", vec![fc_out]),
        ] {
            data.insert(name.into(), z(&shape));
        }
    }
    vm
}

fn values(vm: &VarMap, name: &str) -> Vec<f32> {
    vm.data().lock().unwrap()[name]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_torch_saved_state_dict_loads_by_name() {
    let tensors = read_weights(&fixture()).unwrap();
    assert_eq!(tensors.len(), 8, "{:?}", tensors.keys());
    let vm = model(3);
    let report = load_file(&vm, &fixture(), LoadMode::Strict).unwrap();
    assert_eq!(report.loaded, 7);
    let conv: Vec<f32> = (0..18).map(|i| i as f32 / 10.0).collect();
    assert_eq!(values(&vm, "conv.weight"), conv);
    assert_eq!(
        values(&vm, "fc.weight"),
        [-0.0, -1.0, -2.0, -3.0, -4.0, -5.0]
    );
    assert_eq!(values(&vm, "fc.bias"), [0.5, 1.5, 2.5]);
    assert_eq!(values(&vm, "bn.running_var"), [1.0, 1.0]);
}

#[test]
fn a_head_of_another_size_fails_strict_and_is_skipped_in_partial_mode() {
    let vm = model(5);
    let err = load_file(&vm, &fixture(), LoadMode::Strict).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("tiny_state_dict.pth"), "{msg}");
    assert!(
        msg.contains("fc.weight: file [3, 2], model [5, 2]"),
        "{msg}"
    );
    assert!(msg.contains("fix:"), "{msg}");
    let report = load_file(&vm, &fixture(), LoadMode::SkipHead(&["fc."])).unwrap();
    assert_eq!(report.skipped, ["fc.bias", "fc.weight"]);
    assert_eq!(values(&vm, "fc.bias"), [0.0; 5]);
    assert_eq!(values(&vm, "conv.weight")[1], 0.1);
}

#[test]
fn train_refuses_bad_pretrained_settings_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[model]\narch = \"efficientnet_lite0\"\n").unwrap();
    let run_dir = dir.path().join("run");
    let (code, _, err) = common::run(&[
        "train",
        config.to_str().unwrap(),
        "--headless",
        "--pretrained",
        missing.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--fold",
        "0",
        "--epochs",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.safetensors"), "{err}");
    // A file that is not a resnet18 (the default arch): its mismatch is
    // listed, refused before any training.
    let (code, _, err) = common::run(&[
        "train",
        "--headless",
        "--pretrained",
        fixture().to_str().unwrap(),
        "--run-dir",
        dir.path().join("run2").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tiny_state_dict.pth"), "{err}");
    assert!(err.contains("missing in the file"), "{err}");
    // fine-tune without pretrained weights is an impossible combination.
    std::fs::write(&config, "[training]\nrecipe = \"fine-tune\"\n").unwrap();
    let (code, _, err) = common::run(&[
        "train",
        config.to_str().unwrap(),
        "--headless",
        "--run-dir",
        dir.path().join("run3").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("training.recipe"), "{err}");
}
