"""The control channel in-process: what a hostile client sends must cost it, never the run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_tui.engine.control import SOCKET, ControlError, Controls, ControlServer, send
from fmnist_tui.engine.stop import StopRequest
from fmnist_tui.runs import LOCK, RunDir


@pytest.fixture
def served(tmp_path):
    stop = StopRequest()
    controls = Controls(stop)
    server = ControlServer(tmp_path, controls)
    server.start()
    yield tmp_path, controls, stop
    server.close()


def raw(folder, payload: bytes, wait: bool = True) -> dict | None:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(folder / SOCKET))
    sock.sendall(payload)
    if not wait:
        return None
    sock.settimeout(5)
    data = sock.recv(65536)
    sock.close()
    return json.loads(data)


def test_the_socket_is_the_owners_alone(served):
    folder, _, _ = served
    assert stat.S_IMODE(os.stat(folder / SOCKET).st_mode) == 0o600


def test_junk_is_refused_and_the_channel_stays_up(served):
    folder, controls, stop = served
    for junk in (b"[" * 3000 + b"\n", b"\xff\xfe\n", b'{"action": "rm -rf"}\n', b"{}\n", b"x" * 10000):
        assert raw(folder, junk)["ok"] is False
    for value in ("NaN", "Infinity", "0", "-1", "1e308", "true", '"0.1"', "null"):
        reply = raw(folder, b'{"action": "lr", "value": ' + value.encode() + b"}\n")
        assert reply["ok"] is False and "lr=VALUE" in reply["text"], value
    assert controls.pending == [] and not stop.is_set()
    assert "stopping" in send(folder, "stop") and stop.reason == "stopped"


def test_a_flood_of_idle_connections_does_not_keep_a_stop_out(served):
    folder, _, stop = served
    idle = []
    for _ in range(40):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(folder / SOCKET))
        idle.append(sock)
    started = time.monotonic()
    deadline = started + 10
    while True:  # refused while the handlers are all taken: the next try gets through
        try:
            send(folder, "stop", timeout=5)
            break
        except ControlError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert stop.is_set() and time.monotonic() - started < 5
    for sock in idle:
        sock.close()


def test_a_socket_linked_from_another_runs_folder_is_refused(served, tmp_path_factory):
    folder, _, stop = served
    other = tmp_path_factory.mktemp("other-run")
    os.link(folder / SOCKET, other / SOCKET)
    with pytest.raises(ControlError, match="linked from elsewhere"):
        send(other, "stop")
    os.unlink(folder / SOCKET)  # now the only name: still another run's channel
    with pytest.raises(ControlError, match="another run's channel: nothing was done"):
        send(other, "stop")
    assert not stop.is_set()


def test_no_channel_is_one_line(tmp_path):
    with pytest.raises(ControlError, match="no control channel"):
        send(tmp_path, "stop")
    (tmp_path / SOCKET).write_text("")
    with pytest.raises(ControlError, match="not a socket"):
        send(tmp_path, "stop")
    (tmp_path / SOCKET).unlink()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / SOCKET))  # left by a kill: nobody listens
    dead.close()
    with pytest.raises(ControlError, match="not running"):
        send(tmp_path, "stop")


def test_the_writer_lock_is_the_owners_alone(tmp_path):
    (tmp_path / LOCK).write_text("")
    os.chmod(tmp_path / LOCK, 0o644)  # as older versions made it: another user could hold it
    run = RunDir(tmp_path)
    run.lock()
    assert stat.S_IMODE(os.stat(tmp_path / LOCK).st_mode) == 0o600
    run.unlock()


NOBODY = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")


@NOBODY
def test_another_user_is_refused_by_the_socket_mode_and_then_by_the_server():
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="fmnist-control-"))  # under /tmp, open to all: only the socket guards
    os.chmod(folder, 0o755)
    stop = StopRequest()
    server = ControlServer(folder, Controls(stop))
    server.start()
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(folder / SOCKET)!r})\n"
        "except PermissionError:\n"
        "    print('refused by the file mode')\n"
        "else:\n"
        "    print(s.recv(999).decode())  # the server answers before reading a byte\n"
    )
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code]
    try:
        out = subprocess.run(as_nobody, capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "refused by the file mode", out
        os.chmod(folder / SOCKET, 0o666)  # as if the mode were lost: the server checks who is asking
        out = subprocess.run(as_nobody, capture_output=True, text=True, timeout=30)
        assert "this run belongs to another user" in out.stdout, out
        assert not stop.is_set()
    finally:
        server.close()
        shutil.rmtree(folder)


def test_a_burst_of_requests_is_answered_not_refused(served):
    import threading

    folder, controls, _ = served
    answers: list[str] = []

    def ask() -> None:
        answers.append(send(folder, "stop-after-epoch"))

    threads = [threading.Thread(target=ask) for _ in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 60 and all("end of this epoch" in a for a in answers)
