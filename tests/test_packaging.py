"""The wheel carries the presets, so a non-editable install lists them from any folder."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_presets_and_the_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)  # fmt: skip
    wheel = next(tmp_path.glob("fmnist_tui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    presets = {Path(n).name for n in names if n.startswith("fmnist_tui/presets/")}
    assert {p.name for p in (ROOT / "presets").glob("*.toml")} == presets
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "fmnist-tui = fmnist_tui.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
    # what the app reads beside its code: its style sheet, and the page `serve` sends the browser
    assert {"fmnist_tui/tui/app.tcss", "fmnist_tui/tui/page/app_index.html"} <= set(names)
