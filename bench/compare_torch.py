"""PyTorch side of bench/compare.ts: trains the FedAvg paper's 2NN (784-200-200-10) with plain
SGD on the examples that bench/compare.ts wrote to --data, and prints one JSON line per thread
setting and batch size.

The data folder holds meta.json (n, features, classes, layers), x.f32 (n * features float32),
y.i32 (n int32) and init.f32 (the engine's initial parameters: per dense layer the weight as
(in, out) row-major, then the bias), all in the machine's byte order.

  python3 bench/compare_torch.py --data DIR --batch 10,64 --epochs 3 --warmup 1 --lr 0.1

The "blas" field names the BLAS that torch's matrix products run on, which sets its speed.
pip's torch links Intel MKL into itself (and oneDNN for some layers), so no BLAS library shows
among the mapped files: its build configuration says "BLAS_INFO=mkl". Debian's torch uses
whichever libblas.so.3 the system's alternatives select (the reference BLAS of libblas3 unless
an optimized one such as libopenblas0 is installed). "install" is "pip" or "debian" by where
torch was imported from, "torch_path" that folder, "mkl" and "mkldnn" whether torch can use
them, and "build_blas" the BLAS its build names.
"""

import argparse
import json
import os
import re
import sys
import time

import torch
from torch import nn


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch", default="10,64")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    # "default" is torch's own choice, "cores" the CPUs this process may use; numbers are
    # passed to torch.set_num_threads. Repeats run once.
    parser.add_argument("--threads", default="default,1,cores")
    return parser.parse_args()


def read_array(path, dtype, count):
    with open(path, "rb") as file:
        raw = bytearray(file.read())
    values = torch.frombuffer(raw, dtype=dtype)
    if values.numel() != count:
        raise ValueError(f"{path}: expected {count} values, got {values.numel()}")
    return values.clone()


def blas_library():
    """The BLAS shared library mapped into this process (resolved), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                fields = line.split()
                path = fields[5] if len(fields) >= 6 else ""
                # numpy and scipy bring OpenBLAS copies of their own, which torch does not use.
                if "blas" in os.path.basename(path).lower() and ".libs/" not in path:
                    return os.path.realpath(path)
    except OSError:
        pass
    return None


def build_info():
    """What this torch is and was built with: where it came from, its BLAS, MKL and oneDNN."""
    path = os.path.dirname(os.path.realpath(torch.__file__))
    config = torch.__config__.show()
    found = re.search(r"BLAS_INFO=(\w+)", config)
    return {
        "install": "debian" if "/dist-packages/" in path and path.startswith("/usr/") else "pip",
        "torch_path": path,
        "build_blas": found.group(1) if found else None,
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }


def build_model(layers, init):
    modules = []
    offset = 0
    for index, (n_in, n_out) in enumerate(layers):
        linear = nn.Linear(n_in, n_out)
        weight = init[offset:offset + n_in * n_out].view(n_in, n_out)
        offset += n_in * n_out
        bias = init[offset:offset + n_out]
        offset += n_out
        with torch.no_grad():
            linear.weight.copy_(weight.t())
            linear.bias.copy_(bias)
        modules.append(linear)
        if index < len(layers) - 1:
            modules.append(nn.ReLU())
    if offset != init.numel():
        raise ValueError(f"init.f32 holds {init.numel()} values, the layers need {offset}")
    return nn.Sequential(*modules)


def run_epoch(model, loss_fn, optimizer, x, y, batch, generator):
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    loss_sum = 0.0
    correct = 0
    for start in range(0, n, batch):
        index = order[start:start + batch]
        xb = x.index_select(0, index)
        yb = y.index_select(0, index)
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * xb.shape[0]
        correct += int((logits.argmax(1) == yb).sum())
    return loss_sum / n, correct / n


def main():
    args = parse_args()
    with open(os.path.join(args.data, "meta.json"), encoding="utf-8") as file:
        meta = json.load(file)
    n, features = meta["n"], meta["features"]
    layers = meta["layers"]
    x = read_array(os.path.join(args.data, "x.f32"), torch.float32, n * features).view(n, features)
    y = read_array(os.path.join(args.data, "y.i32"), torch.int32, n).long()
    count = sum(n_in * n_out + n_out for n_in, n_out in layers)
    init = read_array(os.path.join(args.data, "init.f32"), torch.float32, count)

    default_threads = torch.get_num_threads()
    settings = []
    for item in args.threads.split(","):
        if item == "default":
            threads = default_threads
        elif item == "cores":
            threads = len(os.sched_getaffinity(0))
        else:
            threads = int(item)
        if threads not in [t for t, _ in settings]:
            settings.append((threads, threads == default_threads))
    info = build_info()
    # MKL is linked into pip's torch, and a BLAS mapped beside it (numpy's OpenBLAS, say) is
    # not what torch's products run on; any other build uses the libblas it is linked against.
    if info["build_blas"] == "mkl":
        blas = "mkl (linked into torch)"
    else:
        blas = blas_library() or info["build_blas"]
    for threads, is_default in settings:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in args.batch.split(",")]:
            torch.manual_seed(args.seed)
            generator = torch.Generator().manual_seed(args.seed)
            model = build_model(layers, init)
            loss_fn = nn.CrossEntropyLoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0)
            for _ in range(args.warmup):
                run_epoch(model, loss_fn, optimizer, x, y, batch, generator)
            started = time.perf_counter()
            loss = accuracy = float("nan")
            for _ in range(args.epochs):
                loss, accuracy = run_epoch(model, loss_fn, optimizer, x, y, batch, generator)
            seconds = time.perf_counter() - started
            print(json.dumps({
                "system": "pytorch",
                "backend": "cpu",
                "threads": threads,
                "default_threads": is_default,
                "batch": batch,
                "seconds": seconds,
                "samples_per_s": args.epochs * n / seconds,
                "loss": loss,
                "accuracy": accuracy,
                "version": torch.__version__,
                "blas": blas,
                **info,
            }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
