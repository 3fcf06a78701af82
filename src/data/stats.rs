//! Data set statistics: class balance, image sizes and formats from file
//! headers, and per-channel mean/std from decoded pixels.

use super::dataset::Dataset;
use super::decode::{decode_rgb, resize_rgb};
use crate::error::{Error, Result};
use image::ImageReader;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct ClassStat {
    pub name: String,
    pub count: usize,
    pub share: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Range {
    pub min: u32,
    pub median: u32,
    pub max: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub dataset: String,
    pub task: String,
    pub images: usize,
    pub classes: Vec<ClassStat>,
    /// Largest class count over the smallest.
    pub imbalance_ratio: f64,
    pub width: Range,
    pub height: Range,
    /// Detected file format (from the content, not the extension) -> count.
    pub formats: BTreeMap<String, usize>,
    /// Side of the square the images were resized to (squish) before mean/std.
    pub stats_size: u32,
    /// Per-channel mean and std of pixel values in [0, 1] (R, G, B).
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

/// Header facts of one file: width, height and the format detected from the
/// content (not the extension, which Kaggle sets get wrong now and then).
fn header(path: &Path) -> Result<(u32, u32, String)> {
    use std::io::Read;
    let mut head = [0u8; 32];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Error::io(path, e))?;
    if n == 0 {
        return Err(Error::input(format!(
            "{}: the file is empty (0 bytes)\nfix: replace it with the real image, or remove its row",
            path.display()
        )));
    }
    let format = image::guess_format(&head[..n]).map_err(|_| {
        Error::input(format!(
            "{}: not a JPEG or PNG file (its content is not an image)\nfix: replace the file with a real image, or remove its row",
            path.display()
        ))
    })?;
    let mut reader = ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    reader.set_format(format);
    let (w, h) = reader.into_dimensions().map_err(|e| {
        Error::input(format!(
            "{}: unreadable image header ({})\nfix: replace the file or remove its row",
            path.display(),
            e.to_string().trim()
        ))
    })?;
    Ok((w, h, format!("{format:?}").to_uppercase()))
}

fn range(mut v: Vec<u32>) -> Range {
    v.sort_unstable();
    if v.is_empty() {
        return Range {
            min: 0,
            median: 0,
            max: 0,
        };
    }
    Range {
        min: v[0],
        median: v[v.len() / 2],
        max: v[v.len() - 1],
    }
}

/// Per-channel sums over one image: (sum, sum of squares, pixel count).
fn channel_sums(path: &Path, size: u32) -> Result<([f64; 3], [f64; 3], u64)> {
    let img = resize_rgb(&decode_rgb(path)?, size, size);
    let mut s = [0.0f64; 3];
    let mut sq = [0.0f64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            let v = p[c] as f64 / 255.0;
            s[c] += v;
            sq[c] += v * v;
        }
    }
    Ok((s, sq, img.pixels().len() as u64))
}

/// Compute the statistics, reading headers and decoding images in parallel.
pub fn compute_stats(ds: &Dataset, stats_size: u32) -> Result<StatsReport> {
    let headers: Vec<(u32, u32, String)> = ds
        .items
        .par_iter()
        .map(|it| header(&it.path))
        .collect::<Result<_>>()?;
    let mut formats = BTreeMap::new();
    for (_, _, f) in &headers {
        *formats.entry(f.clone()).or_insert(0) += 1;
    }
    let (sum, sq, n) = ds
        .items
        .par_iter()
        .map(|it| channel_sums(&it.path, stats_size))
        .try_reduce(
            || ([0.0; 3], [0.0; 3], 0u64),
            |a, b| {
                let mut s = a.0;
                let mut q = a.1;
                for c in 0..3 {
                    s[c] += b.0[c];
                    q[c] += b.1[c];
                }
                Ok((s, q, a.2 + b.2))
            },
        )?;
    let nf = n.max(1) as f64;
    let mean = [sum[0] / nf, sum[1] / nf, sum[2] / nf];
    let std = [0, 1, 2].map(|c| (sq[c] / nf - mean[c] * mean[c]).max(0.0).sqrt());

    let counts = ds.class_counts();
    let total: usize = ds.len();
    let classes = ds
        .classes
        .iter()
        .zip(&counts)
        .map(|(name, &count)| ClassStat {
            name: name.clone(),
            count,
            share: count as f64 / total.max(1) as f64,
        })
        .collect();
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let min = counts.iter().copied().min().unwrap_or(0) as f64;
    Ok(StatsReport {
        dataset: ds.display_name(),
        task: ds.task.to_string(),
        images: total,
        classes,
        imbalance_ratio: if min > 0.0 { max / min } else { f64::INFINITY },
        width: range(headers.iter().map(|h| h.0).collect()),
        height: range(headers.iter().map(|h| h.1).collect()),
        formats,
        stats_size,
        mean,
        std,
    })
}

impl StatsReport {
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "data set   {}  ({} images, {} classes, {})\n\n",
            self.dataset,
            self.images,
            self.classes.len(),
            self.task
        ));
        let w = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        s.push_str(&format!(
            "{:<w$}  {:>6}  {:>6}\n",
            "class", "count", "share"
        ));
        for c in &self.classes {
            s.push_str(&format!(
                "{:<w$}  {:>6}  {:>5.1}%\n",
                c.name,
                c.count,
                100.0 * c.share
            ));
        }
        s.push_str(&format!(
            "\nimbalance ratio  {:.2} (largest / smallest class)\n",
            self.imbalance_ratio
        ));
        s.push_str(&format!(
            "width            min {} / median {} / max {} px\n",
            self.width.min, self.width.median, self.width.max
        ));
        s.push_str(&format!(
            "height           min {} / median {} / max {} px\n",
            self.height.min, self.height.median, self.height.max
        ));
        let fm: Vec<String> = self
            .formats
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        s.push_str(&format!("formats          {}\n", fm.join(", ")));
        s.push_str(&format!(
            "mean (R,G,B)     {:.4} {:.4} {:.4}   (pixels in [0,1], images squished to {}x{})\n",
            self.mean[0], self.mean[1], self.mean[2], self.stats_size, self.stats_size
        ));
        s.push_str(&format!(
            "std  (R,G,B)     {:.4} {:.4} {:.4}\n",
            self.std[0], self.std[1], self.std[2]
        ));
        s
    }

    /// `key,value` rows, one per figure.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("key,value\n");
        s.push_str(&format!(
            "dataset,{}\ntask,{}\nimages,{}\n",
            self.dataset, self.task, self.images
        ));
        for c in &self.classes {
            s.push_str(&format!(
                "count.{},{}\nshare.{},{:.6}\n",
                c.name, c.count, c.name, c.share
            ));
        }
        s.push_str(&format!("imbalance_ratio,{:.6}\n", self.imbalance_ratio));
        for (name, r) in [("width", self.width), ("height", self.height)] {
            s.push_str(&format!(
                "{name}.min,{}\n{name}.median,{}\n{name}.max,{}\n",
                r.min, r.median, r.max
            ));
        }
        for (k, v) in &self.formats {
            s.push_str(&format!("format.{k},{v}\n"));
        }
        s.push_str(&format!("stats_size,{}\n", self.stats_size));
        for (i, ch) in ["r", "g", "b"].iter().enumerate() {
            s.push_str(&format!(
                "mean.{ch},{:.6}\nstd.{ch},{:.6}\n",
                self.mean[i], self.std[i]
            ));
        }
        s
    }
}
