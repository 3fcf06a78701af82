//! orchard's side of `benches/pipeline.rs` alone, for profiling (`perf record`)
//! and for comparing two builds back to back on a noisy machine:
//!
//!   cargo run --release --example pipeline_profile -- [EPOCHS]   # elpv epochs
//!   cargo run --release --example pipeline_profile -- kernel     # fused kernel
//!
//! EPOCHS (default 3) runs the benchmark's pipeline on `../shared/datasets/elpv`
//! (or the folder in ORCHARD_PROFILE_DIR):
//! decode into the cache, then whole epochs of batches of 32 at 224 px.
//! `kernel` times `fused::augment_normalize` alone on one 224 px noise image
//! under 64 fixed draws, single-threaded, and prints the best of 15 rounds
//! (the minimum is what stays comparable when other jobs share the machine).

use orchard::augment::batch::BatchAugment;
use orchard::augment::{Normalization, Pipeline, batch_seed, fused, load_set};
use orchard::config::AugmentationConfig;
use orchard::kernels::tune_allocator;
use orchard::rng::Rng;
use orchard::train::batches::training_batches;
use std::path::Path;
use std::time::Instant;

#[path = "../benches/common/pipeline_setup.rs"]
mod setup;
use setup::{BATCH, SEED, SIZE, config, samples};

fn kernel_bench() {
    let aug = BatchAugment::from_config(&AugmentationConfig {
        batch_augment: true,
        ..Default::default()
    });
    let mut rng = Rng::new(3);
    let img = image::RgbImage::from_fn(SIZE, SIZE, |_, _| {
        image::Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ])
    });
    let draws: Vec<_> = (0..64).map(|_| aug.draw(&mut rng)).collect();
    let norm = Normalization::imagenet();
    let mut out = vec![0f32; 3 * (SIZE * SIZE) as usize];
    let mut best = f64::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        for d in &draws {
            fused::augment_normalize(&img, false, Some(d), &norm, &mut out);
        }
        best = best.min(t.elapsed().as_secs_f64() / draws.len() as f64);
    }
    println!(
        "fused kernel: {:.1} us/image (best of 15 x 64 draws), checksum {}",
        best * 1e6,
        out.iter().sum::<f32>()
    );
}

fn elpv_epochs(epochs: usize) {
    // ORCHARD_PROFILE_DIR: another folder of images instead of elpv's.
    let dir = std::env::var_os("ORCHARD_PROFILE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/elpv/images"),
        std::path::PathBuf::from,
    );
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("{} not found: nothing to run", dir.display());
        std::process::exit(2);
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let cfg = config();
    let samples = samples(&files);
    let t = Instant::now();
    let set = match load_set(&samples, &cfg) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!(
        "decode into the cache: {:.0} images/s",
        files.len() as f64 / t.elapsed().as_secs_f64()
    );
    let pipeline = Pipeline::new(&cfg, Normalization::imagenet());
    let device = candle_core::Device::Cpu;
    for epoch in 0..epochs {
        let t = Instant::now();
        let mut n = 0;
        for (b, idx) in training_batches(set.len(), BATCH, SEED, epoch)
            .iter()
            .enumerate()
        {
            let batch = pipeline
                .train_batch(&set, idx, batch_seed(SEED, epoch, b), &device)
                .expect("cached images");
            n += batch.x.dims()[0];
        }
        println!(
            "epoch {epoch}: {:.0} images/s",
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    tune_allocator();
    match std::env::args().nth(1).as_deref() {
        Some("kernel") => kernel_bench(),
        arg => elpv_epochs(arg.and_then(|a| a.parse().ok()).unwrap_or(3)),
    }
}
