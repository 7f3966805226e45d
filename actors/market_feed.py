"""Market-feed actor: the gate between a venue adapter and the rest of the group.

Takes: Trade, Quote, Bar, BookDelta, BookSnapshot from the adapter (its inbox).
Emits: the same messages once validated, plus Bars built from trades when the feed
carries no bars of its own.

Every message is checked before anyone sees it: prices must be finite and positive,
sizes finite and non-negative (trades positive), a quote must not be crossed, a bar's
high/low must contain open/close, and event time must not go backwards.  A message that
fails is dropped, counted per reason in ``rejected`` (exported as
``tradingd_market_rejected_total``) and logged at a bounded rate; the actor keeps going.
"""

from __future__ import annotations

from decimal import Decimal

from actors.bar_builder import BarBuilder
from actors.bar_check import bar_ok
from actors.channels import Channel, Router
from actors.messages import Bar, BookDelta, BookSnapshot, Message, Quote, Trade
from actors.runtime import Actor
from actors.state import SymbolState
from actors.timefmt import iso_utc

LOG_EVERY_S = 10.0
ZERO = Decimal(0)


def _bad_number(value: Decimal, allow_zero: bool) -> bool:
    if not value.is_finite():
        return True
    return value < 0 or (value == 0 and not allow_zero)


class MarketFeed(Actor):
    kind = "market-feed"

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        state: SymbolState,
        build_bars_s: int | None,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.state = state
        self.bars = BarBuilder(exchange, symbol, build_bars_s) if build_bars_s else None
        self.rejected: dict[str, int] = {}
        self.accepted: dict[str, int] = {"Trade": 0, "Quote": 0, "Bar": 0, "BookDelta": 0, "BookSnapshot": 0}
        self._last_trade_ts = 0
        self._last_bar_ts = 0
        self._last_log: float | None = None  # first after_batch starts the window (clock set by then)
        self._window = [0, 0]  # trades, bars since last log line

    async def handle(self, msg: Message) -> None:
        match msg:
            case Trade():
                await self._handle_trade(msg)
            case Bar():
                await self._handle_bar(msg)
            case Quote():
                await self._handle_quote(msg)
            case BookDelta() | BookSnapshot():
                self.accepted[type(msg).__name__] += 1
                await self.router.publish(msg)
            case _:
                self._reject("unknown_kind", msg, f"unexpected message kind {type(msg).__name__}")

    async def handle_batch(self, batch: list[Message]) -> None:
        """Trades and bars take a synchronous fast path; everything else goes through :meth:`handle`."""
        publish_nowait = self.router.publish_nowait
        bars = self.bars
        accept = self._accept_trade
        accept_bar = self._accept_bar
        n_trades = n_bars = 0
        try:
            for i, msg in enumerate(batch):
                self._progress = i
                if type(msg) is not Trade:
                    if type(msg) is Bar:
                        if accept_bar(msg):
                            n_bars += 1
                            for ch in publish_nowait(msg):
                                await ch.send(msg)
                    else:
                        await self.handle(msg)
                    continue
                if not accept(msg):
                    continue
                n_trades += 1
                for ch in publish_nowait(msg):
                    await ch.send(msg)
                if bars is not None:
                    bar = bars.on_trade(msg, msg.ts_recv)
                    if bar is not None:
                        n_bars += 1
                        for ch in publish_nowait(bar):
                            await ch.send(bar)
        finally:
            window = self._window
            if n_trades:
                self.accepted["Trade"] += n_trades
                window[0] += n_trades
            if n_bars:
                self.accepted["Bar"] += n_bars
                window[1] += n_bars

    async def _handle_trade(self, t: Trade) -> None:
        await self.handle_batch([t])

    def _accept_trade(self, t: Trade) -> bool:
        price, size = t.price, t.size
        if not (price.is_finite() and price > ZERO and size.is_finite() and size > ZERO):
            self._reject(
                "bad_number", t, f"trade price {price} size {size}: expected finite positive numbers"
            )
            return False
        ts = t.ts_event
        if ts < self._last_trade_ts:
            self._reject(
                "out_of_order", t, f"trade at {ts} is older than the last one at {self._last_trade_ts}"
            )
            return False
        self._last_trade_ts = ts
        st = self.state
        st.last_price = price
        st.last_ts_event = ts
        st.last_recv_ns = t.ts_recv
        return True

    async def _handle_bar(self, b: Bar) -> None:
        await self.handle_batch([b])

    def _accept_bar(self, b: Bar) -> bool:
        """Validate ``b`` (see :func:`actors.bar_check.bar_ok`) and mark the price; False: dropped."""
        ts = b.ts_event
        if bar_ok(b) and ts > self._last_bar_ts:
            self._last_bar_ts = ts
            self.mark_bar(b)
            return True
        # Refused: find the first rule it breaks, for the counter and the log line.
        prices = (b.open, b.high, b.low, b.close)
        if any(_bad_number(p, False) for p in prices) or _bad_number(b.volume, True):
            self._reject("bad_number", b, f"bar o={b.open} h={b.high} l={b.low} c={b.close} v={b.volume}")
        elif b.low > min(b.open, b.close) or b.high < max(b.open, b.close):
            self._reject("inconsistent_bar", b, f"bar high {b.high} / low {b.low} do not contain open/close")
        else:
            self._reject(
                "out_of_order",
                b,
                f"bar closing at {iso_utc(b.ts_event)} is not after {iso_utc(self._last_bar_ts)}",
            )
        return False

    def mark_bar(self, b: Bar) -> None:
        """The group's last price is ``b``'s close, as of now (done for every accepted bar).

        The backtest runner validates a run of bars ahead and marks each again as it releases
        it to the other actors, so they read the price of the bar they are at."""
        st = self.state
        st.last_price = b.close
        st.last_ts_event = b.ts_event
        st.last_recv_ns = self.clock.time_ns()

    async def _handle_quote(self, q: Quote) -> None:
        numbers = (q.bid_price, q.ask_price)
        if any(_bad_number(p, False) for p in numbers) or any(
            _bad_number(s, True) for s in (q.bid_size, q.ask_size)
        ):
            self._reject(
                "bad_number", q, f"quote bid {q.bid_price}x{q.bid_size} ask {q.ask_price}x{q.ask_size}"
            )
            return
        if q.bid_price >= q.ask_price:
            self._reject("crossed_quote", q, f"quote bid {q.bid_price} >= ask {q.ask_price}")
            return
        self.accepted["Quote"] += 1
        self.state.last_recv_ns = q.ts_recv  # a quiet market still shows a live feed
        await self.router.publish(q)

    def _reject(self, reason: str, msg: Message, text: str) -> None:
        n = self.rejected.get(reason, 0) + 1
        self.rejected[reason] = n
        if n <= 10 or n % 1000 == 0:
            self.log.warning("dropped market message (%s, #%d): %s", reason, n, text)

    async def after_batch(self) -> None:
        now = self.clock.monotonic()
        if self._last_log is None:
            self._last_log = now
        if now - self._last_log < LOG_EVERY_S:
            return
        trades, bars = self._window
        self._window = [0, 0]
        self._last_log = now
        if trades or bars:
            self.log.info(
                "market: %d trades, %d bars in %.0fs, last price %s",
                trades,
                bars,
                LOG_EVERY_S,
                self.state.last_price,
            )
