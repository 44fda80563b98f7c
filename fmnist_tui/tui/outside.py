"""The app's side of runs that live in their own process: starting one in the background,
attaching to one (following its folder), controlling one, and handing the app's own run
over to a background process when the app quits or its terminal hangs up.

The base class of FmnistApp (tui/app.py), which holds the run state these methods change.
"""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from pathlib import Path

from textual.app import App

from fmnist_tui.background import Job, launch
from fmnist_tui.config import RunConfig
from fmnist_tui.host import RunHost
from fmnist_tui.tui import watch
from fmnist_tui.tui.relay import Relay
from fmnist_tui.tui.screens.base import AttachRun, ControlRun, Detach, QueueRun
from fmnist_tui.tui.state import RunState


def _text(path) -> str | None:
    return str(path) if path else None


class OutsideRuns(App):
    """FmnistApp's base: what these methods use of the app is declared here."""

    state: RunState
    run_id: int
    runs_dir: str | None
    data_dir: str | None
    attached: Path | None
    exit_note: str
    _relay: Relay | None
    _host: RunHost | None
    _follow_stop: threading.Event
    _handing_over: bool

    @property
    def run_in_progress(self) -> bool:
        raise NotImplementedError

    def stop_and_quit(self) -> None:
        raise NotImplementedError

    def stop_run(self) -> None:
        raise NotImplementedError

    @property
    def following(self) -> bool:
        """Attached to a run that has not ended (as far as its folder says)."""
        return self.attached is not None and self.state.ended is None

    @property
    def run_path(self) -> Path | None:
        """The folder of the run shown, once it has one: where its controls go."""
        if self.attached is not None:
            return self.attached
        return self._host.run_path if self._host is not None else None

    def new_run(self, state: RunState) -> Relay:
        """The app shows another run from now on (its own, or one it follows): a fresh state, and a
        relay whose messages carry a new run id, so that late ones of the one before are ignored."""
        self.detach(quiet=True)
        self.run_id += 1
        self.state = state
        self._relay = Relay(self, self.run_id)
        return self._relay

    # -- runs in their own process ------------------------------------------------------
    def start_background(self, config: RunConfig) -> None:
        """Start in background: the run gets its own process; the live view attaches to it."""
        job = Job(config=config.model_dump(), runs_dir=_text(self.runs_dir), data_dir=_text(self.data_dir))
        self.notify("Starting the run in a background process…", timeout=3)
        self.run_worker(partial(watch.start_background, self, job), thread=True, exit_on_error=False,
                        group="background")  # fmt: skip

    def on_queue_run(self, message: QueueRun) -> None:
        self.run_worker(partial(watch.add_to_queue, self, message.config, self.runs_dir, self.data_dir), thread=True,
                        exit_on_error=False, group="queue")  # fmt: skip

    def on_queue_answered(self, message: watch.QueueAnswered) -> None:
        self.notify(message.text, title="Queued" if message.ok else "Not queued", markup=False,
                    severity="information" if message.ok else "error", timeout=6 if message.ok else 12)  # fmt: skip

    def on_background_started(self, message: watch.BackgroundStarted) -> None:
        if message.started is None:
            title = "Could not hand the run over" if self._handing_over else "Could not start in the background"
            error = message.error or "unknown error"
            ended = self.state.ended
            if self._handing_over and ended is not None and ended.status != "interrupted":
                self.exit_note = f"The run {ended.status} before it could be handed over: nothing goes on."
                self.exit(return_code=0)  # what was asked: quit; the run has nothing left to do
                return
            if self._handing_over and self._host is not None and self._host.stop.is_set():
                error += f"; the run stopped with its checkpoint: fmnist-tui run --resume {self._host.run_path}"
            self._handing_over = False
            self.notify(error, title=title, severity="error", timeout=15, markup=False)
            return
        name = message.started.run_path.name
        if self._handing_over:  # our thread has stopped; the background process holds the run now
            self.exit_note = (f"Run {name} goes on in the background (pid {message.started.pid}).\n"
                              f"  fmnist-tui attach {name}    fmnist-tui control {name} stop")  # fmt: skip
            self.exit(return_code=0)
            return
        if self.run_in_progress:  # this app shows its own run: the new one goes on unwatched for now
            self.notify(f"Run {name} runs in its own process (pid {message.started.pid}); attach to it from the "
                        "runs screen (F4) once this app's run has ended.", timeout=8, markup=False)  # fmt: skip
            return
        self.notify(f"Run {name} runs in its own process (pid {message.started.pid}); d detaches.", timeout=6)
        self.attach(message.started.run_path)

    def attach(self, path: Path) -> bool:
        """Show the run in `path` live from its folder: its history first, then as it goes."""
        if self.run_in_progress:
            self.notify("A run of this app is in progress: stop it first (s on the live screen).", severity="warning")
            return False
        path = Path(path)
        relay = self.new_run(RunState(config=watch.config_of(path), attached=path))
        self.attached = path
        self._follow_stop = threading.Event()
        self.run_worker(partial(watch.follow, path, relay, self._follow_stop), thread=True,
                        exit_on_error=False, group="follow", name=f"follow-{self.run_id}")  # fmt: skip
        self.switch_mode("run")
        self.refresh_bindings()
        return True

    def detach(self, quiet: bool = False) -> None:
        """Stop following the attached run; it goes on in its own process."""
        if self.attached is None:
            return
        self._follow_stop.set()
        name, going = self.attached.name, self.following
        self.attached = None
        self.run_id += 1  # late events of the follower are ignored
        self.state = RunState()
        if not quiet:
            what = "keeps running in its own process" if going else "is closed"
            self.notify(f"Detached: run {name} {what}.", timeout=5, markup=False)
        self.refresh_bindings()

    def on_control_run(self, message: ControlRun) -> None:
        if message.action == "stop" and self.run_in_progress:
            self.stop_run()
            return
        path = self.run_path
        if path is None or not (self.following or self.run_in_progress):
            self.notify("No run to control (or it is still starting).", severity="warning")
            return
        self.run_worker(partial(watch.send_control, self, path, message.action, message.value), thread=True,
                        exit_on_error=False, group="control")  # fmt: skip

    def on_control_answered(self, message: watch.ControlAnswered) -> None:
        self.notify(message.text, severity="information" if message.ok else "error", timeout=5, markup=False)

    def hand_over(self) -> None:
        """Keep the in-app run going in a background process (the quit question's second answer).

        The process starts and imports torch (seconds) while this app's run trains on; once it is
        ready, the run here stops within a step, saves last.ckpt and lets go of the run's lock; the
        process takes it at once and resumes from that checkpoint, exactly. If the process cannot
        start, the run here is not touched."""
        host, job = self._host, self.handover_job()
        if self._handing_over:
            return  # one hand-over at a time: a second process would wait for the run, and take it later
        if self.run_in_progress and self.run_path is None:
            self.notify("The run is still starting (it has no folder yet): ask again in a moment.", timeout=5)
            return
        if host is None or job is None:
            self.stop_and_quit()  # it ended meanwhile: nothing to keep running
            return
        self._handing_over = True
        self.notify("Handing the run over to a background process…", timeout=10)
        stop_here = partial(host.stop.request, "handover")
        self.run_worker(partial(watch.start_background, self, job, stop_here), thread=True, exit_on_error=False,
                        group="background")  # fmt: skip

    def handover_job(self) -> Job | None:
        """The job that goes on with the in-app run, once it has a folder."""
        path = self.run_path
        if not self.run_in_progress or path is None:
            return None
        return Job(resume=str(path), runs_dir=_text(self.runs_dir), data_dir=_text(self.data_dir), handover=True)

    def hand_over_and_exit(self, sig: int) -> None:
        """After a hang-up, in a plain thread (the terminal is gone, the UI may never draw again):
        hand the run over as above, then end the process once the run here has saved."""
        host, job = self._host, self.handover_job()
        if self._handing_over:  # asked already (quit, then the terminal went): that process takes it
            if host is not None:
                host.done.wait(timeout=300)
            time.sleep(2)  # its lock taken, its answer read by nobody: nothing more to do here
            os._exit(128 + sig)
        if host is None or job is None:
            return
        self._handing_over = True
        reason = "interrupted"  # if no process can go on with it: saved, and marked to resume by hand
        try:
            launch(job).wait_ready()
            reason = "handover"
        except Exception:  # noqa: BLE001 - nobody is left to tell: the run is saved either way
            pass
        host.signal = sig
        host.stop.request(reason)
        host.done.wait(timeout=300)  # a run stops within a step; this only bounds a stuck one
        os._exit(128 + sig)

    def on_attach_run(self, message: AttachRun) -> None:
        self.attach(message.path)

    def on_detach(self, message: Detach) -> None:
        self.detach()
