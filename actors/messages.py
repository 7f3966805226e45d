"""The typed message catalogue: every message that crosses a channel or the Redis mirror.

All messages are frozen msgspec Structs that subclass :class:`Message`, tagged by class
name in the ``kind`` field, so one decoder per union decodes any of them (from the
in-process channels, the Redis mirror, or the journal).  Every message names its
``exchange`` and ``symbol`` and carries two integer-nanosecond timestamps: ``ts_event``
(exchange/event time) and ``ts_recv`` (our time).

Prices, quantities and money are :class:`decimal.Decimal` (encoded as strings on the
wire), so the order path never meets binary floating point.  Indicators convert to
float64 on their own side.

Groups:
- market: Trade, Quote, BookDelta, BookSnapshot, Bar
- decision: Signal, OrderIntent, CancelIntent, RiskApproved, RiskRejected
- order: SubmitOrder, CancelOrder (commands); OrderSubmitted, OrderAccepted,
  OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUnknown (events)
- state: PositionChanged, BalancesChanged, LedgerAdjusted, GroupSnapshot, StopArmed, StopTriggered,
  StopCanceled
- system: ActorStarted, ActorStopped, ActorFailed, ConfigReloaded, Heartbeat, ServiceChanged
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, TypedDict

import msgspec

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop_market", "stop_limit"]
TimeInForce = Literal["gtc", "ioc", "fok"]
Liquidity = Literal["maker", "taker"]


class Stamp(TypedDict):
    """The four fields every message starts with; ``Trade(**stamp, ...)`` type-checks."""

    exchange: str
    symbol: str
    ts_event: int
    ts_recv: int


def stamp(exchange: str, symbol: str, ts_event: int, ts_recv: int | None = None) -> Stamp:
    return {
        "exchange": exchange,
        "symbol": symbol,
        "ts_event": ts_event,
        "ts_recv": ts_event if ts_recv is None else ts_recv,
    }


class Message(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag=True, forbid_unknown_fields=True
):
    """Base of every message: where it comes from and when."""

    exchange: str
    symbol: str
    ts_event: int
    ts_recv: int


# --- market ---------------------------------------------------------------------------------


class Trade(Message, frozen=True):
    """One public trade. ``side`` is the aggressor side when the venue reports it."""

    price: Decimal
    size: Decimal
    side: Side | None = None
    trade_id: str = ""


class Quote(Message, frozen=True):
    """Best bid and ask. May be conflated (newest wins) when a consumer lags."""

    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal


class BookDelta(Message, frozen=True):
    """Changed price levels; size 0 removes a level. ``first_seq``..``last_seq`` are venue sequence ids."""

    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []
    first_seq: int = 0
    last_seq: int = 0


class BookSnapshot(Message, frozen=True):
    """A full book (or its top levels) at venue sequence ``seq``."""

    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []
    seq: int = 0


class Bar(Message, frozen=True):
    """OHLCV over ``[ts_open, ts_open + interval_s)``; ``ts_event`` is the close time."""

    ts_open: int
    interval_s: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int = 0


# --- decisions -----------------------------------------------------------------------------


class Signal(Message, frozen=True):
    """A strategy's view, recorded whether or not it leads to an order."""

    strategy: str
    side: Side
    confidence: float
    price: Decimal
    reason: str


class OrderIntent(Message, frozen=True):
    """What a strategy or the stop-monitor wants to trade; risk decides whether it may.

    ``stop_loss``/``take_profit`` are absolute prices the stop-monitor arms once the entry fills.
    ``reduce_only`` intents may only shrink a position (exits, stops).

    Optional exit plan of an entry (all None by default; see actors/stop_monitor.py):
    ``trailing_distance`` (price units) or ``trailing_pct`` (percent of the best price)
    makes the stop trail the best price since the fill, starting once price reaches
    ``trailing_activation`` (if set); the stop moves only when it improves by at least
    ``trailing_step`` (price units; else the group's ``risk.trail_step``).
    ``exit_at_ns`` closes the position at the first price at or after that event time
    (an entry carrying it must also carry a ``stop_loss``).
    ``post_only`` (a GTC limit only): the order must rest; a venue refuses it instead of letting
    it take liquidity (Binance ``LIMIT_MAKER``; the paper venue the same way).
    ``replaces`` (a client order id): the order takes the place of that open order in one venue
    request (Binance ``order/cancelReplace``, STOP_ON_FAILURE): the old one is canceled and this
    one placed, or, if the cancel fails, neither changes.  The stop-monitor moves its resting
    native stop this way, so the position is never without one.
    ``oco_take_profit`` (a reduce-only stop_market/stop_limit only): the order is an OCO list, the
    stop and a take-profit limit at this price resting together; the first to fill or trigger
    expires the other (Binance ``orderList/oco``).  One exit: risk reserves its quantity once, the
    order actor tracks the list as one order (its legs' ids: :func:`actors.oco.leg_ids`).
    """

    intent_id: str
    source: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = "gtc"
    reduce_only: bool = False
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reason: str = ""
    trailing_distance: Decimal | None = None
    trailing_pct: Decimal | None = None
    trailing_activation: Decimal | None = None
    trailing_step: Decimal | None = None
    exit_at_ns: int | None = None
    post_only: bool = False
    replaces: str = ""
    oco_take_profit: Decimal | None = None


