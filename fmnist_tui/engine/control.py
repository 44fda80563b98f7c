"""Controls for a run in flight: stop, stop after the epoch, checkpoint now, set the lr.

The channel is a Unix socket, `control.sock`, in the run's folder, served by the run's
writer for as long as it holds the run's lock; the same for an in-app run and a
background one. It works from any process of the same user on the box and refuses
others twice over: the socket file is 0600 (connecting needs write permission on it), and
the server checks the peer's uid (SO_PEERCRED) before reading a byte. No pid is involved,
so a reused pid can never be acted on: a dead run has no server, and its stale socket
file refuses the connection. No torch, no textual.

One request a connection, one JSON line each way; `run` is the run folder's (st_dev, st_ino),
so a socket linked into another run's folder is refused rather than obeyed:
    -> {"action": "stop" | "stop-after-epoch" | "checkpoint" | "lr", "value": 0.01, "run": [dev, ino]}
    <- {"ok": true, "text": "...", "run": [dev, ino]}
Each connection is answered in a thread of its own (at most 16 at once), so a client that
sends junk or nothing costs one thread for a second, never the channel.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SOCKET = "control.sock"
ACTIONS = ("stop", "stop-after-epoch", "checkpoint", "lr")
MIN_LR, MAX_LR = 1e-10, 10.0  # the config's upper bound; below the lower one nothing trains and nothing scales
MAX_HANDLERS = 16  # connections answered at once; more are closed at once (a flood must not block a stop)
WAIT_APPLIED_S = 10.0  # how long a request waits to be carried out before it answers "requested"
MAX_SUN_PATH = 100  # sockaddr_un holds 108 bytes; longer paths go through /proc/self/fd


class ControlError(Exception):
    """A control could not be delivered or was refused: one line for a person."""


def lr_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_LR <= value <= MAX_LR:
        return f"lr=VALUE needs a number from {MIN_LR:g} to {MAX_LR:g}, e.g. lr=0.01"
    return None


def parse_action(text: str) -> tuple[str, float | None]:
    """`stop`, `stop-after-epoch`, `checkpoint` or `lr=VALUE` (ControlError otherwise)."""
    text = text.strip()
    if text.startswith("lr="):
        try:
            value = float(text[3:])
        except ValueError:
            value = math.nan
        problem = lr_problem(value)
        if problem:
            raise ControlError(f"{text!r}: {problem}")
        return "lr", value
    if text in ACTIONS and text != "lr":
        return text, None
    raise ControlError(f"{text!r} is not a control: use stop, stop-after-epoch, checkpoint or lr=VALUE")


@dataclass
class Request:
    action: str
    value: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    text: str = ""  # what the run did, once done
    ok: bool = True

    def finish(self, text: str, ok: bool = True) -> None:
        self.text, self.ok = text, ok
        self.done.set()


class Controls:
    """What the control channel asks of the training thread, which picks it up between steps."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.pending: list[Request] = []  # checkpoint and lr requests, carried out by engine/steering.py
        self.stop_after_epoch: Request | None = None
        self._lock = threading.Lock()

    def take(self) -> list[Request]:
        with self._lock:
            taken, self.pending = self.pending, []
        return taken

    def submit(self, action: str, value: float | None = None) -> Request:
        request = Request(action, value)
        if action == "stop":
            request_stop = getattr(self.stop, "request", None)  # a StopRequest records why
            request_stop("stopped") if request_stop else self.stop.set()
            request.finish("stopping: the run ends within a step and keeps its checkpoint")
        elif action == "stop-after-epoch":
            self.stop_after_epoch = request
            request.finish("the run stops at the end of this epoch, once it is validated and saved")
        else:
            with self._lock:
                self.pending.append(request)
        return request


