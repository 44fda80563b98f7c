"""`fmnist-tui serve`: the app in a web browser (textual-serve; the server is tui/serve.py).

Each browser tab runs this same program as the app, with the options given to `serve`
(runs, data and presets folders, preset, --set), so a tab sees the runs `fmnist-tui` sees.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys

from fmnist_tui.cli.output import error, preset_config, warn
from fmnist_tui.config import ConfigError


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port number, 0 to 65535 (0: any free port)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only; reach it from "
                             "elsewhere through an SSH tunnel, see the README)")  # fmt: skip
    parser.add_argument("--port", type=port_number, default=8000, help="the port (default 8000; 0: any free port)")
    parser.add_argument("--public-url", metavar="URL",
                        help="the address browsers use, when a proxy in front changes it (e.g. https://host/fmnist)")  # fmt: skip


def app_command(args: argparse.Namespace) -> str:
    """The shell command of one tab's app: this program, with the options given to `serve`."""
    argv = [sys.executable, "-m", "fmnist_tui"]
    if args.runs_dir is not None:
        argv += ["--runs-dir", os.path.abspath(args.runs_dir)]
    if args.data_dir is not None:
        argv += ["--data-dir", os.path.abspath(args.data_dir)]
    for folder in args.presets_dir:
        argv += ["--presets-dir", os.path.abspath(folder)]
    if args.preset is not None:
        argv += ["--preset", args.preset]
    for item in args.sets:
        argv += ["--set", item]
    if args.no_alerts:
        argv.append("--no-alerts")
    return shlex.join(argv)


def loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's own (OSError: a name nobody knows)."""
    from fmnist_tui.tui.serve import is_loopback_name

    if is_loopback_name(host):
        return True
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return all(is_loopback_name(str(info[4][0])) for info in infos)


def cmd_serve(args: argparse.Namespace, overrides: dict) -> int:
    if args.preset is not None or overrides:  # a bad preset or --set: say so here, not in every tab
        preset_config(args.presets_dir, args.preset or "tutorial", overrides)
    if args.public_url is not None and not args.public_url.startswith(("http://", "https://")):
        raise ConfigError(f"--public-url {args.public_url!r}: a URL starting with http:// or https://")
    host = args.host.strip()
    if not host:
        return error("--host: give an address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    try:
        local = loopback(host)
    except OSError as err:
        return error(f"--host {host}: not an address of this machine ({err.strerror or err})")
    from fmnist_tui.tui.serve import serve

    def ready(port: int) -> None:
        if not local:
            warn(f"listening on {host}, not only this machine: anyone who can reach port {port} can start runs "
                 "and read the runs folder. Prefer the default 127.0.0.1 and an SSH tunnel (see the README).")  # fmt: skip
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        url = args.public_url or f"http://{shown}:{port}"
        print(f"fmnist-tui serve: open {url} in a browser (each tab is its own app); Ctrl-C stops it.", flush=True)

    title = f"fmnist-tui on {socket.gethostname()}"
    try:
        serve(app_command(args), host=host, port=args.port, title=title, public_url=args.public_url,
              loopback_only=local, ready=ready)  # fmt: skip
    except OSError as err:
        return error(f"cannot listen on {host} port {args.port}: {err.strerror or err}")
    print("fmnist-tui serve: stopped.", flush=True)
    return 0
