"""make_data.py, offline: tiny files in each original's format, served from 127.0.0.1.

The originals are written here as their hosts publish them (USPS's bz2 LIBSVM text, SVHN's
.mat, MNIST's gzipped idx files, the BSR tarball, CelebA's aligned JPEGs in a zip with its
two list files) and served by a loopback HTTP server with byte ranges, so the real download
path runs: wget, resuming, checksums. No test reaches any other address.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import make_data
import pipeline
from hw3.common import UserError
from helpers import REPO, free_port

# CelebA's 40 attributes in list_attr_celeba.txt's order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male "
    "Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young").split()
COUNTS = {"usps": (30, 20), "svhn": (30, 20), "mnist": (40, 20), "mnistm": (40, 20), "face": (6, 3)}
CELEBA_PARTITION = [0] * 8 + [1] * 2 + [2] * 4  # 14 images: 8 train, 2 val, 4 test
SIZE_ARGS = [a for part, (n, m) in COUNTS.items() for a in (f"--{part}", str(n), str(m))]


def _mnist_idx(images: np.ndarray, labels: np.ndarray) -> tuple[bytes, bytes]:
    head = np.array([2051, len(images), 28, 28], dtype=">i4").tobytes()
    return (gzip.compress(head + images.tobytes(), mtime=0),
            gzip.compress(np.array([2049, len(labels)], dtype=">i4").tobytes() + labels.astype(np.uint8).tobytes(), mtime=0))


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_originals(folder: Path) -> dict:
    """Every original file, tiny, in ``folder``; returns what the tests compare against."""
    rng = np.random.default_rng(0)
    truth = {}
    # USPS: LIBSVM lines "label 1:v ... 256:v", label 1-10 for the digits 0-9, pixels in [-1, 1].
    for name, n in (("usps.bz2", 30), ("usps.t.bz2", 20)):
        digits = rng.integers(0, 10, n)
        pixels = rng.uniform(-1, 1, (n, 256))
        pixels[0] = -1  # the first digit: USPS's background (-1) with one stroke of ink (+1), columns 5-6
        pixels[0, 5::16] = pixels[0, 6::16] = 1
        text = "".join(f"{d + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row)) + "\n"
                       for d, row in zip(digits, pixels))
        (folder / name).write_bytes(bz2.compress(text.encode()))
        truth[name] = digits
        truth[name + " pixels"] = np.array([[f"{v:.6f}" for v in row] for row in pixels], dtype=np.float32).reshape(n, 16, 16)
    # SVHN: X (32, 32, 3, N) uint8 and y (N, 1) with 10 for the digit 0 (every class present).
    for name, n in (("train_32x32.mat", 30), ("test_32x32.mat", 20)):
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # (row, column, channel, image)
        scipy.io.savemat(folder / name, {"X": x, "y": y})
        truth[name] = y[:, 0]
        truth[name + " X"] = x
    # MNIST: gzipped idx files.
    for prefix, n in (("train", 40), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        data = _mnist_idx(images, labels)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(data[0])
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(data[1])
        truth[prefix] = (images, labels)
    # BSDS500: the BSR tarball's layout, two photographs per split, and the Thumbs.db it carries.
    with tarfile.open(folder / "BSR_bsds500.tgz", "w:gz") as tar:
        for split in ("train", "val", "test"):
            for i in range(2):
                data = _jpeg(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
                info = tarfile.TarInfo(f"BSR/BSDS500/data/images/{split}/{i + 1}00.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(f"BSR/BSDS500/data/images/{split}/Thumbs.db")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    # CelebA: aligned 178x218 JPEGs in img_align_celeba/, the attribute list and the partition.
    names = [f"{i + 1:06d}.jpg" for i in range(len(CELEBA_PARTITION))]
    attributes = rng.choice([-1, 1], size=(len(names), len(CELEBA_ATTRIBUTES)))
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as archive:
        for name in names:
            archive.writestr(f"img_align_celeba/{name}", _jpeg(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)))
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n"
        + "".join(f"{name} " + " ".join(f"{a:2d}" for a in row) + "\n" for name, row in zip(names, attributes)))
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, CELEBA_PARTITION)))
    truth["celeba"] = dict(zip(names, attributes))
    truth["partition"] = {n: [str(p)] for n, p in zip(names, CELEBA_PARTITION)}
    (folder.parent / "MD5SUMS").write_text("".join(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(folder.iterdir())))
    return truth


class Server:
    """A loopback HTTP server over ``directory`` in a thread, with ``Range: bytes=N-``, a request log and faults.

    ``refuse`` names files answered 403; ``stall`` names files of which half is sent before the
    handler sleeps (until the server stops), as a connection that hangs mid-transfer.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.log: list[tuple[str, str | None]] = []
        self.refuse: set[str] = set()
        self.stall: set[str] = set()
        self.stopping = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 30  # a stuck client cannot hold a thread longer

            def do_GET(self):
                name = self.path.lstrip("/")
                server.log.append((name, self.headers.get("Range")))
                path = server.directory / name
                if name in server.refuse or not path.is_file():
                    self.send_error(403 if name in server.refuse else 404)
                    return
                data = path.read_bytes()
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(match[1]) if match else 0
                if start >= len(data) and match:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                body = data[start:]
                if name in server.stall:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    server.stopping.wait(30)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def requested(self) -> list[str]:
        return [name for name, _ in self.log]

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals") / "files"
    folder.mkdir()
    truth = write_originals(folder)
    return folder, folder.parent / "MD5SUMS", truth


