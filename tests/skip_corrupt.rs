//! `data.on_corrupt`: a data set with one truncated JPEG and one text file
//! named .jpg trains with "skip" (each file named once in a warning, left out
//! of folds.csv and oof.csv, listed in skipped.csv) and stops with exit 2
//! under the default "fail".

mod common;
use common::*;
use std::path::Path;

const TRUNCATED: &str = "img0002.jpg";
const NOT_AN_IMAGE: &str = "img0008.jpg";

/// Two classes of six; one real photo cut to 60% of its bytes (header intact,
/// entropy-coded data short) and one text file.
fn data_with_two_bad_files(dir: &Path) {
    one_hot_dataset(dir, &["a", "b"], &[6, 6]);
    let photo = demo().join("images/tux_0033_tiger_sumatran.jpg");
    let bytes = std::fs::read(photo).unwrap();
    std::fs::write(
        dir.join("images").join(TRUNCATED),
        &bytes[..bytes.len() * 6 / 10],
    )
    .unwrap();
    std::fs::write(dir.join("images").join(NOT_AN_IMAGE), b"id,label\n1,2\n").unwrap();
}

fn train(data: &Path, config: Option<&Path>, run_dir: &Path) -> (i32, String, String) {
    let mut args = vec!["train"];
    if let Some(c) = config {
        args.push(c.to_str().unwrap());
    }
    args.extend([
        "--data",
        data.to_str().unwrap(),
        "--headless",
        "--k",
        "2",
        "--epochs",
        "1",
        "--size",
        "32",
        "--bs",
        "4",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    run(&args)
}

#[test]
fn skip_leaves_the_bad_files_out_and_names_each_once() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    data_with_two_bad_files(&data);
    let cfg = t.path().join("skip.toml");
    std::fs::write(&cfg, "[data]\non_corrupt = \"skip\"\n").unwrap();
    let run_dir = t.path().join("run");
    let (code, out, err) = train(&data, Some(&cfg), &run_dir);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for bad in [TRUNCATED, NOT_AN_IMAGE] {
        let warnings = err
            .lines()
            .filter(|l| l.starts_with("warning: skipped") && l.contains(bad))
            .count();
        assert_eq!(warnings, 1, "one warning for {bad}:\n{err}");
        if bad == TRUNCATED {
            assert!(err.contains("truncated"), "says why:\n{err}");
        }
        let id = bad.trim_end_matches(".jpg");
        for file in ["oof.csv", "folds.csv"] {
            let text = std::fs::read_to_string(run_dir.join(file)).unwrap();
            assert!(!text.contains(id), "{file} lists {id}:\n{text}");
        }
        let skipped = std::fs::read_to_string(run_dir.join("skipped.csv")).unwrap();
        assert!(skipped.contains(id), "{skipped}");
    }
    // The ten good images each have their out-of-fold row.
    let oof = std::fs::read_to_string(run_dir.join("oof.csv")).unwrap();
    assert_eq!(oof.lines().count(), 1 + 10, "{oof}");
    assert!(oof.contains("img0000") && oof.contains("img0011"), "{oof}");
}

#[test]
fn fail_is_the_default_and_stops_with_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    data_with_two_bad_files(&data);
    let (code, out, err) = train(&data, None, &t.path().join("run"));
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(TRUNCATED) || err.contains(NOT_AN_IMAGE),
        "names a bad file:\n{err}"
    );
    assert!(err.contains("on_corrupt"), "says how to skip them:\n{err}");
}
