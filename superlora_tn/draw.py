"""Draw one group's tensor network: Kronecker factors (cores, factor matrices, bonds, open
indices), then the stages that turn their Kronecker product into the group's entries (cut,
projection, shuffle, targets). Matplotlib with the Agg backend; PNG or SVG by file suffix.

The drawing is generic over the IR: an index shared by two tensors is a bond, an index shared
by more (CP's rank) meets at a black super-diagonal dot, an output index is an open leg. Tensors
around a core (Tucker, dense) or a dot (CP) are drawn in a ring; tensors bonded only to their
neighbours (a tensor train) are drawn as a row, open legs below. With
``compose="hadamard"`` (LoHa) the factors share the output indices (hyperedges): their open
legs carry the same index names, joined by "(.)" and the "(.) Hadamard" stage.

>>> import superlora_tn as slt, tempfile, os
>>> spec = slt.SuperLoRA({"q": (64, 64)}, splits=2, rank=4)
>>> path = os.path.join(tempfile.mkdtemp(), "lokr.png")
>>> fig = draw(spec, 0, path)
>>> os.path.getsize(path) > 1000
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError

if TYPE_CHECKING:
    from .facade import SuperLoRA
    from .network import GroupNetwork

__all__ = ["Scene", "draw", "factor_layout", "layout", "rank_label", "render", "shorten", "text_size"]

RADIUS = 1.0  # distance of factor matrices from the core
CHAIN_STEP = 1.25  # distance between neighbours of a chain of tensors (a tensor train), drawn as a row
LEG = 0.55  # length of an open leg
COLORS = {"core": "#f4a261", "A": "#8ecae6", "dense": "#b7e4c7", "hub": "black"}
FONT = "DejaVu Sans Mono"  # shipped with matplotlib; monospace, so text extents are known in advance
CHAR = 0.602  # width of one DejaVu Sans Mono character, in em
LINE = 1.25  # height of one line of text, in em (matplotlib spaces lines by 1.2 em)
SCALE = 0.75  # inches per data unit
PT = 1 / 72 / SCALE  # data units per point
NAME_CHARS = 30  # target names longer than this are shortened in the middle
GAP = 0.12  # between a line and its label


def rank_label(structure: str, ranks: tuple[int, ...]) -> str:
    """The ranks as the user gave them: ``r=8`` for LoRA and CP (one shared rank),
    ``r=8`` for a Tucker core of equal ranks, else ``r=(8, 8, 4)``; empty for dense.

    >>> rank_label("lora", (8, 8)), rank_label("tucker", (2, 3, 4)), rank_label("dense", ())
    ('r=8', 'r=(2, 3, 4)', '')
    """
    if not ranks:
        return ""
    if structure in ("lora", "cp") or len(set(ranks)) == 1:
        return f"r={ranks[0]}"
    return f"r=({', '.join(map(str, ranks))})"


def shorten(name: str, chars: int = NAME_CHARS) -> str:
    """``name`` in at most ``chars`` characters: the longest dotted parts without digits are
    left out first (``..`` marks the gap), so layer indices and the last part stay readable.

    >>> shorten("vit.encoder.layer.11.attention.attention.query.weight", 30)
    'vit..layer.11..query.weight'
    """
    parts = name.split(".")
    keep = [True] * len(parts)

    def joined() -> str:
        out: list[str] = []
        for part, kept in zip(parts, keep):
            if kept:
                out.append(part)
            elif not out or out[-1] != "":
                out.append("")
        return ".".join(out)

    droppable = sorted((i for i in range(1, len(parts) - 1) if not any(ch.isdigit() for ch in parts[i])),
                       key=lambda i: -len(parts[i]))
    for i in droppable:
        if len(joined()) <= chars:
            break
        keep[i] = False
    text = joined()
    return text if len(text) <= chars else text[: chars - 2] + ".."


def factor_layout(net: GroupNetwork, k: int) -> dict[str, Any]:
    """Nodes, bonds and open legs of Kronecker factor ``k``, positioned around (0, 0).

    Returns ``{"nodes": {name: (x, y, kind, label)}, "bonds": [(a, b, text)], "legs": [(node, angle, text)]}``.
    """
    tensors = list(net.factor_params(k))
    sizes = {s: n for t in net.tensors for s, n in zip(t.subscripts, t.shape)}
    out = set(net.output)
    users: dict[str, list[str]] = {}
    for t in tensors:
        for s in t.subscripts:
            users.setdefault(s, []).append(t.name)
    local = {t.name: t.local for t in tensors}
    hubs = [s for s, us in users.items() if s not in out and len(us) > 2]
    centre = next((t.name for t in tensors if local[t.name] in ("core", "dense")), None)
    nodes: dict[str, tuple[float, float, str, str]] = {}
    others = [t for t in tensors if t.name != centre]
    if centre is not None:
        nodes[centre] = (0.0, 0.0, "core" if local[centre] == "core" else "dense", local[centre])
    for h in hubs:
        nodes[f"hub:{h}"] = (0.0, 0.0, "hub", "")
    n_free = sum(1 for s in users if s in out for u in users[s] if u == centre)
    slots = len(others) + n_free
    pairs = {frozenset(us) for s, us in users.items() if s not in out and len(us) == 2}
    chain = (centre is None and not hubs and len(others) > 2  # a tensor train: each tensor bonded to the next only
             and pairs == {frozenset((a.name, b.name)) for a, b in pairwise(others)})
    if centre is None and not hubs and len(others) == 2:  # lora: A0 -- A1
        angles = [math.pi, 0.0]
    else:
        start = math.pi / 2 if others else math.pi
        angles = [start + 2 * math.pi * i / max(1, slots) for i in range(slots)]
    for i, (t, a) in enumerate(zip(others, angles)):
        r = RADIUS * (0.75 if centre is None and not hubs else 1.0)
        nodes[t.name] = ((i - (len(others) - 1) / 2) * CHAIN_STEP, 0.0, "A", local[t.name]) if chain else \
            (r * math.cos(a), r * math.sin(a), "A", local[t.name])
    bonds, legs = [], []
    for s, us in users.items():
        if s in out:
            for u in us:
                x, y, _, _ = nodes[u]
                angle = -math.pi / 2 if chain else math.atan2(y, x) if (x, y) != (0.0, 0.0) else None
                identity = " (identity)" if u == centre and local[u] == "core" else ""
                legs.append((u, angle, f"{s}={sizes[s]}{identity}"))
        elif len(us) == 2:
            bonds.append((us[0], us[1], f"{s}={sizes[s]}"))
        else:
            bonds.extend((f"hub:{s}", u, f"{s}={sizes[s]}" if i == 0 else "") for i, u in enumerate(us))
    free = [i for i, leg in enumerate(legs) if leg[1] is None]  # legs of the centre node: the free slots
    for j, i in enumerate(free):
        u, _, text = legs[i]
        legs[i] = (u, angles[len(others) + j], text)
    return {"nodes": nodes, "bonds": bonds, "legs": legs}


# ----------------------------------------------------------------------------- a scene of known extents
@dataclass
class Scene:
    """What to draw, in data units, with every text's extent known before drawing."""

    boxes: list[dict[str, Any]] = field(default_factory=list)
    lines: list[tuple[float, float, float, float, str]] = field(default_factory=list)
    arrows: list[tuple[float, float, float, float]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)

    def text(self, x: float, y: float, s: str, size: float = 8, ha: str = "center", va: str = "center",
             **style: Any) -> tuple[float, float, float, float]:
        w, h = text_size(s, size)
        x0 = {"left": x, "center": x - w / 2, "right": x - w}[ha]
        y0 = {"bottom": y, "center": y - h / 2, "top": y - h}[va]
        self.texts.append({"x": x, "y": y, "s": s, "size": size, "ha": ha, "va": va, **style})
        return (x0, y0, x0 + w, y0 + h)

    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) around everything, text included."""
        xs, ys = [], []
        for t in self.texts:
            x0, y0, x1, y1 = _text_box(t)
            xs += [x0, x1]
            ys += [y0, y1]
        for b in self.boxes:
            xs += [b["x0"], b["x1"]]
            ys += [b["y0"], b["y1"]]
        for x0, y0, x1, y1, *_ in [*self.lines, *self.arrows]:
            xs += [x0, x1]
            ys += [y0, y1]
        return min(xs), min(ys), max(xs), max(ys)

    def shifted(self, dx: float, dy: float) -> Scene:
        return Scene(
            [{**b, "x0": b["x0"] + dx, "x1": b["x1"] + dx, "y0": b["y0"] + dy, "y1": b["y1"] + dy} for b in self.boxes],
            [(x0 + dx, y0 + dy, x1 + dx, y1 + dy, c) for x0, y0, x1, y1, c in self.lines],
            [(x0 + dx, y0 + dy, x1 + dx, y1 + dy) for x0, y0, x1, y1 in self.arrows],
            [{**t, "x": t["x"] + dx, "y": t["y"] + dy} for t in self.texts],
        )

    def add(self, other: Scene) -> None:
        self.boxes += other.boxes
        self.lines += other.lines
        self.arrows += other.arrows
        self.texts += other.texts


def text_size(s: str, size: float) -> tuple[float, float]:
    """Width and height of monospace text ``s`` at ``size`` points, in data units."""
    lines = s.split("\n")
    return max(len(line) for line in lines) * CHAR * size * PT, len(lines) * LINE * size * PT


def _text_box(t: dict[str, Any]) -> tuple[float, float, float, float]:
    w, h = text_size(t["s"], t["size"])
    x0 = {"left": t["x"], "center": t["x"] - w / 2, "right": t["x"] - w}[t["ha"]]
    y0 = {"bottom": t["y"], "center": t["y"] - h / 2, "top": t["y"] - h}[t["va"]]
    return x0, y0, x0 + w, y0 + h


def _away(dx: float, dy: float, tol: float = 0.35) -> tuple[str, str]:
    """Alignment that puts a label on the side of its anchor that direction (dx, dy) points to."""
    ha = "left" if dx > tol else "right" if dx < -tol else "center"
    va = "bottom" if dy > tol else "top" if dy < -tol else "center"
    return ha, va


def _node_half(kind: str, label: str) -> tuple[float, float]:
    if kind == "hub":
        return 0.1, 0.1
    w, _ = text_size(label, 7)
    half = max(0.24, w / 2 + 0.08)
    return half, (half if kind in ("core", "dense") else 0.22)


def _edge(x: float, y: float, half: tuple[float, float], tx: float, ty: float) -> tuple[float, float]:
    """Where the segment from node centre (x, y) toward (tx, ty) leaves the node's box."""
    dx, dy = tx - x, ty - y
    scale = min(half[0] / abs(dx) if dx else math.inf, half[1] / abs(dy) if dy else math.inf)
    return (x + dx * scale, y + dy * scale) if scale < 1 else (x, y)


