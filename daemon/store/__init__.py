"""The PostgreSQL store (the queryable copy of the order journal) and how messages become rows.

- here: the mapping from journal records to table rows (:func:`build_rows`, one
  ``INSERT ... SELECT FROM unnest(...)`` statement per table, :data:`UPDATE_ORDERS` for
  order status) shared by the writer and the benchmarks;
- :mod:`daemon.store.migrations`: versioned schema (``sql/NNNN_name.sql``), :func:`migrate`
  and :func:`migrate_main` (``tradingd migrate --dsn DSN``);
- :mod:`daemon.store.writer`: :class:`~daemon.store.writer.JournalWriter`, which copies the
  journal into the tables in batches and resumes from its last committed offset.

The journal (:mod:`daemon.journal`) stays the source of truth; nothing on the trading path
waits for PostgreSQL.  Rows from the journal carry (journal id, offset) where the message has
no natural key, and every insert is ``ON CONFLICT DO NOTHING``, so a replay changes nothing.
Order status follows the order actor's rules: a terminal status stays, a fill implies
acceptance, a refused *request* (``cancel rejected: ...``) leaves the order alone.  An OCO list is
one ``orders`` row under the list's id: its legs' status events move it (a leg's fills are the
list's), except a leg's ``OrderExpired`` (the other leg filled or triggered: the list goes on);
``fills`` rows keep the leg's id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import asyncpg
import msgspec

from actors.messages import (
    GroupSnapshot,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    Signal,
    StrategyCheckpoint,
    SubmitOrder,
    is_order_path,
)
from actors.oco import list_of_leg
from actors.order import REQUEST_REJECTS
from actors.order_ids import PREFIX
from daemon.store.migrations import LOCK_KEY, MigrationError, load_migrations, migrate, migrate_main

__all__ = [
    "LOCK_KEY",
    "TABLES",
    "UPDATE_ORDERS",
    "MigrationError",
    "Rows",
    "build_rows",
    "load_migrations",
    "migrate",
    "migrate_main",
    "update_rounds",
]

_JSON = msgspec.json.Encoder()
_MSGPACK = msgspec.msgpack.Encoder()

Record = tuple[int, Message]
Row = tuple[object, ...]


Getter = Callable[[str, int, Message], object]


def _path(m: object, path: str) -> object:
    for part in path.split("."):
        m = getattr(m, part, None)
    return m


_SPECIAL: dict[str, Getter] = {
    "@jid": lambda jid, off, m: jid,
    "@off": lambda jid, off, m: off,
    "@kind": lambda jid, off, m: type(m).__name__,
    "@json": lambda jid, off, m: _JSON.encode(m).decode(),
    "@cid": lambda jid, off, m: (
        getattr(m, "client_order_id", None) or getattr(m, "last_client_order_id", None)
    ),
    "@intent": lambda jid, off, m: getattr(m, "intent_id", None) or _path(m, "intent.intent_id"),
    "@group": lambda jid, off, m: f"{m.exchange}:{m.symbol}",
    "@msgpack": lambda jid, off, m: _MSGPACK.encode(m),
}


class _Insert:
    """``INSERT INTO table (...) SELECT ... FROM unnest($1::t1[], ...)``: many rows, one round trip.

    ``spec``: ``column:pgtype[=source]`` items; source is a message attribute path (default:
    the column name) or an ``@`` special; a ``~`` prefix passes a value to ``computed``
    expressions without storing it.  A ``computed`` entry named like a column replaces it.
    Parameters go specials first, then attributes (fetched by one ``attrgetter`` per type).
    """

    def __init__(self, table: str, spec: str, computed: dict[str, str], tail: str = "ON CONFLICT DO NOTHING"):
        items = [(c.lstrip("~"), c.startswith("~"), t, src or c.lstrip("~")) for c, t, src in _parse(spec)]
        items.sort(key=lambda item: not item[3].startswith("@"))
        names = [n for n, _, _, _ in items]
        stored = [n for n, hidden, _, _ in items if not hidden]
        rest = {k: v for k, v in computed.items() if k not in stored}
        params = ", ".join(f"${i}::{t}[]" for i, (_, _, t, _) in enumerate(items, 1))
        self.table = table
        self._specials = [_SPECIAL[src] for _, _, _, src in items if src.startswith("@")]
        self._paths = [src for _, _, _, src in items if not src.startswith("@")]
        self._fast: dict[type[Message], Callable[[Message], tuple[object, ...]]] = {}
        self.sql = (
            f"INSERT INTO {table} ({', '.join(stored + list(rest))}) "
            f"SELECT {', '.join([computed.get(n, n) for n in stored] + list(rest.values()))} "
            f"FROM unnest({params}) AS t({', '.join(names)}) {tail}"
        )
        values = ", ".join(f"${i}::{t}" for i, (_, _, t, _) in enumerate(items, 1))
        self.row_sql = self.sql.replace(f"unnest({params})", f"(VALUES ({values}))")  # one row (benchmarks)

    def row(self, jid: str, off: int, m: Message) -> Row:
        head = [f(jid, off, m) for f in self._specials]
        get = self._fast.get(type(m))
        if get is None:  # the first of its type: one C-level getter if it has every attribute
            getter, paths = attrgetter(*self._paths), self._paths
            try:
                getter(m)
                get = getter if len(paths) > 1 else (lambda m: (getter(m),))
            except AttributeError:
                get = lambda m: tuple(_path(m, p) for p in paths)  # noqa: E731
            self._fast[type(m)] = get
        try:
            return (*head, *get(m))
        except AttributeError:  # an attribute on the way is None in this one
            return (*head, *(_path(m, p) for p in self._paths))

    async def run(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> int:
        """Rows inserted (or updated by an upsert); conflicts that did nothing do not count."""
        if not rows:
            return 0
        status: str = await conn.execute(self.sql, *(list(col) for col in zip(*rows, strict=True)))
        return int(status.rsplit(" ", 1)[-1])


def _parse(spec: str) -> list[tuple[str, str, str]]:
    """``"col:type=src col2:type"`` -> ``[(col, type, src), (col2, type, "")]``."""
    return [(col, *rest.partition("=")[::2]) for col, _, rest in (i.partition(":") for i in spec.split())]


_TS = "ts_event_ns:int8=ts_event ts_recv_ns:int8=ts_recv"
_AT = {"ts_event": "ns_to_timestamptz(ts_event_ns)"}
_AT_JOURNAL = "journal_id:text=@jid journal_offset:int8=@off"
EVENTS = _Insert(
    "order_events",
    f"{_AT_JOURNAL} kind:text=@kind exchange:text symbol:text client_order_id:text=@cid "
    f"intent_id:text=@intent {_TS} payload:text=@json",
    {"payload": "payload::jsonb", **_AT},
)
ORDERS = _Insert(
    "orders",
    "client_order_id:text intent_id:text exchange:text symbol:text side:text type:text=order_type "
    "quantity:numeric price:numeric stop_price:numeric created_ts_ns:int8=ts_event",
    {"status": "'submitted'", "created_at": "ns_to_timestamptz(created_ts_ns)"}
    | {"updated_ts_ns": "created_ts_ns", "updated_at": "ns_to_timestamptz(created_ts_ns)"},
)
FILLS = _Insert(
    "fills",
    "client_order_id:text trade_id:text exchange:text symbol:text venue_order_id:text side:text "
    "quantity:numeric=last_qty price:numeric=last_price cum_qty:numeric leaves_qty:numeric fee:numeric "
    f"fee_asset:text liquidity:text {_TS} {_AT_JOURNAL}",
    dict(_AT),
)
_POSITION_SET = "quantity avg_price realized_pnl fees last_client_order_id ts_event_ns ts_recv_ns updated_at"
POSITIONS = _Insert(
    "positions",
    "account:text exchange:text symbol:text quantity:numeric avg_price:numeric realized_pnl:numeric "
    f"fees:numeric last_client_order_id:text {_TS} {_AT_JOURNAL}",
    {"updated_at": "ns_to_timestamptz(ts_event_ns)"},
    "ON CONFLICT (account, exchange, symbol) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in [*_POSITION_SET.split(), "journal_id", "journal_offset"])
    + " WHERE CASE WHEN positions.journal_id = EXCLUDED.journal_id"  # newest wins: journal order,
    " THEN positions.journal_offset < EXCLUDED.journal_offset"  # or our clock across journals
    " ELSE positions.ts_recv_ns <= EXCLUDED.ts_recv_ns END",
)
SIGNALS = _Insert(
    "signals",
    f"{_AT_JOURNAL} strategy:text exchange:text symbol:text side:text confidence:float8 price:numeric "
    f"reason:text {_TS}",
    dict(_AT),
)
RISK = _Insert(
    "risk_decisions",
    f"{_AT_JOURNAL} ~kind:text=@kind intent_id:text=intent.intent_id rule:text reason:text "
    "source:text=intent.source exchange:text symbol:text side:text=intent.side "
    "order_type:text=intent.order_type quantity:numeric=intent.quantity price:numeric=intent.price "
    f"stop_price:numeric=intent.stop_price reduce_only:bool=intent.reduce_only {_TS}",
    {"approved": "kind = 'RiskApproved'", **_AT},
)
SNAPSHOTS = _Insert(
    "snapshots",
    f"group_key:text=@group version:int8=@off state:bytea=@msgpack {_AT_JOURNAL} taken_ts_ns:int8=ts_event",
    {"taken_at": "ns_to_timestamptz(taken_ts_ns)"},
)
"""A GroupSnapshot (msgpack of the whole message; its journal offset is its version)."""
TABLES = (EVENTS, ORDERS, FILLS, POSITIONS, SIGNALS, RISK, SNAPSHOTS)
ROUTES: dict[type[Message], _Insert] = {SubmitOrder: ORDERS, OrderSubmitted: ORDERS, OrderFilled: FILLS}
ROUTES |= {Signal: SIGNALS, RiskApproved: RISK, RiskRejected: RISK}
STATUS_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUnknown)
UPDATE_ORDERS = """
UPDATE orders AS o SET
    venue_order_id = COALESCE(NULLIF(o.venue_order_id, ''), NULLIF(e.venue, '')),
    filled_qty = CASE WHEN e.kind = 'OrderFilled' THEN GREATEST(o.filled_qty, e.cum) ELSE o.filled_qty END,
    status = CASE
        WHEN o.status IN ('filled', 'canceled', 'rejected', 'expired') THEN o.status
        WHEN e.kind = 'OrderAccepted' THEN
            CASE WHEN o.status IN ('submitted', 'unknown') THEN 'accepted' ELSE o.status END
        WHEN e.kind = 'OrderUnknown' THEN CASE WHEN o.status = 'submitted' THEN 'unknown' ELSE o.status END
        WHEN e.kind = 'OrderFilled' THEN
            CASE WHEN e.leaves = 0 OR GREATEST(o.filled_qty, e.cum) >= o.quantity
                 THEN 'filled' ELSE 'partially_filled' END
        WHEN e.kind = 'OrderRejected' THEN 'rejected'
        WHEN e.kind = 'OrderCanceled' THEN 'canceled'
        WHEN e.kind = 'OrderExpired' THEN 'expired'
        ELSE o.status END,
    updated_ts_ns = GREATEST(o.updated_ts_ns, e.ts),
    updated_at = ns_to_timestamptz(GREATEST(o.updated_ts_ns, e.ts))
FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::numeric[], $6::int8[])
    AS e(cid, kind, venue, cum, leaves, ts)
WHERE o.client_order_id = e.cid
"""
"""Order status events, at most one per order per statement (:func:`update_rounds`)."""


@dataclass
class Rows:
    """One batch of records as rows per table (``updates``: order status events, in journal order)."""

    tables: dict[str, list[Row]] = field(default_factory=lambda: {t.table: [] for t in TABLES})
    updates: list[Row] = field(default_factory=list)
    skipped: int = 0


def build_rows(jid: str, records: Iterable[Record]) -> Rows:
    """Pure: the rows ``records`` become (what one transaction writes)."""
    rows = Rows()
    positions: dict[tuple[str, str, str], Row] = {}
    for off, m in records:
        if not is_order_path(m) or isinstance(m, StrategyCheckpoint):  # a checkpoint: recovery's only
            rows.skipped += 1
            continue
        if isinstance(m, GroupSnapshot):  # a state blob, not an event
            rows.tables["snapshots"].append(SNAPSHOTS.row(jid, off, m))
            continue
        rows.tables["order_events"].append(EVENTS.row(jid, off, m))
        if (table := ROUTES.get(type(m))) is not None:
            rows.tables[table.table].append(table.row(jid, off, m))
        if isinstance(m, PositionChanged):  # only the newest per key: an upsert touches a row once
            positions[(m.account, m.exchange, m.symbol)] = POSITIONS.row(jid, off, m)
        elif isinstance(m, STATUS_EVENTS) and not (
            isinstance(m, OrderRejected) and m.reason.startswith(REQUEST_REJECTS)
        ):  # a refused request about an order (a cancel) leaves its state alone
            cid = m.client_order_id
            leg = list_of_leg(cid) if cid.startswith(PREFIX) else None
            if leg is not None and isinstance(m, OrderExpired):
                continue  # a list's other leg expiring: the leg that works carries the list on
            venue, cum, leaves = (getattr(m, a, None) for a in ("venue_order_id", "cum_qty", "leaves_qty"))
            cid = cid if leg is None else leg[0]
            rows.updates.append((cid, type(m).__name__, venue, cum, leaves, m.ts_event))
    rows.tables["positions"] = list(positions.values())
    return rows


def update_rounds(updates: Sequence[Row]) -> list[list[Row]]:
    """Split status events into statements that touch each order once, each order's events in order.

    Events of different orders commute (each reads and writes only its own row), so round
    ``k`` (every order's ``k``-th event) applied after round ``k - 1`` equals journal order.
    """
    rounds: list[list[Row]] = []
    seen: dict[object, int] = {}
    for update in updates:
        k = seen[update[0]] = seen.get(update[0], -1) + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(update)
    return rounds
