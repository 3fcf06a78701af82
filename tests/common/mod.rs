//! Helpers shared by the integration tests: small data sets on disk and a way
//! to run the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn orchard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orchard"))
}

/// Run the binary with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out: Output = orchard().args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write a small real JPEG of one colour.
pub fn write_jpeg(path: &Path, rgb: [u8; 3]) {
    let img = image::RgbImage::from_pixel(16, 12, image::Rgb(rgb));
    img.save(path).expect("write jpeg");
}

/// A one-hot data set: `train.csv` + `images/`, `per_class` images per class.
pub fn one_hot_dataset(dir: &Path, classes: &[&str], per_class: &[usize]) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv = format!("image_id,{}\n", classes.join(","));
    let mut n = 0;
    for (c, &count) in per_class.iter().enumerate() {
        for _ in 0..count {
            let id = format!("img{n:04}");
            let colour = [
                (c * 60 % 256) as u8,
                (255 - c * 40) as u8,
                (n * 7 % 256) as u8,
            ];
            write_jpeg(&images.join(format!("{id}.jpg")), colour);
            let row: Vec<&str> = (0..classes.len())
                .map(|k| if k == c { "1" } else { "0" })
                .collect();
            csv.push_str(&format!("{id},{}\n", row.join(",")));
            n += 1;
        }
    }
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    dir.to_path_buf()
}

/// The embedded demo set.
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo")
}

/// `../shared/datasets/NAME` if this machine has it; tests that need it skip
/// (with a printed reason) on a fresh clone without `../shared`.
pub fn shared_dataset(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets")
        .join(name);
    if p.join("train.csv").is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is absent (../shared is not beside this checkout)",
            p.display()
        );
        None
    }
}
