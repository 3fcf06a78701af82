"""fastai's xresnet18(n_out=4, sa=True, act_cls=Mish) with formula weights, in
eval mode, on a formula input: the logits tests/xresnet_parity.rs compares to.
48 px makes stage 4's identity path average-pool a 3x3 plane (ceil_mode's
partial window). Weight j (state_dict order, num_batches_tracked skipped
nowhere: j counts every entry), flat index i, s = sin(0.37*i + 1.3*j):
conv/linear weights s/sqrt(fan_in); BN weight 1+0.1s; BN bias, linear bias,
running_mean 0.1s; running_var 1+0.5s^2; SA gamma 0.5; spectral u, v s.
Input x[i] = sin(0.011*i), shape (2, 3, 48, 48).
Run: /work/venv/bin/python tests/reference/xresnet18_formula.py > tests/reference/xresnet18_formula.json
(torch 2.15 CPU, fastai 2.8.12)."""
import json, math, torch
from fastai.vision.models.xresnet import xresnet18
from fastai.layers import Mish

m = xresnet18(n_out=4, sa=True, act_cls=Mish)
sd = m.state_dict()
for j, (name, t) in enumerate(sd.items()):
    n = t.numel()
    s = torch.sin(0.37 * torch.arange(n, dtype=torch.float64) + 1.3 * j)
    if name.endswith("num_batches_tracked"):
        continue
    if name.endswith("gamma"):
        v = torch.full((n,), 0.5, dtype=torch.float64)
    elif name.endswith(("weight_u", "weight_v")):
        v = s
    elif name.endswith("running_var"):
        v = 1 + 0.5 * s**2
    elif name.endswith(("running_mean", "bias")):
        v = 0.1 * s
    elif name.endswith(("weight", "weight_orig")) and t.dim() >= 2:
        v = s / math.sqrt(n / t.shape[0])
    elif name.endswith("weight"):
        v = 1 + 0.1 * s
    else:
        raise SystemExit(f"no formula for {name}")
    sd[name] = v.reshape(t.shape).to(t.dtype)
m.load_state_dict(sd)
m.eval()
x = torch.sin(0.011 * torch.arange(2 * 3 * 48 * 48, dtype=torch.float64)).reshape(2, 3, 48, 48).float()
with torch.no_grad():
    logits = m(x)
print(json.dumps({"eval_logits": logits.tolist(), "entries": list(sd.keys())}))
