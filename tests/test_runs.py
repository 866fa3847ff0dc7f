"""The run scaffold (geomanip.runs): output folders, devices, plain-data checkpoints, options on resume."""

import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geomanip import runs

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")


def folder_state(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` (relative name) with its modification time and content."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    }


def test_a_folder_holding_a_run_is_refused_and_left_unchanged(tmp_path):
    for marker in ("last.pt", "summary.json"):
        out = tmp_path / marker.split(".")[0]
        (out / "tb").mkdir(parents=True)
        (out / marker).write_text("a run")
        (out / "tb" / "events").write_text("logs")
        before = folder_state(out)
        with pytest.raises(FileExistsError) as err:
            runs.prepare_output(out, resume=False, overwrite=False, checkpoints=("last.pt",), outputs=("tb",))
        message = str(err.value)
        assert "\n" not in message and str(out) in message and marker in message
        assert "--resume" in message and "--overwrite" in message
        assert folder_state(out) == before


def test_overwrite_deletes_the_runs_own_files_only(tmp_path):
    out = tmp_path / "run"
    (out / "tb").mkdir(parents=True)
    for name in ("last.pt", "best.pt", "summary.json", "tb/events", "notes.txt"):
        (out / name).write_text(name)
    assert runs.prepare_output(out, False, True, ("last.pt", "best.pt"), ("tb",)) == out
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # A distributed run's other processes pass the check without deleting.
    (out / "last.pt").write_text("new")
    runs.prepare_output(out, False, True, ("last.pt",), clear=False)
    assert (out / "last.pt").read_text() == "new"


def test_a_new_folder_is_created_and_resume_needs_a_checkpoint(tmp_path):
    out = runs.prepare_output(tmp_path / "a" / "b", False, False, ("last.pt",))
    assert out.is_dir() and not any(out.iterdir())
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint at .*last.pt"):
        runs.prepare_output(out, True, False, ("last.pt",))
    with pytest.raises(ValueError, match="pass one"):
        runs.prepare_output(out, True, True, ("last.pt",))
    (out / "last.pt").write_text("x")
    assert runs.prepare_output(out, True, False, ("last.pt",)) == out


@dataclasses.dataclass
class Config:
    task: str = "a"
    size: int = 1
    out: str = "runs/x"
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False


def test_resume_takes_the_options_not_given_from_the_saved_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    saved = {"task": "b", "size": 7, "out": "elsewhere", "device": "cuda", "resume": False, "overwrite": True}
    (out / "run.json").write_text(json.dumps({**saved, "removed_option": 1}))
    cfg = runs.options_config(Config, {"out": str(out), "resume": True, "size": 3})
    assert cfg == Config(task="b", size=3, out=str(out), device="auto", resume=True, overwrite=False)
    # Without --resume the saved run does not matter.
    assert runs.options_config(Config, {"out": str(out)}) == Config(out=str(out))
    with pytest.raises(ValueError, match=r"saved with --task b \(not c\); omit these options"):
        runs.check_resume(out / "last.pt", saved, {"task": "c", "size": 7}, ("task", "size"))
    runs.check_resume(out / "last.pt", saved, {"task": "b", "size": 3}, ("task",))


def test_resume_reads_the_config_of_a_checkpoint_without_run_json(tmp_path):
    runs.save_checkpoint({"config": {"task": "z", "size": 2}}, tmp_path / "last.pt")
    assert runs.saved_config(tmp_path) == {"task": "z", "size": 2}
    assert runs.options_config(Config, {"out": str(tmp_path), "resume": True}).task == "z"
    assert runs.saved_config(tmp_path / "missing") is None


@NO_CUDA
def test_cuda_without_cuda_is_one_clear_line():
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError) as err:
            runs.resolve_device(name)
        assert str(err.value).startswith(f"--device {name}: CUDA is not available") and "\n" not in str(err.value)
    assert runs.resolve_device("auto") == torch.device("cpu")


def test_devices():
    assert runs.resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "meta"):
        with pytest.raises(ValueError, match=f"--device {bad}: "):
            runs.resolve_device(bad)


def test_files_are_written_atomically(tmp_path):
    runs.write_json(tmp_path / "summary.json", {"a": [1, 2.5]})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": [1, 2.5]}

    def crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runs.save_atomic(tmp_path / "summary.json", crash)
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": [1, 2.5]}


def test_checkpoints_hold_plain_data_and_load_without_unpickling_objects(tmp_path):
    state = {
        "model": {"w": torch.arange(3.0)},
        "config": Config(task="q"),  # stored as a dict
        "best_val": np.float32(0.5),  # stored as a number
        "history": [1.0, np.float64(2.0)],
        "sizes": (1, 2),
    }
    runs.save_checkpoint(state, tmp_path / "ckpt.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    loaded = runs.load_checkpoint(tmp_path / "ckpt.pt")
    assert loaded["config"] == dataclasses.asdict(Config(task="q"))
    assert type(loaded["best_val"]) is float and loaded["history"] == [1.0, 2.0] and loaded["sizes"] == (1, 2)
    torch.testing.assert_close(loaded["model"]["w"], torch.arange(3.0))
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["config"]["task"] == "q"
    with pytest.raises(TypeError, match=r"checkpoint\['bad'\] is a builtins.object"):
        runs.save_checkpoint({"bad": object()}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_a_checkpoint_with_pickled_objects_is_refused_and_can_be_converted(tmp_path):
    old = tmp_path / "old.pt"
    torch.save({"model": {"w": torch.ones(2)}, "config": Config(size=5), "best_val": np.float64(1.5)}, old)
    original = old.read_bytes()
    with pytest.raises(ValueError) as err:
        runs.load_checkpoint(old)
    message = str(err.value)
    assert f"{old} is not a plain-data checkpoint" in message and "\n" not in message
    assert f"python -m geomanip.runs convert {old}" in message
    assert old.read_bytes() == original

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt is not a readable checkpoint"):
        runs.load_checkpoint(junk)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        runs.load_checkpoint(tmp_path / "missing.pt")

    new = tmp_path / "new.pt"
    cmd = [sys.executable, "-m", "geomanip.runs", "convert", str(old), "--output", str(new)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)  # ROOT: Config's module
    assert result.returncode == 0, result.stderr
    assert old.read_bytes() == original
    converted = runs.load_checkpoint(new)
    assert converted["config"]["size"] == 5 and converted["best_val"] == 1.5
    torch.testing.assert_close(converted["model"]["w"], torch.ones(2))
    assert runs.main(["convert", str(tmp_path / "missing.pt")]) == 2


def test_runs_imports_no_project_subpackage():
    tree = ast.parse((ROOT / "src" / "geomanip" / "runs.py").read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in modules if m.startswith("geomanip")], modules


@NO_CUDA
@pytest.mark.parametrize("command", [[], ["train"], ["motion"], ["body"]])
def test_the_command_line_says_in_one_line_that_cuda_is_missing(command, tmp_path, capsys):
    from geomanip.cli import main

    out = tmp_path / "run"
    assert main([*command, "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("geomanip: error: --device cuda: CUDA is not available") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("config", ["RLConfig", "MotionConfig", "BodyConfig"])
def test_every_option_of_a_config_parses_from_the_command_line(config):
    # Each field's type, optional ones (default None) included, must turn a typical string into its value.
    import argparse
    import typing

    from geomanip.cli import add_dataclass_args
    from geomanip.motion.body.training import BodyConfig
    from geomanip.motion.training import MotionConfig
    from geomanip.policies.training import RLConfig

    cls = {"RLConfig": RLConfig, "MotionConfig": MotionConfig, "BodyConfig": BodyConfig}[config]
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        literal = next((a for a in [hint, *args] if typing.get_origin(a) is typing.Literal), None)
        if hint is bool:
            continue
        if typing.get_origin(hint) is dict:  # a JSON object
            assert getattr(parser.parse_args([f"--{f.name.replace('_', '-')}", '{"a": 1}']), f.name) == {"a": 1}
            continue
        plain = {int: "3", float: "0.5", str: "x"}
        value = typing.get_args(literal)[-1] if literal else plain[args[0] if args else hint]
        parsed = getattr(parser.parse_args([f"--{f.name.replace('_', '-')}", str(value)]), f.name)
        assert str(parsed) == str(value) or parsed == type(parsed)(value), (f.name, parsed)
    if cls is RLConfig:
        assert parser.parse_args(["--critic", "deepsets"]).critic == "deepsets"
        with pytest.raises(SystemExit):
            parser.parse_args(["--critic", "bogus"])
