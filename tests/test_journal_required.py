"""Journal-before-send is never optional for a real venue: a Binance account runs the order
journal whether ``[store]`` is on or not (PostgreSQL stays optional), a state directory it cannot
write is refused by check-config naming ``daemon.state_dir``, and a reload that would add a real
account to a daemon running without a journal is refused."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from daemon.app import Daemon
from daemon.config import ConfigError, parse_config
from daemon.metrics import Metrics
from tests.test_binance_config import _cfg
from tests.test_reload import _config

LIVE = 'exchange = "binance"\napi_key_env = "K"\nsecret_env = "S"'


def test_a_real_account_runs_the_journal_even_with_the_store_off(tmp_path: Path) -> None:
    text = (
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[store]\nenabled = false\n[redis]\nenabled = false\n'
    )
    cfg = parse_config(text + _cfg(LIVE), "c.toml")
    daemon = Daemon(cfg, tmp_path / "c.toml", Metrics())
    try:
        assert daemon.persistence is not None
        assert daemon.persistence.cfg.enabled and not daemon.persistence.cfg.postgres
        assert (tmp_path / "state" / "journal" / "journal.id").exists()
    finally:
        assert daemon.persistence is not None
        daemon.persistence.journal.close()


def test_paper_only_with_the_store_off_has_no_journal(tmp_path: Path) -> None:
    text = (
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[store]\nenabled = false\n[redis]\nenabled = false\n'
        '[accounts.paper]\nbalances = { USDT = "1000" }\n[[groups]]\nexchange = "paper"\nsymbol = "B/USDT"\n'
        'account = "paper"\n[groups.instrument]\nbase = "B"\nquote = "USDT"\ntick_size = "0.01"\n'
        'step_size = "1"\n[groups.feed]\npath = "x.json"\nformat = "candles"\n'
    )
    daemon = Daemon(parse_config(text, "c.toml"), tmp_path / "c.toml", Metrics())
    assert daemon.persistence is None


def test_check_config_refuses_a_state_dir_a_real_account_cannot_use(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.write_text("not a directory")
    text = f'[daemon]\nstate_dir = "{target / "sub"}"\n' + _cfg(LIVE)
    with pytest.raises(
        ConfigError, match=r"daemon\.state_dir: expected a directory \(the order journal of account live"
    ):
        parse_config(text, "c.toml")
    parse_config(text.replace(str(target / "sub"), str(tmp_path / "new" / "sub")), "c.toml")  # made at start


@pytest.mark.anyio
async def test_reload_adding_a_real_account_without_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = _config(tmp_path, trades_group=False).replace(
        "[store]\nenabled = true", "[store]\nenabled = false"
    )
    path.write_text(text)
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    assert daemon.persistence is None
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(10):
            while not daemon.supervisor.groups:
                await anyio.sleep(0.02)
        path.write_text(
            text + '\n[accounts.live]\nexchange = "binance"\napi_key_env = "K"\nsecret_env = "S"\n'
        )
        await daemon.reload()
        assert daemon.supervisor.last_reload_error.startswith(
            "reload refused: account(s) live trade a real venue"
        )
        assert "live" not in daemon.cfg.accounts
        tg.cancel_scope.cancel()
