//! `orchard show-batch`, `orchard augment-preview`, and a headless run with
//! every augmentation and MixUp on, through the real binary.

mod common;
use common::*;

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn show_batch_writes_a_labelled_grid_and_never_overwrites() {
    let t = tempfile::tempdir().unwrap();
    let demo = demo();
    let out = t.path().join("batch.png");
    let (code, _, err) = run(&[
        "show-batch",
        s(&demo),
        "--bs",
        "9",
        "--size",
        "48",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let img = image::open(&out).unwrap().to_rgb8();
    // 3 x 3 cells of 48 px + 4 px gaps; 48 + 13 px label band + 4 px gap per row.
    assert_eq!(img.dimensions(), (3 * 52 + 4, 3 * 65 + 4));
    // Something dark (label text) in the first label band.
    let band_dark =
        (4..52).any(|x| (4 + 48 + 3..4 + 48 + 10).any(|y| img.get_pixel(x, y).0[0] < 60));
    assert!(band_dark, "no label drawn");

    let before = std::fs::read(&out).unwrap();
    let (code, _, err) = run(&["show-batch", s(&demo), "--out", s(&out)]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn show_batch_is_the_same_for_the_same_seed() {
    let t = tempfile::tempdir().unwrap();
    let demo = demo();
    let cfg = t.path().join("aug.toml");
    std::fs::write(
        &cfg,
        "[augmentation]\nbatch_augment = true\nresize = \"random-resized-crop\"\nitem_flip = true\n[mixing]\nmethod = \"mixup\"\n",
    )
    .unwrap();
    let picture = |name: &str, seed: &str| {
        let out = t.path().join(name);
        let (code, _, err) = run(&[
            "show-batch",
            s(&demo),
            "--config",
            s(&cfg),
            "--bs",
            "4",
            "--size",
            "32",
            "--seed",
            seed,
            "--out",
            s(&out),
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::read(out).unwrap()
    };
    assert_eq!(picture("a.png", "3"), picture("b.png", "3"));
    assert_ne!(picture("c.png", "3"), picture("d.png", "4"));
}

#[test]
fn augment_preview_shows_n_versions_of_one_image() {
    let t = tempfile::tempdir().unwrap();
    let demo = demo();
    let out = t.path().join("aug.png");
    let (code, _, err) = run(&[
        "augment-preview",
        s(&demo),
        "--image",
        "tux_0000_chimp",
        "--n",
        "4",
        "--size",
        "40",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (2 * 44 + 4, 2 * (40 + 13 + 4) + 4));
    // Four different draws: the first two cells differ.
    let cell = |cx: u32| {
        (0..40)
            .flat_map(|y| (0..40).map(move |x| (x, y)))
            .map(|(x, y)| img.get_pixel(4 + cx + x, 4 + y).0)
            .collect::<Vec<_>>()
    };
    assert_ne!(cell(0), cell(44));

    let (code, _, err) = run(&[
        "augment-preview",
        s(&demo),
        "--image",
        "no_such",
        "--out",
        s(&t.path().join("x.png")),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no_such") && err.contains("tux_0000_chimp"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "augment-preview",
        s(&demo),
        "--image",
        "tux_0000_chimp",
        "--n",
        "0",
        "--out",
        s(&t.path().join("y.png")),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn headless_run_with_augmentation_and_mixing_records_its_normalisation() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("run.toml");
    std::fs::write(
        &cfg,
        "[augmentation]\nbatch_augment = true\nresize = \"crop\"\nnormalize = \"dataset\"\nitem_flip = true\nmin_scale = 0.5\n[mixing]\nmethod = \"cutmix\"\n",
    )
    .unwrap();
    let run_dir = t.path().join("run");
    let (code, out, err) = run(&[
        "train",
        s(&cfg),
        "--data",
        s(&demo()),
        "--headless",
        "--limit",
        "60",
        "--k",
        "3",
        "--fold",
        "0",
        "--epochs",
        "1",
        "--size",
        "32",
        "--bs",
        "8",
        "--run-dir",
        s(&run_dir),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("run completed"), "{out}");
    let norm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("normalization.json")).unwrap())
            .unwrap();
    let fold0 = &norm["folds"]["0"];
    assert_eq!(fold0["source"], "dataset");
    let mean = fold0["mean"].as_array().unwrap();
    // The demo set is cut-outs on white: bright means, not ImageNet's.
    assert!(mean.iter().all(|m| m.as_f64().unwrap() > 0.5), "{norm}");
}
