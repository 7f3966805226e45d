-- tradingd store, version 0001: the queryable copy of the order journal.
--
-- Money, prices and quantities are NUMERIC without a typmod, so every value (and its scale)
-- is stored exactly as the Decimal on the bus.  Times are kept twice: the raw integer
-- nanoseconds from the message (*_ns, exact) and a timestamptz (microseconds) to query by.
-- Rows that come from the journal carry (journal_id, journal_offset): that pair is the
-- idempotency key wherever the message has no natural one, so replaying a journal writes
-- nothing twice.

CREATE FUNCTION ns_to_timestamptz(ns bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN 'epoch'::timestamptz + (ns / 1000) * interval '1 microsecond';

-- The writer's progress per journal: every record below next_offset is in the tables.
CREATE TABLE writer_offsets (
    journal_id   text PRIMARY KEY,
    next_offset  bigint NOT NULL CHECK (next_offset >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every order-path message, as it was journaled.
CREATE TABLE order_events (
    journal_id       text NOT NULL,
    journal_offset   bigint NOT NULL,
    kind             text NOT NULL,
    exchange         text NOT NULL,
    symbol           text NOT NULL,
    client_order_id  text,
    intent_id        text,
    ts_event_ns      bigint NOT NULL,
    ts_recv_ns       bigint NOT NULL,
    ts_event         timestamptz NOT NULL,
    payload          jsonb NOT NULL,
    PRIMARY KEY (journal_id, journal_offset)
);
CREATE INDEX order_events_client_order_idx ON order_events (client_order_id, journal_offset)
    WHERE client_order_id IS NOT NULL;
CREATE INDEX order_events_intent_idx ON order_events (intent_id) WHERE intent_id IS NOT NULL;
CREATE INDEX order_events_market_time_idx ON order_events (exchange, symbol, ts_event);
CREATE INDEX order_events_kind_time_idx ON order_events (kind, ts_event);

-- One row per order, created when it is submitted, its status kept current from its events.
CREATE TABLE orders (
    client_order_id  text PRIMARY KEY,
    intent_id        text NOT NULL,
    exchange         text NOT NULL,
    symbol           text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    type             text NOT NULL CHECK (type IN ('market', 'limit', 'stop_market', 'stop_limit')),
    quantity         numeric NOT NULL,
    price            numeric,
    stop_price       numeric,
    status           text NOT NULL CHECK (status IN (
                         'submitted', 'accepted', 'partially_filled', 'filled',
                         'canceled', 'rejected', 'expired')),
    venue_order_id   text,
    filled_qty       numeric NOT NULL DEFAULT 0,
    created_ts_ns    bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_ts_ns    bigint NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX orders_intent_idx ON orders (intent_id);
CREATE INDEX orders_market_created_idx ON orders (exchange, symbol, created_at);
CREATE INDEX orders_venue_idx ON orders (exchange, venue_order_id) WHERE venue_order_id IS NOT NULL;
CREATE INDEX orders_open_idx ON orders (exchange, symbol)
    WHERE status IN ('submitted', 'accepted', 'partially_filled');

-- Executions; a venue trade id is unique within its order.
CREATE TABLE fills (
    client_order_id  text NOT NULL,
    trade_id         text NOT NULL,
    exchange         text NOT NULL,
    symbol           text NOT NULL,
    venue_order_id   text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity         numeric NOT NULL,
    price            numeric NOT NULL,
    cum_qty          numeric NOT NULL,
    leaves_qty       numeric NOT NULL,
    fee              numeric NOT NULL,
    fee_asset        text NOT NULL,
    liquidity        text NOT NULL CHECK (liquidity IN ('maker', 'taker')),
    ts_event_ns      bigint NOT NULL,
    ts_recv_ns       bigint NOT NULL,
    ts_event         timestamptz NOT NULL,
    journal_id       text NOT NULL,
    journal_offset   bigint NOT NULL,
    PRIMARY KEY (client_order_id, trade_id)
);
CREATE INDEX fills_market_time_idx ON fills (exchange, symbol, ts_event);

-- The latest position per account and market (the history is in order_events).
CREATE TABLE positions (
    account               text NOT NULL,
    exchange              text NOT NULL,
    symbol                text NOT NULL,
    quantity              numeric NOT NULL,
    avg_price             numeric NOT NULL,
    realized_pnl          numeric NOT NULL,
    fees                  numeric NOT NULL,
    last_client_order_id  text NOT NULL,
    ts_event_ns           bigint NOT NULL,
    ts_recv_ns            bigint NOT NULL,
    updated_at            timestamptz NOT NULL,
    journal_id            text NOT NULL,
    journal_offset        bigint NOT NULL,
    PRIMARY KEY (account, exchange, symbol)
);

CREATE TABLE signals (
    journal_id      text NOT NULL,
    journal_offset  bigint NOT NULL,
    strategy        text NOT NULL,
    exchange        text NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    confidence      double precision NOT NULL,
    price           numeric NOT NULL,
    reason          text NOT NULL,
    ts_event_ns     bigint NOT NULL,
    ts_recv_ns      bigint NOT NULL,
    ts_event        timestamptz NOT NULL,
    PRIMARY KEY (journal_id, journal_offset)
);
CREATE INDEX signals_market_time_idx ON signals (exchange, symbol, ts_event);
CREATE INDEX signals_strategy_time_idx ON signals (strategy, ts_event);

-- Risk's verdict on each intent, with the intent it judged.
CREATE TABLE risk_decisions (
    journal_id      text NOT NULL,
    journal_offset  bigint NOT NULL,
    intent_id       text NOT NULL,
    approved        boolean NOT NULL,
    rule            text,
    reason          text,
    source          text NOT NULL,
    exchange        text NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type      text NOT NULL,
    quantity        numeric NOT NULL,
    price           numeric,
    stop_price      numeric,
    reduce_only     boolean NOT NULL,
    ts_event_ns     bigint NOT NULL,
    ts_recv_ns      bigint NOT NULL,
    ts_event        timestamptz NOT NULL,
    PRIMARY KEY (journal_id, journal_offset)
);
CREATE INDEX risk_decisions_intent_idx ON risk_decisions (intent_id);
CREATE INDEX risk_decisions_market_time_idx ON risk_decisions (exchange, symbol, ts_event);

-- Strategy state per group (for resume): the highest version of a group is the current one;
-- format is the version of the blob's layout, journal_offset where the state was taken.
CREATE TABLE snapshots (
    group_key       text NOT NULL,
    version         bigint NOT NULL CHECK (version >= 0),
    format          integer NOT NULL DEFAULT 1,
    state           bytea NOT NULL,
    journal_id      text,
    journal_offset  bigint,
    taken_ts_ns     bigint NOT NULL,
    taken_at        timestamptz NOT NULL,
    PRIMARY KEY (group_key, version)
);

-- Periodic copies of metric series (counters survive restarts, history is queryable).
CREATE TABLE metrics_checkpoints (
    name       text NOT NULL,
    labels     jsonb NOT NULL DEFAULT '{}'::jsonb,
    value      double precision NOT NULL,
    ts_ns      bigint NOT NULL,
    taken_at   timestamptz NOT NULL,
    PRIMARY KEY (name, labels, ts_ns)
);
CREATE INDEX metrics_checkpoints_time_idx ON metrics_checkpoints (taken_at);
