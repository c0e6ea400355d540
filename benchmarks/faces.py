"""Problem 1's measurement: the VAE's reconstruction error on a face tree's test faces.

    python3 demo_data.py --out demo_data
    python3 benchmarks/faces.py --data demo_data --out runs/faces

Trains ``train_vae.py`` with its defaults plus ``--train-args`` (skipped when the run is done),
then writes ``--report``: the face counts, the kept epoch, the validation and test MSE (pixel mean,
decoded from the posterior mean, as ``train_vae.evaluate`` scores it), the KL, and the training time.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import train_vae  # noqa: E402
from datasets import load_faces, train_val_split  # noqa: E402
from hw3 import artifacts, checkpoints  # noqa: E402
from hw3.checkpoints import load_model  # noqa: E402
from hw3.common import cli, command_line, markdown_table, write_text  # noqa: E402
from hw3.jobs import run_jobs  # noqa: E402


def measure(data: Path, run: Path) -> dict:
    """The finished run's kept model scored on the test faces, beside what its checkpoint recorded."""
    model, checkpoint = load_model(run / artifacts.MODEL, (checkpoints.VAE,))
    test = load_faces(data, "test")
    scores = train_vae.evaluate(model, test.images, torch.device("cpu"))
    recipe = checkpoint["recipe"]
    train, val = train_val_split(load_faces(data, "train"), recipe["val_fraction"], recipe["seed"])  # train_vae's split
    return {"train": len(train), "val": len(val), "test": len(test.images), "epochs": recipe["epochs"],
            "kept_step": checkpoint["best_step"], "val_mse": checkpoint["best_metric"], "test_mse": scores["mse"],
            "test_kl": scores["kl"], "cpu_minutes": checkpoint["cpu_seconds"] / 60}


def report(row: dict, command: str) -> str:
    table = markdown_table(
        ["train / val / test faces", "epochs", "kept at update", "val MSE", "test MSE", "test KL", "CPU min"],
        [[f"{row['train']} / {row['val']} / {row['test']}", row["epochs"], row["kept_step"], f"{row['val_mse']:.4f}",
          f"{row['test_mse']:.4f}", f"{row['test_kl']:.1f}", f"{row['cpu_minutes']:.1f}"]])
    return (f"Problem 1's VAE, `{command}`.\n\nMSE: pixel mean over the faces, each decoded from its posterior "
            f"mean; the model is the run's kept one (lowest validation MSE).\n\n{table}\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="a tree in the assignment's layout (face/...)")
    parser.add_argument("--out", type=Path, default=Path("runs/faces"), help="the VAE's run folder goes here")
    parser.add_argument("--train-args", default="", help="extra train_vae.py flags, quoted")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "faces.md")
    args = parser.parse_args(argv)
    run = args.out / checkpoints.VAE
    run_jobs({"train VAE": [["train_vae.py", "--data", str(args.data), "--out-dir", str(run), "--quiet",
                             *shlex.split(args.train_args)]]}, 1)
    command = command_line("benchmarks/faces.py", argv)
    text = report(measure(args.data, run), command)
    write_text(args.report, text)
    print(text)
    return 0


if __name__ == "__main__":
    cli(main)