def _factor_scene(net: GroupNetwork, k: int) -> Scene:
    """One Kronecker factor around (0, 0): nodes, bonds (labels beside), open legs (labels beyond)."""
    lay = factor_layout(net, k)
    scene = Scene()
    nodes = lay["nodes"]
    halves = {n: _node_half(kind, label) for n, (_, _, kind, label) in nodes.items()}
    for a, b, label in lay["bonds"]:
        (xa, ya, _, _), (xb, yb, _, _) = nodes[a], nodes[b]
        p0, p1 = _edge(xa, ya, halves[a], xb, yb), _edge(xb, yb, halves[b], xa, ya)
        scene.lines.append((*p0, *p1, "black"))
        if label:
            length = math.hypot(xb - xa, yb - ya) or 1.0
            nx, ny = (ya - yb) / length, (xb - xa) / length
            if ny < 0 or (ny == 0 and nx < 0):  # labels above (or right of) their bond
                nx, ny = -nx, -ny
            mx, my = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
            scene.text(mx + GAP * nx, my + GAP * ny, label, 8, *_away(nx, ny, 0.05), color="firebrick")
    for node, angle, label in lay["legs"]:
        x, y, _, _ = nodes[node]
        cx, cy = math.cos(angle), math.sin(angle)
        p0 = _edge(x, y, halves[node], x + 10 * cx, y + 10 * cy)
        p1 = (p0[0] + LEG * cx, p0[1] + LEG * cy)
        scene.lines.append((*p0, *p1, "royalblue"))
        scene.text(p1[0] + 0.06 * cx, p1[1] + 0.06 * cy, label, 8, *_away(cx, cy), color="royalblue")
    for n, (x, y, kind, label) in nodes.items():
        hw, hh = halves[n]
        scene.boxes.append({"x0": x - hw, "y0": y - hh, "x1": x + hw, "y1": y + hh, "kind": kind, "gid": f"node:{k}:{n}"})
        if label:
            scene.text(x, y, label, 7, gid=f"in:node:{k}:{n}")
    return scene


