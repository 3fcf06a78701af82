//! orchard's kernels vs PyTorch, in one run, same machine, same thread count:
//! each op's forward and backward on ResNet-18's layer shapes (batch 32, 128 and
//! 64 px) and the full ResNet-18 training step (forward + backward + AdamW).
//!
//!   cargo bench --bench kernels
//!
//! Env: ORCHARD_PYTHON (default `python3`) runs `benches/torch_kernels.py`;
//! RAYON_NUM_THREADS (default: all cores) sets both sides' threads;
//! ORCHARD_BENCH_QUICK=1 for a fast sanity run (64 px, fewer repetitions);
//! ORCHARD_BENCH_ONLY=TEXT runs only the ops whose name contains TEXT (and the
//! training step only if "step" contains it), without PyTorch: for profiling.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var};
use orchard::kernels::{adaptive_avg_pool2d, batch_norm_train, conv2d, max_pool2d, tune_allocator};
use orchard::models::{
    Classifier,
    resnet::{ResNet, ResNetDepth},
};
use orchard::rng::Rng;
use orchard::train::optim::{OptimSettings, Optimizer, StepHypers};
use serde::Serialize;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

const BATCH: usize = 32;

#[derive(Debug, Clone, Serialize)]
struct OpSpec {
    name: String,
    kind: &'static str,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    s: usize,
    p: usize,
    groups: usize,
}

/// ResNet-18's distinct layer shapes at input side `size`.
fn resnet_ops(size: usize) -> Vec<OpSpec> {
    let op = |kind, c, h, o, k, s, p, what: &str| OpSpec {
        name: format!("{what} @{size}px"),
        kind,
        n: BATCH,
        c,
        h,
        w: h,
        o,
        k,
        s,
        p,
        groups: 1,
    };
    let (s2, s4, s8, s16, s32) = (size / 2, size / 4, size / 8, size / 16, size / 32);
    vec![
        op("conv", 3, size, 64, 7, 2, 3, "conv1 7x7/2 3->64"),
        op("bn", 64, s2, 0, 0, 0, 0, "bn1 64"),
        op("maxpool", 64, s2, 0, 3, 2, 1, "maxpool 3x3/2"),
        op("conv", 64, s4, 64, 3, 1, 1, "layer1 3x3 64->64"),
        op("bn", 64, s4, 0, 0, 0, 0, "layer1 bn 64"),
        op("conv", 64, s4, 128, 3, 2, 1, "layer2.0 3x3/2 64->128"),
        op("conv", 64, s4, 128, 1, 2, 0, "layer2.0 down 1x1/2"),
        op("conv", 128, s8, 128, 3, 1, 1, "layer2 3x3 128->128"),
        op("conv", 256, s16, 256, 3, 1, 1, "layer3 3x3 256->256"),
        op("conv", 512, s32, 512, 3, 1, 1, "layer4 3x3 512->512"),
        op("adaptive_avgpool", 512, s32, 0, 0, 0, 0, "avgpool 512"),
    ]
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A scalar whose gradient with respect to its input is the fixed tensor `0`:
/// it starts a backward pass from a given output gradient, as PyTorch's
/// `y.backward(r)` does (`(y * r).sum()` would add candle's slow broadcast
/// multiply to every op's backward time).
struct Seed(Tensor);

impl CustomOp1 for Seed {
    fn name(&self) -> &'static str {
        "bench-seed"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(vec![0.0]), Shape::from(())))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, _: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.0.clone()))
    }
}

/// (forward ms, backward ms) of one op.
fn time_op(spec: &OpSpec, reps: usize) -> (f64, f64) {
    let x = Var::from_tensor(&random(&[spec.n, spec.c, spec.h, spec.w], 1)).unwrap();
    let weight =
        Var::from_tensor(&random(&[spec.o, spec.c / spec.groups, spec.k, spec.k], 2)).unwrap();
    let (gamma, beta) = (
        Var::from_tensor(&Tensor::ones(spec.c, DType::F32, &Device::Cpu).unwrap()).unwrap(),
        Var::from_tensor(&Tensor::zeros(spec.c, DType::F32, &Device::Cpu).unwrap()).unwrap(),
    );
    let forward = || -> Tensor {
        match spec.kind {
            "conv" => conv2d(&x, &weight, spec.p, spec.s, 1, spec.groups).unwrap(),
            "bn" => batch_norm_train(&x, &gamma, &beta, 1e-5, false).unwrap().0,
            "maxpool" => max_pool2d(&x, spec.k, spec.s, spec.p).unwrap(),
            "adaptive_avgpool" => adaptive_avg_pool2d(&x, (1, 1)).unwrap(),
            other => panic!("unknown op {other}"),
        }
    };
    let fwd = median_ms(reps, || {
        forward();
    });
    let r = random(forward().dims(), 3);
    let both = median_ms(reps, || {
        let y = forward();
        y.apply_op1(Seed(r.clone())).unwrap().backward().unwrap();
    });
    (fwd, (both - fwd).max(0.0))
}

