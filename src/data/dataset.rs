//! The in-memory description of a labelled image data set.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What kind of classification problem a data set poses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    /// Two classes, one label per image.
    Binary,
    /// More than two classes, one label per image.
    MultiClass,
    /// One or more labels per image (sigmoid outputs, BCE loss).
    MultiLabel,
}

impl TaskType {
    pub fn is_multi_label(self) -> bool {
        self == TaskType::MultiLabel
    }
    pub fn name(self) -> &'static str {
        match self {
            TaskType::Binary => "binary",
            TaskType::MultiClass => "multi-class",
            TaskType::MultiLabel => "multi-label",
        }
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The id as written in the CSV (or the file stem for class folders).
    pub id: String,
    /// The image file, extension resolved.
    pub path: PathBuf,
    /// Class indices, sorted; exactly one for binary / multi-class tasks.
    pub labels: Vec<usize>,
}

impl Item {
    /// The single class of a single-label item (the first for multi-label ones).
    pub fn class(&self) -> usize {
        self.labels[0]
    }
}

/// Where the labels of a data set came from; kept so that corrected labels can be
/// exported in the same layout the user gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelLayout {
    /// `image_id,<class>,<class>...` with 0/1 columns (Plant Pathology 2020).
    OneHot { id_column: String },
    /// `image,labels` with space-separated class names (Plant Pathology 2021).
    LabelColumn {
        id_column: String,
        label_column: String,
    },
    /// `DIR/<class>/<image>` folders.
    ClassFolders,
}

/// A labelled image data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What the user pointed at (a directory or a CSV), for messages and headers.
    pub source: PathBuf,
    pub classes: Vec<String>,
    pub items: Vec<Item>,
    pub task: TaskType,
    pub layout: LabelLayout,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Number of items carrying each class (an item with two labels counts twice).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for item in &self.items {
            for &c in &item.labels {
                counts[c] += 1;
            }
        }
        counts
    }

    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }

    /// A short name for headers: the directory name of the source.
    pub fn display_name(&self) -> String {
        // `source` is always a directory (a CSV's folder or the class-folder root).
        let p = &self.source;
        p.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    }
}
