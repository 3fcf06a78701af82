"""PyTorch side of `cargo bench --bench kernels`.

Reads the op list (JSON) on stdin, times each op's forward and backward and the
ResNet-18 training step (forward + backward + AdamW) on the CPU, and prints one
JSON object. Usage: torch_kernels.py --threads N [--quick]
"""
import argparse
import json
import statistics
import sys
import time


def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def build_op(spec, torch, F):
    n, c, h, w = spec["n"], spec["c"], spec["h"], spec["w"]
    x = torch.randn(n, c, h, w, requires_grad=True)
    kind = spec["kind"]
    if kind == "conv":
        weight = torch.randn(spec["o"], c // spec["groups"], spec["k"], spec["k"], requires_grad=True)
        return lambda: F.conv2d(x, weight, None, spec["s"], spec["p"], 1, spec["groups"])
    if kind == "bn":
        weight = torch.ones(c, requires_grad=True)
        bias = torch.zeros(c, requires_grad=True)
        rm, rv = torch.zeros(c), torch.ones(c)
        return lambda: F.batch_norm(x, rm, rv, weight, bias, True, 0.1, 1e-5)
    if kind == "maxpool":
        return lambda: F.max_pool2d(x, spec["k"], spec["s"], spec["p"])
    if kind == "adaptive_avgpool":
        return lambda: F.adaptive_avg_pool2d(x, 1)
    raise ValueError(kind)


def time_op(spec, reps, torch, F):
    fwd = build_op(spec, torch, F)
    with torch.no_grad():
        fwd_ms = median_ms(fwd, reps)
    y = fwd()
    r = torch.randn_like(y)

    def backward():
        fwd().backward(r)

    # Backward alone: forward + backward minus forward.
    both_ms = median_ms(backward, reps)
    return {"fwd_ms": fwd_ms, "bwd_ms": max(both_ms - fwd_ms, 0.0)}


def time_step(size, reps, torch, torchvision):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, eps=1e-5)
    x = torch.randn(32, 3, size, size)
    y = torch.randint(0, 10, (32,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    ms = median_ms(step, reps)
    return {"step_ms": ms, "images_per_s": 32 / (ms / 1e3)}


def time_optimisers(n_steps, torch, torchvision):
    """Mean ms of opt.step() over ResNet-18's parameters with fixed gradients, for
    the optimisers benches/kernels.rs times (same hyper-parameters). torch has no
    Lookahead: ranger is RAdam plus fastai's sync every 6 steps, in foreach ops."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opts = {
        "adamw": lambda: torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), eps=1e-5,
                                           weight_decay=0.01),
        "sgd": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=0.01),
        "radam": lambda: torch.optim.RAdam(params, lr=1e-3, betas=(0.9, 0.99), eps=1e-5),
        "ranger": lambda: torch.optim.RAdam(params, lr=1e-3, betas=(0.95, 0.99), eps=1e-6,
                                            weight_decay=0.01, decoupled_weight_decay=True),
    }
    out = {}
    with torch.no_grad():
        for name, make in opts.items():
            opt = make()
            opt.step()  # state allocation
            slow = [p.detach().clone() for p in params] if name == "ranger" else None
            t0 = time.perf_counter()
            for i in range(n_steps):
                opt.step()
                if slow is not None and (i + 1) % 6 == 0:
                    torch._foreach_lerp_(slow, params, 0.5)
                    torch._foreach_copy_(params, slow)
            out[name] = (time.perf_counter() - t0) * 1e3 / n_steps
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        import torchvision
    except ImportError as e:
        print(json.dumps({"error": f"cannot import torch/torchvision: {e}"}))
        return
    torch.set_num_threads(args.threads)
    request = json.load(sys.stdin)
    reps = 2 if args.quick else 5
    ops = {s["name"]: time_op(s, reps, torch, F) for s in request["ops"]}
    steps = {str(size): time_step(size, 2 if args.quick else request["step_reps"], torch, torchvision)
             for size in request["step_sizes"]}
    optim = time_optimisers(request.get("optim_steps", 12), torch, torchvision)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "ops": ops, "steps": steps, "optim": optim}))


if __name__ == "__main__":
    main()
