"""Reference outputs of fastai's affine + perspective resample, for
`src/augment/fused.rs`'s test `fused_and_reference_match_fastai`.

fastai's own code does the work: `_prepare_mat`, `affine_coord` (F.affine_grid
+ F.grid_sample, bilinear, reflection padding, align_corners=True) and the
Warp's `find_coeffs` / `apply_perspective`, in float32 as in training.

    /work/venv/bin/python tests/reference/fastai_affine.py > tests/fixtures/fastai_affine.json
"""
import json
import math
from functools import partial

import numpy as np
import torch
from fastai.vision.augment import (_prepare_mat, apply_perspective,
                                   find_coeffs)
from fastai.torch_core import TensorImage

H, W = 24, 32
rng = np.random.default_rng(7)
pixels = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
x = TensorImage(torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0))


def rotate(deg):
    t = math.radians(deg)
    return [[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0], [0.0, 0.0, 1.0]]


def zoom(s, col_pct, row_pct):
    # fastai's zoom_mat: translation (1 - 1/s) * (2 pct - 1)
    c = (1 - 1 / s) * (2 * col_pct - 1)
    r = (1 - 1 / s) * (2 * row_pct - 1)
    return [[1 / s, 0.0, c], [0.0, 1 / s, r], [0.0, 0.0, 1.0]]


def matmul(a, b):
    return (np.array(a) @ np.array(b)).tolist()


CASES = [
    ("rotate 7 degrees", rotate(7.0), None),
    ("rotate -10, zoom 1.3", matmul(rotate(-10.0), zoom(1.3, 0.2, 0.7)), None),
    ("flip and rotate 3", matmul([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], rotate(3.0)), None),
    ("warp only", np.eye(3).tolist(), (0.15, -0.1)),
    ("rotate 9, zoom 1.1, warp", matmul(rotate(9.0), zoom(1.1, 0.9, 0.1)), (-0.18, 0.12)),
    ("zoom out 0.8 (reflection)", zoom(0.8, 0.5, 0.5), (0.05, 0.2)),
]

cases = []
for name, mat, warp in CASES:
    m = torch.tensor([mat], dtype=torch.float32)
    coord_tfm = None
    if warp is not None:
        x_t, y_t = (torch.tensor([v], dtype=torch.float32) for v in warp)
        orig = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.float32).unsqueeze(0)
        targ = torch.stack([torch.stack([-1 - y_t, -1 - x_t]), torch.stack([-1 + y_t, 1 + x_t]),
                            torch.stack([1 + y_t, -1 + x_t]), torch.stack([1 - y_t, 1 - x_t])]).permute(2, 0, 1)
        coord_tfm = partial(apply_perspective, coeffs=find_coeffs(orig, targ))
    out = x.affine_coord(_prepare_mat(x, m.clone()), coord_tfm=coord_tfm)
    cases.append({
        "name": name,
        "mat": mat,
        "warp": list(warp) if warp is not None else None,
        "out": [float(f"{v:.9g}") for v in out[0].flatten().tolist()],
    })

json.dump({"h": H, "w": W, "pixels": pixels.flatten().tolist(), "cases": cases,
           "fastai": __import__("fastai").__version__, "torch": torch.__version__}, __import__("sys").stdout)
