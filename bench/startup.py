"""Start-up and terminal traffic of the real `fmnist-tui` command, in an 80x24 pseudo-terminal.

    python bench/startup.py [--seconds 20] [--data-dir DIR]

Prints:
  help_s            `fmnist-tui --help`, wall time
  first_screen_s    from exec to the setup screen's preset list being drawn
  bytes_per_s       what the app writes to the terminal while a run trains (average)
  ui_thread_cpu     the CPU time of the app's UI (main) thread per second meanwhile: what
                    the UI takes from a training thread that needs the GIL (Linux only)
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time


def command() -> list[str]:
    exe = shutil.which("fmnist-tui")
    return [exe] if exe else [sys.executable, "-m", "fmnist_tui"]


def spawn(args: list[str], env: dict) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(args[0], args, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    os.kill(pid, signal.SIGWINCH)
    return pid, fd


def read_for(fd: int, seconds: float, until: bytes | None = None) -> tuple[bytes, float]:
    """Bytes read until `until` appears (returns the time it did) or `seconds` pass."""
    out, start = b"", time.perf_counter()
    while time.perf_counter() - start < seconds:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
            if until and until in out:
                return out, time.perf_counter() - start
    return out, time.perf_counter() - start


def main_thread_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of the process's main thread (its thread id is its pid)."""
    try:
        fields = open(f"/proc/{pid}/task/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(pid: int, fd: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while time.time() < deadline:
        read_for(fd, 0.1)
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
    else:
        os.kill(pid, signal.SIGKILL)
    os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to measure terminal traffic")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="fmnist-startup-")
    env = {**os.environ, "TERM": "xterm-256color", "FMNIST_TUI_RUNS_DIR": f"{tmp}/runs",
           "FMNIST_TUI_PRESETS_DIR": f"{tmp}/presets", "COLUMNS": "80", "LINES": "24"}  # fmt: skip

    start = time.perf_counter()
    subprocess.run([*command(), "--help"], capture_output=True, check=True)
    print(f"help_s={time.perf_counter() - start:.3f}")

    pid, fd = spawn(command(), env)
    _, first = read_for(fd, 30, until=b"cnn_fast")
    print(f"first_screen_s={first:.3f}")
    stop(pid, fd)

    run = [*command(), "--preset", "mlp", "--start", "--set", "dataset=synthetic", "--set", "synthetic_size=60000",
           "--set", "epochs=50", "--set", "val_size=2000"]  # fmt: skip
    pid, fd = spawn(run, env)
    read_for(fd, 8)  # start-up and the first screen are not the steady state
    cpu_before = main_thread_cpu_s(pid)
    data, took = read_for(fd, args.seconds)
    cpu_after = main_thread_cpu_s(pid)
    print(f"bytes_per_s={len(data) / took:.0f}  ({len(data)} bytes in {took:.1f} s of training, 80x24)")
    if cpu_before is not None and cpu_after is not None:
        print(f"ui_thread_cpu={(cpu_after - cpu_before) / took:.3f}  (CPU seconds of the UI thread per second)")
    stop(pid, fd)


if __name__ == "__main__":
    main()
