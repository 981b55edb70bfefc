"""One Kronecker factor T_k of a group: its structure, its parameters and its einsum terms.

Structures (docs/semantics.md):

- ``tucker``: core C (r_1..r_M) and factor matrices A_m (n_m, r_m); a mode listed in
  ``identity_modes`` has rank n_m and uses the identity (no matrix, the core carries that mode).
- ``cp``: identity super-diagonal core, factor matrices A_m (n_m, r) sharing one rank index.
- ``lora`` (M = 2): T = A_0 A_1^T, no core.
- ``dense``: T is a free tensor.

>>> f = FactorSpec("tucker", (4, 6), (2, 3))
>>> f.param_shapes()
{'core': (2, 3), 'A0': (4, 2), 'A1': (6, 3)}
>>> f.num_params
32
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["STRUCTURES", "FactorSpec"]

STRUCTURES = ("tucker", "cp", "lora", "dense")


@dataclass(frozen=True)
class FactorSpec:
    """Structure, shape (n_1..n_M) and per-mode ranks of one Kronecker factor."""

    structure: str
    shape: tuple[int, ...]
    ranks: tuple[int, ...]  # per mode; empty for dense
    identity_modes: tuple[int, ...] = ()

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Local parameter name -> shape, in a fixed order (the order init draws them in)."""
        if self.structure == "dense":
            return {"dense": self.shape}
        if self.structure == "lora":
            return {"A0": (self.shape[0], self.ranks[0]), "A1": (self.shape[1], self.ranks[0])}
        if self.structure == "cp":
            return {f"A{m}": (n, self.ranks[0]) for m, n in enumerate(self.shape)}
        shapes: dict[str, tuple[int, ...]] = {"core": self.ranks}
        for m, (n, r) in enumerate(zip(self.shape, self.ranks)):
            if m not in self.identity_modes:
                shapes[f"A{m}"] = (n, r)
        return shapes

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    @property
    def zero_block(self) -> str:
        """The block zeroed by default when this is a group's last Kronecker factor.

        tucker: the core; cp: the last factor matrix; lora: A0 (LoRA's B); dense: the tensor.
        """
        return {"tucker": "core", "cp": f"A{len(self.shape) - 1}", "lora": "A0", "dense": "dense"}[self.structure]

    def terms(self, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        """Einsum subscripts of each parameter, given the factor's output indices ``out``."""
        if self.structure == "dense":
            return {"dense": "".join(out)}
        if self.structure in ("lora", "cp"):
            r = new_symbol()
            return {f"A{m}": o + r for m, o in enumerate(out)}
        core, terms = [], {}
        for m, o in enumerate(out):
            if m in self.identity_modes:
                core.append(o)
            else:
                r = new_symbol()
                core.append(r)
                terms[f"A{m}"] = o + r
        return {"core": "".join(core), **terms}
