"""DataTable of per-epoch metrics."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable

from fmnist_tui.format import num, pct, sci, secs
from fmnist_tui.tui.epochs import EpochRow

COLUMNS = ("Epoch", "Train loss", "Val loss", "Val acc", "LR", "Time")


class EpochTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.add_columns(*COLUMNS)

    def add_epoch(self, row: EpochRow) -> None:
        cells = (
            Text(str(row.epoch + 1), justify="right"), Text(num(row.train_loss), justify="right"),
            Text(num(row.val_loss), justify="right"), Text(pct(row.val_acc), justify="right"),
            Text(sci(row.lr), justify="right"), Text(secs(row.seconds), justify="right"),
        )  # fmt: skip
        self.add_row(*cells)
        self.move_cursor(row=self.row_count - 1)  # follow the newest epoch

    def set_epochs(self, rows: Iterable[EpochRow]) -> None:
        self.clear()
        for row in rows:
            self.add_epoch(row)
