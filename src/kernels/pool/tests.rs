use super::*;
use crate::kernels::testing::{check_gradients, max_abs_diff, random_tensor};
use crate::rng::Rng;
use candle_core::{DType, Device, Var};

/// PyTorch's pooling written out directly (from ATen's CPU kernels): the window
/// [o*s - p, o*s - p + k) clipped to the input; for averages the divisor
/// clips to the padded input when padding counts, else to the real input.
#[allow(clippy::too_many_arguments)]
fn naive(
    x: &[f64],
    (n, c, h, w): (usize, usize, usize, usize),
    (oh, ow): (usize, usize),
    k: usize,
    s: usize,
    p: usize,
    max: bool,
    count_include_pad: bool,
) -> Vec<f64> {
    let mut out = Vec::new();
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (y0, x0) = (
                    (oy * s) as isize - p as isize,
                    (ox * s) as isize - p as isize,
                );
                let (y1, x1) = (
                    (y0 + k as isize).min((h + p) as isize),
                    (x0 + k as isize).min((w + p) as isize),
                );
                let padded = ((y1 - y0) * (x1 - x0)) as f64;
                let (mut best, mut sum, mut count) = (f64::NEG_INFINITY, 0.0, 0.0);
                for y in y0.max(0)..y1.min(h as isize) {
                    for xx in x0.max(0)..x1.min(w as isize) {
                        let v = x[plane * h * w + y as usize * w + xx as usize];
                        best = best.max(v);
                        sum += v;
                        count += 1.0;
                    }
                }
                out.push(if max {
                    best
                } else if count_include_pad {
                    sum / padded
                } else {
                    sum / count
                });
            }
        }
    }
    out
}

/// (n, c, h, w), k, s, p, ceil_mode.
type Case = ((usize, usize, usize, usize), usize, usize, usize, bool);

const CASES: [Case; 9] = [
    ((1, 1, 1, 1), 1, 1, 0, false),
    ((1, 1, 1, 1), 3, 2, 1, false),
    ((1, 2, 7, 7), 3, 2, 1, false),
    ((2, 3, 7, 5), 3, 2, 1, true),
    ((1, 1, 6, 6), 2, 2, 0, false),
    ((2, 1, 9, 8), 3, 1, 1, false),
    ((1, 3, 5, 7), 5, 3, 2, true),
    ((1, 2, 8, 8), 3, 2, 0, true),
    ((1, 1, 7, 7), 7, 7, 3, true),
];

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn fixed_windows_match_naive_on_odd_shapes() {
    for (i, (shape, k, s, p, ceil_mode)) in CASES.into_iter().enumerate() {
        let x64 = random_tensor(shape, DType::F64, i as u64);
        let data = to_vec(&x64);
        let window = PoolWindow {
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            ceil_mode,
        };
        for dtype in [DType::F64, DType::F32] {
            let x = x64.to_dtype(dtype).unwrap();
            let max = max_pool2d_with(&x, &window).unwrap();
            let (_, _, oh, ow) = max.dims4().unwrap();
            let want = naive(&data, shape, (oh, ow), k, s, p, true, false);
            assert!(
                max_abs_diff(
                    &max,
                    &Tensor::new(want, &Device::Cpu)
                        .unwrap()
                        .reshape(max.shape())
                        .unwrap()
                ) < 1e-6,
                "case {i} max"
            );
            for include in [true, false] {
                let avg = avg_pool2d_with(&x, &window, include).unwrap();
                assert_eq!(avg.dims(), max.dims());
                let want = naive(&data, shape, (oh, ow), k, s, p, false, include);
                let want = Tensor::new(want, &Device::Cpu)
                    .unwrap()
                    .reshape(avg.shape())
                    .unwrap();
                assert!(
                    max_abs_diff(&avg, &want) < 1e-6,
                    "case {i} avg include={include}"
                );
            }
        }
    }
}

#[test]
fn output_sizes_follow_pytorch() {
    // (n, k, s, p, ceil) -> out, from torch.nn.functional on the same sizes.
    let cases = [
        ((8, 3, 2, 0, false), 3),
        ((8, 3, 2, 0, true), 4),
        ((7, 3, 2, 1, true), 4),
        ((6, 3, 2, 1, true), 4),
        ((5, 2, 2, 1, true), 3), // ceil would start a window in the right padding
        ((5, 2, 2, 0, true), 3),
        ((112, 3, 2, 1, false), 56),
    ];
    for ((n, k, s, p, ceil), want) in cases {
        let axis = fixed_axis(n, k, s, p, ceil, "test").unwrap();
        assert_eq!(axis.windows.len(), want, "{n} {k} {s} {p} {ceil}");
    }
}

#[test]
fn matches_candle_where_candle_applies() {
    // candle pools without padding; its backward needs kernel == stride, and
    // its max-pool backward scales the gradient by 1/k^2 (a candle 0.11 bug),
    // so only its forward is a reference there.
    let x = Var::from_tensor(&random_tensor((2, 3, 8, 6), DType::F32, 1)).unwrap();
    let r = random_tensor((2, 3, 4, 3), DType::F32, 2);
    let max = max_pool2d(&x, 2, 2, 0).unwrap();
    assert!(max_abs_diff(&max, &x.max_pool2d(2).unwrap()) < 1e-6);
    let ours = avg_pool2d_with(&x, &PoolWindow::square(2, 2, 0), true).unwrap();
    let stock = x.avg_pool2d(2).unwrap();
    assert!(max_abs_diff(&ours, &stock) < 1e-6);
    let a = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let b = (stock * &r).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(max_abs_diff(a.get(&x).unwrap(), b.get(&x).unwrap()) < 1e-6);
}

