"""Controls for a run in flight: stop, stop after the epoch, checkpoint now, set the lr.

The channel is a Unix socket, `control.sock`, in the run's folder, served by the run's
writer for as long as it holds the run's lock; the same for an in-app run and a
background one. It works from any process of the same user on the box and refuses
others twice over: the socket file is 0600 (connecting needs write permission on it), and
the server checks the peer's uid (SO_PEERCRED) before reading a byte. No pid is involved,
so a reused pid can never be acted on: a dead run has no server, and its stale socket
file refuses the connection. No torch, no textual.

One request a connection, one JSON line each way:
    -> {"action": "stop" | "stop-after-epoch" | "checkpoint" | "lr", "value": 0.01}
    <- {"ok": true, "text": "..."}
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SOCKET = "control.sock"
ACTIONS = ("stop", "stop-after-epoch", "checkpoint", "lr")
WAIT_APPLIED_S = 10.0  # how long a request waits to be carried out before it answers "requested"
MAX_SUN_PATH = 100  # sockaddr_un holds 108 bytes; longer paths go through /proc/self/fd


class ControlError(Exception):
    """A control could not be delivered or was refused: one line for a person."""


def parse_action(text: str) -> tuple[str, float | None]:
    """`stop`, `stop-after-epoch`, `checkpoint` or `lr=VALUE` (ControlError otherwise)."""
    text = text.strip()
    if text.startswith("lr="):
        try:
            value = float(text[3:])
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ControlError(f"{text!r}: lr=VALUE needs a number above 0, e.g. lr=0.01")
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
        sock.listen(8)
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
            with conn:
                try:
                    self._answer(conn)
                except OSError:
                    pass  # the client went away

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            _send(conn, False, "refused: this run belongs to another user")
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
            if action not in ACTIONS or (action == "lr") != isinstance(value, (int, float)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            _send(conn, False, "not a control request")
            return
        request = self.controls.submit(action, value)
        if not request.done.wait(WAIT_APPLIED_S):
            _send(conn, True, f"{action}: requested; the run carries it out at its next training step")
            return
        _send(conn, request.ok, request.text)


def _send(conn: socket.socket, ok: bool, text: str) -> None:
    conn.sendall(json.dumps({"ok": ok, "text": text}).encode() + b"\n")


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
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _address(path) as address:
            sock.connect(address)
        sock.sendall(json.dumps({"action": action, "value": value}).encode() + b"\n")
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
        ok, text = bool(reply["ok"]), str(reply["text"])
    except (ValueError, KeyError, TypeError):
        raise ControlError("it gave no answer (it may have just ended)") from None
    if not ok:
        raise ControlError(text)
    return text
