#!/usr/bin/env python3
"""fastai's side of the orchard-vs-fastai quality comparison (issue 7).

Trains orchard's default recipe with fastai 2.8.12, one fresh model per fold,
on exactly the folds orchard assigned (`orchard folds --format csv --out`), and
writes the out-of-fold softmax probabilities in the layout of orchard's
`oof.csv`: image_id,fold,label,<one probability column per class>.

The recipe (orchard's `config --default`):
  * torchvision resnet18(weights=None, num_classes=C), from scratch; a plain
    `Learner` (not `vision_learner`: no fastai head, no fastai init);
  * CrossEntropyLossFlat, metrics=accuracy;
  * fastai's default optimiser: Adam (opt_func=Adam, wd=0.01 decoupled,
    eps=1e-5, sqr_mom=0.99), wd_bn_bias=False (Learner default);
  * fit_one_cycle(EPOCHS, lr_max=1e-3): div 25, div_final 1e5, pct_start 0.25,
    moms (0.95, 0.85, 0.95);
  * batch size 32, drop_last on the training set (fastai default), the
    validation set in the same batch size;
  * Resize(SIZE, method='squish') (PIL bilinear), no augmentation,
    Normalize.from_stats(*imagenet_stats); grayscale JPEGs opened as RGB
    (PILImage's default mode).

Usage:
  fastai_elpv.py --data DIR --folds FOLDS.csv --out OOF.csv
                 [--epochs 5] [--size 64] [--bs 32] [--lr 1e-3]
                 [--seed 42] [--threads 2] [--workers 0] [--fold K]
"""

import argparse
import json
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="directory with train.csv, classes.txt and images/")
    p.add_argument("--folds", required=True, help="orchard folds CSV: image_id,<class columns>,fold")
    p.add_argument("--out", required=True, help="oof.csv to write (must not exist)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader workers (0: decode in the main process, so that "
                        "the whole run uses --threads cores like orchard)")
    p.add_argument("--fold", type=int, action="append",
                   help="train only this fold (repeatable); all folds by default")
    p.add_argument("--limit-batches", type=int, default=0,
                   help="smoke test only: stop each epoch after N training batches")
    return p.parse_args()


def main():
    a = parse_args()
    if os.path.exists(a.out):
        sys.exit(f"{a.out}: already exists (refusing to overwrite)")

    # libgomp's spin-waiting is ~10x slower when other processes share the cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    torch.set_num_threads(a.threads)
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import numpy as np
    import pandas as pd
    import fastai
    import torchvision
    from fastai.vision.all import (
        Adam, CategoryBlock, ColReader, CrossEntropyLossFlat, DataBlock, ImageBlock,
        IndexSplitter, Learner, Normalize, Resize, accuracy, imagenet_stats, set_seed,
        Callback, CancelEpochException,
    )
    from fastai.callback.progress import ProgressCallback
    from torchvision.models import resnet18

    data = os.path.abspath(a.data)
    classes_txt = os.path.join(data, "classes.txt")
    folds = pd.read_csv(a.folds)
    cols = [c for c in folds.columns if c not in ("image_id", "fold")]
    if os.path.exists(classes_txt):
        with open(classes_txt) as f:
            classes = [line.strip() for line in f if line.strip()]
        assert classes == cols, f"classes.txt {classes} != folds columns {cols}"
    else:
        classes = cols
    onehot = folds[classes].to_numpy()
    assert (onehot.sum(1) == 1).all(), "single-label (multi-class) data expected"
    folds["label"] = [classes[i] for i in onehot.argmax(1)]

    # Each image's file: images/<id>.<jpg|jpeg|png>, found per file as orchard does.
    img_dir = os.path.join(data, "images")
    present = {os.path.splitext(n)[0]: n for n in os.listdir(img_dir)}
    folds["path"] = [os.path.join(img_dir, present[i]) for i in folds["image_id"]]

    k = int(folds["fold"].max()) + 1
    todo = a.fold if a.fold else list(range(k))
    print(f"fastai {fastai.__version__}, torch {torch.__version__}, torchvision "
          f"{torchvision.__version__}, threads {torch.get_num_threads()}, workers {a.workers}")
    print(f"data {data}: {len(folds)} images, {len(classes)} classes, {k} folds; "
          f"resnet18 from scratch at {a.size}px, {a.epochs} epoch(s), bs {a.bs}, lr {a.lr}")

    class LimitBatches(Callback):
        """Smoke tests only: cut each training epoch short."""
        def __init__(self, n): self.n = n
        def after_batch(self):
            if self.training and self.iter + 1 >= self.n: raise CancelEpochException()

    rows = []
    timings = {}
    t_all = time.time()
    for f in todo:
        t0 = time.time()
        set_seed(a.seed + f, reproducible=True)
        valid_idx = np.flatnonzero(folds["fold"].to_numpy() == f)
        dblock = DataBlock(
            blocks=(ImageBlock, CategoryBlock(vocab=classes, sort=False)),
            get_x=ColReader("path"),
            get_y=ColReader("label"),
            splitter=IndexSplitter(valid_idx),
            item_tfms=Resize(a.size, method="squish"),
            batch_tfms=Normalize.from_stats(*imagenet_stats),
        )
        dls = dblock.dataloaders(folds, bs=a.bs, num_workers=a.workers, device=torch.device("cpu"))
        assert list(dls.vocab) == classes
        n_train, n_valid = len(dls.train_ds), len(dls.valid_ds)
        learn = Learner(dls, resnet18(weights=None, num_classes=len(classes)),
                        loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                        opt_func=Adam)  # fastai defaults: wd=0.01 (decoupled), eps=1e-5
        assert learn.wd is None or learn.wd == 0.01
        cbs = [LimitBatches(a.limit_batches)] if a.limit_batches else []
        print(f"\nfold {f} ({n_train} train / {n_valid} valid)", flush=True)
        if not sys.stdout.isatty():
            learn.remove_cb(ProgressCallback)
            print("epoch  train_loss  valid_loss  accuracy  time", flush=True)
            learn.logger = lambda x: print("  ".join(
                f"{v:.6f}" if isinstance(v, float) else str(v) for v in x), flush=True)
        learn.fit_one_cycle(a.epochs, lr_max=a.lr, cbs=cbs)
        # Validation probabilities in the validation order (valid_idx order).
        probs, targs = learn.get_preds(ds_idx=1)  # softmax (CrossEntropyLossFlat.activation)
        probs = probs.numpy()
        targs = targs.numpy()
        assert np.allclose(probs.sum(1), 1.0, atol=1e-4)
        sub = folds.iloc[valid_idx]
        assert (np.array([classes.index(l) for l in sub["label"]]) == targs).all()
        acc = float((probs.argmax(1) == targs).mean())
        for (iid, lab), p in zip(zip(sub["image_id"], sub["label"]), probs):
            rows.append([iid, f, lab] + [f"{v:.6f}" for v in p])
        timings[f] = time.time() - t0
        print(f"fold {f}: accuracy {acc:.4f}, {timings[f]:.1f} s", flush=True)

    out = pd.DataFrame(rows, columns=["image_id", "fold", "label"] + classes)
    out.to_csv(a.out, index=False)
    total = time.time() - t_all
    print(f"\nwrote {a.out}; {len(todo)} fold(s) in {total:.1f} s")
    with open(a.out + ".timing.json", "w") as fh:
        json.dump({"folds": timings, "total_s": total, "fastai": fastai.__version__,
                   "torch": torch.__version__, "torchvision": torchvision.__version__}, fh)


if __name__ == "__main__":
    main()
