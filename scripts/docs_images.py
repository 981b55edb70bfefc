"""Regenerate the documentation's pictures: the tensor-network diagrams, the grouping picture
and the experiment plots (redrawn from the saved ``docs/experiments/<task>_runs.csv``; nothing is
trained). Run from the repository root: ``.venv/bin/python scripts/docs_images.py``.
"""

from __future__ import annotations

from pathlib import Path

import superlora_tn as slt
from superlora_tn.draw_groups import draw_grouping
from superlora_tn.presets import group_by_kind, preset_targets

DOCS = Path(__file__).resolve().parents[1] / "docs"


def diagrams() -> dict[str, slt.SuperLoRA]:
    """The specs drawn in docs/concepts.md (ViT-B/16 query and value, as in the demo)."""
    t = preset_targets("vit-b16")
    return {
        "lora": slt.SuperLoRA(t, rank=8),
        "lokr": slt.SuperLoRA(t, splits=2, structure=["dense", "lora"], rank=8),
        "lonkr": slt.SuperLoRA(t, splits=3, structure="lora", rank=4),
        "lotr": slt.SuperLoRA(t, groups=group_by_kind(t), fold="stack", rank=8, identity_modes=(0,)),
        "cp": slt.SuperLoRA(t, groups=4, fold="balanced", order=3, structure="cp", rank=8),
        "tt": slt.variants.tt(t, 8, order=4),
        "tucker_fastfood": slt.SuperLoRA(t, groups=4, fold="balanced", order=3, rank=8,
                                         projection=slt.Fastfood(0.5), shuffle=0),
    }


def grouping() -> dict[str, slt.SuperLoRA]:
    """A two-layer model (query and value of 64x48), one spec per grouping picture."""
    t = {f"layer{i}.{w}": (64, 48) for i in range(2) for w in ("query", "value")}
    return {
        "grouping_lora": slt.SuperLoRA(t, rank=4),
        "grouping_folded": slt.SuperLoRA(t, groups=3, fold="balanced", order=3, rank=4, projection=slt.Fastfood(0.5)),
        "grouping_shuffled": slt.SuperLoRA(t, groups=3, fold="balanced", order=3, rank=4,
                                           projection=slt.Fastfood(0.5), shuffle=0),
    }


def plots() -> None:
    from superlora_tn.experiments import PLOT_TITLES
    from superlora_tn.experiments.report import replot

    metrics = {"digits": ["accuracy"], "diffusion": ["target_share", "fd"], "minilm": ["accuracy"]}
    for task, names in metrics.items():
        folder = DOCS / "experiments"
        replot(folder / f"{task}_runs.csv", names, folder / f"{task}_plot.png", PLOT_TITLES[task])


def main() -> None:
    for name, spec in diagrams().items():
        spec.draw(0, DOCS / "img" / f"{name}.svg")
    for name, spec in grouping().items():
        draw_grouping(spec, DOCS / "img" / f"{name}.svg")
    plots()


if __name__ == "__main__":
    main()
