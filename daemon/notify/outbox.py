"""The notifier's Redis keys and its per-target outboxes.

Takes :class:`~daemon.notify.events.Alert` records and files each into the outbox stream of
every target that wants its kind and severity (``{prefix}:notify:{group}:outbox:{target}``),
inside the caller's MULTI/EXEC pipeline, so filing is atomic with the XACK of the daemon
message it came from (or with the daily summary's marker).  Delivery reads an outbox after
the target's cursor (``...:cursor:{target}``).
"""

from __future__ import annotations

from typing import Any

from daemon.notify.config import NotifyConfig, Target
from daemon.notify.events import ALERT_ENCODER, Alert, severity_at_least

OUTBOX_MAXLEN = 10_000


class Keys:
    """Every key the notifier writes, under ``{prefix}:notify:{group}:``."""

    def __init__(self, prefix: str, group: str) -> None:
        self.prefix = prefix
        self.group = group
        self.base = f"{prefix}:notify:{group}:"

    def is_ours(self, key: str) -> bool:
        return key.startswith(f"{self.prefix}:notify:")

    @property
    def since(self) -> str:
        return self.base + "since"

    @property
    def unknown_orders(self) -> str:
        return self.base + "unknown"

    @property
    def stats(self) -> str:
        return self.base + "stats"

    def outbox(self, target: str) -> str:
        return self.base + "outbox:" + target

    def held(self, target: str) -> str:
        return self.base + "held:" + target

    def cursor(self, stream: str) -> str:
        return stream + ":cursor"

    def inflight(self, stream: str) -> str:
        return stream + ":inflight"

    def daily(self, account: str, day: str) -> str:
        return f"{self.base}daily:{account}:{day}"


def wants(target: Target, alert: Alert) -> bool:
    return alert.kind in target.kinds and severity_at_least(alert.severity, target.min_severity)


class Outbox:
    """Files alerts for the configured targets."""

    def __init__(self, cfg: NotifyConfig) -> None:
        self.keys = Keys(cfg.redis.prefix, cfg.notify.group)
        self.targets = cfg.notify.targets

    def file(self, pipe: Any, alert: Alert) -> int:
        """Queue the XADDs for ``alert`` on ``pipe`` (a MULTI pipeline); how many targets want it."""
        n = 0
        data = ALERT_ENCODER.encode(alert)
        for t in self.targets:
            if wants(t, alert):
                pipe.xadd(self.keys.outbox(t.name), {"a": data}, maxlen=OUTBOX_MAXLEN, approximate=True)
                n += 1
        return n
