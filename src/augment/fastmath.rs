//! Branch-free f32 `log2` and `exp2` for the lighting transform's per-value
//! `sigmoid(c * (logit(x) + logit(b)))`: libm's `ln` and `exp` are scalar
//! calls and were the largest cost of a warm epoch. These are plain
//! arithmetic on the float's bits, so loops over slices auto-vectorise;
//! `lighting_normalize` also has hand-written AVX2+FMA and AVX-512 paths.
//! Relative error is below 1e-6 on the ranges the lighting uses (tested
//! against f64's exact functions), which keeps the lighting within 1e-6
//! absolute of the exact formula on [0, 1] values.

use std::mem::MaybeUninit;

/// log2(x) for positive, normal, finite x.
#[inline(always)]
pub fn log2(x: f32) -> f32 {
    let bits = x.to_bits() as i32;
    let mut e = ((bits >> 23) & 0xff) - 127;
    // Mantissa in [1, 2), then moved into [sqrt(1/2), sqrt(2)) so the series
    // argument stays small.
    let mut m = f32::from_bits(((bits & 0x007f_ffff) | 0x3f80_0000) as u32);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += big as i32;
    // ln(m) = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.172.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series =
        t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    e as f32 + series * std::f32::consts::LOG2_E
}

/// 2^y; y is clamped to [-126, 126] (the lighting only needs the result to
/// saturate there).
#[inline(always)]
pub fn exp2(y: f32) -> f32 {
    let y = y.clamp(-126.0, 126.0);
    // Round to nearest with the 1.5 * 2^23 trick: the integer lands in the low
    // mantissa bits of `shifted`.
    const MAGIC: f32 = 12_582_912.0;
    let shifted = y + MAGIC;
    let n = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let f = y - (shifted - MAGIC); // in [-0.5, 0.5]
    // 2^f = e^(f ln 2), Taylor to degree 7 (|f ln 2| <= 0.347: error < 1e-8).
    let z = f * std::f32::consts::LN_2;
    let p = 1.0
        + z * (1.0
            + z * (0.5
                + z * (1.0 / 6.0
                    + z * (1.0 / 24.0
                        + z * (1.0 / 120.0 + z * (1.0 / 720.0 + z * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n + 127) << 23) as u32)
}

/// One image's lighting `sigmoid(c * (logit(x) + logit(b)))`, in the form
/// the kernels evaluate: `1 / (1 + 2^(c log2((1 - x) / x) + log2_k))` with
/// `log2_k = -c logit(b) / ln 2` (brightness's factor folded into the
/// exponent, one multiply less per value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LightingCoeffs {
    pub c: f32,
    pub log2_k: f32,
}

impl LightingCoeffs {
    pub fn new(brightness: f64, contrast: f64) -> Self {
        let logit_b = (brightness / (1.0 - brightness)).ln();
        LightingCoeffs {
            c: contrast as f32,
            log2_k: (-contrast * logit_b / std::f64::consts::LN_2) as f32,
        }
    }
}

/// The AVX2 path's log2: `log2(m) = t P(t^2)`, t = (m - 1) / (m + 1), for m
/// in [0.75, 1.5]: a minimax fit (error 7e-10, far below f32 rounding),
/// log2(e) folded in.
const LOG2_POLY: [f32; 4] = [2.885_39, 0.961_807_13, 0.576_149_7, 0.442_590_18];

/// `2^f` for f in [-0.5, 0.5]: degree-5 minimax fit, relative error 7.5e-8
/// (2.3e-7 evaluated in f32), lowest degree first.
const EXP2_POLY: [f32; 6] = [
    1.000_000_1,
    0.693_146_94,
    0.240_221_2,
    0.055_507_135,
    0.009_675_538,
    0.001_327_645,
];

/// `log2(1 + s)` for |s| <= 1/32: a cubic minimax fit (error 6e-8), lowest
/// degree first (`s (a1 + s (a2 + s a3))`).
const LOG2_1P_POLY: [f32; 3] = [1.442_694_9, -0.721_639_45, 0.481_297_17];

/// 1 / c_i for the centres c_i = 1 + (i + 1/2) / 16 of [1, 2)'s sixteenths,
/// rounded to f32.
static INV_CENTRES: [f32; 16] = {
    let mut t = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = (1.0 / (1.0 + (i as f64 + 0.5) / 16.0)) as f32;
        i += 1;
    }
    t
};

/// -log2 of each rounded `INV_CENTRES` entry, so that log2(m) =
/// log2(m * INV_CENTRES[i]) + LOG2_CENTRES[i] holds for the rounded table
/// (test `log2_tables_match_f64`).
static LOG2_CENTRES: [f32; 16] = [
    0.044_394_076,
    0.129_283_01,
    0.209_453_33,
    0.285_402_2,
    0.357_552_05,
    0.426_264_76,
    0.491_853_06,
    0.554_588_9,
    0.614_709_85,
    0.672_425_27,
    0.727_920_4,
    0.781_359_73,
    0.832_89,
    0.882_643_04,
    0.930_737_44,
    0.977_279_84,
];

/// The lighting, then `scale * v + offset` (the channel's Normalize folded
/// in), from `src` into `dst`. `x` is clamped to [1e-7, 1 - 1e-7] first, as
/// fastai's `logit`. AVX-512 or AVX2 + FMA where the CPU has them; every
/// path is within 1e-6 of the exact formula (before the scaling), not
/// bit-identical to the others.
#[inline(always)]
pub fn lighting_normalize(
    src: &[f32],
    dst: &mut [MaybeUninit<f32>],
    l: LightingCoeffs,
    scale: f32,
    offset: f32,
) {
    assert_eq!(
        src.len(),
        dst.len(),
        "lighting into a slice of another size"
    );
    let (n, from, to) = (src.len(), src.as_ptr(), dst.as_mut_ptr() as *mut f32);
    // SAFETY (all three): `from` and `to` hold n values each (checked just
    // above); the SIMD paths run only where the CPU has the features.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        unsafe { lighting_avx512(from, to, n, l, scale, offset) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        unsafe { lighting_avx2_fma(from, to, n, l, scale, offset) };
        return;
    }
    unsafe { lighting_scalar(from, to, n, l, scale, offset) };
}

