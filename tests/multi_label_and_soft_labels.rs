//! The real binary on multi-label data, and soft labelling from a finished
//! run's out-of-fold predictions.

mod common;
use common::*;
use std::path::Path;

/// 3 classes, 24 images; every third image also carries the next class.
fn multi_label_dataset(dir: &Path) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv = String::from("image_id,red,green,blue\n");
    for n in 0..24usize {
        let c = n % 3;
        let mut labels = [0u8; 3];
        labels[c] = 1;
        if n % 3 == 0 {
            labels[(c + 1) % 3] = 1;
        }
        let mut rgb = [20u8, 20, 20];
        for (k, &on) in labels.iter().enumerate() {
            if on == 1 {
                rgb[k] = 200 + (n as u8);
            }
        }
        let id = format!("img{n:02}");
        write_jpeg(&images.join(format!("{id}.jpg")), rgb);
        csv.push_str(&format!("{id},{},{},{}\n", labels[0], labels[1], labels[2]));
    }
    std::fs::write(dir.join("train.csv"), csv).unwrap();
}

fn small_run(data: &Path, run_dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--headless",
        "--k",
        "3",
        "--epochs",
        "1",
        "--size",
        "32",
        "--bs",
        "4",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn multi_label_data_trains_with_sigmoid_outputs_and_predicts() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    multi_label_dataset(&data);
    let run_dir = t.path().join("run");
    let (code, out, err) = small_run(&data, &run_dir, &["--fold", "0"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("run completed"), "{out}");
    // Each epoch reports the F-beta (F1 by default) beside the accuracy.
    let f: f64 = out
        .split("f_beta ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no f_beta in {out}"));
    assert!((0.0..=1.0).contains(&f), "{out}");
    // The run says which task it trained.
    let cfg = orchard::config::RunConfig::load(&run_dir.join("config.toml")).unwrap();
    assert_eq!(cfg.data.task, orchard::config::TaskChoice::MultiLabel);
    // oof.csv: per-class sigmoid probabilities (they need not sum to 1), the
    // label column lists every label of the image.
    let oof = std::fs::read_to_string(run_dir.join("oof.csv")).unwrap();
    let rows: Vec<&str> = oof.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "{oof}");
    assert!(
        rows.iter()
            .any(|r| r.split(',').nth(2).unwrap().contains(' '))
    );
    for r in &rows {
        let p: Vec<f64> = r.split(',').skip(3).map(|v| v.parse().unwrap()).collect();
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{r}");
    }
    // accuracy is fastai's accuracy_multi: a share of (image, class) cells.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    let acc: f64 = row[4].parse().unwrap();
    assert!(
        (0.0..=1.0).contains(&acc) && (acc * 24.0).fract().abs() < 1e-6,
        "{metrics}"
    );

    // predict writes sigmoid probabilities too.
    let sub = t.path().join("sub.csv");
    let (code, o, e) = run(&[
        "predict",
        run_dir.to_str().unwrap(),
        "--data",
        data.join("images").to_str().unwrap(),
        "--out",
        sub.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{o}{e}");
    let sub = std::fs::read_to_string(&sub).unwrap();
    assert!(sub.starts_with("image_id,red,green,blue\n"), "{sub}");
    let sums: Vec<f64> = sub
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .skip(1)
                .map(|v| v.parse::<f64>().unwrap())
                .sum()
        })
        .collect();
    assert_eq!(sums.len(), 24);
    assert!(sums.iter().any(|s| (s - 1.0).abs() > 1e-3), "{sums:?}");

    // The ratio rule is single-label only, and says so before anything starts.
    let refused = t.path().join("refused");
    let cfg = t.path().join("plc.toml");
    std::fs::write(
        &cfg,
        "[label_correction]\nenabled = true\nmethod = \"ratio\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "train",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--headless",
        "--run-dir",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("multi-label") && err.contains("threshold"),
        "{err}"
    );
    assert!(!refused.exists());
}