/// Median (forward, backward, optimiser) ms of a ResNet-18 training step.
fn time_step(size: usize, reps: usize) -> (f64, f64, f64) {
    let varmap = candle_nn::VarMap::new();
    let model = ResNet::new(ResNetDepth::R18, 10, &varmap, &Device::Cpu, Rng::new(0)).unwrap();
    let mut opt = Optimizer::new(model.trainable().to_vec(), OptimSettings::adam()).unwrap();
    let x = random(&[BATCH, 3, size, size], 4);
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    let labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let h = StepHypers { lr: 1e-3, mom: 0.9 };
    let mut parts = Vec::new();
    for _ in 0..reps + 1 {
        let t0 = Instant::now();
        let logits = model.forward_t(&x, true).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
        let t1 = Instant::now();
        let grads = loss.backward().unwrap();
        let t2 = Instant::now();
        opt.step(&grads, h).unwrap();
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        parts.push((ms(t0, t1), ms(t1, t2), ms(t2, t3)));
    }
    parts.remove(0); // warm-up
    parts.sort_by(|a, b| (a.0 + a.1 + a.2).total_cmp(&(b.0 + b.1 + b.2)));
    parts[parts.len() / 2]
}

/// The optimisers compared with torch.optim (same names in torch_kernels.py).
fn optimiser_settings() -> Vec<(&'static str, OptimSettings)> {
    vec![
        ("adamw", OptimSettings::adam()),
        (
            "sgd",
            OptimSettings {
                mom: 0.9,
                wd: 0.01,
                ..OptimSettings::sgd()
            },
        ),
        ("radam", OptimSettings::radam()),
        ("ranger", OptimSettings::ranger()),
    ]
}

/// Mean ms of one optimiser step over ResNet-18's (10 classes) parameters, the
/// gradients fixed. A mean over OPT_STEPS steps, not a median, so Lookahead's
/// sync every 6th step counts as it does in training.
const OPT_STEPS: usize = 12;

fn time_optimisers() -> Vec<(&'static str, f64)> {
    let varmap = candle_nn::VarMap::new();
    let model = ResNet::new(ResNetDepth::R18, 10, &varmap, &Device::Cpu, Rng::new(0)).unwrap();
    let x = random(&[2, 3, 32, 32], 5);
    let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    let logits = model.forward_t(&x, true).unwrap();
    let grads = candle_nn::loss::cross_entropy(&logits, &labels)
        .unwrap()
        .backward()
        .unwrap();
    let h = StepHypers { lr: 1e-3, mom: 0.9 };
    optimiser_settings()
        .into_iter()
        .map(|(name, settings)| {
            let mut opt = Optimizer::new(model.trainable().to_vec(), settings).unwrap();
            opt.step(&grads, h).unwrap(); // state allocation
            let t0 = Instant::now();
            for _ in 0..OPT_STEPS {
                opt.step(&grads, h).unwrap();
            }
            (name, t0.elapsed().as_secs_f64() * 1e3 / OPT_STEPS as f64)
        })
        .collect()
}

