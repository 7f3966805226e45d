"""Binance API credentials: the key and signer an account's config points at in the environment.

Secrets never live in the config file: ``api_key_env`` and ``secret_env`` name environment
variables; ``secret_env`` holds the HMAC secret (``key_type = "hmac"``) or the Ed25519 private
key PEM, inline or as a path (``key_type = "ed25519"``).  ``credential_problems`` lets the
daemon refuse to start (exit 2) with one line per account whose credentials are missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from adapters.binance.signing import Credentials, CredentialsError, Ed25519Signer, HmacSigner, Signer
from daemon.config_schema import BinanceAccount, Config


def credentials_for(cfg: BinanceAccount, environ: Mapping[str, str] | None = None) -> Credentials:
    """The account's API key and signer from the environment variables its config names."""
    env = os.environ if environ is None else environ
    api_key = env.get(cfg.api_key_env, "")
    if not api_key:
        raise CredentialsError(f"environment variable {cfg.api_key_env} (the Binance API key) is not set")
    secret = env.get(cfg.secret_env, "")
    if not secret:
        raise CredentialsError(
            f"environment variable {cfg.secret_env} (the Binance {cfg.key_type} secret) is not set"
        )
    signer: Signer
    if cfg.key_type == "hmac":
        signer = HmacSigner(secret)
    else:
        pem = secret if "BEGIN" in secret else _read_pem(cfg.secret_env, secret)
        signer = Ed25519Signer(pem)
    return Credentials(api_key, signer)


def credential_problems(cfg: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per Binance account of an enabled group whose credentials cannot be loaded."""
    used = {g.account for g in cfg.groups if g.enabled}
    problems = []
    for name, acct in cfg.accounts.items():
        if name in used and isinstance(acct, BinanceAccount):
            try:
                credentials_for(acct, environ)
            except CredentialsError as exc:
                problems.append(f"accounts.{name}: {exc}")
    return problems


def _read_pem(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialsError(f"{name} is neither a PEM key nor a readable file: {exc.strerror}") from None