class CancelIntent(Message, frozen=True):
    """A strategy withdraws an order it asked for (``intent_id``): the order actor cancels what
    that intent became, or, if risk has not decided on it yet, never sends it."""

    intent_id: str
    source: str
    reason: str = ""


class RiskApproved(Message, frozen=True):
    """Risk let ``intent`` through; the order actor sends it."""

    intent: OrderIntent


class RiskRejected(Message, frozen=True):
    """Risk refused ``intent``; ``rule`` names the check, ``reason`` says why in words."""

    intent: OrderIntent
    rule: str
    reason: str


# --- orders ---------------------------------------------------------------------------------


class SubmitOrder(Message, frozen=True):
    """Command to an execution adapter: place this order."""

    intent_id: str
    client_order_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = "gtc"
    reduce_only: bool = False
    post_only: bool = False  # rest or be refused: never take liquidity
    replaces: str = ""  # cancel this client order id and place this order in one request
    # Set: this stop (reduce-only stop_market/stop_limit) is an OCO list with a take-profit limit at
    # this price; client_order_id is the list's id, the legs' ids are actors.oco.leg_ids of it.
    oco_take_profit: Decimal | None = None


class CancelOrder(Message, frozen=True):
    """Command to an execution adapter: cancel this order (an OCO list's id: the whole list)."""

    client_order_id: str
    venue_order_id: str = ""


class OrderSubmitted(Message, frozen=True):
    """The order left the process (the outcome is not known yet); ``replaces``: the order it
    cancel-replaces in the same request (a restart resolves both at the venue); ``oco_take_profit``
    and ``oco_legs``: an OCO list (the take-profit leg's price, the stop-loss and take-profit legs'
    client order ids), journaled before it is sent like any order."""

    intent_id: str
    client_order_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    replaces: str = ""
    oco_take_profit: Decimal | None = None
    oco_legs: tuple[str, ...] = ()


class OrderAccepted(Message, frozen=True):
    client_order_id: str
    venue_order_id: str


class OrderRejected(Message, frozen=True):
    client_order_id: str
    reason: str


class OrderFilled(Message, frozen=True):
    """One execution, partial or full. ``leaves_qty == 0`` means the order is done."""

    client_order_id: str
    venue_order_id: str
    trade_id: str
    side: Side
    last_qty: Decimal
    last_price: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity


class OrderCanceled(Message, frozen=True):
    client_order_id: str
    venue_order_id: str = ""
    reason: str = ""


class OrderExpired(Message, frozen=True):
    client_order_id: str
    venue_order_id: str = ""


class OrderUnknown(Message, frozen=True):
    """A submission whose outcome is not known (timeout, 5xx, disconnect).

    The order stays open (its exposure reserved) until the adapter resolves it by querying
    the venue by client order id: it then publishes what the venue says (OrderAccepted,
    OrderFilled, OrderCanceled, OrderRejected with reason "not found at venue: ...").
    It is never resolved by sending the order again.
    """

    client_order_id: str
    reason: str


class BalancesChanged(Message, frozen=True):
    """An account's balances as the venue reports them (``symbol`` is "*": account-wide)."""

    account: str
    free: dict[str, Decimal] = {}
    locked: dict[str, Decimal] = {}


class LedgerAdjusted(Message, frozen=True):
    """An account's balance ledger moved by something other than its own fills (``symbol`` "*").

    ``baseline``: the venue's balances taken as the start (first start, or an asset not in the
    ledger yet); ``drift``: the balance check found the venue off the ledger (a deposit, a trade
    made elsewhere) and re-based on it.  Both add ``adjust`` per asset.  ``snapshot``: the whole
    ledger (``balances``) journaled again with each snapshot round, so releasing old journal
    segments never loses it.  Journaled (kind ``position``): the ledger survives a restart.
    """

    account: str
    reason: Literal["baseline", "drift", "snapshot"]
    adjust: dict[str, Decimal] = {}
    balances: dict[str, Decimal] = {}


# --- state ----------------------------------------------------------------------------------


class PositionChanged(Message, frozen=True):
    """Net position after a fill: signed quantity, average entry price, realized PnL so far."""

    account: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    last_client_order_id: str = ""
    other_fees: dict[str, Decimal] = {}
    """Fees charged in neither the base nor the quote asset (e.g. BNB), per asset."""
    recovered: bool = False
    """True when restart recovery announces the position it restored from the journal."""


class OrderSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One order of a :class:`GroupSnapshot`: what the order actor needs to carry on with it."""

    client_order_id: str
    intent: OrderIntent
    quantity: Decimal
    cum_qty: Decimal
    status: str
    venue_order_id: str = ""
    trade_ids: list[str] = []
    legs_ended: list[str] = []  # an OCO list's legs that have ended (the list ends with both)


class RiskDay(msgspec.Struct, frozen=True, kw_only=True):
    """Risk's counters of the current UTC day (event time), carried across a restart."""

    day: int = -1  # days since the epoch; -1: no event seen yet
    entries: int = 0
    start_equity: Decimal = Decimal(0)
    breach: str = ""  # non-empty: the daily loss limit holds the group REDUCING until the next day
    last_exit_ns: int = 0  # market time of the last exit (risk.cooldown_s runs from it)


class GroupSnapshot(Message, frozen=True):
    """A group's state as of its place in the journal: restart recovery starts from the newest one.

    Orders and position are the fold of every order-path record before it (so they agree
    with the journal exactly); ``strategy_state`` is the strategy's state (msgpack) when it
    was taken.  Written to the journal by the daemon's persistence (not published on the bus, so
    not mirrored to Redis) and copied to the ``snapshots`` table.
    """

    account: str
    orders: list[OrderSnapshot] = []
    quantity: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    other_fees: dict[str, Decimal] = {}
    entry_intent: OrderIntent | None = None
    strategy: str = ""
    strategy_state: bytes = b""
    last_event_ns: int = 0
    """Market (event) time the group had reached: a replay resumes after it."""
    recent_client_order_ids: list[str] = []
    """Orders that ended shortly before: refused if an intent produces them again."""
    risk_day: RiskDay | None = None
    stop: StopArmed | None = None
    """The open position's stop as the stop-monitor last published it (a trailed level
    survives a restart); None when flat."""


class RiskDayChanged(Message, frozen=True):
    """Risk's day counters changed other than by an approval: a new UTC day began (entries 0, the
    day's start equity), the daily loss limit latched REDUCING, or a reload lifted the latch.

    Journaled (kind ``risk``), so restart recovery has them from the journal itself at any kill
    point: the fold takes the newest one and counts the day's approved entries after it.
    """

    day: RiskDay
    why: Literal["new_day", "breach", "lifted", "exit"]


class HaltChanged(Message, frozen=True, kw_only=True):
    """The operator's kill switch was set or lifted for a scope: the whole daemon, one account,
    or one group (``target`` "" / the account's name / ``"exchange:symbol"``).

    Journaled (kind ``risk``) and restored before READY: a halt survives a crash and systemd's
    restart; only a resume lifts it.  ``by`` says who (the admin API's caller), ``ts_event``
    when (wall time).
    """

    scope: Literal["daemon", "account", "group"]
    target: str = ""
    halted: bool
    reason: str = ""
    by: str = ""


class StrategyCheckpoint(Message, frozen=True):
    """The strategy's state right after an event it decided on (it emitted a signal or intent).

    Journaled only (kind ``snapshot``, never on the bus): with the ``GroupSnapshot``s it makes the
    strategy's state at its last decision recoverable from the journal, so a crash between two
    snapshots forgets no decision; a replay resumes after ``reached_ns``.
    """

    strategy: str
    state: bytes  # msgpack of the strategy's state
    reached_ns: int  # the event time of the event decided on


class StopArmed(Message, frozen=True):
    """The stop-monitor watches a position: exit ``side`` at ``stop_price`` or ``take_profit``."""

    stop_id: str
    side: Side
    quantity: Decimal
    stop_price: Decimal | None
    take_profit: Decimal | None


class StopTriggered(Message, frozen=True):
    stop_id: str
    trigger: Literal["stop_loss", "take_profit", "trailing", "time"]
    price: Decimal
    intent_id: str


class StopCanceled(Message, frozen=True):
    stop_id: str
    reason: str


# --- system ---------------------------------------------------------------------------------


class ActorStarted(Message, frozen=True):
    actor: str
    restarts: int = 0


class ActorStopped(Message, frozen=True):
    actor: str


class ActorFailed(Message, frozen=True):
    actor: str
    error: str
    restarts: int
    halted: bool = False


class ConfigReloaded(Message, frozen=True):
    ok: bool
    changes: list[str] = []
    error: str = ""


