"""`fmnist-tui serve`: the app in a browser, through textual-serve.

textual-serve runs one app process per browser tab and relays its screen over a websocket.
What this adds to its Server:
- the page's URLs come from the address the browser used (its Host header), so an SSH
  tunnel on any local port works without --public-url; the page's font comes from the
  package's own statics, not Google Fonts (page/app_index.html), so it works offline;
- a server bound to loopback answers only to loopback names (or --public-url's), and the
  websocket only to pages of its own origin: any web page can open a websocket to
  127.0.0.1, and a DNS-rebound name reaches it too, and either would start the app;
- binding errors raise OSError before anything is printed, and SIGINT, SIGTERM and SIGHUP
  close every tab's app (each treats it as a hang-up, tui/browser.py) before it returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

PAGE = Path(__file__).with_name("page")
SHUTDOWN_S = 30.0  # a tab's run needs a few seconds to reach its background process


def is_loopback_name(host: str) -> bool:
    """A host name or address that only this machine reaches (no DNS asked)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(netloc: str) -> str:
    """The host part of `host:port` or `[v6]:port`."""
    return urlsplit(f"//{netloc}").hostname or ""


class AppServer(Server):
    """textual-serve's Server with the checks above."""

    def __init__(self, command: str, *, host: str, port: int, title: str, public_url: str | None,
                 loopback_only: bool) -> None:  # fmt: skip
        super().__init__(command, host=host, port=port, title=title, public_url=public_url, templates_path=PAGE)
        self.given_url = public_url.rstrip("/") if public_url else None
        self.loopback_only = loopback_only
        self.sessions: set[asyncio.Task[Any]] = set()

    def _refuse_strangers(self, request: web.Request) -> None:
        host = host_name(request.host)
        given = host_name(urlsplit(self.given_url).netloc) if self.given_url else None
        if self.loopback_only and not is_loopback_name(host) and host != given:
            raise web.HTTPForbidden(text=f"This server answers to localhost only, not {host!r} (see --public-url).\n")
        # A browser always says which page opens a websocket; a sandboxed frame or a file says "null",
        # which has no host: only this server's own page (or --public-url's) may open the app.
        origin = request.headers.get("Origin")
        if origin is not None and request.path == "/ws":
            netloc = urlsplit(origin).netloc.lower()
            ours = {request.host.lower()} | ({urlsplit(self.given_url).netloc.lower()} if self.given_url else set())
            if not netloc or netloc not in ours:
                raise web.HTTPForbidden(text="A page of another site may not open this app.\n")

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        self._refuse_strangers(request)
        base = self.given_url or f"{request.scheme}://{request.host}"
        websocket = ("wss:" if base.startswith("https:") else "ws:") + base.split(":", 1)[1] + "/ws"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": websocket,
            "config": {"static": {"url": base + "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        self._refuse_strangers(request)
        task = asyncio.current_task()
        if task is not None:
            self.sessions.add(task)
        try:
            return await super().handle_websocket(request)
        finally:
            self.sessions.discard(task)

    async def on_startup(self, app: web.Application) -> None:
        pass  # textual-serve's banner: the CLI prints its own line once the port is bound

    async def on_shutdown(self, app: web.Application) -> None:
        # A cancelled session tells its app to quit and waits for the process to end.
        for task in list(self.sessions):
            task.cancel()


def serve(command: str, *, host: str, port: int, title: str, public_url: str | None, loopback_only: bool,
          ready: Callable[[int], None]) -> None:  # fmt: skip
    """Serve until SIGINT, SIGTERM or SIGHUP. OSError when the address cannot be bound;
    `ready(port)` once it is (the port the system chose, for port 0)."""
    server = AppServer(command, host=host, port=port, title=title, public_url=public_url, loopback_only=loopback_only)
    asyncio.run(_serve(server, ready))


async def _serve(server: AppServer, ready: Callable[[int], None]) -> None:
    runner = web.AppRunner(await server._make_app(), handle_signals=False, access_log=None,
                           shutdown_timeout=SHUTDOWN_S)  # fmt: skip
    await runner.setup()
    try:
        await web.TCPSite(runner, server.host, server.port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        ready(runner.addresses[0][1])
        await stop.wait()
    finally:
        await runner.cleanup()
