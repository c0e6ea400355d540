"""Reading a run's results back for the report: the VAE's numbers, the UDA accuracy table and metrics,
every generator's FID/KID, and a checkpoint's training details as the rows of its model card."""

from __future__ import annotations

import json
from typing import Iterable

import pandas as pd

from hw3 import artifacts
from hw3.domains import SCENARIOS
from hw3.plan import Plan
from hw3.report_content import DigitResults, VaeResults


def vae_results(plan: Plan) -> VaeResults:
    """The numbers the report quotes for Problem 1: the best validation epoch and ``table1_3.csv``."""
    log = pd.read_csv(plan.vae_dir / artifacts.LOG)
    best = log.loc[log["val_mse"].idxmin()]
    return VaeResults(float(best["val_mse"]), int(best["epoch"]), pd.read_csv(plan.out / artifacts.VAE_TABLE_CSV))


def uda_table(plan: Plan) -> pd.DataFrame:
    """Problems 3-4's accuracy table as ``plots.py uda`` wrote it (%, a row per method, a column per scenario)."""
    return pd.read_csv(plan.out / artifacts.UDA_FOLDER / artifacts.UDA_TABLE, dtype=str).fillna("")


def uda_metrics(plan: Plan, methods: Iterable[str]) -> dict[tuple[str, str], dict]:
    """Each UDA run's ``metrics.json`` by (method, "source->target"), for ``methods`` (the registry's names)."""
    return {(method, f"{source}->{target}"): json.loads((plan.uda_run(method, source, target) / artifacts.METRICS)
                                                        .read_text())
            for method in methods for source, target in SCENARIOS}


def collect_fidelity(plan: Plan, digits: DigitResults) -> dict[str, dict]:
    """FID/KID (and IS) of every generator by title, from the faces' JSON files and the digits' scores."""
    keys = ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "n_generated", "n_real", "network")
    found = {title: json.loads((plan.out / artifacts.fidelity_scores(title.lower())).read_text())
             for title in ("VAE", "GAN")}
    found |= {name.upper(): {k: v for k, v in scores.items() if k in keys} for name, scores in digits.scores.items()
              if "fid" in scores}
    return found


def _value(value) -> str:
    """A setting as a card shows it: a float to 4 significant digits, a list or tuple space-separated."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_value(v) for v in value)
    return str(value)


def settings_rows(checkpoint: dict) -> list[list[str]]:
    """A checkpoint's training details as (setting, value) rows: its recipe (the flags), model config, optimizers,
    how far it trained and how long it took. Nothing is restated by hand."""
    rows = [[f"--{name.replace('_', '-')}", _value(value)] for name, value in checkpoint.get("recipe", {}).items()]
    rows += [[f"model {name}", _value(value)] for name, value in checkpoint["config"].items()]
    for name, settings in checkpoint.get("optimizer_settings", {}).items():
        rows.append([f"optimizer ({name})", settings["class"] + ", " + ", ".join(
            f"{key} {_value(value)}" for key, value in settings.items() if key != "class")])
    rows.append(["weights kept", f"after update {checkpoint['step']} (epoch {checkpoint['epoch']})"])
    if "wall_seconds" in checkpoint:
        rows.append(["training time", f"{checkpoint['wall_seconds']:.0f} s wall-clock, "
                                      f"{checkpoint['cpu_seconds']:.0f} s CPU (up to the kept weights)"])
    return rows
