"""End to end: the real `fmnist-tui` command in tmux at 80x24, driven by keys as over SSH."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(TMUX is None, reason="tmux is not installed (CI installs it)")]
LOSS = re.compile(r"loss (\d+\.\d+)")


class Tmux:
    """One private tmux server (its own socket), one 80x24 window."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = f"fmnist-e2e-{os.getpid()}-{tmp_path.name}"
        # A shell runs the app and writes its exit status here: tmux itself can leave the
        # dead app unreaped for a while, with no status to read.
        self.exit_file = tmp_path / "exit-status"

    def __call__(self, *args: str) -> str:
        out = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return out.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        shell = f"env {line} {shlex.join(command)}; echo $? > {shlex.quote(str(self.exit_file))}"
        self("new-session", "-d", "-s", "main", "-x", "80", "-y", "24", shell)
        self("set-option", "-t", "main", "remain-on-exit", "on")

    def app_pid(self) -> int:
        """The app's process: the child of the pane's shell (env execs into it)."""
        shell = self.pane("pane_pid")
        out = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True, timeout=10).stdout.split()
        assert len(out) == 1, f"expected one child of the pane shell, got {out}"
        return int(out[0])

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "main")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "main", *keys)

    def pane(self, field: str) -> str:
        return self("display-message", "-p", "-t", "main", f"#{{{field}}}").strip()

    def exit_status(self, timeout: float = 20.0) -> str:
        """The app's exit status once it has ended ("143" would mean killed by SIGTERM)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_file.exists() and self.exit_file.read_text().strip():
                return self.exit_file.read_text().strip()
            time.sleep(0.1)
        raise AssertionError(f"the app did not exit; the screen was:\n{self.screen()}")

    def wait_for(self, test, what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{self.screen()}")

    def close(self) -> None:
        self("kill-server")


@pytest.fixture
def tmux(tmp_path):
    session = Tmux(tmp_path)
    yield session
    session.close()


def fmnist_tui() -> list[str]:
    exe = shutil.which("fmnist-tui", path=os.path.dirname(sys.executable)) or shutil.which("fmnist-tui")
    return [exe] if exe else [sys.executable, "-m", "fmnist_tui"]


def command(presets_dir: Path, runs: Path) -> list[str]:
    return fmnist_tui() + ["--presets-dir", str(presets_dir), "--preset", "long", "--start", "--runs-dir", str(runs),
                   "--set", "dataset=synthetic", "--set", "optimizer=sgd", "--set", "lr=0.01"]  # fmt: skip


def environment(tmp_path: Path) -> dict[str, str]:
    return {"FMNIST_TUI_PRESETS_DIR": str(tmp_path / "user-presets"), "FMNIST_TUI_DATA_DIR": str(tmp_path / "data"),
            "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "")}  # fmt: skip


def summaries(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*/summary.json"))]


def assert_interrupted_with_checkpoint(runs: Path) -> None:
    """A signal ends the run as "interrupted" (not "stopped": nobody asked) with a last.ckpt that loads."""
    import torch

    (folder,) = runs.iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "interrupted", summary
    last = folder / "checkpoints" / "last.ckpt"
    assert last.is_file() and summary["checkpoint"] == str(last)
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["state_dict"] and ckpt["global_step"] > 0


def test_run_stop_restart_and_quit_over_a_terminal(tmux, presets_dir, tmp_path):
    runs = tmp_path / "e2e-runs"
    tmux.start(command(presets_dir, runs), environment(tmp_path))

    first = tmux.wait_for(lambda s: "training" in s and LOSS.search(s), "the first loss", timeout=60)
    loss = LOSS.search(first).group(1)
    changed = tmux.wait_for(lambda s: (m := LOSS.search(s)) and m.group(1) != loss, "the loss to change")
    assert "Epoch" in changed and "img/s" in changed and "ETA" in changed
    # Lightning's own lines ("GPU available: ...") go to the log tab, never over the screen
    assert "GPU available" not in changed and "LOCAL_RANK" not in changed

    tmux.keys("s")  # stop: the run ends within a step and keeps its checkpoint
    tmux.wait_for(lambda s: "stopped" in s, "the run to stop")
    tmux.keys("Right", "Right", "Right")  # the Insight tab: the stopped run's weights on the test images, as pictures
    insight = tmux.wait_for(lambda s: "predicted →" in s and "▀" * 10 in s, "the Insight tab")
    assert "mistakes, most confident first" in insight and re.search(r"\w → [\w/ -]+ \(\d+%\)", insight), insight

    tmux.keys("F2")  # back to the form, start again
    tmux.wait_for(lambda s: "set up a run" in s, "the setup screen")
    tmux.keys("C-r")
    tmux.wait_for(lambda s: "● training" in s and LOSS.search(s), "the second run", timeout=60)

    tmux.keys("q")  # quitting with a run in progress asks first
    tmux.wait_for(lambda s: "stop the run" in s and "keep it running in the background" in s, "the quit question")
    tmux.keys("s")
    assert tmux.exit_status() == "0"

    ended = summaries(runs)
    assert [s["status"] for s in ended] == ["stopped", "stopped"]
    assert all(Path(s["checkpoint"]).is_file() for s in ended)


def test_sigterm_stops_the_run_and_keeps_its_checkpoint(tmux, presets_dir, tmp_path):
    runs = tmp_path / "e2e-runs"
    tmux.start(command(presets_dir, runs), environment(tmp_path))
    tmux.wait_for(lambda s: "training" in s and LOSS.search(s), "training", timeout=60)
    os.kill(tmux.app_pid(), signal.SIGTERM)
    assert tmux.exit_status() == "143"  # 128 + SIGTERM, after a clean stop (not killed mid-step)
    assert_interrupted_with_checkpoint(runs)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped
    except FileNotFoundError:
        return True
    except OSError:
        return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ssh_drop_hands_the_run_to_a_background_process_and_attach_shows_it(tmux, presets_dir, tmp_path):
    """Closing the terminal (SIGHUP): the app saves the run and ends; a background process goes on
    from that checkpoint and finishes the run; `fmnist-tui attach` in a new terminal shows it."""
    from fmnist_tui.metrics import read_rows
    from fmnist_tui.runs import lock_held, read_config

    runs = tmp_path / "e2e-runs"
    tmux.start(command(presets_dir, runs) + ["--set", "epochs=150"], environment(tmp_path))
    tmux.wait_for(lambda s: "training" in s and LOSS.search(s), "training", timeout=60)
    pid = tmux.app_pid()
    (folder,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    waiting = subprocess.Popen([*fmnist_tui(), "wait", str(folder)], stdout=subprocess.PIPE, text=True)
    tmux("kill-server")  # the terminal goes away, as when an SSH connection drops
    deadline = time.monotonic() + 20
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(pid), "the app is still running without a terminal"
    deadline = time.monotonic() + 120
    while json.loads((folder / "summary.json").read_text())["status"] != "finished" or lock_held(folder):
        assert time.monotonic() < deadline, (folder / "summary.json").read_text()
        time.sleep(0.2)
    steps = [int(r["step"]) for r in read_rows(folder / "metrics.csv") if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1)), "each step once: no gap, no repeat across the hand-over"
    assert len([r for r in read_rows(folder / "metrics.csv") if r["kind"] == "epoch"]) == 150
    _, history = read_config(folder)
    assert [h["status_before"] for h in history] == ["interrupted"]  # one hand-over, recorded
    assert "run " in (folder / "run.log").read_text()  # the background process's own output
    assert waiting.wait(timeout=30) == 0, "`wait` followed the run through the hand-over to its end"
    assert waiting.stdout.read().startswith("finished")

    tmux.start(fmnist_tui() + ["attach", folder.name, "--runs-dir", str(runs)], environment(tmp_path))
    screen = tmux.wait_for(lambda s: "finished" in s and "test acc" in s, "the run's record")
    assert "Epoch 150/150" in screen, screen
    tmux.keys("q")
    assert tmux.exit_status() == "0"


def test_broken_presets_and_bytes_that_are_not_utf8(tmux, presets_dir, tmp_path):
    """The app starts with broken preset files listed, and survives a byte that is not UTF-8
    (a Latin-1 terminal's "é"): Textual's strict decoder used to kill it (see tui/terminal.py)."""
    (presets_dir / "syntax.toml").write_text('name = "syntax"\ndescription = "x"\nepochs = = 3\n')
    (presets_dir / "a-folder.toml").mkdir()
    (presets_dir / "latin1.toml").write_bytes(b'name = "latin1"\ndescription = "caf\xe9"\n')
    tmux.start(fmnist_tui() + ["--presets-dir", str(presets_dir), "--preset", "tiny"], environment(tmp_path))
    screen = tmux.wait_for(lambda s: "preset files not" in s, "the preset errors", timeout=30)
    assert "3 preset files" in screen and "tiny" in screen
    tmux.keys("Tab", "Tab", "Tab")  # preset list -> its error list -> the form -> the name field
    time.sleep(0.5)
    # "é!" from a terminal set to Latin-1: 0xE9 could start a UTF-8 sequence, so the decoder
    # holds it until the next byte shows it cannot
    tmux("send-keys", "-t", "main", "-H", "e9")
    tmux("send-keys", "-t", "main", "-l", "!")
    tmux.wait_for(lambda s: "not valid UTF-8" in s and "tiny\ufffd!" in s, "the error at the name field")
    tmux.keys("BSpace", "BSpace")
    tmux.wait_for(lambda s: "not valid UTF-8" not in s and "ready" in s, "the field to be fixed")
    tmux.keys("C-q")
    assert tmux.exit_status() == "0"
