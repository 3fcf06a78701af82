//! JPEG decoding at 1/2, 1/4 or 1/8 scale inside the inverse DCT (libjpeg's
//! `scale_denom`, PIL's `draft`).
//!
//! A 2048x1365 photo trained at 224 px needs far fewer pixels than it holds:
//! computing only the low-frequency corner of each 8x8 block gives the image
//! at 1/8 size for a fraction of the full decode's cost, and the resize that
//! follows then has little left to do. Every entropy-coded block is still
//! read, so a truncated or corrupt file fails here as it does at full size.
//!
//! Only 8-bit grayscale and YCbCr/RGB JPEGs take this path; CMYK/YCCK and
//! 12/16-bit files keep the full decode of `decode::decode_rgb_bytes`, whose
//! colour conversion they have always had. EXIF orientation is not applied,
//! as in the full decode (the pixels are used as stored).

use crate::error::{Error, Result};
use image::RgbImage;
use jpeg_decoder::{Decoder, PixelFormat};
use std::path::Path;

/// The IDCT reductions jpeg-decoder offers, largest first.
const DENOMS: [u32; 3] = [8, 4, 2];

/// True when `bytes` start like a JPEG (SOI then a marker), whatever the
/// file's extension says.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}

/// One side of a JPEG decoded at 1/`denom` (the decoder rounds up).
pub fn scaled_side(side: u32, denom: u32) -> u32 {
    side.div_ceil(denom)
}

/// The largest reduction 1/`denom` whose decoded image is still at least
/// `need` on BOTH sides (1 when none is). `need` is what the cache keeps
/// (`augment::pipeline::cached_dims`): the item transforms only ever read
/// that image, so decoding at least that many pixels per side loses nothing
/// they use. Requiring both sides is the conservative rule: for "squish" both
/// sides must reach the square's side; for crop, pad and RandomResizedCrop
/// the cached image keeps the aspect ratio, so both sides of the reduced
/// image reaching it is the same as the fitted side reaching the size.
pub fn choose_denom(orig: (u32, u32), need: (u32, u32)) -> u32 {
    DENOMS
        .into_iter()
        .find(|&d| scaled_side(orig.0, d) >= need.0 && scaled_side(orig.1, d) >= need.1)
        .unwrap_or(1)
}

/// A JPEG's header: its size, and whether the scaled path can decode it.
pub struct Header {
    pub width: u32,
    pub height: u32,
    scalable: bool,
}

/// Read the header of the JPEG in `bytes`; None when jpeg-decoder cannot
/// (the full decode then reports the file in its usual words).
pub fn read_header(bytes: &[u8]) -> Option<Header> {
    let mut dec = Decoder::new(bytes);
    dec.read_info().ok()?;
    let info = dec.info()?;
    Some(Header {
        width: u32::from(info.width),
        height: u32::from(info.height),
        scalable: matches!(info.pixel_format, PixelFormat::L8 | PixelFormat::RGB24),
    })
}

/// Decode the JPEG in `bytes` at 1/`denom` scale into RGB. None when this
/// path does not apply (not scalable, or `denom` is 1): decode it in full.
/// A decoding failure is an `Error::Input` naming `path`.
pub fn decode_scaled(
    bytes: &[u8],
    header: &Header,
    denom: u32,
    path: &Path,
) -> Result<Option<RgbImage>> {
    if !header.scalable || denom <= 1 {
        return Ok(None);
    }
    let w = scaled_side(header.width, denom);
    let h = scaled_side(header.height, denom);
    let mut dec = Decoder::new(bytes);
    // `scale` picks the smallest reduction reaching the request on EITHER
    // side; asking for exactly the reduced size selects 1/denom (checked below).
    let (sw, sh) = dec
        .scale(w as u16, h as u16)
        .map_err(|e| jpeg_error(path, &e))?;
    if (u32::from(sw), u32::from(sh)) != (w, h) {
        return Ok(None);
    }
    let pixels = dec.decode().map_err(|e| jpeg_error(path, &e))?;
    let gray = matches!(dec.info().map(|i| i.pixel_format), Some(PixelFormat::L8));
    let rgb = if gray {
        pixels.iter().flat_map(|&v| [v, v, v]).collect()
    } else {
        pixels
    };
    RgbImage::from_raw(w, h, rgb)
        .map(Some)
        .ok_or_else(|| decode_error(path, &"fewer pixels than the header says"))
}

/// Decode an 8-bit grayscale or YCbCr/RGB JPEG at the smallest scale only
/// to learn whether it decodes: Ok(false) when this decoder does not take
/// the file (CMYK, 12/16-bit, a header it cannot read): decode it in full.
pub fn check_smallest(bytes: &[u8], path: &Path) -> Result<bool> {
    if !read_header(bytes).is_some_and(|h| h.scalable) {
        return Ok(false);
    }
    let mut dec = Decoder::new(bytes);
    dec.scale(1, 1).map_err(|e| jpeg_error(path, &e))?;
    dec.decode().map_err(|e| jpeg_error(path, &e))?;
    Ok(true)
}

/// jpeg-decoder's error, in words: running out of bytes means truncation.
fn jpeg_error(path: &Path, e: &jpeg_decoder::Error) -> Error {
    match e {
        jpeg_decoder::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            decode_error(path, &"the file ends before the image data does: truncated")
        }
        other => decode_error(path, other),
    }
}

/// The message of an undecodable file (the full decode's words).
pub fn decode_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::input(format!(
        "{}: cannot decode the image ({e})\nfix: the file is corrupt, truncated or not a JPEG/PNG; replace it or remove its row (or set data.on_corrupt = \"skip\")",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reduction_keeps_both_sides_at_least_what_is_needed() {
        // 224 px squished from a 2048x1365 photo: 1/4 (512x342), not 1/8,
        // whose 171-pixel height would be short of 224.
        assert_eq!(choose_denom((2048, 1365), (224, 224)), 4);
        // Shorter side fitted to 224 keeps the ratio (336x224): 1/4 too.
        assert_eq!(choose_denom((2048, 1365), (336, 224)), 4);
        // 128 px: 1/8 gives 256x171, both >= 128.
        assert_eq!(choose_denom((2048, 1365), (128, 128)), 8);
        // Just over a half: only 1/1 holds.
        assert_eq!(choose_denom((300, 300), (151, 151)), 1);
        assert_eq!(choose_denom((300, 300), (150, 150)), 2);
        // Odd sides round up as the decoder does: 301/2 -> 151.
        assert_eq!(choose_denom((301, 301), (151, 151)), 2);
        // Never upscaled: a small image needs its own size.
        assert_eq!(choose_denom((50, 40), (50, 40)), 1);
    }

    #[test]
    fn only_jpeg_magic_counts() {
        assert!(is_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(!is_jpeg(b"\x89PNG\r\n\x1a\n"));
        assert!(!is_jpeg(&[0xFF, 0xD8]));
    }
}
