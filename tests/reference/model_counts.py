"""Reference parameter counts and state_dict names for the models' tests
(src/models/*.rs, tests/models_cli.rs). Produced with torch 2.15 CPU,
torchvision 0.29.2 and fastai 2.8.12:
    /work/venv/bin/python tests/reference/model_counts.py > tests/reference/model_counts.json
"""
import json
import torch
import torchvision
from fastai.vision.models.xresnet import xresnet18, xresnet34, xresnet50
from fastai.layers import Mish


def count(m):
    return sum(p.numel() for p in m.parameters())


out = {}
for name in ["resnet18", "resnet34", "resnet50"]:
    for n in [1000, 4]:
        out[f"{name}/{n}"] = count(getattr(torchvision.models, name)(num_classes=n))
for name, f in [("xresnet18", xresnet18), ("xresnet34", xresnet34), ("xresnet50", xresnet50)]:
    for n in [1000, 4]:
        out[f"{name}/{n}"] = count(f(n_out=n))
        out[f"{name}/{n}/sa"] = count(f(n_out=n, sa=True))
        out[f"{name}/{n}/mish"] = count(f(n_out=n, act_cls=Mish))
m = xresnet18(n_out=4, sa=True)
out["xresnet18_sa_keys"] = [(k, list(v.shape)) for k, v in m.state_dict().items()]
m = xresnet50(n_out=4, sa=True)
out["xresnet50_sa_keys"] = [(k, list(v.shape)) for k, v in m.state_dict().items()]
for name in ["resnet34", "resnet50"]:
    m = getattr(torchvision.models, name)(num_classes=4)
    out[f"{name}_keys"] = [(k, list(v.shape)) for k, v in m.state_dict().items()]
print(json.dumps(out))
