//! fastai's MixUp and CutMix (callback/mixup.py) on a normalised batch
//! (n, c, h, w), training only. Both return what the loss needs to mix: the
//! permutation (sample i's partner is perm[i]) and one lambda per sample, the
//! weight of the sample's own target:
//! loss = mean_i(lam_i * CE(pred_i, y_i) + (1 - lam_i) * CE(pred_i, y_perm[i])).

use super::beta::beta;
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct Mixed {
    pub perm: Vec<usize>,
    pub lam: Vec<f32>,
}

/// A random permutation of 0..n (torch.randperm's role).
pub fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut p);
    p
}

/// x_i = lam_i * x_i + (1 - lam_i) * x_perm[i] (torch.lerp(x[perm], x, lam)),
/// every partner taken from the batch before mixing.
pub fn mixup_with(x: &mut [f32], lam: &[f32], perm: &[usize]) {
    let n = lam.len();
    if n == 0 {
        return;
    }
    let len = x.len() / n;
    let orig = x.to_vec();
    for (i, img) in x.chunks_mut(len).enumerate() {
        let other = &orig[perm[i] * len..(perm[i] + 1) * len];
        let l = lam[i];
        for (v, o) in img.iter_mut().zip(other) {
            *v = o + l * (*v - o);
        }
    }
}

/// MixUp(alpha): lam_i ~ Beta(alpha, alpha) per sample, lam_i = max(lam_i, 1 - lam_i).
pub fn mixup(x: &mut [f32], n: usize, alpha: f64, rng: &mut Rng) -> Mixed {
    let lam: Vec<f32> = (0..n)
        .map(|_| {
            let l = beta(rng, alpha, alpha);
            l.max(1.0 - l) as f32
        })
        .collect();
    let perm = permutation(n, rng);
    mixup_with(x, &lam, &perm);
    Mixed { perm, lam }
}

/// CutMix's box: columns x1..x2, rows y1..y2 (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    pub x1: usize,
    pub y1: usize,
    pub x2: usize,
    pub y2: usize,
}

/// fastai's `rand_bbox` for a drawn centre (cx, cy): cut_rat = sqrt(1 - lam),
/// cut sides torch.round(side * cut_rat) (halves to even), the box
/// clamp(centre -+ cut // 2, 0, side).
pub fn cut_box(w: usize, h: usize, lam: f64, cx: usize, cy: usize) -> CutBox {
    let cut_rat = (1.0 - lam).max(0.0).sqrt();
    let cut_w = (w as f64 * cut_rat).round_ties_even() as i64;
    let cut_h = (h as f64 * cut_rat).round_ties_even() as i64;
    let clamp = |v: i64, side: usize| v.clamp(0, side as i64) as usize;
    CutBox {
        x1: clamp(cx as i64 - cut_w / 2, w),
        y1: clamp(cy as i64 - cut_h / 2, h),
        x2: clamp(cx as i64 + cut_w / 2, w),
        y2: clamp(cy as i64 + cut_h / 2, h),
    }
}

