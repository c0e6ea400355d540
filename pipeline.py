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

This script holds the flags, the two profiles' training settings, the order of the stages and the
steps that import other top-level files (stages 1-3, the manifest, scoring the grader's CSVs, the
model cards). The rest lives in the package, which imports nothing above it: the folders of a run
(``hw3/plan.py``), the job commands of stages 4, 5 and 8 (``hw3/commands.py``), the published files
and the grader's script runs (``hw3/publishing.py``), the results read back (``hw3/results.py``).

``--profile demo`` uses short settings that finish in minutes on a 2-core CPU;
``--profile full`` uses each training script's own defaults (hours on a GPU).
Each profile trains into its own ``runs/<profile>`` (``--runs``). The demo publishes into
``runs/demo/models`` so the committed ``checkpoints/manifest.json``
is left alone; ``full`` publishes into ``checkpoints/`` (then upload the files and
commit the manifest).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

import dann  # noqa: F401  (registers its method)
import swd  # noqa: F401  (registers its method)
from datasets import DIGITS_DOMAIN, DOMAINS, SCENARIOS
from hw3 import artifacts, checkpoints, uda
from hw3.domains import FACES, SPLITS, split_folder, split_table
from hw3.checkpoints import DIGIT_GENERATORS as DIGIT_MODELS, load_model
from hw3.commands import draw_figures, score_digit_models, train_models
from hw3.common import UserError, cli, cores
from hw3.jobs import REPO, Stages
from hw3.plan import FID_IMAGES, Plan
from hw3.publishing import grader_matches, grader_runs, published_files, run_scripts
from hw3.report_content import ModelCard, Results, discussion_facts, write_report
from hw3.results import collect_fidelity, settings_rows, uda_metrics, uda_table, vae_results


# Short settings for the built-in data: every stage is a few seconds to a minute on 2 CPU cores.
VAE, GAN, UDA, ACGAN, DDPM = checkpoints.VAE, checkpoints.GAN, checkpoints.UDA, checkpoints.ACGAN, checkpoints.DDPM
DEMO_ARGS = {
    VAE: ["--epochs", "30", "--batch-size", "32"],
    # DCGAN's own recipe (Adam 2e-4, beta1 0.5) at a quarter of the width: face-like blobs by 750 steps,
    # the demo's longest job (117 s with its FID/KID at 800 steps, against 167-177 s at 1000).
    GAN: ["--steps", "800", "--batch-size", "32", "--channels", "16", "--arch", "dcgan", "--loss", "bce",
          "--lr-g", "2e-4", "--lr-d", "2e-4", "--betas-g", "0.5", "0.999", "--betas-d", "0.5", "0.999",
          "--ema-decay", "0.99", "--sample-every", "200"],
    # train_uda.py's recipe in a seventh of the updates.
    UDA: ["--epochs", "3", "--steps-per-epoch", "50"],
    "tsne": ["--per-domain", "200"],
    # Problem 5 with short runs averaged over ~10 steps, about 90 s of one core each. The ACGAN at half
    # the width and 5x the learning rate: 73 % classifier accuracy after 600 steps, against 20 % after 500 at 2e-4.
    ACGAN: ["--steps", "900", "--channels", "16", "--lr-g", "1e-3", "--lr-d", "1e-3", "--ema-decay", "0.9",
            "--sample-every", "300"],
    # The DDPM at half the width and twice the learning rate, in half the updates: digit shapes after
    # 1000 updates (49 % by the demo's classifier), most classes legible after 1500.
    DDPM: ["--steps", "1500", "--channels", "16", "--lr", "4e-3", "--ema-decay", "0.95", "--sample-every", "750"],
}
# Every script's own budget (train_uda.py's: 10 passes over the larger train set, one evaluation a pass).
FULL_ARGS = {name: [] for name in DEMO_ARGS}


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
        job_seconds = train_models(plan, uda.METHODS)
    with stage("generate and score the ACGAN's and DDPM's digits (classifier, FID/KID)"):
        digits = score_digit_models(plan)
    with stage("publish models"):
        publish_models(plan, digits.best, args.base_url)
    with stage("grader scripts"):
        grader = run_grader_scripts(plan)
    with stage("figures"):
        draw_figures(plan, uda.GRADED_METHODS)
    results = Results(plan=plan, vae=vae_results(plan), uda_accuracy=uda_table(plan), grader=grader, digits=digits,
                      grader_matches=grader_matches(plan, digits.best), stage_seconds=stage.seconds,
                      job_seconds=job_seconds | digits.job_seconds, fidelity=collect_fidelity(plan, digits),
                      cards=model_cards(plan), uda_metrics=uda_metrics(plan, uda.METHODS))
    results.facts = discussion_facts(results)
    print(f"report: {write_report(results)}")
    return 0


