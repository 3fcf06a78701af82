//! Images to predict: a test set without labels (`orchard predict --data`).
//!
//! Accepted, as Kaggle ships them: a directory with `test.csv` (ids in its id
//! column, images in `images/` beside it or in the directory itself), a CSV
//! file (the same, images beside it), or a plain folder of images (ids are
//! the file names without extension, in sorted order).

use super::table::{IMAGE_EXTENSIONS, id_column, resolve_image};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// How many missing files a message lists before it only gives the total.
const MAX_LISTED: usize = 10;

/// One image to predict.
#[derive(Debug, Clone, PartialEq)]
pub struct TestImage {
    pub id: String,
    pub path: PathBuf,
}

/// The images of `path` (see the module docs); `images` overrides where a
/// CSV's images are.
pub fn load_test_images(path: &Path, images: Option<&Path>) -> Result<Vec<TestImage>> {
    if !path.exists() {
        return Err(Error::input(format!(
            "{}: no such file or directory\nfix: pass a directory with test.csv and images/, a CSV of image ids, or a folder of images",
            path.display()
        )));
    }
    let csv = if path.is_dir() {
        Some(path.join("test.csv")).filter(|p| p.is_file())
    } else {
        Some(path.to_path_buf())
    };
    let Some(csv) = csv else {
        return folder_images(path);
    };
    let dir = csv.parent().unwrap_or(Path::new("."));
    let images = match images {
        Some(i) => i.to_path_buf(),
        None if dir.join("images").is_dir() => dir.join("images"),
        None => dir.to_path_buf(),
    };
    csv_images(&csv, &images)
}

fn csv_images(csv: &Path, images: &Path) -> Result<Vec<TestImage>> {
    let bad = |e: csv::Error| Error::input(format!("{}: {e}", csv.display()));
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv)
        .map_err(bad)?;
    let headers = reader.headers().map_err(bad)?.clone();
    let id_col = id_column(&headers, csv)?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(bad)?;
        let id = record.get(id_col).unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(Error::input(format!(
                "{} row {}: empty image id\nfix: fill in the id or remove the row",
                csv.display(),
                row + 2
            )));
        }
        match resolve_image(images, &id) {
            Some(path) => out.push(TestImage { id, path }),
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        let listed: Vec<_> = missing.iter().take(MAX_LISTED).cloned().collect();
        return Err(Error::input(format!(
            "{}: {} image(s) not found in {}: {}{}\nfix: pass the folder of the images with --images",
            csv.display(),
            missing.len(),
            images.display(),
            listed.join(", "),
            if missing.len() > MAX_LISTED {
                ", ..."
            } else {
                ""
            }
        )));
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "{}: no rows\nfix: list the images to predict, one per row",
            csv.display()
        )));
    }
    Ok(out)
}

fn folder_images(dir: &Path) -> Result<Vec<TestImage>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_image = path.is_file()
            && path
                .extension()
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().as_ref()));
        if let (true, Some(stem)) = (is_image, path.file_stem()) {
            out.push(TestImage {
                id: stem.to_string_lossy().into_owned(),
                path,
            });
        }
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "{}: no test.csv and no .jpg/.jpeg/.png images\nfix: pass a directory with test.csv and images/, or a folder of images",
            dir.display()
        )));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for n in names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
    }

    #[test]
    fn kaggle_layout_csv_and_plain_folder() {
        let t = tempfile::tempdir().unwrap();
        touch(&t.path().join("images"), &["Test_1.jpg", "Test_0.JPG"]);
        std::fs::write(t.path().join("test.csv"), "image_id\nTest_0\nTest_1\n").unwrap();
        let ids = |v: Vec<TestImage>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(load_test_images(t.path(), None).unwrap()),
            ["Test_0", "Test_1"]
        );
        let csv = t.path().join("test.csv");
        assert_eq!(
            ids(load_test_images(&csv, None).unwrap()),
            ["Test_0", "Test_1"]
        );
        let folder = t.path().join("images");
        assert_eq!(
            ids(load_test_images(&folder, None).unwrap()),
            ["Test_0", "Test_1"]
        );
    }

    #[test]
    fn missing_images_and_bad_csvs_are_input_errors() {
        let t = tempfile::tempdir().unwrap();
        touch(&t.path().join("images"), &["a.png"]);
        std::fs::write(t.path().join("test.csv"), "image_id\na\nb\n").unwrap();
        let err = load_test_images(t.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("1 image(s) not found") && err.contains(": b"),
            "{err}"
        );
        std::fs::write(t.path().join("test.csv"), "picture\na\n").unwrap();
        let err = load_test_images(t.path(), None).unwrap_err();
        assert!(err.to_string().contains("no id column"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(load_test_images(&empty, None).is_err());
        assert!(load_test_images(&t.path().join("nope"), None).is_err());
    }
}
