"""Diagrams have no text over text or over lines, and every label in its box, measured with
matplotlib's own renderer (not by eye), for short and very long target names."""

from __future__ import annotations

import pytest

import superlora_tn as slt
from superlora_tn.draw import rank_label
from superlora_tn.draw_groups import cell_targets, draw_grouping
from superlora_tn.presets import group_by_kind

pytest.importorskip("matplotlib")
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox

SHORT = {f"l{i}.{w}": (24, 16) for i in range(2) for w in ("q", "v")}
LONG = {f"model.encoder.layers.{i}.self_attention_block.{w}_projection_matrix.weight": (96, 64)
        for i in range(12) for w in ("query", "value")}
SPECS = {
    "lora": dict(rank=8),
    "lokr": dict(splits=2, structure=["dense", "lora"], rank=8),
    "lonkr": dict(splits=3, structure="lora", rank=2),
    "cp": dict(groups=2, fold="balanced", order=3, structure="cp", rank=4),
    "tucker4": dict(groups=1, fold="balanced", order=4, rank=(2, 3, 4, 5)),
    "tucker_fastfood": dict(groups=2, fold="balanced", order=3, rank=4, projection=slt.Fastfood(0.5), shuffle=0),
    "lotr": dict(fold="stack", rank=4, identity_modes=(0,)),
    "dense_tucker": dict(groups=2, fold="balanced", order=3, splits=2, structure=["dense", "tucker"], rank=2),
    "tt": dict(fold="natural", order=5, structure="tt", rank=(2, 3, 4, 5)),
    "tt_kron": dict(groups=1, fold="balanced", order=3, splits=2, structure="tt", rank=3),
}
TOLERANCE = 0.5  # pixels


def rendered(targets: dict, name: str):
    kwargs = dict(SPECS[name.removeprefix("grouping:")])
    if name.endswith("lotr"):
        kwargs["groups"] = group_by_kind(targets)
    spec = slt.SuperLoRA(targets, **kwargs)
    fig = draw_grouping(spec) if name.startswith("grouping:") else spec.draw(0)
    renderer = FigureCanvasAgg(fig).get_renderer()
    return fig, fig.axes[0], renderer


def shrunk(box: Bbox) -> Bbox:
    return Bbox.from_extents(box.x0 + TOLERANCE, box.y0 + TOLERANCE, box.x1 - TOLERANCE, box.y1 - TOLERANCE)


def segment_hits(box: Bbox, p: tuple[float, float], q: tuple[float, float], samples: int = 200) -> bool:
    return any(box.contains(p[0] + (q[0] - p[0]) * i / samples, p[1] + (q[1] - p[1]) * i / samples)
               for i in range(samples + 1))


@pytest.mark.parametrize("targets", [SHORT, LONG], ids=["short names", "long names"])
@pytest.mark.parametrize("name", [*SPECS, "grouping:lora", "grouping:tucker_fastfood", "grouping:lotr"])
def test_no_label_overlaps_and_every_label_in_its_box(targets, name):
    fig, ax, renderer = rendered(targets, name)
    texts = [t for t in ax.texts if t.get_text()]
    boxes = {t: shrunk(t.get_window_extent(renderer)) for t in texts}
    figure_box = fig.bbox
    for i, a in enumerate(texts):
        assert figure_box.contains(*boxes[a].p0) and figure_box.contains(*boxes[a].p1), f"{a.get_text()!r} off the edge"
        for b in texts[i + 1:]:
            assert not boxes[a].overlaps(boxes[b]), f"{a.get_text()!r} over {b.get_text()!r}"
    for line in ax.lines:
        p, q = ax.transData.transform(line.get_xydata())
        for t in texts:
            assert not segment_hits(boxes[t], p, q), f"{t.get_text()!r} over a line"
    patches = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches if p.get_gid()}
    for t in texts:
        gid = t.get_gid() or ""
        if gid.startswith("in:"):
            outer, inner = patches[gid[3:]], boxes[t]
            assert outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1, \
                f"{t.get_text()!r} outside its box"


def test_the_factors_arrow_lands_on_the_first_stage():
    _, ax, renderer = rendered(SHORT, "tucker_fastfood")
    stages = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches if (p.get_gid() or "").startswith("stage")}
    first = stages["stage:0"]
    vertical = [p for p in ax.patches if p.get_gid() == "arrow" and abs(p._posA_posB[0][0] - p._posA_posB[1][0]) < 1e-9]
    assert len(vertical) == 1
    x, y = ax.transData.transform(vertical[0]._posA_posB[1])
    assert first.x0 < x < first.x1 and abs(y - first.y1) < 5


def test_rank_labels_read_as_ranks():
    assert rank_label("lora", (8, 8)) == "r=8"
    assert rank_label("cp", (4, 4, 4)) == "r=4"
    assert rank_label("tucker", (2, 3, 4)) == "r=(2, 3, 4)"


def test_grouping_cells_follow_the_segments_and_the_shuffle():
    targets = {"a": (8, 8), "b": (8, 8)}
    plain = slt.SuperLoRA(targets, groups=1, fold="balanced", order=2, rank=2)
    assert cell_targets(plain, cells=4) == [[0, 0, 1, 1]]  # a's entries, then b's
    shuffled = slt.SuperLoRA(targets, groups=1, fold="balanced", order=2, rank=2, shuffle=0)
    assert cell_targets(shuffled, cells=32) != [[0] * 16 + [1] * 16]
