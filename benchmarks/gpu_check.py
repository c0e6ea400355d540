"""One-shot check of the CUDA and bf16 paths: every trainer for a few steps, then the five grader scripts.

    python3 benchmarks/gpu_check.py --out runs/gpu_check            # on a machine with a GPU, a few minutes
    python3 benchmarks/gpu_check.py --out /tmp/check --device cpu --steps 2 --no-scripts   # the wiring, on a CPU

For each trainer (VAE, GAN as DCGAN and SAGAN, ACGAN, DDPM, and every UDA method) and
each ``--precision`` it trains ``--steps`` updates on the built-in data (built into
``OUT/data``) and prints the time per 100 updates and the peak GPU memory. Then
``pipeline.py --profile demo`` on the same device runs the whole homework, including
``hw3_p1.sh`` ... ``hw3_p5.sh`` exactly as the grader does. ``--data`` trains on a tree that exists. Writes ``OUT/gpu_check.json``
and ``OUT/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from hw3 import artifacts, common  # noqa: E402
import demo_data  # noqa: E402
import pipeline  # noqa: E402
import train_ddpm  # noqa: E402
import train_gan  # noqa: E402
import train_uda  # noqa: E402
import train_vae  # noqa: E402
from hw3 import uda  # noqa: E402
from hw3.common import UserError, cli, markdown_table, write_json  # noqa: E402


def trainers(steps: int) -> dict[str, tuple]:
    """Each trainer's ``main`` and the flags that train it for about ``steps`` updates."""
    runs = {
        "VAE": (train_vae, ["--epochs", "2"]),  # two epochs: at least 2 updates on any tree
        "GAN dcgan/bce": (train_gan, ["--arch", "dcgan", "--loss", "bce", "--steps", str(steps)]),
        "GAN sagan/hinge": (train_gan, ["--arch", "sagan", "--loss", "hinge", "--steps", str(steps)]),
        "ACGAN": (train_gan, ["--task", "digits", "--steps", str(steps)]),
        "DDPM": (train_ddpm, ["--steps", str(steps)]),
    }
    for method in uda.METHODS:
        runs[f"UDA {method}"] = (train_uda, ["--source", "usps", "--target", "mnistm", "--method", method,
                                              "--epochs", "1", "--steps-per-epoch", str(steps)])
    return runs


def time_trainer(module, flags: list[str], data: Path, out: Path, device: str, precision: str) -> dict:
    """Train once; wall seconds, seconds per 100 updates and peak GPU memory (MiB; None on the CPU)."""
    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    module.main(["--data", str(data), "--out-dir", str(out), "--device", device, "--precision", precision,
                 "--quiet", "--restart", *flags])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    steps = pd.read_csv(out / artifacts.LOG)["step"].max()
    return {"seconds": round(seconds, 2), "s_per_100_steps": round(100 * seconds / max(steps, 1), 2),
            "steps": int(steps), "peak_mib": round(torch.cuda.max_memory_allocated() / 2 ** 20) if cuda else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_check"), help="data, runs and the results")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--data", type=Path, default=None,
                        help="a tree in the assignment's layout to train on (default: the built-in data, built into "
                             "OUT/data)")
    parser.add_argument("--steps", type=int, default=200, help="updates per trainer")
    parser.add_argument("--precision", nargs="+", choices=["bf16", "fp32"], default=["bf16", "fp32"])
    parser.add_argument("--no-scripts", action="store_true", help="skip the demo pipeline and the grader scripts")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device here: run this on a GPU machine (or --device cpu to check the wiring)")
    data = args.data or demo_data.build(args.out / "data")
    rows, results = [], {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                         "torch": torch.__version__, "trainers": {}}
    for precision in args.precision:
        for name, (module, flags) in trainers(args.steps).items():
            run = args.out / "runs" / precision / name.replace(" ", "_").replace("/", "-")
            result = time_trainer(module, flags, data, run, args.device, precision)
            results["trainers"][f"{name} [{precision}]"] = result
            rows.append([name, precision, result["steps"], f"{result['s_per_100_steps']:.2f}",
                         "–" if result["peak_mib"] is None else str(result["peak_mib"])])
            print(f"{name} [{precision}]: {result['s_per_100_steps']:.2f} s per 100 steps, "
                  f"peak {result['peak_mib']} MiB", flush=True)
    common.set_precision("auto")
    if not args.no_scripts:  # the whole homework on this device, grader scripts included
        started = time.perf_counter()
        pipeline.main(["--profile", "demo", "--device", args.device, "--runs", str(args.out / "demo"),
                       "--out", str(args.out / "report")])
        results["demo_pipeline_seconds"] = round(time.perf_counter() - started, 1)
    table = markdown_table(["trainer", "precision", "updates", "s per 100 updates", "peak MiB"], rows)
    write_json(args.out / "gpu_check.json", results)
    (args.out / "gpu_check.md").write_text(f"Device: {results['device']}, torch {results['torch']}\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    cli(main)
