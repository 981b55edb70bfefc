"""One Kronecker factor T_k of a group: its structure, its parameters and its einsum terms.

Each structure is one object in ``STRUCTURE_REGISTRY`` (name -> :class:`Structure`) holding
everything that depends on it: the rank rule, the parameter shapes, the einsum terms, the block
zeroed at init, the init scale, and its textbook (native) form through
:mod:`superlora_tn.reference`. Built-in structures (docs/semantics.md):

- ``tucker``: core C (r_1..r_M) and factor matrices A_m (n_m, r_m); a mode listed in
  ``identity_modes`` has rank n_m and uses the identity (no matrix, the core carries that mode).
- ``cp``: identity super-diagonal core, factor matrices A_m (n_m, r) sharing one rank index.
- ``lora`` (M = 2): T = A_0 A_1^T, no core.
- ``dense``: T is a free tensor.
- ``tt``: a tensor train of cores G_m (r_m, n_m, r_{m+1}), boundary ranks r_0 = r_M = 1 dropped,
  M - 1 bond ranks.

:func:`register_structure` adds a structure under a new name (it refuses to replace one), the
way ``opt_einsum.paths.register_path_fn`` adds a path function.

>>> f = FactorSpec("tucker", (4, 6), (2, 3))
>>> f.param_shapes()
{'core': (2, 3), 'A0': (4, 2), 'A1': (6, 3)}
>>> f.num_params
32
>>> structure_named("cp").zero_block(FactorSpec("cp", (4, 5, 6), (2, 2, 2)))
'A2'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import reference as ref
from .errors import SpecError
from .validate import is_integer, is_positive_int

__all__ = ["DEFAULT_STRUCTURES", "STRUCTURES", "STRUCTURE_REGISTRY", "FactorSpec", "Structure", "default_structure",
           "register_structure", "structure_named"]

#: Gets one parameter of the factor by its local name ("core", "A0", ...).
Getter = Callable[[str], Any]


@dataclass(frozen=True)
class FactorSpec:
    """Structure, shape (n_1..n_M) and ranks of one Kronecker factor (per mode; empty for dense)."""

    structure: str
    shape: tuple[int, ...]
    ranks: tuple[int, ...]
    identity_modes: tuple[int, ...] = ()

    @property
    def kind(self) -> Structure:
        """The registered :class:`Structure` of this factor."""
        return structure_named(self.structure)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Local parameter name -> shape, in a fixed order (the order init draws them in)."""
        return self.kind.param_shapes(self)

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    @property
    def zero_block(self) -> str:
        """The block zeroed by default when this is a group's last Kronecker factor.

        tucker: the core; cp: the last factor matrix; lora: A0 (LoRA's B); dense: the tensor.
        """
        return self.kind.zero_block(self)

    def terms(self, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        """Einsum subscripts of each parameter, given the factor's output indices ``out``."""
        return self.kind.terms(self, out, new_symbol)


class Structure:
    """How one Kronecker factor is parametrised. Subclass it and register an instance.

    ``ranked``: False when the factor has no rank (a dense factor ignores ``rank=``).
    """

    name: str = ""
    ranked: bool = True

    # ------------------------------------------------------------ construction (spec._factor)
    def check_order(self, M: int) -> None:
        """SpecError unless an M-mode factor of this structure exists."""

    def identity(self, shape: tuple[int, ...], identity_modes: tuple[Any, ...]) -> tuple[int, ...]:
        """The modes that use the identity (only Tucker factors have them; others ignore the argument)."""
        return ()

    def ranks(self, shape: tuple[int, ...], rank: Any, identity: tuple[int, ...], given: Any) -> tuple[int, ...]:
        """The factor's ranks from its ``rank`` argument (an int or a tuple), or SpecError naming ``given``."""
        M = len(shape)
        if is_positive_int(rank):
            return (int(rank),) * M
        if isinstance(rank, tuple) and len(rank) == M and all(is_positive_int(r) for r in rank):
            return tuple(int(r) for r in rank)
        raise SpecError("rank", given, f"a positive int, a tuple of {M} positive ints (one per mode), or a list of those per factor")

    # ------------------------------------------------------------ the network
    def param_shapes(self, f: FactorSpec) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def terms(self, f: FactorSpec, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        raise NotImplementedError

    def zero_block(self, f: FactorSpec) -> str:
        raise NotImplementedError

    def init_divisor(self, local: str, shape: tuple[int, ...]) -> float:
        """Parameter ``local`` is drawn N(0, 1) divided by this (1.0: unscaled)."""
        return 1.0

    def is_free(self, f: FactorSpec) -> bool:
        """True when the factor is an unconstrained tensor (a spec of such factors is dense fine-tuning)."""
        return False

    # ------------------------------------------------------------ textbook forms (native.py)
    def native(self, f: FactorSpec, get: Getter) -> Any:
        """The factor from the independent formulas of :mod:`reference`: a tensor, or a (w_a, w_b) pair."""
        raise NotImplementedError

    def as_lora(self, f: FactorSpec, get: Getter) -> tuple[Any, Any]:
        """A 2-mode (or matrix-viewed) factor as LoRA's (B (out, r), A (r, in)) with B @ A the factor."""
        x = self.native(f, get)
        if not isinstance(x, tuple):
            raise SpecError("structure", self.name, "a factor with a low-rank (B, A) form for LoRA")
        return x

    def from_lora(self, f: FactorSpec, B: Any, A: Any, field: str) -> dict[str, Any]:
        """Inverse of :meth:`as_lora`: the factor's parameters holding B @ A."""
        raise SpecError("structure", self.name, "lora (or cp) for from_lora")

    def from_native(self, f: FactorSpec, x: Any, field: str) -> dict[str, Any]:
        """Inverse of :meth:`native` where the native form determines the parameters."""
        raise SpecError("structure", self.name, "dense or lora factors (a tucker/cp factor has no textbook native form here)")


def shape_check(field: str, x: Any, shape: tuple[int, ...]) -> None:
    """SpecError unless array ``x`` has ``shape``."""
    if tuple(x.shape) != tuple(shape):
        raise SpecError(field, f"shape {tuple(x.shape)}", f"shape {shape}")


def _one_rank(name: str, ranks: tuple[int, ...], given: Any) -> tuple[int, ...]:
    if len(set(ranks)) != 1:
        raise SpecError("rank", given, f"a single rank for {name} (one rank index shared by all modes)")
    return ranks


class Tucker(Structure):
    """Core C (r_1..r_M) times factor matrices A_m (n_m, r_m); identity modes carry no matrix."""

    name = "tucker"

    def identity(self, shape: tuple[int, ...], identity_modes: tuple[Any, ...]) -> tuple[int, ...]:
        for m in identity_modes:
            if not is_integer(m) or not 0 <= m < len(shape):
                raise SpecError("identity_modes", identity_modes, f"mode indices in 0..{len(shape) - 1}")
        return tuple(identity_modes)

    def ranks(self, shape: tuple[int, ...], rank: Any, identity: tuple[int, ...], given: Any) -> tuple[int, ...]:
        ranks = list(super().ranks(shape, rank, identity, given))
        for m in identity:
            if isinstance(rank, tuple) and ranks[m] != shape[m]:
                raise SpecError("rank", given, f"rank {shape[m]} for identity mode {m} (its size)")
            ranks[m] = shape[m]
        return tuple(ranks)

    def param_shapes(self, f: FactorSpec) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"core": f.ranks}
        for m, (n, r) in enumerate(zip(f.shape, f.ranks)):
            if m not in f.identity_modes:
                shapes[f"A{m}"] = (n, r)
        return shapes

    def terms(self, f: FactorSpec, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        core, terms = [], {}
        for m, o in enumerate(out):
            if m in f.identity_modes:
                core.append(o)
            else:
                r = new_symbol()
                core.append(r)
                terms[f"A{m}"] = o + r
        return {"core": "".join(core), **terms}

    def zero_block(self, f: FactorSpec) -> str:
        return "core"

    def init_divisor(self, local: str, shape: tuple[int, ...]) -> float:
        return math.sqrt(shape[0]) if local.startswith("A") else 1.0

    def is_free(self, f: FactorSpec) -> bool:
        return len(f.identity_modes) == len(f.shape)

    def native(self, f: FactorSpec, get: Getter) -> Any:
        factors = [None if m in f.identity_modes else get(f"A{m}") for m in range(len(f.shape))]
        return ref.tucker_to_tensor(get("core"), factors)

    def as_lora(self, f: FactorSpec, get: Getter) -> tuple[Any, Any]:
        core = get("core")
        if len(f.shape) > 2:  # Tucker conv (LoCon lora_mid): A = core x_2 A1, its (r0, in, k...) view flattened
            return get("A0"), ref.mode_product(core, get("A1"), 1).reshape(core.shape[0], -1)
        A0 = None if 0 in f.identity_modes else get("A0")
        A1 = None if 1 in f.identity_modes else get("A1")
        if A1 is None:
            return A0, core
        return (core if A0 is None else A0 @ core), A1.T


class CP(Structure):
    """Factor matrices A_m (n_m, r) sharing one rank index (a super-diagonal identity core)."""

    name = "cp"

    def ranks(self, shape: tuple[int, ...], rank: Any, identity: tuple[int, ...], given: Any) -> tuple[int, ...]:
        return _one_rank(self.name, super().ranks(shape, rank, identity, given), given)

    def param_shapes(self, f: FactorSpec) -> dict[str, tuple[int, ...]]:
        return {f"A{m}": (n, f.ranks[0]) for m, n in enumerate(f.shape)}

    def terms(self, f: FactorSpec, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        r = new_symbol()
        return {f"A{m}": o + r for m, o in enumerate(out)}

    def zero_block(self, f: FactorSpec) -> str:
        return f"A{len(f.shape) - 1}"

    def init_divisor(self, local: str, shape: tuple[int, ...]) -> float:
        return math.sqrt(shape[0])

    def native(self, f: FactorSpec, get: Getter) -> Any:
        if len(f.shape) == 2:
            return (get("A0"), get("A1").T)
        return ref.cp_to_tensor([get(f"A{m}") for m in range(len(f.shape))])

    def from_lora(self, f: FactorSpec, B: Any, A: Any, field: str) -> dict[str, Any]:
        shape_check(f"{field}[1]", B, (f.shape[0], f.ranks[0]))
        shape_check(f"{field}[0]", A, (f.ranks[0], f.shape[1]))
        return {"A0": B, "A1": A.T}


class LoRA(CP):
    """T = A_0 A_1^T (M = 2): CP of a matrix, the LoRA pair."""

    name = "lora"

    def check_order(self, M: int) -> None:
        if M != 2:
            raise SpecError("structure", "lora", f"a 2-mode fold for lora (this fold has {M} modes); use tucker or cp")

    def zero_block(self, f: FactorSpec) -> str:
        return "A0"

    def native(self, f: FactorSpec, get: Getter) -> Any:
        return (get("A0"), get("A1").T)

    def from_native(self, f: FactorSpec, x: Any, field: str) -> dict[str, Any]:
        if not isinstance(x, tuple):
            raise SpecError(field, "a full matrix", f"a (w_a, w_b) low-rank pair of rank {f.ranks[0]} (this factor is lora)")
        wa, wb = x
        shape_check(field + "[0]", wa, (f.shape[0], f.ranks[0]))
        shape_check(field + "[1]", wb, (f.ranks[0], f.shape[1]))
        return {"A0": wa, "A1": wb.T}


class Dense(Structure):
    """T is a free tensor."""

    name = "dense"
    ranked = False

    def param_shapes(self, f: FactorSpec) -> dict[str, tuple[int, ...]]:
        return {"dense": f.shape}

    def terms(self, f: FactorSpec, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        return {"dense": "".join(out)}

    def zero_block(self, f: FactorSpec) -> str:
        return "dense"

    def init_divisor(self, local: str, shape: tuple[int, ...]) -> float:
        return math.sqrt(max(1, math.prod(shape[1:])))

    def is_free(self, f: FactorSpec) -> bool:
        return True

    def native(self, f: FactorSpec, get: Getter) -> Any:
        return get("dense")

    def from_native(self, f: FactorSpec, x: Any, field: str) -> dict[str, Any]:
        x = ref.lowrank(x)
        shape_check(field, x, f.shape)
        return {"dense": x}


class TT(Structure):
    """Tensor-train cores (TT-LoRA, LoRETTA): T[i_0..i_{M-1}] = G_0[i_0, :] G_1[:, i_1, :] ... G_{M-1}[:, i_{M-1}].

    G_m (r_m, n_m, r_{m+1}) with the boundary ranks r_0 = r_M = 1 dropped: G_0 (n_0, r_1), G_{M-1}
    (r_{M-1}, n_{M-1}). ``rank`` gives the M - 1 bond ranks: an int is every bond, a tuple lists
    them. Each core is drawn N(0, 1/(its first size)), so T's entries have variance 1/n_0 whatever
    the bond ranks; the last core is the zero block.
    """

    name = "tt"

    def ranks(self, shape: tuple[int, ...], rank: Any, identity: tuple[int, ...], given: Any) -> tuple[int, ...]:
        M = len(shape)
        if is_positive_int(rank):
            return (int(rank),) * (M - 1)
        if isinstance(rank, tuple) and len(rank) == M - 1 and all(is_positive_int(r) for r in rank):
            return tuple(int(r) for r in rank)
        raise SpecError("rank", given, f"a positive int (every bond) or a tuple of {M - 1} bond ranks for tt on {M} modes, "
                                       "or a list of those per factor")

    def param_shapes(self, f: FactorSpec) -> dict[str, tuple[int, ...]]:
        r, last, shapes = (1, *f.ranks, 1), len(f.shape) - 1, {}
        for m, n in enumerate(f.shape):
            left = (r[m],) if m > 0 else ()
            right = (r[m + 1],) if m < last else ()
            shapes[f"G{m}"] = (*left, n, *right)
        return shapes

    def terms(self, f: FactorSpec, out: tuple[str, ...], new_symbol: Callable[[], str]) -> dict[str, str]:
        bonds = ["", *(new_symbol() for _ in out[1:]), ""]
        return {f"G{m}": bonds[m] + o + bonds[m + 1] for m, o in enumerate(out)}

    def zero_block(self, f: FactorSpec) -> str:
        return f"G{len(f.shape) - 1}"

    def init_divisor(self, local: str, shape: tuple[int, ...]) -> float:
        return math.sqrt(shape[0])

    def cores(self, f: FactorSpec, get: Getter) -> list[Any]:
        """The cores as tensorly stores them: every core 3-way (r_m, n_m, r_{m+1}), r_0 = r_M = 1."""
        r = (1, *f.ranks, 1)
        return [get(f"G{m}").reshape(r[m], n, r[m + 1]) for m, n in enumerate(f.shape)]

    def from_cores(self, f: FactorSpec, cores: Any, field: str) -> dict[str, Any]:
        """Inverse of :meth:`cores`: the stored parameters (boundary ranks dropped)."""
        if len(cores) != len(f.shape):
            raise SpecError(field, f"{len(cores)} cores", f"{len(f.shape)} cores (one per mode)")
        r, shapes = (1, *f.ranks, 1), self.param_shapes(f)
        out = {}
        for m, (G, n) in enumerate(zip(cores, f.shape)):
            shape_check(f"{field}[{m}]", G, (r[m], n, r[m + 1]))
            out[f"G{m}"] = G.reshape(*shapes[f"G{m}"])
        return out

    def native(self, f: FactorSpec, get: Getter) -> Any:
        if len(f.shape) == 2:  # G_0 (n_0, r) G_1 (r, n_1): a LoRA pair
            return (get("G0"), get("G1"))
        return ref.tt_to_tensor(self.cores(f, get))

    def from_lora(self, f: FactorSpec, B: Any, A: Any, field: str) -> dict[str, Any]:
        if len(f.shape) != 2:
            raise SpecError("structure", self.name, "a 2-mode tt factor for from_lora (G_0 = B, G_1 = A)")
        shape_check(f"{field}[1]", B, (f.shape[0], f.ranks[0]))
        shape_check(f"{field}[0]", A, (f.ranks[0], f.shape[1]))
        return {"G0": B, "G1": A}


#: name -> Structure, the built-in structures. Extend with :func:`register_structure`.
STRUCTURE_REGISTRY: dict[str, Structure] = {s.name: s for s in (Tucker(), CP(), LoRA(), Dense(), TT())}

#: The built-in structure names.
STRUCTURES: tuple[str, ...] = tuple(STRUCTURE_REGISTRY)


#: what ``structure=None`` resolves to: ``default_structure(order)`` for 2 modes, then for more
DEFAULT_STRUCTURES: tuple[str, str] = ("lora", "tucker")


def default_structure(order: int) -> str:
    """The structure a factor of ``order`` modes gets when none is named: lora for 2, tucker above.

    >>> default_structure(2), default_structure(3)
    ('lora', 'tucker')
    """
    return DEFAULT_STRUCTURES[0] if order == 2 else DEFAULT_STRUCTURES[1]


def register_structure(structure: Structure) -> Structure:
    """Add ``structure`` under its ``name``; a name already registered is refused (SpecError).

    >>> try:
    ...     register_structure(LoRA())
    ... except SpecError as err:
    ...     print(err.field, err.value)
    structure lora
    """
    if not isinstance(structure, Structure) or not isinstance(structure.name, str) or not structure.name:
        raise SpecError("structure", structure, "a Structure instance with a non-empty name")
    if structure.name in STRUCTURE_REGISTRY:
        raise SpecError("structure", structure.name, f"a new name (registered: {tuple(STRUCTURE_REGISTRY)})")
    STRUCTURE_REGISTRY[structure.name] = structure
    return structure


def structure_named(name: Any) -> Structure:
    """The registered structure called ``name``, else SpecError listing them."""
    if not isinstance(name, str) or name not in STRUCTURE_REGISTRY:
        raise SpecError("structure", name, f"one of {tuple(STRUCTURE_REGISTRY)} or a list of them, one per factor")
    return STRUCTURE_REGISTRY[name]
