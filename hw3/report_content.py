"""The report's content: what a run measured (:class:`Results`, filled by ``pipeline.py``'s stages),
the discussion facts and the report's blocks, item by item in the assignment's order (written by
``hw3/report.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from hw3 import artifacts, checkpoints, report, uda
from hw3.checkpoints import DIGIT_GENERATORS as DIGIT_MODELS
from hw3.common import write_text
from hw3.domains import DIGITS_DOMAIN, SCENARIOS
from hw3.plan import Plan


@dataclass
class VaeResults:
    """Problem 1's numbers: the best validation epoch and the reconstruction table (``table1_3.csv``)."""

    best_val_mse: float
    best_epoch: int
    reconstructions: pd.DataFrame


@dataclass
class DigitResults:
    """Problem 5: each model's classifier accuracy (``generate_digits.py``'s JSON), the better one, job times."""

    scores: dict[str, dict]
    best: str  # the model published as digits.pt
    job_seconds: dict[str, float]


@dataclass
class ModelCard:
    """One trained model as the report shows it, read from its checkpoint: ``print(model)`` and its settings."""

    title: str
    printed: dict[str, str]  # "print(model)" of each network, by name ("generator", ...); may be empty
    settings: list[list[str]]  # (setting, value) rows: recipe, model config, optimizers, length, time
    recipe: dict = field(default_factory=dict)  # the checkpoint's recipe, for the facts the report quotes


@dataclass
class Results:
    """Everything the report shows, as the stages returned it; :func:`write_report` only formats it.

    To add an item to the report: add a field here (with a default when a stage may not run),
    fill it in ``pipeline.main`` from the stage that measures it, and print it in its problem's part of
    :func:`report_blocks` (``_vae_blocks``, ``_gan_blocks``, ...).
    """

    plan: Plan
    vae: VaeResults
    uda_accuracy: pd.DataFrame  # plots.py's target test accuracy table (%): a row per method, a column per scenario
    grader: pd.DataFrame  # one row per graded script and scenario: accuracy, images, seconds
    digits: DigitResults
    grader_matches: dict[str, bool]  # by face kind, and "digits": the grader's scripts wrote the report's files
    stage_seconds: dict[str, float]
    job_seconds: dict[str, float]
    fidelity: dict[str, dict] = field(default_factory=dict)  # "VAE", "GAN", "ACGAN", "DDPM": fidelity.score's dict
    cards: dict[str, ModelCard] = field(default_factory=dict)  # by checkpoint kind (faces, digits) or UDA method
    uda_metrics: dict[tuple[str, str], dict] = field(default_factory=dict)  # (method, "usps->mnistm"): metrics.json
    facts: dict[str, list[str]] = field(default_factory=dict)  # "P1-6", ...: measured facts for each prompt


def _tail_mean(log: pd.DataFrame, column: str, share: float = 0.1) -> float:
    """The mean of ``column`` over the last ``share`` of a training log's rows."""
    values = log[column].dropna()
    return float(values.iloc[-max(1, int(len(values) * share)):].mean())


def discussion_facts(results: Results) -> dict[str, list[str]]:
    """For each discussion question, the numbers this run measured that an answer can draw on."""
    return {**_vae_facts(results), **_gan_facts(results), **_uda_facts(results)}


def _fidelity_line(fidelity: dict[str, dict], title: str) -> str:
    f = fidelity.get(title)
    if not f:
        return f"{title}: FID/KID not computed"
    isc = f", IS {f['is_mean']:.2f}" if "is_mean" in f else ""
    return (f"{title}: FID {f['fid']:.1f}, KID {f['kid_mean']:.4f} ± {f['kid_std']:.4f}{isc} "
            f"({f['n_generated']} generated vs {f['n_real']} real images)")


def _vae_facts(results: Results) -> dict[str, list[str]]:
    """Problem 1's discussion item (P1-6): the VAE's validation and test MSE, its KL term, its FID/KID."""
    vae, log = results.vae, pd.read_csv(results.plan.vae_dir / artifacts.LOG)
    kl_weight = results.cards[checkpoints.VAE].recipe.get("kl_weight", "?")
    return {"P1-6": [f"best validation MSE {vae.best_val_mse:.4f} at epoch {vae.best_epoch}; "
                     f"mean MSE of the 10 test reconstructions {vae.reconstructions.iloc[:, -1].mean():.4f}",
                     f"KL term at the end of training {_tail_mean(log, 'kl'):.1f} nats (weighted by "
                     f"λ_KL = {kl_weight}); reconstruction MSE of the training batches {_tail_mean(log, 'recon'):.4f}",
                     _fidelity_line(results.fidelity, "VAE")]}


