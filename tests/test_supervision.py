"""Supervision runtime (actors/runtime.py run_supervised) and back-pressure through a running actor.

A probe actor records the ``ts_event`` of every message it handled and raises on the
ones it is told to; the router's tap records the system messages (ActorStarted /
ActorFailed / ActorStopped) the supervisor announces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal as D

import anyio
import anyio.lowlevel
import pytest

from actors.channels import Channel, Router, quote_conflation_key
from actors.messages import ActorFailed, ActorStarted, ActorStopped, Heartbeat, Message, Trade
from actors.runtime import Actor, GroupState, RestartPolicy, run_supervised

EX, SYM = "paper", "BTC/USDT"
NAME = f"probe:{EX}:{SYM}"

pytestmark = pytest.mark.anyio


def beat(i: int) -> Heartbeat:
    return Heartbeat(exchange=EX, symbol=SYM, ts_event=i, ts_recv=i, actor="feed", seq=i)


class Probe(Actor):
    kind = "probe"

    def __init__(
        self, router: Router, inbox: Channel[Message], fail_on: Iterable[int] = (), fail_starts: int = 0
    ) -> None:
        super().__init__(EX, SYM, router, inbox)
        self.seen: list[int] = []
        self.fail_on = set(fail_on)  # each fails once
        self.fail_starts = fail_starts
        self.starts = 0
        self.block: anyio.Event | None = None  # handle() waits on it when set
        self.in_handle = False

    async def on_start(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_starts:
            raise RuntimeError(f"start {self.starts} failed")

    async def handle(self, msg: Message) -> None:
        if msg.ts_event in self.fail_on:
            self.fail_on.discard(msg.ts_event)
            raise RuntimeError(f"boom {msg.ts_event}")
        if self.block is not None:
            self.in_handle = True
            await self.block.wait()
            self.in_handle = False
        self.seen.append(msg.ts_event)


class Tapped:
    """Router + inbox + group, with the tap's system messages timestamped on arrival."""

    def __init__(self, capacity: int = 64) -> None:
        self.system: list[tuple[float, Message]] = []
        self.router = Router(lambda m: self.system.append((time.monotonic(), m)))
        self.inbox: Channel[Message] = Channel("probe", capacity)
        self.group = GroupState(EX, SYM)

    def kinds(self) -> list[tuple[str, int, bool]]:
        out = []
        for _, m in self.system:
            if isinstance(m, ActorStarted):
                out.append(("started", m.restarts, False))
            elif isinstance(m, ActorFailed):
                out.append(("failed", m.restarts, m.halted))
            elif isinstance(m, ActorStopped):
                out.append(("stopped", 0, False))
        return out

    def times(self, kind: type[Message]) -> list[float]:
        return [t for t, m in self.system if isinstance(m, kind)]


async def until(pred: Callable[[], bool]) -> None:
    while not pred():
        await anyio.sleep(0.001)


FAST = RestartPolicy(max_restarts=3, window_s=60.0, backoff_initial_s=0.005, backoff_max_s=0.01)


# --- restart --------------------------------------------------------------------------------


async def test_actor_that_raises_is_restarted_and_handles_later_messages() -> None:
    # Arrange
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_on={2})
    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, FAST, w.group)
            w.inbox.send_nowait(beat(1))
            await until(lambda: probe.seen == [1])
            # Act
            w.inbox.send_nowait(beat(2))
            await until(lambda: probe.restarts == 1 and probe.status == "running")
            w.inbox.send_nowait(beat(3))
            await until(lambda: probe.seen == [1, 3])
            w.inbox.close()
    # Assert
    assert probe.status == "stopped"
    assert probe.restarts == 1
    assert probe.last_error == "RuntimeError: boom 2"
    assert w.kinds() == [
        ("started", 0, False),
        ("failed", 0, False),
        ("started", 1, False),
        ("stopped", 0, False),
    ]
    failed = [m for _, m in w.system if isinstance(m, ActorFailed)]
    assert [(m.actor, m.error) for m in failed] == [(NAME, "RuntimeError: boom 2")]
    assert not w.group.halted


async def test_status_is_backoff_between_a_failure_and_the_restart() -> None:
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_starts=1)
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.2, backoff_max_s=1)
    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, policy, w.group)
            await until(lambda: probe.restarts == 1)
            assert probe.status == "backoff"
            await until(lambda: probe.status == "running")
            w.inbox.close()
    assert probe.status == "stopped"