@pytest.fixture
def server(originals, tmp_path):
    """The originals served from a copy (a test may damage it) on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    for path in originals[0].iterdir():
        (served / path.name).write_bytes(path.read_bytes())
    server = Server(served)
    yield server
    server.stop()


def args(server_url: str, out: Path, md5sums: Path, *extra: str) -> list[str]:
    return ["--out", str(out), "--mirror", server_url, "--checksums", str(md5sums), "--timeout", "5", "--quiet",
            *SIZE_ARGS, *extra]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers_are_complete(tmp_path: Path, out: Path) -> None:
    """After a failed or killed run: no ``out``; under ``out.partial`` only complete parts under a part's name."""
    assert not out.exists()
    staging = out.with_name(out.name + ".partial")
    for part, folder in make_data.FOLDERS.items():
        if (staging / folder).exists():
            assert make_data.check_part(staging / folder, part, COUNTS[part]) == []
    assert pipeline.missing_parts(staging)  # never taken for a complete tree


@pytest.fixture(scope="module")
def reference(originals, tmp_path_factory):
    """A tree built once from the originals, to compare other runs' bytes with."""
    folder, md5sums, _ = originals
    server = Server(folder)
    try:
        out = tmp_path_factory.mktemp("reference") / "hw3_data"
        assert make_data.main(args(server.url, out, md5sums)) == 0
    finally:
        server.stop()
    return tree_bytes(out)


