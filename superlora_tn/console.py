"""Terminal output for the command line: tables and text that fit the terminal's width.

The width is the terminal's when there is one, ``$COLUMNS`` when set, else 100 columns (piped
output follows the same rules as a terminal). Numbers are never cut: only the text columns of
a table wrap, at spaces first, then inside a word.

>>> import os
>>> os.environ["COLUMNS"] = "40"
>>> print_table("t", ["name", "params"], [["a " * 30, "1,234,567"]], right=("params",), rich=False)
t
name                              params
a a a a a a a a a a a a a a a  1,234,567
a a a a a a a a a a a a a a a
>>> del os.environ["COLUMNS"]
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["echo", "fit_widths", "make_console", "print_table", "progress_steps", "terminal_width", "wrap_cell"]

DEFAULT_WIDTH = 100
GAP = 2  # spaces between the columns of a plain table
MIN_TEXT_WIDTH = 6


def terminal_width() -> int:
    """Columns to fill: ``$COLUMNS``, else the terminal's, else 100 (also when piped)."""
    return max(20, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)


def make_console(stderr: bool = False) -> Any:
    """A rich Console of :func:`terminal_width` columns, or None without rich."""
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(highlight=False, width=terminal_width(), stderr=stderr, soft_wrap=False)


def echo(text: str = "", indent: str = "  ") -> None:
    """Print ``text``, each line wrapped to the terminal width (continuations indented)."""
    width = terminal_width()
    for line in text.splitlines() or [""]:
        if len(line) <= width:
            print(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        print(textwrap.fill(line, width, subsequent_indent=lead + indent, break_on_hyphens=False,
                            break_long_words=True))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = (),
                rich: bool = True) -> None:
    """A table that fits the terminal: right-aligned (numeric) columns whole, text columns wrapped.

    Uses rich when installed (and ``rich`` is true), else aligned plain text.
    """
    cells = [[str(c) for c in row] for row in rows]
    columns, numeric, width = list(columns), set(right), terminal_width()
    console = make_console() if rich else None
    if console is None:
        for line in _plain_lines(title, columns, cells, numeric, width):
            print(line)
        return
    from rich import box
    from rich.table import Table

    widths = fit_widths(columns, cells, numeric, width - GAP * (len(columns) - 1))
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, padding=(0, GAP - 1, 0, 0))
    for c, w in zip(columns, widths):
        table.add_column("\n".join(wrap_cell(c, w)), justify="right" if c in numeric else "left", no_wrap=True, width=w)
    for row in cells:
        table.add_row(*("\n".join(wrap_cell(x, w)) if c not in numeric else x for x, w, c in zip(row, widths, columns)))
    console.print(table)


BREAK_AFTER = " ,x+>)-"  # a shape, an equation, a list or a phrase breaks after these


def wrap_cell(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after a space, comma, ``x``,
    ``+``, ``>``, ``)`` or ``-`` where possible, else inside a word.

    >>> wrap_cell("212x212x212", 8), wrap_cell("def,ad,be,cf->abc", 10), wrap_cell("24x24 (x) 32x32", 9)
    (['212x212x', '212'], ['def,ad,be,', 'cf->abc'], ['24x24 (x)', '32x32'])
    """
    lines = []
    while len(text) > width:
        space = text.rfind(" ", 0, width + 1)  # a space is the best place, if not too early
        cut = space + 1 if space >= width // 2 else max(
            (i + 1 for i, ch in enumerate(text[:width]) if ch in BREAK_AFTER), default=width)
        lines.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*lines, text] if text or not lines else lines


def fit_widths(columns: list[str], cells: list[list[str]], numeric: set[str], available: int) -> list[int]:
    """Column widths that add up to at most ``available``: the widest text column is narrowed
    first, one character at a time, never below 6 or its header's longest word; numeric
    columns keep their full width.

    >>> fit_widths(["name", "n"], [["abcdefghijkl", "12345"]], {"n"}, 14)
    [9, 5]
    """
    widths = [max(len(x) for x in col) for col in zip(columns, *cells)]
    floor = [max(MIN_TEXT_WIDTH, *(len(w) for w in c.split())) for c in columns]
    while sum(widths) > available:
        narrowable = [i for i, c in enumerate(columns) if c not in numeric and widths[i] > floor[i]]
        if not narrowable:
            break
        widths[max(narrowable, key=lambda i: widths[i])] -= 1
    return widths


def _plain_lines(title: str, columns: list[str], cells: list[list[str]], numeric: set[str], width: int) -> list[str]:
    """Aligned plain text; text columns wrapped to :func:`fit_widths` by :func:`wrap_cell`."""
    widths = fit_widths(columns, cells, numeric, width - GAP * (len(columns) - 1))
    lines = [title]
    for row in [columns, *cells]:
        wrapped = [wrap_cell(x, w) if c not in numeric else [x] for x, w, c in zip(row, widths, columns)]
        for k in range(max(len(w) for w in wrapped)):
            parts = [(w[k] if k < len(w) else "") for w in wrapped]
            lines.append((" " * GAP).join(p.rjust(n) if c in numeric else p.ljust(n)
                                          for p, n, c in zip(parts, widths, columns)).rstrip())
    return lines


@contextmanager
def progress_steps(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A progress bar with elapsed time and ETA on stderr; yields ``advance(n=1, label=None)``.

    ``label`` replaces the text before the bar (what is being done now).

    Falls back to nothing (a no-op ``advance``) without rich or when disabled.
    """
    console = make_console(stderr=True) if enabled else None
    if console is None:
        yield lambda n=1, label=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=console.is_terminal) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1, label: str | None = None) -> None:
            progress.update(task, advance=n, **({"description": label} if label is not None else {}))

        yield advance