/// Paste each partner's box into each image; returns the corrected lambda
/// 1 - box area / image area.
pub fn cutmix_with(
    x: &mut [f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    perm: &[usize],
    b: CutBox,
) -> f32 {
    let len = c * h * w;
    let orig = x.to_vec();
    for (i, &partner) in perm.iter().enumerate().take(n) {
        let src = partner * len;
        let dst = i * len;
        for ch in 0..c {
            for y in b.y1..b.y2 {
                let o = ch * h * w + y * w;
                x[dst + o + b.x1..dst + o + b.x2]
                    .copy_from_slice(&orig[src + o + b.x1..src + o + b.x2]);
            }
        }
    }
    let area = ((b.x2 - b.x1) * (b.y2 - b.y1)) as f64;
    (1.0 - area / (w * h).max(1) as f64) as f32
}

/// CutMix(alpha): ONE lam ~ Beta(alpha, alpha) per batch (no max trick), a
/// permutation, a uniform box centre, then lambda corrected by the box area.
pub fn cutmix(
    x: &mut [f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    alpha: f64,
    rng: &mut Rng,
) -> Mixed {
    let lam = beta(rng, alpha, alpha);
    let perm = permutation(n, rng);
    let (cx, cy) = (rng.below(w.max(1)), rng.below(h.max(1)));
    let b = cut_box(w, h, lam, cx, cy);
    let lam = cutmix_with(x, n, c, h, w, &perm, b);
    Mixed {
        perm,
        lam: vec![lam; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixup_is_the_lerp_for_given_lambda_and_permutation() {
        // 3 images of 2 values each.
        let mut x = vec![1.0f32, 2.0, 10.0, 20.0, 100.0, 200.0];
        let lam = [0.7f32, 0.5, 0.9];
        let perm = [2, 0, 1];
        mixup_with(&mut x, &lam, &perm);
        let want = [
            0.7 * 1.0 + 0.3 * 100.0,
            0.7 * 2.0 + 0.3 * 200.0,
            0.5 * 10.0 + 0.5 * 1.0,
            0.5 * 20.0 + 0.5 * 2.0,
            0.9 * 100.0 + 0.1 * 10.0,
            0.9 * 200.0 + 0.1 * 20.0,
        ];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{x:?}");
        }
    }

    #[test]
    fn mixup_lambdas_are_at_least_a_half() {
        let mut rng = Rng::new(8);
        let mut x = vec![0f32; 64 * 3];
        let m = mixup(&mut x, 64, 0.4, &mut rng);
        assert!(m.lam.iter().all(|l| (0.5..=1.0).contains(l)));
        let mut p = m.perm.clone();
        p.sort();
        assert_eq!(p, (0..64).collect::<Vec<_>>());
    }

    #[test]
    fn cutmix_box_and_lambda_follow_fastai() {
        // W=10, H=8, lam=0.75: cut_rat 0.5, cut 5x4, centre (2, 7):
        // x 2-2=0 .. 2+2=4, y 7-2=5 .. min(9, 8)=8.
        let b = cut_box(10, 8, 0.75, 2, 7);
        assert_eq!(
            b,
            CutBox {
                x1: 0,
                y1: 5,
                x2: 4,
                y2: 8
            }
        );
        // torch.round(2.5) = 2 (halves to even): W=5, lam=0.75 -> cut_w 2.
        let b = cut_box(5, 5, 0.75, 2, 2);
        assert_eq!((b.x1, b.x2), (1, 3));
        // Two 1-channel 4x4 images: image 0 all 0, image 1 all 1; swap partners.
        let mut x = vec![0f32; 16];
        x.extend(vec![1f32; 16]);
        let b = CutBox {
            x1: 1,
            y1: 0,
            x2: 3,
            y2: 2,
        };
        let lam = cutmix_with(&mut x, 2, 1, 4, 4, &[1, 0], b);
        assert!((lam - (1.0 - 4.0 / 16.0)).abs() < 1e-6);
        for y in 0..4 {
            for xx in 0..4 {
                let inside = (1..3).contains(&xx) && y < 2;
                assert_eq!(x[y * 4 + xx], if inside { 1.0 } else { 0.0 });
                assert_eq!(x[16 + y * 4 + xx], if inside { 0.0 } else { 1.0 });
            }
        }
    }

    #[test]
    fn cutmix_has_one_lambda_per_batch() {
        let mut rng = Rng::new(2);
        let mut x = vec![0f32; 4 * 3 * 8 * 8];
        let m = cutmix(&mut x, 4, 3, 8, 8, 1.0, &mut rng);
        assert_eq!(m.lam.len(), 4);
        assert!(
            m.lam
                .iter()
                .all(|&l| l == m.lam[0] && (0.0..=1.0).contains(&l))
        );
    }
}
