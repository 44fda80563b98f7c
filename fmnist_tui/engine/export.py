"""A run's checkpoint as one file that needs neither this package nor Lightning: ONNX or TorchScript.

The file takes what a camera or an IDX file gives, pixels scaled to [0, 1] as (N, 1, 28, 28)
float32, and returns (N, 10) logits: the run's normalisation and its flip averaging are inside
the model, so a user cannot forget them. Nothing is written until the exported bytes have
given the checkpoint's predictions on the first 1,000 test images, and then atomically.

ONNX goes through torch's torch.export-based exporter (`dynamo=True`, the default since 2.9;
the TorchScript-based one warns that it will be removed). It needs onnx and onnxscript, and
took 1.6-3.7 s here for each of the four networks; onnxruntime, when present, runs the check.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fmnist_tui import paths
from fmnist_tui.files import leftovers, write_atomic
from fmnist_tui.format import failure_text, printable

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
CHECK_IMAGES = 1000
MAX_DIFF = 1e-3  # logits further apart than this are a wrong export even when the top class agrees
INSTALL = "pip install 'fmnist-tui[export]'"


class ExportError(RuntimeError):
    """The export cannot be made; the message is one line for the user."""


class CheckFailed(ExportError):
    """The exported model does not predict what the checkpoint predicts: nothing was written."""


@dataclass
class Exported:
    path: Path
    format: str
    size: int  # bytes
    checkpoint: str  # best.ckpt or last.ckpt
    epoch: int
    step: int
    model: str
    mean: float  # subtracted from the [0, 1] pixels inside the model (0 when not normalised)
    std: float
    tta_flip: bool
    checked: int = 0  # test images compared with the checkpoint (0: the check was skipped)
    agree: int = 0
    max_diff: float = math.nan  # the largest |exported logit - checkpoint logit|
    skipped: str = ""  # why the check did not run
    runtime: str = ""  # what ran the exported file for the check
    opset: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class Pixels(nn.Module):
    """The run's network behind its own test-time input handling (FashionData._prepare and
    Classifier.predict_logits): normalise, then average the logits of the image and its mirror."""

    def __init__(self, net: nn.Module, mean: float, std: float, flip: bool):
        super().__init__()
        self.net, self.mean, self.std, self.flip = net, float(mean), float(std), bool(flip)
        self.normalize = bool(self.mean or self.std != 1.0)  # as FashionData._prepare decides

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = (x - self.mean) / self.std
        logits = self.net(x).float()
        if self.flip:
            logits = (logits + self.net(x.flip(-1)).float()) / 2
        return logits


def file_name(which: str, fmt: str) -> str:
    return f"model-{which}{FORMATS[fmt]}"


def export_run(run: Path, which: str, fmt: str, data_dir: str | Path | None = None) -> Exported:
    """Write <run>/model-<which>.<format> from checkpoints/<which>.ckpt once it has passed the check.

    RunStoreError: no, corrupt or mismatched checkpoint; DataError: no test images; ExportError:
    the exporter is missing or failed; CheckFailed: predictions differ; OSError/DiskFull: writing.
    The caller holds the run's writer lock."""
    from fmnist_tui.engine import weights
    from fmnist_tui.engine.data import FashionData
    from fmnist_tui.engine.module import Classifier

    if fmt not in FORMATS:
        raise ExportError(f"--format {printable(fmt)}: choose onnx or torchscript")
    if fmt == "onnx":
        need_onnx_exporter()  # before seconds of loading, not after
    started = time.perf_counter()
    loaded = weights.load(run, which)
    config = loaded.config
    data = FashionData(config, Path(data_dir or config.data_dir or paths.data_dir()))
    images = data.splits()["test_x"][:CHECK_IMAGES]  # DataError: missing or damaged test files
    classifier = loaded.module
    assert isinstance(classifier, Classifier)
    model = Pixels(classifier.net, data.mean, data.std, config.tta_flip).eval()
    pixels = images.unsqueeze(1).float() / 255  # what the file's users are told to feed it
    with torch.no_grad():
        reference = classifier.predict_logits(data._prepare(train=False)(images))  # the test pass's own input
    seconds = {"load": time.perf_counter() - started}

    started = time.perf_counter()
    if fmt == "onnx":
        blob, opset = onnx_bytes(model, pixels[:2])
    else:
        blob, opset = torchscript_bytes(model, pixels[:2]), None
    seconds["export"] = time.perf_counter() - started

    path = run / file_name(which, fmt)
    result = Exported(path, fmt, len(blob), loaded.label, loaded.epoch, loaded.step, config.model, model.mean,
                      model.std, model.flip, opset=opset, seconds=seconds)  # fmt: skip
    started = time.perf_counter()
    try:
        outputs = run_onnx(blob, pixels, result) if fmt == "onnx" else run_torchscript(blob, pixels, result)
        if outputs is not None:
            compare(outputs, reference, result)
    except CheckFailed as err:
        raise CheckFailed(f"{err}; nothing written{forget(path)}") from None
    seconds["check"] = time.perf_counter() - started
    if result.checked and (result.agree < result.checked or not result.max_diff <= MAX_DIFF):
        why = (f"{result.checked - result.agree} of {result.checked} predictions differ from the checkpoint's"
               if result.agree < result.checked else f"the logits differ by more than {MAX_DIFF:g}")  # fmt: skip
        raise CheckFailed(f"the exported {fmt} model failed its check: {why} (max |Δlogit| {result.max_diff:.2g}); "
                          f"nothing written{forget(path)}")  # fmt: skip
    clear_leftovers(path)
    write_atomic(path, blob)
    return result


