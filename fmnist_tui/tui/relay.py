"""Engine events -> Textual messages, across the thread boundary.

The engine calls the sink from the training thread. `post_message` is thread-safe
and does not wait for the UI, so training never blocks on drawing. Step progress
collapses twice: the relay posts a progress message only when the last one has been
taken (the UI then reads the newest progress, `take_progress`), so a flood of steps
costs the event loop a few wakeups a frame, not one per step; and queued progress
messages still supersede each other (`can_replace`). The per-step losses go into a
deque the UI drains in bulk, so the loss chart loses no point when messages collapse.
Everything else (epoch ends, log lines, the end of the run) is queued, never dropped.
"""

from __future__ import annotations

from collections import deque

from textual.message import Message
from textual.message_pump import MessagePump

from fmnist_tui.engine.events import Event, RunStarted, StepProgress


class EngineMessage(Message):
    """One engine event, delivered on the UI thread."""

    def __init__(self, event: Event, run_id: int) -> None:
        super().__init__()
        self.event = event
        self.run_id = run_id  # a late event from an older run is ignored

    def can_replace(self, message: Message) -> bool:
        # Called on the queued message with the next one: a newer progress report
        # supersedes an older one that has not been handled yet.
        return (
            isinstance(self.event, StepProgress)
            and isinstance(message, EngineMessage)
            and isinstance(message.event, StepProgress)
        )


class DeviceFound(Message):
    """The device description, found in a worker (it imports torch)."""

    def __init__(self, text: str, gpu: bool | None) -> None:
        super().__init__()
        self.text = text
        self.gpu = gpu  # None: could not tell


MAX_UNDRAINED = 100_000  # loss points kept while the UI is not draining (a stalled UI must not eat memory)


class Relay:
    """The sink handed to `engine.runner.run`; called in the training thread."""

    def __init__(self, target: MessagePump, run_id: int) -> None:
        self.target = target
        self.run_id = run_id
        # (step, loss) appended here, drained by the UI; (step, None) marks a resume from `step`
        self.losses: deque[tuple[int, float | None]] = deque(maxlen=MAX_UNDRAINED)
        self._latest: StepProgress | None = None
        self._posted = False  # a progress message is on its way that will read _latest

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepProgress):
            self.losses.append((event.step, event.loss))
            self._latest = event
            if self._posted:
                return  # the message already on its way will carry this progress
            self._posted = True
        elif isinstance(event, RunStarted):
            self.losses.append((event.start_step, None))  # in order with the points around it
        self.target.post_message(EngineMessage(event, self.run_id))

    def take_progress(self) -> StepProgress | None:
        """The newest progress (UI thread). The flag is cleared before reading, so a step
        reported meanwhile either is read here or posts a new message: none is lost."""
        self._posted = False
        return self._latest
