"""Map a config key path (``groups[1].strategy.ema_fast``) to its line in the TOML text.

tomllib does not keep positions, so error messages find the line here with a small
line scanner that understands table headers, arrays of tables and (dotted) keys.  It is
only used to point at lines in error messages; the TOML itself is parsed by tomllib.
When the exact key is not in the file (a missing required key), the line of its
nearest enclosing table is returned.  :func:`path_at` goes the other way for TOML syntax
errors (tomllib names a line, not a key): the key path a line defines.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")
_BROKEN_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_\-\"'.]+)")


def _split_key(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def _index_lines(text: str) -> dict[str, int]:
    """Every table and key path in ``text`` with the line (1-based) where it is defined."""
    found: dict[str, int] = {}
    counts: dict[str, int] = {}
    table: str = ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            table = _header_path(_split_key(m.group(2)), m.group(1) == "[[", counts)
            parts = table.split(".")
            for n in range(1, len(parts) + 1):  # [a.b] also defines a (implicitly)
                found.setdefault(".".join(parts[:n]), lineno)
            continue
        k = _KEY.match(line)
        if k:
            path = ".".join(p for p in [table, *_split_key(k.group(1))] if p)
            found.setdefault(path, lineno)
    return found


def _header_path(parts: list[str], is_array: bool, counts: dict[str, int]) -> str:
    """Resolve a header against arrays of tables seen so far: [groups.feed] -> groups[2].feed."""
    resolved: list[str] = []
    for i, part in enumerate(parts):
        prefix = ".".join([*resolved, part])
        last = i == len(parts) - 1
        if last and is_array:
            counts[prefix] = counts.get(prefix, -1) + 1
            resolved.append(f"{part}[{counts[prefix]}]")
        elif prefix in counts:
            resolved.append(f"{part}[{counts[prefix]}]")
        else:
            resolved.append(part)
    return ".".join(resolved)


def line_of(text: str, path: str) -> int | None:
    """Line of ``path`` in ``text``, or of its closest enclosing table/key; None if nothing matches."""
    index = _index_lines(text)
    candidate = path
    while candidate:
        if candidate in index:
            return index[candidate]
        cut = max(candidate.rfind("."), candidate.rfind("["))
        if cut <= 0:
            break
        candidate = candidate[:cut]
    return index.get(candidate)


def path_at(text: str, lineno: int) -> str:
    """The key path line ``lineno`` (1-based) defines: ``table.key``, a table header's path (also of
    a broken header: ``[health`` is ``health``), else its table's; "" at the top level."""
    counts: dict[str, int] = {}
    table = ""
    for n, line in enumerate(text.splitlines()[:lineno], start=1):
        m = _HEADER.match(line) or (_BROKEN_HEADER.match(line) if n == lineno else None)
        if m:
            table = _header_path(_split_key(m.group(2)), m.group(1) == "[[", counts)
            continue
        k = _KEY.match(line)
        if n == lineno and k:
            return ".".join(p for p in [table, *_split_key(k.group(1))] if p)
    return table
