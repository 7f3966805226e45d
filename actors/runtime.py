"""Actor runtime: the actor base class and the supervised restart loop.

An actor is a long-lived task with one inbox (:class:`actors.channels.Channel`) that
handles messages in batches and publishes through the group's router.  The inbox
belongs to the group, not to the actor, so a restarted actor resumes on the same queue
and nothing buffered is lost.

:func:`run_supervised` runs one actor inside its owner's task group and restarts it on
failure with exponential backoff and jitter (tenacity).  More than
``RestartPolicy.max_restarts`` failures within ``window_s`` halts the whole
(exchange, symbol) group: the actor stays down, ``GroupState.halted`` is set, and
``/readyz`` reports it.  Cancellation is never caught here.
"""

from __future__ import annotations

import logging
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Literal

import anyio
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from actors.channels import Channel, Router
from actors.messages import ActorFailed, ActorStarted, ActorStopped, Message, Stamp, stamp

log = logging.getLogger("tradingd.actor")

ActorStatus = Literal["idle", "running", "backoff", "stopped", "failed", "halted"]


def now_ns() -> int:
    return time.time_ns()


class Clock:
    """Where actors read the time: the wall clock here; a backtest swaps in event time.

    ``time_ns`` stamps messages (wall time, ns since the epoch); ``monotonic`` measures
    intervals (seconds).  Set an actor's :attr:`Actor.clock` to replace both.
    """

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()


WALL_CLOCK = Clock()


class RestartPolicy(msgspec.Struct, frozen=True):
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0


class GroupState:
    """Health of one (exchange, symbol) group, shared by its actors and read by the health server.

    Two independent halts: the supervisor's (an actor kept failing; only a restart of the
    group clears it, since that actor is down) and the operator's kill switch (cleared by
    ``resume``).  While halted, risk lets only reduce-only orders (exits, stop-losses) through.
    ``on_halt`` callbacks run (synchronously, with the reason) when the group goes from not
    halted to halted, whichever halt it is (the group cancels its open entries there).
    """

    def __init__(self, exchange: str, symbol: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.halt_reason = ""  # supervisor: an actor failed too often
        self.admin_reason = ""  # operator: POST /admin/halt
        self.on_halt: list[Callable[[str], object]] = []

    def _halting(self, reason: str) -> None:
        for callback in self.on_halt:
            try:
                callback(reason)
            except Exception:  # a failing listener must not stop the halt itself
                log.exception("on_halt callback failed", extra={"component": "supervisor"})

    @property
    def halted(self) -> bool:
        return bool(self.halt_reason or self.admin_reason)

    @property
    def reason(self) -> str:
        return "; ".join(
            r for r in (self.halt_reason, self.admin_reason and f"admin: {self.admin_reason}") if r
        )

    def halt(self, reason: str) -> None:
        if not self.halt_reason:
            log.error(
                "group halted: %s",
                reason,
                extra={"component": "supervisor", "exchange": self.exchange, "symbol": self.symbol},
            )
        was_halted = self.halted
        self.halt_reason = reason
        if not was_halted:
            self._halting(reason)

    def admin_halt(self, reason: str) -> None:
        was_halted = self.halted
        self.admin_reason = reason
        if not was_halted:
            self._halting(reason)

    def admin_resume(self) -> None:
        self.admin_reason = ""


class Actor(ABC):
    """Base of every actor. Subclasses implement :meth:`handle`; :meth:`run` drains the inbox in batches."""

    kind: str = "actor"
    batch_size: int = 1024
    clock: Clock = WALL_CLOCK
    # The time of the group's latest market event (set by the group's wiring): what the
    # messages an actor makes on its own are stamped with as ``ts_event``, so that on a replay
    # every message kind carries the replay's time; ``ts_recv`` keeps the clock's.
    event_time: Callable[[], int] | None = None

    def __init__(self, exchange: str, symbol: str, router: Router, inbox: Channel[Message]) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.router = router
        self.inbox = inbox
        self.status: ActorStatus = "idle"
        self.restarts = 0
        self.handled = 0
        self.last_message_ns = 0
        self.last_error = ""
        self.poisoned = 0  # messages dropped because handling them raised
        self._carry: list[Message] = []  # unhandled rest of a batch that raised
        self._progress = 0  # index in the current batch
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"tradingd.{self.kind}"),
            {"component": self.kind, "exchange": exchange, "symbol": symbol},
        )

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.exchange}:{self.symbol}"

    async def run(self) -> None:
        """Handle inbox batches until the inbox is closed.

        If handling raises, the rest of that batch is kept and handled first after the
        restart; only the message that raised is dropped (counted in ``poisoned``).
        """
        inbox = self.inbox
        handle_batch = self.handle_batch
        while True:
            if self._carry:
                batch, self._carry = self._carry, []
            else:
                try:
                    batch = await inbox.receive_batch(self.batch_size)
                except anyio.EndOfStream:
                    return
            self._progress = 0
            try:
                await handle_batch(batch)
            except Exception:
                self._carry = batch[self._progress + 1 :]
                self.poisoned += 1
                raise
            self.handled += len(batch)
            self.last_message_ns = self.clock.time_ns()
            await self.after_batch()

    async def handle_batch(self, batch: list[Message]) -> None:
        """Handle one inbox batch in order, keeping ``_progress`` at the message being handled.

        Hot actors override this with synchronous fast paths; they must keep ``_progress``.
        """
        handle = self.handle
        for i, msg in enumerate(batch):
            self._progress = i
            await handle(msg)

    @abstractmethod
    async def handle(self, msg: Message) -> None:
        """Handle one message. Unknown kinds must be counted, not raised."""

    async def after_batch(self) -> None:
        """Hook run after each inbox batch (flush buffers, check timers)."""

    async def on_start(self) -> None:
        """Hook run before :meth:`run` on every (re)start."""

    def event_ns(self) -> int:
        """The group's market time (the replay's on a replay); the clock's before any market event."""
        at = self.event_time() if self.event_time is not None else 0
        return at or self.clock.time_ns()

    def system_fields(self) -> Stamp:
        """``ts_event``: the group's market time (:meth:`event_ns`); ``ts_recv``: the clock's."""
        return stamp(self.exchange, self.symbol, self.event_ns(), self.clock.time_ns())


