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
        if let Some(f) = fold {
            args.extend(["--fold", f]);
        }
        let (code, o, e) = run(&args);
        assert_eq!(code, 0, "{o}\n{e}");
        read_rows(out)
    };
    let (header, all) = predict(&t.path().join("all.csv"), None);
    let (_, f0) = predict(&t.path().join("f0.csv"), Some("0"));
    let (_, f1) = predict(&t.path().join("f1.csv"), Some("1"));

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
