"""A plain-text table of a spec, one row per group (the CLI adds rich formatting on top).

>>> import superlora_tn as slt
>>> print(slt.SuperLoRA({"w": (16, 16)}, rank=2).summary().splitlines()[0])
SuperLoRA: 1 targets, 256 entries, 1 groups, 64 params (compression 4.0x), scale 1
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from .factored import factored_targets

if TYPE_CHECKING:
    from .facade import SuperLoRA

__all__ = ["collapse_rows", "group_label", "group_rows", "summary"]

MAX_ROWS = 12
WIDTH = 100  # the headline wraps here


def group_rows(spec: SuperLoRA) -> list[dict[str, Any]]:
    """One dict per group: the facts the summary and the CLI print."""
    rows = []
    for g in spec.groups:
        cost = g.cost
        rows.append({
            "group": g.index,
            "targets": len(g.segments),
            "entries": g.size,
            "generated": g.generated,
            "fold": "x".join(map(str, g.fold)),
            "splits": " (x) ".join("x".join(map(str, f.shape)) for f in g.factors),
            "structure": "+".join(f.structure for f in g.factors),
            "equation": g.equation,
            "params": g.num_params,
            "compression": g.size / max(1, g.num_params),
            "flops": cost["flops"],
            "largest_intermediate": cost["largest_intermediate"],
        })
    return rows


IDENTITY_KEYS = ("entries", "fold", "splits", "structure", "equation", "params", "flops", "largest_intermediate")


def collapse_rows(rows: list[dict[str, Any]]) -> list[tuple[list[int], dict[str, Any]]]:
    """Identical groups merged: (group indices, the first row) in first-seen order.

    >>> ids, row = collapse_rows([{"group": i, **dict.fromkeys(IDENTITY_KEYS, 1)} for i in range(3)])[0]
    >>> group_label(ids)
    '0-2 (x3)'
    """
    merged: dict[tuple, tuple[list[int], dict[str, Any]]] = {}
    for r in rows:
        merged.setdefault(tuple(r[k] for k in IDENTITY_KEYS), ([], r))[0].append(r["group"])
    return list(merged.values())


def group_label(ids: list[int]) -> str:
    """Group indices in a few characters: ``3``, ``0-23 (x24)``, ``0,2,4,..,22 (x12)``.

    >>> group_label([0, 1, 2]), group_label([1, 5]), group_label(list(range(0, 24, 2)))
    ('0-2 (x3)', '1,5 (x2)', '0,2,4,..,22 (x12)')
    """
    if len(ids) == 1:
        return str(ids[0])
    if ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]} (x{len(ids)})"
    return (",".join(map(str, ids[:3])) + (f",..,{ids[-1]}" if len(ids) > 3 else "")) + f" (x{len(ids)})"


def summary(spec: SuperLoRA) -> str:
    proj = spec.config.projection
    head = (
        f"SuperLoRA: {len(spec.targets)} targets, {spec.num_entries} entries, {len(spec.groups)} groups, "
        f"{spec.num_params} params (compression {spec.compression:.1f}x), scale {spec.scale_factor:g}"
    )
    if proj is not None:
        head += f", projection {type(proj).__name__}(ratio={proj.ratio})"
    if spec.config.shuffle is not None:
        head += f", shuffle seed {spec.config.shuffle}"
    cols = ["group", "entries", "fold", "splits", "structure", "equation", "params", "flops", "largest"]
    rows = group_rows(spec)
    merged = collapse_rows(rows)
    shown = merged if len(merged) <= MAX_ROWS else merged[: MAX_ROWS - 2] + merged[-2:]
    table = [cols] + [[group_label(ids)] + [str(r[c]) for c in IDENTITY_KEYS] for ids, r in shown]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = textwrap.wrap(head, WIDTH, subsequent_indent="  ")
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    if len(merged) > MAX_ROWS:
        lines.insert(len(lines) - 2, f"... ({len(merged) - MAX_ROWS} more kinds of group)")
    batches = spec.plan().batches
    lines.append(f"plan: {len(batches)} batched contraction(s) for {len(rows)} groups")
    lines.append(f"training: {factored_targets(spec)} of {len(spec.targets)} targets can apply factored (no dW built)")
    return "\n".join(lines)
