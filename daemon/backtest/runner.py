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


def _failure(actor: Actor, batch: list[Message], msg: MarketMessage, exc: Exception) -> BacktestError:
    """An actor raised: in a backtest that ends the run (the daemon would restart the actor)."""
    if isinstance(exc, BacktestError):
        return exc
    where = batch[actor._progress] if actor._progress < len(batch) else batch[-1]
    return BacktestError(f"{actor.name} failed on {type(where).__name__} at ts_event {msg.ts_event}: {exc!r}")


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
        self, gcfg: GroupConfig, account: PaperAccount, account_name: str, *, ignore_volume: bool
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
        # Candle input: the runner knows each bar; the recorder only needs the fills.
        self.group.router.subscribe(self.recorder, (OrderFilled,) if candles else (Bar, OrderFilled))
        total = len(msgs)
        for start in range(0, total, PROGRESS_EVERY):
            chunk = msgs[start : start + PROGRESS_EVERY]
            if candles:
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
        """The hot loop for candle input: equity recorded inline (see :meth:`Ledger.on_bar_close`).

        This is :meth:`_drain` unrolled: market-feed is first in the drain order and each bar
        arrives with every inbox empty, so the bar goes straight to its ``handle_batch``; the
        other inboxes are then drained in order, pass after pass, as :meth:`_drain` does.
        """
        clock = self.clock
        rec, ledger = self.recorder.items, self.ledger
        equity, opens = ledger.equity.append, ledger.bar_open_ns.append
        feed = self.group.market_feed
        accepted = feed.accepted
        quote_f, base_f, exposed = ledger.quote_f, ledger.base_f, bool(ledger.position)
        n_bars = accepted["Bar"]
        pairs = self._pairs
        assert pairs[0][0] is feed
        feed_batch = pairs[0][2]
        rest = pairs[1:]
        for bar in bars:
            clock.now_ns = bar.ts_event
            batch: list[Message] = [bar]
            try:
                await feed_batch(batch)
            except Exception as exc:
                raise _failure(feed, batch, bar, exc) from exc
            feed.handled += 1
            todo = rest
            while True:
                busy = False
                for actor, ch, handle_batch in todo:
                    batch = ch.items
                    if batch:
                        ch.items = []
                        try:
                            await handle_batch(batch)
                        except Exception as exc:
                            raise _failure(actor, batch, bar, exc) from exc
                        actor.handled += len(batch)
                        busy = True
                if not busy:
                    break
                todo = pairs
            if rec:
                self._last_open = bar.ts_open
                self._record(rec)
                quote_f, base_f, exposed = ledger.quote_f, ledger.base_f, bool(ledger.position)
            if accepted["Bar"] != n_bars:  # market-feed let it through (it drops invalid bars)
                n_bars += 1
                equity(quote_f + base_f * float(bar.close))
                opens(bar.ts_open)
                if exposed:
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
) -> BacktestResult:
    """Run one backtest of ``gcfg`` over ``msgs`` (time ordered, non-empty)."""
    if not msgs:
        raise BacktestError("no market data to backtest")
    ls = Lockstep(gcfg, account, account_name, ignore_volume=ignore_volume)
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
