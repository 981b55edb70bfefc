"""What every variant entry has (:class:`Variant`), and the layout facts the entries share.

A variant is one object: its builder (``build``), its recognition (``recognise``), its textbook
(native) parameters both ways (``to_native`` / ``from_native``), its independent reference
formula (``reference``) and its parameter count (``num_params``). The layout (groups, segments,
the fold's cut, per-target scales) is re-implemented here by slicing, from docs/semantics.md,
independent of the contraction path.

>>> from superlora_tn.registry import VARIANT_REGISTRY
>>> lora = VARIANT_REGISTRY["lora"]
>>> spec = lora.build({"w": (6, 5)}, 2)
>>> lora.recognise(spec), lora.num_params(spec) == spec.num_params == 22
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..backends import backend_for
from ..errors import SpecError
from ..targets import normalize_targets

if TYPE_CHECKING:
    from ..facade import SuperLoRA
    from ..network import GroupNetwork
    from ..structures import FactorSpec

__all__ = ["Targets", "Variant", "fold_to_vector", "group_natives", "group_vectors_to_targets", "place_folds",
           "place_group_tensors"]

#: What the builders take: name -> weight shape, or (name, shape) pairs.
Targets = Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]]


class Variant:
    """One named variant. Subclass it, fill in the methods, register an instance (``registry.register_variant``).

    Class attributes: ``name`` (lowercase, what ``identify`` answers), ``display`` (the paper's
    spelling), ``key`` (``"target"``: native parameters keyed by target name; ``"group"``: by group
    index), ``priority`` (when a spec reduces to several variants, lower is named first),
    ``native_form`` and ``formula`` (one row of the ``to_native`` table in docs/reductions.md),
    ``ranked`` (False when the builder takes no rank).
    """

    name: ClassVar[str] = ""
    ranked: ClassVar[bool] = True
    display: ClassVar[str] = ""
    key: ClassVar[str] = "group"
    priority: ClassVar[int] = 5
    native_form: ClassVar[str] = ""
    formula: ClassVar[str] = ""

    #: The builder users call as ``variants.<name>(targets, rank, ...)`` (``dense`` takes no rank).
    build: Callable[..., SuperLoRA]

    def recognise(self, spec: SuperLoRA) -> bool:
        """True when ``spec`` (no projection, no shuffle) reduces to this variant exactly."""
        raise NotImplementedError

    def num_params(self, spec: SuperLoRA) -> int:
        """The variant's own parameter-count formula (the builder's docstring), for specs of its builder."""
        raise NotImplementedError

    def to_native(self, spec: SuperLoRA, params: Mapping[str, Any]) -> dict[Any, tuple]:
        """{key: native tuple}; ``self.reference`` turns those into dW."""
        raise NotImplementedError

    def from_native(self, spec: SuperLoRA, native: Mapping[Any, Any]) -> dict[str, Any]:
        """Inverse of ``to_native`` for specs built the variant's canonical way (keys already checked)."""
        raise NotImplementedError

    def reference(self, spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any) -> dict[str, Any]:
        """dW per target as an (out, in) matrix, from the native tuples by the textbook formula (``backend``
        concatenates a target's pieces)."""
        raise NotImplementedError

    def keys(self, spec: SuperLoRA) -> list[Any]:
        """The keys of the native mapping."""
        return [t.name for t in spec.targets] if self.key == "target" else [g.index for g in spec.groups]

    def __repr__(self) -> str:
        return f"<variant {self.name}>"


# ---------------------------------------------------------------------- parameters
def param(params: Mapping[str, Any], g: GroupNetwork, k: int, local: str) -> Any:
    """Parameter ``local`` of factor ``k`` of group ``g``."""
    return params[g.param_name(k, local)]


def getter(params: Mapping[str, Any], g: GroupNetwork, k: int) -> Callable[[str], Any]:
    """local name -> parameter of factor ``k`` of group ``g`` (what a Structure's native form reads)."""
    return lambda local: params[g.param_name(k, local)]


