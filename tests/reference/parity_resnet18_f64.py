"""Train-mode parity reference for torchvision's resnet18 in float64.

../shared/reference/parity-resnet18.json holds PyTorch's float32 train-mode
logits, loss and gradient statistics for formula weights and a formula input
(batch 2, 64 px). Those numbers are rounding-dominated: training-mode BatchNorm
over layer4's 2x2 planes of a batch of 2 (8 values a channel) normalises
differences that float32 has mostly rounded away, so PyTorch's own float32
result is far from its float64 result (printed below as `f32_vs_f64`). This
script recomputes the same quantities in float64 (weights, input, targets and
formulas from the shared file, unchanged) for tests/parity_resnet18.rs to
compare orchard's float64 run with, and records how far PyTorch's float32 run
is from them.
Run: /work/venv/bin/python tests/reference/parity_resnet18_f64.py > tests/reference/parity_resnet18_f64.json
(torch 2.15 CPU, torchvision 0.29.2)."""
import json, math, pathlib, torch, torchvision
import torch.nn.functional as F

ref = pathlib.Path(__file__).resolve().parents[2] / "../shared/reference/parity-resnet18.json"
r = json.load(open(ref))["torchvision_resnet18"]
entries = r["weights"]["entries"]


def formula_state(dtype):
    m = torchvision.models.resnet18(num_classes=4)
    sd = m.state_dict()
    for e in entries:
        j, name, shape, kind = e["j"], e["name"], e["shape"], e["kind"]
        n = math.prod(shape) if shape else 1
        s = torch.sin(0.37 * torch.arange(n, dtype=torch.float64) + 1.3 * j)
        v = {"fan_in": lambda: s / math.sqrt(n / shape[0]), "one": lambda: 1 + 0.1 * s,
             "small": lambda: 0.1 * s, "var": lambda: 1 + 0.5 * s**2,
             "zero": lambda: torch.zeros(n, dtype=torch.float64)}[kind]()
        sd[name] = v.reshape(shape)
    m = m.to(dtype)
    m.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()})
    return m


def run(dtype):
    m = formula_state(dtype)
    x = torch.sin(0.011 * torch.arange(2 * 3 * 64 * 64, dtype=torch.float64)).reshape(2, 3, 64, 64)
    m.train()
    logits = m(x.to(dtype))
    loss = F.cross_entropy(logits, torch.tensor(r["targets"]))
    loss.backward()
    grads = {n: {"sum": p.grad.double().sum().item(), "sumsq": (p.grad.double() ** 2).sum().item()}
             for n, p in m.named_parameters()}
    return logits.double().tolist(), loss.item(), grads


logits, loss, grads = run(torch.float64)
l32, loss32, g32 = run(torch.float32)
rel = lambda a, b: abs(a - b) / abs(b)
f32 = {
    "logits_max_rel": max(rel(a, b) for ra, rb in zip(l32, logits) for a, b in zip(ra, rb)),
    "loss_rel": rel(loss32, loss),
    "grad_sumsq_max_rel": max(rel(g32[n]["sumsq"], grads[n]["sumsq"]) for n in grads),
    "shared_file_logits_max_rel": max(rel(a, b) for ra, rb in zip(r["train_logits"], logits) for a, b in zip(ra, rb)),
}
print(json.dumps({"entries": entries, "targets": r["targets"], "train_logits": logits,
                  "train_ce_loss": loss, "grads": grads, "torch_f32_vs_f64": f32}))
