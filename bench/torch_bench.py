"""PyTorch side of bench/compare_torch.sh: the same models and layers as imgsim-bench-model and
imgsim-bench-layers, timed the same way (wall-clock median after warm-up; process CPU time too).

Run it through compare_torch.sh, which sets the environment that makes PyTorch fast and fair on
this machine (OpenBLAS pthread build, one OpenBLAS thread, glibc malloc kept from returning
memory to the kernel). Run by hand:

  /usr/bin/python3 bench/torch_bench.py model --model seed --batch 32 --threads 1
  /usr/bin/python3 bench/torch_bench.py layers --threads 1
  /usr/bin/python3 bench/torch_bench.py epoch --threads 1

Prints one JSON line last (model, epoch) or one JSON line per layer benchmark (layers). `epoch`
trains the Fashion-MNIST CNN for one epoch on the real training set (Debian
dataset-fashion-mnist) as a PyTorch user would write it: a TensorDataset of the 60000 images in
memory, a DataLoader with batch 64 and shuffling, Adam; the time covers the loop only.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rss_mb():
    # ru_maxrss is the peak resident set size in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_model(name):
    if name == "seed":
        m = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(128 * 26 * 26, 128), nn.ReLU(), nn.Linear(128, 1), nn.Tanh())
        return m, (3, 224, 224), nn.MSELoss()
    m = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))
    return m, (1, 28, 28), nn.CrossEntropyLoss()


def timed(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def bench_model(a):
    torch.manual_seed(0)
    base_rss = rss_mb()
    model, shape, loss_fn = make_model(a.model)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=a.foreach)
    x = torch.rand(a.batch, *shape).contiguous(memory_format=fmt)
    if a.model == "seed":
        y = torch.randint(0, 2, (a.batch, 1)).float() * 2 - 1
    else:
        y = torch.randint(0, 10, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    step_ms, step_cpu = timed(step, a.repeats, a.warmup)
    peak = rss_mb()

    def infer(n, reps):
        xi = torch.rand(n, *shape).contiguous(memory_format=fmt)
        with torch.inference_mode():
            return timed(lambda: model(xi), reps, 2)[0]

    infer1 = infer(1, 20 if a.model == "seed" else 200)
    infern = infer(a.batch, a.repeats)
    out = {
        "framework": "torch " + torch.__version__, "model": a.model, "batch": a.batch,
        "ms_per_step": step_ms, "cpu_ms_per_step": step_cpu,
        "images_per_s": a.batch / step_ms * 1e3, "infer_ms_batch1": infer1,
        "infer_ms_batchN": infern, "infer_images_per_s": a.batch / infern * 1e3,
        "peak_rss_mb": peak, "baseline_rss_mb": base_rss, "threads": torch.get_num_threads(),
        "channels_last": a.channels_last, "foreach": a.foreach,
    }
    print(json.dumps(out))


FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def load_idx(path):
    import gzip
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def bench_epoch(a):
    torch.manual_seed(0)
    images = load_idx(f"{FMNIST_DIR}/train-images-idx3-ubyte.gz")
    labels = load_idx(f"{FMNIST_DIR}/train-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.copy()).float().div_(255.0).view(-1, 1, 28, 28)
    y = torch.from_numpy(labels.copy()).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64,
                                         shuffle=True)
    model, _, loss_fn = make_model("fmnist")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    steps = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for xb, yb in loader:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        steps += 1
    out = {"framework": "torch " + torch.__version__, "seconds_per_epoch": time.perf_counter() - w0,
           "cpu_seconds": time.process_time() - c0, "steps": steps, "final_loss": loss.item(),
           "threads": torch.get_num_threads(), "peak_rss_mb": rss_mb()}
    print(json.dumps(out))


# The layers of bench/bench_layers.cpp: the seed model's (batch 32) and Fashion-MNIST's (batch 64),
# and the 'same' convolutions of the models `imgsim train` builds.
CONVS = [  # name, N, C, H, W, K, padding
    ("seed_conv1", 32, 3, 224, 224, 32, 0),
    ("seed_conv2", 32, 32, 111, 111, 64, 0),
    ("seed_conv3", 32, 64, 54, 54, 128, 0),
    ("fmnist_conv1", 64, 1, 28, 28, 32, 0),
    ("fmnist_conv2", 64, 32, 13, 13, 64, 0),
    ("train_conv28", 128, 32, 28, 28, 32, 1),
    ("train_conv14", 128, 64, 14, 14, 64, 1),
    ("train_conv7", 128, 128, 7, 7, 128, 1),
    ("default_conv32", 256, 32, 32, 32, 64, 1),
    ("default_conv16", 256, 64, 16, 16, 128, 1),
    ("default_conv8", 256, 128, 8, 8, 256, 1),
]
POOLS = [("seed_pool1", 32, 32, 222, 222), ("seed_pool2", 32, 64, 109, 109),
         ("seed_pool3", 32, 128, 52, 52)]
DENSES = [("seed_dense1", 32, 86528, 128), ("fmnist_dense1", 64, 1600, 128)]


def bench_layers(a):
    torch.manual_seed(0)
    reps, warm = a.repeats, a.warmup
    rows = []

    def emit(name, flops, fn):
        wall, cpu = timed(fn, reps, warm)
        rows.append({"name": name, "ms": wall, "cpu_ms": cpu,
                     "gflops": flops / wall * 1e-6 if flops else 0.0})
        print(json.dumps(rows[-1]), flush=True)

    for name, n, c, h, w, k, pad in CONVS:
        if a.filter and a.filter not in name:
            continue
        x = torch.rand(n, c, h, w)
        wt = torch.rand(k, c, 3, 3) - 0.5
        b = torch.rand(k)
        p, q = h - 2 + 2 * pad, w - 2 + 2 * pad
        flops = 2.0 * n * k * p * q * c * 9
        go = torch.rand(n, k, p, q)
        emit(name + "/fwd", flops, lambda: F.conv2d(x, wt, b, padding=pad))
        emit(name + "/bwd_data", flops, lambda: torch.ops.aten.convolution_backward(
            go, x, wt, [k], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [True, False, False]))
        emit(name + "/bwd_weights", flops, lambda: torch.ops.aten.convolution_backward(
            go, x, wt, [k], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [False, True, True]))
    for name, n, c, h, w in POOLS:
        if a.filter and a.filter not in name:
            continue
        x = torch.rand(n, c, h, w, requires_grad=True)
        yv, idx = F.max_pool2d_with_indices(x, 2)
        go = torch.rand_like(yv)
        emit(name + "/fwd", 0, lambda: F.max_pool2d_with_indices(x, 2))
        emit(name + "/bwd", 0, lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            go, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx))
    for name, n, d, u in DENSES:
        if a.filter and a.filter not in name:
            continue
        x = torch.rand(n, d)
        wt = torch.rand(u, d) - 0.5
        b = torch.rand(u)
        go = torch.rand(n, u)
        flops = 2.0 * n * d * u
        emit(name + "/fwd", flops, lambda: F.linear(x, wt, b))
        # dW = go^T x, db = sum(go), dx = go W
        emit(name + "/bwd", 2 * flops, lambda: (go.t().mm(x), go.sum(0), go.mm(wt)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["model", "layers", "epoch"])
    ap.add_argument("--model", default="seed", choices=["seed", "fmnist"])
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--foreach", action="store_true")
    ap.add_argument("--filter", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.batch == 0:
        a.batch = 32 if a.model == "seed" else 64
    if a.repeats == 0:
        a.repeats = 5 if (a.what == "layers" or a.model == "seed") else 30
    if a.what == "model":
        bench_model(a)
    elif a.what == "epoch":
        bench_epoch(a)
    else:
        bench_layers(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
