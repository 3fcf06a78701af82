//! Reading a data set from what the user points at: a directory holding
//! `train.csv` and `images/`, a CSV file, or a folder of class folders.
//!
//! Every problem is reported as `Error::Input` naming the file, the row or column,
//! and how to fix it; nothing here panics on bad input.

use super::dataset::{Dataset, Item, LabelLayout, TaskType};
use crate::error::{Error, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Extensions tried for an id without one, in this order (Kaggle sets mix them).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "JPG", "JPEG", "PNG"];

/// Column names taken as the image id, compared case-insensitively.
const ID_COLUMNS: &[&str] = &[
    "image_id",
    "image",
    "id",
    "filename",
    "file_name",
    "file",
    "image_name",
    "name",
    "path",
];

/// Column names taken as a space-separated label column (Plant Pathology 2021).
const LABEL_COLUMNS: &[&str] = &["labels", "label", "class", "classes", "category", "target"];

/// How many missing files a message lists before it only gives the total.
const MAX_LISTED: usize = 10;

/// What to read, as the command line or config gives it.
#[derive(Debug, Clone)]
pub struct DataSpec {
    pub path: PathBuf,
    /// Images of a CSV when not in `images/` beside it.
    pub images: Option<PathBuf>,
    /// Force the task type instead of detecting it.
    pub task: Option<TaskType>,
}

impl DataSpec {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSpec {
            path: path.into(),
            images: None,
            task: None,
        }
    }
}

/// Read a data set. See the module docs for the accepted layouts.
pub fn load_dataset(spec: &DataSpec) -> Result<Dataset> {
    let path = &crate::config::resolve_data_path(&spec.path);
    if !path.exists() {
        return Err(Error::input(format!(
            "{}: no such file or directory\nfix: pass a directory with train.csv and images/, a CSV file, or a folder of class folders",
            path.display()
        )));
    }
    let mut ds = if path.is_file() {
        let images = spec
            .images
            .clone()
            .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join("images"));
        read_csv(path, &images)?
    } else {
        let csv = path.join("train.csv");
        if csv.is_file() {
            let images = spec.images.clone().unwrap_or_else(|| path.join("images"));
            read_csv(&csv, &images)?
        } else if path.join("train").is_dir() && !path.join("images").is_dir() {
            // A Kaggle-style folder whose class folders sit in train/.
            read_class_folders(&path.join("train"))?
        } else if path.join("images").is_dir() || !has_subdirs(path)? {
            return Err(Error::input(format!(
                "{}: missing train.csv\nfix: put the labels in {} (image_id + one 0/1 column per class, or image,labels), pass the CSV file itself, or pass a folder of class folders",
                path.display(),
                csv.display()
            )));
        } else {
            read_class_folders(path)?
        }
    };
    if ds.items.is_empty() || ds.classes.is_empty() {
        return Err(Error::input(format!(
            "{}: no labelled images found\nfix: pass a directory with train.csv and images/, a CSV file, or a folder of class folders",
            path.display()
        )));
    }
    check_same_file_twice(&ds)?;
    apply_task(&mut ds, spec.task)?;
    Ok(ds)
}

/// Two ids (e.g. `a` and `a.jpg`) that resolve to one file would put the same
/// image in training and validation.
fn check_same_file_twice(ds: &Dataset) -> Result<()> {
    let mut seen: HashMap<&Path, &str> = HashMap::new();
    for item in &ds.items {
        if let Some(first) = seen.insert(item.path.as_path(), item.id.as_str()) {
            return Err(Error::input(format!(
                "{}: the ids {first} and {} both name the file {}\nfix: keep one row per image",
                ds.source.display(),
                item.id,
                item.path.display()
            )));
        }
    }
    Ok(())
}

