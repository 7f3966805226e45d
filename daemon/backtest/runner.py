"""The lockstep backtest loop: the daemon's own symbol group, driven message by message.

:func:`run_backtest` builds a :class:`daemon.group.SymbolGroup` (the same constructor the
daemon's supervisor uses) with :class:`~daemon.backtest.channel.LockstepChannel` inboxes,
no Redis tap and no journal, sets every actor's clock to one
:class:`~daemon.backtest.clock.SimClock`, and then for each market message:

1. sets the clock to the message's event time and puts it in the market-feed inbox;
2. drains the inboxes in a fixed order — market-feed, paper exchange, order,
   stop-monitor, strategy, risk, portfolio — handing each batch to the actor's own
   ``handle_batch``, and repeats until every inbox is empty;
3. records that message's fills and (at each bar) the equity in the :class:`Ledger`.

The paper exchange sees a bar before the strategy does, as a venue sees prices before a
strategy's bar closes: a market order sent on bar *t*'s close is answered on bar *t*,
filled at bar *t+1*'s open (with the account's fees and slippage), and the strategy
already knows that position when bar *t+1* closes.

Batched lockstep (candle input).  Handing every bar to every actor on its own costs more than
the bar's own work, and most bars change nothing but indicators.  So candles go in runs:

1. market-feed takes a chunk of bars in one batch (validation, counters); what it lets
   through is held by the runner (the only subscriber to Bar) instead of going straight to
   the Bar subscribers' inboxes;
2. the paper exchange and stop-monitor are asked how many of the next bars they would
   take without acting (``quiet_bars``: no open order reached, no stop level or exit time
   touched; a trailing or native stop answers 0) — a question that changes nothing;
3. the strategy takes bars up to that limit, stopping after the first it acts on
   (``take_bars``; its outputs are queued as usual);
4. the bars before that one go to paper, stop-monitor and risk as one batch each, market-feed
   marking the group's last price at the run's last bar; if anything at all comes of that
   batch the run stops with an error (a wrong quiet answer must never pass silently);
5. the bar the strategy acted on — or a bar paper/stop-monitor would act on — goes to the
   others ahead of anything queued, and every inbox is drained as in stepwise mode.

Every actor still sees every bar, in order, and every message it would see, in the same
order relative to its bars: the result is the stepwise one (``stepwise=True``, bar by bar as
above), which ``tests/test_backtest_batched.py`` checks bit for bit for every strategy.
Trade input always goes stepwise.  (While the strategy takes a run, the clock still reads the
previous run's last bar: strategies read event time from the bars; only the age of an
intent risk has not answered yet — answered within the same drain here — reads the clock.)

Nothing here runs on an event loop: the whole run is one coroutine stepped once; an
actor that tried to wait (it never needs to, as lockstep inboxes never fill) is an error.
The run is therefore deterministic and reads no wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from actors.channels import Router
from actors.messages import Bar, Message, OrderFilled
from actors.portfolio import Portfolio
from actors.runtime import Actor, RestartPolicy
from actors.timefmt import iso_utc
from adapters.paper.account import PaperAccountState
from adapters.paper.actor import PaperExchange
from daemon.backtest.channel import LockstepChannel
from daemon.backtest.clock import SimClock
from daemon.backtest.data import BacktestError, MarketMessage
from daemon.backtest.ledger import Ledger
from daemon.config import ChannelsSection, GroupConfig, PaperAccount
from daemon.group import SymbolGroup

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 8192
QUIET_WINDOW = 32  # bars paper and stop-monitor are asked about at a time


@dataclass(slots=True)
class BacktestResult:
    """Everything a report needs from one run."""

    group: GroupConfig
    account: PaperAccount
    ledger: Ledger
    messages: int
    first_ns: int
    last_ns: int
    interval_s: int
    initial_equity: Decimal
    final_equity: Decimal
    last_price: Decimal
    counters: dict[str, dict[str, int]]


def _failure(actor: Actor, batch: Sequence[Message], msg: MarketMessage, exc: Exception) -> BacktestError:
    """An actor raised: in a backtest that ends the run (the daemon would restart the actor)."""
    if isinstance(exc, BacktestError):
        return exc
    where = batch[actor._progress] if actor._progress < len(batch) else batch[-1]
    return BacktestError(f"{actor.name} failed on {type(where).__name__} at {iso_utc(msg.ts_event)}: {exc!r}")


def _drive(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends to completion, without an event loop."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise BacktestError("an actor tried to wait during a backtest (lockstep inboxes never fill)")


class Lockstep:
    """One group wired on lockstep inboxes and a simulated clock."""

    def __init__(
        self,
        gcfg: GroupConfig,
        account: PaperAccount,
        account_name: str,
        *,
        ignore_volume: bool,
        stepwise: bool = False,
    ) -> None:
        self.clock = SimClock()
        self.paper = PaperAccountState(account, account_name)
        inst = gcfg.instrument
        self.portfolio = Portfolio(
            account_name,
            Router(None),
            LockstepChannel(f"portfolio:{account_name}"),
            dict(account.balances),
            {gcfg.symbol: (inst.base, inst.quote)},
        )
        self.group = SymbolGroup(
            gcfg, self.paper, self.portfolio, None, ChannelsSection(), RestartPolicy(), LockstepChannel
        )
        g = self.group
        assert isinstance(g.venue, PaperExchange)  # a backtest always trades on paper
        self.actors: list[Actor] = [
            g.market_feed,
            g.venue,
            g.order,
            g.stop_monitor,
            g.strategy,
            g.risk,
            self.portfolio,
        ]
        for actor in self.actors:
            actor.clock = self.clock
        g.venue.set_clock(self.clock)
        g.venue.engine.volume_limited = not ignore_volume
        self.recorder = LockstepChannel("backtest-recorder")
        feed_inbox = g.market_feed.inbox
        assert isinstance(feed_inbox, LockstepChannel)
        self._push = feed_inbox.send_nowait
        self._pairs = [(a, ch, a.handle_batch) for a, ch in self.inboxes()]
        # Batched candles: who gets bars, and who of them takes a quiet run as one batch
        # (paper and stop-monitor are asked first how many bars stay quiet; risk only keeps
        # the day's figures from bars; the strategy takes its quiet bars itself).
        self._bar_inboxes: list[LockstepChannel] = []
        for ch in g.router.routes_for(Bar):
            assert isinstance(ch, LockstepChannel)
            self._bar_inboxes.append(ch)
        takers = [g.venue, g.stop_monitor, g.strategy, g.risk]
        if {id(ch) for ch in self._bar_inboxes} != {id(a.inbox) for a in takers}:
            raise BacktestError("bars reach other actors than the batched backtest knows: run it stepwise")
        self._quiet_pairs = [(a, a.handle_batch) for a in (g.venue, g.stop_monitor, g.risk)]
        self.stepwise = stepwise
        # Batched candles: what market-feed lets through is held here, released to them run by run.
        self._held = LockstepChannel("backtest-held-bars")
        self._last_open: int | None = None
        self.ledger = Ledger(
            account.balances.get(inst.base, Decimal(0)), account.balances.get(inst.quote, Decimal(0))
        )

    def inboxes(self) -> list[tuple[Actor, LockstepChannel]]:
        out = []
        for actor in self.actors:
            inbox = actor.inbox
            assert isinstance(inbox, LockstepChannel)
            out.append((actor, inbox))
        return out

    async def run(self, msgs: Sequence[MarketMessage], progress: Progress | None) -> None:
        """Push each message, drain every inbox, record; see the module docstring."""
        candles = bool(msgs) and type(msgs[0]) is Bar
        if candles and not self.stepwise:
            self.group.router.set_routes(Bar, (self._held,))
        # Candle input: the runner knows each bar; the recorder only needs the fills.
        self.group.router.subscribe(self.recorder, (OrderFilled,) if candles else (Bar, OrderFilled))
        total = len(msgs)
        for start in range(0, total, PROGRESS_EVERY):
            chunk = msgs[start : start + PROGRESS_EVERY]
            if candles and self.stepwise:
                await self._run_stepwise(chunk)  # type: ignore[arg-type]
            elif candles:
                await self._run_candles(chunk)  # type: ignore[arg-type]
            else:
                await self._run_any(chunk)
            if progress is not None:
                progress(start + len(chunk), total)

    async def _drain(self, msg: MarketMessage) -> None:
        """Hand every queued batch to its actor, in order, until all inboxes are empty."""
        again = True
        while again:
            again = False
            for actor, ch, handle_batch in self._pairs:
                batch = ch.items
                if batch:
                    ch.items = []
                    try:
                        await handle_batch(batch)
                    except Exception as exc:
                        raise _failure(actor, batch, msg, exc) from exc
                    actor.handled += len(batch)
                    again = True

    async def _run_candles(self, bars: Sequence[Bar]) -> None:
        """Candle input, batched: see "Batched lockstep" in the module docstring."""
        g, clock, ledger = self.group, self.clock, self.ledger
        feed, strategy = g.market_feed, g.strategy
        assert isinstance(g.venue, PaperExchange)
        engine, stops = g.venue.engine, g.stop_monitor
        clock.now_ns = bars[0].ts_event
        batch: list[Message] = list(bars)
        try:
            await feed.handle_batch(batch)
        except Exception as exc:
            raise _failure(feed, batch, bars[0], exc) from exc
        feed.handled += len(batch)
        pending: list[Bar] = self._held.items  # type: ignore[assignment]
        self._held.items = []
        quiet = self._quiet_pairs
        equity, opens = ledger.equity.append, ledger.bar_open_ns.append
        n = len(pending)
        i = limit = 0
        while i < n:
            if limit <= i:
                # How far paper and stop-monitor stay quiet (asked a window at a time; the answer
                # holds until they next get something other than a quiet bar)
                end = min(n, i + QUIET_WINDOW)
                limit = i + min(engine.quiet_bars(pending, i, end), stops.quiet_bars(pending, i, end))
            if limit == i:
                # This bar may make paper or stop-monitor act: every actor gets it on its own.
                self._step(pending[i])
                await self._drain(pending[i])
                self._close_bar(pending[i])
                i += 1
                continue
            # The strategy first, up to the first bar it acts on (its outputs are queued).
            try:
                taken, acted = await strategy.take_bars(pending, i, limit)
            except Exception as exc:
                raise _failure(strategy, pending[i:limit], pending[i], exc) from exc
            strategy.handled += taken
            quiet_n = taken - acted
            if quiet_n:
                # The bars before it produce nothing anywhere: one batch for each other taker.
                j = i + quiet_n
                run: list[Message] = pending[i:j]  # type: ignore[assignment]
                last = pending[j - 1]
                clock.now_ns = last.ts_event
                feed.mark_bar(last)
                queued = self._queued()
                for actor, handle_batch in quiet:
                    try:
                        await handle_batch(run)
                    except Exception as exc:
                        raise _failure(actor, run, last, exc) from exc
                    actor.handled += quiet_n
                if self._queued() != queued:
                    raise BacktestError(
                        f"an actor acted on a bar it had called quiet (bars up to {iso_utc(last.ts_event)})"
                    )
                quote_f, base_f = ledger.quote_f, ledger.base_f
                for bar in pending[i:j]:
                    equity(quote_f + base_f * float(bar.close))
                    opens(bar.ts_open)
                if ledger.position:
                    ledger.exposed_bars += quiet_n
            if acted:
                # The bar the strategy acted on: the others get it ahead of what it emitted.
                bar = pending[i + quiet_n]
                self._step(bar, front=True)
                await self._drain(bar)
                self._close_bar(bar)
                limit = 0  # what it started may have changed their answer
            i += taken

    def _queued(self) -> int:
        return sum(len(ch.items) for _, ch, _ in self._pairs)

    def _step(self, bar: Bar, *, front: bool = False) -> None:
        """Make ``bar`` the current one and queue it for the Bar subscribers (bar the strategy
        when ``front``: it has taken it already; the others get it before anything queued)."""
        self.clock.now_ns = bar.ts_event
        self.group.market_feed.mark_bar(bar)
        if front:
            taken = self.group.strategy.inbox
            for ch in self._bar_inboxes:
                if ch is not taken:
                    ch.items.insert(0, bar)
        else:
            for ch in self._bar_inboxes:
                ch.items.append(bar)

    def _close_bar(self, bar: Bar) -> None:
        """After ``bar``'s messages: its fills, then its equity."""
        ledger, rec = self.ledger, self.recorder.items
        if rec:
            self._last_open = bar.ts_open
            self._record(rec)
        ledger.equity.append(ledger.quote_f + ledger.base_f * float(bar.close))
        ledger.bar_open_ns.append(bar.ts_open)
        if ledger.position:
            ledger.exposed_bars += 1

    async def _run_stepwise(self, bars: Sequence[Bar]) -> None:
        """Candle input, one bar at a time through every actor (``stepwise=True``).

        The reference the batched loop is tested against: each bar goes to market-feed's
        ``handle_batch`` alone, then every inbox is drained, pass after pass, as
        :meth:`_drain` does; equity is recorded after the bar's fills.
        """
        clock = self.clock
        rec, ledger = self.recorder.items, self.ledger
        equity, opens = ledger.equity.append, ledger.bar_open_ns.append
        feed = self.group.market_feed
        accepted = feed.accepted
        n_bars = accepted["Bar"]
        push = self._push
        for bar in bars:
            clock.now_ns = bar.ts_event
            push(bar)
            await self._drain(bar)
            if rec:
                self._last_open = bar.ts_open
                self._record(rec)
            if accepted["Bar"] != n_bars:  # market-feed let it through (it drops invalid bars)
                n_bars += 1
                equity(ledger.quote_f + ledger.base_f * float(bar.close))
                opens(bar.ts_open)
                if ledger.position:
                    ledger.exposed_bars += 1

    async def _run_any(self, msgs: Sequence[MarketMessage]) -> None:
        clock, push, drain = self.clock, self._push, self._drain
        rec = self.recorder.items
        for msg in msgs:
            clock.now_ns = msg.ts_event
            push(msg)
            await drain(msg)
            if rec:
                self._record(rec)

    def _record(self, rec: list[Message]) -> None:
        """Bars and fills in the order they happened.

        Candle input: only fills arrive here, at the open of the bar just pushed (its equity
        is recorded after them).  Trade input: a trade that starts a new interval closes the
        previous bar before it can fill anything, so a bar queued before a fill is recorded
        before it, and the fill belongs to the bar in progress, at the trade's time.
        """
        batch = list(rec)
        rec.clear()
        ledger = self.ledger
        opened = self._last_open
        for m in batch:
            if type(m) is Bar:
                ledger.on_bar_close(float(m.close), m.ts_open)
            elif type(m) is OrderFilled:
                ledger.on_fill(m, len(ledger.equity), m.ts_event if opened is None else opened)

    def counters(self) -> dict[str, dict[str, int]]:
        g = self.group
        return {
            "strategy": {
                "signals": g.strategy.signals,
                "intents": g.strategy.intents,
                "rejected": g.strategy.rejections,
            },
            "risk": dict(sorted(g.risk.decisions.items())),
            "orders": dict(g.order.counts),
            "order_anomalies": dict(sorted(g.order.anomalies.items())),
            "stops": {"triggered": g.stop_monitor.triggered},
            "market_rejected": dict(sorted(g.market_feed.rejected.items())),
        }


