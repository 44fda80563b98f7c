"""`fmnist-tui export RUN --format onnx|torchscript`: a run's model as one file to use without fmnist-tui."""

from __future__ import annotations

import math
import sys

from fmnist_tui.cli.inflight import find_run, take_run
from fmnist_tui.cli.output import engine_warnings, error, print_json
from fmnist_tui.files import DiskFull
from fmnist_tui.format import epoch_number, printable

EXIT_CHECK_FAILED = 1

USAGE = {
    "onnx": ("import numpy as np, onnxruntime",
             'session = onnxruntime.InferenceSession("{path}")',
             'logits = session.run(None, {{"images": images.astype(np.float32)[:, None] / 255}})[0]'
             "  # images: (N, 28, 28) uint8"),
    "torchscript": ("import torch",
                    'model = torch.jit.load("{path}").eval()',
                    "logits = model(images.float().unsqueeze(1) / 255)  # images: (N, 28, 28) uint8 tensor"),
}  # fmt: skip


def cmd_export(args) -> int:
    info = find_run(args.runs_dir, args.run)  # an unknown run is said at once, before torch loads
    run_dir = take_run(info, "exported")  # the file goes into its folder; its checkpoint must not change meanwhile
    try:
        return export_locked(args, info)
    finally:
        run_dir.unlock()


def export_locked(args, info) -> int:
    from fmnist_tui.engine.export import CheckFailed, ExportError, export_run, file_name
    from fmnist_tui.engine.idx import DataError

    target = info.path / file_name(args.checkpoint, args.format)

    try:
        with engine_warnings():
            result = export_run(info.path, args.checkpoint, args.format, args.data_dir)
    except CheckFailed as err:
        error(str(err))
        return EXIT_CHECK_FAILED
    except (ExportError, DataError) as err:
        return error(str(err))
    except DiskFull:
        return error(f"{printable(target.name)} not written: the disk holding {printable(info.path)} is full")
    except OSError as err:
        return error(f"{printable(target.name)} not written in {printable(info.path)}: {err.strerror or err}")
    except KeyboardInterrupt:
        error(f"interrupted: {printable(target.name)} not written")
        return 130
    if args.json:
        print_json(as_json(info.name, result))
    else:
        print_summary(info.name, result)
    return 0


def as_json(run: str, result) -> dict:
    return {
        "run": run, "file": str(result.path), "format": result.format, "bytes": result.size,
        "opset": result.opset, "checkpoint": result.checkpoint, "epoch": result.epoch, "step": result.step,
        "model": result.model,
        "input": {"shape": ["N", 1, 28, 28], "dtype": "float32", "scale": "pixel / 255, in [0, 1]",
                  "name": "images" if result.format == "onnx" else None},
        "inside": {"mean": result.mean, "std": result.std, "tta_flip": result.tta_flip},
        "output": {"shape": ["N", 10], "what": "logits"},
        "check": {"images": result.checked, "agree": result.agree,
                  "max_abs_logit_diff": None if not result.checked else result.max_diff,
                  "runtime": result.runtime or None, "skipped": result.skipped or None},
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }  # fmt: skip


def print_summary(run: str, result) -> None:
    epoch = epoch_number(result.epoch)
    what = "ONNX" + (f" opset {result.opset}" if result.opset else "") if result.format == "onnx" else "TorchScript"
    print(f"wrote {printable(result.path)} ({size(result.size)}, {what})")
    print(f"  weights: run {printable(run)}, {result.checkpoint}" + (f" (epoch {epoch}, step {result.step})" if epoch else "")
          + f", model {result.model}")  # fmt: skip
    inside = (
        f"normalised inside (mean {result.mean:.4f}, std {result.std:.4f})"
        if result.mean or result.std != 1
        else "not normalised"
    )
    print(f"  input: (N, 1, 28, 28) float32 pixels / 255, {inside}"
          + (", logits averaged with the mirror image" if result.tta_flip else "") + "; output: (N, 10) logits")  # fmt: skip
    if result.checked:
        diff = f"{result.max_diff:.1e}" if math.isfinite(result.max_diff) else "inf"
        print(f"  check: {result.agree}/{result.checked} predictions agree with the checkpoint, "
              f"max |Δlogit| {diff} ({result.runtime})")  # fmt: skip
    else:
        print(f"  check: skipped: {result.skipped}")
    seconds = result.seconds
    print(f"  time: {sum(seconds.values()):.1f} s (load {seconds.get('load', 0):.1f}, "
          f"export {seconds.get('export', 0):.1f}, check {seconds.get('check', 0):.1f})")  # fmt: skip
    print("load it without fmnist-tui:")
    for line in USAGE[result.format]:
        print("  " + line.format(path=printable(result.path).replace("\\", "\\\\").replace('"', '\\"')))
    sys.stdout.flush()


def size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
