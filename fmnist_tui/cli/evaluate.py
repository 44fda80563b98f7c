"""`fmnist-tui eval RUN`: the confusion matrix, per-class scores and mistakes of a run's checkpoint."""

from __future__ import annotations

import sys
import time

from fmnist_tui.cli.inflight import find_run, take_run
from fmnist_tui.cli.output import engine_warnings, error, print_json, warn
from fmnist_tui.evaluation import FILE, confusion_text
from fmnist_tui.files import DiskFull
from fmnist_tui.format import epoch_number, pct, printable


def cmd_eval(args) -> int:
    from fmnist_tui.engine.evaluation import evaluate_run
    from fmnist_tui.engine.idx import DataError

    info = find_run(args.runs_dir, args.run)
    run_dir = take_run(info, "evaluated")  # evaluation.json is part of the run's record: one writer at a time

    started = time.perf_counter()
    try:
        with engine_warnings():
            evaluation, note = evaluate_run(info.path, args.checkpoint, args.data_dir)
    except DataError as err:
        return error(str(err))
    except DiskFull:
        return error(f"{FILE} not written: the disk holding {printable(info.path)} is full")
    except OSError as err:
        return error(f"{FILE} not written in {printable(info.path)}: {err.strerror or err}")
    finally:
        run_dir.unlock()
    if note:
        warn(note)
    if args.json:
        print_json(evaluation.model_dump())
        return 0
    epoch = epoch_number(evaluation.epoch)
    print(f"{info.name}: {evaluation.checkpoint}" + (f" (epoch {epoch}, step {evaluation.step})" if epoch else ""))
    print(f"test accuracy {pct(evaluation.accuracy)}  loss {evaluation.loss:.4f}  "
          f"on {evaluation.images:,} images, {len(evaluation.misclassified):,} misclassified")  # fmt: skip
    print(f"{evaluation.seconds:.2f} s to evaluate, {time.perf_counter() - started:.2f} s in all")
    print()
    print(confusion_text(evaluation))
    print(f"\nwritten: {printable(info.path / FILE)}", file=sys.stderr)
    return 0
