//! fastai's affine/coordinate batch transforms on one f32 CHW image: flip (or
//! dihedral), rotate and zoom multiplied into ONE matrix (`I @ flip @ rotate @
//! zoom`), the perspective warp applied to the resulting coordinates, and ONE
//! bilinear resample with reflection padding (`F.affine_grid` +
//! `F.grid_sample(align_corners=True, padding_mode="reflection")`).

/// A 3x3 matrix acting on normalised coordinates (x, y, 1) in [-1, 1].
pub type Mat3 = [[f64; 3]; 3];

pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// `flip_mat`: x scaled by -1 when flipped.
pub fn flip_mat(flipped: bool) -> Mat3 {
    let s = if flipped { -1.0 } else { 1.0 };
    [[s, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

/// `dihedral_mat` for k in 0..8 (fastai's tables of xs, ys, m0, m1).
pub fn dihedral_mat(k: usize) -> Mat3 {
    const XS: [f64; 8] = [1., -1., 1., -1., -1., 1., 1., -1.];
    const YS: [f64; 8] = [1., 1., -1., 1., -1., -1., 1., -1.];
    const M0: [f64; 8] = [1., 1., 1., 0., 1., 0., 0., 0.];
    const M1: [f64; 8] = [0., 0., 0., 1., 0., 1., 1., 1.];
    let k = k % 8;
    [
        [XS[k] * M0[k], XS[k] * M1[k], 0.0],
        [YS[k] * M1[k], YS[k] * M0[k], 0.0],
        [0.0, 0.0, 1.0],
    ]
}

/// `rotate_mat`: [[cos, sin, 0], [-sin, cos, 0]] for `degrees`.
pub fn rotate_mat(degrees: f64) -> Mat3 {
    let t = degrees.to_radians();
    [
        [t.cos(), t.sin(), 0.0],
        [-t.sin(), t.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ]
}

/// `zoom_mat`: s = 1/zoom, translation (1 - s)(2 pct - 1) per axis.
pub fn zoom_mat(zoom: f64, col_pct: f64, row_pct: f64) -> Mat3 {
    let s = 1.0 / zoom;
    [
        [s, 0.0, (1.0 - s) * (2.0 * col_pct - 1.0)],
        [0.0, s, (1.0 - s) * (2.0 * row_pct - 1.0)],
        [0.0, 0.0, 1.0],
    ]
}

/// `_prepare_mat`: correct rotation for non-square images (h, w); keep 2 rows.
pub fn prepare_mat(m: &Mat3, h: usize, w: usize) -> [[f64; 3]; 2] {
    let (h, w) = (h as f64, w as f64);
    let mut r = [m[0], m[1]];
    r[0][1] *= h / w;
    r[1][0] *= w / h;
    r
}

/// The 8 perspective coefficients of fastai's Warp for draws (x_t, y_t):
/// `find_coeffs(orig_pts, targ_pts)`, the homography taking the moved corners
/// back to the original ones, applied to the sampling coordinates.
/// None when the system is singular (cannot happen for |x_t|, |y_t| < 1).
pub fn warp_coeffs(x_t: f64, y_t: f64) -> Option<[f64; 8]> {
    let orig = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)];
    let targ = [
        (-1.0 - y_t, -1.0 - x_t),
        (-1.0 + y_t, 1.0 + x_t),
        (1.0 + y_t, -1.0 + x_t),
        (1.0 - y_t, 1.0 - x_t),
    ];
    let mut a = [[0.0f64; 9]; 8];
    for i in 0..4 {
        let (p1x, p1y) = orig[i];
        let (p2x, p2y) = targ[i];
        a[2 * i] = [p2x, p2y, 1.0, 0.0, 0.0, 0.0, -p1x * p2x, -p1x * p2y, p1x];
        a[2 * i + 1] = [0.0, 0.0, 0.0, p2x, p2y, 1.0, -p1y * p2x, -p1y * p2y, p1y];
    }
    solve8(a)
}

/// Gaussian elimination with partial pivoting on an augmented 8x9 system.
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let piv = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        let pivot_row = a[col];
        for (row, r) in a.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / pivot_row[col];
                if f != 0.0 {
                    for (v, p) in r.iter_mut().zip(&pivot_row).skip(col) {
                        *v -= f * p;
                    }
                }
            }
        }
    }
    Some(std::array::from_fn(|i| a[i][8] / a[i][i]))
}