def _gan_facts(results: Results) -> dict[str, list[str]]:
    """Problem 2's discussion items: the GAN's losses and discriminator accuracy (P2-3), VAE and GAN compared (P2-4)."""
    fid, log = results.fidelity, pd.read_csv(results.plan.gan_dir / artifacts.LOG)
    return {
        "P2-3": [f"{len(log)} generator updates; over the last 10 %: D loss {_tail_mean(log, 'loss_d'):.3f}, "
                 f"G loss {_tail_mean(log, 'loss_g'):.3f}, D accuracy on real "
                 f"{_tail_mean(log, 'd_real_acc'):.2f} and on generated {_tail_mean(log, 'd_fake_acc'):.2f}",
                 _fidelity_line(fid, "GAN")],
        "P2-4": [_fidelity_line(fid, "VAE"), _fidelity_line(fid, "GAN"),
                 f"{artifacts.VAE_VS_GAN} shows both models' 32 samples from the same noise seed"],
    }


def _uda_facts(results: Results) -> dict[str, list[str]]:
    """Problems 3 and 4's discussion items: per scenario, the compared methods' accuracy and the watched quantity."""
    metrics, facts = results.uda_metrics, {}

    def accuracy(method: str, scenario: str) -> str:
        m = metrics.get((method, scenario))
        return "–" if m is None else f"{100 * m['target_test_accuracy']:.1f} %"

    for method in uda.METHODS.values():
        said = method.discussion
        if said is None:
            continue
        facts[said.item] = [f"{s}->{t}: " + ", ".join(f"{uda.METHODS[other].label} {accuracy(other, f'{s}->{t}')}"
                                                        for other in uda.compared(method)) for s, t in SCENARIOS]
        for source, target in SCENARIOS:
            log = pd.read_csv(results.plan.uda_run(method.name, source, target) / artifacts.LOG)
            facts[said.item].append(f"{source}->{target}: {said.watch_label} over the last 10 % of updates "
                                    f"{_tail_mean(log, said.watch):.2f}")
    return facts


def _frame_rows(frame: pd.DataFrame) -> list[list[str]]:
    return [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]


def _yes(same: bool) -> str:
    return "yes" if same else "NO"


def _fidelity_rows(fidelity: dict[str, dict], titles: Sequence[str]) -> list[list[str]]:
    rows = []
    for title in titles:
        f = fidelity.get(title)
        if f:
            rows.append([title, f"{f['fid']:.2f}", f"{f['kid_mean']:.4f} ± {f['kid_std']:.4f}",
                         f"{f['is_mean']:.3f} ± {f['is_std']:.3f}" if "is_mean" in f else "–",
                         str(f["n_generated"]), str(f["n_real"])])
    return rows


FIDELITY_HEADER = ["model", "FID", "KID", "IS", "generated", "real"]
PROMPTS = {  # the assignment's discussion items, in its words
    "P1-6": "Discuss what you've observed and learned from implementing VAE.",
    "P2-3": "Discuss what you've observed and learned from implementing GAN.",
    "P2-4": "Compare the difference between image generated by VAE and GAN, discuss what you've observed.",
    "P3-6": "Discuss what you've observed and learned from implementing DANN.",
    "P4-4": "Discuss what you've observed and learned from implementing your improved UDA model.",
}


def _card_blocks(card: ModelCard) -> list[report.Block]:
    blocks = []
    for name, printed in card.printed.items():
        blocks += [report.Text(f"`print(model)` of the {name}:"), report.Code(printed)]
    return blocks + [report.Text(f"Implementation details of the {card.title}, read from its checkpoint:"),
                     report.Table(["setting", "value"], card.settings)]


def _prompt(results: Results, item: str) -> report.Prompt:
    return report.Prompt(item, PROMPTS[item], results.facts.get(item, []))


def report_blocks(results: Results) -> list[report.Block]:
    """The report, in the assignment's order, as :mod:`report` blocks: one function per problem."""
    return [*_title_blocks(results), *_vae_blocks(results), *_gan_blocks(results), *_uda_blocks(results),
            *_digit_blocks(results), *_time_blocks(results)]