def factor_native(params: Mapping[str, Any], g: GroupNetwork, k: int) -> Any:
    """Factor ``k`` in its textbook form: a tensor, or a (w_a, w_b) low-rank pair."""
    f = g.factors[k]
    return f.kind.native(f, getter(params, g, k))


def put_factor(out: dict[str, Any], g: GroupNetwork, k: int, x: Any, field: str) -> None:
    """Factor ``k``'s parameters from its textbook form ``x`` (SpecError where the form does not fix them)."""
    f = g.factors[k]
    for local, value in f.kind.from_native(f, x, field).items():
        out[g.param_name(k, local)] = value


def array_backend(params: Mapping[str, Any]) -> Any:
    """The backend of the first array."""
    return backend_for(next(iter(params.values())))


def extra(spec: SuperLoRA, name: str) -> float:
    """Target ``name``'s own ``scale=`` multiplier (1 when none)."""
    return float((spec.config.scale or {}).get(name, 1.0))


def check_scale(key: Any, given: Any, expected: float) -> None:
    """SpecError unless a native scale equals the spec's (None: not given)."""
    if given is not None and not math.isclose(float(given), expected, rel_tol=1e-12, abs_tol=0.0):
        raise SpecError(f"native[{key!r}].scale", given, f"{expected} (this spec's alpha / r); build the spec with that alpha")


def group_natives(spec: SuperLoRA, native: Mapping[Any, Any], fields: tuple[str, ...]) -> Iterator[tuple[GroupNetwork, tuple]]:
    """Per group, its native tuple ``(*fields, scale)`` without the scale, which is checked against the
    spec's (the group-keyed variants' ``from_native``); SpecError for a tuple of another length."""
    for g in spec.groups:
        item = tuple(native[g.index])
        if len(item) != len(fields) + 1:
            raise SpecError(f"native[{g.index}]", f"{len(item)} values", f"({', '.join(fields)}, scale)")
        check_scale(g.index, item[-1], spec.scale_factor)
        yield g, item[:-1]


# ---------------------------------------------------------------------- placement (docs/semantics.md)
def group_vectors_to_targets(spec: SuperLoRA, vectors: Mapping[int, Any], backend: Any) -> dict[str, Any]:
    """Place each group's n entries (C order) onto the targets' row-major entries, as (out, in) matrices."""
    pieces: dict[str, list[tuple[int, Any]]] = {t.name: [] for t in spec.targets}
    for g in spec.groups:
        local, vec = 0, vectors[g.index]
        for s in g.segments:
            pieces[s.target].append((s.start, vec[local:local + s.size]))
            local += s.size
    out = {}
    for t in spec.targets:
        parts = [p for _, p in sorted(pieces[t.name], key=lambda item: item[0])]
        flat = parts[0] if len(parts) == 1 else backend.concat(parts)
        out[t.name] = flat.reshape(t.matrix_shape)
    return out


def fold_to_vector(g: GroupNetwork, X: Any) -> Any:
    """A generated tensor (the Kronecker shape or the fold) cut to the fold, then to its first n entries."""
    X = X.reshape(*g.kron_shape)[tuple(slice(0, n) for n in g.fold)]
    return X.reshape(-1)[: g.size]


def place_folds(spec: SuperLoRA, folds: Mapping[int, Any], backend: Any) -> dict[str, Any]:
    """Each group's generated tensor cut, placed on its targets, times each target's own scale."""
    vectors = {g.index: fold_to_vector(g, folds[g.index]) for g in spec.groups}
    return {t: m * extra(spec, t) for t, m in group_vectors_to_targets(spec, vectors, backend).items()}


def place_group_tensors(spec: SuperLoRA, native: Mapping[Any, tuple], backend: Any, to_tensor: Callable[..., Any]) -> dict[str, Any]:
    """The reference of a group-keyed variant: ``to_tensor(*parts) * scale`` for each group's native
    ``(*parts, scale)``, placed on its targets (``place_folds``)."""
    folds = {g.index: to_tensor(*native[g.index][:-1]) * native[g.index][-1] for g in spec.groups}
    return place_folds(spec, folds, backend)