/// `apply_perspective` on one point; fastai keeps the point when the
/// denominator is exactly 0.
pub fn perspective(c: &[f64; 8], x: f64, y: f64) -> (f64, f64) {
    let d = c[6] * x + c[7] * y + 1.0;
    if d == 0.0 {
        return (x, y);
    }
    (
        (c[0] * x + c[1] * y + c[2]) / d,
        (c[3] * x + c[4] * y + c[5]) / d,
    )
}

/// torch's `reflect_coordinates` + `clip_coordinates` for align_corners=True:
/// reflect about the first and last pixel centres.
pub fn reflect(x: f64, n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let span = (n - 1) as f64;
    let x = x.abs();
    let flips = (x / span).floor();
    let extra = x - flips * span;
    let r = if flips as i64 % 2 == 0 {
        extra
    } else {
        span - extra
    };
    r.clamp(0.0, span)
}

/// Bilinear sample of all channels at pixel coordinates (ix, iy), already
/// inside [0, w-1] x [0, h-1].
#[inline]
#[allow(clippy::too_many_arguments)] // the hot loop's state, passed flat on purpose
fn sample(src: &[f32], c: usize, h: usize, w: usize, ix: f64, iy: f64, out: &mut [f32], o: usize) {
    let plane = h * w;
    let x0 = ix.floor() as usize;
    let y0 = iy.floor() as usize;
    let wx = (ix - x0 as f64) as f32;
    let wy = (iy - y0 as f64) as f32;
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    for ch in 0..c {
        let p = &src[ch * plane..(ch + 1) * plane];
        let top = p[y0 * w + x0] * (1.0 - wx) + p[y0 * w + x1] * wx;
        let bot = p[y1 * w + x0] * (1.0 - wx) + p[y1 * w + x1] * wx;
        out[ch * plane + o] = top * (1.0 - wy) + bot * wy;
    }
}

/// Resample a CHW image (c, h, w) into `out` (same shape): output pixel (i, j)
/// at normalised (gx, gy) (linspace(-1, 1) over each side, align_corners=True)
/// reads the source at `warp(mat @ (gx, gy, 1))`, bilinear, reflection padding.
pub fn resample(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    mat: &[[f64; 3]; 2],
    warp: Option<&[f64; 8]>,
    out: &mut [f32],
) {
    let norm = |i: usize, n: usize| {
        if n <= 1 {
            -1.0
        } else {
            -1.0 + 2.0 * i as f64 / (n - 1) as f64
        }
    };
    for i in 0..h {
        let gy = norm(i, h);
        for j in 0..w {
            let gx = norm(j, w);
            let mut sx = mat[0][0] * gx + mat[0][1] * gy + mat[0][2];
            let mut sy = mat[1][0] * gx + mat[1][1] * gy + mat[1][2];
            if let Some(cf) = warp {
                (sx, sy) = perspective(cf, sx, sy);
            }
            let ix = reflect((sx + 1.0) / 2.0 * (w as f64 - 1.0), w);
            let iy = reflect((sy + 1.0) / 2.0 * (h as f64 - 1.0), h);
            sample(src, c, h, w, ix, iy, out, i * w + j);
        }
    }
}