def _image(results: Results, name: str, title: str) -> report.Image:
    """A figure of the report folder, by its file name."""
    return report.Image(results.plan.out / name, title)


def _title_blocks(results: Results) -> list[report.Block]:
    """The title and what the run read and how long it took."""
    plan = results.plan
    return [
        report.Heading("HW3 report (generated by `pipeline.py`)", 1),
        report.Text(f"Data: `{plan.data}`; profile: `{plan.profile}`. Every number below was measured in this run; "
                    f"the whole run took {sum(results.stage_seconds.values()):.0f} s. The items marked \"to answer\" "
                    "are for the student to write."),
    ]


def _vae_blocks(results: Results) -> list[report.Block]:
    """Problem 1: the VAE's card, curves, reconstructions, samples (and the grader's check), t-SNE, discussion."""
    vae = results.vae
    return [
        report.Heading("Problem 1: VAE"),
        report.Heading("1-1 Architecture and implementation details (fig1_1)", 3),
        *_card_blocks(results.cards[checkpoints.VAE]),
        report.Heading("1-2 Learning curves (fig1_2)", 3),
        _image(results, artifacts.VAE_CURVES, "fig1_2 learning curves"),
        report.Heading("1-3 Reconstructions (table1_3)", 3),
        report.Text(f"Best validation MSE {vae.best_val_mse:.4f} (epoch {vae.best_epoch}); "
                    f"mean MSE of the 10 images below {vae.reconstructions.iloc[:, -1].mean():.4f}."),
        _image(results, artifacts.VAE_TABLE, "table1_3 reconstructions"),
        report.Table(list(vae.reconstructions.columns), _frame_rows(vae.reconstructions)),
        report.Heading("1-4 Samples (fig1_4)", 3),
        _image(results, artifacts.VAE_SAMPLES, "fig1_4 samples"),
        report.Text(f"`bash hw3_p1.sh` wrote the same bytes as fig1_4.png: **{_yes(results.grader_matches[checkpoints.VAE])}**."),
        report.Heading("1-5 t-SNE of the latent means (fig1_5)", 3),
        _image(results, artifacts.VAE_TSNE, "fig1_5 t-SNE of latent means"),
        report.Heading("1-6 Discussion", 3),
        _prompt(results, "P1-6"),
    ]


def _gan_blocks(results: Results) -> list[report.Block]:
    """Problem 2: the GAN's card, samples (and the grader's check), losses, FID/KID, discussion, VAE vs GAN."""
    faces = results.plan.fid_images[0]
    fid_note = (f"FID and KID ({next(iter(results.fidelity.values()))['network'] if results.fidelity else '–'}) "
                f"of {faces} samples per model against the test faces. FID is biased upward at small sample "
                "sizes and KID is not; numbers from other sample sizes, image sizes or Inception ports are not "
                "comparable.")
    return [
        report.Heading("Problem 2: GAN"),
        report.Heading("2-1 Architecture and implementation details", 3),
        *_card_blocks(results.cards[checkpoints.GAN]),
        report.Heading("2-2 Samples (fig2_2)", 3),
        _image(results, artifacts.GAN_SAMPLES, "fig2_2 samples"),
        report.Text(f"`bash hw3_p2.sh` wrote the same bytes as fig2_2.png: **{_yes(results.grader_matches[checkpoints.GAN])}**."),
        _image(results, artifacts.GAN_LOSSES, "GAN losses and discriminator accuracy"),
        report.Text(fid_note),
        report.Table(FIDELITY_HEADER, _fidelity_rows(results.fidelity, ("VAE", "GAN"))),
        report.Heading("2-3 Discussion", 3),
        _prompt(results, "P2-3"),
        report.Heading("2-4 VAE and GAN compared", 3),
        _image(results, artifacts.VAE_VS_GAN, "VAE vs GAN"),
        _prompt(results, "P2-4"),
    ]