# -- the socket -------------------------------------------------------------------------
@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """A path for bind/connect: itself, or through the folder's descriptor when too long for sockaddr_un."""
    if len(os.fsencode(path)) <= MAX_SUN_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlServer:
    """Serves a run's controls from a daemon thread while the run's writer holds its lock."""

    def __init__(self, run_path: Path, controls: Controls):
        self.path = run_path / SOCKET
        self.controls = controls
        self._sock: socket.socket | None = None
        self._closing = threading.Event()
        self._inode: int | None = None
        self._handlers = threading.BoundedSemaphore(MAX_HANDLERS)
        st = os.stat(run_path)
        self.identity = [st.st_dev, st.st_ino]  # which run answers: a client checks it is the one it asked

    def start(self) -> None:
        """Best effort: a run without a control channel still trains (and says so in its log)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a kill: this process holds the lock, the run is ours
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file is born 0600: no window in which others may connect
        try:
            with _address(self.path) as address:
                sock.bind(address)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        sock.listen(128)
        sock.settimeout(0.5)
        self._sock = sock
        self._inode = os.stat(self.path).st_ino
        threading.Thread(target=self._serve, name="fmnist-control", daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        if self._sock is not None:
            self._sock.close()
        try:
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._closing.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if not self._handlers.acquire(blocking=False):
                conn.close()  # too many at once: the client is told nothing answered
                continue
            threading.Thread(target=self._handle, args=(conn,), name="fmnist-control-request", daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._answer(conn)
        except Exception:  # noqa: BLE001 - whatever a client sends, the channel stays up for the next one
            pass
        finally:
            self._handlers.release()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(1.0)
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            self._send(conn, False, "refused: this run belongs to another user")
            return
        data = b""
        while not data.endswith(b"\n") and len(data) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        try:
            message = json.loads(data)
            action, value = message["action"], message.get("value")
            if action not in ACTIONS:
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            self._send(conn, False, "not a control request")
            return
        if message.get("run", self.identity) != self.identity:  # reached through a link from another run's folder
            self._send(conn, False, "this is another run's control channel: refused")
            return
        if action == "lr" and lr_problem(value):
            self._send(conn, False, str(lr_problem(value)))
            return
        request = self.controls.submit(action, float(value) if action == "lr" else None)
        if not request.done.wait(WAIT_APPLIED_S):
            self._send(conn, True, f"{action}: requested; the run carries it out at its next training step")
            return
        self._send(conn, request.ok, request.text)

    def _send(self, conn: socket.socket, ok: bool, text: str) -> None:
        conn.sendall(json.dumps({"ok": ok, "text": text, "run": self.identity}).encode() + b"\n")


def _connect(sock: socket.socket, path: Path, timeout: float) -> None:
    """Connect, trying again while the server's backlog is full (a burst of requests)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _address(path) as address:
                sock.connect(address)
            return
        except BlockingIOError:  # EAGAIN: every slot of the backlog taken
            if time.monotonic() > deadline:
                raise TimeoutError from None
            time.sleep(0.05)


def send(run_path: Path, action: str, value: float | None = None, timeout: float = WAIT_APPLIED_S + 5) -> str:
    """Deliver one control to the run in `run_path`; its answer, or ControlError (one line)."""
    path = run_path / SOCKET
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise ControlError("it has no control channel (it is starting, or it ended)") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{SOCKET} in its folder is not a socket")
    if st.st_uid != os.getuid():
        raise ControlError("it belongs to another user: only its owner can control it")
    if st.st_nlink > 1:  # a hard link to another run's socket would reach that run
        raise ControlError(f"{SOCKET} in its folder is linked from elsewhere: not its own channel")
    here = os.stat(run_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect(sock, path, timeout)
        request = {"action": action, "value": value, "run": [here.st_dev, here.st_ino]}
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionRefusedError, FileNotFoundError):
        raise ControlError("it is not running (nothing answers on its control channel)") from None
    except PermissionError:
        raise ControlError("permission denied: only the run's owner can control it") from None
    except TimeoutError:
        raise ControlError("it did not answer in time") from None
    except OSError as err:
        raise ControlError(f"its control channel failed: {err.strerror or err}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(data)
        ok, text, identity = bool(reply["ok"]), str(reply["text"]), reply.get("run")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ControlError("it gave no answer (it may have just ended)") from None
    if identity is not None and identity != [here.st_dev, here.st_ino]:
        raise ControlError(f"its {SOCKET} is another run's channel: nothing was done") from None
    if not ok:
        raise ControlError(text)
    return text