fn has_subdirs(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.path().is_dir() && !is_hidden(&entry.path()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .map(|n| n.to_string_lossy().starts_with('.'))
        .unwrap_or(false)
}

/// Detect the task, or check that a forced one fits the labels.
fn apply_task(ds: &mut Dataset, forced: Option<TaskType>) -> Result<()> {
    let first_multi = ds.items.iter().find(|it| it.labels.len() > 1);
    let detected = if first_multi.is_some() {
        TaskType::MultiLabel
    } else if ds.classes.len() == 2 {
        TaskType::Binary
    } else {
        TaskType::MultiClass
    };
    ds.task = match forced {
        None => detected,
        Some(TaskType::MultiLabel) => TaskType::MultiLabel,
        Some(t) => {
            if let Some(item) = first_multi {
                return Err(Error::input(format!(
                    "{}: --task {t} was asked, but image {} has {} labels\nfix: use --task multi-label, or give each image one label",
                    ds.source.display(),
                    item.id,
                    item.labels.len()
                )));
            }
            if t == TaskType::Binary && ds.classes.len() != 2 {
                return Err(Error::input(format!(
                    "{}: --task binary was asked, but the data has {} classes ({})\nfix: use --task multi-class, or keep two classes",
                    ds.source.display(),
                    ds.classes.len(),
                    ds.classes.join(", ")
                )));
            }
            t
        }
    };
    if ds.classes.len() < 2 && ds.task != TaskType::MultiLabel {
        return Err(Error::input(format!(
            "{}: only one class ({}) was found\nfix: a classifier needs at least two classes",
            ds.source.display(),
            ds.classes.first().map(String::as_str).unwrap_or("none")
        )));
    }
    Ok(())
}

/// Find the image file of an id: the id as a path if it has an image extension,
/// else the id with each known extension.
pub fn resolve_image(images: &Path, id: &str) -> Option<PathBuf> {
    let direct = images.join(id);
    let has_ext = Path::new(id)
        .extension()
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
        .unwrap_or(false);
    if has_ext && direct.is_file() {
        return Some(direct);
    }
    IMAGE_EXTENSIONS
        .iter()
        .map(|ext| images.join(format!("{id}.{ext}")))
        .find(|p| p.is_file())
}

/// The index of the image-id column (one of `ID_COLUMNS`, any case) of a CSV header.
pub(crate) fn id_column(headers: &csv::StringRecord, csv_path: &Path) -> Result<usize> {
    headers
        .iter()
        .position(|h| ID_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(h)))
        .ok_or_else(|| {
            Error::input(format!(
                "{}: no id column in the header ({})\nfix: name the column of image ids one of: {}",
                csv_path.display(),
                headers.iter().collect::<Vec<_>>().join(","),
                ID_COLUMNS.join(", ")
            ))
        })
}

