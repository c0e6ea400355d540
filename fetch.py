"""Deliver model files: download with wget, verify SHA-256, publish a new manifest.

The grader's scripts call ``python3 fetch.py NAME`` before inference. The file
``<model dir>/manifest.json`` (committed) lists each model file's SHA-256 and
the URL it is served from::

    {"base_url": "https://.../download/v1",
     "files": {"vae.pt": {"sha256": "ab12...", "url": "optional full URL"}}}

A file already present with the listed hash is used as it is. Otherwise it is
fetched with ``wget`` into a temporary file beside it, checked, and only then
renamed into place, so a failed or damaged download never leaves a file that
a later run would trust.

After training, ``python3 fetch.py --publish --base-url URL`` rewrites the
manifest from the local model files; upload those files to that URL. A host whose
links are not ``URL/NAME`` (Google Drive, Dropbox) gets a ``"url"`` per file in the
manifest, which ``--publish`` keeps. Publishing with neither is warned about.

Environment: ``HW3_MODEL_DIR`` (default: ``checkpoints/`` beside this file) and
``HW3_MODEL_BASE_URL`` (overrides the manifest's URLs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hw3.common import UserError, cli, write_json

MANIFEST = "manifest.json"


def model_dir() -> Path:
    return Path(os.environ.get("HW3_MODEL_DIR") or Path(__file__).resolve().parent / "checkpoints")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"model manifest not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"model manifest {path} is not valid JSON: {err}") from None
    if not isinstance(manifest.get("files"), dict):
        raise UserError(f"model manifest {path} has no 'files' table")
    return manifest


def file_url(manifest: dict, name: str) -> str:
    """Where ``name`` is downloaded from: ``$HW3_MODEL_BASE_URL``, its own ``url``, or the manifest's ``base_url``."""
    base = os.environ.get("HW3_MODEL_BASE_URL")
    if base:
        return f"{base.rstrip('/')}/{name}"
    entry = manifest["files"][name]
    if entry.get("url"):
        return entry["url"]
    if not manifest.get("base_url"):
        raise UserError(f"{name} has no download URL: the manifest has neither a base_url nor a url for it "
                        "(publish with --base-url URL, or set HW3_MODEL_BASE_URL)")
    return f"{manifest['base_url'].rstrip('/')}/{name}"


def missing_urls(manifest: dict) -> list[str]:
    """The files of ``manifest`` that a clone could not download: no ``url`` and no ``base_url``."""
    return [] if manifest.get("base_url") else sorted(n for n, e in manifest["files"].items() if not e.get("url"))


def ensure(name: str, directory: Path | None = None) -> Path:
    """Return the path of a verified copy of model file ``name``, downloading it if needed."""
    directory = directory or model_dir()
    manifest = read_manifest(directory)
    entry = manifest["files"].get(name)
    if entry is None and not manifest["files"]:
        raise UserError(f"no model files are published yet ({directory / MANIFEST} lists none): train them "
                        "(make report DATA=path/to/hw3_data), upload them and publish (README, 'Publishing')")
    if entry is None:
        raise UserError(f"{name} is not listed in {directory / MANIFEST}")
    expected = entry.get("sha256")
    if not expected:
        raise UserError(f"{name} has no published hash in {directory / MANIFEST}: train it, then run fetch.py --publish")
    target = directory / name
    if target.is_file() and sha256_file(target) == expected:
        return target

    url = file_url(manifest, name)
    if shutil.which("wget") is None:
        raise UserError(f"wget is needed to download {name}, and it is not installed")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.close(fd)
    tmp = Path(tmp)
    try:
        result = subprocess.run(
            ["wget", "--quiet", "--tries=3", "--timeout=60", "-O", str(tmp), url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if result.returncode != 0:
            raise UserError(f"could not download {name} from {url} (wget exit {result.returncode})")
        if tmp.stat().st_size == 0:
            raise UserError(f"downloaded {name} from {url} is empty")
        got = sha256_file(tmp)
        if got != expected:
            raise UserError(f"downloaded {name} from {url} is damaged: SHA-256 {got[:12]}... expected {expected[:12]}...")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def publish(directory: Path, names: list[str], base_url: str | None) -> dict:
    """Rewrite the manifest with the SHA-256 of each local model file in ``names``."""
    path = directory / MANIFEST
    manifest = read_manifest(directory) if path.is_file() else {"base_url": "", "files": {}}
    if base_url is not None:
        manifest["base_url"] = base_url
    if not names:
        names = sorted(p.name for p in directory.glob("*.pt"))
    if not names:
        raise UserError(f"no model files (*.pt) in {directory} to publish")
    for name in names:
        local = directory / name
        if not local.is_file():
            raise UserError(f"cannot publish {name}: {local} does not exist")
        entry = manifest["files"].setdefault(name, {})
        entry["sha256"] = sha256_file(local)
        entry["bytes"] = local.stat().st_size
    manifest["files"] = dict(sorted(manifest["files"].items()))
    write_json(path, manifest)
    return manifest


# What the grader's scripts import beyond the standard library (module names).
INFERENCE_PACKAGES = ("torch", "torchvision", "numpy", "pandas", "PIL", "sklearn")


def check_dependencies() -> None:
    """One clear error when ``python3`` lacks a package inference needs (found without importing it)."""
    import importlib.util

    missing = [name for name in INFERENCE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{sys.executable} cannot import {', '.join(missing)}: install them "
                        "(python3 -m pip install -r requirements.txt) or put a virtual environment that has them "
                        "first on PATH (make install builds .venv)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("names", nargs="*", help="model files to fetch (or, with --publish, to publish)")
    parser.add_argument("--dir", type=Path, default=None, help="model folder (default: $HW3_MODEL_DIR or checkpoints/)")
    parser.add_argument("--publish", action="store_true", help="rewrite the manifest from local model files")
    parser.add_argument("--base-url", default=None, help="with --publish: the URL the files will be served from")
    parser.add_argument("--check-deps", action="store_true",
                        help="only check that python3 has what inference needs (fetching checks it too)")
    args = parser.parse_args(argv)
    if args.check_deps or (args.names and not args.publish):
        check_dependencies()
    if args.check_deps:
        return 0
    directory = args.dir or model_dir()
    if not directory.is_dir():
        raise UserError(f"model folder not found: {directory}")
    if args.publish:
        manifest = publish(directory, args.names, args.base_url)
        for name in args.names or manifest["files"]:
            print(f"{manifest['files'][name]['sha256']}  {name}")
        unreachable = missing_urls(manifest)
        if unreachable:
            print(f"warning: no --base-url and no per-file \"url\" for {', '.join(unreachable)}: a fresh clone "
                  "cannot download them; publish again with --base-url URL or add a \"url\" to each entry",
                  file=sys.stderr)
        return 0
    if not args.names:
        parser.error("name at least one model file")
    for name in args.names:
        print(ensure(name, directory))
    return 0


if __name__ == "__main__":
    cli(main)
