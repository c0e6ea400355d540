import json
import shutil

import pytest

import fetch
from hw3.common import UserError
from helpers import run


@pytest.fixture
def published(tmp_path, model_server, monkeypatch):
    """A model folder whose manifest lists ``m.pt``, served (good copy) by the loopback server."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "m.pt").write_bytes(b"weights " * 1000)
    fetch.publish(models, ["m.pt"], base_url="http://unused.invalid")
    shutil.copy(models / "m.pt", model_server.directory / "m.pt")
    (models / "m.pt").unlink()
    monkeypatch.setenv("HW3_MODEL_BASE_URL", model_server.url)
    return models


def leftovers(models):
    return sorted(p.name for p in models.iterdir() if p.name != "manifest.json")


def test_publish_records_hash_and_size(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"abc")
    manifest = fetch.publish(tmp_path, [], base_url="https://example.org/v1")
    assert manifest["files"]["a.pt"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert json.loads((tmp_path / "manifest.json").read_text())["base_url"] == "https://example.org/v1"


def test_download_verifies_and_installs(published):
    path = fetch.ensure("m.pt", published)
    assert path.read_bytes() == b"weights " * 1000
    assert leftovers(published) == ["m.pt"]


def test_present_good_file_is_not_downloaded_again(published, model_server):
    fetch.ensure("m.pt", published)
    model_server.stop()
    assert fetch.ensure("m.pt", published).is_file()


def test_wrong_local_file_is_replaced(published):
    (published / "m.pt").write_bytes(b"stale")
    assert fetch.ensure("m.pt", published).read_bytes() == b"weights " * 1000


@pytest.mark.parametrize(
    "serve, message",
    [("damaged", "is damaged"), ("empty", "is empty"), ("missing", "could not download"), ("down", "could not download")],
)
def test_bad_download_leaves_no_trusted_file(published, model_server, serve, message):
    served = model_server.directory / "m.pt"
    if serve == "damaged":
        served.write_bytes(b"weights " * 999 + b"WEIGHTS ")
    elif serve == "empty":
        served.write_bytes(b"")
    elif serve == "missing":
        served.unlink()
    else:
        model_server.stop()
    with pytest.raises(UserError, match=message):
        fetch.ensure("m.pt", published)
    assert leftovers(published) == []


def test_manifest_problems_are_clear(tmp_path):
    with pytest.raises(UserError, match="manifest not found"):
        fetch.ensure("m.pt", tmp_path)
    (tmp_path / "manifest.json").write_text('{"base_url": "", "files": {"m.pt": {}}}')
    with pytest.raises(UserError, match="not listed"):
        fetch.ensure("other.pt", tmp_path)
    with pytest.raises(UserError, match="no published hash"):
        fetch.ensure("m.pt", tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        fetch.ensure("m.pt", tmp_path)


def test_command_line_prints_path_or_one_error_line(published, model_server):
    ok = run(["python3", "fetch.py", "--dir", str(published), "m.pt"], HW3_MODEL_BASE_URL=model_server.url)
    assert ok.returncode == 0 and ok.stdout.strip() == str(published / "m.pt")
    model_server.stop()
    (published / "m.pt").write_bytes(b"damaged")
    bad = run(["python3", "fetch.py", "--dir", str(published), "m.pt"], HW3_MODEL_BASE_URL=model_server.url)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: could not download m.pt")
    assert (published / "m.pt").read_bytes() == b"damaged"  # the old file stays; it is never trusted


def test_an_empty_manifest_says_nothing_is_published_yet(tmp_path):
    (tmp_path / "manifest.json").write_text('{"base_url": "", "files": {}}')
    with pytest.raises(UserError, match="no model files are published yet.*make report"):
        fetch.ensure("dann_usps-mnistm.pt", tmp_path)


def test_publishing_without_a_url_warns_and_a_clone_gets_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "m.pt").write_bytes(b"weights")
    result = run(["python3", "fetch.py", "--dir", str(tmp_path), "--publish", "m.pt"])
    assert result.returncode == 0 and "warning: no --base-url" in result.stderr and "m.pt" in result.stderr
    (tmp_path / "m.pt").unlink()  # a fresh clone: the manifest, no file
    monkeypatch.delenv("HW3_MODEL_BASE_URL", raising=False)
    with pytest.raises(UserError, match="m.pt has no download URL"):
        fetch.ensure("m.pt", tmp_path)
    # A per-file "url" (a Drive or Dropbox link) is kept by a later --publish and silences the warning.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"]["m.pt"]["url"] = "https://example.org/share?id=1"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "m.pt").write_bytes(b"weights")
    again = run(["python3", "fetch.py", "--dir", str(tmp_path), "--publish", "m.pt"])
    assert again.returncode == 0 and again.stderr == ""
    assert fetch.file_url(json.loads((tmp_path / "manifest.json").read_text()), "m.pt") == "https://example.org/share?id=1"


@pytest.mark.parametrize("script, args", [("hw3_p1.sh", ["out.png"]), ("hw3_p3.sh", [".", "mnistm", "out.csv"])])
def test_scripts_under_a_python_without_torch_fail_in_one_line(script, args, tmp_path):
    """A grader's python3 without the packages gets one error line that says what to install, not a traceback."""
    import os
    import stat
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"  # the same interpreter without site-packages: no torch
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    result = run(["bash", script, *args], PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "cannot import torch" in result.stderr
    assert "requirements.txt" in result.stderr
