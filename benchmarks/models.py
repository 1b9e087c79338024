"""Training throughput of every zoo model: forward + backward per second, parameters and MACs.

    python -m benchmarks.models --out models.json            # every model, every width
    python -m benchmarks.models --out quick.json --quick     # 1 s inputs, batch 2, default widths
    python -m benchmarks.models --out ecapa.json --models 'ecapa*' --batch 16

Run it with ``-m`` from the repository root, so the checkout's packages are the ones imported.
Each model gets the paper's input (its sample rate and length, through its own front-end,
computed once outside the timing), ``--batch`` examples, on the GPU when there is one.
Multiply-accumulates are counted per example with forward hooks on every Conv and Linear
layer (convolutions: output elements x input channels per group x kernel size; linear: output
elements x input features); element-wise work (BN, activations, pooling) is not counted.

Writes ``{"device", "torch", "threads", "quick", "batch", "results": [{"model", "width",
"params", "macs", "input_shape", "seconds", "step_ms", "examples_per_s"} | {..., "error"}]}``.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from trainables.features import create_frontend
from trainables.models import create_model, list_models, model_info, num_parameters


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass over ``x``, per example (Conv and Linear layers)."""
    total = 0

    def hook(layer: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features
        else:
            total += output.numel() * layer.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total // x.shape[0]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model: nn.Module, x: torch.Tensor, classes: int, steps: int, warmup: int) -> float:
    """Mean seconds of one forward + backward (cross-entropy on random labels) after ``warmup``."""
    labels = torch.randint(0, classes, (x.shape[0],), device=x.device)
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(x.device)
            started = time.perf_counter()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
    synchronize(x.device)
    return (time.perf_counter() - started) / steps


def benchmark(name: str, width: int | None, batch: int, quick: bool, device: torch.device) -> dict:
    info = model_info(name)
    seconds = max(min(info.seconds, 1.0), info.min_seconds) if quick else info.seconds
    options = {"width": width} if width is not None else {}
    row = {"model": name, "family": info.family, "width": width, "input": info.input, "seconds": round(seconds, 3)}
    torch.manual_seed(0)
    model = create_model(name, num_classes=info.classes, **options).to(device)
    channels = info.options["in_channels"]
    wave = torch.randn(batch, channels, int(seconds * info.sample_rate), device=device) * 0.1
    with torch.no_grad():
        x = create_frontend(info.input, info.sample_rate).to(device)(wave)
    row.update(params=num_parameters(model), input_shape=list(x.shape[1:]), macs=count_macs(model, x))
    step = time_steps(model, x, info.classes, steps=2 if quick else 5, warmup=1 if quick else 2)
    row.update(step_ms=round(step * 1000, 2), examples_per_s=round(batch / step, 2))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="1 s inputs, batch 2, default widths, fewer steps")
    parser.add_argument("--models", default="*", help="shell pattern over model names (default every model)")
    parser.add_argument("--batch", type=int, default=None, help="examples per step (default 8; 2 with --quick)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = args.batch or (2 if args.quick else 8)
    results = []
    for name in list_models(args.models):
        widths = model_info(name).widths
        for width in ([None] if args.quick or not widths else widths):
            try:
                row = benchmark(name, width, batch, args.quick, device)
            except (RuntimeError, ValueError) as error:  # out of memory, input too short
                row = {"model": name, "width": width, "error": str(error).splitlines()[0]}
            results.append(row)
            print(json.dumps(row), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "batch": batch,
        "results": results,
    }
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