def _uda_blocks(results: Results) -> list[report.Block]:
    """Problems 3 and 4: accuracy of every run, the grader's scores, t-SNE figures, the cards and discussions."""
    blocks: list[report.Block] = [
        report.Heading("Problems 3 and 4: DANN and SWD+"),
        report.Text("Target test accuracy of each training run (the evaluation kept by train_uda.py's label-free "
                    "--select; the bounds keep their last evaluation, and source-only reads no target image):"),
        report.Table(["", *results.uda_accuracy.columns[1:]],
                     [[row[0], *[f"{v} %" if v else "–" for v in row[1:]]]
                      for row in results.uda_accuracy.itertuples(index=False)]),
        report.Text("The grader's scripts, run on each target test folder and scored with `score.py`:"),
        report.Table(list(results.grader.columns), _frame_rows(results.grader)),
    ]
    for method in uda.GRADED_METHODS:
        for source, target in SCENARIOS:
            run = uda.run_name(method, source, target)
            title = f"{uda.METHOD_TITLES[method]} {source} -> {target}"
            figures = [_image(results, f"{artifacts.UDA_FOLDER}/{artifacts.tsne_figure(run, colour)}",
                              f"{title}: t-SNE by {colour}") for colour in ("class", "domain")]
            blocks.append(report.Figures(figures))
    discussed = [m for m in uda.METHODS.values() if m.discussion]
    for method in discussed:
        if method.name in results.cards:
            blocks += [report.Heading(f"{method.discussion.card} Architecture and implementation details: "
                                      f"{method.title}", 3), *_card_blocks(results.cards[method.name])]
    for method in discussed:
        item = method.discussion.item
        blocks += [report.Heading(f"{item[1:]} Discussion: {method.label}", 3), _prompt(results, item)]
    return blocks


def _digit_blocks(results: Results) -> list[report.Block]:
    """Problem 5: the classifier's accuracy on each model's digits (and the grader's check), FID/KID, figures, cards."""
    digits, digit_images = results.digits, results.plan.fid_images[1]
    blocks: list[report.Block] = [
        report.Heading("Problem 5: class-conditional digits (ACGAN and DDPM)"),
        report.Text(f"1000 generated {DIGITS_DOMAIN} digits per model (100 per class, `generate_digits.py`), "
                    "labelled by the target-only classifier trained above; accuracy against the asked class:"),
        report.Table(["model", "accuracy", *[f"digit {d}" for d in range(10)]],
                     [[name.upper(), f"{scores['accuracy']:.4f}",
                       *[f"{v:.4f}" for v in scores["per_digit"].values()]]
                      for name, scores in digits.scores.items()]),
        report.Text(f"`digits.pt` is the {digits.best.upper()}; `bash hw3_p5.sh` wrote the same 1000 files, byte "
                    f"for byte: **{_yes(results.grader_matches['digits'])}**."),
        report.Text(f"FID and KID against the {DIGITS_DOMAIN} test digits"
                    + (f", on a seeded {digit_images} of each folder:" if digit_images else ":")),
        report.Table(FIDELITY_HEADER, _fidelity_rows(results.fidelity, [n.upper() for n in DIGIT_MODELS])),
        *[_image(results, artifacts.digit_grid(name), f"{name.upper()}: 10 digits per class, one class per row")
          for name in DIGIT_MODELS],
        _image(results, artifacts.DDPM_REVERSE, "DDPM reverse process of one 0"),
        _image(results, artifacts.DIGIT_CURVES, "Problem 5 training curves"),
    ]
    for name in DIGIT_MODELS:
        if name in results.cards:
            card = results.cards[name]
            blocks += [report.Text(f"Implementation details of the {card.title}:"),
                       report.Table(["setting", "value"], card.settings)]
    return blocks


def _time_blocks(results: Results) -> list[report.Block]:
    """How long each stage and each training job took."""
    return [
        report.Heading("Time per stage"),
        report.Table(["stage", "seconds"], [[name, f"{value:.0f}"] for name, value in results.stage_seconds.items()]),
        report.Text(f"The training stages ran {results.plan.jobs} job(s) at a time; each job's own time:"),
        report.Table(["job", "seconds"], [[name, f"{value:.0f}"] for name, value in results.job_seconds.items()]),
    ]


def write_report(results: Results, pdf: bool = True) -> Path:
    """``report/README.md`` and ``report/report.pdf``: every item of the assignment, with this run's numbers."""
    out = results.plan.out
    blocks = report_blocks(results)
    path = out / artifacts.REPORT_MD
    write_text(path, report.to_markdown(blocks, out))
    if pdf:
        report.to_pdf(blocks, out / artifacts.REPORT_PDF)
    return path
