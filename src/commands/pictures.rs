//! `orchard show-batch [DATA] --out batch.png` and
//! `orchard augment-preview [DATA] --image ID --n 8 --out aug.png`:
//! what the model sees, as fastai's `show_batch`.
//!
//! Pictures undo the normalisation, so they look the same whichever statistics
//! training uses; they are built with ImageNet's and only the images shown are
//! decoded (a data set's own statistics would need every image).

use crate::augment::picture::{chw_to_rgb, grid, save_new_png};
use crate::augment::{Normalization, Pipeline, batch_seed, load_set};
use crate::cli::{AugmentPreviewArgs, PictureArgs, ShowBatchArgs};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::run::rundir::already_exists;
use crate::train::Sample;
use crate::train::batches::training_batches;

/// Most images one picture shows.
const MAX_IMAGES: usize = 256;

/// The config file (or defaults) with the flags on top, checked; refuses an
/// existing --out before any image is read.
fn picture_config(p: &PictureArgs) -> Result<RunConfig> {
    if p.out.exists() {
        return Err(already_exists(&p.out));
    }
    let mut cfg = match &p.config {
        Some(path) => RunConfig::load(path)?,
        None => RunConfig::default(),
    };
    if let Some(s) = p.size {
        cfg.training.size = s;
    }
    if let Some(s) = p.seed {
        cfg.training.seed = s;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn save(images: Vec<image::RgbImage>, labels: Vec<String>, out: &std::path::Path) -> Result<()> {
    let cols = (images.len() as f64).sqrt().ceil() as usize;
    save_new_png(&grid(&images, &labels, cols), out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

pub fn show_batch(args: ShowBatchArgs) -> Result<()> {
    let mut cfg = picture_config(&args.picture)?;
    if let Some(bs) = args.bs {
        cfg.training.batch_size = bs;
    }
    let bs = cfg.training.batch_size;
    if !(1..=MAX_IMAGES).contains(&bs) {
        return Err(Error::input(format!(
            "--bs {bs}: expected 1..={MAX_IMAGES} images"
        )));
    }
    let ds = super::load_data_args(&args.data)?;
    // The first training batch of epoch 0, as the loop would draw it.
    let seed = cfg.training.seed;
    let order = training_batches(ds.len(), bs, seed, 0);
    let first = order.first().cloned().unwrap_or_default();
    let samples: Vec<Sample> = first
        .iter()
        .map(|&i| Sample {
            path: ds.items[i].path.clone(),
            class: ds.items[i].class(),
        })
        .collect();
    let set = load_set(&samples, &cfg)?;
    let pipeline = Pipeline::new(&cfg, Normalization::imagenet());
    let idx: Vec<usize> = (0..samples.len()).collect();
    let raw = pipeline.raw_batch(&set, &idx, Some(batch_seed(seed, 0, 0)))?;
    let s = raw.size;
    let len = 3 * s * s;
    let name = |c: u32| ds.classes.get(c as usize).cloned().unwrap_or_default();
    let images = raw
        .data
        .chunks(len)
        .map(|chw| chw_to_rgb(chw, s, &pipeline.norm))
        .collect();
    let labels = (0..raw.labels.len())
        .map(|k| match &raw.mix {
            // A mixed image shows both classes and the weight of its own.
            Some(m) => format!(
                "{}+{} {:.2}",
                name(raw.labels[k]),
                name(raw.labels[m.perm[k]]),
                m.lam[k]
            ),
            None => name(raw.labels[k]),
        })
        .collect();
    save(images, labels, &args.picture.out)
}

pub fn augment_preview(args: AugmentPreviewArgs) -> Result<()> {
    let mut cfg = picture_config(&args.picture)?;
    if !(1..=MAX_IMAGES).contains(&args.n) {
        return Err(Error::input(format!(
            "--n {}: expected 1..={MAX_IMAGES}",
            args.n
        )));
    }
    // A preview shows aug_transforms even when the config leaves them off;
    // mixing one image with itself would show nothing, so it is left out.
    cfg.augmentation.batch_augment = true;
    cfg.mixing.method = crate::config::MixMethod::None;
    let ds = super::load_data_args(&args.data)?;
    let item = ds
        .items
        .iter()
        .find(|it| it.id == args.image)
        .ok_or_else(|| {
            let some: Vec<&str> = ds.items.iter().take(3).map(|it| it.id.as_str()).collect();
            Error::input(format!(
                "--image {:?}: no such image_id in {}\nfix: use an id from its train.csv, e.g. {}",
                args.image,
                ds.source.display(),
                some.join(", ")
            ))
        })?;
    let sample = Sample {
        path: item.path.clone(),
        class: item.class(),
    };
    let set = load_set(std::slice::from_ref(&sample), &cfg)?;
    let pipeline = Pipeline::new(&cfg, Normalization::imagenet());
    let label = ds.classes.get(sample.class).cloned().unwrap_or_default();
    let mut images = Vec::with_capacity(args.n);
    for k in 0..args.n {
        let raw = pipeline.raw_batch(&set, &[0], Some(batch_seed(cfg.training.seed, 0, k)))?;
        images.push(chw_to_rgb(&raw.data, raw.size, &pipeline.norm));
    }
    save(images, vec![label; args.n], &args.picture.out)
}