def decode_all(data: Path) -> None:
    """Decode every face and digit folder once, on every core, so the training jobs read the cache."""
    from datasets import load_digits, load_faces

    for split in ("train", "test"):
        load_faces(data, split)
        for domain in DOMAINS:
            if split_folder(data, domain, split).is_dir():
                load_digits(data, domain, split)


def cache_real_features(plan: Plan) -> None:
    """The real side of every FID/KID, once, on every core: the scorers that then run side by side (VAE
    beside GAN, ACGAN beside DDPM) read it from the cache instead of each computing it."""
    import fidelity
    from datasets import DIGIT_SIZE, FACE_SIZE

    fidelity.cache_real_features(split_folder(plan.data, FACES, "test"), FACE_SIZE, plan.inception_weights, plan.device)
    fidelity.cache_real_features(split_folder(plan.data, DIGITS_DOMAIN, "test"), DIGIT_SIZE, None, plan.device,
                                 max_images=plan.fid_images[1])


def missing_parts(data: Path) -> list[str]:
    """The folders and CSVs of the assignment's layout that ``data`` lacks (``face/test``, ``digits/svhn/train.csv``...)."""
    missing = []
    for part in [FACES, *dict.fromkeys(domain for pair in SCENARIOS for domain in pair)]:  # usps, mnistm, svhn
        for split in SPLITS:
            folder, table = split_folder(data, part, split), split_table(data, part, split)
            missing += [str(path.relative_to(data)) for path, there in ((folder, folder.is_dir()), (table, table.is_file()))
                        if not there]
    return missing


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


def publish_models(plan: Plan, best_digits: str, base_url: str | None = None) -> dict[str, Path]:
    """Copy the graded models into the model folder and write its manifest (``fetch.py``); the copies by name.

    The full profile publishes for the grader: without ``base_url`` (and no per-file ``url``
    kept in the manifest) a fresh clone could not download the files, which is said here.
    """
    import fetch

    files = published_files(plan, best_digits, uda.GRADED_METHODS)
    for name, path in files.items():
        shutil.copyfile(path, plan.model_dir / name)
    manifest = fetch.publish(plan.model_dir, sorted(files), base_url=base_url)
    unreachable = fetch.missing_urls(manifest)
    if plan.profile == "full" and unreachable:
        print(f"    warning: no --base-url (make report BASE_URL=...) and no per-file url for "
              f"{len(unreachable)} file(s): upload them, then run fetch.py --publish --base-url URL", flush=True)
    return {name: plan.model_dir / name for name in files}


def run_grader_scripts(plan: Plan) -> pd.DataFrame:
    """``hw3_p1.sh`` ... ``hw3_p5.sh`` as the grader runs them, ``plan.jobs`` at a time; each UDA script's accuracy."""
    import score

    runs = grader_runs(plan, uda.GRADED_METHODS)
    seconds = run_scripts(runs, plan.model_dir, plan.jobs)
    rows = []
    for key, args in runs.items():
        if isinstance(key, tuple):
            method, source, target = key
            csv = Path(args[-1])
            truth = split_table(plan.data, target, "test")
            accuracy = score.accuracy(score.read_labels(csv), score.read_labels(truth))
            rows.append({"script": args[0], "scenario": f"{source}->{target}", "accuracy": accuracy,
                         "images": len(pd.read_csv(csv)), "seconds": f"{seconds[key]:.1f}"})
    return pd.DataFrame(rows)


def model_cards(plan: Plan) -> dict[str, ModelCard]:
    """Every trained model's ``print(model)`` and training details, read from its published checkpoint."""
    import gan  # also registers its checkpoint kinds
    import vae  # noqa: F401  (registers its checkpoint kind)
    from hw3.training import load_checkpoint

    cards = {}
    model, checkpoint = load_model(plan.vae_dir / artifacts.MODEL, (checkpoints.VAE,))
    cards[checkpoints.VAE] = ModelCard("VAE", {"VAE": str(model)}, settings_rows(checkpoint), checkpoint["recipe"])
    model, checkpoint = load_model(plan.gan_dir / artifacts.MODEL, (checkpoints.GAN,))
    cards[checkpoints.GAN] = ModelCard("GAN", {"generator": str(model),
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


if __name__ == "__main__":
    cli(main)