/// Crop rows `top..top+ch`, columns `left..left+cw` of a CHW image and resize
/// the crop back to (h, w) with the same bilinear grid sampling
/// (RandomResizedCropGPU's `affine_coord(sz=size)` on the cropped tensor).
#[allow(clippy::too_many_arguments)]
pub fn crop_resample(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    top: usize,
    left: usize,
    ch: usize,
    cw: usize,
    out: &mut [f32],
) {
    let plane = h * w;
    let mut crop = vec![0f32; c * ch * cw];
    for k in 0..c {
        for y in 0..ch {
            let s = k * plane + (top + y) * w + left;
            crop[(k * ch + y) * cw..(k * ch + y + 1) * cw].copy_from_slice(&src[s..s + cw]);
        }
    }
    // Identity matrix on the crop, sampled at the output's grid: pixel j maps to
    // j * (cw - 1) / (w - 1) of the crop.
    let scale = |n_in: usize, n_out: usize| {
        if n_out <= 1 {
            0.0
        } else {
            (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
        }
    };
    let (sx, sy) = (scale(cw, w), scale(ch, h));
    let cplane = ch * cw;
    for i in 0..h {
        let iy = (i as f64 * sy).clamp(0.0, ch as f64 - 1.0);
        for j in 0..w {
            let ix = (j as f64 * sx).clamp(0.0, cw as f64 - 1.0);
            let x0 = ix.floor() as usize;
            let y0 = iy.floor() as usize;
            let (wx, wy) = ((ix - x0 as f64) as f32, (iy - y0 as f64) as f32);
            let (x1, y1) = ((x0 + 1).min(cw - 1), (y0 + 1).min(ch - 1));
            for k in 0..c {
                let p = &crop[k * cplane..(k + 1) * cplane];
                let top = p[y0 * cw + x0] * (1.0 - wx) + p[y0 * cw + x1] * wx;
                let bot = p[y1 * cw + x0] * (1.0 - wx) + p[y1 * cw + x1] * wx;
                out[k * plane + i * w + j] = top * (1.0 - wy) + bot * wy;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(c: usize, h: usize, w: usize) -> Vec<f32> {
        let mut r = crate::rng::Rng::new(2);
        (0..c * h * w).map(|_| r.next_f64() as f32).collect()
    }

    #[test]
    fn identity_parameters_return_the_input() {
        let (c, h, w) = (3, 7, 9);
        let x = noise(c, h, w);
        let mut out = vec![0f32; x.len()];
        let m = matmul(
            &matmul(&matmul(&IDENTITY, &flip_mat(false)), &rotate_mat(0.0)),
            &zoom_mat(1.0, 0.3, 0.8),
        );
        let coeffs = warp_coeffs(0.0, 0.0).unwrap();
        resample(&x, c, h, w, &prepare_mat(&m, h, w), Some(&coeffs), &mut out);
        let err = x
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max error {err}");
        // An identity-sized crop is the identity too.
        crop_resample(&x, c, h, w, 0, 0, h, w, &mut out);
        assert_eq!(x, out);
    }

    #[test]
    fn flip_matrix_mirrors_exactly() {
        let (c, h, w) = (1, 3, 4);
        let x = noise(c, h, w);
        let mut out = vec![0f32; x.len()];
        resample(
            &x,
            c,
            h,
            w,
            &prepare_mat(&flip_mat(true), h, w),
            None,
            &mut out,
        );
        for i in 0..h {
            for j in 0..w {
                assert!((out[i * w + j] - x[i * w + w - 1 - j]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn rotation_by_90_degrees_on_a_square_is_a_transpose_flip() {
        let (c, h, w) = (1, 5, 5);
        let x = noise(c, h, w);
        let mut out = vec![0f32; x.len()];
        resample(
            &x,
            c,
            h,
            w,
            &prepare_mat(&rotate_mat(90.0), h, w),
            None,
            &mut out,
        );
        // [[0,1],[-1,0]]: source (gy, -gx): out(i, j) = x(row w-1-j, col i).
        for i in 0..h {
            for j in 0..w {
                assert!((out[i * w + j] - x[(w - 1 - j) * w + i]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn dihedral_matrices_are_the_eight_symmetries() {
        let mats: Vec<Mat3> = (0..8).map(dihedral_mat).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(mats[i], mats[j]);
            }
            // Orthogonal with entries +-1/0: its own transpose is its inverse.
            let t: Mat3 = std::array::from_fn(|r| std::array::from_fn(|c| mats[i][c][r]));
            assert_eq!(matmul(&mats[i], &t), IDENTITY);
        }
    }

    #[test]
    fn warp_moves_corners_as_fastai() {
        let c = warp_coeffs(0.1, -0.05).unwrap();
        // The homography takes each target corner back to its original corner.
        let targ = [
            (-1.0 + 0.05, -1.1),
            (-1.0 - 0.05, 1.1),
            (1.0 - 0.05, -0.9),
            (1.0 + 0.05, 0.9),
        ];
        let orig = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)];
        for (t, o) in targ.iter().zip(orig) {
            let p = perspective(&c, t.0, t.1);
            assert!(
                (p.0 - o.0).abs() < 1e-9 && (p.1 - o.1).abs() < 1e-9,
                "{p:?} vs {o:?}"
            );
        }
    }

    #[test]
    fn reflection_padding_mirrors_about_edge_centres() {
        assert_eq!(reflect(-1.0, 5), 1.0);
        assert_eq!(reflect(5.0, 5), 3.0);
        assert_eq!(reflect(9.0, 5), 1.0);
        assert_eq!(reflect(2.5, 5), 2.5);
    }
}