class _FailureWindow:
    """Counts failures in a sliding time window; tenacity's stop condition."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.times: deque[float] = deque()

    def record(self) -> int:
        t = time.monotonic()
        self.times.append(t)
        while self.times and t - self.times[0] > self.policy.window_s:
            self.times.popleft()
        return len(self.times)

    def exceeded(self, _state: RetryCallState) -> bool:
        return len(self.times) > self.policy.max_restarts


async def run_supervised(actor: Actor, policy: RestartPolicy, group: GroupState) -> None:
    """Run ``actor`` until its inbox ends; restart it on failure; halt ``group`` on repeated failure."""
    window = _FailureWindow(policy)

    async def before_sleep(state: RetryCallState) -> None:
        actor.status = "backoff"
        actor.restarts += 1
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        actor.log.warning("actor failed, restarting in %.2fs (restart %d): %r", delay, actor.restarts, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_exponential_jitter(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.backoff_initial_s
        ),
        stop=window.exceeded,
        before_sleep=before_sleep,
        sleep=anyio.sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await _run_once(actor, window)
    except Exception as exc:  # noqa: BLE001 - tenacity gave up: this is the escalation, not a swallow
        actor.status = "halted"
        group.halt(f"{actor.name} failed {len(window.times)} times in {policy.window_s:g}s: {exc!r}")
        await _announce(
            actor,
            ActorFailed(
                actor=actor.name, error=repr(exc), restarts=actor.restarts, halted=True, **_sys(actor)
            ),
        )
        return
    actor.status = "stopped"


async def _run_once(actor: Actor, window: _FailureWindow) -> None:
    actor.status = "running"
    await _announce(actor, ActorStarted(actor=actor.name, restarts=actor.restarts, **_sys(actor)))
    try:
        await actor.on_start()
        await actor.run()
    except anyio.get_cancelled_exc_class():
        actor.status = "stopped"  # the owner cancelled us: not a failure
        raise
    except Exception as exc:
        window.record()
        actor.status = "failed"
        actor.last_error = "".join(traceback.format_exception_only(exc)).strip()
        await _announce(
            actor,
            ActorFailed(actor=actor.name, error=actor.last_error, restarts=actor.restarts, **_sys(actor)),
        )
        raise
    await _announce(actor, ActorStopped(actor=actor.name, **_sys(actor)))


def _sys(actor: Actor) -> Stamp:
    return actor.system_fields()


async def _announce(actor: Actor, msg: Message) -> None:
    """System messages go to the tap (mirror) only; they never block an actor."""
    tap = actor.router.tap
    if tap is not None:
        tap(msg)