class ServiceChanged(Message, frozen=True):
    """The daemon's news for its operator (``tradingd notify``): something it depends on changed.

    ``service``/``state``: ``redis`` or ``postgres`` ``down``/``up`` (an outage and its end),
    ``feed`` ``stale``/``recovered`` (a group's market data, ``exchange``/``symbol`` the group's),
    ``balance`` ``drift`` (the venue's balances off the ledger), ``daemon`` ``started``/``stopping``.
    ``detail`` is for a person (rounded, ISO 8601 UTC); ``since_ns`` is when the trouble began
    (on ``up``/``recovered``: so the outage's length is known).  ``ts_event`` is the wall clock:
    these happen in the real world, also on a replay.  Stream kind ``event``: the mirror never
    drops one (an outage of Redis is told once Redis is back); not journaled.
    """

    service: Literal["daemon", "redis", "postgres", "feed", "balance"]
    state: Literal["started", "stopping", "down", "up", "stale", "recovered", "drift"]
    severity: Literal["info", "warning", "critical"] = "info"
    detail: str = ""
    since_ns: int = 0


class Heartbeat(Message, frozen=True):
    actor: str
    seq: int


MarketMessage = Trade | Quote | BookDelta | BookSnapshot | Bar
DecisionMessage = (
    Signal | OrderIntent | CancelIntent | RiskApproved | RiskRejected | RiskDayChanged | HaltChanged
)
OrderMessage = (
    SubmitOrder
    | CancelOrder
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | OrderUnknown
)
StateMessage = (
    PositionChanged
    | BalancesChanged
    | LedgerAdjusted
    | GroupSnapshot
    | StrategyCheckpoint
    | StopArmed
    | StopTriggered
    | StopCanceled
)
SystemMessage = ActorStarted | ActorStopped | ActorFailed | ConfigReloaded | Heartbeat | ServiceChanged
AnyMessage = MarketMessage | DecisionMessage | OrderMessage | StateMessage | SystemMessage

MARKET_TYPES: tuple[type[Message], ...] = (Trade, Quote, BookDelta, BookSnapshot, Bar)
ALL_TYPES: tuple[type[Message], ...] = (
    *MARKET_TYPES,
    Signal,
    OrderIntent,
    CancelIntent,
    RiskApproved,
    RiskRejected,
    RiskDayChanged,
    HaltChanged,
    SubmitOrder,
    CancelOrder,
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
    OrderUnknown,
    PositionChanged,
    BalancesChanged,
    LedgerAdjusted,
    GroupSnapshot,
    StrategyCheckpoint,
    StopArmed,
    StopTriggered,
    StopCanceled,
    ActorStarted,
    ActorStopped,
    ActorFailed,
    ConfigReloaded,
    ServiceChanged,
    Heartbeat,
)

# Redis stream kind per message type: `{prefix}:{exchange}:{symbol}:{kind}`.
STREAM_KIND: dict[type[Message], str] = {
    Trade: "trade",
    Quote: "quote",
    BookDelta: "book",
    BookSnapshot: "book",
    Bar: "bar",
    Signal: "signal",
    OrderIntent: "signal",
    CancelIntent: "signal",
    RiskApproved: "risk",
    RiskRejected: "risk",
    RiskDayChanged: "risk",
    HaltChanged: "risk",
    SubmitOrder: "order",
    CancelOrder: "order",
    OrderSubmitted: "order",
    OrderAccepted: "order",
    OrderRejected: "order",
    OrderCanceled: "order",
    OrderExpired: "order",
    OrderUnknown: "order",
    OrderFilled: "fill",
    PositionChanged: "position",
    BalancesChanged: "position",
    LedgerAdjusted: "position",
    GroupSnapshot: "snapshot",
    StrategyCheckpoint: "snapshot",
    StopArmed: "position",
    StopTriggered: "position",
    StopCanceled: "position",
    ActorStarted: "system",
    ActorStopped: "system",
    ActorFailed: "system",
    ConfigReloaded: "system",
    ServiceChanged: "event",
    Heartbeat: "system",
}

# Kinds whose messages are never dropped: they wait (memory, then disk) until Redis has them.
ORDER_PATH_KINDS = frozenset({"signal", "risk", "order", "fill", "position", "snapshot"})
# Kinds the Redis mirror never drops (memory, then disk, until Redis has them): the order path
# and the daemon's news for its operator (an outage of Redis is told once it is back).
KEPT_KINDS = ORDER_PATH_KINDS | {"event"}


def is_order_path(msg: Message) -> bool:
    """True for messages that must never be dropped (everything but market data and system chatter)."""
    return STREAM_KIND[type(msg)] in ORDER_PATH_KINDS


def json_schema() -> dict[str, object]:
    """JSON Schema (draft 2020-12) of every message, for downstream decoders in any language."""
    (schema,), components = msgspec.json.schema_components([AnyMessage], ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tradingd message",
        "description": "Any message on a tradingd channel or Redis stream; `kind` is the tag.",
        **schema,
        "$defs": components,
    }


ANY_DECODER_JSON = msgspec.json.Decoder(AnyMessage)
ANY_DECODER_MSGPACK = msgspec.msgpack.Decoder(AnyMessage)