def _price(msg: MarketMessage, which: str) -> Decimal:
    if type(msg) is Bar:
        return msg.open if which == "open" else msg.close
    return msg.price  # type: ignore[union-attr]


def run_backtest(
    gcfg: GroupConfig,
    account: PaperAccount,
    account_name: str,
    msgs: Sequence[MarketMessage],
    *,
    interval_s: int,
    ignore_volume: bool = False,
    progress: Progress | None = None,
    stepwise: bool = False,
) -> BacktestResult:
    """Run one backtest of ``gcfg`` over ``msgs`` (time ordered, non-empty).

    ``stepwise``: candles go through the actors one bar at a time instead of in quiet runs
    (slower; the same result, which the tests check).
    """
    if not msgs:
        raise BacktestError("no market data to backtest")
    ls = Lockstep(gcfg, account, account_name, ignore_volume=ignore_volume, stepwise=stepwise)
    _drive(ls.run(msgs, progress))
    ledger = ls.ledger
    first, last = msgs[0], msgs[-1]
    last_price = _price(last, "close")
    initial = ledger_initial(account, gcfg, _price(first, "open"))
    final = ledger.quote + ledger.base * last_price
    return BacktestResult(
        group=gcfg,
        account=account,
        ledger=ledger,
        messages=len(msgs),
        first_ns=first.ts_open if type(first) is Bar else first.ts_event,
        last_ns=last.ts_event,
        interval_s=interval_s,
        initial_equity=initial,
        final_equity=final,
        last_price=last_price,
        counters=ls.counters(),
    )


def ledger_initial(account: PaperAccount, gcfg: GroupConfig, price: Decimal) -> Decimal:
    """Starting equity in the quote asset: quote balance + base balance x first price."""
    inst = gcfg.instrument
    zero = Decimal(0)
    return account.balances.get(inst.quote, zero) + account.balances.get(inst.base, zero) * price
