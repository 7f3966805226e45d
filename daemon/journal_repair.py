"""``tradingd journal verify`` and ``tradingd journal recover``: what an operator runs on a damaged journal.

Takes and emits no messages; reads and (recover only) rewrites a journal directory with the
daemon stopped.

``verify`` reports every segment (records, damage, salvage), every finding and what the
retained journal knows (per group: records, client order ids, the newest decision's event
time); it changes nothing and may run beside the daemon.  Exit 0 when clean, 1 with findings.

``recover`` takes the journal's lock (so the daemon must be stopped), copies every segment it
changes to ``quarantine/<UTC time>/`` with a report, and rewrites each corrupt segment as
its intact frames: those before the damage stay at their offsets, those salvaged after it go
to a segment of their own at the offsets they were read at while damaged (the damaged bytes
kept one offset), so nothing that was copied to PostgreSQL moves.  Every hole is then
accepted in ``journal.meta`` (``accepted``) with the findings made while running, and
``floor`` is set past every offset that may have been used, so none is handed out again.
On the next start the daemon trades again; its restart recovery asks the venue about every
open order and takes the client order ids and the newest decision time the venue and
PostgreSQL know as a floor (:mod:`daemon.recovery_floor`), so no id is used twice.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from actors.messages import ANY_DECODER_MSGPACK, Message
from actors.timefmt import iso_utc
from daemon.journal import DEFAULT_SEGMENT_BYTES, JournalError, JournalLocked
from daemon.journal_scan import (
    SUFFIX,
    Inspection,
    JournalMeta,
    SegmentScan,
    fsync_path,
    inspect_journal,
    write_meta,
)
from daemon.spill import HEADER


@dataclass
class GroupSeen:
    records: int = 0
    client_order_ids: set[str] = field(default_factory=set)
    last_decision_ns: int = 0


def _frames(scan: SegmentScan) -> Iterator[tuple[int, bytes | None]]:
    """(offset, frame bytes) of each record of ``scan``; None for the damaged one."""
    data = Path(scan.path).read_bytes()
    pos = scan.positions
    for i, p in enumerate(pos):
        if i == scan.lost_at:
            yield scan.first + i, None
            continue
        (length, _) = HEADER.unpack_from(data, p)
        yield scan.first + i, data[p : p + HEADER.size + length]


def messages(insp: Inspection) -> Iterator[tuple[int, Message]]:
    """Every intact, decodable record of the inspected journal, in offset order."""
    for scan in insp.segments:
        for off, frame in _frames(scan):
            if frame is None:
                continue
            try:
                yield off, ANY_DECODER_MSGPACK.decode(frame[HEADER.size :])
            except msgspec.DecodeError:
                continue


def groups_seen(insp: Inspection) -> dict[str, GroupSeen]:
    seen: dict[str, GroupSeen] = {}
    for _, msg in messages(insp):
        g = seen.setdefault(f"{msg.exchange}:{msg.symbol}", GroupSeen())
        g.records += 1
        cid = getattr(msg, "client_order_id", "")
        if cid:
            g.client_order_ids.add(cid)
        if type(msg).__name__ in ("Signal", "OrderIntent"):
            g.last_decision_ns = max(g.last_decision_ns, msg.ts_event)
    return seen


def _iso(ns: int) -> str:
    return iso_utc(ns) if ns else "-"


def report(insp: Inspection) -> list[str]:
    lines = [f"journal {insp.directory}: {len(insp.segments)} segments"]
    for s in insp.segments:
        name = Path(s.path).name
        state = "ok"
        if s.damage is not None:
            kind = "torn tail" if s.torn_tail else "CORRUPT"
            state = (
                f"{kind} at byte {s.damage.offset} ({s.damage.reason}), {s.damaged_bytes} bytes unreadable"
            )
            if s.salvaged:
                state += f", {s.salvaged} records salvaged after it"
        lines.append(f"  {name}: offsets {s.first}..{s.end - 1}, {s.file_size} bytes, {state}")
    for g, seen in sorted(groups_seen(insp).items()):
        lines.append(
            f"  group {g}: {seen.records} records, {len(seen.client_order_ids)} client order ids, "
            f"newest decision {_iso(seen.last_decision_ns)}"
        )
    if insp.findings:
        lines.append(
            f"{len(insp.findings)} findings (the daemon halts trading until `tradingd journal recover`):"
        )
        lines += [f"  - {f}" for f in insp.findings]
    else:
        lines.append("clean: no findings")
    lines.append(f"new records would start at offset {insp.next_offset}")
    return lines


def verify(directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> tuple[int, list[str]]:
    """(exit code, report): 0 clean, 1 with findings, 2 when there is no journal."""
    if not directory.is_dir():
        return 2, [f"no journal at {directory}"]
    insp = inspect_journal(directory, segment_bytes)
    return (1 if insp.findings else 0), report(insp)


def _write_segment(directory: Path, first: int, frames: list[bytes]) -> Path:
    path, tmp = directory / f"{first:020d}{SUFFIX}", directory / f"{first:020d}{SUFFIX}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"".join(frames))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.rename(path)
    return path


def recover(directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> tuple[int, list[str]]:
    """Salvage every intact frame and accept what is lost; (exit code, report). Daemon stopped."""
    if not directory.is_dir():
        return 2, [f"no journal at {directory}"]
    lock_fd = os.open(directory / "journal.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalLocked(
                f"journal {directory} is open in a running tradingd: stop it first (systemctl stop tradingd)"
            ) from None
        return _recover_locked(directory, segment_bytes)
    finally:
        os.close(lock_fd)


def _recover_locked(directory: Path, segment_bytes: int) -> tuple[int, list[str]]:
    insp = inspect_journal(directory, segment_bytes)
    lines = report(insp)
    if not insp.findings:
        return 0, [*lines, "nothing to recover"]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    qdir = directory / "quarantine" / stamp
    qdir.mkdir(parents=True, exist_ok=False)
    (qdir / "report.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if (directory / "journal.meta").exists():
        shutil.copy2(directory / "journal.meta", qdir / "journal.meta")
    for scan in insp.segments:
        if not scan.corrupt and not scan.torn_tail:
            continue
        src = Path(scan.path)
        shutil.copy2(src, qdir / src.name)
        frames = list(_frames(scan))
        cut = scan.lost_at if scan.lost_at >= 0 else len(frames)
        before = [f for _, f in frames[:cut] if f is not None]
        after = [f for _, f in frames[cut + 1 :] if f is not None]
        if before:
            _write_segment(directory, scan.first, before)
        else:
            src.unlink()
        if after:
            _write_segment(directory, scan.first + cut + 1, after)
        lines.append(
            f"rewrote {src.name}: {len(before)} records kept in place"
            + (f", {len(after)} salvaged records to {scan.first + cut + 1:020d}{SUFFIX}" if after else "")
        )
    fsync_path(qdir)
    fsync_path(directory)
    again = inspect_journal(directory, segment_bytes)
    meta = insp.meta or JournalMeta()
    accepted = list(meta.accepted)
    accepted += again.gaps
    tail_end = again.segments[-1].end if again.segments else meta.released_below
    floor = max(insp.next_offset, again.next_offset, meta.floor)
    if floor > tail_end:
        accepted.append((tail_end, floor))
    lost = [(s.first + s.lost_at, s.first + s.lost_at + 1) for s in insp.segments if s.lost_at >= 0]
    accepted += lost
    newest = again.segments[-1].first if again.segments else -1  # a lost newest one: accepted
    write_meta(
        directory,
        JournalMeta(
            released_below=meta.released_below,
            newest_segment=newest,
            accepted=sorted(set(accepted)),
            unresolved=[],
            floor=floor,
        ),
    )
    final = inspect_journal(directory, segment_bytes)
    if final.findings:
        raise JournalError("journal still has findings after recovery: " + "; ".join(final.findings))
    lines.append(f"quarantined the originals in {qdir}")
    lines.append(
        f"accepted as lost: {', '.join(f'{a}..{b - 1}' for a, b in sorted(set(accepted))) or 'nothing'}"
    )
    lines.append(f"new records start at offset {final.next_offset}; the journal is clean")
    lines.append(
        "at the next start the venue is asked about every open order, and the client order ids and "
        "newest decision the venue and PostgreSQL know are taken as a floor before any order"
    )
    return 0, lines


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    journal = sub.add_parser(
        "journal",
        help="check or repair the order journal (verify: exit 0 clean, 1 damaged; recover: daemon stopped)",
    )
    journal.add_argument("action", choices=["verify", "recover"])
    where = journal.add_mutually_exclusive_group()
    where.add_argument("--config", default="config.toml", help="the daemon's config (its daemon.state_dir)")
    where.add_argument("--dir", help="the journal directory itself (<state_dir>/journal)")


def journal_main(args: argparse.Namespace) -> int:
    if args.dir:
        directory = Path(args.dir)
    else:
        from daemon.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        directory = Path(cfg.daemon.state_dir) / "journal"
    try:
        code, lines = verify(directory) if args.action == "verify" else recover(directory)
    except (JournalError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return code
