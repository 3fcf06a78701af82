//! orchard's image pipeline vs torchvision's DataLoader, in one run, same
//! machine, same number of threads/workers: decode + resize + item transforms
//! (Resize crop at a random position, FlipItem) + aug_transforms (flip, warp,
//! rotate, zoom, lighting) + Normalize into batches of 32 at 224 px, in
//! images/s, for the first (cold) epoch and the second (warm) one.
//!
//!   cargo bench --bench pipeline
//!
//! Data: (a) `../shared/datasets/elpv` (2624 300x300 grayscale JPEGs; skipped
//! when absent), (b) 2048x1365 JPEGs like Plant Pathology's, made here by
//! upscaling the demo set's photos (in a temporary directory).
//! orchard decodes each file once (cold epoch: decode + resize into the
//! in-memory cache + augment); later epochs start from the cached u8 pixels.
//! A JPEG at least twice the cached size on both sides is decoded at 1/2, 1/4
//! or 1/8 scale in the IDCT (`data::jpeg_scaled`): the 2048x1365 ones at 1/4.
//! torchvision decodes with PIL in every epoch, as its DataLoader does, at
//! full size (`Image.open` + `convert("RGB")`, no `draft()`: the code a
//! torchvision user writes).
//!
//! Env: ORCHARD_PYTHON (default `python3`) runs `benches/torch_pipeline.py`;
//! RAYON_NUM_THREADS (default: all cores) sets orchard's threads and
//! torchvision's workers; ORCHARD_BENCH_ROUNDS (default 3) how many times
//! each data set is measured, both sides back to back each time (the table
//! gives the median ratio and every round); ORCHARD_BENCH_QUICK=1 for a fast
//! sanity run (fewer images, one round).

use orchard::augment::{Normalization, Pipeline, batch_seed, load_set};
use orchard::data::decode::{decode_rgb, resize_rgb};
use orchard::kernels::tune_allocator;
use orchard::train::batches::training_batches;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/pipeline_setup.rs"]
mod setup;
use setup::{BATCH, SEED, SIZE, config, samples};

/// (cold, warm) images/s of two epochs.
fn orchard_epochs(files: &[PathBuf]) -> (f64, f64) {
    let cfg = config();
    let samples = samples(files);
    let device = candle_core::Device::Cpu;
    let t0 = Instant::now();
    let set = load_set(&samples, &cfg).expect("images decode");
    let pipeline = Pipeline::new(&cfg, Normalization::imagenet());
    let mut rates = Vec::new();
    let mut start = t0;
    for epoch in 0..2 {
        let mut n = 0;
        for (b, idx) in training_batches(set.len(), BATCH, SEED, epoch)
            .iter()
            .enumerate()
        {
            let batch = pipeline
                .train_batch(&set, idx, batch_seed(SEED, epoch, b), &device)
                .expect("batch");
            n += batch.x.dims()[0];
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
        start = Instant::now();
    }
    (rates[0], rates[1])
}

/// Plant-Pathology-sized JPEGs from the demo photos, upscaled (bilinear).
fn make_large(dir: &Path, n: usize) -> Vec<PathBuf> {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/images");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&demo)
        .expect("demo images")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    sources.sort();
    (0..n)
        .map(|i| {
            let img = decode_rgb(&sources[i % sources.len()]).expect("demo image");
            let big = resize_rgb(&img, 2048, 1365);
            let p = dir.join(format!("big{i:04}.jpg"));
            let f = std::fs::File::create(&p).expect("temp file");
            let mut enc =
                image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), 90);
            enc.encode_image(&big).expect("jpeg");
            p
        })
        .collect()
}

fn list_jpegs(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")));
    v.sort();
    v.truncate(limit);
    v
}

fn run_torch(sets: &[(String, Vec<PathBuf>)], workers: usize) -> Result<serde_json::Value, String> {
    let python = std::env::var("ORCHARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_pipeline.py");
    let mut child = Command::new(&python)
        .arg(script)
        // Each worker single-threaded, as DataLoader workers are.
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let datasets: Vec<serde_json::Value> = sets
        .iter()
        .map(|(name, files)| serde_json::json!({"name": name, "files": files}))
        .collect();
    let request = serde_json::json!({
        "datasets": datasets, "size": SIZE, "batch": BATCH, "workers": workers, "seed": SEED,
    });
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

/// One round's images/s: orchard's, and torchvision's where it ran.
type Round = (f64, Option<f64>);

fn main() {
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
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut sets: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let elpv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/elpv/images");
    let elpv_files = list_jpegs(&elpv, if quick { 256 } else { usize::MAX });
    if elpv_files.is_empty() {
        println!("elpv skipped: {} not found", elpv.display());
    } else {
        sets.push((
            format!("elpv ({} x 300x300 gray JPEG)", elpv_files.len()),
            elpv_files,
        ));
    }
    let n_large = if quick { 64 } else { 256 };
    let t = Instant::now();
    let large = make_large(tmp.path(), n_large);
    println!(
        "made {n_large} 2048x1365 JPEGs from the demo photos in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    sets.push((format!("{n_large} x 2048x1365 JPEG"), large));
    // Read every file once so both sides find them in the OS page cache.
    for (_, files) in &sets {
        for f in files {
            let _ = std::fs::read(f);
        }
    }
    let rounds: usize = std::env::var("ORCHARD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    println!(
        "orchard pipeline vs torchvision DataLoader: batch {BATCH}, {SIZE} px, {threads} threads / workers, {rounds} round(s){}",
        if quick { " (quick)" } else { "" }
    );
    // Each round measures both sides on one data set back to back, so a
    // change in the shared machine's load hits both; the table gives every
    // round and the median ratio.
    let mut rows: Vec<(String, &str, Vec<Round>)> = Vec::new();
    let mut versions = None;
    for (name, files) in &sets {
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..rounds {
            let torch = run_torch(&[(name.clone(), files.clone())], threads);
            let (ours_cold, ours_warm) = orchard_epochs(files);
            let theirs = |label: &str| {
                torch
                    .as_ref()
                    .ok()
                    .and_then(|v| v["results"][name.as_str()][label].as_f64())
            };
            cold.push((ours_cold, theirs("cold")));
            warm.push((ours_warm, theirs("warm")));
            match &torch {
                Ok(v) => {
                    versions.get_or_insert(format!(
                        "torch {} torchvision {} (PIL), {threads} DataLoader workers",
                        v["torch"], v["torchvision"]
                    ));
                }
                Err(reason) => {
                    versions.get_or_insert(format!("torchvision column skipped: {reason}"));
                }
            }
        }
        rows.push((name.clone(), "cold", cold));
        rows.push((name.clone(), "warm", warm));
    }
    println!("{}", versions.unwrap_or_default());
    println!();
    println!(
        "{:<34} {:>6} {:>8}  orchard / torchvision images/s (ratio), each round",
        "data set", "epoch", "median"
    );
    for (name, label, results) in &rows {
        let mut ratios: Vec<f64> = results
            .iter()
            .filter_map(|(ours, theirs)| theirs.map(|t| ours / t))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios
            .get(ratios.len() / 2)
            .map_or("-".into(), |r| format!("{r:.2}x"));
        let each: Vec<String> = results
            .iter()
            .map(|(ours, theirs)| match theirs {
                Some(t) => format!("{ours:.0} / {t:.0} ({:.2}x)", ours / t),
                None => format!("{ours:.0} / -"),
            })
            .collect();
        println!("{name:<34} {label:>6} {median:>8}  {}", each.join(", "));
    }
    println!("\nratio = orchard images/s / torchvision images/s (> 1: orchard is faster)");
}
