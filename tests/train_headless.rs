//! The real binary, headless, on a slice of the embedded demo set.

mod common;
use common::*;

#[test]
fn headless_run_on_a_demo_slice_writes_its_run_directory() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let (code, out, err) = run(&[
        "train",
        "--data",
        demo().to_str().unwrap(),
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
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    // fastai-style lines.
    assert!(
        out.contains("epoch  train_loss  valid_loss  accuracy  roc_auc   time"),
        "{out}"
    );
    let epoch_line = out
        .lines()
        .find(|l| l.starts_with("0 "))
        .expect("an epoch line");
    let fields: Vec<&str> = epoch_line.split_whitespace().collect();
    assert_eq!(fields.len(), 6, "{epoch_line}");
    for f in &fields[1..4] {
        let v: f64 = f.parse().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{epoch_line}");
    }
    assert!(out.contains("run completed"), "{out}");

    // events.jsonl: one JSON object per line, with a timestamp, in order.
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_ended"));
    assert!(kinds.contains(&"fold_started") && kinds.contains(&"epoch_ended"));
    let batches = lines.iter().filter(|v| v["event"] == "batch").count();
    // 40 training images, batch 8, drop-last: 5 steps.
    assert_eq!(batches, 5, "{kinds:?}");
    assert!(lines.iter().all(|v| v["time"].as_f64().unwrap() > 1.7e9));
    let b = lines.iter().find(|v| v["event"] == "batch").unwrap();
    assert!(b["lr"].as_f64().unwrap() > 0.0 && b["mom"].as_f64().unwrap() > 0.8);

    // metrics.csv: the header and one row.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().collect();
    assert_eq!(
        rows[0],
        "fold,epoch,train_loss,valid_loss,accuracy,roc_auc,seconds"
    );
    assert_eq!(rows.len(), 2, "{metrics}");
    assert!(rows[1].starts_with("0,0,"));

    // The resolved config parses back and says what ran.
    let cfg = orchard::config::RunConfig::load(&run_dir.join("config.toml")).unwrap();
    assert_eq!(cfg.training.size, 32);
    assert_eq!(cfg.folds.fold, Some(0));
    assert!(run_dir.join("folds.csv").is_file());

    // oof.csv: one row per validation image of the fold, probabilities summing to 1.
    let oof = std::fs::read_to_string(run_dir.join("oof.csv")).unwrap();
    let mut rows = oof.lines();
    assert_eq!(
        rows.next().unwrap(),
        "image_id,fold,label,mammal,bird,fish,fruit,vegetable,flower"
    );
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), 20, "60 images, 3 folds: 20 validate in fold 0");
    for r in rows {
        let f: Vec<&str> = r.split(',').collect();
        assert_eq!(f[1], "0");
        let sum: f64 = f[3..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{r}");
    }
}

#[test]
fn an_existing_run_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("notes.txt"), "mine").unwrap();
    let (code, _, err) = run(&[
        "train",
        "--headless",
        "--run-dir",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn xresnet18_with_the_imagewoof_toolbox_trains_an_epoch() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let (code, out, err) = run(&[
        "train",
        "--data",
        demo().to_str().unwrap(),
        "--headless",
        "--arch",
        "xresnet18",
        "--activation",
        "mish",
        "--self-attention",
        "--maxblurpool",
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
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let epoch_line = out
        .lines()
        .find(|l| l.starts_with("0 "))
        .expect("an epoch line");
    let fields: Vec<&str> = epoch_line.split_whitespace().collect();
    for f in &fields[1..4] {
        let v: f64 = f.parse().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{epoch_line}");
    }
    assert!(out.contains("run completed"), "{out}");
    // The resolved config records the architecture and its options.
    let cfg = orchard::config::RunConfig::load(&run_dir.join("config.toml")).unwrap();
    assert_eq!(cfg.model.arch, "xresnet18");
    assert_eq!(cfg.model.activation, orchard::config::Activation::Mish);
    assert!(cfg.model.self_attention && cfg.model.maxblurpool);
    // The checkpoint holds fastai's names, the attention's buffers included.
    let fold0 = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a fold directory");
    let ckpt = std::fs::read_dir(&fold0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .expect("a checkpoint");
    let bytes = std::fs::read(&ckpt).unwrap();
    let names = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    for want in [
        "4.1.convpath.2.gamma",
        "4.1.convpath.2.conv.weight_u",
        "11.weight",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(want)),
            "{want} not in {names:?}"
        );
    }
}
