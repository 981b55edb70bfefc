"""Draw one group's tensor network: Kronecker factors (cores, factor matrices, bonds, open
indices), then the stages that turn their Kronecker product into the group's entries (cut,
projection, shuffle, targets). Matplotlib with the Agg backend; PNG or SVG by file suffix.

The drawing is generic over the IR: an index shared by two tensors is a bond, an index shared
by more (CP's rank) meets at a black super-diagonal dot, an output index is an open leg. With
``compose="hadamard"`` (LoHa) the factors share the output indices: each shared index is a
hyperedge, drawn as a black dot below the factors joining their legs, with one open leg.

>>> import superlora_tn as slt, tempfile, os
>>> spec = slt.SuperLoRA({"q": (64, 64)}, splits=2, rank=4)
>>> path = os.path.join(tempfile.mkdtemp(), "lokr.png")
>>> fig = draw(spec, 0, path)
>>> os.path.getsize(path) > 1000
True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError

if TYPE_CHECKING:
    from .network import GroupNetwork
    from .spec import SuperLoRA

__all__ = ["draw", "factor_layout"]

SPACING = 4.6  # horizontal distance between Kronecker factors
RADIUS = 1.0  # distance of factor matrices from the core
LEG = 0.6  # length of an open leg
STAGE = 2.9  # width of one stage box (with its arrow)
COLORS = {"core": "#f4a261", "A": "#8ecae6", "dense": "#b7e4c7", "hub": "black"}


def factor_layout(net: GroupNetwork, k: int) -> dict[str, Any]:
    """Nodes, bonds and open legs of Kronecker factor ``k``, positioned around (0, 0).

    Returns ``{"nodes": {name: (x, y, kind, label)}, "bonds": [(a, b, text)], "legs": [(node, angle, text)]}``.
    """
    tensors = [t for t in net.tensors if t.name.startswith(f"{net.prefix}k{k}_")]
    sizes = {s: n for t in net.tensors for s, n in zip(t.subscripts, t.shape)}
    out = set(net.output)
    users: dict[str, list[str]] = {}
    for t in tensors:
        for s in t.subscripts:
            users.setdefault(s, []).append(t.name)
    local = {t.name: t.name[len(f"{net.prefix}k{k}_"):] for t in tensors}
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
    if centre is None and not hubs and len(others) == 2:  # lora: A0 -- A1
        angles = [math.pi, 0.0]
    else:
        start = math.pi / 2 if others else math.pi
        angles = [start + 2 * math.pi * i / max(1, slots) for i in range(slots)]
    for t, a in zip(others, angles):
        r = RADIUS * (0.6 if centre is None and not hubs else 1.0)
        nodes[t.name] = (r * math.cos(a), r * math.sin(a), "A", local[t.name])
    bonds, legs = [], []
    for s, us in users.items():
        if s in out:
            for u in us:
                x, y, _, _ = nodes[u]
                angle = math.atan2(y, x) if (x, y) != (0.0, 0.0) else None
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


def _stages(spec: SuperLoRA, net: GroupNetwork) -> list[str]:
    product = "(.) Hadamard" if net.compose == "hadamard" else "(x) Kronecker"
    stages = [f"{product}\n{' x '.join(map(str, net.kron_shape))}"]
    if net.kron_shape != net.fold or math.prod(net.fold) != net.generated:
        stages.append(f"cut to fold\n{' x '.join(map(str, net.fold))}\nkeep n'={net.generated}")
    if net.projection is not None:
        stages.append(f"F: {type(net.projection).__name__} rho={net.projection.ratio:g}\n{net.generated}\n-> {net.size}")
    if spec.config["shuffle"] is not None:
        stages.append(f"shuffle\nseed {spec.config['shuffle']}")
    names = [s.target for s in net.segments]
    shown = ", ".join(names[:2]) + (f", ... ({len(names)})" if len(names) > 2 else "")
    stages.append(f"dW: {net.size} entries\n{shown}")
    return stages


def draw(spec: SuperLoRA, group: int = 0, path: str | Path | None = None) -> Any:
    """Render group ``group`` of ``spec``; save to ``path`` (.png, .svg, .pdf) if given; return the Figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < len(spec.groups):
        raise SpecError("group", group, f"a group index in 0..{len(spec.groups) - 1}")
    net = spec.groups[group]
    K = len(net.factors)
    stages = _stages(spec, net)
    mid = SPACING * (K - 1) / 2
    width = max(SPACING * K, STAGE * len(stages))
    fig = Figure(figsize=(width * 0.75, 6.0))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(mid - width / 2, mid + width / 2)
    ax.set_ylim(-4.8, 3.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(mid, 2.7, f"group {group}: {net.equation}   ({net.num_params} params)",
            ha="center", va="center", fontsize=11, family="monospace")
    leg_ends: dict[str, list[tuple[float, float]]] = {}
    for k, factor in enumerate(net.factors):
        ox = SPACING * k
        lay = factor_layout(net, k)
        ax.add_patch(FancyBboxPatch((ox - 1.9, -2.0), 3.8, 4.0, boxstyle="round,pad=0.02", fill=False, ls="--", ec="gray"))
        shape = "x".join(map(str, factor.shape))
        ranks = f" r={'x'.join(map(str, factor.ranks))}" if factor.ranks else ""
        ax.text(ox, 2.2, f"T{k}: {factor.structure} {shape}{ranks}", ha="center", fontsize=9)
        pos = {n: (ox + x, y) for n, (x, y, _, _) in lay["nodes"].items()}
        for a, b, text in lay["bonds"]:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.plot([x0, x1], [y0, y1], color="black", lw=1.5, zorder=1)
            if text:  # beside the bond's middle, off the line
                length = math.hypot(x1 - x0, y1 - y0) or 1.0
                nx, ny = (y0 - y1) / length, (x1 - x0) / length
                ax.text((x0 + x1) / 2 + 0.3 * nx, (y0 + y1) / 2 + 0.3 * ny, text, fontsize=8, color="firebrick",
                        ha="center", va="center")
        for node, angle, text in lay["legs"]:
            x0, y0 = pos[node]
            x1, y1 = x0 + LEG * math.cos(angle), y0 + LEG * math.sin(angle)
            ax.plot([x0, x1], [y0, y1], color="royalblue", lw=1.5, zorder=1)
            ax.text(x1 + 0.2 * math.cos(angle), y1 + 0.2 * math.sin(angle), text, fontsize=8, color="royalblue",
                    ha="center", va="center")
            leg_ends.setdefault(text.split("=")[0], []).append((x1, y1))
        for x, y, kind, label in lay["nodes"].values():
            size = 0.12 if kind == "hub" else 0.28
            patch = FancyBboxPatch((ox + x - size, y - size), 2 * size, 2 * size, zorder=2, fc=COLORS.get(kind, "white"), ec="black",
                                   boxstyle="circle,pad=0" if kind in ("core", "hub") else "round,pad=0.02")
            ax.add_patch(patch)
            if label:
                ax.text(ox + x, y, label, ha="center", va="center", fontsize=8, zorder=3)
        if k < K - 1:
            ax.text(ox + SPACING / 2, 0, "(.)" if net.compose == "hadamard" else "(x)", ha="center", va="center",
                    fontsize=14, weight="bold")
    if net.compose == "hadamard" and K > 1:  # hyperedges: each output index joins the legs of every factor
        M = len(net.output)
        gap = min(2.8, (width - 2.5) / M)
        for j, sym in enumerate(net.output):
            hx, hy = mid + (j - (M - 1) / 2) * gap, -2.45
            for x1, y1 in leg_ends.get(sym, []):
                ax.plot([x1, hx], [y1, hy], color="royalblue", lw=1.0, ls="--", zorder=1)
            ax.add_patch(FancyBboxPatch((hx - 0.12, hy - 0.12), 0.24, 0.24, boxstyle="circle,pad=0", fc="black", zorder=2))
            ax.text(hx + 0.22, hy - 0.12, f"{sym}={net.fold[j]} (hyperedge)", fontsize=8, color="royalblue", ha="left", va="top")
    step = width / len(stages)
    for i, text in enumerate(stages):
        cx = mid - width / 2 + step * (i + 0.5)
        ax.add_patch(FancyBboxPatch((cx - step * 0.4, -4.4), step * 0.8, 1.3, boxstyle="round,pad=0.05", fc="#f1f1f1", ec="gray"))
        ax.text(cx, -3.75, text, ha="center", va="center", fontsize=8)
        if i < len(stages) - 1:
            ax.annotate("", xy=(cx + step * 0.58, -3.75), xytext=(cx + step * 0.42, -3.75), arrowprops={"arrowstyle": "->"})
    ax.annotate("", xy=(mid, -3.0), xytext=(mid, -2.1), arrowprops={"arrowstyle": "->"})
    if path is not None:
        path = Path(path)
        if path.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise SpecError("path", str(path), "a file name ending in .png, .svg or .pdf")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
        except OSError as exc:
            raise SpecError("path", str(path), f"a writable file ({exc.strerror or exc})") from None
    return fig
