"""A plain-text table of a spec, one row per group (the CLI adds rich formatting on top).

>>> import superlora_tn as slt
>>> print(slt.SuperLoRA({"w": (16, 16)}, rank=2).summary().splitlines()[0])
SuperLoRA: 1 targets, 256 entries, 1 groups, 64 params (compression 4.0x), scale 1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .factored import factored_targets

if TYPE_CHECKING:
    from .spec import SuperLoRA

__all__ = ["group_rows", "summary"]

MAX_ROWS = 12


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


def summary(spec: SuperLoRA) -> str:
    proj = spec.config["projection"]
    head = (
        f"SuperLoRA: {len(spec.targets)} targets, {spec.num_entries} entries, {len(spec.groups)} groups, "
        f"{spec.num_params} params (compression {spec.compression:.1f}x), scale {spec.scale_factor:g}"
    )
    if proj is not None:
        head += f", projection {type(proj).__name__}(ratio={proj.ratio})"
    if spec.config["shuffle"] is not None:
        head += f", shuffle seed {spec.config['shuffle']}"
    cols = ["group", "entries", "fold", "splits", "structure", "equation", "params", "flops", "largest_intermediate"]
    rows = group_rows(spec)
    shown = rows if len(rows) <= MAX_ROWS else rows[: MAX_ROWS - 2] + rows[-2:]
    table = [cols] + [[str(r[c]) for c in cols] for r in shown]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = [head] + ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    if len(rows) > MAX_ROWS:
        lines.insert(2 + MAX_ROWS - 2, f"... ({len(rows) - MAX_ROWS} more groups)")
    batches = spec.plan().batches
    lines.append(f"plan: {len(batches)} batched contraction(s) for {len(rows)} groups")
    lines.append(f"training: {factored_targets(spec)} of {len(spec.targets)} targets can apply factored (no dW built)")
    return "\n".join(lines)
