"""What PostgreSQL knows that the journal may have lost: its copy's offset, used client order ids,
the newest strategy decision per group.

Takes and emits no messages: at start, before recovery, the daemon reads (bounded in time)

- ``writer_offsets.next_offset`` of this journal's id: PostgreSQL holding records the journal
  does not (a deleted or truncated journal) is a journal finding, and the journal then hands
  out no offset below it;
- per group on a real venue (paper venues do not survive a restart, so their ids cannot
  collide): the client order ids of its recent orders and the event time of its newest
  strategy decision (``Signal``, a strategy's ``OrderIntent``), from every journal id, so a
  group whose journal lost records never derives an id it used before.

PostgreSQL down or not migrated yet: nothing is known (logged); the journal alone decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
import asyncpg

from daemon.store.migrations import close_connection

log = logging.getLogger("tradingd.recovery")
_X = {"component": "recovery"}

TIMEOUT_S = 5.0
RECENT_ORDERS = 10_000

_DECISION = """
SELECT ts_event_ns FROM order_events
 WHERE exchange = $1 AND symbol = $2
   AND (kind = 'Signal' OR (kind = 'OrderIntent' AND payload->>'source' LIKE 'strategy%'))
 ORDER BY ts_event DESC LIMIT 1
"""
_ORDERS = """
SELECT client_order_id FROM orders WHERE exchange = $1 AND symbol = $2 ORDER BY created_ts_ns DESC LIMIT $3
"""


@dataclass
class GroupFloor:
    decision_ns: int = 0
    client_order_ids: set[str] = field(default_factory=set)


@dataclass
class StoreView:
    reachable: bool = False
    next_offset: int = 0  # writer_offsets.next_offset of this journal (0: none)
    groups: dict[tuple[str, str], GroupFloor] = field(default_factory=dict)
    error: str = ""


async def read_store_view(dsn: str, journal_id: str, keys: list[tuple[str, str]]) -> StoreView:
    """What the store knows (never raises: an unreachable store is ``reachable=False``)."""
    view = StoreView()
    try:
        with anyio.fail_after(TIMEOUT_S * 2):
            conn = await asyncpg.connect(dsn, timeout=TIMEOUT_S)
            try:
                view.next_offset = int(
                    await conn.fetchval(
                        "SELECT next_offset FROM writer_offsets WHERE journal_id = $1", journal_id
                    )
                    or 0
                )
                for ex, sym in keys:
                    floor = GroupFloor()
                    floor.decision_ns = int(await conn.fetchval(_DECISION, ex, sym) or 0)
                    rows = await conn.fetch(_ORDERS, ex, sym, RECENT_ORDERS)
                    floor.client_order_ids = {r[0] for r in rows}
                    view.groups[(ex, sym)] = floor
            finally:
                await close_connection(conn)
    except asyncpg.UndefinedTableError:
        view.reachable = True  # a store not migrated yet knows nothing
        return view
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        view.error = repr(exc)
        log.warning("postgres not reachable at start (%r): recovery uses the journal alone", exc, extra=_X)
        return view
    view.reachable = True
    return view
