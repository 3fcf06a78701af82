//! Decoding image files into RGB pixels, and resizing them.
//!
//! Grayscale becomes three equal channels; transparency is composited on white
//! (tuxpaint's cut-outs and many PNGs carry alpha, and white is what a viewer shows).

use crate::error::{Error, Result};
use fast_image_resize as fr;
use image::{DynamicImage, ImageReader, RgbImage};
use std::path::Path;

/// Decode a JPEG or PNG into 8-bit RGB. A missing, empty, truncated or
/// non-image file is an `Error::Input` naming the file.
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb_bytes(&bytes, path)
}

/// Decode bytes already read from `path` (named in messages).
pub fn decode_rgb_bytes(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::input(format!(
            "{}: the file is empty (0 bytes)\nfix: replace it with the real image or remove its row",
            path.display()
        )));
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader.decode().map_err(|e| {
        Error::input(format!(
            "{}: cannot decode the image ({e})\nfix: the file is corrupt, truncated or not a JPEG/PNG; replace it or remove its row (or set data.on_corrupt = \"skip\")",
            path.display()
        ))
    })?;
    Ok(to_rgb_on_white(img))
}

/// Convert any decoded image to RGB8, compositing transparency on white.
pub fn to_rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = src[3] as u32;
        for c in 0..3 {
            // out = a*src + (1-a)*255, rounded.
            dst[c] = ((src[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Resize to exactly `width` x `height` (aspect not kept: fastai's "squish"),
/// bilinear with antialiasing when shrinking.
pub fn resize_rgb(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    if img.width() == width && img.height() == height {
        return img.clone();
    }
    let src =
        fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3)
            .expect("an RgbImage buffer matches its dimensions");
    let mut dst = fr::images::Image::new(width, height, fr::PixelType::U8x3);
    let mut resizer = fr::Resizer::new();
    let opts =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("same pixel type on both sides");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer of the requested size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_is_composited_on_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let rgb = to_rgb_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }

    #[test]
    fn gray_becomes_three_equal_channels() {
        let g = image::GrayImage::from_pixel(3, 3, image::Luma([77]));
        let rgb = to_rgb_on_white(DynamicImage::ImageLuma8(g));
        assert_eq!(rgb.get_pixel(1, 1).0, [77, 77, 77]);
    }

    #[test]
    fn resize_keeps_a_flat_colour() {
        let img = RgbImage::from_pixel(40, 30, image::Rgb([200, 100, 50]));
        let r = resize_rgb(&img, 17, 9);
        assert_eq!(r.dimensions(), (17, 9));
        assert!(r.pixels().all(|p| p.0 == [200, 100, 50]));
    }

    #[test]
    fn garbage_bytes_are_an_input_error() {
        let err = decode_rgb_bytes(b"not an image at all", Path::new("x.jpg")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("x.jpg"));
    }
}
