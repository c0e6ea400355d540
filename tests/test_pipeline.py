"""A reduced run of the whole pipeline: every stage wired together on the tiny tree."""

import re

import pandas as pd
import pytest

import pipeline
import uda
from common import UserError


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
    # Publishing went to the run's own model folder, never the committed manifest.
    assert (tmp_path / "runs" / "models" / "manifest.json").is_file()


def test_run_jobs_times_each_job_and_names_a_failed_one_and_needs_a_worker(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("image_name,label\na.png,1\n")
    scoring = ["score.py", str(truth), str(truth)]
    seconds = pipeline.run_jobs({"one": [scoring], "two": [scoring, scoring]}, workers=2)
    assert list(seconds) == ["one", "two"] and all(value > 0 for value in seconds.values())
    # A job's error crosses the process boundary as one line that names the job.
    broken = [scoring, ["score.py", str(tmp_path / "absent.csv"), str(truth)]]
    with pytest.raises(UserError, match=r"^two failed: CSV not found: .*absent\.csv$"):
        pipeline.run_jobs({"one": [scoring], "two": broken}, workers=2)
    with pytest.raises(UserError, match=r"^one failed: score.py exited with status 2$"):  # an argparse error
        pipeline.run_jobs({"one": [["score.py", "--no-such-flag"]]}, workers=1)
    with pytest.raises(UserError, match="--jobs must be 1 or more"):
        pipeline.main(["--jobs", "0"])


def test_write_report_formats_the_results_alone(tmp_path):
    """The report is made from the Results object; a figure not drawn is named, not linked."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "fig1_4.png").write_bytes(b"png")
    plan = pipeline.Plan(data=tmp_path / "data", runs=tmp_path / "runs", out=out, model_dir=tmp_path / "models",
                         profile="demo", settings=pipeline.DEMO_ARGS, train_args=[], jobs=2, device="cpu",
                         attribute="Is_Face", inception_weights=None)
    results = pipeline.Results(
        plan=plan,
        vae=pipeline.VaeResults(0.03, 7, pd.DataFrame({"image_name": ["a.png", "b.png"], "mse": [0.01, 0.02]})),
        uda_accuracy="Target test accuracy\n\n|  | usps->mnistm |\n|---|---|\n| DANN | 48.00 % |\n",
        grader=pd.DataFrame([{"script": "hw3_p3.sh", "scenario": "usps->mnistm", "accuracy": 0.48, "images": 20,
                              "seconds": "2.4"}]),
        digits=pipeline.DigitResults({"ddpm": {"accuracy": 0.5, "per_digit": {"0": 1.0}}}, "ddpm", {}),
        grader_matches={"vae": True, "gan": False, "digits": True},
        stage_seconds={"data": 1.2, "figures": 3.0}, job_seconds={"train VAE": 2.0})
    report = pipeline.write_report(results).read_text()
    assert report == (out / "README.md").read_text()
    assert "the whole run took 4 s" in report and "Best validation MSE 0.0300 (epoch 7)" in report
    assert "mean MSE of the 10 images below 0.0150" in report
    assert "| image_name | mse |\n| --- | --- |\n| a.png | 0.0100 |\n" in report
    assert "![fig1_4 samples](fig1_4.png)" in report and "*fig2_2 samples: not drawn*" in report
    assert "fig1_4.png: **yes**" in report and "fig2_2.png: **NO**" in report
    assert "| hw3_p3.sh | usps->mnistm | 0.4800 | 20 | 2.4 |" in report
    assert "| DDPM | 0.5000 | 1.0000 |" in report and "`digits.pt` is the DDPM" in report
    assert "FID and IS: not computed" in report
    assert report.endswith("| job | seconds |\n|---|---|\n| train VAE | 2 |\n")


def test_published_files_are_the_graded_names(tmp_path):
    plan = pipeline.Plan(data=tmp_path, runs=tmp_path / "runs", out=tmp_path, model_dir=tmp_path, profile="demo",
                         settings=pipeline.DEMO_ARGS, train_args=[], jobs=1, device="cpu", attribute="Male",
                         inception_weights=None)
    files = pipeline.published_files(plan, "acgan")
    assert sorted(files) == sorted(["vae.pt", "gan.pt", "digits.pt",
                                    *(uda.published_model(m, t) for m in uda.GRADED_METHODS for _, t in
                                      pipeline.SCENARIOS)])
    assert files["digits.pt"] == tmp_path / "runs" / "acgan" / "model.pt"