# ---------------------------------------------------------------------- structural predicates
def whole(spec: SuperLoRA, g: GroupNetwork) -> bool:
    """Every segment of ``g`` is a whole target."""
    return all(s.start == 0 and s.stop == spec._by_name[s.target].size for s in g.segments)


def weightwise(spec: SuperLoRA) -> bool:
    """One whole target per group, groups in target order, each folded as its (out, in) matrix."""
    if len(spec.groups) != len(spec.targets):
        return False
    for g, t in zip(spec.groups, spec.targets):
        if len(g.segments) != 1 or g.segments[0].target != t.name or not whole(spec, g):
            return False
        if len(g.fold) == 2 and g.fold != t.matrix_shape:
            return False
    return True


def stacked(spec: SuperLoRA) -> bool:
    """Every group is L whole targets of one shape folded as (L, out, in)."""
    for g in spec.groups:
        shapes = {spec._by_name[s.target].matrix_shape for s in g.segments}
        if not whole(spec, g) or len(shapes) != 1 or g.fold != (len(g.segments), *shapes.pop()):
            return False
    return True


def uncut(g: GroupNetwork) -> bool:
    """The Kronecker shape is the fold and holds exactly the group's entries."""
    return g.kron_shape == g.fold and math.prod(g.fold) == g.generated == g.size


def shape_folded(spec: SuperLoRA) -> bool:
    """Weight-wise, each group folded as its weight's own shape (out, in, k...), M > 2, uncut."""
    return weightwise(spec) and all(
        len(g.fold) > 2 and g.fold == spec._by_name[g.segments[0].target].shape and uncut(g) for g in spec.groups)


def kernel_modes_identity(f: FactorSpec) -> bool:
    """A tucker factor whose kernel modes (2, 3, ...) use the identity (LyCORIS's Tucker cores)."""
    return f.structure == "tucker" and set(range(2, len(f.shape))) <= set(f.identity_modes) and not {0, 1} & set(f.identity_modes)


def free(spec: SuperLoRA) -> bool:
    """One factor per group that is an unconstrained tensor (or a 1-mode fold): dense fine-tuning."""
    g0 = spec.groups[0]
    f0 = g0.factors[0]
    return len(g0.factors) == 1 and (len(g0.fold) == 1 or f0.kind.is_free(f0))


def single(spec: SuperLoRA) -> FactorSpec | None:
    """The first group's only factor when every group has one constrained factor, else None."""
    if len(spec.groups[0].factors) != 1 or free(spec):
        return None
    return spec.groups[0].factors[0]


def kron_pairs(spec: SuperLoRA) -> bool:
    """Several Kronecker (not Hadamard) factors per group."""
    return len(spec.groups[0].factors) > 1 and spec.config.compose == "kron"


def conv_orders(targets: Any) -> int:
    """The one order (>= 3) of conv kernels (out, in, k...), else SpecError (the ``conv_tucker`` builders)."""
    orders = {len(t.shape) for t in normalize_targets(targets)}
    if len(orders) != 1 or min(orders) < 3:
        raise SpecError("targets", sorted(orders), "conv kernels (out, in, k...) of one order (3 or more) for conv_tucker=True")
    return orders.pop()


def no_scale_given(item: tuple, n: int) -> tuple:
    """A native tuple of ``n`` items, the trailing scale optional (None when left out)."""
    return item if len(item) == n else (*item, None)


def matrix_factor_count(f: FactorSpec) -> int:
    """Parameters of a LoKr/LoHa factor: a c (dense), r (a + c) (lora), r^2 k.. + r (a + c) (Tucker conv core)."""
    if f.structure == "dense":
        return math.prod(f.shape)
    r = f.ranks[0]
    core = r * r * math.prod(f.shape[2:]) if f.structure == "tucker" else 0
    return core + r * (f.shape[0] + f.shape[1])
