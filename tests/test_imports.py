"""Layering: the core never imports textual; config, runs and events import no torch."""

import subprocess
import sys

import pytest


def loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["fmnist_tui.config", "fmnist_tui.presets", "fmnist_tui.runs", "fmnist_tui.metrics",
                                    "fmnist_tui.files", "fmnist_tui.format", "fmnist_tui.engine.events",
                                    "fmnist_tui.engine.stop", "fmnist_tui.cli.main", "fmnist_tui.cli.inflight",
                                    "fmnist_tui.follow", "fmnist_tui.background", "fmnist_tui.engine.eventlog",
                                    "fmnist_tui.engine.control", "fmnist_tui.settings"])  # fmt: skip
def test_light_modules_import_neither_torch_nor_textual(module):
    assert not {"torch", "textual", "pytorch_lightning"} & loaded_after(module)


ENGINE = ["fmnist_tui.engine.runner", "fmnist_tui.engine.data", "fmnist_tui.engine.segment",
          "fmnist_tui.engine.checkpoint", "fmnist_tui.host", "fmnist_tui.cli.headless"]  # fmt: skip


def test_engine_never_imports_textual():
    # One process for all of them: each import of torch takes seconds. (If it fails, try them one by one.)
    assert "textual" not in loaded_after(", ".join(ENGINE))
