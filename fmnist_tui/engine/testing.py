"""The test at a run's end: best.ckpt's weights, and the final weights too when they differ."""

from __future__ import annotations

import time
from pathlib import Path

from fmnist_tui.metrics import MetricsWriter


def measure_test(trainer, module, data, checkpoints, metrics: MetricsWriter) -> dict:
    """Test best.ckpt's weights, and the final weights too when they are not the same.
    Each figure is labelled with the epoch and step the tested file itself records.
    Under DDP the first process decides which files, and every process tests them."""
    from fmnist_tui.engine.checkpoint import read_point
    from fmnist_tui.runs import RunStoreError

    final_epoch, final_step = trainer.current_epoch - 1, trainer.global_step
    distributed = trainer.world_size > 1

    def test(weights: str, epoch: int, step: int, ckpt_path: str | None = None) -> tuple[float, float]:
        started = time.perf_counter()
        if distributed and ckpt_path is None:  # the others' batch-norm statistics are not quite the saved ones
            ckpt_path = str(checkpoints.last)
        trainer.test(module, datamodule=data, ckpt_path=ckpt_path, verbose=False, weights_only=True)
        acc, loss = float(trainer.callback_metrics["test_acc"]), float(trainer.callback_metrics["test_loss"])
        metrics.row("test", epoch=epoch, step=step, test_loss=loss, test_acc=acc,
                    seconds=round(time.perf_counter() - started, 3), weights=weights)  # fmt: skip
        return acc, loss

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
            last_acc, last_loss = test("last", final_epoch, final_step)
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
