"""How far fastai's own float32 resample is from the same resample in float64,
at 224 px: the yardstick for `src/augment/fused.rs`'s float32 sampling grid
(test `fused_equals_the_unfused_reference`, its 224 px case).

    /work/venv/bin/python tests/reference/fastai_affine_precision.py
    # 2026-11-29, fastai 2.8.12, torch 2.15: worst 4.2e-05 (on [0, 1] values)
"""
import math, numpy as np, torch
import torch.nn.functional as F
from functools import partial
from fastai.vision.augment import _prepare_mat, apply_perspective, find_coeffs
from fastai.torch_core import TensorImage
rng = np.random.default_rng(1)
px = rng.integers(0,256,size=(224,224,3),dtype=np.uint8)
def pts(warp, dtype):
    x_t, y_t = (torch.tensor([v], dtype=dtype) for v in warp)
    orig = torch.tensor([[-1,-1],[-1,1],[1,-1],[1,1]], dtype=dtype).unsqueeze(0)
    targ = torch.stack([torch.stack([-1-y_t,-1-x_t]), torch.stack([-1+y_t,1+x_t]), torch.stack([1+y_t,-1+x_t]), torch.stack([1-y_t,1-x_t])]).permute(2,0,1)
    return orig, targ
def fastai32(mat, warp):
    x = TensorImage(torch.from_numpy(px).permute(2,0,1).float().div(255).unsqueeze(0))
    m = torch.tensor([mat], dtype=torch.float32)
    ct = partial(apply_perspective, coeffs=find_coeffs(*pts(warp, torch.float32)))
    return x.affine_coord(_prepare_mat(x, m.clone()), coord_tfm=ct)[0].double()
def exact64(mat, warp):
    x = torch.from_numpy(px).permute(2,0,1).double().div(255).unsqueeze(0)
    m = torch.tensor([mat], dtype=torch.float64)
    m[:,0,1] *= 1.0; m[:,1,0] *= 1.0  # square: _prepare_mat is the identity
    g = F.affine_grid(m[:, :2], (1,3,224,224), align_corners=True).view(1,-1,2)
    c = find_coeffs(*pts(warp, torch.float64))[..., 0]
    d = g[...,0]*c[:,6,None] + g[...,1]*c[:,7,None] + 1
    gx = (g[...,0]*c[:,0,None] + g[...,1]*c[:,1,None] + c[:,2,None]) / d
    gy = (g[...,0]*c[:,3,None] + g[...,1]*c[:,4,None] + c[:,5,None]) / d
    g = torch.stack([gx, gy], -1).view(1,224,224,2)
    return F.grid_sample(x, g, mode='bilinear', padding_mode='reflection', align_corners=True)[0]
worst=0
for k in range(10):
    t = math.radians(rng.uniform(-10,10)); s=1/rng.uniform(1,1.1)
    mat=[[math.cos(t)*s,-math.sin(t)*s,0.01],[math.sin(t)*s,math.cos(t)*s,-0.02],[0,0,1]]
    warp=(rng.uniform(-.2,.2), rng.uniform(-.2,.2))
    worst=max(worst,(fastai32(mat,warp)-exact64(mat,warp)).abs().max().item())
print("fastai f32 vs f64 at 224, worst", worst)
