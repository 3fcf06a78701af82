#!/usr/bin/env python3
"""Compare two out-of-fold prediction files (orchard's oof.csv layout:
image_id,fold,label,<one probability column per class>) and print a markdown
table: per fold and over the folds (mean and fold-to-fold sample standard
deviation, ddof=1) of accuracy and mean column-wise ROC AUC (one-vs-rest AUC of
each class column, averaged: Plant Pathology 2020's metric), plus the paired
per-fold difference A - B.

Usage:
  compare_oof.py A_oof.csv B_oof.csv [--names orchard fastai]
                 [--wall A_SECONDS B_SECONDS] [--folds FOLDS.csv]
"""

import argparse
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def load(path, classes=None):
    df = pd.read_csv(path)
    cols = [c for c in df.columns if c not in ("image_id", "fold", "label")]
    if classes is not None and cols != classes:
        if sorted(cols) != sorted(classes):
            sys.exit(f"{path}: classes {cols} differ from {classes}")
    return df, cols


def fold_metrics(df, classes):
    """{fold: (accuracy, mean column-wise AUC, n)} and the pooled OOF values."""
    out = {}
    for f, g in df.groupby("fold"):
        out[int(f)] = metrics(g, classes)
    return out, metrics(df, classes)


def metrics(g, classes):
    p = g[classes].to_numpy(dtype=np.float64)
    y = np.array([classes.index(l) for l in g["label"]])
    acc = float((p.argmax(1) == y).mean())
    aucs = [roc_auc_score((y == c).astype(int), p[:, c]) for c in range(len(classes))
            if 0 < (y == c).sum() < len(y)]
    return acc, float(np.mean(aucs)), len(y)


def fmt_time(s):
    s = float(s)
    return f"{s:.0f} s ({int(s // 60)} min {s % 60:04.1f} s)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--names", nargs=2, default=["orchard", "fastai"])
    ap.add_argument("--wall", nargs=2, type=float, help="wall seconds of A and B")
    ap.add_argument("--folds", help="folds CSV both sides should have used (image_id,...,fold)")
    args = ap.parse_args()
    na, nb = args.names

    A, classes = load(args.a)
    B, _ = load(args.b, classes)

    # Same images, same fold of each image, same labels on both sides.
    ma = A.set_index("image_id")[["fold", "label"]]
    mb = B.set_index("image_id")[["fold", "label"]]
    if set(ma.index) != set(mb.index):
        sys.exit(f"the two files cover different images ({len(ma)} vs {len(mb)})")
    mb = mb.loc[ma.index]
    if not (ma["fold"].to_numpy() == mb["fold"].to_numpy()).all():
        sys.exit("the two files put some images in different folds")
    if not (ma["label"].to_numpy() == mb["label"].to_numpy()).all():
        sys.exit("the two files disagree on some labels")
    if args.folds:
        F = pd.read_csv(args.folds).set_index("image_id")["fold"].loc[ma.index]
        if not (F.to_numpy() == ma["fold"].to_numpy()).all():
            sys.exit(f"{args.folds}: fold assignment differs from the oof files'")

    fa, pa = fold_metrics(A, classes)
    fb, pb = fold_metrics(B, classes)
    folds = sorted(fa)

    print(f"{len(A)} images, {len(classes)} classes ({', '.join(classes)}), {len(folds)} folds; "
          f"identical images, folds and labels on both sides"
          + (" and equal to " + args.folds if args.folds else ""))
    print()
    print(f"| fold | n | {na} acc | {nb} acc | Δacc | {na} mean AUC | {nb} mean AUC | ΔAUC |")
    print("|---|---|---|---|---|---|---|---|")
    for f in folds:
        (a1, a2, n), (b1, b2, _) = fa[f], fb[f]
        print(f"| {f} | {n} | {a1:.4f} | {b1:.4f} | {a1 - b1:+.4f} | {a2:.4f} | {b2:.4f} | {a2 - b2:+.4f} |")
    acc_a = np.array([fa[f][0] for f in folds]); acc_b = np.array([fb[f][0] for f in folds])
    auc_a = np.array([fa[f][1] for f in folds]); auc_b = np.array([fb[f][1] for f in folds])
    sd = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
    print(f"| **mean ± sd** | | **{acc_a.mean():.4f} ± {sd(acc_a):.4f}** | **{acc_b.mean():.4f} ± {sd(acc_b):.4f}** "
          f"| **{(acc_a - acc_b).mean():+.4f} ± {sd(acc_a - acc_b):.4f}** "
          f"| **{auc_a.mean():.4f} ± {sd(auc_a):.4f}** | **{auc_b.mean():.4f} ± {sd(auc_b):.4f}** "
          f"| **{(auc_a - auc_b).mean():+.4f} ± {sd(auc_a - auc_b):.4f}** |")
    print(f"| pooled OOF | {pa[2]} | {pa[0]:.4f} | {pb[0]:.4f} | {pa[0] - pb[0]:+.4f} "
          f"| {pa[1]:.4f} | {pb[1]:.4f} | {pa[1] - pb[1]:+.4f} |")
    print()
    print("sd = fold-to-fold sample standard deviation (ddof=1); Δ = "
          f"{na} − {nb}, its ± is the sd of the paired per-fold differences.")
    k = len(folds)
    if k > 1:
        for name, d in (("accuracy", acc_a - acc_b), ("mean AUC", auc_a - auc_b)):
            se = sd(d) / np.sqrt(k)
            t = d.mean() / se if se > 0 else float("inf")
            print(f"paired {name} difference: {d.mean():+.4f}, standard error {se:.4f} "
                  f"(t = {t:+.2f} on {k - 1} df)")
    if args.wall:
        print()
        print(f"| side | wall time, {k} folds |")
        print("|---|---|")
        print(f"| {na} | {fmt_time(args.wall[0])} |")
        print(f"| {nb} | {fmt_time(args.wall[1])} |")


if __name__ == "__main__":
    main()