/// `lighting_normalize` in place, without normalisation.
pub fn lighting_in_place(values: &mut [f32], l: LightingCoeffs) {
    let (n, p) = (values.len(), values.as_mut_ptr());
    // SAFETY: `p` holds n values, read before written at each index (every
    // path loads a chunk before it stores it).
    let dst = unsafe { std::slice::from_raw_parts_mut(p as *mut MaybeUninit<f32>, n) };
    let src = unsafe { std::slice::from_raw_parts(p as *const f32, n) };
    lighting_normalize(src, dst, l, 1.0, 0.0);
}

/// The portable lighting, value by value.
///
/// SAFETY: `src` and `dst` hold n values (they may be the same memory).
#[inline(always)]
unsafe fn lighting_scalar(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    l: LightingCoeffs,
    scale: f32,
    offset: f32,
) {
    for i in 0..n {
        // SAFETY: i < n.
        let x = unsafe { *src.add(i) }.clamp(1e-7, 1.0 - 1e-7);
        let y = l.c * log2((1.0 - x) / x) + l.log2_k;
        unsafe { *dst.add(i) = scale * (1.0 / (1.0 + exp2(y))) + offset };
    }
}

/// The lighting 8 values at a time with AVX2 + FMA: the three divisions
/// become reciprocal estimates refined by one Newton step (relative error
/// about 1e-7), and the polynomials use fused multiply-adds.
///
/// SAFETY: the CPU has AVX2 and FMA; `src` and `dst` hold n values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lighting_avx2_fma(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    l: LightingCoeffs,
    scale: f32,
    offset: f32,
) {
    use std::arch::x86_64::*;
    let set = _mm256_set1_ps;
    let (one, two) = (set(1.0), set(2.0));
    // 1 / x to about 1e-7: the 12-bit estimate and one Newton step.
    let recip = |x: __m256| {
        let r = _mm256_rcp_ps(x);
        _mm256_mul_ps(r, _mm256_fnmadd_ps(x, r, two))
    };
    // c times the log polynomial's coefficients: c log2(m) in one pass.
    let lc = LOG2_POLY.map(|k| set(k * l.c));
    let (cv, lk) = (set(l.c), set(l.log2_k));
    // y = c log2(r) + log2_k.
    let exponent = |r: __m256| {
        // Exponent e and mantissa m in [1, 2), moved into [sqrt(1/2), sqrt(2)).
        let bits = _mm256_castps_si256(r);
        let e = _mm256_sub_epi32(
            _mm256_and_si256(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(0xff)),
            _mm256_set1_epi32(127),
        );
        let m = _mm256_castsi256_ps(_mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x3f80_0000),
        ));
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(m, set(std::f32::consts::SQRT_2));
        let m = _mm256_blendv_ps(m, _mm256_mul_ps(m, set(0.5)), big);
        // `big` is all ones (-1) where the mantissa was halved.
        let e = _mm256_sub_epi32(e, _mm256_castps_si256(big));
        let t = _mm256_mul_ps(_mm256_sub_ps(m, one), recip(_mm256_add_ps(m, one)));
        let t2 = _mm256_mul_ps(t, t);
        let p = _mm256_fmadd_ps(_mm256_fmadd_ps(lc[3], t2, lc[2]), t2, lc[1]);
        let p = _mm256_fmadd_ps(p, t2, lc[0]);
        _mm256_fmadd_ps(t, p, _mm256_fmadd_ps(_mm256_cvtepi32_ps(e), cv, lk))
    };
    let ec = EXP2_POLY.map(|k| set(k));
    let exp2 = |y: __m256| {
        // |y| < 100 keeps 2^y finite (so the reciprocal below is never of
        // inf) and the exponent bits below in range; the lighting's values
        // stay far inside.
        let y = _mm256_min_ps(_mm256_max_ps(y, set(-100.0)), set(100.0));
        // Round to nearest with the 1.5 * 2^23 trick.
        const MAGIC: f32 = 12_582_912.0;
        let shifted = _mm256_add_ps(y, set(MAGIC));
        let n = _mm256_sub_epi32(
            _mm256_castps_si256(shifted),
            _mm256_set1_epi32(MAGIC.to_bits() as i32),
        );
        let f = _mm256_sub_ps(y, _mm256_sub_ps(shifted, set(MAGIC)));
        let mut p = ec[5];
        for k in (0..5).rev() {
            p = _mm256_fmadd_ps(p, f, ec[k]);
        }
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
        _mm256_mul_ps(p, _mm256_castsi256_ps(scale))
    };
    let (lo, hi) = (set(1e-7), set(1.0 - 1e-7));
    let (sv, ov) = (set(scale), set(offset));
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        let x = unsafe { _mm256_loadu_ps(src.add(i)) };
        let x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
        let r = _mm256_mul_ps(_mm256_sub_ps(one, x), recip(x));
        let g = recip(_mm256_add_ps(one, exp2(exponent(r))));
        unsafe { _mm256_storeu_ps(dst.add(i), _mm256_fmadd_ps(g, sv, ov)) };
        i += 8;
    }
    // SAFETY: the last n - i values of both.
    unsafe { lighting_scalar(src.add(i), dst.add(i), n - i, l, scale, offset) };
}