def test_build_from_loopback(originals, server, reference, tmp_path):
    folder, md5sums, truth = originals
    downloads = tmp_path / "hw3_data.downloads"
    downloads.mkdir()
    # A transfer cut off earlier (the first half of usps.bz2) is continued, not restarted.
    usps = (folder / "usps.bz2").read_bytes()
    (downloads / "usps.bz2.part").write_bytes(usps[:len(usps) // 2])
    # A file put there by hand (what CelebA's refusals ask for) is used, not downloaded.
    (downloads / "list_attr_celeba.txt").write_bytes((folder / "list_attr_celeba.txt").read_bytes())
    out = tmp_path / "hw3_data"
    assert make_data.main(args(server.url, out, md5sums)) == 0

    assert ("usps.bz2", f"bytes={len(usps) // 2}-") in server.log
    assert "list_attr_celeba.txt" not in server.requested()
    assert (downloads / "usps.bz2").read_bytes() == usps and not list(downloads.glob("*.part"))
    assert not out.with_name("hw3_data.partial").exists()
    assert make_data.check_tree(out, COUNTS) == [] and pipeline.missing_parts(out) == []

    def labels(csv: Path) -> list[int]:
        return [int(line.split(",")[1]) for line in csv.read_text().splitlines()[1:]]

    # Sizes and modes, and the labels: USPS's 1-10 and SVHN's 10 become 0-9, MNIST's stay.
    for part, (mode, side) in make_data.MODES.items():
        with Image.open(out / make_data.FOLDERS[part] / "train" / "00000.png") as image:
            assert (image.mode, image.size) == (mode, (side, side))
    assert labels(out / "digits/usps/train.csv") == list(truth["usps.bz2"])
    assert labels(out / "digits/svhn/test.csv") == list(truth["test_32x32.mat"] % 10)
    assert 0 in labels(out / "digits/svhn/train.csv")
    assert labels(out / "digits/mnist/train.csv") == labels(out / "digits/mnistm/train.csv") == list(truth["train"][1])
    assert np.array_equal(np.asarray(Image.open(out / "digits/mnist/test/00003.png")), truth["t10k"][0][3])

    def png(path: str) -> np.ndarray:
        return np.asarray(Image.open(out / path)).astype(np.int16)

    def resized(image: np.ndarray) -> np.ndarray:  # every digit is resized to 28x28, bilinear
        return np.asarray(Image.fromarray(image).resize((28, 28), Image.BILINEAR)).astype(np.int16)

    # USPS: -1..1 to 0..255, ink white on black (as MNIST): the background is 0, the stroke 255.
    usps = truth["usps.bz2 pixels"]
    assert png("digits/usps/train/00000.png")[:, 0].max() == 0 and png("digits/usps/train/00000.png").max() == 255
    for i in (0, 1, 29):
        assert np.array_equal(png(f"digits/usps/train/{i:05d}.png"), resized(((usps[i] + 1) / 2 * 255).astype(np.uint8)))
    # SVHN: X's first axis is the image's rows, its second the columns (a transposed digit fails).
    svhn = truth["test_32x32.mat X"]
    for i in (0, 7, 19):
        assert np.array_equal(png(f"digits/svhn/test/{i:05d}.png"), resized(svhn[:, :, :, i]))
        assert not np.array_equal(png(f"digits/svhn/test/{i:05d}.png"), resized(svhn[:, :, :, i].transpose(1, 0, 2)))
    # MNIST-M (Ganin & Lempitsky, section 5): |patch - digit| for some 28x28 patch of a BSDS photograph.
    photos = make_data.bsds_photos(downloads / "BSR_bsds500.tgz")
    for i in (0, 1):
        digit, blended = truth["train"][0][i].astype(np.int16)[..., None], png(f"digits/mnistm/train/{i:05d}.png")
        assert any(np.array_equal(np.abs(photo[y:y + 28, x:x + 28].astype(np.int16) - digit), blended)
                   for photo in photos for y in range(photo.shape[0] - 27) for x in range(photo.shape[1] - 27))

    # Faces: the 13 attributes in the assignment's order, -1/1 as 0.0/1.0, from the drawn CelebA images.
    lines = (out / "face/train.csv").read_text().splitlines()
    assert lines[0] == ("image_name,Bangs,Big_Lips,Black_Hair,Blond_Hair,Brown_Hair,Heavy_Makeup,High_Cheekbones,"
                        "Male,Mouth_Slightly_Open,Smiling,Straight_Hair,Wavy_Hair,Wearing_Lipstick")
    chosen = make_data.select_faces(truth["partition"], COUNTS["face"], seed=0)
    assert all(CELEBA_PARTITION[int(n[:6]) - 1] == 0 for n in chosen["train"])
    assert all(CELEBA_PARTITION[int(n[:6]) - 1] == 2 for n in chosen["test"])
    columns = [CELEBA_ATTRIBUTES.index(a) for a in make_data.FACE_ATTRIBUTES]
    for line, name in zip(lines[1:], chosen["train"]):
        assert line.split(",")[1:] == [f"{float(v > 0):.1f}" for v in truth["celeba"][name][columns]]
    assert (out / "face/test.csv").read_text().splitlines()[1].startswith("00006.png,")  # names run on

    # The same bytes as an independent build, and a rerun keeps the tree without downloading.
    assert tree_bytes(out) == reference
    before = len(server.log)
    assert make_data.main(args(server.url, out, md5sums)) == 0
    assert len(server.log) == before and tree_bytes(out) == reference


def test_corrupted_download_is_refused(originals, server, tmp_path):
    _, md5sums, _ = originals
    svhn = server.directory / "train_32x32.mat"
    data = bytearray(svhn.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped in transit
    svhn.write_bytes(bytes(data))
    out = tmp_path / "hw3_data"
    with pytest.raises(UserError, match=r"downloaded train_32x32.mat is damaged \(MD5 \w+, expected \w+\)"):
        make_data.main(args(server.url, out, md5sums))
    assert not (tmp_path / "hw3_data.downloads" / "train_32x32.mat").exists()
    assert not list((tmp_path / "hw3_data.downloads").glob("*.part"))
    leftovers_are_complete(tmp_path, out)
    assert (out.with_name("hw3_data.partial") / "digits/usps").is_dir()  # built before; kept for the rerun


def test_a_damaged_file_put_by_hand_is_refused_and_kept(originals, tmp_path):
    _, md5sums, _ = originals
    downloads = tmp_path / "hw3_data.downloads"
    downloads.mkdir()
    (downloads / "usps.bz2").write_bytes(b"not usps")
    with pytest.raises(UserError, match=r"usps.bz2 is not the published file \(MD5 \w+, expected \w+\): delete it"):
        make_data.main(args(f"http://127.0.0.1:{free_port()}", tmp_path / "hw3_data", md5sums))
    assert (downloads / "usps.bz2").read_bytes() == b"not usps"  # the user's file is theirs to delete


def test_refused_download_names_where_to_put_it_and_the_rerun_picks_it_up(originals, server, reference, tmp_path):
    folder, md5sums, _ = originals
    server.refuse.add("img_align_celeba.zip")
    out = tmp_path / "hw3_data"
    with pytest.raises(UserError) as err:
        make_data.main(args(server.url, out, md5sums))
    message = str(err.value)
    assert "cannot download img_align_celeba.zip" in message and "refused" in message and "\n" not in message
    downloads = tmp_path / "hw3_data.downloads"
    assert f"put them in {downloads}/" in message
    leftovers_are_complete(tmp_path, out)
    (downloads / "img_align_celeba.zip").write_bytes((folder / "img_align_celeba.zip").read_bytes())
    before = len(server.log)
    assert make_data.main(args(server.url, out, md5sums)) == 0
    assert server.log[before:] == []  # the digits were kept, the archive was taken from where it was put
    assert tree_bytes(out) == reference


def test_exception_mid_conversion_leaves_no_part(originals, server, reference, tmp_path, monkeypatch):
    _, md5sums, _ = originals
    real, calls = make_data.crop_face, []

    def failing(image):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected")
        return real(image)

    monkeypatch.setattr(make_data, "crop_face", failing)
    out = tmp_path / "hw3_data"
    with pytest.raises(RuntimeError, match="injected"):
        make_data.main(args(server.url, out, md5sums))
    staging = out.with_name("hw3_data.partial")
    assert not (staging / "face").exists() and not list(staging.glob(".tmp-*"))
    leftovers_are_complete(tmp_path, out)
    monkeypatch.setattr(make_data, "crop_face", real)
    assert make_data.main(args(server.url, out, md5sums)) == 0
    assert tree_bytes(out) == reference


def test_full_disk_is_one_line(originals, server, tmp_path, monkeypatch):
    _, md5sums, _ = originals

    def full(self, fp, *args, **kwargs):
        raise OSError(28, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "hw3_data"
    with pytest.raises(UserError, match=r"cannot write .*00000\.png: No space left on device"):
        make_data.main(args(server.url, out, md5sums))
    leftovers_are_complete(tmp_path, out)


def _script(*argv: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "make_data.py"), *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_offline_is_one_line_within_a_minute(originals, tmp_path):
    _, md5sums, _ = originals
    out = tmp_path / "hw3_data"
    start = time.monotonic()
    proc = _script(*args(f"http://127.0.0.1:{free_port()}", out, md5sums))  # nothing listens there
    _, stderr = proc.communicate(timeout=90)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("error: cannot download usps.bz2 from http://127.0.0.1:") and "network failure" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing at all is left behind


def test_killed_build_leaves_no_partial_tree_and_resumes(originals, server, reference, tmp_path):
    _, md5sums, _ = originals
    server.stall.add("img_align_celeba.zip")  # half the archive arrives, then the transfer hangs
    out = tmp_path / "hw3_data"
    proc = _script(*args(server.url, out, md5sums), start_new_session=True)
    part = tmp_path / "hw3_data.downloads" / "img_align_celeba.zip.part"
    deadline = time.monotonic() + 60
    while not (part.is_file() and part.stat().st_size > 0) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGKILL)  # the script and its wget
    proc.communicate(timeout=30)
    leftovers_are_complete(tmp_path, out)
    assert (out.with_name("hw3_data.partial") / "digits/mnistm").is_dir()

    server.stall.clear()
    before, resumed_from = len(server.log), part.stat().st_size
    assert make_data.main(args(server.url, out, md5sums)) == 0
    # Only the rest of the cut-off archive was asked for; the digits were kept.
    assert server.log[before:] == [("img_align_celeba.zip", f"bytes={resumed_from}-")]
    assert tree_bytes(out) == reference


def test_pipeline_refuses_an_incomplete_tree(tiny_data, tmp_path):
    import shutil

    data = tmp_path / "hw3_data"
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / "digits" / "svhn" / "test")
    (data / "face" / "test.csv").unlink()
    with pytest.raises(UserError, match=r"is not a complete hw3_data tree: face/test.csv, digits/svhn/test missing "
                                        r"\(make data builds one\)"):
        pipeline.main(["--data", str(data), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "report")])


def test_celeba_from_google_drive_without_gdown_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", None)  # as if not installed: nothing is downloaded
    source = make_data.sources()["img_align_celeba.zip"]
    with pytest.raises(UserError) as err:
        make_data.fetch(source, tmp_path / "downloads")
    message = str(err.value)
    assert message.startswith("cannot download img_align_celeba.zip from Google Drive id ")
    assert "need gdown" in message and f"put them in {tmp_path / 'downloads'}/" in message and "\n" not in message
    assert not (tmp_path / "downloads").exists()


def test_celeba_from_google_drive_before_torchvision_0_17_1_says_so(tmp_path, monkeypatch):
    """torchvision 0.16-0.17.0 save Google Drive's warning page, which then fails the MD5 (pytorch/vision#8204)."""
    import types

    import torchvision

    monkeypatch.setitem(sys.modules, "gdown", types.ModuleType("gdown"))  # as if installed
    monkeypatch.setattr(torchvision, "__version__", "0.17.0+cpu")
    with pytest.raises(UserError, match=r"need torchvision 0\.17\.1 or newer \(this is 0\.17\.0\+cpu"):
        make_data.fetch(make_data.sources()["img_align_celeba.zip"], tmp_path / "downloads")
    assert make_data._version("0.17.1") == (0, 17, 1) and make_data._version("0.29.1+cu121") >= (0, 17, 1)


@pytest.mark.parametrize("variables, expected", [([], '--out "hw3_data"'),
                                                 (["DATA=/d/hw3", "MIRROR=http://m/x"], '--out "/d/hw3" --mirror "http://m/x"')])
def test_make_data_target(variables, expected):
    result = subprocess.run(["make", "--no-print-directory", "-n", "data", *variables], cwd=REPO,
                            capture_output=True, text=True)
    assert any(line.endswith("python make_data.py " + expected) for line in result.stdout.splitlines()), result.stdout
