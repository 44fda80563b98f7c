"""The background run's own process (started by fmnist_tui/background.py, never by hand).

It reads its job from stdin, answers on stdout with the run's folder once it holds the run
(or why it was refused), then logs to run.log in that folder. SIGHUP is ignored: no
terminal's end reaches a background run. SIGTERM interrupts and Ctrl-C stops, as for `run`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from fmnist_tui.background import LOG, Job
from fmnist_tui.cli.headless import Printer
from fmnist_tui.config import ConfigError, make_config
from fmnist_tui.host import RunHost


def main(early: Path) -> int:
    job = Job(**json.loads(sys.stdin.readline()))
    handshake = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # until the run has a folder to log into

    def answer(reply: dict, last: bool = True) -> None:
        try:
            os.write(handshake, json.dumps(reply).encode() + b"\n")
            if last:
                os.close(handshake)
        except OSError:  # nobody waits for it (a hand-over from an app that has gone)
            if "error" in reply:
                early.unlink(missing_ok=True)  # nobody will read why either: leave no file behind

    def opened(path: Path) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(path / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(log, early.read_bytes())
        except OSError:
            pass
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        early.unlink(missing_ok=True)
        answer({"run_dir": str(path), "pid": os.getpid()})

    try:
        config = make_config(job.config, "the background job") if job.config is not None else None
    except ConfigError as err:
        answer({"error": str(err), "code": 2})
        return 2
    import fmnist_tui.engine.checkpoint
    import fmnist_tui.engine.runner  # noqa: F401 - torch and Lightning: the seconds a hand-over must not wait for

    answer({"ready": True}, last=False)  # an app handing its run over stops it now; the lock is taken next
    printer = Printer(sys.stdout, sys.stderr, verbose=job.verbose, every_s=job.progress_every)
    host = RunHost(printer, config, resume=job.resume, overrides=job.overrides, runs_dir=job.runs_dir,
                   data_dir=job.data_dir, opened=opened, handover=job.handover)  # fmt: skip
    host.install_signal_handlers()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose: a background run outlives them all
    worker = host.start()
    while worker.is_alive():
        worker.join(0.2)  # the main thread stays free to take signals
    if host.run_path is None:  # refused, or failed, before it had a folder
        error = host.refused or (host.ended.error if host.ended else None) or "it failed to start"
        answer({"error": error, "code": host.exit_code})
    return host.exit_code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
