"""Runs the same models and layers in imgsim and PyTorch, in one go, and prints the ratios.

Called by bench/compare_torch.sh, which sets the environment (see there). For each model and
thread count it alternates imgsim-bench-model and torch_bench.py `--rounds` times and keeps the
median of each side's figures, so that a change in the machine's load during the run hits both
sides alike. Ratios are torch / imgsim for times (> 1: imgsim is faster) and imgsim / torch for
memory.

  /usr/bin/python3 bench/compare_torch.py --build-dir build-perf --threads 1 2 --models seed fmnist
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd, env=None, many=False):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if many:
        return [json.loads(l) for l in lines]
    return json.loads(lines[-1])


def torch_env(threads):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def models(a):
    bench = os.path.join(a.build_dir, "bench", "imgsim-bench-model")
    torch_py = os.path.join(HERE, "torch_bench.py")
    print("\n## Models (ms: wall-clock median per step; cpu: process CPU time; ratio = torch / "
          "imgsim)\n")
    hdr = ("| model | batch | threads | imgsim ms/step | torch ms/step | ratio | imgsim cpu ms | "
           "torch cpu ms | cpu ratio | infer b1 imgsim/torch ms | ratio | infer bN imgsim/torch "
           "img/s | ratio | imgsim GFLOP/s | peak RSS imgsim / torch (over import) MiB | "
           "torch format |")
    rows_out = [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    for model in a.models:
        for threads in a.threads:
            batch = 32 if model == "seed" else 64
            mine, theirs = [], []
            for _ in range(a.rounds):
                cmd = [bench, "--model", model, "--threads", str(threads), "--batch", str(batch)]
                if a.repeats:
                    cmd += ["--repeats", str(a.repeats)]
                mine.append(run_json(cmd))
                # Torch in each memory format asked for; the faster one counts (per round).
                best = None
                for fmt in a.torch_formats:
                    cmd = ["/usr/bin/python3", torch_py, "model", "--model", model, "--threads",
                           str(threads), "--batch", str(batch)]
                    if a.repeats:
                        cmd += ["--repeats", str(a.repeats)]
                    if fmt == "channels_last":
                        cmd.append("--channels-last")
                    r = run_json(cmd, env=torch_env(threads))
                    if best is None or r["ms_per_step"] < best["ms_per_step"]:
                        best = r
                theirs.append(best)
            m_ms, t_ms = med(mine, "ms_per_step"), med(theirs, "ms_per_step")
            m_cpu, t_cpu = med(mine, "cpu_ms_per_step"), med(theirs, "cpu_ms_per_step")
            m_i1, t_i1 = med(mine, "infer_ms_batch1"), med(theirs, "infer_ms_batch1")
            m_in, t_in = med(mine, "infer_images_per_s"), med(theirs, "infer_images_per_s")
            m_rss = max(r["peak_rss_mb"] for r in mine)
            t_rss = max(r["peak_rss_mb"] for r in theirs)
            t_base = min(r["baseline_rss_mb"] for r in theirs)
            fmts = ",".join(sorted({"channels_last" if r["channels_last"] else "nchw"
                                    for r in theirs}))
            rows_out.append(
                f"| {model} | {batch} | {threads} | {m_ms:.1f} | {t_ms:.1f} | {t_ms / m_ms:.2f} | "
                f"{m_cpu:.1f} | {t_cpu:.1f} | {t_cpu / m_cpu:.2f} | {m_i1:.2f} / {t_i1:.2f} | "
                f"{t_i1 / m_i1:.2f} | {m_in:.0f} / {t_in:.0f} | {m_in / t_in:.2f} | "
                f"{med(mine, 'gflops'):.1f} | {m_rss:.0f} / {t_rss:.0f} ({t_rss - t_base:.0f}) | {fmts} |")
            print(rows_out[-1], file=sys.stderr, flush=True)
    print("\n".join(rows_out))


def epochs(a):
    # One Fashion-MNIST training epoch (60000 images, batch 64) in each: the example program
    # (it prints "seconds per epoch", the training loop only) and torch_bench.py epoch.
    example = os.path.join(a.build_dir, "examples", "fashion_mnist")
    torch_py = os.path.join(HERE, "torch_bench.py")
    print("\n## Fashion-MNIST epoch (s, the training loop; ratio = torch / imgsim)\n")
    rows_out = ["| threads | imgsim s/epoch | torch s/epoch | ratio |", "|---|---|---|---|"]
    for threads in a.threads:
        mine, theirs = [], []
        for _ in range(a.rounds):
            cmd = [example, "--epochs", "1", "--threads", str(threads)]
            print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            secs = [float(l.split(":")[1]) for l in out.splitlines()
                    if l.startswith("seconds per epoch:")]
            mine.append(secs[-1])
            cmd = ["/usr/bin/python3", torch_py, "epoch", "--threads", str(threads)]
            theirs.append(run_json(cmd, env=torch_env(threads))["seconds_per_epoch"])
        m, t = statistics.median(mine), statistics.median(theirs)
        rows_out.append(f"| {threads} | {m:.2f} | {t:.2f} | {t / m:.2f} |")
        print(rows_out[-1], file=sys.stderr, flush=True)
    print("\n".join(rows_out))


def layers(a):
    bench = os.path.join(a.build_dir, "bench", "bench_layers")
    torch_py = os.path.join(HERE, "torch_bench.py")
    print("\n## Layers (ms per call, one thread unless noted; ratio = torch / imgsim)\n")
    print("| layer / pass | threads | imgsim ms (cpu) | imgsim GFLOP/s (cpu) | % of peak | "
          "torch ms (cpu) | torch GFLOP/s (cpu) | ratio (cpu) |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in a.threads:
        suffix = "" if threads == 1 else "/threads:2"
        if threads > 2:
            continue
        filt = f"layer/.*/{a.isa}{suffix}$"
        # Google Benchmark reports CPU time for the single-thread entries; for threads:2 the
        # real time is the figure (UseRealTime) and the CPU time covers the calling thread only.
        cmd = [bench, f"--benchmark_filter={filt}", "--benchmark_format=json",
               f"--benchmark_min_time={a.min_time}", f"--peak_gflops={a.peak}"]
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        mine = {}
        for b in json.loads(out)["benchmarks"]:
            parts = b["name"].split("/")
            key = parts[1] + "/" + parts[2]
            t = b["real_time"] if threads > 1 else b["cpu_time"]
            mine[key] = (t, b.get("FLOP/s", 0.0))
        cmd = ["/usr/bin/python3", torch_py, "layers", "--threads", str(threads)]
        theirs = {r["name"]: r for r in run_json(cmd, env=torch_env(threads), many=True)}
        for key, (ms, flops) in mine.items():
            if key not in theirs:
                continue
            tr = theirs[key]
            tms = tr["ms"] if threads > 1 else tr["cpu_ms"]
            gf = flops * 1e-9
            tgf = gf * ms / tms if gf else 0.0
            pct = f"{100 * gf / a.peak / threads:.0f} %" if gf else "-"
            print(f"| {key} | {threads} | {ms:.3f} | {gf:.1f} | {pct} | {tms:.3f} | {tgf:.1f} | "
                  f"{tms / ms:.2f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build-perf"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", nargs="+", default=["seed", "fmnist"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=0)
    ap.add_argument("--layers", action="store_true", help="also compare the layers")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--epoch", action="store_true",
                    help="also compare a Fashion-MNIST training epoch (needs examples/fashion_mnist)")
    ap.add_argument("--isa", default="avx512")
    ap.add_argument("--min-time", default="0.5")
    ap.add_argument("--peak", type=float, default=117.0, help="FMA peak GFLOP/s per core")
    ap.add_argument("--torch-formats", nargs="+", default=["nchw", "channels_last"],
                    choices=["nchw", "channels_last"],
                    help="memory formats to run the torch models in; the faster one counts")
    a = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]}", file=sys.stderr)
    if not a.no_models:
        models(a)
    if a.epoch:
        epochs(a)
    if a.layers:
        layers(a)
    with open("/proc/loadavg") as f:
        print(f"load average at end: {f.read().split()[:3]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