fn read_csv(csv_path: &Path, images: &Path) -> Result<Dataset> {
    let file = std::fs::File::open(csv_path).map_err(|e| Error::io(csv_path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| csv_error(csv_path, e))?
        .clone();
    let id_col = id_column(&headers, csv_path)?;
    let id_name = headers[id_col].to_string();
    let other: Vec<usize> = (0..headers.len()).filter(|&i| i != id_col).collect();
    if other.is_empty() {
        return Err(Error::input(format!(
            "{}: the header has only the id column {id_name}, no labels\nfix: add one 0/1 column per class, or a `labels` column",
            csv_path.display()
        )));
    }
    let label_col = (other.len() == 1
        && LABEL_COLUMNS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&headers[other[0]])))
    .then_some(other[0]);

    // First pass: ids and raw labels (class names), row by row.
    let mut rows: Vec<(usize, String, Vec<String>)> = Vec::new();
    let mut classes: Vec<String> = match label_col {
        Some(_) => Vec::new(),
        None => other.iter().map(|&i| headers[i].to_string()).collect(),
    };
    if label_col.is_none() {
        let mut seen = BTreeSet::new();
        for c in &classes {
            if c.is_empty() {
                return Err(Error::input(format!(
                    "{}: a class column has an empty name\nfix: give every column a header",
                    csv_path.display()
                )));
            }
            if !seen.insert(c.clone()) {
                return Err(Error::input(format!(
                    "{}: the class column {c} appears twice in the header\nfix: give every class column a unique name",
                    csv_path.display()
                )));
            }
        }
    }
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(csv_path, e))?;
        // Row numbers as a spreadsheet shows them (the header is row 1): the
        // record's line, which counts blank lines and multi-line quoted fields.
        let row = record
            .position()
            .map(|p| p.line() as usize)
            .unwrap_or(i + 2);
        let id = record.get(id_col).unwrap_or("").to_string();
        if id.is_empty() {
            return Err(Error::input(format!(
                "{} row {row}: the id column {id_name} is empty\nfix: give every row an image id",
                csv_path.display()
            )));
        }
        let labels = match label_col {
            Some(col) => {
                let names: Vec<String> = record
                    .get(col)
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    return Err(Error::input(format!(
                        "{} row {row} ({id}): the column {} is empty\nfix: give every image at least one label",
                        csv_path.display(),
                        &headers[col]
                    )));
                }
                names
            }
            None => {
                let mut set = Vec::new();
                for (k, &col) in other.iter().enumerate() {
                    let v = record.get(col).unwrap_or("");
                    match v {
                        "1" | "1.0" => set.push(classes[k].clone()),
                        "0" | "0.0" => {}
                        _ => {
                            return Err(Error::input(format!(
                                "{} row {row} ({id}), column {}: the label is {v:?}, not 0 or 1\nfix: one-hot columns hold 0 or 1",
                                csv_path.display(),
                                classes[k]
                            )));
                        }
                    }
                }
                if set.is_empty() {
                    return Err(Error::input(format!(
                        "{} row {row} ({id}): no class is set (all columns are 0)\nfix: set the image's class column to 1, or remove the row",
                        csv_path.display()
                    )));
                }
                set
            }
        };
        rows.push((row, id, labels));
    }
    if rows.is_empty() {
        return Err(Error::input(format!(
            "{}: no rows below the header\nfix: add one row per image",
            csv_path.display()
        )));
    }
    if label_col.is_some() {
        // Plant Pathology 2021 style: the classes are the label names, sorted.
        let set: BTreeSet<&String> = rows.iter().flat_map(|(_, _, l)| l.iter()).collect();
        classes = set.into_iter().cloned().collect();
    }

    // Duplicate ids.
    let mut first_row: HashMap<&str, usize> = HashMap::new();
    for (row, id, _) in &rows {
        if let Some(prev) = first_row.insert(id.as_str(), *row) {
            return Err(Error::input(format!(
                "{} row {row}: the image id {id} already appears in row {prev}\nfix: keep one row per image",
                csv_path.display()
            )));
        }
    }

    if !images.is_dir() {
        return Err(Error::input(format!(
            "{}: the images folder {} does not exist\nfix: put the images in images/ beside the CSV, or pass --images DIR",
            csv_path.display(),
            images.display()
        )));
    }
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut items = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    for (_, id, names) in &rows {
        let Some(path) = resolve_image(images, id) else {
            missing.push(id.clone());
            continue;
        };
        let mut labels: Vec<usize> = names.iter().map(|n| index[n.as_str()]).collect();
        labels.sort_unstable();
        labels.dedup();
        items.push(Item {
            id: id.clone(),
            path,
            labels,
        });
    }
    if !missing.is_empty() {
        let listed: Vec<&str> = missing
            .iter()
            .take(MAX_LISTED)
            .map(String::as_str)
            .collect();
        return Err(Error::input(format!(
            "{}: {} image(s) listed in the CSV are missing from {}: {}{}\nfix: add the files (.jpg, .jpeg or .png), or remove their rows",
            csv_path.display(),
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
    let layout = match label_col {
        Some(col) => LabelLayout::LabelColumn {
            id_column: id_name,
            label_column: headers[col].to_string(),
        },
        None => LabelLayout::OneHot { id_column: id_name },
    };
    Ok(Dataset {
        source: csv_path.parent().map(Path::to_path_buf).unwrap_or_default(),
        classes,
        items,
        task: TaskType::MultiClass,
        layout,
    })
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let place = e
        .position()
        .map(|p| format!(" line {}", p.line()))
        .unwrap_or_default();
    Error::input(format!(
        "{}{place}: malformed CSV ({e})\nfix: every row needs the same number of comma-separated fields as the header",
        path.display()
    ))
}

fn read_class_folders(root: &Path) -> Result<Dataset> {
    let mut class_dirs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let p = entry.map_err(|e| Error::io(root, e))?.path();
        if p.is_dir() && !is_hidden(&p) {
            class_dirs.push(p);
        }
    }
    class_dirs.sort();
    let mut classes = Vec::new();
    let mut items = Vec::new();
    for (ci, dir) in class_dirs.iter().enumerate() {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
                        .unwrap_or(false)
            })
            .collect();
        if files.is_empty() {
            return Err(Error::input(format!(
                "{}: the class folder is empty (no .jpg, .jpeg or .png files)\nfix: add its images or remove the folder",
                dir.display()
            )));
        }
        files.sort();
        for f in files {
            let file = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            items.push(Item {
                // Ids must be unique: the class folder and the whole file name
                // (cat/1.jpg and cat/1.png are two images).
                id: format!("{name}/{file}"),
                path: f,
                labels: vec![ci],
            });
        }
        classes.push(name);
    }
    Ok(Dataset {
        source: root.to_path_buf(),
        classes,
        items,
        task: TaskType::MultiClass,
        layout: LabelLayout::ClassFolders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn touch_images(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for n in names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
    }

    #[test]
    fn one_hot_csv_with_mixed_extensions() {
        let t = tempfile::tempdir().unwrap();
        touch_images(&t.path().join("images"), &["a.jpg", "b.png", "c.jpeg"]);
        write(
            t.path(),
            "train.csv",
            "image_id,healthy,rust\na,1,0\nb,0,1\nc,1,0\n",
        );
        let ds = load_dataset(&DataSpec::new(t.path())).unwrap();
        assert_eq!(ds.classes, vec!["healthy", "rust"]);
        assert_eq!(ds.task, TaskType::Binary);
        assert_eq!(ds.items[1].labels, vec![1]);
        assert!(ds.items[1].path.ends_with("b.png"));
    }

    #[test]
    fn several_ones_mean_multi_label() {
        let t = tempfile::tempdir().unwrap();
        touch_images(&t.path().join("images"), &["a.jpg", "b.jpg"]);
        write(t.path(), "train.csv", "image_id,x,y,z\na,1,1,0\nb,0,0,1\n");
        let ds = load_dataset(&DataSpec::new(t.path())).unwrap();
        assert_eq!(ds.task, TaskType::MultiLabel);
        assert_eq!(ds.items[0].labels, vec![0, 1]);
    }

    #[test]
    fn label_column_csv_sorts_classes() {
        let t = tempfile::tempdir().unwrap();
        touch_images(&t.path().join("pics"), &["a.jpg", "b.jpg", "c.jpg"]);
        let csv = write(
            t.path(),
            "labels.csv",
            "image,labels\na.jpg,scab\nb.jpg,healthy\nc.jpg,rust scab\n",
        );
        let mut spec = DataSpec::new(&csv);
        spec.images = Some(t.path().join("pics"));
        let ds = load_dataset(&spec).unwrap();
        assert_eq!(ds.classes, vec!["healthy", "rust", "scab"]);
        assert_eq!(ds.task, TaskType::MultiLabel);
        assert_eq!(ds.items[2].labels, vec![1, 2]);
    }

    #[test]
    fn class_folders() {
        let t = tempfile::tempdir().unwrap();
        touch_images(&t.path().join("cat"), &["1.jpg", "2.png"]);
        touch_images(&t.path().join("dog"), &["1.jpg"]);
        touch_images(&t.path().join("emu"), &["1.jpg"]);
        let ds = load_dataset(&DataSpec::new(t.path())).unwrap();
        assert_eq!(ds.classes, vec!["cat", "dog", "emu"]);
        assert_eq!(ds.task, TaskType::MultiClass);
        assert_eq!(ds.items.len(), 4);
        assert_eq!(ds.items[2].id, "dog/1.jpg");
    }

    #[test]
    fn class_folders_inside_train() {
        let t = tempfile::tempdir().unwrap();
        touch_images(&t.path().join("train/cat"), &["1.jpg"]);
        touch_images(&t.path().join("train/dog"), &["1.jpg"]);
        let ds = load_dataset(&DataSpec::new(t.path())).unwrap();
        assert_eq!(ds.classes, vec!["cat", "dog"]);
        assert_eq!(ds.task, TaskType::Binary);
    }

    #[test]
    fn forcing_a_single_label_task_on_multi_label_rows_is_refused() {
        let t = tempfile::tempdir().unwrap();
        touch_images(&t.path().join("images"), &["a.jpg"]);
        write(t.path(), "train.csv", "image_id,x,y,z\na,1,1,0\n");
        let mut spec = DataSpec::new(t.path());
        spec.task = Some(TaskType::MultiClass);
        let err = load_dataset(&spec).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("image a has 2 labels"), "{err}");
    }
}
