"""The operator's kill switch, per scope, as the journal and the supervisor keep it.

Takes :class:`~actors.messages.HaltChanged` (from the admin API through the supervisor, and
from the journal at start); emits nothing itself.  :class:`HaltBook` holds the halts in force:
the whole daemon (``scope="daemon"``), one account (``target`` its name) or one group
(``target`` ``"exchange:symbol"``).  A group is halted while any halt covers it; the reason
it shows names the scope, who halted and when (ISO 8601 UTC).  The book is the same code in
the daemon (what to apply) and in the journal's fold (what to restore, and to journal again
with each snapshot round so that releasing old segments never drops a halt).
"""

from __future__ import annotations

from typing import Literal

from actors.messages import HaltChanged
from actors.timefmt import iso_utc

Key = tuple[str, str]  # (scope, target)
HaltScope = Literal["daemon", "account", "group"]


def iso(ns: int) -> str:
    return iso_utc(ns)


def describe(msg: HaltChanged) -> str:
    where = {"daemon": "all groups", "account": f"account {msg.target}", "group": f"group {msg.target}"}
    by = f" by {msg.by}" if msg.by else ""
    return f"{msg.reason} ({where[msg.scope]}, halted {iso(msg.ts_event)}{by})"


class HaltBook:
    def __init__(self) -> None:
        self.active: dict[Key, HaltChanged] = {}

    def apply(self, msg: HaltChanged) -> bool:
        """Take ``msg``; True when it changed what is in force."""
        key = (msg.scope, msg.target)
        if msg.halted:
            changed = key not in self.active
            self.active[key] = msg
            return changed
        return self.active.pop(key, None) is not None

    def covering(self, account: str, group: str) -> list[HaltChanged]:
        """The halts in force over a group (``group`` as ``"exchange:symbol"``), widest first."""
        keys = (("daemon", ""), ("account", account), ("group", group))
        return [self.active[k] for k in keys if k in self.active]

    def reason(self, account: str, group: str) -> str:
        return "; ".join(describe(m) for m in self.covering(account, group))

    def __len__(self) -> int:
        return len(self.active)
