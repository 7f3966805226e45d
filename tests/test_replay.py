"""The replay adapter: loaders on the bundled real data, malformed files, pacing, looping, cancellation."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import time
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import Bar, Message, Trade
from adapters.replay.feed import ReplayFeed, ReplayStats, load_candles, load_trades
from daemon.config import ReplayFeed as ReplayFeedConfig

DATA = Path(__file__).resolve().parent.parent / "adapters" / "replay" / "data"
CANDLES = DATA / "candles" / "UNITTEST_BTC-1m.json"
TRADES = DATA / "trades" / "XRP_ETH-trades.json.gz"
MS = 1_000_000
S = 1_000_000_000


def feed_cfg(path: Path, fmt: str = "candles", **kw: object) -> ReplayFeedConfig:
    return ReplayFeedConfig(path=str(path), format=fmt, **kw)  # type: ignore[arg-type]


def write_candles(tmp_path: Path, open_times_s: list[int], name: str = "c.json") -> Path:
    rows = [[t * 1000, "1.5", "2", "1", "1.75", "10"] for t in open_times_s]
    p = tmp_path / name
    p.write_text(json.dumps(rows))
    return p


class Collector:
    """A sink that records each message with the monotonic time it arrived."""

    def __init__(self, stop_after: int | None = None, scope: anyio.CancelScope | None = None) -> None:
        self.msgs: list[Message] = []
        self.times: list[float] = []
        self.stop_after = stop_after
        self.scope = scope
        self.first = anyio.Event()

    async def __call__(self, msg: Message) -> None:
        self.msgs.append(msg)
        self.times.append(time.monotonic())
        self.first.set()
        if self.scope is not None and self.stop_after is not None and len(self.msgs) >= self.stop_after:
            self.scope.cancel()


# --- loaders on the bundled real files ---------------------------------------------------------


def test_bundled_candles_exact() -> None:
    bars = load_candles(CANDLES, exchange="paper", symbol="UNITTEST/BTC")
    assert len(bars) == 13_681
    first, last = bars[0], bars[-1]
    assert first.ts_open == 1_509_836_520_000 * MS
    assert first.ts_event == first.ts_open + 60 * S
    assert (first.open, first.high, first.low, first.close) == (Decimal("0.00162008"),) * 4
    assert first.volume == Decimal("108.14853839")
    assert last.ts_open == 1_510_700_340_000 * MS
    assert (last.open, last.high, last.low, last.close) == (
        Decimal("0.00270001"),
        Decimal("0.00270002"),
        Decimal("0.00270001"),
        Decimal("0.00270002"),
    )
    assert last.volume == Decimal("1.94577668")
    assert all(b.interval_s == 60 and b.exchange == "paper" and b.symbol == "UNITTEST/BTC" for b in bars)


def test_bundled_candles_gaps_preserved() -> None:
    bars = load_candles(CANDLES)
    steps = [b.ts_open - a.ts_open for a, b in itertools.pairwise(bars)]
    assert all(step > 0 for step in steps)
    gaps = [(i, step // (60 * S)) for i, step in enumerate(steps) if step != 60 * S]
    assert len(gaps) == 538  # real missing minutes, not filled in
    assert gaps[:3] == [(5, 7), (10, 2), (21, 2)]
    assert max(steps) == 480 * S  # the longest hole: 8 minutes


def test_bundled_trades_exact() -> None:
    trades = load_trades(TRADES, exchange="paper", symbol="XRP/ETH")
    assert len(trades) == 12_477
    first, last = trades[0], trades[-1]
    assert first == Trade(
        exchange="paper",
        symbol="XRP/ETH",
        ts_event=1_570_752_011_620 * MS,
        ts_recv=1_570_752_011_620 * MS,
        price=Decimal("0.00141342"),
        size=Decimal("23.0"),
        side="sell",
        trade_id="13519807",
    )
    assert (last.trade_id, last.price, last.size, last.side) == (
        "13532283",
        Decimal("0.00152787"),
        Decimal("130.0"),
        "sell",
    )
    assert str(trades[5].price) == "0.00141557"  # exact digits, never a float
    sides = [t.side for t in trades]
    assert (sides.count("buy"), sides.count("sell")) == (6524, 5953)
    assert all(a.ts_event <= b.ts_event for a, b in itertools.pairwise(trades))


def test_unsorted_rows_are_sorted_stably(tmp_path: Path) -> None:
    rows = [
        [2000, "b", None, "buy", 1, 1, 1],
        [1000, "a", None, "sell", 1, 1, 1],
        [2000, "c", None, "buy", 1, 1, 1],
    ]
    p = tmp_path / "t.json.gz"
    p.write_bytes(gzip.compress(json.dumps(rows).encode()))
    assert [t.trade_id for t in load_trades(p)] == ["a", "b", "c"]


# --- malformed files ---------------------------------------------------------------------------

GOOD = "[1509836520000, 1, 2, 0.5, 1.5, 10]"
CANDLE_CASES = [
    ("[1509836580000, NaN, 2, 1, 1, 1]", "open (column 1): expected a finite non-negative number, got NaN"),
    (
        '[1509836580000, 1, "NaN", 1, 1, 1]',
        'high (column 2): expected a finite non-negative number, got "NaN"',
    ),
    ("[1509836580000, 1, 2, -1, 1, 1]", "low (column 3): expected a finite non-negative number, got -1"),
    (
        "[1509836580000, 1, 2, 1, 1, -0.5]",
        "volume (column 5): expected a finite non-negative number, got -0.5",
    ),
    (
        '[1509836580000, 1, 2, 1, "abc", 1]',
        'close (column 4): expected a finite non-negative number, got "abc"',
    ),
    (
        "[1509836580000, 1, 2, 1, Infinity, 1]",
        "close (column 4): expected a finite non-negative number, got Infinity",
    ),
    (
        "[1509836580000, 1, 2, 1, true, 1]",
        "close (column 4): expected a finite non-negative number, got true",
    ),
    (
        "[1509836580000, 1, 2, 1, null, 1]",
        "close (column 4): expected a finite non-negative number, got null",
    ),
    (
        "[1509836580000.5, 1, 2, 1, 1, 1]",
        "open_time_ms (column 0): expected a non-negative integer (milliseconds since the epoch), "
        "got 1509836580000.5",
    ),
    (
        "[-60000, 1, 2, 1, 1, 1]",
        "open_time_ms (column 0): expected a non-negative integer (milliseconds since the epoch), got -60000",
    ),
    (
        "[1509836580000, 1, 2, 1, 1]",
        "expected 6 values [open_time_ms, open, high, low, close, volume], got 5",
    ),
    ('{"t": 1}', 'expected an array [open_time_ms, open, high, low, close, volume], got {"t": 1}'),
]


@pytest.mark.parametrize(("row", "problem"), CANDLE_CASES)
def test_malformed_candle_row(tmp_path: Path, row: str, problem: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(f"[{GOOD}, {row}]")
    with pytest.raises(ValueError, match=f"^{re.escape(f'{p}: rows[1]: {problem}')}$"):
        load_candles(p)


TRADE_CASES = [
    ('[1, "7", null, "hold", 1, 1, 1]', 'side (column 3): expected "buy", "sell" or null, got "hold"'),
    (
        '[1, "7", null, "buy", -0.001, 1, 1]',
        "price (column 4): expected a finite non-negative number, got -0.001",
    ),
    ('[1, "7", null, "buy", 1, NaN, 1]', "amount (column 5): expected a finite non-negative number, got NaN"),
    (
        '[1, "7", null, "buy", 1, 1, -1]',
        "cost (column 6): expected a finite non-negative number or null, got -1",
    ),
    ('[1, 7.5, null, "buy", 1, 1, 1]', "trade_id (column 1): expected a string or integer trade id, got 7.5"),
    ('[1, "7", 3, "buy", 1, 1, 1]', "type (column 2): expected a string or null, got 3"),
]


@pytest.mark.parametrize(("row", "problem"), TRADE_CASES)
def test_malformed_trade_row(tmp_path: Path, row: str, problem: str) -> None:
    p = tmp_path / "bad.json.gz"
    p.write_bytes(gzip.compress(f'[[0, 1, "limit", "sell", "0.5", 2, 1], {row}]'.encode()))
    with pytest.raises(ValueError, match=f"^{re.escape(f'{p}: rows[1]: {problem}')}$"):
        load_trades(p)


def test_malformed_files(tmp_path: Path) -> None:
    not_json = tmp_path / "x.json"
    not_json.write_text("[[1, 2,")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(not_json))}: not valid JSON: Expecting value: "):
        load_candles(not_json)
    not_rows = tmp_path / "y.json"
    not_rows.write_text('{"rows": []}')
    with pytest.raises(
        ValueError,
        match=rf'^{re.escape(str(not_rows))}: expected a JSON array of rows, got {{"rows": \[\]}}$',
    ):
        load_candles(not_rows)
    not_gzip = tmp_path / "z.json.gz"
    not_gzip.write_text("[]")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(not_gzip))}: not a valid gzip file: "):
        load_trades(not_gzip)


@pytest.mark.anyio
async def test_bad_file_fails_start(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text(f"[{GOOD}, [1, NaN, 1, 1, 1, 1]]")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with anyio.fail_after(5):
        for path, message in ((p, "rows[1]: open"), (empty, "no rows to replay")):
            feed = ReplayFeed(feed_cfg(path, speed=0), "paper", "X/Y")
            async with anyio.create_task_group() as tg:
                with pytest.raises(ValueError, match=re.escape(message)):
                    await tg.start(feed.run, Collector())
            assert not feed.running and feed.emitted == 0


# --- playback ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_speed_zero_emits_everything_fast() -> None:
    feed = ReplayFeed(feed_cfg(CANDLES, speed=0), "paper", "UNITTEST/BTC")
    sink = Collector()
    before = time.time_ns()
    with anyio.fail_after(10):
        await feed.run(sink)
    assert len(sink.msgs) == feed.emitted == 13_681
    assert sink.times[-1] - sink.times[0] < 2.0
    assert [m.ts_event for m in sink.msgs] == [b.ts_event for b in load_candles(CANDLES)]
    assert all(isinstance(m, Bar) and m.symbol == "UNITTEST/BTC" for m in sink.msgs)
    assert before <= sink.msgs[0].ts_recv <= sink.msgs[-1].ts_recv <= time.time_ns()
    stats = feed.statistics()
    assert stats == ReplayStats(
        exchange="paper",
        symbol="UNITTEST/BTC",
        path=str(CANDLES),
        format="candles",
        speed=0.0,
        loop=False,
        running=False,
        rows=13_681,
        emitted=13_681,
        loops=1,
        last_ts_event=sink.msgs[-1].ts_event,
        behind_ms=0.0,
    )


@pytest.mark.anyio
async def test_speed_factor_honoured(tmp_path: Path) -> None:
    # 10 s of data (one bar per second) at 20x: ~0.5 s of wall time.
    path = write_candles(tmp_path, list(range(0, 11)))
    feed = ReplayFeed(feed_cfg(path, speed=20.0, interval_s=1), "paper", "X/Y")
    sink = Collector()
    with anyio.fail_after(5):
        start = time.monotonic()
        await feed.run(sink)
    assert len(sink.msgs) == 11
    for k, t in enumerate(sink.times):
        scheduled = k / 20.0
        assert scheduled - 0.002 <= t - start <= scheduled + 0.25, (k, t - start)  # never early
    assert 0.45 <= sink.times[-1] - start <= 0.9


@pytest.mark.anyio
async def test_sub_millisecond_gaps_keep_the_schedule(tmp_path: Path) -> None:
    # Bars 2 ms apart in data time at 2x are due 1 ms apart: emitted without sleeping
    # between them (at most 1 ms early), yet the whole run still takes ~99 ms.
    path = tmp_path / "dense.json"
    path.write_text(json.dumps([[ms * 2, 1, 1, 1, 1, 1] for ms in range(100)]))
    feed = ReplayFeed(feed_cfg(path, speed=2.0, interval_s=1), "paper", "X/Y")
    sink = Collector()
    with anyio.fail_after(5):
        await feed.run(sink)
    assert len(sink.msgs) == 100
    assert 0.09 <= sink.times[-1] - sink.times[0] <= 0.3


@pytest.mark.anyio
async def test_loop_shifts_timestamps_strictly_increasing(tmp_path: Path) -> None:
    path = write_candles(tmp_path, [0, 60, 300])  # span 300 s, with a gap
    feed = ReplayFeed(feed_cfg(path, speed=0, loop=True), "paper", "X/Y")
    assert feed.loop_shift_ns() == 360 * S
    with anyio.fail_after(5), anyio.CancelScope() as scope:
        sink = Collector(stop_after=10, scope=scope)
        await feed.run(sink)
    assert scope.cancel_called
    bars = [m for m in sink.msgs if isinstance(m, Bar)]
    opens = [(b.ts_open // S) for b in bars[:10]]
    assert opens == [0, 60, 300, 360, 420, 660, 720, 780, 1020, 1080]
    assert all(b.ts_event == b.ts_open + 60 * S for b in bars)
    assert all(a.ts_event < b.ts_event for a, b in itertools.pairwise(bars))
    assert feed.loops >= 3  # cancellation lands at the next checkpoint, here the end of a pass


@pytest.mark.anyio
async def test_loop_over_trades_file_keeps_increasing() -> None:
    feed = ReplayFeed(feed_cfg(TRADES, "trades", speed=0, loop=True), "paper", "XRP/ETH")
    n = 12_477
    with anyio.fail_after(10), anyio.CancelScope() as scope:
        sink = Collector(stop_after=2 * n + 5, scope=scope)
        await feed.run(sink)
    ts = [m.ts_event for m in sink.msgs]
    assert ts[n] > ts[n - 1] and ts[2 * n] > ts[2 * n - 1]  # strictly, across each boundary
    assert all(a <= b for a, b in itertools.pairwise(ts))
    assert ts[n] - ts[0] == feed.loop_shift_ns() == ts[n - 1] - ts[0] + 60 * S
    assert [m.trade_id for m in sink.msgs[n : n + 3]] == ["13519807", "13519808", "13519809"]  # type: ignore[attr-defined]


def test_iter_messages_unpaced(tmp_path: Path) -> None:
    path = write_candles(tmp_path, [0, 60])
    feed = ReplayFeed(feed_cfg(path, speed=1.0, loop=True), "paper", "X/Y")
    msgs = list(feed.iter_messages(loops=3))
    assert [m.ts_event // S for m in msgs] == [60, 120, 180, 240, 300, 360]
    assert all(m.ts_recv == m.ts_event for m in msgs)
    assert feed.emitted == 0  # counters belong to run()


@pytest.mark.anyio
async def test_cancel_while_sleeping(tmp_path: Path) -> None:
    path = write_candles(tmp_path, [0, 3600])  # the second bar is due in an hour
    feed = ReplayFeed(feed_cfg(path, speed=1.0), "paper", "X/Y")
    sink = Collector()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(feed.run, sink)
            await sink.first.wait()
            start = time.monotonic()
            tg.cancel_scope.cancel()
    assert time.monotonic() - start < 0.1
    assert feed.emitted == 1 and not feed.running


@pytest.mark.anyio
async def test_cancel_unpaced_loop_with_a_sink_that_never_yields() -> None:
    feed = ReplayFeed(feed_cfg(CANDLES, speed=0, loop=True), "paper", "X/Y")
    count = 0

    async def sink(msg: Message) -> None:
        nonlocal count
        count += 1

    start = time.monotonic()
    with anyio.fail_after(5), anyio.move_on_after(0.3):
        await feed.run(sink)
    assert time.monotonic() - start < 0.5
    assert count == feed.emitted > 0


@pytest.mark.anyio
async def test_restart_resumes_where_the_sink_stopped(tmp_path: Path) -> None:
    path = write_candles(tmp_path, [0, 60, 120, 180, 240])
    feed = ReplayFeed(feed_cfg(path, speed=0, loop=True), "paper", "X/Y")
    seen: list[int] = []
    fail_at = {2, 8}

    async def sink(msg: Message) -> None:
        if len(seen) in fail_at:
            fail_at.discard(len(seen))
            raise RuntimeError("inbox broke")
        seen.append(msg.ts_event // S)
        if len(seen) == 12:
            raise anyio.get_cancelled_exc_class()()

    with anyio.fail_after(5):
        for _ in range(2):  # a supervisor restarting the feed after each failure
            with pytest.raises(RuntimeError, match="inbox broke"):
                await feed.run(sink)
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await feed.run(sink)
    # no gap, no duplicate, time never goes backwards across restarts and the loop boundary
    assert seen == [60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 660, 720]
    assert feed.emitted == 11 and feed.loops == 2  # the 12th never returned from the sink


def test_bad_speed_refused(tmp_path: Path) -> None:
    path = write_candles(tmp_path, [0])
    for speed in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=r"need speed >= 0, interval_s > 0"):
            ReplayFeed(feed_cfg(path, speed=speed), "paper", "X/Y")


def test_shipped_config_feeds() -> None:
    from daemon.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "config.toml")
    counts = {}
    for g in cfg.groups:
        feed = ReplayFeed(g.feed, g.exchange, g.symbol)
        msgs = list(feed.iter_messages())
        assert all(m.symbol == g.symbol and m.exchange == g.exchange for m in msgs)
        counts[g.symbol] = (g.feed.format, len(msgs))
    assert counts == {"UNITTEST/BTC": ("candles", 13_681), "XRP/ETH": ("trades", 12_477)}


def test_feeds_of_one_file_share_its_parsed_copy_and_stamp_their_own_symbol(tmp_path: Path) -> None:
    """A thousand groups on one file must not hold a thousand copies of it (~10 MB each)."""
    path = tmp_path / "c.json"
    path.write_bytes(CANDLES.read_bytes())
    cfg = ReplayFeedConfig(path=str(path), format="candles", speed=0.0)
    a, b = ReplayFeed(cfg, "paper", "A/BTC"), ReplayFeed(cfg, "paper", "B/BTC")
    assert a.load() is b.load()  # one parsed copy
    first_a, first_b = next(a.iter_messages()), next(b.iter_messages())
    assert (first_a.exchange, first_a.symbol, first_b.symbol) == ("paper", "A/BTC", "B/BTC")
    assert first_a.ts_event == first_b.ts_event and isinstance(first_a, Bar) and isinstance(first_b, Bar)
    assert first_a.close == first_b.close
    rows = json.loads(path.read_text())
    path.write_text(json.dumps(rows[:10]))  # the file changed: a new feed reads the new file
    c = ReplayFeed(cfg, "paper", "C/BTC")
    assert len(c.load()) == 10 and len(a.load()) == len(rows)
    other = ReplayFeed(ReplayFeedConfig(path=str(path), format="candles", interval_s=300), "paper", "D/BTC")
    assert other.load() is not c.load()  # another interval is another parse
    assert next(other.iter_messages()).ts_event - next(c.iter_messages()).ts_event == 240 * 10**9


@pytest.mark.anyio
async def test_two_feeds_of_one_file_emit_each_its_own_symbol() -> None:
    cfg = ReplayFeedConfig(path=str(CANDLES), format="candles", speed=0.0, loop=False)
    got: dict[str, list[Message]] = {"A/BTC": [], "B/BTC": []}
    async with anyio.create_task_group() as tg:
        for sym in got:
            feed = ReplayFeed(cfg, "paper", sym)

            async def sink(msg: Message, out: list[Message] = got[sym]) -> None:
                out.append(msg)

            tg.start_soon(feed.run, sink)
    assert len(got["A/BTC"]) == len(got["B/BTC"]) > 1000
    assert {m.symbol for m in got["A/BTC"]} == {"A/BTC"} and {m.symbol for m in got["B/BTC"]} == {"B/BTC"}
