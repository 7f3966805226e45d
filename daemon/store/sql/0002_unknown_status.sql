-- tradingd store, version 0002: the UNKNOWN order status.
--
-- An order whose submission outcome was lost (timeout, 5xx, disconnect) is 'unknown' until
-- the venue, queried by client order id, says what became of it.  It counts as open.

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN (
    'submitted', 'unknown', 'accepted', 'partially_filled', 'filled',
    'canceled', 'rejected', 'expired'));

DROP INDEX orders_open_idx;
CREATE INDEX orders_open_idx ON orders (exchange, symbol)
    WHERE status IN ('submitted', 'unknown', 'accepted', 'partially_filled');