/// The lighting 16 values at a time with AVX-512, where the exponent and
/// mantissa (`getexp`, `getmant`), rounding (`roundscale`) and the scaling by
/// 2^n (`scalef`) are single instructions, a 16-entry table fits in one
/// register (`vpermps`), and the reciprocal estimate has 14 bits. The log2
/// comes from that table and a cubic instead of the AVX2 path's reciprocal
/// and series: 5 instructions fewer per 16 values, and the lighting about
/// 25% faster (a single-thread micro-benchmark, 121 -> 91 us per 224 px
/// image, best of 20; not kept).
///
/// SAFETY: the CPU has AVX-512F; `src` and `dst` hold n values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn lighting_avx512(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    l: LightingCoeffs,
    scale: f32,
    offset: f32,
) {
    use std::arch::x86_64::*;
    let set = _mm512_set1_ps;
    let (one, two) = (set(1.0), set(2.0));
    let recip = |x: __m512| {
        let r = _mm512_rcp14_ps(x);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, two))
    };
    // log2 from a 16-entry table (one `vpermps` each, from a register):
    // r = m 2^e with m in [1, 2); the top 4 bits of m's fraction pick the
    // centre c_i of its sixteenth, and log2(m) = log2(c_i) + log2(m / c_i)
    // where m / c_i - 1 is within 1/32 of 0, so a cubic is enough.
    // SAFETY: both tables hold 16 f32.
    let (inv_centre, log_centre) = unsafe {
        (
            _mm512_loadu_ps(INV_CENTRES.as_ptr()),
            _mm512_loadu_ps(LOG2_CENTRES.as_ptr()),
        )
    };
    let log_centre = _mm512_mul_ps(log_centre, set(l.c));
    let lc = LOG2_1P_POLY.map(|k| set(k * l.c));
    let (cv, lk) = (set(l.c), set(l.log2_k));
    let exponent = |r: __m512| {
        let e = _mm512_getexp_ps(r);
        let m = _mm512_getmant_ps::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(r);
        // Fraction bits 19-22; `vpermps` reads only the low 4 bits of each lane.
        let i = _mm512_srli_epi32::<19>(_mm512_castps_si512(m));
        let s = _mm512_fmsub_ps(m, _mm512_permutexvar_ps(i, inv_centre), one);
        let p = _mm512_fmadd_ps(lc[2], s, lc[1]);
        let p = _mm512_fmadd_ps(p, s, lc[0]);
        let base = _mm512_add_ps(
            _mm512_fmadd_ps(e, cv, lk),
            _mm512_permutexvar_ps(i, log_centre),
        );
        _mm512_fmadd_ps(s, p, base)
    };
    let ec = EXP2_POLY.map(|k| set(k));
    let exp2 = |y: __m512| {
        // y < 100 keeps 2^y finite (the reciprocal below is never of inf);
        // far below, scalef gives 0, and the lighting 1.
        let y = _mm512_min_ps(y, set(100.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
        let f = _mm512_sub_ps(y, n);
        let mut p = ec[5];
        for k in (0..5).rev() {
            p = _mm512_fmadd_ps(p, f, ec[k]);
        }
        _mm512_scalef_ps(p, n)
    };
    let (lo, hi) = (set(1e-7), set(1.0 - 1e-7));
    let (sv, ov) = (set(scale), set(offset));
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        let x = unsafe { _mm512_loadu_ps(src.add(i)) };
        let x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
        let r = _mm512_mul_ps(_mm512_sub_ps(one, x), recip(x));
        let g = recip(_mm512_add_ps(one, exp2(exponent(r))));
        unsafe { _mm512_storeu_ps(dst.add(i), _mm512_fmadd_ps(g, sv, ov)) };
        i += 16;
    }
    // SAFETY: the last n - i values of both.
    unsafe { lighting_scalar(src.add(i), dst.add(i), n - i, l, scale, offset) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_f64_on_the_lighting_range() {
        let mut worst = 0f64;
        // (1 - x) / x for x in [1e-7, 1 - 1e-7] spans about [1e-7, 1e7].
        let mut x = 1e-7f32;
        while x < 1.1e7 {
            let want = (x as f64).log2();
            let got = log2(x) as f64;
            worst = worst.max((got - want).abs() / want.abs().max(1.0));
            x *= 1.000_37;
        }
        assert!(worst < 1e-6, "worst error {worst}");
    }

    #[test]
    fn exp2_matches_f64() {
        let mut worst = 0f64;
        let mut y = -60f32;
        while y < 60.0 {
            let want = (y as f64).exp2();
            let got = exp2(y) as f64;
            worst = worst.max((got - want).abs() / want);
            y += 0.0137;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        // Saturates instead of wrapping.
        assert!(exp2(1000.0) > 1e37);
        assert!(exp2(-1000.0) < 1e-37);
    }

    #[test]
    fn log2_tables_match_f64() {
        for i in 0..16 {
            let centre = 1.0 + (i as f64 + 0.5) / 16.0;
            assert_eq!(INV_CENTRES[i], (1.0 / centre) as f32);
            let want = -(INV_CENTRES[i] as f64).log2();
            assert!((LOG2_CENTRES[i] as f64 - want).abs() < 6e-8, "{i}");
        }
    }

    type Path = unsafe fn(*const f32, *mut f32, usize, LightingCoeffs, f32, f32);

    /// Every path this CPU has, by name.
    fn paths() -> Vec<(&'static str, Path)> {
        let mut v: Vec<(&'static str, Path)> = vec![("scalar", lighting_scalar)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(("avx2+fma", lighting_avx2_fma));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(("avx-512", lighting_avx512));
            }
        }
        v
    }

    /// Every path against the formula in f64 with libm's functions, over
    /// [0, 1] including both clamped ends, then with a channel's Normalize
    /// folded in.
    #[test]
    fn lighting_matches_the_exact_logit_formula() {
        let xs: Vec<f32> = (0..=20_000).map(|i| i as f32 / 20_000.0).collect();
        for (name, path) in paths() {
            for (scale, offset) in [(1.0f32, 0.0f32), (1.0 / 0.229, -0.485 / 0.229)] {
                let mut worst = 0f64;
                for &(b, c) in &[
                    (0.5f64, 1.0f64),
                    (0.4, 0.8),
                    (0.6, 1.25),
                    (0.3, 2.0),
                    (0.55, 0.5),
                    (0.2, 3.0),
                ] {
                    let l = LightingCoeffs::new(b, c);
                    let mut got = vec![0f32; xs.len()];
                    // SAFETY: both hold xs.len() values; `paths` lists only
                    // what this CPU has.
                    unsafe { path(xs.as_ptr(), got.as_mut_ptr(), xs.len(), l, scale, offset) };
                    let lb = (b / (1.0 - b)).ln();
                    for (&x, &g) in xs.iter().zip(&got) {
                        // fastai clamps the f32 tensor: 1 - 1e-7 is 1 - 1.19e-7 in f32.
                        let x = x.clamp(1e-7, 1.0 - 1e-7) as f64;
                        let want = 1.0 / (1.0 + (-(c * ((x / (1.0 - x)).ln() + lb))).exp());
                        let want = scale as f64 * want + offset as f64;
                        worst = worst.max((g as f64 - want).abs() / scale as f64);
                    }
                }
                assert!(worst < 1e-6, "{name}, scale {scale}: worst error {worst}");
            }
        }
    }

    #[test]
    fn in_place_and_tails_equal_the_copying_form() {
        // 37 values: two AVX-512 chunks or four AVX2 ones, and a scalar tail.
        let xs: Vec<f32> = (0..37).map(|i| i as f32 / 36.0).collect();
        let l = LightingCoeffs::new(0.45, 1.2);
        let mut copied = vec![MaybeUninit::new(0f32); xs.len()];
        lighting_normalize(&xs, &mut copied, l, 1.0, 0.0);
        let mut in_place = xs.clone();
        lighting_in_place(&mut in_place, l);
        for (a, b) in copied.iter().zip(&in_place) {
            // SAFETY: every value was written.
            assert_eq!(unsafe { a.assume_init() }.to_bits(), b.to_bits());
        }
        // Neutral lighting (b = 0.5, c = 1) is the identity, to 1e-6.
        let mut v = xs.clone();
        lighting_in_place(&mut v, LightingCoeffs::new(0.5, 1.0));
        for (a, b) in v.iter().zip(&xs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
