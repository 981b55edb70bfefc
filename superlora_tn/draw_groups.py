"""Draw how a spec covers its targets: grouping, folding, projection and shuffling at once.

One row per group: its network (fold, structure, rank, parameters), the entries it generates
(and the projection that maps them to the group's size), then the group's entries as a bar of
cells coloured by the target each cell lands in. Without shuffling a group's cells are
contiguous runs of its targets; with shuffling they are scattered over every target. Drawn
from the spec's own segments and permutation, so the picture stays true.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"l0.q": (16, 12), "l0.v": (16, 12)}, groups=1, fold="balanced", order=3, rank=2)
>>> len(cell_targets(spec, cells=4)), len(cell_targets(spec, cells=4)[0])
(1, 4)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .draw import Scene, rank_label, render, shorten, text_size

if TYPE_CHECKING:
    from .facade import SuperLoRA

__all__ = ["PALETTE", "cell_targets", "draw_grouping", "grouping_scene"]

#: Okabe-Ito, a colour-blind-safe palette
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
CELLS = 24  # cells per group bar
CELL = 0.24  # width of one cell, data units
ROW = 1.5  # height of one group's row


def cell_targets(spec: SuperLoRA, cells: int = CELLS) -> list[list[int]]:
    """Per group, ``cells`` target indices: the target most of each cell's entries land in."""
    sizes = [int(np.prod(t.shape)) for t in spec.targets]
    owner = np.repeat(np.arange(len(sizes)), sizes)  # dW_all position -> target index
    perm = spec.plan().permutation()
    if perm is not None:  # dW_all = z[perm]: z position perm[i] lands in dW_all position i
        landing = np.empty_like(perm)
        landing[perm] = np.arange(len(perm))
        owner = owner[landing]
    else:  # z is dW_all reordered by groups: each group's segments in order
        owner = np.concatenate([np.repeat(_index(spec, s.target), s.size) for g in spec.groups for s in g.segments])
    rows, start = [], 0
    for g in spec.groups:
        chunk = owner[start:start + g.size]
        start += g.size
        rows.append([int(np.bincount(part, minlength=len(sizes)).argmax()) for part in np.array_split(chunk, cells)])
    return rows


def _index(spec: SuperLoRA, name: str) -> int:
    return next(i for i, t in enumerate(spec.targets) if t.name == name)


def grouping_scene(spec: SuperLoRA) -> Scene:
    """The picture as a :class:`~superlora_tn.draw.Scene` (see the module docstring)."""
    scene = Scene()
    proj, shuffle = spec.config.projection, spec.config.shuffle
    networks = [f"group {g.index}: {'+'.join(f.structure for f in g.factors)}\nfold {'x'.join(map(str, g.fold))}"
                f" {rank_label(g.factors[-1].structure, g.factors[-1].ranks)}\n{g.num_params:,} params"
                for g in spec.groups]
    generated = [f"generates {g.generated:,}" + (f"\n{type(proj).__name__}({proj.ratio:g})\n-> {g.size:,}" if proj else "")
                 for g in spec.groups]
    w_net = max(text_size(t, 8)[0] for t in networks) + 0.3
    w_gen = max(text_size(t, 8)[0] for t in generated) + 0.3
    box_h = max(text_size(t, 8)[1] for t in [*networks, *generated]) + 0.25
    x_gen = w_net + 0.7
    x_bar = x_gen + w_gen + 0.7
    owners = cell_targets(spec)
    for row, g in enumerate(spec.groups):
        y = -row * max(ROW, box_h + 0.6)
        for x, w, text, name in ((0.0, w_net, networks[row], "net"), (x_gen, w_gen, generated[row], "gen")):
            gid = f"{name}:{row}"
            scene.boxes.append({"x0": x, "y0": y - box_h / 2, "x1": x + w, "y1": y + box_h / 2, "kind": "stage", "gid": gid})
            scene.text(x + w / 2, y, text, 8, gid=f"in:{gid}")
        scene.arrows.append((w_net + 0.08, y, x_gen - 0.08, y))
        scene.arrows.append((x_gen + w_gen + 0.08, y, x_bar - 0.08, y))
        for c, owner in enumerate(owners[row]):
            scene.boxes.append({"x0": x_bar + c * CELL, "y0": y - 0.2, "x1": x_bar + (c + 1) * CELL, "y1": y + 0.2,
                                "kind": "cell", "fc": PALETTE[owner % len(PALETTE)], "gid": f"cell:{row}:{c}"})
        scene.text(x_bar, y + 0.28, f"its {g.size:,} entries of dW_all", 8, ha="left", va="bottom")
    x_key = x_bar + CELLS * CELL + 0.6
    for i, t in enumerate(spec.targets):
        y = 0.4 - i * 0.36
        scene.boxes.append({"x0": x_key, "y0": y - 0.12, "x1": x_key + 0.24, "y1": y + 0.12, "kind": "cell",
                            "fc": PALETTE[i % len(PALETTE)], "gid": f"key:{i}"})
        scene.text(x_key + 0.36, y, f"{shorten(t.name)} {'x'.join(map(str, t.shape))}", 8, ha="left")
    fold = spec.config.fold
    head = (f"{len(spec.targets)} targets in {len(spec.groups)} groups, fold {fold}"
            + (f", {type(proj).__name__}({proj.ratio:g})" if proj else "")
            + (f", shuffled (seed {shuffle})" if shuffle is not None else ", not shuffled"))
    top = scene.extent()[3]
    scene.text(0.0, top + 0.25, head, 10, ha="left", va="bottom")
    return scene


def draw_grouping(spec: SuperLoRA, path: str | Path | None = None) -> Any:
    """Render :func:`grouping_scene`; save to ``path`` (.png, .svg, .pdf) if given; return the Figure."""
    return render(grouping_scene(spec), path)
