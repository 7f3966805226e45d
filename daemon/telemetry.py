"""Scrape-time metrics of the actor groups, read from the actors' own counters.

Actors keep plain integer counters on their hot paths; this collector turns them into
Prometheus samples only when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from actors.runtime import Actor
from daemon import balance_check, venue_health
from daemon.metrics import Collected, Labels, Metrics, Sample
from daemon.supervisor import Supervisor

HELP = {
    "tradingd_messages_total": ("counter", "Messages published on a group's bus, by message type"),
    "tradingd_feed_shared_connections": (
        "gauge",
        "Connections of a shared market-data connection set (several groups' symbols on each)",
    ),
    "tradingd_feed_shared_symbols": ("gauge", "Symbols (groups) on a shared market-data connection set"),
    "tradingd_feed_unrouted_total": (
        "counter",
        "Messages of a shared connection dropped because their symbol's group was not running",
    ),
    "tradingd_queue_depth": ("gauge", "Messages waiting in an actor's inbox"),
    "tradingd_channel_conflated_total": ("counter", "Quotes dropped by conflation because a consumer lagged"),
    "tradingd_channel_blocked_sends_total": ("counter", "Sends that had to wait because an inbox was full"),
    "tradingd_actor_restarts_total": ("counter", "Actor restarts after a failure"),
    "tradingd_actor_up": ("gauge", "1 when the actor is running"),
    "tradingd_actor_poisoned_total": (
        "counter",
        "Messages dropped because handling them raised (then restarted)",
    ),
    "tradingd_market_rejected_total": ("counter", "Market messages dropped by validation, by reason"),
    "tradingd_orders_total": ("counter", "Order lifecycle events seen by the order actor"),
    "tradingd_order_anomalies_total": (
        "counter",
        "Order events that did not fit an order's state (unknown ids, overfills)",
    ),
    "tradingd_risk_decisions_total": ("counter", "Risk decisions by outcome or rule that rejected"),
    "tradingd_signals_total": ("counter", "Strategy signals"),
    "tradingd_stop_replacements_total": (
        "counter",
        "Native stops moved at the venue by one cancel-replace (a trail move >= trail_step, a resize)",
    ),
    "tradingd_oco_refused_total": (
        "counter",
        "OCO lists (stop-loss + take-profit) refused by the venue or risk: a native stop-loss instead",
    ),
    "tradingd_strategy_replayed_total": (
        "counter",
        "Strategy outputs dropped after a restart: decided before it (up to the recovered decision floor)",
    ),
    "tradingd_order_latency_seconds": (
        "histogram",
        "Market frame received to its order handed to the venue (paper: the engine; Binance: the socket)",
    ),
    "tradingd_order_latency_unmatched_total": (
        "counter",
        "Orders sent with no market frame noted behind them",
    ),
    "tradingd_risk_decision_seconds": ("histogram", "Risk actor: an intent in to its verdict"),
    "tradingd_group_halted": ("gauge", "1 when a symbol group is halted"),
    "tradingd_halted": (
        "gauge",
        "1 per operator halt in force, by scope (daemon, account, group) and target",
    ),
    "tradingd_position": ("gauge", "Net position per symbol"),
    "tradingd_realized_pnl": ("gauge", "Realized PnL per symbol in quote currency"),
    "tradingd_feed_emitted_total": ("counter", "Market messages a feed delivered to its group"),
    "tradingd_feed_reconnects_total": ("counter", "Venue connections lost or failed (live feeds)"),
    "tradingd_feed_resyncs_total": (
        "counter",
        "Order books resynced from a new snapshot (gaps, stale snapshots)",
    ),
    "tradingd_feed_rejected_total": ("counter", "Venue frames rejected by the decoder, by reason"),
    "tradingd_feed_silences_total": ("counter", "Live connections dropped: no frame at all, pings included"),
    "tradingd_feed_stalls_total": ("counter", "Quiet spells of a symbol (no data for stall_timeout_s)"),
    "tradingd_feed_snapshots_total": ("counter", "Depth snapshots fetched"),
    "tradingd_feed_snapshot_errors_total": ("counter", "Depth snapshots that failed"),
    "tradingd_feed_trade_time_clamped_total": (
        "counter",
        "Trades kept whose venue time was older than the previous trade's",
    ),
    "tradingd_feed_loops_total": ("counter", "Completed passes of a replay feed over its file"),
    "tradingd_feed_behind_seconds": ("gauge", "How late a replay batch went out against its schedule"),
    "tradingd_feed_connected": ("gauge", "Venue connections a live feed has open"),
    "tradingd_feed_books_stale": ("gauge", "Order books of a live feed not synced"),
    "tradingd_feed_book_synced": ("gauge", "1 while the symbol's order book is synced"),
    "tradingd_feed_book_state_seconds": ("gauge", "How long the book has been synced (or stale)"),
}


# Every label a counter the README says to watch can take, so each series exists at 0 from the
# start (an alert on ``increase()`` needs the 0 before the first 1). Labels outside these lists
# still appear once counted; tests/test_metrics_zero.py checks the lists against the code.
MARKET_REJECT_REASONS = ("bad_number", "crossed_quote", "inconsistent_bar", "out_of_order", "unknown_kind")
ORDER_EVENTS = (
    "submitted",
    "accepted",
    "filled",
    "partially_filled",
    "rejected",
    "canceled",
    "expired",
    "unknown",
    "cancel_requested",
)
ORDER_ANOMALIES = (
    "bad_fill",
    "duplicate_fill",
    "duplicate_intent",
    "fill_after_terminal",
    "late_terminal",
    "late_unknown",
    "overfill",
    "request_rejected",
    "unexpected_kind",
    "unknown_order",
    "zero_quantity",
)
RISK_DECISIONS = (
    "approved",
    "halted",
    "reducing",
    "daily_loss_limit",
    "invalid",
    "reduce_only",
    "stop_loss_required",
    "no_price",
    "price_band",
    "max_notional",
    "max_position",
    "max_open_orders",
    "order_rate",
    "max_trades_per_day",
    "cooldown",
    "account_daily_loss_limit",
    "account_max_open_orders",
    "account_max_trades_per_day",
    "account_order_rate",
    "venue_blind",
    "book_stale",
)
FEED_REJECT_REASONS = (
    "bad_envelope",
    "bad_payload",
    "bad_value",
    "malformed_json",
    "symbol_mismatch",
    "unknown_stream",
    "unknown_symbol",
    "venue_error",
)


def _known(counts: dict[str, int], known: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """Every known label (0 when never counted), then any other the code counted."""
    for key in known:
        yield key, counts.get(key, 0)
    for key, n in list(counts.items()):
        if key not in known:
            yield key, n


def register(metrics: Metrics, supervisor: Supervisor) -> None:
    for name, (kind, text) in (HELP | balance_check.HELP).items():
        metrics.describe(name, kind, text)
    metrics.add_collector(lambda: list(collect(supervisor)))
    venue_health.register(metrics, supervisor)  # REST, user data stream, exchange rules


def _l(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


FEED_COUNTERS = (
    "emitted",
    "reconnects",
    "silences",
    "stalls",
    "resyncs",
    "snapshots",
    "snapshot_errors",
    "trade_time_clamped",
    "loops",
    "resubscribes",  # OKX: a book resubscribed after a gap, a checksum mismatch or a refused push
    "checksum_failures",
    "gaps",
    "pings",
)
FEED_GAUGES = ("connected", "books_stale")


def _feed_samples(stats: msgspec.Struct, ex: str, sym: str) -> Iterator[Sample]:
    """Whatever the feed reports of these, as tradingd_feed_<name>{exchange,symbol}."""
    labels = _l(exchange=ex, symbol=sym)
    for name in FEED_COUNTERS:
        if hasattr(stats, name):
            yield f"tradingd_feed_{name}_total", labels, float(getattr(stats, name))
    for name in FEED_GAUGES:
        if hasattr(stats, name):
            yield f"tradingd_feed_{name}", labels, float(getattr(stats, name))
    behind_ms = getattr(stats, "behind_ms", None)
    if behind_ms is not None:  # exposed in seconds, as Prometheus wants times
        yield "tradingd_feed_behind_seconds", labels, float(behind_ms) / 1000
    if hasattr(stats, "rejected_by_reason"):
        for reason, n in _known(stats.rejected_by_reason, FEED_REJECT_REASONS):
            yield "tradingd_feed_rejected_total", _l(exchange=ex, symbol=sym, reason=reason), float(n)
    for book_symbol, top in getattr(stats, "books", {}).items():
        book_labels = _l(exchange=ex, symbol=book_symbol)
        yield "tradingd_feed_book_synced", book_labels, 1.0 if top.synced else 0.0
        yield "tradingd_feed_book_state_seconds", book_labels, float(top.since_s)


def _actor_samples(actor: Actor, labels: Labels) -> Iterator[Sample]:
    yield "tradingd_actor_restarts_total", labels, actor.restarts
    yield "tradingd_actor_poisoned_total", labels, actor.poisoned
    yield "tradingd_actor_up", labels, 1.0 if actor.status == "running" else 0.0


def collect(sup: Supervisor) -> Iterator[Collected]:
    for scope, target in list(sup.halts.active):
        yield "tradingd_halted", _l(scope=scope, target=target), 1.0
    for acct in list(sup.accounts.values()):
        p = acct.portfolio
        labels = _l(exchange="*", symbol=f"account:{acct.name}", actor=p.kind)
        yield from _actor_samples(p, labels)
        yield "tradingd_queue_depth", labels, p.inbox.depth()
        if acct.balance is not None:
            yield from acct.balance.samples()
    for hub in list(sup.feed_hubs.hubs.values()) if sup.feed_hubs is not None else []:
        labels = _l(exchange=hub.feed.exchange, url=hub.feed.ws_url)
        yield "tradingd_feed_shared_connections", labels, float(hub.feed.connections())
        yield "tradingd_feed_shared_symbols", labels, float(len(hub.views))
        yield "tradingd_feed_unrouted_total", labels, float(hub.unrouted)
    for group in list(sup.groups.values()):
        ex, sym = group.cfg.exchange, group.cfg.symbol
        for t, n in group.router.counts.items():
            yield "tradingd_messages_total", _l(exchange=ex, symbol=sym, type=t.__name__), n
        for actor in group.actors:
            labels = _l(exchange=ex, symbol=sym, actor=actor.kind)
            yield from _actor_samples(actor, labels)
            if actor is not group.feed:
                stats = actor.inbox.statistics()
                yield "tradingd_queue_depth", labels, stats.depth
                yield "tradingd_channel_conflated_total", labels, stats.conflated
                yield "tradingd_channel_blocked_sends_total", labels, stats.blocked_sends
        for reason, n in _known(group.market_feed.rejected, MARKET_REJECT_REASONS):
            yield "tradingd_market_rejected_total", _l(exchange=ex, symbol=sym, reason=reason), n
        for event, n in _known(group.order.counts, ORDER_EVENTS):
            yield "tradingd_orders_total", _l(exchange=ex, symbol=sym, event=event), n
        for kind, n in _known(group.order.anomalies, ORDER_ANOMALIES):
            yield "tradingd_order_anomalies_total", _l(exchange=ex, symbol=sym, kind=kind), n
        for rule, n in _known(group.risk.decisions, RISK_DECISIONS):
            yield "tradingd_risk_decisions_total", _l(exchange=ex, symbol=sym, decision=rule), n
        yield "tradingd_signals_total", _l(exchange=ex, symbol=sym), group.strategy.signals
        yield "tradingd_stop_replacements_total", _l(exchange=ex, symbol=sym), group.stop_monitor.replacements
        yield "tradingd_oco_refused_total", _l(exchange=ex, symbol=sym), group.stop_monitor.oco_refused
        latency = group.router.latency
        yield "tradingd_order_latency_seconds", _l(exchange=ex, symbol=sym), latency.histogram
        yield "tradingd_order_latency_unmatched_total", _l(exchange=ex, symbol=sym), latency.unmatched
        yield "tradingd_risk_decision_seconds", _l(exchange=ex, symbol=sym), group.risk.decision_time
        yield "tradingd_strategy_replayed_total", _l(exchange=ex, symbol=sym), group.strategy.replayed
        yield from _feed_samples(group.feed.feed.statistics(), ex, sym)
        yield "tradingd_group_halted", _l(exchange=ex, symbol=sym), 1.0 if group.health.halted else 0.0
        yield "tradingd_position", _l(exchange=ex, symbol=sym), float(group.state.position)
        yield "tradingd_realized_pnl", _l(exchange=ex, symbol=sym), float(group.state.realized_pnl)
