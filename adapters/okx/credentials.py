"""OKX API credentials: the key, secret and passphrase an account's config points at in the environment.

Secrets never live in the config file: ``api_key_env``, ``secret_env`` and ``passphrase_env``
name environment variables.  :func:`credential_problems` lets the daemon refuse to start (exit 2)
with one line per OKX account whose credentials are missing, naming the variable, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from adapters.okx.config import OkxAccount
from adapters.okx.signing import OkxCredentials, OkxSigner

__all__ = ["CredentialsError", "credential_problems", "credentials_for"]


class CredentialsError(RuntimeError):
    """The environment does not hold usable OKX credentials (names the variable, never a value)."""


def credentials_for(cfg: OkxAccount, environ: Mapping[str, str] | None = None) -> OkxCredentials:
    """The account's API key, signer and passphrase from the environment variables its config names."""
    env = os.environ if environ is None else environ
    values = []
    for name, what in (
        (cfg.api_key_env, "the OKX API key"),
        (cfg.secret_env, "the OKX secret key"),
        (cfg.passphrase_env, "the OKX API passphrase"),
    ):
        value = env.get(name, "")
        if not value:
            raise CredentialsError(f"environment variable {name} ({what}) is not set")
        values.append(value)
    key, secret, passphrase = values
    return OkxCredentials(key, OkxSigner(secret), passphrase)


def credential_problems(
    accounts: Mapping[str, object], used: Iterable[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """One line per OKX account in ``used`` (by an enabled group) whose credentials cannot be loaded."""
    problems = []
    for name in sorted(set(used)):
        acct = accounts.get(name)
        if isinstance(acct, OkxAccount):
            try:
                credentials_for(acct, environ)
            except CredentialsError as exc:
                problems.append(f"accounts.{name}: {exc}")
    return problems
