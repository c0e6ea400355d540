import pytest
import torch

from hw3.common import UserError, atomic_path, autocast, batched, markdown_table, resolve_device, seed_everything
from hw3.training import FORMAT, StepLog, load_checkpoint, save_checkpoint


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and list(target.parent.iterdir()) == [target]


def test_unwritable_output_is_a_user_error():
    # /proc refuses new files even to root, so this holds wherever the suite runs.
    with pytest.raises(UserError, match="cannot write"):
        with atomic_path("/proc/hw3-test/x.png"):
            pass


def test_output_under_a_file_is_a_user_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        with atomic_path(tmp_path / "afile" / "x.png"):
            pass


def test_checkpoint_round_trip_and_damage(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"format": FORMAT, "kind": "vae", "config": {"latent_dim": 4}, "model": {"w": torch.ones(2)},
                           "step": 7})
    loaded = load_checkpoint(path, kind="vae")
    assert loaded["step"] == 7 and torch.equal(loaded["model"]["w"], torch.ones(2))
    with pytest.raises(UserError, match="holds a 'vae' model"):
        load_checkpoint(path, kind="gan")
    save_checkpoint(path, {"kind": "vae", "config": {}, "model": {}})  # the first version wrote no "format"
    with pytest.raises(UserError, match="older version"):
        load_checkpoint(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError, match="damaged"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_seed_and_device_helpers():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError):
        resolve_device("tpu")
    with autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_step_log_resumes_without_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "log.csv"
    with StepLog(path, ["step", "loss", "note"]) as log:
        for step in range(1, 6):
            log.write({"step": step, "loss": 1 / step})
    with StepLog(path, ["step", "loss", "note"], resume_step=3) as log:  # steps 4-5 came after the checkpoint
        log.write({"step": 4, "loss": 0.5, "note": "resumed"})
    lines = path.read_text().splitlines()
    assert lines == ["step,loss,note", "1,1,", "2,0.5,", "3,0.333333,", "4,0.5,resumed"]
    with StepLog(path, ["step", "loss", "note"]) as log:  # a new run starts a new log
        pass
    assert path.read_text().splitlines() == ["step,loss,note"]


def test_batched_matches_one_call_and_keeps_tuples():
    x = torch.arange(10.0).view(5, 2)
    assert torch.equal(batched(lambda b: b * 2, x, batch_size=2), x * 2)
    halves, sums = batched(lambda b: (b / 2, b.sum(1)), x, batch_size=3)
    assert torch.equal(halves, x / 2) and torch.equal(sums, x.sum(1))


def test_markdown_table_layout_and_errors():
    assert markdown_table(["", "a->b"], [["DANN", "48.00 %"], ["SWD+", "–"]]) == (
        "|  | a->b |\n|---|---|\n| DANN | 48.00 % |\n| SWD+ | – |\n")
    # Any iterable of rows; each cell as str() gives it.
    table = markdown_table(("model", "accuracy", "images"), iter([("DDPM", 0.676, 1000)]))
    assert table == "| model | accuracy | images |\n|---|---|---|\n| DDPM | 0.676 | 1000 |\n"
    assert markdown_table(["x"], [["a|b"]]).splitlines()[2] == "| a\\|b |"  # a pipe would split the cell
    with pytest.raises(ValueError, match="row 2 has 1 cells, the header 2"):
        markdown_table(["a", "b"], [[1, 2], [3]])
