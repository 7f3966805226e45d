"""The fake Binance venue as a process of its own, for crash tests that kill the daemon, not the venue.

``python -m tests.fake_venue_process PORTFILE`` serves, on 127.0.0.1 and free ports:

- the market: the combined stream of ``tests/fake_binance_ws.py`` in live mode (NKNUSDT's
  captured depth diffs over an hour, plus an aggregate trade every 50 ms whose price follows a
  slow wave around the captured price, +-3 % over 8 s);
- the venue: ``tests/fake_binance.py`` (REST, WebSocket API user stream, signatures checked),
  whose resting orders are filled by the same trades: every 50 ms a market trade at the wave's
  price goes through its book;
- a control port: ``GET /state`` (every order, trade, balance, and how many order-creating
  requests each client order id came with), ``POST /freeze`` (no more trades: nothing fills),
  ``POST /deposit?asset=USDT&amount=100`` (money moved outside the daemon) and
  ``POST /manual_trade?side=BUY&qty=100`` (a market order of NKNUSDT by another client; answers its
  client order id).

``FAKE_VENUE_COMMISSION="0.001 USDT"`` in the environment charges that rate of each fill's notional
in that asset (default: none); ``FAKE_VENUE_ORDER_TYPES="STOP_LOSS,TAKE_PROFIT"`` allows those order
types on NKNUSDT (its captured exchangeInfo does not: native stops are refused there otherwise).

It writes ``{"ws_url", "rest_url", "venue_url", "ws_api_url", "control_url"}`` as JSON to PORTFILE
once everything listens, and runs until killed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Literal

import anyio
from aiohttp import web

from tests.fake_binance import ORDER_CREATING, FakeBinance, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws

SYMBOL = "NKNUSDT"
BASE_PRICE = Decimal("0.3528")
TICK = Decimal("0.0001")
PERIOD_S = 8.0
AMPLITUDE = 0.03
TRADE_EVERY_S = 0.05
START_BALANCES = {"USDT": Decimal("10000"), "NKN": Decimal("10000")}


def wave_price() -> Decimal:
    phase = 2 * math.pi * (time.monotonic() % PERIOD_S) / PERIOD_S
    return (BASE_PRICE * Decimal(1 + AMPLITUDE * math.sin(phase)) / TICK).quantize(Decimal(1)) * TICK


def state(venue: FakeBinance, frozen: bool) -> dict[str, object]:
    requests: dict[str, int] = {}
    for s in venue.seen:
        if (s.method, s.path) in ORDER_CREATING and s.status == 200:
            cid = s.params.get("newClientOrderId", "")
            requests[cid] = requests.get(cid, 0) + 1
    by_id = {o["orderId"]: o["clientOrderId"] for o in venue.orders.values()}
    return {
        "frozen": frozen,
        "orders": [
            {
                k: o[k]
                for k in (
                    "clientOrderId",
                    "orderId",
                    "side",
                    "type",
                    "status",
                    "origQty",
                    "executedQty",
                    "price",
                )
            }
            for o in venue.orders.values()
        ],
        "trades": [{**t, "clientOrderId": by_id.get(t["orderId"], "")} for t in venue.trades],
        "balances": {k: str(v) for k, v in venue.balances.items()},
        "order_requests": requests,
    }


def _commission() -> dict[str, object]:
    rate, _, asset = os.environ.get("FAKE_VENUE_COMMISSION", "").partition(" ")
    return {"commission_rate": Decimal(rate), "commission_asset": asset} if rate else {}


def _order_types() -> dict[str, object]:
    extra = [t for t in os.environ.get("FAKE_VENUE_ORDER_TYPES", "").split(",") if t]
    return {"order_types_extra": frozenset(extra)} if extra else {}


async def main(portfile: Path) -> None:
    frozen = anyio.Event()
    async with (
        open_fake_binance_ws(
            live=True, replay_s=3600.0, trades_every_s=TRADE_EVERY_S, trade_price=wave_price
        ) as market,
        open_fake_binance(
            balances=dict(START_BALANCES), market_price=BASE_PRICE, **_commission(), **_order_types()
        ) as venue,
    ):
        venue.last_prices[SYMBOL] = BASE_PRICE

        async def get_state(request: web.Request) -> web.Response:
            return web.json_response(state(venue, frozen.is_set()))

        async def freeze(request: web.Request) -> web.Response:
            frozen.set()
            return web.json_response({"frozen": True})

        async def deposit(request: web.Request) -> web.Response:
            await venue.deposit(request.query["asset"], Decimal(request.query["amount"]))
            return web.json_response({"balances": {k: str(v) for k, v in venue.balances.items()}})

        async def manual_trade(request: web.Request) -> web.Response:
            side: Literal["BUY", "SELL"] = "BUY" if request.query["side"] == "BUY" else "SELL"
            cid = await venue.manual_trade(SYMBOL, side, Decimal(request.query["qty"]))
            return web.json_response({"clientOrderId": cid})

        app = web.Application()
        app.router.add_get("/state", get_state)
        app.router.add_post("/freeze", freeze)
        app.router.add_post("/deposit", deposit)
        app.router.add_post("/manual_trade", manual_trade)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        control = f"http://127.0.0.1:{runner.addresses[0][1]}"
        urls = {
            "ws_url": market.url,
            "rest_url": market.rest_url,
            "venue_url": venue.url,
            "ws_api_url": venue.ws_api_url,
            "control_url": control,
        }
        tmp = portfile.with_suffix(".tmp")
        tmp.write_text(json.dumps(urls))
        tmp.rename(portfile)
        try:
            while not frozen.is_set():
                await venue.trade(SYMBOL, wave_price(), Decimal("1000"))
                await anyio.sleep(TRADE_EVERY_S)
            await anyio.sleep_forever()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]))