#[test]
fn adaptive_pooling_matches_naive_windows() {
    let x = random_tensor((2, 3, 7, 5), DType::F64, 3);
    let data = to_vec(&x);
    for (oh, ow) in [(1, 1), (3, 2), (7, 5), (9, 6), (4, 4)] {
        let avg = to_vec(&adaptive_avg_pool2d(&x, (oh, ow)).unwrap());
        let max = to_vec(&adaptive_max_pool2d(&x, (oh, ow)).unwrap());
        let mut i = 0;
        for plane in 0..6 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, y1) = (oy * 7 / oh, ((oy + 1) * 7).div_ceil(oh));
                    let (x0, x1) = (ox * 5 / ow, ((ox + 1) * 5).div_ceil(ow));
                    let vals: Vec<f64> = (y0..y1)
                        .flat_map(|y| (x0..x1).map(move |xx| (y, xx)))
                        .map(|(y, xx)| data[plane * 35 + y * 5 + xx])
                        .collect();
                    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                    let best = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    assert!((avg[i] - mean).abs() < 1e-12 && max[i] == best);
                    i += 1;
                }
            }
        }
    }
    // (1, 1) is the global mean ResNet ends with.
    let global = adaptive_avg_pool2d(&x, (1, 1)).unwrap();
    assert!(max_abs_diff(&global, &x.mean_keepdim((2, 3)).unwrap()) < 1e-12);
}

#[test]
fn gradients_match_finite_differences_in_f64() {
    for (i, (shape, k, s, p, ceil_mode)) in CASES.into_iter().enumerate() {
        let window = PoolWindow {
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            ceil_mode,
        };
        let x = distinct(shape, i as u64);
        check_gradients(std::slice::from_ref(&x), 10 + i as u64, |t| {
            max_pool2d_with(&t[0], &window)
        });
        for include in [true, false] {
            check_gradients(std::slice::from_ref(&x), 20 + i as u64, |t| {
                avg_pool2d_with(&t[0], &window, include)
            });
        }
    }
    let x = distinct((2, 2, 7, 5), 99);
    for out in [(1, 1), (3, 2), (9, 6)] {
        check_gradients(std::slice::from_ref(&x), 30, |t| {
            adaptive_avg_pool2d(&t[0], out)
        });
        check_gradients(std::slice::from_ref(&x), 31, |t| {
            adaptive_max_pool2d(&t[0], out)
        });
    }
}

/// Distinct values 0.1 apart in a shuffled order, so no finite-difference step
/// changes which element wins a max window.
fn distinct(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
    let len = shape.0 * shape.1 * shape.2 * shape.3;
    let mut v: Vec<f64> = (0..len)
        .map(|i| i as f64 * 0.1 - len as f64 * 0.05)
        .collect();
    Rng::new(seed).shuffle(&mut v);
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn ties_go_to_the_first_maximum() {
    let x = Tensor::from_vec(vec![1f64, 1.0, 1.0, 1.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    let x = Var::from_tensor(&x).unwrap();
    let y = max_pool2d(x.as_tensor(), 2, 2, 0).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(
        to_vec(grads.get(x.as_tensor()).unwrap()),
        [1.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn nan_wins_as_in_pytorch() {
    let x = Tensor::from_vec(vec![1f32, f32::NAN, 3.0, 2.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    assert!(to_vec(&max_pool2d(&x, 2, 2, 0).unwrap())[0].is_nan());
    let x = Tensor::from_vec(vec![f32::NAN, 1.0, 3.0, 2.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    assert!(to_vec(&max_pool2d(&x, 2, 2, 0).unwrap())[0].is_nan());
}

#[test]
fn strided_input_is_handled() {
    let x = random_tensor((1, 2, 5, 6), DType::F64, 3);
    let xt = x.transpose(2, 3).unwrap();
    let got = max_pool2d(&xt, 3, 2, 1).unwrap();
    let want = max_pool2d(&xt.contiguous().unwrap(), 3, 2, 1).unwrap();
    assert_eq!(to_vec(&got), to_vec(&want));
}

#[test]
fn bad_geometry_is_an_error_not_a_panic() {
    let x = Tensor::zeros((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(max_pool2d(&x, 3, 2, 2).is_err(), "padding above k/2");
    assert!(max_pool2d(&x, 0, 1, 0).is_err(), "zero kernel");
    assert!(max_pool2d(&x, 2, 0, 0).is_err(), "zero stride");
    assert!(max_pool2d(&x, 5, 1, 0).is_err(), "kernel larger than input");
    assert!(adaptive_avg_pool2d(&x, (0, 1)).is_err(), "empty output");
    let x3 = Tensor::zeros((1, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(max_pool2d(&x3, 2, 2, 0).is_err(), "not NCHW");
    assert!(adaptive_max_pool2d(&x3, (1, 1)).is_err(), "not NCHW");
    let xi = Tensor::zeros((1, 1, 2, 2), DType::U8, &Device::Cpu).unwrap();
    assert!(max_pool2d(&xi, 2, 2, 0).is_err(), "integer dtype");
}