async def test_restarts_back_off_exponentially() -> None:
    # Arrange: two failing starts; waits are multiplier * 2**n + jitter in [0, multiplier]
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_starts=2)
    policy = RestartPolicy(max_restarts=5, window_s=60, backoff_initial_s=0.05, backoff_max_s=1)
    # Act
    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, policy, w.group)
            await until(lambda: probe.starts == 3)
            w.inbox.close()
    # Assert
    failed, started = w.times(ActorFailed), w.times(ActorStarted)
    first, second = started[1] - failed[0], started[2] - failed[1]
    assert first >= 0.05
    assert second >= 0.10
    assert first < 0.5 and second < 0.5
    assert probe.restarts == 2


async def test_actor_failing_more_than_max_restarts_within_the_window_halts_the_group() -> None:
    # Arrange: fails on every start
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_starts=1000)
    policy = RestartPolicy(max_restarts=2, window_s=60, backoff_initial_s=0.001, backoff_max_s=0.002)
    # Act: run_supervised gives up and returns by itself
    with anyio.fail_after(3):
        await run_supervised(probe, policy, w.group)
    # Assert
    assert probe.starts == 3
    assert probe.restarts == 2
    assert probe.status == "halted"
    assert w.group.halted
    assert w.group.halt_reason == f"{NAME} failed 3 times in 60s: RuntimeError('start 3 failed')"
    assert w.kinds() == [
        ("started", 0, False),
        ("failed", 0, False),
        ("started", 1, False),
        ("failed", 1, False),
        ("started", 2, False),
        ("failed", 2, False),
        ("failed", 2, True),
    ]
    last = w.system[-1][1]
    assert isinstance(last, ActorFailed)
    assert (last.actor, last.error, last.halted) == (NAME, "RuntimeError('start 3 failed')", True)


async def test_halted_actor_stays_down_and_leaves_its_inbox_alone() -> None:
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_on={1})
    policy = RestartPolicy(max_restarts=0, window_s=60, backoff_initial_s=0.001, backoff_max_s=0.002)
    w.inbox.send_nowait(beat(1))
    w.inbox.send_nowait(beat(2))
    with anyio.fail_after(3):
        await run_supervised(probe, policy, w.group)
    assert (probe.status, probe.starts, w.group.halted) == ("halted", 1, True)
    assert w.group.halt_reason.startswith(f"{NAME} failed 1 times in 60s: RuntimeError('boom 1')")


async def test_failures_further_apart_than_the_window_never_halt() -> None:
    # Arrange: one failure allowed per 50 ms window; each restart waits at least 60 ms
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_starts=3)
    policy = RestartPolicy(max_restarts=1, window_s=0.05, backoff_initial_s=0.06, backoff_max_s=0.08)
    # Act
    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, policy, w.group)
            await until(lambda: probe.starts == 4 and probe.status == "running")
            w.inbox.close()
    # Assert
    assert not w.group.halted
    assert (probe.status, probe.restarts) == ("stopped", 3)


# --- clean stop and cancellation ---------------------------------------------------------------


async def test_actor_whose_inbox_closes_handles_what_is_buffered_and_stops_cleanly() -> None:
    w = Tapped()
    probe = Probe(w.router, w.inbox)
    for i in (1, 2, 3):
        w.inbox.send_nowait(beat(i))
    w.inbox.close()
    with anyio.fail_after(2):
        await run_supervised(probe, FAST, w.group)
    assert probe.seen == [1, 2, 3]
    assert (probe.status, probe.restarts, probe.handled) == ("stopped", 0, 3)
    assert w.kinds() == [("started", 0, False), ("stopped", 0, False)]
    assert not w.group.halted


@pytest.mark.parametrize("where", ["waiting_for_inbox", "inside_handle"])
async def test_cancelling_the_task_group_stops_the_actor_promptly_without_restart_or_halt(where: str) -> None:
    # Arrange
    w = Tapped()
    probe = Probe(w.router, w.inbox)
    if where == "inside_handle":
        probe.block = anyio.Event()  # never set
    started = time.monotonic()
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, FAST, w.group)
            await until(lambda: probe.status == "running")
            if where == "inside_handle":
                w.inbox.send_nowait(beat(1))
                await until(lambda: probe.in_handle)
            await anyio.sleep(0.01)
            # Act
            tg.cancel_scope.cancel()
    # Assert
    assert time.monotonic() - started < 0.5
    assert probe.restarts == 0
    assert probe.starts == 1
    assert probe.status not in ("failed", "backoff", "halted")
    assert probe.last_error == ""
    assert not w.group.halted
    assert w.kinds() == [("started", 0, False)]


