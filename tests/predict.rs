//! `orchard predict`: the fold models of a real run as an ensemble, written as
//! a Kaggle submission.

mod common;
use common::*;
use std::path::Path;

fn read_rows(path: &Path) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let probs = rec.iter().skip(1).map(|v| v.parse().unwrap()).collect();
            (rec[0].to_string(), probs)
        })
        .collect();
    (header, rows)
}

#[test]
fn the_ensemble_is_the_mean_of_the_fold_models() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let (code, out, err) = run(&[
        "train",
        "--data",
        demo().to_str().unwrap(),
        "--headless",
        "--limit",
        "40",
        "--k",
        "2",
        "--epochs",
        "1",
        "--size",
        "32",
        "--bs",
        "8",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");

    // A test folder of a few demo images under new names.
    let test = t.path().join("test");
    std::fs::create_dir(&test).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(demo().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for (i, p) in names.iter().take(5).enumerate() {
        let ext = p.extension().unwrap().to_str().unwrap();
        std::fs::copy(p, test.join(format!("Test_{i}.{ext}"))).unwrap();
    }

    let predict = |out: &Path, fold: Option<&str>| {
        let mut args = vec![
            "predict",
            run_dir.to_str().unwrap(),
            "--data",
            test.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        match fold {
            Some("tta") => args.push("--tta"),
            Some(f) => args.extend(["--fold", f]),
            None => {}
        }
        let (code, o, e) = run(&args);
        assert_eq!(code, 0, "{o}\n{e}");
        read_rows(out)
    };
    let (header, all) = predict(&t.path().join("all.csv"), None);
    let (_, f0) = predict(&t.path().join("f0.csv"), Some("0"));
    let (_, f1) = predict(&t.path().join("f1.csv"), Some("1"));
    // Without augmentations in the run, every TTA pass is the plain one, and
    // the blend (1 - beta) * mean + beta * plain gives the plain predictions back.
    let (_, tta) = predict(&t.path().join("tta.csv"), Some("tta"));
    for (a, b) in all.iter().zip(&tta) {
        for (x, y) in a.1.iter().zip(&b.1) {
            assert!((x - y).abs() <= 2e-6, "{a:?} vs {b:?}");
        }
    }

    let classes = std::fs::read_to_string(demo().join("train.csv")).unwrap();
    let csv_header = classes.lines().next().unwrap();
    assert_eq!(
        header.join(","),
        csv_header,
        "Kaggle layout: image_id,<classes>"
    );
    assert_eq!(all.len(), 5);
    for ((a, b), c) in all.iter().zip(&f0).zip(&f1) {
        assert!(a.0.starts_with("Test_") && a.0 == b.0 && a.0 == c.0);
        assert!((a.1.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{a:?}");
        for ((m, x), y) in a.1.iter().zip(&b.1).zip(&c.1) {
            // Six decimals in the files: the mean of rounded values is within 1e-6.
            assert!((m - (x + y) / 2.0).abs() <= 1.01e-6, "{m} vs {x}, {y}");
        }
    }
    // Never overwrites; a run without checkpoints or a missing fold is refused.
    let (code, _, err) = run(&[
        "predict",
        run_dir.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
        "--out",
        t.path().join("all.csv").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run(&[
        "predict",
        run_dir.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
        "--fold",
        "7",
        "--out",
        t.path().join("x.csv").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no fold checkpoint of fold 7"), "{err}");
    assert!(!t.path().join("x.csv").exists());
}

#[test]
fn tta_with_augmentations_changes_the_predictions_and_keeps_them_probabilities() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("aug.toml");
    std::fs::write(
        &config,
        "[augmentation]\nbatch_augment = true\nmax_rotate = 30.0\nmax_lighting = 0.4\n\n[tta]\nn = 3\n",
    )
    .unwrap();
    let run_dir = t.path().join("run");
    let (code, out, err) = run(&[
        "train",
        config.to_str().unwrap(),
        "--data",
        demo().to_str().unwrap(),
        "--headless",
        "--limit",
        "40",
        "--k",
        "2",
        "--fold",
        "0",
        "--epochs",
        "1",
        "--size",
        "32",
        "--bs",
        "8",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let test = demo().join("images");
    let go = |name: &str, tta: bool| {
        let out = t.path().join(name);
        let mut args = vec![
            "predict",
            run_dir.to_str().unwrap(),
            "--data",
            test.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        if tta {
            args.push("--tta");
        }
        let (code, o, e) = run(&args);
        assert_eq!(code, 0, "{o}\n{e}");
        read_rows(&out).1
    };
    let plain = go("plain.csv", false);
    let tta = go("tta.csv", true);
    assert_eq!(plain.len(), tta.len());
    let mut largest = 0f64;
    for (a, b) in plain.iter().zip(&tta) {
        assert!((b.1.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{b:?}");
        for (x, y) in a.1.iter().zip(&b.1) {
            largest = largest.max((x - y).abs());
        }
    }
    assert!(largest > 1e-4, "TTA changed nothing: {largest}");
}
