"""Run the whole homework end to end and write ``report/``: what ``make demo`` and ``make report`` do.

Eight stages, each printed as it starts and timed (:func:`main`), then the report:

1. data: the given ``hw3_data`` folder, or the built-in demo data (``demo_data.py``);
2. decode every face and digit folder once, into the cache the training jobs read;
3. the Inception features of the real test faces and digits, once, into the cache;
4. train the VAE and the GAN (each then scored by FID/KID, ``fidelity.py``, no download),
   source-only / DANN / SWD+ / ADDA / target-only for the three scenarios, and the ACGAN and
   the DDPM on mnistm digits (Problem 5). The training runs are independent processes of one
   CPU thread each, ``--jobs`` at a time (one per core by default);
5. generate each digit generator's 1000 images and score them by the target-only mnistm
   classifier trained here and by FID/KID;
6. publish the model files into a model folder with its manifest (``fetch.py``); the
   digit generator with the higher classifier accuracy becomes ``digits.pt``;
7. run ``hw3_p1.sh`` ... ``hw3_p5.sh`` exactly as the grader does (they find the
   published files with the right hashes and download nothing) and score the
   CSVs against the test labels;
8. draw every figure and table (``plots.py``);

then write ``report/README.md`` and ``report/report.pdf`` (``hw3/report_content.py``,
``hw3/report.py``): every item the assignment asks for, with each model's ``print(model)`` and
training details read from its checkpoint, and the discussion questions as prompts beside the
facts this run measured.

``--profile demo`` uses short settings that finish in minutes on a 2-core CPU;
``--profile full`` uses each training script's own defaults (hours on a GPU).
Each profile trains into its own ``runs/<profile>`` (``--runs``). The demo publishes into
``runs/demo/models`` so the committed ``checkpoints/manifest.json``
is left alone; ``full`` publishes into ``checkpoints/`` (then upload the files and
commit the manifest).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import dann  # noqa: F401  (registers its method)
import swd  # noqa: F401  (registers its method)
from datasets import DIGITS_DOMAIN, DOMAINS, SCENARIOS
from hw3 import artifacts, checkpoints, uda
from hw3.checkpoints import DIGIT_GENERATORS as DIGIT_MODELS, load_model
from hw3.common import UserError, cli, cores
from hw3.jobs import REPO, Stages, run_jobs, run_script, script_env
from hw3.report_content import DigitResults, ModelCard, Results, VaeResults, discussion_facts, write_report


# Short settings for the built-in data: every stage is a few seconds to a minute on 2 CPU cores.
DEMO_ARGS = {
    "vae": ["--epochs", "30", "--batch-size", "32"],
    # DCGAN's own recipe (Adam 2e-4, beta1 0.5) at a quarter of the width: face-like blobs by 750 steps,
    # the demo's longest job (117 s with its FID/KID at 800 steps, against 167-177 s at 1000).
    "gan": ["--steps", "800", "--batch-size", "32", "--channels", "16", "--arch", "dcgan", "--loss", "bce",
            "--lr-g", "2e-4", "--lr-d", "2e-4", "--betas-g", "0.5", "0.999", "--betas-d", "0.5", "0.999",
            "--ema-decay", "0.99", "--sample-every", "200"],
    # train_uda.py's recipe in a seventh of the updates.
    "uda": ["--epochs", "3", "--steps-per-epoch", "50"],
    "tsne": ["--per-domain", "200"],
    # Problem 5 with short runs averaged over ~10 steps, about 90 s of one core each. The ACGAN at half the width and 5x the learning rate: 73 %
    # classifier accuracy after 600 steps, against 20 % after 500 at 2e-4.
    "acgan": ["--steps", "900", "--channels", "16", "--lr-g", "1e-3", "--lr-d", "1e-3", "--ema-decay", "0.9",
              "--sample-every", "300"],
    # The DDPM at half the width and twice the learning rate, in half the updates: digit shapes after
    # 1000 updates (49 % by the demo's classifier), most classes legible after 1500.
    "ddpm": ["--steps", "1500", "--channels", "16", "--lr", "4e-3", "--ema-decay", "0.95", "--sample-every", "750"],
}
FULL_ARGS = {"vae": [], "gan": [], "tsne": [], "acgan": [], "ddpm": [],
             # train_uda.py's own budget: 10 passes over the larger train set, one evaluation a pass.
             "uda": []}
# Images FID/KID score: generated faces per model, and digits per folder (None: all). Inception costs
# about 0.2 s an image on one CPU core, so the demo scores fewer and says how many (the report does too).
FID_IMAGES = {"demo": (50, 60), "full": (1000, None), "quick": (12, 12)}


@dataclass
class Plan:
    """The run's inputs, resolved from the flags: what every stage reads, and where it writes."""

    data: Path  # the hw3_data tree (given, or the demo data just built)
    runs: Path
    out: Path  # the report folder
    model_dir: Path  # where the models are published
    profile: str
    settings: dict[str, list[str]]  # DEMO_ARGS or FULL_ARGS
    train_args: list[str]  # what every training run gets: --device, --quiet, --dry-run, --restart
    jobs: int
    device: str
    attribute: str  # the face attribute of the VAE t-SNE
    inception_weights: Path | None
    fid_images: tuple[int, int | None] = FID_IMAGES["demo"]  # generated faces per model; digits per folder

    @property
    def vae_dir(self) -> Path:
        return self.runs / "vae"

    @property
    def gan_dir(self) -> Path:
        return self.runs / "gan"

    @property
    def uda_root(self) -> Path:
        return self.runs / artifacts.UDA_RUNS

    def uda_run(self, method: str, source: str, target: str) -> Path:
        return self.uda_root / uda.run_name(method, source, target)

    def digit_dir(self, name: str) -> Path:
        """The run folder of a Problem 5 model (``acgan`` or ``ddpm``)."""
        return self.runs / name

    @property
    def digit_classifier(self) -> Path:
        """The target-only classifier of the digits' domain, which scores the generated digits."""
        source = next(s for s, t in SCENARIOS if t == DIGITS_DOMAIN)
        return self.uda_run(uda.UPPER_BOUND, source, DIGITS_DOMAIN) / artifacts.MODEL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="the hw3_data folder (default: build the demo data)")
    parser.add_argument("--profile", choices=["demo", "full"], default="demo", help="short or full training")
    parser.add_argument("--runs", type=Path, default=None,
                        help="training runs, resumed when present (default: runs/<profile>, so the demo's runs never "
                             "meet the real data's)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="the report folder")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="where models are published (default: runs/demo/models for demo, checkpoints/ for full)")
    parser.add_argument("--base-url", default=None,
                        help="where the published model files will be served from (written to the manifest)")
    parser.add_argument("--attribute", default=None, help="face attribute of the VAE t-SNE (default: Is_Face for demo data, else Male)")
    parser.add_argument("--inception-weights", type=Path, default=None, help="torch-fidelity's Inception weights, a local file: adds IS (FID and KID need none)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="dry-run every training (checks the wiring in seconds)")
    parser.add_argument("--rehearse", action="store_true",
                        help="dry-run every training (2 updates) but run every other stage at the profile's sizes: "
                             "times the data, scoring, grader and report stages (benchmarks/rehearsal.py)")
    parser.add_argument("--jobs", type=int, default=cores(),
                        help="training runs at a time, one CPU thread each (default: one per core)")
    parser.add_argument("--restart", action="store_true",
                        help="train every model afresh instead of resuming the runs in --runs (after a recipe change)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise UserError("--jobs must be 1 or more")
    stage = Stages()
    with stage("data"):
        plan = prepare_data(args)
    with stage("decode every image into the cache"):
        decode_all(plan.data)
    with stage("Inception features of the real test faces and digits, into the cache"):
        cache_real_features(plan)
    with stage(f"train VAE and GAN (and their FID/KID), {len(SCENARIOS) * len(uda.METHODS)} digit classifiers, "
               "ACGAN and DDPM"):
        job_seconds = train_models(plan)
    with stage("generate and score the ACGAN's and DDPM's digits (classifier, FID/KID)"):
        digits = score_digit_models(plan)
    with stage("publish models"):
        publish_models(plan, digits.best, args.base_url)
    with stage("grader scripts"):
        grader = run_grader_scripts(plan)
    with stage("figures"):
        draw_figures(plan)
    results = Results(plan=plan, vae=vae_results(plan), uda_accuracy=uda_table(plan), grader=grader, digits=digits,
                      grader_matches=grader_matches(plan, digits.best), stage_seconds=stage.seconds,
                      job_seconds=job_seconds | digits.job_seconds, fidelity=collect_fidelity(plan, digits),
                      cards=model_cards(plan), uda_metrics=uda_metrics(plan))
    results.facts = discussion_facts(results)
    print(f"report: {write_report(results)}")
    return 0


def decode_all(data: Path) -> None:
    """Decode every face and digit folder once, on every core, so the training jobs read the cache."""
    from datasets import load_digits, load_faces

    for split in ("train", "test"):
        load_faces(data, split)
        for domain in DOMAINS:
            if (data / "digits" / domain / split).is_dir():
                load_digits(data, domain, split)


def cache_real_features(plan: Plan) -> None:
    """The real side of every FID/KID, once, on every core: the scorers that then run side by side (VAE
    beside GAN, ACGAN beside DDPM) read it from the cache instead of each computing it."""
    import fidelity
    from datasets import DIGIT_SIZE, FACE_SIZE

    fidelity.cache_real_features(plan.data / "face" / "test", FACE_SIZE, plan.inception_weights, plan.device)
    fidelity.cache_real_features(plan.data / "digits" / DIGITS_DOMAIN / "test", DIGIT_SIZE, None, plan.device,
                                 max_images=plan.fid_images[1])


def missing_parts(data: Path) -> list[str]:
    """The folders and CSVs of the assignment's layout that ``data`` lacks (``face/test``, ``digits/svhn/train.csv``...)."""
    parts = [f"{folder}/{split}{suffix}" for folder in ("face", *(f"digits/{d}" for d in ("usps", "mnistm", "svhn")))
             for split in ("train", "test") for suffix in ("", ".csv")]
    return [part for part in parts if not ((data / part).is_file() if part.endswith(".csv") else (data / part).is_dir())]


def prepare_data(args: argparse.Namespace) -> Plan:
    """The data tree (the demo data is built afresh when none is given), the model folder, and the plan."""
    import demo_data

    if args.runs is None:
        args.runs = Path("runs") / args.profile
    data = args.data
    if data is None:
        data = demo_data.build(args.runs / "demo_data", force=True)
    elif not data.is_dir():
        raise UserError(f"data folder not found: {data}")
    else:
        missing = missing_parts(data)
        if missing:
            raise UserError(f"{data} is not a complete hw3_data tree: {', '.join(missing)} missing "
                            "(make data builds one)")
    model_dir = args.model_dir or (args.runs / "models" if args.profile == "demo" else REPO / "checkpoints")
    model_dir.mkdir(parents=True, exist_ok=True)
    train_args = ["--device", args.device, "--quiet", *(["--dry-run"] if args.quick or args.rehearse else []),
                  *(["--restart"] if args.restart else [])]
    return Plan(data=data, runs=args.runs, out=args.out, model_dir=model_dir, profile=args.profile,
                settings=DEMO_ARGS if args.profile == "demo" else FULL_ARGS, train_args=train_args, jobs=args.jobs,
                device=args.device, attribute=args.attribute or ("Is_Face" if args.data is None else "Male"),
                inception_weights=args.inception_weights,
                fid_images=FID_IMAGES["quick" if args.quick else args.profile])


def train_models(plan: Plan) -> dict[str, float]:
    """Every training run, ``plan.jobs`` at a time (longest first); each job's wall seconds.

    Problems 1-2: the VAE and the GAN, each then scored by FID/KID; Problems 3-4: every method on
    every scenario; Problem 5: the ACGAN and the DDPM (scored in the next stage, which needs the
    target-only classifier trained here).
    """
    data, settings = str(plan.data), plan.settings
    trainers = {"acgan": ["train_gan.py", "--task", "digits"], "ddpm": ["train_ddpm.py"]}
    jobs = {"train GAN": [["train_gan.py", "--data", data, "--out-dir", str(plan.gan_dir), *settings["gan"],
                           *plan.train_args], *_face_fidelity(plan, "GAN", plan.gan_dir)]}
    for name in ("ddpm", "acgan"):
        jobs[f"train {name.upper()}"] = [[*trainers[name], "--data", data, "--domain", DIGITS_DOMAIN,
                                          "--out-dir", str(plan.digit_dir(name)), *settings[name], *plan.train_args]]
    jobs["train VAE"] = [["train_vae.py", "--data", data, "--out-dir", str(plan.vae_dir), *settings["vae"],
                          *plan.train_args], *_face_fidelity(plan, "VAE", plan.vae_dir)]
    for source, target in SCENARIOS:
        for method in uda.METHODS:
            jobs[f"train {method} {source}->{target}"] = [[
                "train_uda.py", "--data", data, "--source", source, "--target", target, "--method", method,
                "--out-dir", str(plan.uda_run(method, source, target)), *settings["uda"], *plan.train_args]]
    plan.out.mkdir(parents=True, exist_ok=True)
    return run_jobs(jobs, plan.jobs)


def _face_fidelity(plan: Plan, title: str, run_dir: Path) -> list[list[str]]:
    """The commands that score a face model: ``plan.fid_images[0]`` samples (seed 0) against the test faces.

    They run in the model's training job, so the scoring fills the workers' idle time. No
    weights file is needed (the TorchScript TF Inception); ``--inception-weights`` adds IS.
    """
    fake = run_dir / "fake"
    shutil.rmtree(fake, ignore_errors=True)
    weights = ["--inception-weights", str(plan.inception_weights)] if plan.inception_weights else []
    return [["fidelity.py", "generate", "--checkpoint", str(run_dir / artifacts.MODEL), "--out-dir", str(fake), "--n",
             str(plan.fid_images[0]), "--device", plan.device],
            ["fidelity.py", "score", "--generated", str(fake), "--real", str(plan.data / "face" / "test"), "--json",
             str(plan.out / artifacts.fidelity_scores(title.lower())), "--device", plan.device, *weights]]


def collect_fidelity(plan: Plan, digits: DigitResults) -> dict[str, dict]:
    """FID/KID (and IS) of every generator by title, from the faces' JSON files and the digits' scores."""
    keys = ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "n_generated", "n_real", "network")
    found = {title: json.loads((plan.out / artifacts.fidelity_scores(title.lower())).read_text())
             for title in ("VAE", "GAN")}
    found |= {name.upper(): {k: v for k, v in scores.items() if k in keys} for name, scores in digits.scores.items()
              if "fid" in scores}
    return found


def score_digit_models(plan: Plan) -> DigitResults:
    """Problem 5: each model's 1000 digits, generated and scored by the classifier and FID/KID, beside the other."""
    jobs = {}
    for name in DIGIT_MODELS:
        run_dir = plan.digit_dir(name)
        shutil.rmtree(run_dir / artifacts.GENERATED, ignore_errors=True)
        jobs[f"score {name.upper()}"] = [[
            "generate_digits.py", "--checkpoint", str(run_dir / artifacts.MODEL), "--out-dir", str(run_dir / artifacts.GENERATED),
            "--classifier", str(plan.digit_classifier), "--json", str(plan.out / artifacts.digit_scores(name)),
            "--device", plan.device, "--real", str(plan.data / "digits" / DIGITS_DOMAIN / "test"),
            *(["--max-images", str(plan.fid_images[1])] if plan.fid_images[1] else [])]]
    job_seconds = run_jobs(jobs, plan.jobs)
    scores = {name: json.loads((plan.out / artifacts.digit_scores(name)).read_text()) for name in DIGIT_MODELS}
    return DigitResults(scores, max(DIGIT_MODELS, key=lambda name: scores[name]["accuracy"]), job_seconds)


def published_files(plan: Plan, best_digits: str) -> dict[str, Path]:
    """The graded model files by published name: ``vae.pt``, ``gan.pt``, ``dann_usps-mnistm.pt`` ..., ``digits.pt``."""
    files = {artifacts.PUBLISHED_VAE: plan.vae_dir / artifacts.MODEL, artifacts.PUBLISHED_GAN: plan.gan_dir / artifacts.MODEL}
    for source, target in SCENARIOS:
        for method in uda.GRADED_METHODS:
            files[uda.published_model(method, target)] = plan.uda_run(method, source, target) / artifacts.MODEL
    files[artifacts.PUBLISHED_DIGITS] = plan.digit_dir(best_digits) / artifacts.MODEL
    return files


def publish_models(plan: Plan, best_digits: str, base_url: str | None = None) -> dict[str, Path]:
    """Copy the graded models into the model folder and write its manifest (``fetch.py``); the copies by name.

    The full profile publishes for the grader: without ``base_url`` (and no per-file ``url``
    kept in the manifest) a fresh clone could not download the files, which is said here.
    """
    import fetch

    files = published_files(plan, best_digits)
    for name, path in files.items():
        shutil.copyfile(path, plan.model_dir / name)
    manifest = fetch.publish(plan.model_dir, sorted(files), base_url=base_url)
    unreachable = fetch.missing_urls(manifest)
    if plan.profile == "full" and unreachable:
        print(f"    warning: no --base-url (make report BASE_URL=...) and no per-file url for "
              f"{len(unreachable)} file(s): upload them, then run fetch.py --publish --base-url URL", flush=True)
    return {name: plan.model_dir / name for name in files}


def run_grader_scripts(plan: Plan) -> pd.DataFrame:
    """``hw3_p1.sh`` ... ``hw3_p5.sh`` as the grader runs them, ``plan.jobs`` at a time; each UDA script's accuracy.

    Each script is a process of its own, as on the grader's machine; the seconds of each
    prediction run are its own wall time, with another script beside it.
    """
    from concurrent.futures import ThreadPoolExecutor

    import score

    env, out, data = script_env(plan.model_dir), plan.out, plan.data
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / artifacts.GRADER_DIGITS, ignore_errors=True)
    runs = {"p1": ["hw3_p1.sh", str(out / artifacts.grader_copy(artifacts.VAE_SAMPLES))],
            "p2": ["hw3_p2.sh", str(out / artifacts.grader_copy(artifacts.GAN_SAMPLES))],
            "p5": ["hw3_p5.sh", str(out / artifacts.GRADER_DIGITS)]}
    for method, script in uda.GRADED_METHODS.items():
        for source, target in SCENARIOS:
            runs[(method, source, target)] = [script, str(data / "digits" / target / "test"), target,
                                              str(out / artifacts.PREDICTIONS / artifacts.prediction_csv(method, target))]

    def timed(args: list[str]) -> float:
        started = time.perf_counter()
        run_script(args, env)
        return time.perf_counter() - started

    order = sorted(runs, key=lambda key: runs[key][0] != "hw3_p5.sh")  # the slow hw3_p5.sh starts first
    with ThreadPoolExecutor(max_workers=plan.jobs) as pool:
        seconds = dict(zip(order, pool.map(lambda key: timed(runs[key]), order)))
    rows = []
    for key, args in runs.items():
        if isinstance(key, tuple):
            method, source, target = key
            csv = Path(args[-1])
            accuracy = score.accuracy(score.read_labels(csv), score.read_labels(data / "digits" / target / "test.csv"))
            rows.append({"script": args[0], "scenario": f"{source}->{target}", "accuracy": accuracy,
                         "images": len(pd.read_csv(csv)), "seconds": f"{seconds[key]:.1f}"})
    return pd.DataFrame(rows)


def draw_figures(plan: Plan) -> None:
    """Every figure and table of ``plots.py``, one job per problem, ``plan.jobs`` at a time.

    Problem 1: fig1_2, table1_3, fig1_4, fig1_5; Problem 2: fig2_2, the loss curves and the
    VAE-vs-GAN figure; Problems 3-4: the accuracy table and every run's t-SNE figures;
    Problem 5: the grids, the DDPM's reverse process and the training curves.
    """
    digit_runs = [f for name in DIGIT_MODELS for f in (f"--{name}", str(plan.digit_dir(name) / artifacts.MODEL),
                                                       f"--{name}-log", str(plan.digit_dir(name) / artifacts.LOG))]
    run_jobs({
        "t-SNE and accuracy table": [["plots.py", "uda", "--runs", str(plan.uda_root), "--data", str(plan.data),
                                      "--out-dir", str(plan.out / artifacts.UDA_FOLDER), *plan.settings["tsne"], "--quiet"]],
        "VAE figures": [["plots.py", "vae", "--checkpoint", str(plan.vae_dir / artifacts.MODEL), "--data",
                         str(plan.data), "--out-dir", str(plan.out), "--attribute", plan.attribute, "--quiet"]],
        "GAN figures": [["plots.py", "gan", "--checkpoint", str(plan.gan_dir / artifacts.MODEL), "--log",
                         str(plan.gan_dir / artifacts.LOG), "--vae-checkpoint", str(plan.vae_dir / artifacts.MODEL),
                         "--out-dir", str(plan.out)]],
        "digit figures": [["plots.py", "digits", *digit_runs, "--out-dir", str(plan.out)]],
    }, plan.jobs)


def vae_results(plan: Plan) -> VaeResults:
    """The numbers the report quotes for Problem 1: the best validation epoch and ``table1_3.csv``."""
    log = pd.read_csv(plan.vae_dir / artifacts.LOG)
    best = log.loc[log["val_mse"].idxmin()]
    return VaeResults(float(best["val_mse"]), int(best["epoch"]), pd.read_csv(plan.out / artifacts.VAE_TABLE_CSV))


def uda_table(plan: Plan) -> pd.DataFrame:
    """Problems 3-4's accuracy table as ``plots.py uda`` wrote it (%, a row per method, a column per scenario)."""
    return pd.read_csv(plan.out / artifacts.UDA_FOLDER / artifacts.UDA_TABLE, dtype=str).fillna("")


def grader_matches(plan: Plan, best_digits: str) -> dict[str, bool]:
    """Whether ``hw3_p1.sh``, ``hw3_p2.sh`` and ``hw3_p5.sh`` wrote the very files of the report, byte for byte."""
    out = plan.out
    same = {kind: (out / artifacts.grader_copy(fig)).read_bytes() == (out / fig).read_bytes()
            for kind, fig in (("vae", artifacts.VAE_SAMPLES), ("gan", artifacts.GAN_SAMPLES))}
    same["digits"] = _same_files(plan.digit_dir(best_digits) / artifacts.GENERATED, out / artifacts.GRADER_DIGITS)
    return same


def _same_files(a: Path, b: Path) -> bool:
    """Whether folders ``a`` and ``b`` hold the same file names with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes()
                                                                for n in names)


def _value(value) -> str:
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


def model_cards(plan: Plan) -> dict[str, ModelCard]:
    """Every trained model's ``print(model)`` and training details, read from its published checkpoint."""
    import gan  # also registers its checkpoint kinds
    import vae  # noqa: F401  (registers its checkpoint kind)
    from hw3.training import load_checkpoint

    cards = {}
    model, checkpoint = load_model(plan.vae_dir / artifacts.MODEL, (checkpoints.VAE,))
    cards["vae"] = ModelCard("VAE", {"VAE": str(model)}, settings_rows(checkpoint), checkpoint["recipe"])
    model, checkpoint = load_model(plan.gan_dir / artifacts.MODEL, (checkpoints.GAN,))
    cards["gan"] = ModelCard("GAN", {"generator": str(model),
                                     "discriminator": str(gan.GANConfig(**checkpoint["config"]).discriminator())},
                             settings_rows(checkpoint))
    source, target = SCENARIOS[0]
    for method in uda.METHODS.values():
        model, checkpoint = load_model(plan.uda_run(method.name, source, target) / artifacts.MODEL, checkpoints.CLASSIFIERS)
        printed = {method.title: str(model)} if method.graded else {}
        cards[method.name] = ModelCard(f"{method.title}, {source}->{target}", printed, settings_rows(checkpoint))
    for name in DIGIT_MODELS:
        checkpoint = load_checkpoint(plan.digit_dir(name) / artifacts.MODEL)
        cards[name] = ModelCard(name.upper(), {}, settings_rows(checkpoint))
    return cards


def uda_metrics(plan: Plan) -> dict[tuple[str, str], dict]:
    """Each UDA run's ``metrics.json`` by (method, "source->target")."""
    return {(method, f"{source}->{target}"): json.loads((plan.uda_run(method, source, target) / artifacts.METRICS)
                                                        .read_text())
            for method in uda.METHODS for source, target in SCENARIOS}


if __name__ == "__main__":
    cli(main)
