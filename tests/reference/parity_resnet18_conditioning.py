"""How well-conditioned is ../shared/reference/parity-resnet18.json?
Rebuilds torchvision's resnet18 (4 classes) from the file's weight formula and
prints PyTorch's eval and train-mode logits in float32 (they equal the file's)
and in float64, plus per-stage sums in train mode. The float64 train logits
differ from the float32 ones by up to ~52% (relative): training-mode BatchNorm
with batch 2 amplifies rounding, so train-mode parity at 1e-4 is out of reach
for any implementation that does not replay PyTorch's float32 arithmetic.
Run: /work/venv/bin/python tests/reference/parity_resnet18_conditioning.py
(torch 2.15 CPU, torchvision 0.29.2)."""
import json, math, pathlib, torch, torchvision

ref = pathlib.Path(__file__).resolve().parents[2] / "../shared/reference/parity-resnet18.json"
r = json.load(open(ref))["torchvision_resnet18"]
m = torchvision.models.resnet18(num_classes=4)
sd = m.state_dict()
for e in r["weights"]["entries"]:
    j, name, shape, kind = e["j"], e["name"], e["shape"], e["kind"]
    n = math.prod(shape) if shape else 1
    s = torch.sin(0.37 * torch.arange(n, dtype=torch.float64) + 1.3 * j)
    v = {"fan_in": lambda: s / math.sqrt(n / shape[0]), "one": lambda: 1 + 0.1 * s,
         "small": lambda: 0.1 * s, "var": lambda: 1 + 0.5 * s**2,
         "zero": lambda: torch.zeros(n, dtype=torch.float64)}[kind]()
    sd[name] = v.reshape(shape).to(sd[name].dtype)
x = torch.sin(0.011 * torch.arange(2 * 3 * 64 * 64, dtype=torch.float64)).reshape(2, 3, 64, 64)


def stats(model, dtype):
    model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()})
    out = {}
    for n in ["layer1", "layer2", "layer3", "layer4"]:
        getattr(model, n).register_forward_hook(
            lambda mod, i, o, n=n: out.setdefault(n, (o.double().sum().item(), (o.double() ** 2).sum().item())) and None)
    model.eval()
    ev = model(x.to(dtype)).tolist()
    out.clear()
    model.train()
    tr = model(x.to(dtype)).tolist()
    return ev, tr, out


for dtype in [torch.float32, torch.float64]:
    ev, tr, out = stats(torchvision.models.resnet18(num_classes=4).to(dtype), dtype)
    print(dtype, "eval", ev)
    print(dtype, "train", tr)
    for k, v in out.items():
        print(dtype, k, "sum, sumsq:", v)
print("file train", r["train_logits"])
