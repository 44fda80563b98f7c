"""Background runs: the headless engine in a process of its own, detached from any terminal.

`start(job)` (or `launch` then `wait`) launches `python -m fmnist_tui.cli.background` in a new session (no controlling
terminal, so no hang-up reaches it), hands it the job as JSON on its stdin, and waits for
one line on its stdout: the run's folder once the run is locked and its own, or why it
was refused. The process then writes its output to `run.log` in the run folder and its
events to `events.jsonl`, serves the run's controls, and ignores SIGHUP; SIGTERM ends the
run as `interrupted` and Ctrl-C (SIGINT) as `stopped`, checkpoint saved, as for `run`.

Until the run has a folder, the process's stderr goes to a file of its own in the runs
folder, so a crash at start is reported by `start`, not lost. No torch here, no textual.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from fmnist_tui import paths
from fmnist_tui.cards import LAUNCHED_BY
from fmnist_tui.format import printable
from fmnist_tui.runs import RunStore

LOG = "run.log"
START_TIMEOUT_S = 120.0  # torch's import, the lock of a run being handed over, the resume's checks


class BackgroundError(Exception):
    """The background run did not start: one line; `code` 2 when it refused the input."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Job:
    """What the background process runs: a new run of `config`, or more of run `resume`."""

    config: dict[str, Any] | None = None
    resume: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    runs_dir: str | None = None
    data_dir: str | None = None
    handover: bool = False  # takes over a run an app hands over: waits for its lock, acts only if handed over
    progress_every: float | None = None
    verbose: bool = False
    cpu_threads: int | None = None  # torch's threads (the scheduler shares the cores among its slots)
    env: dict[str, str] = field(default_factory=dict)  # set before anything loads on a device: CUDA_VISIBLE_DEVICES
    queue_id: int | None = None  # the queue entry it runs (runqueue.py): it holds its launch lock, records its run
    launch: str = ""  # the token the entry must still carry for this process to run it
    tag: str = ""  # ends the run folder's name: a sweep's point
    record: dict[str, Any] = field(default_factory=dict)  # extra summary.json fields: the queue entry, the sweep


@dataclass
class Started:
    run_path: Path
    pid: int


class Launched:
    """A background process on its way: `wait_ready` for its imports to be done (it is about to take
    the run's lock), `wait` for it to hold its run."""

    def __init__(self, proc: subprocess.Popen, early: Path):
        self.proc, self.early = proc, early
        self._buffer = b""

    def send(self, job: Job) -> None:
        """The job of a process launched without one (it waits with torch imported: a start in no time)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(asdict(job)).encode() + b"\n")
            self.proc.stdin.close()
        except OSError:
            pass  # it has died: `wait` says so

    def _reply(self, timeout_s: float) -> dict:
        """The next line the process answers, as JSON ({} when it ended or said nothing in time)."""
        assert self.proc.stdout is not None
        line, self._buffer = _read_line(self.proc.stdout, timeout_s, self._buffer)
        try:
            reply = json.loads(line) if line else {}
        except ValueError:
            reply = {}
        return reply if isinstance(reply, dict) else {}

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        reply = self._reply(timeout_s)
        if not reply.get("ready"):
            self._fail(reply)

    def wait(self, timeout_s: float = START_TIMEOUT_S) -> Started:
        """The run's folder once the process holds it; BackgroundError if it could not start."""
        reply = self._reply(timeout_s)
        if reply.get("ready"):
            reply = self._reply(timeout_s)
        if "run_dir" not in reply:
            self._fail(reply)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return Started(Path(reply["run_dir"]), self.proc.pid)

    def _fail(self, reply: dict) -> NoReturn:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # too slow, or it said something else: it must not start the run later
        tail = _tail(self.early)
        self.early.unlink(missing_ok=True)
        if "error" in reply:
            raise BackgroundError(str(reply["error"]), int(reply.get("code", 1)))
        raise BackgroundError(f"the background run ended before it started{': ' + tail if tail else ''}")


def launch(job: Job | None, runs_dir: str | None = None, on_exit: Callable[[], None] | None = None) -> Launched:
    """Start the background process for `job` (RunStoreError if the runs folder is not writable).
    With no job it imports torch and waits for one (`Launched.send`); `on_exit` is called when it ends."""
    root = paths.runs_dir(job.runs_dir if job else runs_dir)
    RunStore(root).check_writable()  # one line, before any process starts
    early = root / f".background-{uuid.uuid4().hex[:12]}.log"
    log_fd = os.open(early, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        proc = subprocess.Popen(
            # -P: the installed package, never a fmnist_tui/ folder in the working directory
            [sys.executable, "-P", "-m", "fmnist_tui.cli.background", str(early)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fd, start_new_session=True,
            # The command a person typed (or the scheduler's), for the run's card: the process's own is ours.
            env={**os.environ, "PYTHONUNBUFFERED": "1",
                 LAUNCHED_BY: shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])},
        )  # fmt: skip
    finally:
        os.close(log_fd)
    launched = Launched(proc, early)
    if job is not None:
        launched.send(job)

    def reap() -> None:  # no zombie left behind
        proc.wait()
        if on_exit is not None:
            on_exit()

    threading.Thread(target=reap, name="fmnist-reap", daemon=True).start()
    return launched


def start(job: Job, timeout_s: float = START_TIMEOUT_S) -> Started:
    """Launch the job and return once it holds its run (BackgroundError if it could not)."""
    return launch(job).wait(timeout_s)


def _read_line(stream, timeout_s: float, data: bytes) -> tuple[bytes, bytes]:
    """(the next line, what was read after it)."""
    deadline = time.monotonic() + timeout_s
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return printable(" / ".join(text[-lines:]))
