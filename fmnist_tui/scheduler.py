"""The scheduler: runs queued entries as background runs, one per free device slot. No torch, no textual.

With N GPUs visible, N slots: an entry asking for `devices = k` takes k free GPUs, pinned
with CUDA_VISIBLE_DEVICES (`-1`: all of them). With none, one slot (`--slots` sets
another count; each run then gets the CPU cores divided among the slots). Entries start in
the order they were added: one that does not fit yet holds the ones behind it (a big
entry is never starved by small ones).

One scheduler per runs folder: it holds `.queue/scheduler.lock` (a flock, so it is free
again the moment its process dies, even by kill -9). `ensure_running` starts one in its
own session when something is queued, so it outlives the app and the SSH link; it exits
when nothing is queued or running. Each entry's process holds `launch-N.lock` for its
whole life, so a scheduler started after a kill -9 knows which runs still go on.

The next run is ready before it is needed: one process waits with torch already imported
(a few seconds of every start), and takes the next entry the moment a slot frees.
"""

from __future__ import annotations

import fcntl
import math
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fmnist_tui import background, devices
from fmnist_tui.background import BackgroundError, Job, Launched
from fmnist_tui.cards import LAUNCHED_BY
from fmnist_tui.format import printable
from fmnist_tui.runqueue import ENDED, FROM_STATUS, Entry, Loaded, Queue, QueueError, now, read_plain
from fmnist_tui.runs import RunStore, RunStoreError

POLL_S = 0.05  # how often the queue file is looked at (a stat): a run that has ended frees its slot within this
SPARE_AFTER_S = 1.5  # a new spare imports torch (seconds of CPU): not while the run just started sets up
MIN_FREE = 64 * 2**20  # bytes a runs folder needs before the next run starts (checkpoints, the record)
FULL_S = 1.0  # and read in full at least this often (runs started by another scheduler end without writing it)
LAUNCH_GRACE_S = 30.0  # a "starting" entry whose process holds no lock after this long never started


