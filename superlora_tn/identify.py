"""Structural recognition: which named variants a spec reduces to (shapes and settings only).

>>> import superlora_tn as slt
>>> identify(slt.SuperLoRA({"w": (6, 5)}, rank=2))
'lora'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .network import GroupNetwork
    from .spec import SuperLoRA
    from .structures import FactorSpec

__all__ = ["NAMES", "identify", "reduces_to"]

NAMES = ("dense", "lora", "lokr", "lonkr", "lotr", "lorta", "cp", "loha")


def _whole(spec: SuperLoRA, g: GroupNetwork) -> bool:
    return all(s.start == 0 and s.stop == spec._by_name[s.target].size for s in g.segments)


def _weightwise(spec: SuperLoRA) -> bool:
    """One whole target per group, groups in target order, each folded as its (out, in) matrix."""
    if len(spec.groups) != len(spec.targets):
        return False
    for g, t in zip(spec.groups, spec.targets):
        if len(g.segments) != 1 or g.segments[0].target != t.name or not _whole(spec, g):
            return False
        if len(g.fold) == 2 and g.fold != t.matrix_shape:
            return False
    return True


def _stacked(spec: SuperLoRA) -> bool:
    """Every group is L whole targets of one shape folded as (L, out, in)."""
    for g in spec.groups:
        shapes = {spec._by_name[s.target].matrix_shape for s in g.segments}
        if not _whole(spec, g) or len(shapes) != 1 or g.fold != (len(g.segments), *shapes.pop()):
            return False
    return True


def _uncut(g: GroupNetwork) -> bool:
    return g.kron_shape == g.fold and math.prod(g.fold) == g.generated == g.size


def _shape_folded(spec: SuperLoRA) -> bool:
    """Weight-wise, each group folded as its weight's own shape (out, in, k...), M > 2, uncut."""
    return _weightwise(spec) and all(
        len(g.fold) > 2 and g.fold == spec._by_name[g.segments[0].target].shape and _uncut(g) for g in spec.groups)


def _kernel_modes_identity(f: FactorSpec) -> bool:
    """A tucker factor whose kernel modes (2, 3, ...) use the identity (LyCORIS's Tucker cores)."""
    return f.structure == "tucker" and set(range(2, len(f.shape))) <= set(f.identity_modes) and not {0, 1} & set(f.identity_modes)


def _loha(spec: SuperLoRA) -> bool:
    """LoHa: two rank-r factors of each weight multiplied entry-wise (LyCORIS ``hada_*``), or its Tucker conv form."""
    if spec.config["compose"] != "hadamard" or any(len(g.factors) != 2 for g in spec.groups):
        return False
    fs = spec.groups[0].factors
    if len(spec.groups[0].fold) == 2:
        return _weightwise(spec) and all(_uncut(g) for g in spec.groups) and all(f.structure == "lora" for f in fs)
    return _shape_folded(spec) and all(_kernel_modes_identity(f) for f in fs)


def _tucker_conv_lokr(spec: SuperLoRA) -> bool:
    """LoKr of conv kernels folded as (out, in, kh, kw): w1 (a, c) without kernel modes, w2 (b, d, kh, kw),
    w2 dense or a Tucker core with identity kernel modes (LyCORIS ``lokr_t2``, ``use_tucker``)."""
    if any(len(g.factors) != 2 for g in spec.groups) or not _shape_folded(spec):
        return False
    for g in spec.groups:
        f1, f2 = g.factors
        if any(n != 1 for n in f1.shape[2:]) or f1.structure not in ("dense", "tucker"):
            return False
        if f2.structure not in ("dense", "tucker") or (f2.structure == "tucker" and not _kernel_modes_identity(f2)):
            return False
    return True


def reduces_to(spec: SuperLoRA) -> list[str]:
    """Every named variant the spec reduces to exactly, the primary one (``identify``) first."""
    c = spec.config
    if c["projection"] is not None or c["shuffle"] is not None:
        return []
    g0 = spec.groups[0]
    K, M = len(g0.factors), len(g0.fold)
    f0 = g0.factors[0]
    if K > 1 and c["compose"] == "hadamard":
        return ["loha"] if _loha(spec) else []
    if K == 1:
        if f0.structure == "dense" or M == 1 or (f0.structure == "tucker" and len(f0.identity_modes) == M):
            return ["dense"]
        names = []
        if M == 2 and _weightwise(spec):
            names.append("lora")
        if M > 2 and _shape_folded(spec) and all(_kernel_modes_identity(g.factors[0]) for g in spec.groups):
            names.append("lora")  # Tucker LoCon (LyCORIS lora_mid): rank r in the (out, in*k) matrix view
        if M == 3 and _stacked(spec) and not ({1, 2} & set(f0.identity_modes)):
            names.append("lotr")
        if f0.structure == "cp":
            names.insert(0 if M > 2 else len(names), "cp")
        if f0.structure == "tucker" and M > 2:
            names.append("lorta")
        return names
    if M != 2:
        return ["lokr"] if K == 2 and _tucker_conv_lokr(spec) else []
    if K == 2 and _weightwise(spec) and all(_uncut(g) for g in spec.groups):
        return ["lokr", "lonkr"]
    return ["lonkr"]


def identify(spec: SuperLoRA) -> str:
    """The lowercase name of the variant the spec reduces to, else ``"superlora"``.

    Recognition is structural (grouping, fold, K, M, structures, projection, shuffle), so a spec
    built by hand is recognised like one from :mod:`superlora_tn.variants`.
    """
    names = reduces_to(spec)
    return names[0] if names else "superlora"
