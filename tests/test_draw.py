"""Tensor-network diagrams: files are written, and the drawn graph matches the network."""

from __future__ import annotations

import pytest

import superlora_tn as slt
from superlora_tn.draw import factor_layout

SPECS = {
    "lora": dict(rank=4),
    "lokr": dict(splits=2, structure=["dense", "lora"], rank=2),
    "cp3": dict(groups=1, fold="balanced", order=3, structure="cp", splits=3, rank=2),
    "tucker_ff": dict(groups=2, fold="balanced", order=3, rank=3, projection=slt.Fastfood(0.5), shuffle=0),
    "lotr": dict(groups=[["a", "b"]], fold="stack", rank=3, identity_modes=(0,)),
}
TARGETS = {"a": (24, 16), "b": (24, 16)}


@pytest.mark.parametrize("name", list(SPECS))
def test_layout_matches_network(name):
    spec = slt.SuperLoRA(TARGETS, **SPECS[name])
    net = spec.groups[0]
    legs, tensors = 0, 0
    for k in range(len(net.factors)):
        lay = factor_layout(net, k)
        legs += len(lay["legs"])
        tensors += sum(1 for n in lay["nodes"] if not n.startswith("hub:"))
        assert all(a in lay["nodes"] and b in lay["nodes"] for a, b, _ in lay["bonds"])
    assert legs == len(net.output)  # one open leg per output index
    assert tensors == len(net.tensors)


def test_png_and_svg_written(tmp_path):
    spec = slt.SuperLoRA(TARGETS, **SPECS["tucker_ff"])
    png, svg = tmp_path / "g.png", tmp_path / "sub" / "g.svg"
    spec.draw(1, png)
    spec.draw(0, svg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()[:2000]


def test_cli_draw(tmp_path, capsys):
    from superlora_tn.cli import main

    out = tmp_path / "lotr.png"
    assert main(["draw", "--preset", "vit-b16", "--groups", "kind", "--fold", "stack", "--identity-modes", "0", "-o", str(out)]) == 0
    assert out.stat().st_size > 5000 and "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(("group", "path"), [(5, None), (-1, None), (0, "x.txt")])
def test_bad_arguments(group, path, tmp_path):
    spec = slt.SuperLoRA(TARGETS, rank=2)
    with pytest.raises(slt.SpecError):
        spec.draw(group, None if path is None else tmp_path / path)
