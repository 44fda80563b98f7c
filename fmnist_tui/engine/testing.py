"""The test at a run's end: best.ckpt's weights, and the final weights too when they differ.
The test of the weights the run is known by also writes evaluation.json (engine/evaluation.py)."""

from __future__ import annotations

import time
from pathlib import Path

from fmnist_tui.metrics import MetricsWriter


def test_pass(trainer, module, data, metrics: MetricsWriter, ckpt_path: str | None, weights: str, epoch: int,
              step: int, run: Path | None):  # fmt: skip
    """One test of `weights` ("best" or "last"): its metrics.csv row, and evaluation.json in `run` (the first
    process) from the same pass. Returns the module's TestResult."""
    from fmnist_tui.engine import evaluation

    started = time.perf_counter()
    trainer.test(module, datamodule=data, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    result = module.test_result  # the run's figure and evaluation.json, one pass
    seconds = round(time.perf_counter() - started, 3)
    metrics.row("test", epoch=epoch, step=step, test_loss=result.loss, test_acc=result.accuracy, seconds=seconds,
                weights=weights)  # fmt: skip
    if run is not None and trainer.is_global_zero:
        evaluation.write_at_end(run, module, data, f"{weights}.ckpt", epoch, step, seconds)
    return result


def measure_test(trainer, module, data, checkpoints, metrics: MetricsWriter, run: Path | None = None) -> dict:
    """Test best.ckpt's weights, and the final weights too when they are not the same.
    Each figure is labelled with the epoch and step the tested file itself records.
    Under DDP the first process decides which files, and every process tests them.
    The first process writes evaluation.json into `run` from the test of the figure reported."""
    from fmnist_tui.engine.checkpoint import read_point
    from fmnist_tui.runs import RunStoreError

    final_epoch, final_step = trainer.current_epoch - 1, trainer.global_step
    distributed = trainer.world_size > 1

    def test(weights: str, epoch: int, step: int, ckpt_path: str | None = None, evaluate: bool = True):
        if distributed and ckpt_path is None:  # the others' batch-norm statistics are not quite the saved ones
            ckpt_path = str(checkpoints.last)
        result = test_pass(trainer, module, data, metrics, ckpt_path, weights, epoch, step, run if evaluate else None)
        return result.accuracy, result.loss

    best = None  # (epoch, step) of best.ckpt, as the file itself records them
    if trainer.is_global_zero and checkpoints.best_step is not None:
        try:
            point = read_point(checkpoints.best)
            best = (point.epoch, point.step)
        except RunStoreError:
            pass
    if distributed:  # the first process's choice and files (the others' folders are scratch)
        best, best_path, last_path = trainer.strategy.broadcast(
            (best, str(checkpoints.best), str(checkpoints.last)), src=0
        )
        checkpoints.best, checkpoints.last = Path(best_path), Path(last_path)
    end: dict = {"status": "finished"}
    if best is None:  # no epoch was validated (or best.ckpt is gone): only the final weights
        acc, loss = test("last", final_epoch, final_step)
        end.update(
            test_checkpoint="last.ckpt", test_epoch=final_epoch, test_step=final_step, checkpoint=str(checkpoints.last)
        )
    else:
        best_epoch, best_step = best
        if best_step != final_step:  # the weights in memory are last.ckpt's; best.ckpt is loaded next
            last_acc, last_loss = test("last", final_epoch, final_step, evaluate=False)
            end.update(
                last_test_acc=last_acc, last_test_loss=last_loss, last_test_epoch=final_epoch, last_test_step=final_step
            )
            acc, loss = test("best", best_epoch, best_step, str(checkpoints.best))
        else:
            acc, loss = test("best", best_epoch, best_step)
        end.update(
            test_checkpoint="best.ckpt", test_epoch=best_epoch, test_step=best_step, checkpoint=str(checkpoints.best)
        )
    end.update(test_acc=acc, test_loss=loss)
    return end


def evaluate_stopped(trainer, module, data, checkpoints, reporter, metrics: MetricsWriter, run: Path | None) -> dict:
    """A run its user stopped is tested too: best.ckpt, or last.ckpt (saved at the stop) when no
    epoch was validated. Its figures go where a finished run's do (summary, metrics.csv,
    evaluation.json), naming the file. Every DDP process stopped at the same step, so all test here."""
    from fmnist_tui.engine.checkpoint import read_point
    from fmnist_tui.runs import RunStoreError

    path = checkpoints.best if checkpoints.best_step is not None and checkpoints.best.is_file() else checkpoints.last
    if trainer.world_size > 1:
        path = Path(trainer.strategy.broadcast(str(path), src=0))
    if not path.is_file():
        return {}
    try:
        point = read_point(path)
    except RunStoreError:
        return {}
    reporter.stop_checks = False  # the stop was asked for already: the test must not stop itself
    result = test_pass(trainer, module, data, metrics, str(path), path.stem, point.epoch, point.step, run)
    return dict(test_acc=result.accuracy, test_loss=result.loss, test_checkpoint=path.name, test_epoch=point.epoch,
                test_step=point.step)  # fmt: skip