/// Runs the PyTorch script; `Err(reason)` when it cannot.
fn run_torch(
    ops: &[OpSpec],
    sizes: &[usize],
    step_reps: usize,
    threads: usize,
    quick: bool,
) -> Result<serde_json::Value, String> {
    let python = std::env::var("ORCHARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_kernels.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script).arg("--threads").arg(threads.to_string());
    if quick {
        cmd.arg("--quick");
    }
    let mut child = cmd
        .env("OMP_NUM_THREADS", threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let request = serde_json::json!({"ops": ops, "step_sizes": sizes, "step_reps": step_reps,
        "optim_steps": OPT_STEPS});
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(request.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{python} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON from {python}: {e}"))?;
    match value.get("error") {
        Some(e) => Err(e.to_string()),
        None => Ok(value),
    }
}

fn main() {
    // As the orchard binary does at start (see kernels::alloc).
    tune_allocator();
    let quick = std::env::var("ORCHARD_BENCH_QUICK").is_ok_and(|v| v == "1");
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    let sizes: Vec<usize> = if quick { vec![64] } else { vec![128, 64] };
    let (op_reps, step_reps) = if quick { (2, 2) } else { (5, 3) };
    let only = std::env::var("ORCHARD_BENCH_ONLY").ok();
    let ops: Vec<OpSpec> = sizes
        .iter()
        .flat_map(|&s| resnet_ops(s))
        .filter(|op| only.as_ref().is_none_or(|o| op.name.contains(o.as_str())))
        .collect();
    let run_steps = only.as_ref().is_none_or(|o| "step".contains(o.as_str()));

    println!(
        "orchard kernels vs PyTorch: batch {BATCH}, {threads} threads{}",
        if quick { " (quick)" } else { "" }
    );
    let torch = match &only {
        Some(o) => Err(format!("ORCHARD_BENCH_ONLY={o}")),
        None => run_torch(&ops, &sizes, step_reps, threads, quick),
    };
    match &torch {
        Ok(v) => println!("PyTorch {} with {} threads", v["torch"], v["threads"]),
        Err(reason) => println!("PyTorch column skipped: {reason}"),
    }
    let torch_ms =
        |name: &str, key: &str| -> Option<f64> { torch.as_ref().ok()?["ops"][name][key].as_f64() };
    let ratio = |theirs: Option<f64>, ours: f64| {
        theirs.map_or("-".to_string(), |t| format!("{:.2}", t / ours))
    };
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));

    println!();
    println!("ops (ms, median; ratio = PyTorch time / orchard time, >1 means orchard is faster)");
    println!(
        "{:<34} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6}",
        "op", "fwd", "torch", "ratio", "bwd", "torch", "ratio"
    );
    for spec in &ops {
        let (f, b) = time_op(spec, op_reps);
        let (tf, tb) = (
            torch_ms(&spec.name, "fwd_ms"),
            torch_ms(&spec.name, "bwd_ms"),
        );
        println!(
            "{:<34} {:>9.1} {:>9} {:>6} {:>9.1} {:>9} {:>6}",
            spec.name,
            f,
            cell(tf),
            ratio(tf, f),
            b,
            cell(tb),
            ratio(tb, b)
        );
    }

    if !run_steps {
        return;
    }
    println!();
    println!(
        "optimiser step alone, ResNet-18's 11.2M parameters (ms, mean of {OPT_STEPS}; torch: torch.optim, ranger = RAdam + a Lookahead sync)"
    );
    println!(
        "{:<10} {:>9} {:>9} {:>6}",
        "optimiser", "orchard", "torch", "ratio"
    );
    for (name, ms) in time_optimisers() {
        let theirs = torch.as_ref().ok().and_then(|v| v["optim"][name].as_f64());
        println!(
            "{:<10} {:>9.1} {:>9} {:>6}",
            name,
            ms,
            cell(theirs),
            ratio(theirs, ms)
        );
    }
    println!();
    println!("ResNet-18 training step (forward + backward + AdamW), batch {BATCH}");
    println!(
        "{:<6} {:>8} {:>8} {:>8} {:>9} {:>11} {:>11} {:>14}",
        "size",
        "fwd ms",
        "bwd ms",
        "opt ms",
        "step ms",
        "orchard i/s",
        "torch i/s",
        "orchard/torch"
    );
    for &size in &sizes {
        let (f, b, o) = time_step(size, step_reps);
        let step = f + b + o;
        let ours = BATCH as f64 / (step / 1e3);
        let theirs = torch
            .as_ref()
            .ok()
            .and_then(|v| v["steps"][size.to_string()]["images_per_s"].as_f64());
        println!(
            "{:<6} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>11.1} {:>11} {:>14}",
            format!("{size}px"),
            f,
            b,
            o,
            step,
            ours,
            cell(theirs),
            theirs.map_or("-".to_string(), |t| format!("{:.2}", ours / t))
        );
    }
}
