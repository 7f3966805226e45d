"""Benchmarks, run with ``python -m bench`` (``make bench``).

Each benchmark is a module exposing ``main() -> dict``; ``bench.__main__.BENCHES`` lists
them in run order.  Results are printed and written as JSON under ``bench/results/``
(not tracked by git), together with :func:`machine_info` so figures from different
machines are never compared blind.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import anyio

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = ("anyio", "msgspec", "numpy", "uvloop")

T = TypeVar("T")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else whatever platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": {name: package_version(name) for name in PACKAGES},
    }


def machine_line(info: dict[str, Any]) -> str:
    pkgs = " ".join(f"{k}={v}" for k, v in info["packages"].items())
    python = f"{info['implementation']} {info['python']}"
    return f"machine: {info['cpu']} | {info['cores']} cores | {python} | {pkgs}"


def event_loop_name() -> str:
    """``uvloop`` when it is importable (the daemon's loop), else ``asyncio``."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on asyncio, under uvloop when available, as the daemon does."""
    return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": event_loop_name() == "uvloop"})


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` (plus machine info) to ``bench/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"bench": name, "machine": machine_info(), **result}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
