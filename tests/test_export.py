"""`fmnist-tui export`: files that work without fmnist-tui, and one line for everything that goes wrong.

One tiny run (synthetic data, one epoch) is trained for the whole module; tests that damage
it work on a copy.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fmnist_tui.cli.main import main
from fmnist_tui.config import make_config
from tests.conftest import TINY

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

# The README's way of loading a TorchScript file, with fmnist_tui and Lightning made unimportable.
# (An ONNX file holds no Python to import; onnxruntime reads it in the test itself.)
STANDALONE = """
import sys
sys.modules["fmnist_tui"] = sys.modules["pytorch_lightning"] = None
import numpy as np, torch
images = torch.from_numpy(np.load(sys.argv[2]))
model = torch.jit.load(sys.argv[1]).eval()
logits = model(images.float().unsqueeze(1) / 255)
print(",".join(str(int(i)) for i in logits.argmax(1)))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run: checkpoints/best.ckpt and last.ckpt of an MLP on synthetic images."""
    from fmnist_tui.engine.runner import run

    home = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:  # the per-test isolation is not in place yet at module scope
        for var in ("PRESETS_DIR", "DATA_DIR", "SETTINGS"):
            mp.setenv(f"FMNIST_TUI_{var}", str(home / var.lower()))
        end = run(make_config({**TINY, "epochs": 1}), lambda e: None, runs_dir=home / "runs")
    assert end.status == "finished"
    return Path(end.run_dir)


@pytest.fixture
def copy(trained, tmp_path):
    """A run of its own to damage."""
    path = tmp_path / "runs" / trained.name
    shutil.copytree(trained, path, ignore=shutil.ignore_patterns("model-*"))
    return path


def export(run: Path, *args: str) -> int:
    return main(["--runs-dir", str(run.parent), "export", run.name, *args])


def reference(run: Path, which: str = "best") -> tuple[torch.Tensor, torch.Tensor]:
    """The test images and the checkpoint's own logits for them (the run's test-time path)."""
    from fmnist_tui.engine import weights
    from fmnist_tui.engine.data import FashionData

    loaded = weights.load(run, which)
    data = FashionData(loaded.config, run)
    images = data.splits()["test_x"]
    with torch.no_grad():
        return images, loaded.module.predict_logits(data._prepare(train=False)(images))  # type: ignore[attr-defined]


def one_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmnist-tui: error: "), err
    return lines[0]


def standalone(path: Path, images: torch.Tensor, tmp_path: Path) -> list[int]:
    import numpy as np

    np.save(tmp_path / "images.npy", images.numpy())
    result = subprocess.run([sys.executable, "-c", STANDALONE, str(path), str(tmp_path / "images.npy")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [int(i) for i in result.stdout.strip().split(",")]


def test_torchscript_round_trip(trained, capsys, tmp_path):
    assert export(trained, "--format", "torchscript") == 0
    out = capsys.readouterr().out
    path = trained / "model-best.torchscript.pt"
    assert f"wrote {path}" in out and "66/66 predictions agree" in out and "torch.jit.load" in out
    images, logits = reference(trained)
    model = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        for batch in (images, images[:1]):  # any batch size
            assert torch.allclose(model(batch.float().unsqueeze(1) / 255), logits[: len(batch)], atol=1e-4)
    assert standalone(path, images, tmp_path) == logits.argmax(1).tolist()
    assert not list(trained.glob(".model-*"))  # no temporary file left behind


def test_onnx_round_trip(trained, capsys):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'fmnist-tui[export]'")
    assert export(trained, "--format", "onnx", "--checkpoint", "last", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    path = trained / "model-last.onnx"
    assert report["file"] == str(path) and report["bytes"] == path.stat().st_size
    assert report["check"]["agree"] == report["check"]["images"] == 66 and report["check"]["max_abs_logit_diff"] < 1e-3
    assert not (trained / "model-last.onnx.data").exists()  # the weights are inside the one file
    images, logits = reference(trained, "last")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and session.get_inputs()[0].shape[1:] == [1, 28, 28]
    for batch in (images, images[:1]):
        out = session.run(None, {"images": (batch.float().unsqueeze(1) / 255).numpy()})[0]
        assert torch.allclose(torch.from_numpy(out), logits[: len(batch)], atol=1e-4)


def test_flip_averaging_and_normalisation_are_inside(copy):
    """tta_flip changes no weights, so a copy told to use it exports the averaged logits."""
    from fmnist_tui.engine.export import export_run

    config = copy / "config.toml"
    config.write_text(config.read_text().replace("tta_flip = false", "tta_flip = true"))
    result = export_run(copy, "best", "torchscript")
    assert result.tta_flip and result.mean > 0 and result.agree == result.checked == 66
    images, logits = reference(copy)
    model = torch.jit.load(str(result.path)).eval()
    with torch.no_grad():
        assert torch.allclose(model(images.float().unsqueeze(1) / 255), logits, atol=1e-4)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: shutil.rmtree(run / "checkpoints"), "has no checkpoint"),
        (lambda run: (run / "checkpoints" / "best.ckpt").write_bytes(b"garbage" * 100), "best.ckpt"),
        (lambda run: (run / "config.toml").write_text((run / "config.toml").read_text().replace('"mlp"', '"cnn"')),
         "does not fit the network config.toml describes, model = 'cnn'"),
    ],
    ids=["no checkpoint", "corrupt checkpoint", "other model"],
)  # fmt: skip
def test_a_bad_checkpoint_is_one_line(copy, capsys, damage, message):
    damage(copy)
    assert export(copy, "--format", "torchscript") == 2
    assert message in one_error(capsys)
    assert not list(copy.glob("model-*"))


def test_unknown_run_is_one_line(copy, capsys):
    assert main(["--runs-dir", str(copy.parent), "export", "nosuchrun", "--format", "onnx"]) == 2
    assert "nosuchrun" in one_error(capsys)


def test_missing_onnx_names_the_extra(copy, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    assert export(copy, "--format", "onnx") == 2
    line = one_error(capsys)
    assert "onnxscript" in line and "pip install 'fmnist-tui[export]'" in line
    assert not list(copy.glob("model-*"))


def test_without_onnxruntime_the_file_is_written_unchecked(copy, capsys, monkeypatch):
    pytest.importorskip("onnxscript", reason="the ONNX exporter is not installed: pip install 'fmnist-tui[export]'")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert export(copy, "--format", "onnx") == 0
    out = capsys.readouterr().out
    assert "check: skipped: onnxruntime is not installed (pip install 'fmnist-tui[export]'" in out
    assert (copy / "model-best.onnx").stat().st_size > 100_000


def test_a_failed_check_writes_nothing_and_removes_an_older_file(copy, capsys, monkeypatch):
    from fmnist_tui.engine import export as engine

    (copy / "model-best.torchscript.pt").write_bytes(b"an earlier export")
    forward = engine.Pixels.forward
    monkeypatch.setattr(engine.Pixels, "forward", lambda self, x: -forward(self, x))
    assert export(copy, "--format", "torchscript") == 1
    line = one_error(capsys)
    assert "of 66 predictions differ from the checkpoint's" in line and "nothing written" in line
    assert not list(copy.glob("*model-*"))


def test_an_onnx_file_onnxruntime_cannot_run_is_not_written(copy, capsys, monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'fmnist-tui[export]'")
    from fmnist_tui.engine import export as engine

    monkeypatch.setattr(engine, "onnx_bytes", lambda model, example: (b"not an onnx model", 20))
    assert export(copy, "--format", "onnx") == 1
    assert "onnxruntime cannot run the exported model" in one_error(capsys)
    assert not list(copy.glob("*model-*"))


def test_a_running_run_is_refused(copy, capsys):
    from fmnist_tui.runs import RunDir

    writer = RunDir(copy)
    writer.lock()
    try:
        assert export(copy, "--format", "torchscript") == 2
    finally:
        writer.unlock()
    assert "is running" in one_error(capsys)


def test_missing_data_is_one_line(copy, capsys, monkeypatch):
    from fmnist_tui.engine import data
    from fmnist_tui.engine.idx import DataError

    def missing(*args):
        raise DataError("Fashion-MNIST is not in /nowhere")

    monkeypatch.setattr(data, "make_synthetic", missing)
    assert export(copy, "--format", "torchscript") == 2
    assert "Fashion-MNIST is not in /nowhere" in one_error(capsys)


def test_a_full_disk_leaves_no_file(copy, capsys, full_disk_at):
    full_disk_at("model-best.torchscript.pt")
    assert export(copy, "--format", "torchscript") == 2
    line = one_error(capsys)
    assert "model-best.torchscript.pt not written: the disk holding" in line and line.endswith("is full")
    assert not list(copy.glob("*model-*"))


def test_a_read_only_folder_is_one_line(copy, capsys, monkeypatch):
    from fmnist_tui.cli import inflight

    monkeypatch.setattr(inflight.os, "access", lambda path, mode: False)  # root ignores chmod; a read-only mount
    assert export(copy, "--format", "onnx") == 2
    assert "is not writable" in one_error(capsys)


def test_interrupted_export_leaves_no_file(copy, capsys, monkeypatch):
    from fmnist_tui import files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)  # Ctrl-C between writing and renaming
    assert export(copy, "--format", "torchscript") == 130
    assert "interrupted" in capsys.readouterr().err
    assert not list(copy.glob("*model-*"))
