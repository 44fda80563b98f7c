"""`fmnist-tui serve`: the page over loopback, a tab's app, bad addresses, the warning, signals.

Real server processes on loopback; no browser (bench/browser_check.py drives one).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from fmnist_tui.cli.main import parse
from fmnist_tui.cli.serve import app_command, loopback
from fmnist_tui.tui.serve import is_loopback_name
from tests.test_cli import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


@contextmanager
def serving(tmp_path, *args: str):
    """A `fmnist-tui serve` process and the port it answers on; killed (with its tabs' apps) whatever happens."""
    command = [sys.executable, "-m", "fmnist_tui", "serve", "--runs-dir", str(tmp_path / "runs"), *args]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    apps: list[int] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "open http://" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split("open ")[1].split()[0].rsplit(":", 1)[1])
        yield proc, port, apps
    finally:
        apps += children(proc.pid)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for pid in apps + [c for a in apps for c in children(a)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def get(port: int, path: str = "/", headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        conn.close()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=40)
    return proc.returncode, out, err


def test_serve_answers_on_loopback_with_the_app_page_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    with serving(tmp_path, "--port", str(port)) as (proc, answered, _):
        assert answered == port
        status, page = get(port)
        assert status == 200
        assert f"<title>fmnist-tui on {socket.gethostname()}</title>" in page
        assert "/static/js/textual.js" in page and f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in page
        assert "googleapis" not in page  # the font comes from the server itself: works offline
        status, _ = get(port, "/static/fonts/RobotoMono-VariableFont_wght.ttf")
        assert status == 200
        # The address the browser used makes the page's URLs: an SSH tunnel on another local port works.
        status, page = get(port, headers={"Host": "localhost:9000"})
        assert status == 200 and 'data-session-websocket-url="ws://localhost:9000/ws"' in page
        # A name that is not this machine's (DNS rebinding), and a page of another site, are refused.
        assert get(port, headers={"Host": "evil.example:8000"})[0] == 403
        for origin in ("http://evil.example", "null", "file://", f"http://127.0.0.1:{port}.evil.example"):
            assert get(port, "/ws", headers={"Origin": origin})[0] == 403, origin  # a sandboxed frame says null
        code, out, err = stop(proc)
    assert code == 0 and "stopped" in out
    assert "Traceback" not in err + out


async def first_screen(port: int, seconds: float = 60) -> tuple[bytes, object]:
    """Open a tab's websocket as the page does; what the app drew first, and the open socket's session."""
    import aiohttp

    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws?width=120&height=40")
    screen = b""
    deadline = time.monotonic() + seconds
    while b"set up a run" not in screen and time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(ws.receive(), 1)
        except TimeoutError:
            continue
        if isinstance(message.data, bytes):
            screen += message.data
    await ws.close()
    await session.close()
    return screen, ws


def test_a_tab_runs_the_app_with_the_options_given_to_serve_and_closing_it_ends_the_app(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "mine.toml").write_text('name = "mine"\ndescription = "only in this folder"\nepochs = 7\n')
    with serving(tmp_path, "--port", "0", "--presets-dir", str(presets), "--preset", "mine") as (proc, port, apps):
        screen, _ = asyncio.run(first_screen(port))
        assert b"set up a run" in screen and b"mine" in screen
        # The tab closed with no run: its app quits at once.
        deadline = time.monotonic() + 20
        while children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children(proc.pid) == []
        code, _, err = stop(proc)
    assert code == 0 and "Traceback" not in err


def test_the_app_command_carries_the_options_shell_quoted(tmp_path):
    args = parse(["--runs-dir", str(tmp_path / "my runs"), "serve", "--presets-dir", "a b", "--set", "lr=0.1",
                  "--set", "name=it's", "--data-dir", "d", "--no-alerts"])  # fmt: skip
    command = app_command(args)
    assert command.startswith(f"{sys.executable} -m fmnist_tui ") or command.startswith(f"'{sys.executable}' -m")
    assert f"--runs-dir '{tmp_path / 'my runs'}'" in command
    assert f"--presets-dir '{Path('a b').absolute()}'" in command and f"--data-dir {Path('d').absolute()}" in command
    assert "--set lr=0.1 --set 'name=it'\"'\"'s' --no-alerts" in command


def test_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "fmnist_tui", "serve", "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"fmnist-tui: error: cannot listen on 127.0.0.1 port {port}"
    )
    assert "in use" in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--host", "no-such-host.invalid"], "--host no-such-host.invalid: not an address of this machine"),
        (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1 port"),  # TEST-NET: nobody's address
        (["--port", "99999"], "'99999': a port number, 0 to 65535"),
        (["--port", "abc"], "'abc': a port number, 0 to 65535"),
        (["--port", "-1"], "'-1': a port number, 0 to 65535"),
        (["--host", ""], "--host: give an address"),
        (["--public-url", "localhost:9000"], "--public-url 'localhost:9000': a URL starting with http://"),
        (["--set", "lr=abc"], "lr"),
        (["--preset", "nope"], "nope"),
    ],
)
def test_bad_addresses_and_options_are_one_line_and_exit_2(args, message):
    done = subprocess.run([sys.executable, "-m", "fmnist_tui", "serve", "--port", "0", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "error" in line] == [done.stderr.strip().splitlines()[-1]]
    assert done.stdout == ""


def test_listening_beyond_loopback_warns_that_anyone_can_start_runs(tmp_path):
    with serving(tmp_path, "--host", "0.0.0.0", "--port", "0") as (proc, port, _):
        status, page = get(port, headers={"Host": "gpu-box.example:8000"})  # any name: the user chose to expose it
        assert status == 200 and "ws://gpu-box.example:8000/ws" in page
        code, _, err = stop(proc)
    assert "warning: listening on 0.0.0.0, not only this machine: anyone who can reach port" in err
    assert "can start runs and read the runs folder" in err
    assert code == 0 and "Traceback" not in err


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    with serving(tmp_path, "--port", "0") as (proc, _, _):
        code, out, err = stop(proc, signal.SIGINT)
    assert code == 0 and "stopped" in out and "Traceback" not in err + out


def test_which_hosts_are_this_machine_only():
    assert all(is_loopback_name(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "LOCALHOST."))
    assert not any(is_loopback_name(h) for h in ("0.0.0.0", "::", "10.0.0.1", "evil.example", "localhost.evil.com"))
    assert loopback("localhost") and not loopback("0.0.0.0")
    with pytest.raises(OSError):
        loopback("no-such-host.invalid")


async def start_a_run_and_close_the_tab(port: int, runs: Path) -> Path:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{port}/ws?width=120&height=40") as ws:

            async def read_for(seconds: float, until=lambda screen: False) -> bytes:
                screen, deadline = b"", time.monotonic() + seconds
                while not until(screen) and time.monotonic() < deadline:
                    try:
                        message = await asyncio.wait_for(ws.receive(), 0.5)
                    except TimeoutError:
                        continue
                    if isinstance(message.data, bytes):
                        screen += message.data
                return screen

            assert b"ready" in await read_for(90, lambda screen: b"ready" in screen)  # the device is known
            await ws.send_str(json.dumps(["stdin", "\x12"]))  # ctrl+r: Start
            await read_for(120, lambda _: any(steps(f) > 20 for f in runs.glob("*/")))
            (folder,) = runs.glob("*/")
    return folder  # the socket is closed: the tab is gone


def steps(folder: Path) -> int:
    path = folder / "metrics.csv"
    return path.read_text().count("\nstep,") if path.exists() else 0


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
def test_closing_a_tab_mid_run_hands_the_run_to_a_background_process(tmp_path):
    """As an SSH hang-up is to the terminal app: the tab's app stops the run within a step and saves
    it, and a background process resumes it from there; the server and the tab's app are not needed."""
    from fmnist_tui.runs import lock_held

    sets = ["dataset=synthetic", "synthetic_size=2000", "val_size=500", "epochs=1000", "accelerator=cpu"]
    with serving(tmp_path, "--port", "0", "--preset", "tutorial", *[x for s in sets for x in ("--set", s)]) as (
        proc, port, _,
    ):  # fmt: skip
        folder = asyncio.run(start_a_run_and_close_the_tab(port, tmp_path / "runs"))
        try:
            deadline = time.monotonic() + 90
            log = folder / "run.log"
            while not (log.exists() and "resuming at epoch" in log.read_text() and lock_held(folder)):
                assert time.monotonic() < deadline, "a background process takes the run over"
                time.sleep(0.1)
            assert summary(folder)["status"] == "running" and summary(folder)["resumed"] == 1
            code, _, err = stop(proc)
            assert code == 0 and "Traceback" not in err
            at = steps(folder)
            deadline = time.monotonic() + 60
            while steps(folder) <= at:  # it trains on, the server gone
                assert time.monotonic() < deadline, "the background process trains"
                time.sleep(0.1)
            stopped = subprocess.run([sys.executable, "-m", "fmnist_tui", "control", str(folder), "stop"], cwd=ROOT,
                                     capture_output=True, text=True, timeout=60)  # fmt: skip
            assert stopped.returncode == 0, stopped.stderr
            deadline = time.monotonic() + 60
            while lock_held(folder):
                assert time.monotonic() < deadline, "the stopped run lets go of its folder"
                time.sleep(0.1)
        finally:
            if lock_held(folder):  # the background process is in its own session: no fixture kills it
                os.kill(summary(folder)["pid"], signal.SIGKILL)
    assert summary(folder)["status"] == "stopped"
