"""The cooperative stop signal shared by the UI (or CLI) and the training thread. No torch."""

from __future__ import annotations

import threading


class StopRequest(threading.Event):
    """An Event that also says why: "stopped" (the user) or "interrupted" (a signal)."""

    reason = "stopped"

    def request(self, reason: str = "stopped") -> None:
        if not self.is_set():
            self.reason = reason
        self.set()


def reason_of(event: threading.Event) -> str:
    return getattr(event, "reason", "stopped")