def lock_free(path: Path) -> bool:
    """True when nobody holds the flock on `path` (or it does not exist, or is no plain file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the probe
    except OSError:
        return True
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return True
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def running(runs_root: Path) -> bool:
    return not lock_free(Queue(runs_root).root / "scheduler.lock")


def ensure_running(runs_root: Path) -> bool:
    """Start the scheduler of this runs folder unless one runs; True if this call started one."""
    queue = Queue(runs_root)
    for name in ("scheduler.lock", "scheduler.log"):
        path = queue.root / name
        if os.path.lexists(path) and not path.is_file():
            raise QueueError(f"{printable(path)} is not a plain file, so no scheduler can start: move it away")
    if running(runs_root):
        return False
    queue.root.mkdir(parents=True, exist_ok=True)
    try:
        log = os.open(queue.root / "scheduler.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise QueueError(f"the scheduler cannot start: {queue.root / 'scheduler.log'}: {err.strerror}") from None
    try:
        subprocess.Popen(
            [sys.executable, "-P", "-m", "fmnist_tui.cli.scheduler", str(runs_root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(log)
    # Two starters at once: the second process finds the lock held and leaves at once.
    return True


@dataclass
class Slots:
    """What can run at once: GPU numbers (as CUDA_VISIBLE_DEVICES names them), or a count of CPU slots."""

    gpus: list[str]
    count: int

    def need(self, entry: Entry) -> int:
        wanted = entry.config.get("devices", 1)
        wanted = wanted if isinstance(wanted, int) and wanted > 0 else self.count  # -1: all of them
        return min(wanted, self.count)  # more than there is: it waits for all (the CLI refuses it when added)


def read_slots(queue: Queue) -> Slots:
    gpus = devices.visible_gpus()
    try:
        chosen = int(read_plain(queue.root / "slots").decode().strip())
    except (OSError, ValueError):
        chosen = 0
    if gpus:
        return Slots(gpus, min(chosen, len(gpus)) if chosen > 0 else len(gpus))
    return Slots([], chosen if chosen > 0 else 1)


class Scheduler:
    def __init__(self, runs_root: Path):
        self.root = Path(runs_root)
        self.queue = Queue(self.root)
        self.wake = threading.Event()
        self.mine: dict[int, Launched] = {}  # entries this process launched
        self.spares: list[Launched] = []  # processes with torch imported, waiting for their jobs
        self.lock_fd: int | None = None
        self.last_launch = -math.inf
        self.starting: set[int] = set()  # entries whose process has not answered yet (its run's folder, or why not)
        self.blocked = False  # no room for a run at the last look
        self.full_at: int | None = None  # free bytes when a run last ended on a full disk
        self.seen_full: set[int] = set()

    def log(self, text: str) -> None:
        try:
            print(f"{datetime.now().isoformat(timespec='milliseconds')} {text}", flush=True)
        except (OSError, ValueError):  # its log on a full disk: the queue matters more than the log
            pass

    def take_lock(self) -> bool:
        self.queue.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.queue.root / "scheduler.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {now()}\n".encode())
        self.lock_fd = fd
        return True

    def serve(self) -> int:
        if not self.take_lock():
            return 0  # another scheduler serves this folder
        self.log(f"scheduler started (pid {os.getpid()})")
        try:  # a disk that was full before this scheduler began is judged by the free space now
            self.seen_full = {e.id for e in self.queue.load().entries if e.state in ENDED}
        except QueueError:
            pass
        try:
            while True:
                try:
                    launches, waiting = self.step()
                except Exception as err:  # noqa: BLE001 - a full disk, a file made unreadable: say so, try again
                    self.log(f"cannot read or write the queue: {err}")
                    time.sleep(FULL_S)
                    continue
                if launches is None:
                    break
                for entry, job in launches:
                    self.launch(entry, job)
                self.spares = [s for s in self.spares if s.proc.poll() is None]
                settled = time.monotonic() - self.last_launch > SPARE_AFTER_S  # not while a run sets up
                while settled and len(self.spares) < min(waiting, read_slots(self.queue).count):
                    spare = self.warm()
                    if spare is None:
                        break
                    self.spares.append(spare)
                self.wait_for_change()
        finally:
            for spare in self.spares:
                spare.proc.kill()
                spare.early.unlink(missing_ok=True)  # its start-up log, empty: it never had a job
        self.log("queue empty: scheduler exits")
        return 0

    def wait_for_change(self) -> None:
        """Until a process of ours ends, the queue file changes, or FULL_S passes."""
        deadline = time.monotonic() + FULL_S
        seen = _stamp(self.queue.file)
        while time.monotonic() < deadline and not self.wake.is_set():
            self.wake.wait(POLL_S)
            if _stamp(self.queue.file) != seen:
                break
        self.wake.clear()

    def step(self) -> tuple[list[tuple[Entry, Job]] | None, int]:
        """Account for ended runs and choose what starts now, and how many wait; None when nothing is left."""
        slots = read_slots(self.queue)
        with self.queue.edit() as loaded:
            for problem in loaded.problems:
                self.log(f"warning: {problem}: set aside in rejected.jsonl")
            self.reconcile(loaded)
            active = [e for e in loaded.entries if e.active]
            queued = [e for e in loaded.entries if e.state == "queued"]
            if not active and not queued and not self.starting:
                for entry in loaded.entries:  # every process has ended: their launch locks are free
                    self.queue.launch_lock(entry.id).unlink(missing_ok=True)
                os.close(self.lock_fd or -1)  # under the queue's lock: an entry added next finds no scheduler
                self.lock_fd = None
                return None, 0
            busy = {d for e in active for d in (e.devices or [])}
            used = sum(slots.need(e) for e in active)
            if queued and used < slots.count and not self.writable(loaded):
                return [], len(queued)  # a full disk: the entries wait for space, not fail one by one
            launches = []
            for entry in queued:
                need = slots.need(entry)
                if used + need > slots.count:
                    break  # first come, first served
                entry.launch = uuid.uuid4().hex
                job = Job(config=entry.config, runs_dir=str(self.root), queue_id=entry.id, tag=entry.label,
                          launch=entry.launch,
                          record={"queue_id": entry.id, **({"sweep": entry.sweep} if entry.sweep else {})})  # fmt: skip
                if slots.gpus:
                    free = [i for i, _ in enumerate(slots.gpus) if i not in busy][:need]
                    busy.update(free)
                    entry.devices = free
                    job.env = {"CUDA_VISIBLE_DEVICES": ",".join(slots.gpus[i] for i in free)}
                else:
                    job.cpu_threads = max(1, (os.cpu_count() or 1) * need // slots.count)
                if entry.command:  # a warm process was launched before this entry: its card names who queued it
                    job.env[LAUNCHED_BY] = entry.command
                used += need
                entry.state, entry.started = "starting", now()
                launches.append((entry, job))
            return launches, len(queued) - len(launches)

    def writable(self, loaded: Loaded) -> bool:
        """Room for a run: the folder writable, MIN_FREE free, and more than when a run last found the
        disk full (a full disk pauses the queue instead of failing every entry in turn)."""
        for entry in loaded.entries:
            if entry.id not in self.seen_full and (entry.error or "").startswith("disk full"):
                self.seen_full.add(entry.id)
                self.full_at = _free(self.root)
        try:
            RunStore(self.root).check_writable()
            free = _free(self.root)
            if free < MIN_FREE or (self.full_at is not None and free < self.full_at + MIN_FREE):
                raise RunStoreError(f"{free / 2**20:.0f} MiB free in {self.root}; a run needs room for its "
                                    f"checkpoints (the queue goes on with {MIN_FREE / 2**20:.0f} MiB more)")  # fmt: skip
        except RunStoreError as err:
            if not self.blocked:
                self.log(f"waiting for space: {err}")
            self.blocked = True
            return False
        if self.blocked:
            self.log("there is space again: the queue goes on")
        self.blocked, self.full_at = False, None
        return True

    def reconcile(self, loaded: Loaded) -> None:
        """Entries whose process has ended take the end their run recorded."""
        store = RunStore(self.root)
        for entry in loaded.entries:
            if not entry.active or not lock_free(self.queue.launch_lock(entry.id)):
                continue
            launched = self.mine.get(entry.id)
            if launched is not None and launched.proc.poll() is None and entry.state == "starting":
                continue  # still importing, or about to take its lock
            if entry.state == "starting" and entry.run is None:
                if launched is None and _age_s(entry.started) < LAUNCH_GRACE_S:
                    continue  # another scheduler launched it a moment ago
                if launched is None:  # launched by a scheduler that died before it could: try again
                    entry.state, entry.started = "queued", None
                    self.log(f"entry {entry.id}: its start was cut short; queued again")
                    continue
            self.mine.pop(entry.id, None)
            status = entry.status
            if entry.run and status is None:
                summary = store.read(self.root / entry.run).summary
                status, error = summary.get("status"), summary.get("error")
                entry.error = entry.error or (printable(error) if error is not None else None)  # text, whatever it held
                status = "interrupted" if status == "running" else status  # it died without writing its end
            entry.status = status if isinstance(status, str) else "failed"
            entry.state = FROM_STATUS.get(entry.status, "failed")
            entry.ended = entry.ended or now()
            if entry.run is None and entry.error is None:
                entry.error = "the background process ended before its run started"
            self.log(f"entry {entry.id}: {entry.state}{' (' + entry.run + ')' if entry.run else ''}")

    def warm(self) -> Launched | None:
        try:
            return background.launch(None, runs_dir=str(self.root), on_exit=self.wake.set)
        except (OSError, RunStoreError) as err:
            self.log(f"cannot start a process: {err}")
            return None

    def launch(self, entry: Entry, job: Job) -> None:
        ready = [s for s in self.spares if s.proc.poll() is None]
        launched = ready[0] if ready else self.warm()
        self.spares = ready[1:]
        if launched is None:
            self._failed(entry, "no process could be started")
            return
        self.mine[entry.id] = launched
        self.last_launch = time.monotonic()
        self.starting.add(entry.id)
        launched.send(job)
        self.log(f"entry {entry.id}: starting ({entry.preset}{' ' + entry.label if entry.label else ''})")
        threading.Thread(target=self._started, args=(entry, launched), daemon=True).start()

    def _started(self, entry: Entry, launched: Launched) -> None:
        try:
            started = launched.wait()
            self.log(f"entry {entry.id}: running {started.run_path.name} (pid {started.pid})")
        except BackgroundError as err:
            self._failed(entry, str(err))
        self.starting.discard(entry.id)
        self.wake.set()

    def _failed(self, entry: Entry, error: str) -> None:
        self.log(f"entry {entry.id}: failed to start: {error}")
        try:
            with self.queue.edit() as loaded:  # unless it was started again meanwhile (or ended on its own)
                for e in loaded.entries:
                    if e.id == entry.id and e.launch == entry.launch and e.state in ("starting", "running"):
                        e.state, e.status, e.error, e.ended = "failed", "failed", printable(error), now()
        except QueueError as err:
            self.log(f"cannot record it: {err}")


def _free(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def _age_s(iso: str | None) -> float:
    try:
        return time.time() - datetime.fromisoformat(iso or "").timestamp()
    except ValueError:
        return 1e9
