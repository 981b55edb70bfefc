"""Timing helpers and the result table shared by every case."""

from __future__ import annotations

import gc
import importlib.util
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (``warmup`` untimed calls first)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        gc.disable()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        gc.enable()
    return statistics.median(times)


@dataclass
class Row:
    case: str
    impl: str
    seconds: float | None  # None: peer not installed / skipped
    ref: str = ""  # row key (impl) this row's ratio is taken against
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, case: str, impl: str, seconds: float | None, ref: str = "", note: str = "") -> None:
        self.rows.append(Row(case, impl, seconds, ref, note))
        print(f"  {case:<34} {impl:<40} {_fmt(seconds):>11}", flush=True)

    def lookup(self, case: str, impl: str) -> float | None:
        for r in self.rows:
            if r.case == case and r.impl == impl:
                return r.seconds
        return None

    def render(self, width: int = 100) -> str:
        """The table, every line at most ``width`` columns: a note that does not fit after its row
        goes on the next line(s), indented under the implementation."""
        import textwrap

        cw = max([len("case"), *(len(r.case) for r in self.rows)])
        iw = max([len("implementation"), *(len(r.impl) for r in self.rows)])
        head = f"{'case':<{cw}} {'implementation':<{iw}} {'median':>11} {'ratio':>8}"
        lines = [head + "  vs / note" if len(head) + 11 <= width else head, "-" * min(width, len(head) + 11)]
        last = None
        for r in self.rows:
            if last is not None and r.case != last:
                lines.append("")
            last = r.case
            ratio = ""
            if r.ref and r.seconds is not None:
                base = self.lookup(r.case, r.ref)
                ratio = f"{r.seconds / base:7.2f}x" if base else "n/a"
            note = "; ".join(x for x in (r.ref, r.note) if x)
            row = f"{r.case:<{cw}} {r.impl:<{iw}} {_fmt(r.seconds):>11} {ratio:>8}"
            if not note or len(row) + 2 + len(note) <= width:
                lines.append(f"{row}  {note}".rstrip())
                continue
            lines.append(row)
            indent = " " * min(cw + 3, width // 3)
            lines += textwrap.wrap(f"vs / note: {note}", width, initial_indent=indent, subsequent_indent=indent)
        return "\n".join(lines)


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"
