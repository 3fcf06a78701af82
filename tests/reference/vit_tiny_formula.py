"""timm's vit_tiny_patch16_224(num_classes=5, dynamic_img_size=True) with
formula weights, eval mode, on formula inputs smaller than 224 px, so the
position embeddings (stored for a 14x14 grid) are resampled as timm does
(`resample_abs_pos_embed`: bicubic, antialias=True, class token aside): the
logits tests/vit_parity.rs compares orchard's to. Also F.interpolate's bicubic
(align_corners=False, antialias False and True) on a fixed tensor, for the
resampling matrices alone.

Entry j of the state_dict, flat index i,
s = sin(0.37*i + 1.3*j + 0.01*(i mod 97)*(i mod 89)) (the last term keeps the
weight matrices from being rank 2, which makes the logits ignore the image):
cls_token, pos_embed 0.5s; weights of Linear/Conv s/sqrt(fan_in); LayerNorm
weight 1+0.1s; every bias 0.1s. Input k of shape (N, 3, H, W): x[i] = sin(0.011*i + k).
The model runs in float64 (the reference) and float32 (what a torch user gets;
its distance from float64 is reported as `f32_vs_f64`).
Run: /work/venv/bin/python tests/reference/vit_tiny_formula.py > tests/reference/vit_tiny_formula.json
(torch 2.15 CPU, timm 1.0.31)."""
import json, math, torch, timm
import torch.nn.functional as F

m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, dynamic_img_size=True)
sd = m.state_dict()
for j, (name, t) in enumerate(sd.items()):
    n = t.numel()
    ar = torch.arange(n, dtype=torch.float64)
    s = torch.sin(0.37 * ar + 1.3 * j + 0.01 * (ar % 97) * (ar % 89))
    if name in ("cls_token", "pos_embed"):
        v = 0.5 * s
    elif name.endswith("bias"):
        v = 0.1 * s
    elif name.endswith("weight") and t.dim() >= 2:
        v = s / math.sqrt(n / t.shape[0])
    elif name.endswith("weight"):
        v = 1 + 0.1 * s
    else:
        raise SystemExit(f"no formula for {name}")
    sd[name] = v.reshape(t.shape).to(t.dtype)
m.load_state_dict(sd)
m.eval()

inputs = []
for k, shape in enumerate([(2, 3, 64, 64), (1, 3, 32, 48)]):
    n = math.prod(shape)
    x = torch.sin(0.011 * torch.arange(n, dtype=torch.float64) + k).reshape(shape)
    with torch.no_grad():
        want = m.double()(x)
        f32 = m.float()(x.float()).double()
    inputs.append({
        "shape": list(shape),
        "logits": want.tolist(),
        "f32_vs_f64": ((f32 - want).abs().max() / want.abs().max()).item(),
    })

g = torch.sin(0.7 * torch.arange(2 * 5 * 7, dtype=torch.float64)).reshape(1, 2, 5, 7)
interpolate = []
for size in [(3, 4), (9, 11), (2, 14)]:
    for aa in [False, True]:
        y = F.interpolate(g, size=size, mode="bicubic", align_corners=False, antialias=aa)
        interpolate.append({"size": list(size), "antialias": aa, "out": y.flatten().tolist()})

print(json.dumps({
    "entries": list(sd.keys()),
    "inputs": inputs,
    "interpolate_input": {"shape": list(g.shape), "values": g.flatten().tolist()},
    "interpolate": interpolate,
}))
