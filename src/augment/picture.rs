//! Pictures of batches: each normalised CHW image decoded back to RGB
//! (fastai's `Normalize.decodes`), laid out in a grid with its label written
//! underneath, saved as a PNG that never replaces an existing file.

use super::font::{ADVANCE, GLYPH_H, draw_text};
use super::normalize::Normalization;
use crate::error::{Error, Result};
use crate::run::rundir::create_new_file;
use image::RgbImage;
use std::path::Path;

/// A normalised (3, s, s) image back to RGB u8, clamped to [0, 255].
pub fn chw_to_rgb(chw: &[f32], s: usize, norm: &Normalization) -> RgbImage {
    let mut x = chw.to_vec();
    norm.decode(&mut x);
    let plane = s * s;
    RgbImage::from_fn(s as u32, s as u32, |px, py| {
        let p = py as usize * s + px as usize;
        image::Rgb(std::array::from_fn(|c| {
            (x[c * plane + p] * 255.0).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// Images (all of one size) in a grid of `cols` columns, each with its label
/// in a white band below, cut to the characters that fit.
pub fn grid(images: &[RgbImage], labels: &[String], cols: usize) -> RgbImage {
    let (s, sh) = images.first().map(|i| i.dimensions()).unwrap_or((1, 1));
    let scale = if s >= 160 { 2 } else { 1 };
    let band = GLYPH_H * scale + 6;
    let gap = 4;
    let cols = cols.clamp(1, images.len().max(1));
    let rows = images.len().div_ceil(cols).max(1);
    let cell_w = s + gap;
    let cell_h = sh + band + gap;
    let mut out = RgbImage::from_pixel(
        cols as u32 * cell_w + gap,
        rows as u32 * cell_h + gap,
        image::Rgb([255; 3]),
    );
    let fit = ((s / (ADVANCE * scale)) as usize).max(1);
    for (k, img) in images.iter().enumerate() {
        let x = gap + (k % cols) as u32 * cell_w;
        let y = gap + (k / cols) as u32 * cell_h;
        image::imageops::replace(&mut out, img, x as i64, y as i64);
        let label: String = labels
            .get(k)
            .map(|l| l.chars().take(fit).collect())
            .unwrap_or_default();
        draw_text(&mut out, x, y + sh + 3, &label, scale, [0, 0, 0]);
    }
    out
}

/// Write a PNG to a new file; an existing file is an input error (exit 2).
pub fn save_new_png(img: &RgbImage, path: &Path) -> Result<()> {
    let file = create_new_file(path)?;
    let mut w = std::io::BufWriter::new(file);
    img.write_to(&mut w, image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("{}: cannot write the PNG ({e})", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_pixels_round_trip() {
        let img = RgbImage::from_fn(3, 3, |x, y| image::Rgb([(x * 80) as u8, (y * 80) as u8, 7]));
        let mut chw = vec![0f32; 27];
        super::super::pipeline::to_chw(&img, &mut chw);
        let n = Normalization::imagenet();
        n.apply(&mut chw);
        assert_eq!(chw_to_rgb(&chw, 3, &n), img);
    }

    #[test]
    fn grid_has_one_cell_per_image_and_never_overwrites() {
        let imgs = vec![RgbImage::from_pixel(20, 20, image::Rgb([9, 9, 9])); 5];
        let labels: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
        let g = grid(&imgs, &labels, 3);
        // 3 columns x 2 rows of (20 + 4) plus the outer gap; band 13 below each.
        assert_eq!(g.dimensions(), (3 * 24 + 4, 2 * (20 + 13 + 4) + 4));
        assert_eq!(g.get_pixel(4, 4).0, [9, 9, 9]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        save_new_png(&g, &p).unwrap();
        let err = save_new_png(&g, &p).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