async def test_cancelling_during_backoff_stops_promptly_without_another_start() -> None:
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_starts=1)
    slow = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=30, backoff_max_s=30)
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, slow, w.group)
            await until(lambda: probe.status == "backoff")
            tg.cancel_scope.cancel()
    assert probe.starts == 1
    assert probe.restarts == 1
    assert not w.group.halted
    assert w.kinds() == [("started", 0, False), ("failed", 0, False)]


# --- nothing buffered is lost ---------------------------------------------------------------


async def test_messages_sent_while_the_actor_is_restarting_are_handled_after_the_restart() -> None:
    # Arrange
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_on={2})
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, backoff_max_s=0.2)
    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_supervised, probe, policy, w.group)
            w.inbox.send_nowait(beat(1))
            await until(lambda: probe.seen == [1])
            w.inbox.send_nowait(beat(2))
            await until(lambda: probe.status == "backoff")
            # Act: these arrive while the actor is down
            w.inbox.send_nowait(beat(3))
            w.inbox.send_nowait(beat(4))
            assert probe.status == "backoff"
            await until(lambda: probe.seen == [1, 3, 4])
            w.inbox.close()
    # Assert
    assert probe.status == "stopped"
    assert probe.restarts == 1


async def test_messages_behind_the_failing_one_in_the_same_batch_survive_the_restart() -> None:
    """``Actor.run`` takes a whole batch out of the inbox (``receive_batch``) and hands it
    to ``handle_batch``; when message 2 raises, messages 3 and 4 of that batch are no
    longer in the inbox and the restarted actor never sees them — contradicting the
    module's promise that "a restarted actor resumes on the same queue and nothing
    buffered is lost".  For the order actor that means fills or cancels silently dropped
    (positions and reservations wrong) whenever any message in the batch trips a bug.
    Fix: keep the unhandled tail on the actor, e.g. ``run`` stores the batch and an index
    (``self._unhandled = batch[i + 1:]`` on exception, with the failing message dropped
    and counted, or retried once) and ``run`` first drains ``_unhandled`` on restart
    before calling ``receive_batch`` again.
    """
    # Arrange: all four buffered, so they arrive as one batch
    w = Tapped()
    probe = Probe(w.router, w.inbox, fail_on={2})
    for i in (1, 2, 3, 4):
        w.inbox.send_nowait(beat(i))
    w.inbox.close()
    # Act
    with anyio.fail_after(2):
        await run_supervised(probe, FAST, w.group)
    # Assert (whether the failing message itself is retried is left to the fix)
    assert [i for i in probe.seen if i != 2] == [1, 3, 4]
    assert probe.restarts == 1


# --- back-pressure --------------------------------------------------------------------------


def trade(i: int) -> Trade:
    return Trade(exchange=EX, symbol=SYM, ts_event=i, ts_recv=i, price=D(100 + i), size=D(1))


async def test_lossless_message_to_a_full_inbox_waits_for_the_actor_and_is_never_dropped() -> None:
    # Arrange: a busy actor behind a 2-slot inbox (conflating, but trades are lossless)
    router = Router()
    inbox: Channel[Message] = Channel("probe", 2, conflate_key=quote_conflation_key)
    router.subscribe(inbox, (Trade,))
    probe = Probe(router, inbox)
    probe.block = anyio.Event()
    published: list[int] = []

    async def publisher() -> None:
        for i in (4, 5):
            await router.publish(trade(i))
            published.append(i)

    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            await router.publish(trade(1))
            await until(lambda: probe.in_handle)  # the actor holds 1 and is stuck on it
            await router.publish(trade(2))
            await router.publish(trade(3))  # the inbox is now full
            # Act
            tg.start_soon(publisher)
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            # Assert: the publisher waits, nothing is dropped
            assert published == []
            assert inbox.depth() == 2
            assert inbox.blocked_sends == 1
            probe.block.set()
            probe.block = None
            await until(lambda: probe.seen == [1, 2, 3, 4, 5])
            inbox.close()
    assert published == [4, 5]
    assert inbox.conflated == 0
    assert router.counts[Trade] == 5
