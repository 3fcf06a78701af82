//! `orchard models` and choosing an architecture on the command line, through
//! the real binary. Reference counts are torchvision's and fastai's
//! (`sum(p.numel() for p in m.parameters())`, produced by
//! tests/reference/model_counts.py with torch 2.15, torchvision 0.29.2 and
//! fastai 2.8.12).

mod common;
use common::*;

/// The count column of `arch`'s row.
fn count_of(table: &str, arch: &str) -> usize {
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(arch))
        .unwrap_or_else(|| panic!("no row for {arch}:\n{table}"));
    row.split_whitespace()
        .nth(1)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap()
}

#[test]
fn counts_for_1000_classes_are_torchvisions_and_fastais() {
    let (code, out, err) = run(&["models"]);
    assert_eq!(code, 0, "{err}");
    for (arch, want) in [
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("xresnet18", 11_708_744),
        ("xresnet34", 21_816_904),
        ("xresnet50", 25_576_264),
        // timm 1.0.31's vit_tiny/small_patch16_224(num_classes=1000)
        ("vit_tiny", 5_717_416),
        ("vit_small", 22_050_664),
    ] {
        assert_eq!(count_of(&out, arch), want, "{arch}");
    }
}

#[test]
fn counts_for_4_classes_and_the_table() {
    let (code, out, err) = run(&["models", "--classes", "4"]);
    assert_eq!(code, 0, "{err}");
    for (arch, want) in [
        ("resnet18", 11_178_564),
        ("resnet34", 21_286_724),
        ("resnet50", 23_516_228),
        ("xresnet18", 11_197_796),
        ("xresnet34", 21_305_956),
        ("xresnet50", 23_535_460),
        ("vit_tiny", 5_525_188),
        ("vit_small", 21_667_204),
    ] {
        assert_eq!(count_of(&out, arch), want, "{arch}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn a_bad_class_count_is_refused() {
    let (code, _, err) = run(&["models", "--classes", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--classes 0") && err.contains("fix:"), "{err}");
}

#[test]
fn an_unknown_arch_is_refused_before_training() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let (code, _, err) = run(&[
        "train",
        "--headless",
        "--arch",
        "resnet99",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("model.arch") && err.contains("xresnet18") && err.contains("orchard models"),
        "{err}"
    );
    assert!(!run_dir.exists());
}

#[test]
fn toolbox_options_on_a_resnet_are_refused() {
    let (code, _, err) = run(&[
        "train",
        "--headless",
        "--arch",
        "resnet34",
        "--activation",
        "mish",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("model.activation") && err.contains("xresnet"),
        "{err}"
    );
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("run.toml");
    std::fs::write(
        &cfg,
        "[model]\narch = \"xresnet18\"\nactivation = \"gelu\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["train", "--headless", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("gelu") && err.contains("mish") && err.contains("run.toml"),
        "{err}"
    );
}
