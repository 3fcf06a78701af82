//! Bad input never panics: each case exits with code 2 and a message naming the
//! file, row, column or key, and how to fix it. One test per case.

mod common;
use common::*;
use std::path::Path;

fn assert_exit2(args: &[&str], needles: &[&str]) {
    let (code, _out, err) = run(args);
    assert_eq!(code, 2, "args {args:?}\nstderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in stderr:\n{err}");
    }
    assert!(err.contains("fix:") || err.contains("error:"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_train_csv() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("images")).unwrap();
    assert_exit2(&["stats", s(t.path())], &["missing train.csv", "fix:"]);
}

#[test]
fn csv_without_id_column() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    std::fs::write(t.path().join("train.csv"), "picture,a,b\nimg0000,1,0\n").unwrap();
    assert_exit2(
        &["folds", s(t.path())],
        &["train.csv", "no id column", "picture,a,b"],
    );
}

#[test]
fn one_hot_row_with_no_class_set() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    std::fs::write(
        t.path().join("train.csv"),
        "image_id,a,b\nimg0000,1,0\nimg0001,0,0\n",
    )
    .unwrap();
    assert_exit2(
        &["folds", s(t.path())],
        &["row 3", "img0001", "no class is set"],
    );
}

#[test]
fn label_that_is_not_zero_or_one() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    std::fs::write(
        t.path().join("train.csv"),
        "image_id,a,b\nimg0000,1,0\nimg0001,0,yes\n",
    )
    .unwrap();
    assert_exit2(
        &["folds", s(t.path())],
        &["row 3", "column b", "\"yes\"", "0 or 1"],
    );
}

#[test]
fn duplicate_image_ids() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    std::fs::write(
        t.path().join("train.csv"),
        "image_id,a,b\nimg0000,1,0\nimg0001,0,1\nimg0000,0,1\n",
    )
    .unwrap();
    assert_exit2(&["folds", s(t.path())], &["row 4", "img0000", "row 2"]);
}

#[test]
fn missing_image_files_are_listed_with_the_total() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    let mut csv = String::from("image_id,a,b\nimg0000,1,0\n");
    for i in 0..12 {
        csv.push_str(&format!("ghost{i:02},0,1\n"));
    }
    std::fs::write(t.path().join("train.csv"), csv).unwrap();
    let (code, _, err) = run(&["folds", s(t.path())]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("12 image(s)") && err.contains("ghost00") && err.contains("ghost09"),
        "{err}"
    );
    assert!(!err.contains("ghost10"), "lists at most 10: {err}");
}

#[test]
fn zero_byte_image() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    std::fs::write(t.path().join("images/img0001.jpg"), b"").unwrap();
    assert_exit2(&["stats", s(t.path())], &["img0001.jpg", "0 bytes"]);
}

#[test]
fn truncated_image() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    let p = t.path().join("images/img0002.jpg");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert_exit2(&["stats", s(t.path())], &["img0002.jpg"]);
}

#[test]
fn non_image_file() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[2, 2]);
    std::fs::write(
        t.path().join("images/img0003.jpg"),
        b"this is a text file, not a picture",
    )
    .unwrap();
    assert_exit2(
        &["stats", s(t.path())],
        &["img0003.jpg", "not a JPEG or PNG"],
    );
}

#[test]
fn empty_class_folder() {
    let t = tempfile::tempdir().unwrap();
    for c in ["cat", "dog"] {
        std::fs::create_dir_all(t.path().join(c)).unwrap();
    }
    write_jpeg(&t.path().join("cat/1.jpg"), [1, 2, 3]);
    assert_exit2(&["stats", s(t.path())], &["dog", "class folder is empty"]);
}

#[test]
fn k_larger_than_the_smallest_class() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["common", "rare"], &[10, 3]);
    assert_exit2(
        &["folds", s(t.path()), "--k", "5"],
        &["--k 5", "rare has only 3"],
    );
}

#[test]
fn k_below_two() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[4, 4]);
    assert_exit2(
        &["folds", s(t.path()), "--k", "1"],
        &["--k 1", "at least 2"],
    );
}

#[test]
fn unknown_class_in_oversample() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["healthy", "rust"], &[4, 4]);
    assert_exit2(
        &[
            "folds",
            s(t.path()),
            "--k",
            "2",
            "--oversample",
            "multiple_diseases=3",
        ],
        &["multiple_diseases", "healthy, rust"],
    );
}

#[test]
fn malformed_toml() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("run.toml");
    std::fs::write(&cfg, "[training]\nepochs = = 3\n").unwrap();
    assert_exit2(&["train", s(&cfg), "--headless"], &["run.toml", "line 2"]);
}

#[test]
fn unknown_config_key() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("run.toml");
    std::fs::write(&cfg, "[training]\nlearning_rate = 0.1\n").unwrap();
    assert_exit2(
        &["train", s(&cfg), "--headless"],
        &["run.toml", "learning_rate"],
    );
}

#[test]
fn folds_out_never_overwrites() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[4, 4]);
    let out = t.path().join("folds.csv");
    std::fs::write(&out, "precious").unwrap();
    assert_exit2(
        &["folds", s(t.path()), "--k", "2", "--out", s(&out)],
        &["already exists"],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
}

#[test]
fn data_given_where_train_expects_a_config() {
    let demo = demo();
    assert_exit2(
        &["train", demo.to_str().unwrap(), "--headless"],
        &["--data", "not data"],
    );
}

#[test]
fn a_feature_that_is_not_built_yet_is_refused_not_ignored() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("run.toml");
    std::fs::write(&cfg, "[training]\ndevice = \"cuda\"\n").unwrap();
    let run_dir = t.path().join("run");
    assert_exit2(
        &["train", s(&cfg), "--headless", "--run-dir", s(&run_dir)],
        &["training.device", "not available yet"],
    );
    assert!(!run_dir.exists());
}

#[test]
fn bad_input_to_train_leaves_no_run_directory() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    assert_exit2(
        &[
            "train",
            "--headless",
            "--oversample",
            "dragon=2",
            "--run-dir",
            s(&run_dir),
        ],
        &["dragon", "mammal"],
    );
    assert!(
        !run_dir.exists(),
        "a failed start must not leave a run directory"
    );
}

#[test]
fn absurd_oversampling_is_refused() {
    let t = tempfile::tempdir().unwrap();
    one_hot_dataset(t.path(), &["a", "b"], &[4, 4]);
    assert_exit2(
        &[
            "folds",
            s(t.path()),
            "--k",
            "2",
            "--oversample",
            "a=4611686018427387904",
        ],
        &["--oversample", "at most 1000"],
    );
}

#[test]
fn bad_keymap_file_names_the_file_the_key_and_the_fix() {
    let t = tempfile::tempdir().unwrap();
    let keymap = t.path().join("keys.toml");
    std::fs::write(&keymap, "[main]\ntoggle_pause = \"spacebar\"\n").unwrap();
    assert_exit2(
        &[
            "train",
            "--headless",
            "--keymap",
            s(&keymap),
            "--run-dir",
            s(&t.path().join("run")),
        ],
        &[
            "keys.toml",
            "[main] toggle_pause",
            "\"spacebar\" is not a key",
            "fix:",
        ],
    );
    assert!(
        !t.path().join("run").exists(),
        "nothing starts with a bad keymap"
    );
}

#[test]
fn attach_to_a_directory_that_is_not_a_run() {
    let t = tempfile::tempdir().unwrap();
    assert_exit2(
        &["attach", s(t.path())],
        &["not an orchard run directory", "fix:"],
    );
}