def _stages(spec: SuperLoRA, net: GroupNetwork) -> list[str]:
    product = "(.) Hadamard" if net.compose == "hadamard" else "(x) Kronecker"
    stages = [f"{product}\n{' x '.join(map(str, net.kron_shape))}"]
    if net.kron_shape != net.fold or math.prod(net.fold) != net.generated:
        stages.append(f"cut to fold\n{' x '.join(map(str, net.fold))}\nkeep n'={net.generated}")
    if net.projection is not None:
        stages.append(f"F: {type(net.projection).__name__}\nrho={net.projection.ratio:g}\n{net.generated} -> {net.size}")
    if spec.config.shuffle is not None:
        stages.append(f"shuffle\nseed {spec.config.shuffle}")
    names = [shorten(s.target) for s in net.segments]
    shown = "\n".join(names[:2]) + (f"\n... ({len(names)} targets)" if len(names) > 2 else "")
    stages.append(f"dW: {net.size} entries\n{shown}")
    return stages


def layout(spec: SuperLoRA, group: int) -> Scene:
    """The whole drawing of group ``group`` in data units (1 unit = 0.75 inch)."""
    net = spec.groups[group]
    scene = Scene()
    # the Kronecker factors side by side, each in a dashed panel of a common height
    parts = [_factor_scene(net, k) for k in range(len(net.factors))]
    titles = [f"T{k}: {f.structure}\n{'x'.join(map(str, f.shape))} {rank_label(f.structure, f.ranks)}".rstrip()
              for k, f in enumerate(net.factors)]
    extents = [p.extent() for p in parts]
    bottom = min(e[1] for e in extents) - 0.15
    top = max(e[3] for e in extents) + 0.15
    title_h = max(text_size(t, 9)[1] for t in titles)
    x = 0.0
    for k, (part, (x0, _, x1, _), title) in enumerate(zip(parts, extents, titles)):
        width = max(x1 - x0, text_size(title, 9)[0]) + 0.3
        dx = x + width / 2 - (x0 + x1) / 2
        scene.add(part.shifted(dx, 0))
        scene.boxes.append({"x0": x, "y0": bottom, "x1": x + width, "y1": top + title_h + 0.15, "kind": "panel",
                            "gid": f"panel:{k}"})
        scene.text(x + width / 2, top + 0.05, title, 9, va="bottom", gid=f"in:panel:{k}")
        x += width
        if k < len(parts) - 1:
            scene.text(x + 0.4, 0.0, "(.)" if net.compose == "hadamard" else "(x)", 12, weight="bold")
            x += 0.8
    row_right = x
    if net.compose == "hadamard" and len(net.factors) > 1:  # LoHa: every output index is shared by all factors
        shared = ", ".join(f"{sym}={n}" for sym, n in zip(net.output, net.einsum_shape))
        note = f"hyperedges: {shared}\n(each output index is shared by every factor)"
        scene.text(row_right / 2, bottom - 0.1, note, 8, va="top", color="royalblue")
        bottom -= text_size(note, 8)[1] + 0.2
    # the stages below, left to right, joined by arrows; the factors' arrow lands on the first
    stages = _stages(spec, net)
    sizes = [text_size(s, 8) for s in stages]
    box_h = max(h for _, h in sizes) + 0.3
    y1 = bottom - 0.8
    x = 0.0
    for i, (text, (w, _)) in enumerate(zip(stages, sizes)):
        gid = f"stage:{i}"
        scene.boxes.append({"x0": x, "y0": y1 - box_h, "x1": x + w + 0.3, "y1": y1, "kind": "stage", "gid": gid})
        scene.text(x + (w + 0.3) / 2, y1 - box_h / 2, text, 8, gid=f"in:{gid}")
        if i == 0:
            cx = x + (w + 0.3) / 2
            scene.arrows.append((cx, bottom - 0.05, cx, y1 + 0.05))
        x += w + 0.3
        if i < len(stages) - 1:
            scene.arrows.append((x + 0.08, y1 - box_h / 2, x + 0.52, y1 - box_h / 2))
            x += 0.6
    title = f"group {group}: {net.equation}   ({net.num_params:,} params)"
    ex = scene.extent()
    scene.text((ex[0] + max(ex[2], row_right)) / 2, ex[3] + 0.15, title, 10, va="bottom")
    return scene


