"""The tensor-network IR: one ``GroupNetwork`` per group, knowing shapes only (docs/design.md §4).

A group's K Kronecker factors are contracted in ONE einsum whose output indices are ordered
mode-major (for each mode m, the factors' indices i_1m..i_Km): reshaped in C order to
(N_1..N_M), N_m = prod_k n_km, that is exactly kron(T_1, ..., T_K) with the first factor the
coarse one. Surplus rows of a mode (when N_m > n_m) and surplus entries past n' are dropped.

>>> from superlora_tn.structures import FactorSpec
>>> net = GroupNetwork(0, (), 12, 12, (3, 4), (FactorSpec("lora", (3, 4), (2, 2)),), None)
>>> net.equation
'ac,bc->ab'
>>> net.num_params
14

With ``compose="hadamard"`` the factors share the output indices instead (a hyperedge network,
LoHa's ``(A1 B1) * (A2 B2)``): every factor has the fold's shape and the einsum multiplies them
entry-wise.

>>> lora = FactorSpec("lora", (3, 4), (2, 2))
>>> GroupNetwork(0, (), 12, 12, (3, 4), (lora, lora), None, compose="hadamard").equation
'ac,bc,ad,bd->ab'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import opt_einsum

from .layout import Segment
from .structures import FactorSpec

__all__ = ["COMPOSITIONS", "GroupNetwork", "TensorNode", "path_cost"]

#: How a group's factors combine: Kronecker product (each factor owns its output indices) or
#: Hadamard product (all factors share the output indices: a network with hyperedges).
COMPOSITIONS = ("kron", "hadamard")


@dataclass(frozen=True)
class TensorNode:
    """One parameter tensor of a network: its global name, shape and einsum subscripts."""

    name: str
    shape: tuple[int, ...]
    subscripts: str
    factor: int = 0  # the Kronecker factor k it belongs to
    local: str = ""  # its name inside the factor ("core", "A0", "dense", ...)


@dataclass(frozen=True)
class GroupNetwork:
    """Group g of a spec: which entries it covers and the network that generates them.

    ``size`` is n (entries of dW in the group), ``generated`` is n' (entries the network
    produces before the projection), ``fold`` the M-mode shape the n' entries are folded into.
    """

    index: int
    segments: tuple[Segment, ...]
    size: int
    generated: int
    fold: tuple[int, ...]
    factors: tuple[FactorSpec, ...]
    projection: Any  # a Projection or None
    prefix: str = field(default="")
    compose: str = "kron"  # one of COMPOSITIONS

    def __post_init__(self) -> None:
        if not self.prefix:
            object.__setattr__(self, "prefix", f"g{self.index}_")

    @cached_property
    def _einsum(self) -> tuple[tuple[TensorNode, ...], str]:
        counter = iter(range(10**6))

        def new_symbol() -> str:
            return opt_einsum.get_symbol(next(counter))

        K, M = len(self.factors), len(self.fold)
        if self.compose == "hadamard":  # one set of output indices, shared by every factor
            shared = [new_symbol() for _ in range(M)]
            out = [shared] * K
        else:
            out = [[new_symbol() for _ in range(M)] for _ in range(K)]
        nodes = []
        for k, factor in enumerate(self.factors):
            shapes = factor.param_shapes()
            for local, subs in factor.terms(tuple(out[k]), new_symbol).items():
                nodes.append(TensorNode(self.param_name(k, local), shapes[local], subs, k, local))
        if self.compose == "hadamard":
            return tuple(nodes), "".join(out[0])
        output = "".join(out[k][m] for m in range(M) for k in range(K))
        return tuple(nodes), output

    @property
    def tensors(self) -> tuple[TensorNode, ...]:
        """The parameter tensors, in the order the einsum takes them."""
        return self._einsum[0]

    @property
    def output(self) -> str:
        return self._einsum[1]

    @property
    def equation(self) -> str:
        """The einsum equation generating the group's Kronecker product (before any cut)."""
        return ",".join(t.subscripts for t in self.tensors) + "->" + self.output

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(t.shape for t in self.tensors)

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.tensors}

    @property
    def einsum_shape(self) -> tuple[int, ...]:
        """Shape of the einsum's output: (n_11..n_K1, ..., n_1M..n_KM); hadamard: (n_1..n_M)."""
        if self.compose == "hadamard":
            return self.factors[0].shape
        return tuple(f.shape[m] for m in range(len(self.fold)) for f in self.factors)

    @property
    def kron_shape(self) -> tuple[int, ...]:
        """(N_1..N_M): the Kronecker (or Hadamard) product's mode sizes, each >= the fold's."""
        if self.compose == "hadamard":
            return self.factors[0].shape
        return tuple(math.prod(f.shape[m] for f in self.factors) for m in range(len(self.fold)))

    @property
    def num_params(self) -> int:
        return sum(f.num_params for f in self.factors)

    def param_name(self, k: int, local: str) -> str:
        """The global name of factor ``k``'s parameter ``local``: the one place names are spelled.

        >>> from superlora_tn.structures import FactorSpec
        >>> GroupNetwork(2, (), 12, 12, (3, 4), (FactorSpec("lora", (3, 4), (2, 2)),), None).param_name(0, "A1")
        'g2_k0_A1'
        """
        return f"{self.prefix}k{k}_{local}"

    def factor_params(self, k: int) -> tuple[TensorNode, ...]:
        """The parameter tensors of Kronecker factor ``k``."""
        return tuple(t for t in self.tensors if t.factor == k)

    @property
    def zero_block(self) -> str:
        """Name of the parameter zeroed by default (in the last Kronecker factor)."""
        return self.param_name(len(self.factors) - 1, self.factors[-1].zero_block)

    @property
    def structure_key(self) -> tuple:
        """Groups with equal keys are contracted together as one batched contraction."""
        return (self.equation, self.shapes, self.fold, self.generated, self.size, self.projection)

    @property
    def cost(self) -> dict[str, int]:
        """FLOPs and largest intermediate (entries) of the planned contraction, symbolically."""
        return path_cost(self.equation, self.shapes)

    def describe(self) -> str:
        """A one-line description: fold, splits, structures, equation, parameters."""
        structs = "x".join(f.structure for f in self.factors)
        splits = (" (.) " if self.compose == "hadamard" else " (x) ").join(str(f.shape) for f in self.factors)
        return (
            f"group {self.index}: {self.size} entries, fold {self.fold}, factors {splits} "
            f"[{structs}], {self.equation}, {self.num_params} params"
        )

    def __repr__(self) -> str:
        return f"GroupNetwork({self.describe()})"


@lru_cache(maxsize=1024)
def path_cost(equation: str, shapes: tuple[tuple[int, ...], ...]) -> dict[str, int]:
    """opt_einsum's planned cost of an equation over shapes, without allocating operands."""
    if len(shapes) == 1:
        size = math.prod(shapes[0])
        return {"flops": size, "largest_intermediate": size}
    _, info = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="auto-hq")
    return {"flops": int(info.opt_cost), "largest_intermediate": int(info.largest_intermediate)}