#[test]
fn multi_label_label_correction_flips_classes_and_exports_label_sets() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    multi_label_dataset(&data);
    let run_dir = t.path().join("run");
    // No warm-up and theta 0: every class the model predicts against its
    // label is flipped, so corrections surely happen in a short run.
    let cfg = t.path().join("plc.toml");
    std::fs::write(
        &cfg,
        "[label_correction]\nenabled = true\nwarmup = 0.0\ntheta_start = 0.0\ntheta_end = 0.0\nschedule = \"constant\"\n",
    )
    .unwrap();
    let (code, out, err) = small_run(&data, &run_dir, &[cfg.to_str().unwrap(), "--fold", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    let log = std::fs::read_to_string(run_dir.join("corrections.csv")).unwrap();
    let rows: Vec<&str> = log.lines().skip(1).collect();
    assert!(!rows.is_empty(), "no corrections at theta 0:\n{out}{err}");
    // Label sets in the multi-label CSV's notation, one flipped class per row.
    let class_set = |field: &str| -> Vec<String> {
        field
            .split(' ')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let mut last: std::collections::HashMap<String, Vec<String>> = Default::default();
    for row in &rows {
        let f: Vec<&str> = row.split(',').collect();
        let (old, new) = (class_set(f[4]), class_set(f[5]));
        let differ = old.iter().filter(|c| !new.contains(c)).count()
            + new.iter().filter(|c| !old.contains(c)).count();
        assert_eq!(differ, 1, "{row}");
        assert!(
            old.iter()
                .chain(&new)
                .all(|c| ["red", "green", "blue"].contains(&c.as_str())),
            "{row}"
        );
        last.insert(f[3].to_string(), new);
    }
    let exported = t.path().join("corrected.csv");
    let (code, out, err) = run(&[
        "corrections",
        run_dir.to_str().unwrap(),
        "--export",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" -> "), "{out}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.starts_with("image_id,red,green,blue\n"), "{text}");
    // With one trained fold, each corrected image ends with that fold's last set.
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let Some(set) = last.get(f[0]) {
            let got: Vec<String> = ["red", "green", "blue"]
                .iter()
                .zip(&f[1..])
                .filter(|(_, v)| **v == "1")
                .map(|(c, _)| c.to_string())
                .collect();
            let mut want = set.clone();
            want.sort_by_key(|c| ["red", "green", "blue"].iter().position(|x| x == c));
            assert_eq!(got, want, "{line}");
        }
    }
}

#[test]
fn pos_weight_weighs_classes_of_multi_label_data_and_is_checked() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    multi_label_dataset(&data);
    let with = |name: &str, toml: &str| {
        let cfg = t.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let run_dir = t.path().join(name);
        let out = small_run(&data, &run_dir, &[cfg.to_str().unwrap(), "--fold", "0"]);
        (out, run_dir)
    };
    let valid_loss = |out: &str| -> String {
        // The epoch row: epoch, train_loss, valid_loss, ...
        let row = out
            .lines()
            .find(|l| l.starts_with("0 "))
            .unwrap_or_else(|| panic!("no epoch row in {out}"));
        row.split_whitespace().nth(2).unwrap().to_string()
    };
    let ((code, plain, err), _) = with("plain", "");
    assert_eq!(code, 0, "{plain}{err}");
    let ((code, weighted, err), _) = with("weighted", "[training]\npos_weight = { red = 4.0 }\n");
    assert_eq!(code, 0, "{weighted}{err}");
    // Same seed and data: only the loss's weight differs.
    assert_ne!(
        valid_loss(&plain),
        valid_loss(&weighted),
        "{plain}\n{weighted}"
    );

    let ((code, _, err), dir) = with("unknown", "[training]\npos_weight = { purple = 2.0 }\n");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("pos_weight.purple") && err.contains("red, green, blue"),
        "{err}"
    );
    assert!(!dir.exists());
    let ((code, _, err), _) = with("negative", "[training]\npos_weight = { red = -1.0 }\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pos_weight.red"), "{err}");
    let single = one_hot_dataset(&t.path().join("single"), &["a", "b"], &[6, 6]);
    let cfg = t.path().join("unknown.toml");
    std::fs::write(&cfg, "[training]\npos_weight = { a = 2.0 }\n").unwrap();
    let (code, _, err) = small_run(&single, &t.path().join("s"), &[cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("single-label"), "{err}");
}

#[test]
fn soft_labels_come_from_a_finished_runs_oof_and_stay_with_the_run() {
    let t = tempfile::tempdir().unwrap();
    let data = one_hot_dataset(&t.path().join("data"), &["a", "b"], &[9, 9]);
    let first = t.path().join("first");
    let (code, out, err) = small_run(&data, &first, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let oof = first.join("oof.csv");

    let second = t.path().join("second");
    let (code, out, err) = small_run(
        &data,
        &second,
        &["--fold", "1", "--soft-labels", oof.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    // The blended targets are kept with the run: 0.7 * label + 0.3 * OOF.
    let kept = std::fs::read_to_string(second.join("soft_targets.csv")).unwrap();
    let oof_text = std::fs::read_to_string(&oof).unwrap();
    let oof_row = |id: &str| -> (String, Vec<f64>) {
        let r = oof_text.lines().find(|l| l.starts_with(id)).unwrap();
        let f: Vec<&str> = r.split(',').collect();
        (
            f[2].to_string(),
            f[3..].iter().map(|v| v.parse().unwrap()).collect(),
        )
    };
    let mut n = 0;
    for line in kept.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let got: Vec<f64> = f[1..].iter().map(|v| v.parse().unwrap()).collect();
        let (label, p) = oof_row(f[0]);
        let sum: f64 = p.iter().sum();
        for (c, class) in ["a", "b"].iter().enumerate() {
            let l = if label == *class { 1.0 } else { 0.0 };
            let want = 0.7 * l + 0.3 * p[c] / sum;
            assert!((got[c] - want).abs() < 1e-5, "{line} vs {label} {p:?}");
        }
        n += 1;
    }
    assert_eq!(n, 18);
    let cfg = orchard::config::RunConfig::load(&second.join("config.toml")).unwrap();
    assert_eq!(cfg.soft_labels.oof.as_deref(), Some(oof.as_path()));
    // A resume reads the run's own targets, even with the OOF file gone.
    std::fs::remove_file(&oof).unwrap();
    let (code, out, err) = run(&["train", "--resume", second.to_str().unwrap(), "--headless"]);
    assert_eq!(code, 0, "{out}{err}");

    // An OOF file that does not cover the data is refused up front.
    let partial = t.path().join("partial.csv");
    std::fs::write(&partial, "image_id,fold,label,a,b\nimg0000,0,a,0.9,0.1\n").unwrap();
    let third = t.path().join("third");
    let (code, _, err) = small_run(&data, &third, &["--soft-labels", partial.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no out-of-fold prediction for 17 of the 18 images"),
        "{err}"
    );
    assert!(!third.exists());
}