def draw(spec: SuperLoRA, group: int = 0, path: str | Path | None = None) -> Any:
    """Render group ``group`` of ``spec``; save to ``path`` (.png, .svg, .pdf) if given; return the Figure.

    Every text is placed from its known extent (monospace), so no label overlaps another
    label, a line or its box's edge, whatever the target names (long ones are shortened).
    """
    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < len(spec.groups):
        raise SpecError("group", group, f"a group index in 0..{len(spec.groups) - 1}")
    return render(layout(spec, group), path)


def render(scene: Scene, path: str | Path | None = None) -> Any:
    """Draw ``scene`` on a figure of exactly its extent (1 unit = 0.75 inch); save to ``path`` if given."""
    import matplotlib

    if path is not None:
        if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise SpecError("path", str(path), "a file name ending in .png, .svg or .pdf")
        matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    x0, y0, x1, y1 = scene.extent()
    x0, y0, x1, y1 = x0 - 0.2, y0 - 0.2, x1 + 0.2, y1 + 0.2
    fig = Figure(figsize=((x1 - x0) * SCALE, (y1 - y0) * SCALE))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axis("off")
    for b in scene.boxes:
        patch = FancyBboxPatch((b["x0"], b["y0"]), b["x1"] - b["x0"], b["y1"] - b["y0"], zorder=2, **_box_style(b))
        patch.set_gid(b["gid"])
        ax.add_patch(patch)
    for xa, ya, xb, yb, color in scene.lines:
        ax.plot([xa, xb], [ya, yb], color=color, lw=1.5, zorder=1)
    for xa, ya, xb, yb in scene.arrows:
        ax.add_patch(FancyArrowPatch((xa, ya), (xb, yb), arrowstyle="->", mutation_scale=12, shrinkA=0, shrinkB=0,
                                     gid="arrow"))
    for t in scene.texts:
        style = {k: v for k, v in t.items() if k not in ("x", "y", "s", "size", "ha", "va", "gid")}
        text = ax.text(t["x"], t["y"], t["s"], fontsize=t["size"], ha=t["ha"], va=t["va"], family=FONT,
                       multialignment="center", zorder=3, **style)
        text.set_gid(t.get("gid", "text"))
    if path is not None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
        except OSError as exc:
            raise SpecError("path", str(path), f"a writable file ({exc.strerror or exc})") from None
    return fig


def _box_style(box: dict[str, Any]) -> dict[str, Any]:
    kind = box["kind"]
    if kind == "panel":
        return dict(boxstyle="round,pad=0", fill=False, ls="--", ec="gray")
    if kind == "stage":
        return dict(boxstyle="round,pad=0", fc="#f1f1f1", ec="gray")
    if kind in ("core", "hub"):
        return dict(boxstyle="circle,pad=0", fc=COLORS[kind], ec="black")
    if kind == "cell":
        return dict(boxstyle="square,pad=0", fc=box["fc"], ec="white", lw=0.5)
    return dict(boxstyle="round,pad=0", fc=COLORS.get(kind, "white"), ec="black")