def need_onnx_exporter() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs the {err.name or 'onnx'} package, which is not installed: "
                          f"{INSTALL} (or use --format torchscript)") from None  # fmt: skip


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> tuple[bytes, int | None]:
    """The model as one self-contained .onnx (weights inside, not in a .onnx.data beside it), batch dynamic."""
    need_onnx_exporter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), None, dynamo=True, verbose=False, external_data=False,
                                        input_names=["images"], output_names=["logits"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
        assert program is not None
        proto = program.model_proto
        blob = proto.SerializeToString()
    except ImportError as err:  # an onnxscript older than this torch's exporter expects
        raise ExportError(f"ONNX export failed: {first_line(err)}: pip install -U 'fmnist-tui[export]'") from None
    except Exception as err:  # noqa: BLE001 - whatever the exporter meets, one line for the user
        raise ExportError(f"ONNX export failed: {first_line(err)}") from None
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    return blob, (opsets[0] if opsets else None)


def torchscript_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """A traced TorchScript module: code and weights in one zip that torch.jit.load opens alone.
    (torch 2.14 marks torch.jit as deprecated in favour of torch.export; it still loads everywhere.)"""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, buffer)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"TorchScript export failed: {first_line(err)}") from None
    return buffer.getvalue()


def run_torchscript(blob: bytes, pixels: torch.Tensor, result: Exported) -> list[torch.Tensor]:
    """The saved bytes loaded back as a user would, on the whole batch and on one image (a dynamic batch)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(io.BytesIO(blob), map_location="cpu")
        result.runtime = f"torch.jit.load, torch {torch.__version__}"
        return [loaded(pixels), loaded(pixels[:1])]


def run_onnx(blob: bytes, pixels: torch.Tensor, result: Exported) -> list[torch.Tensor] | None:
    try:
        import onnxruntime
    except ImportError:
        result.skipped = f"onnxruntime is not installed ({INSTALL} to check ONNX exports)"
        return None
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings would go straight to stderr
        session = onnxruntime.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        outputs = [session.run(None, {"images": x.numpy()})[0] for x in (pixels, pixels[:1])]
    except Exception as err:  # noqa: BLE001 - a file onnxruntime cannot run is a failed export
        raise CheckFailed(f"onnxruntime cannot run the exported model: {first_line(err)}") from None
    result.runtime = f"onnxruntime {onnxruntime.__version__}"
    return [torch.from_numpy(out) for out in outputs]


def compare(outputs: list[torch.Tensor], reference: torch.Tensor, result: Exported) -> None:
    whole, one = outputs
    if tuple(whole.shape) != tuple(reference.shape) or tuple(one.shape) != (1, reference.shape[1]):
        raise CheckFailed(f"the exported model gives logits of shape {tuple(whole.shape)} and "
                          f"{tuple(one.shape)}, not {tuple(reference.shape)} and (1, 10)")  # fmt: skip
    whole = whole.float()
    result.checked = len(reference)
    result.agree = int((whole.argmax(1) == reference.argmax(1)).sum())
    diffs = torch.cat([(whole - reference).abs().flatten(), (one.float() - reference[:1]).abs().flatten()])
    result.max_diff = float(diffs.max()) if diffs.numel() else 0.0
    if not math.isfinite(result.max_diff):
        result.max_diff = math.inf


def forget(path: Path) -> str:
    """An earlier export under the same name no longer stands for what this checkpoint predicts."""
    try:
        if path.is_file():
            path.unlink()
            return f", and {path.name} from an earlier export removed"
    except OSError:
        return f"; {printable(path.name)} from an earlier export is still there"
    return ""


def clear_leftovers(path: Path) -> None:
    """What an export killed mid-write left: ours to remove, since the caller holds the run's writer lock."""
    for leftover in leftovers(path):
        try:
            leftover.unlink()
        except OSError:
            pass


def first_line(err: BaseException) -> str:
    return printable(failure_text(err))[:300]
