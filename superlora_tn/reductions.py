"""Which named variant a spec reduces to, its native parameters, and conversions between variants.

- :func:`identify` / :func:`reduces_to`: structural recognition (shapes and settings only).
- :func:`to_native` / :func:`from_native` (and ``to_lora``, ``from_lora``, ...): a spec's
  parameters as the variant's textbook parameters and back. ``reference.<formula>(*native[key])``
  equals ``spec.contract(params)`` (per target for dense/lora/lokr, per group for the rest).
- :func:`reference_deltas` / :func:`check_reduction`: dW from the independent formulas of
  :mod:`superlora_tn.reference`, compared with the contracted network.
- :func:`lokr_to_lora`, :func:`lotr_to_lora` (exact), :func:`svd_to_lora` (truncated SVD, error
  reported) and :func:`to_lora_spec` (the best of those for any spec).

The layout (groups, segments, the fold cut) is re-implemented here from DESIGN.md section 2 by
slicing; nothing here calls the contraction path except ``check_reduction``/conversions, which
contract the spec to compare.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (6, 5)}, rank=2)
>>> spec.identify(), reduces_to(spec)
('lora', ['lora'])
>>> slt.check_reduction(spec, "lora").max_error < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reference as ref
from .backends import backend_for, get_backend
from .errors import SpecError

if TYPE_CHECKING:
    from .network import GroupNetwork
    from .spec import SuperLoRA
    from .structures import FactorSpec

__all__ = [
    "Conversion",
    "ReductionReport",
    "check_reduction",
    "from_cp",
    "from_dense",
    "from_lokr",
    "from_lonkr",
    "from_lora",
    "from_lorta",
    "from_lotr",
    "from_native",
    "identify",
    "lokr_to_lora",
    "lotr_to_lora",
    "reduces_to",
    "reference_deltas",
    "svd_to_lora",
    "to_cp",
    "to_dense",
    "to_lokr",
    "to_lonkr",
    "to_lora",
    "to_lora_spec",
    "to_lorta",
    "to_lotr",
    "to_native",
]

NAMES = ("dense", "lora", "lokr", "lonkr", "lotr", "lorta", "cp")
TARGET_LEVEL = ("dense", "lora", "lokr")  # native parameters keyed by target; the others by group index


# ====================================================================== structural recognition
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


def reduces_to(spec: SuperLoRA) -> list[str]:
    """Every named variant the spec reduces to exactly, the primary one (``identify``) first."""
    c = spec.config
    if c["projection"] is not None or c["shuffle"] is not None:
        return []
    g0 = spec.groups[0]
    K, M = len(g0.factors), len(g0.fold)
    f0 = g0.factors[0]
    if K == 1:
        if f0.structure == "dense" or M == 1 or (f0.structure == "tucker" and len(f0.identity_modes) == M):
            return ["dense"]
        names = []
        if M == 2 and _weightwise(spec):
            names.append("lora")
        if M == 3 and _stacked(spec) and not ({1, 2} & set(f0.identity_modes)):
            names.append("lotr")
        if f0.structure == "cp":
            names.insert(0 if M > 2 else len(names), "cp")
        if f0.structure == "tucker" and M > 2:
            names.append("lorta")
        return names
    if M != 2:
        return []
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


# ====================================================================== native parameters
def _p(params: Mapping[str, Any], g: GroupNetwork, k: int, local: str) -> Any:
    return params[f"{g.prefix}k{k}_{local}"]


def _factor_native(f: FactorSpec, params: Mapping[str, Any], g: GroupNetwork, k: int) -> Any:
    """One Kronecker factor: a matrix (dense, cp, tucker) or a (w_a, w_b) low-rank pair (lora)."""
    if f.structure == "dense":
        return _p(params, g, k, "dense")
    if f.structure == "lora" or (f.structure == "cp" and len(f.shape) == 2):
        return (_p(params, g, k, "A0"), _p(params, g, k, "A1").T)
    factors = [_p(params, g, k, f"A{m}") if m not in f.identity_modes else None for m in range(len(f.shape))]
    if f.structure == "cp":
        return ref.cp_to_tensor(factors)
    return ref.tucker_to_tensor(_p(params, g, k, "core"), factors)


def _matrix(x: Any) -> Any:
    return x[0] @ x[1] if isinstance(x, tuple) else x


def _bk(params: Mapping[str, Any]) -> Any:
    return backend_for(next(iter(params.values())))


def _group_vectors_to_targets(spec: SuperLoRA, vectors: Mapping[int, Any], backend: Any) -> dict[str, Any]:
    """Place each group's n entries (C order) onto the targets' row-major entries (DESIGN section 2)."""
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


def _fold_to_vector(g: GroupNetwork, X: Any) -> Any:
    """A generated tensor (the Kronecker shape or the fold) cut to the fold, then to its first n entries."""
    X = X.reshape(*g.kron_shape)[tuple(slice(0, n) for n in g.fold)]
    return X.reshape(-1)[: g.size]


def _extra(spec: SuperLoRA, name: str) -> float:
    return float((spec.config["scale"] or {}).get(name, 1.0))


def _require(spec: SuperLoRA, name: str) -> None:
    if name not in NAMES:
        raise SpecError("variant", name, f"one of {NAMES}")
    names = reduces_to(spec)
    if name not in names:
        raise SpecError("variant", name, f"a variant this spec reduces to: {names or 'none (it is a general SuperLoRA)'}")


def to_native(spec: SuperLoRA, params: Mapping[str, Any], name: str | None = None) -> dict[Any, tuple]:
    """The spec's parameters as the variant's own; ``reference.<formula>(*native[key])`` gives dW.

    ==========  ========  =====================================================  ======================
    variant     key       native tuple                                           formula
    ==========  ========  =====================================================  ======================
    dense       target    (W (out, in), scale)                                   ``dense_delta``
    lora        target    (A (r, in), B (out, r), scale)  (PEFT layout)          ``lora_delta``
    lokr        target    (w1, w2, scale), each a matrix or a (w_a, w_b) pair    ``lokr_delta``
    lonkr       group     ([T_1 .. T_K] matrices or (w_a, w_b) pairs, scale)     ``lonkr_delta``
    lotr        group     (U (o, r1), cores (L, r1, r2), V (i, r2), scale)       ``lotr_deltas``
    lorta       group     (core, [A_m or None (identity)], scale)                ``tucker_to_tensor``
    cp          group     ([A_m (n_m, r)], scale)                                ``cp_to_tensor``
    ==========  ========  =====================================================  ======================

    ``scale`` is alpha / r (times the target's own scale for target-level variants; group-level
    variants leave a per-target ``scale=`` multiplier to the placement).
    """
    name = identify(spec) if name is None else name
    _require(spec, name)
    s = spec.scale_factor
    out: dict[Any, tuple] = {}
    if name == "dense":
        be = _bk(params)
        vectors = {}
        for g in spec.groups:
            f = g.factors[0]
            X = _factor_native(f, params, g, 0) if f.structure != "lora" else _matrix(_factor_native(f, params, g, 0))
            vectors[g.index] = X.reshape(-1)[: g.size]
        return {t: (W, spec.target_scale(t)) for t, W in _group_vectors_to_targets(spec, vectors, be).items()}
    for g in spec.groups:
        fs = g.factors
        if name == "lora":
            t = g.segments[0].target
            x = _factor_native(fs[0], params, g, 0)
            if isinstance(x, tuple):
                B, A = x
            else:  # tucker (r0, r1) core, maybe with one identity mode
                core = _p(params, g, 0, "core")
                A0 = None if 0 in fs[0].identity_modes else _p(params, g, 0, "A0")
                A1 = None if 1 in fs[0].identity_modes else _p(params, g, 0, "A1")
                if A1 is None:
                    B, A = A0, core
                else:
                    B, A = (core if A0 is None else A0 @ core), A1.T
            out[t] = (A, B, spec.target_scale(t))
        elif name == "lokr":
            t = g.segments[0].target
            out[t] = (_factor_native(fs[0], params, g, 0), _factor_native(fs[1], params, g, 1), spec.target_scale(t))
        elif name == "lonkr":
            out[g.index] = ([_factor_native(f, params, g, k) for k, f in enumerate(fs)], s)
        elif name == "lotr":
            f = fs[0]
            U, V = _p(params, g, 0, "A1"), _p(params, g, 0, "A2")
            if f.structure == "cp":
                A0 = _p(params, g, 0, "A0")
                eye = get_backend(_bk(params)).asarray(np.eye(f.ranks[0]), dtype=_bk(params).dtype_of(A0),
                                                       device=_bk(params).device_of(A0))
                cores = A0[:, :, None] * eye[None, :, :]
            else:
                core = _p(params, g, 0, "core")
                cores = core if 0 in f.identity_modes else ref.mode_product(core, _p(params, g, 0, "A0"), 0)
            out[g.index] = (U, cores, V, s)
        elif name == "lorta":
            f = fs[0]
            factors = [None if m in f.identity_modes else _p(params, g, 0, f"A{m}") for m in range(len(f.shape))]
            out[g.index] = (_p(params, g, 0, "core"), factors, s)
        elif name == "cp":
            out[g.index] = ([_p(params, g, 0, f"A{m}") for m in range(len(fs[0].shape))], s)
    return out


def reference_deltas(spec: SuperLoRA, params: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """dW per target (target shape) from the variant's independent reference formula."""
    name = identify(spec) if name is None else name
    native = to_native(spec, params, name)
    be = _bk(params)
    if name in TARGET_LEVEL:
        formula = {"dense": ref.dense_delta, "lora": ref.lora_delta, "lokr": _lokr_formula}[name]
        mats = {t: formula(*native[t]) for t in native}
    elif name == "lotr":
        mats = {}
        for g in spec.groups:
            for s, dW in zip(g.segments, ref.lotr_deltas(*native[g.index])):
                mats[s.target] = dW * _extra(spec, s.target)
    else:
        vectors = {}
        for g in spec.groups:
            if name == "lonkr":
                factors, scale = native[g.index]
                X = ref.lonkr_delta(factors, scale)
            elif name == "lorta":
                core, factors, scale = native[g.index]
                X = ref.tucker_to_tensor(core, factors) * scale
            else:
                factors, scale = native[g.index]
                X = ref.cp_to_tensor(factors) * scale
            vectors[g.index] = _fold_to_vector(g, X)
        mats = {t: m * _extra(spec, t) for t, m in _group_vectors_to_targets(spec, vectors, be).items()}
    return {t.name: mats[t.name].reshape(t.shape) for t in spec.targets}


def _lokr_formula(w1: Any, w2: Any, scale: float) -> Any:
    return ref.lokr_delta(w1, w2, scale)


# ---------------------------------------------------------------------- named wrappers
def to_dense(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[str, tuple]:
    """{target: (W, scale)}: ``reference.dense_delta(*native[t])`` is dW_t (as an (out, in) matrix)."""
    return to_native(spec, params, "dense")


def to_lora(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[str, tuple]:
    """{target: (A (r, in), B (out, r), scale)}: ``reference.lora_delta(*native[t])`` is dW_t."""
    return to_native(spec, params, "lora")


def to_lokr(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[str, tuple]:
    """{target: (w1, w2, scale)}, w a matrix or a (w_a, w_b) pair: ``reference.lokr_delta(*native[t])``."""
    return to_native(spec, params, "lokr")


def to_lonkr(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[int, tuple]:
    """{group: (factors, scale)}: ``reference.lonkr_delta(*native[g])`` is the group's Kronecker product."""
    return to_native(spec, params, "lonkr")


def to_lotr(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[int, tuple]:
    """{group: (U, cores, V, scale)}: ``reference.lotr_deltas(*native[g])`` lists the group's dW_l."""
    return to_native(spec, params, "lotr")


def to_lorta(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[int, tuple]:
    """{group: (core, factors, scale)}: ``scale * reference.tucker_to_tensor(core, factors)`` is the fold."""
    return to_native(spec, params, "lorta")


def to_cp(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[int, tuple]:
    """{group: (factors, scale)}: ``scale * reference.cp_to_tensor(factors)`` is the fold."""
    return to_native(spec, params, "cp")


# ====================================================================== native -> spec parameters
def _check_scale(spec: SuperLoRA, key: Any, given: Any, expected: float) -> None:
    if given is not None and not math.isclose(float(given), expected, rel_tol=1e-12, abs_tol=0.0):
        raise SpecError(f"native[{key!r}].scale", given, f"{expected} (this spec's alpha / r); build the spec with that alpha")


def _shape_check(field_name: str, x: Any, shape: tuple[int, ...]) -> None:
    if tuple(x.shape) != tuple(shape):
        raise SpecError(field_name, f"shape {tuple(x.shape)}", f"shape {shape}")


def _put_factor(out: dict[str, Any], f: FactorSpec, g: GroupNetwork, k: int, x: Any, field_name: str) -> None:
    name = f"{g.prefix}k{k}_"
    if f.structure == "dense":
        x = _matrix(x)
        _shape_check(field_name, x, f.shape)
        out[name + "dense"] = x
    elif f.structure == "lora":
        if not isinstance(x, tuple):
            raise SpecError(field_name, "a full matrix", f"a (w_a, w_b) low-rank pair of rank {f.ranks[0]} (this factor is lora)")
        wa, wb = x
        _shape_check(field_name + "[0]", wa, (f.shape[0], f.ranks[0]))
        _shape_check(field_name + "[1]", wb, (f.ranks[0], f.shape[1]))
        out[name + "A0"], out[name + "A1"] = wa, wb.T
    else:
        raise SpecError("structure", f.structure, "dense or lora factors (a tucker/cp factor has no textbook native form here)")


def from_native(spec: SuperLoRA, native: Mapping[Any, Any], name: str | None = None) -> dict[str, Any]:
    """Inverse of :func:`to_native` for specs built the variant's canonical way (see ``variants``).

    Scales in ``native`` must equal the spec's (build the spec with the matching alpha).
    """
    name = identify(spec) if name is None else name
    _require(spec, name)
    if not isinstance(native, Mapping):
        raise SpecError("native", type(native).__name__, "a mapping keyed by target name or group index")
    keys = [t.name for t in spec.targets] if name in TARGET_LEVEL else [g.index for g in spec.groups]
    if set(native) != set(keys):
        raise SpecError("native", sorted(map(str, native))[:5], f"exactly the keys {keys[:5]}")
    out: dict[str, Any] = {}
    if name == "dense":
        return _from_dense(spec, native)
    for g in spec.groups:
        fs = g.factors
        if name in ("lora", "lokr"):
            t = g.segments[0].target
            item = tuple(native[t])
            if name == "lora":
                A, B, scale = item if len(item) == 3 else (*item, None)
                _check_scale(spec, t, scale, spec.target_scale(t))
                if fs[0].structure not in ("lora", "cp"):
                    raise SpecError("structure", fs[0].structure, "lora (or cp) for from_lora")
                _shape_check(f"native[{t!r}][1]", B, (fs[0].shape[0], fs[0].ranks[0]))
                _shape_check(f"native[{t!r}][0]", A, (fs[0].ranks[0], fs[0].shape[1]))
                out[f"{g.prefix}k0_A0"], out[f"{g.prefix}k0_A1"] = B, A.T
            else:
                w1, w2, scale = item if len(item) == 3 else (*item, None)
                _check_scale(spec, t, scale, spec.target_scale(t))
                _put_factor(out, fs[0], g, 0, w1, f"native[{t!r}].w1")
                _put_factor(out, fs[1], g, 1, w2, f"native[{t!r}].w2")
            continue
        item = tuple(native[g.index])
        if name == "lonkr":
            factors, scale = item
            _check_scale(spec, g.index, scale, spec.scale_factor)
            for k, (f, x) in enumerate(zip(fs, factors)):
                _put_factor(out, f, g, k, x, f"native[{g.index}].factors[{k}]")
        elif name == "lotr":
            U, cores, V, scale = item
            _check_scale(spec, g.index, scale, spec.scale_factor)
            f = fs[0]
            if f.structure != "tucker" or 0 not in f.identity_modes:
                raise SpecError("identity_modes", f.identity_modes, "(0,) with a tucker structure (the LoTR spec of variants.lotr)")
            shapes = f.param_shapes()
            for local, x in (("core", cores), ("A1", U), ("A2", V)):
                _shape_check(f"native[{g.index}].{local}", x, shapes[local])
                out[f"{g.prefix}k0_{local}"] = x
        else:
            f = fs[0]
            if name == "lorta":
                core, factors, scale = item
                out[f"{g.prefix}k0_core"] = core
            else:
                factors, scale = item
            _check_scale(spec, g.index, scale, spec.scale_factor)
            shapes = f.param_shapes()
            for m, A in enumerate(factors):
                if m not in f.identity_modes:
                    out[f"{g.prefix}k0_A{m}"] = A
            for local, x in out.items():
                if local.startswith(g.prefix):
                    _shape_check(f"native[{g.index}].{local}", x, shapes[local[len(g.prefix) + 3:]])
    return {n: out[n] for n in spec.param_shapes}


def _from_dense(spec: SuperLoRA, native: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for g in spec.groups:
        f = g.factors[0]
        if f.structure != "dense":
            raise SpecError("structure", f.structure, "dense (the spec of variants.dense) for from_dense")
        if math.prod(f.shape) != g.size:
            raise SpecError("fold", g.fold, f"a fold of exactly {g.size} entries for from_dense")
        parts = []
        for s in g.segments:
            item = native[s.target]
            W, scale = item if isinstance(item, tuple) else (item, None)
            _check_scale(spec, s.target, scale, spec.target_scale(s.target))
            _shape_check(f"native[{s.target!r}]", W, spec._by_name[s.target].matrix_shape)
            parts.append(W.reshape(-1)[s.start:s.stop])
        be = backend_for(parts[0])
        vec = parts[0] if len(parts) == 1 else be.concat(parts)
        out[f"{g.prefix}k0_dense"] = vec.reshape(*f.shape)
    return out


def from_dense(spec: SuperLoRA, native: Mapping[str, Any]) -> dict[str, Any]:
    return from_native(spec, native, "dense")


def from_lora(spec: SuperLoRA, native: Mapping[str, Any]) -> dict[str, Any]:
    return from_native(spec, native, "lora")


def from_lokr(spec: SuperLoRA, native: Mapping[str, Any]) -> dict[str, Any]:
    return from_native(spec, native, "lokr")


def from_lonkr(spec: SuperLoRA, native: Mapping[int, Any]) -> dict[str, Any]:
    return from_native(spec, native, "lonkr")


def from_lotr(spec: SuperLoRA, native: Mapping[int, Any]) -> dict[str, Any]:
    return from_native(spec, native, "lotr")


def from_lorta(spec: SuperLoRA, native: Mapping[int, Any]) -> dict[str, Any]:
    return from_native(spec, native, "lorta")


def from_cp(spec: SuperLoRA, native: Mapping[int, Any]) -> dict[str, Any]:
    return from_native(spec, native, "cp")


# ====================================================================== checking
@dataclass(frozen=True)
class ReductionReport:
    """Contracted network vs. the reference formula: ``max_error`` = max |dW_net - dW_ref| (absolute)."""

    variant: str
    backend: str
    dtype: str
    max_error: float
    max_abs: float  # max |dW_ref|, to read max_error relative to it
    per_target: dict[str, float] = field(repr=False)

    @property
    def relative_error(self) -> float:
        return self.max_error / self.max_abs if self.max_abs else self.max_error

    def __float__(self) -> float:
        return self.max_error


def check_reduction(spec: SuperLoRA, name: str | None = None, *, backend: Any = "numpy", params: Mapping[str, Any] | None = None,
                    dtype: Any = "float64", seed: int | None = None) -> ReductionReport:
    """Contract the spec and compare with the variant's reference formula.

    Without ``params``, seeded random non-zero parameters in ``dtype`` on ``backend`` are used.
    """
    name = identify(spec) if name is None else name
    _require(spec, name)
    be = get_backend(backend)
    if params is None:
        params = spec.init(be, zero_init=False, dtype=dtype, seed=seed)
    got = spec.contract(params, backend=be)
    want = reference_deltas(spec, params, name)
    src = backend_for(next(iter(got.values())))
    errors, biggest = {}, 0.0
    for t in spec.targets:
        a = np.asarray(src.to_numpy(got[t.name]), dtype=np.float64)
        b = np.asarray(backend_for(want[t.name]).to_numpy(want[t.name]), dtype=np.float64)
        errors[t.name] = float(np.abs(a - b).max())
        biggest = max(biggest, float(np.abs(b).max()))
    dname = be.dtype_name(be.dtype_of(next(iter(params.values()))))
    return ReductionReport(name, be.name, dname, max(errors.values()), biggest, errors)


# ====================================================================== conversions to LoRA
@dataclass(frozen=True)
class Conversion:
    """A converted adapter: the new spec, its parameters (NumPy float64) and how exact it is.

    ``exact`` says whether the algebra makes the conversion exact (up to round-off);
    ``max_error`` is the measured max |dW_new - dW_old| over all targets.
    """

    spec: Any
    params: dict[str, np.ndarray]
    exact: bool
    max_error: float
    note: str


def _np(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    be = _bk(params)
    return {k: np.asarray(be.to_numpy(v), dtype=np.float64) for k, v in params.items()}


def _np_deltas(spec: SuperLoRA, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).reshape(spec._by_name[k].matrix_shape) for k, v in spec.contract(params).items()}


def _lora_from_pairs(spec: SuperLoRA, pairs: dict[str, tuple[np.ndarray, np.ndarray]], exact: bool, note: str) -> Conversion:
    """A LoRA spec (scale 1) holding B_t A_t for every target; ranks padded with zeros to the largest."""
    from .variants import lora

    R = max(A.shape[0] for A, _ in pairs.values())
    new = lora([(t.name, t.shape) for t in spec.targets], R)
    params = {}
    for g, t in zip(new.groups, new.targets):
        A, B = pairs[t.name]
        r = A.shape[0]
        A0 = np.zeros((B.shape[0], R))
        A1 = np.zeros((A.shape[1], R))
        A0[:, :r], A1[:, :r] = B, A.T
        params[f"{g.prefix}k0_A0"], params[f"{g.prefix}k0_A1"] = A0, A1
    return Conversion(new, params, exact, 0.0, note)


def _finish(spec: SuperLoRA, params: Mapping[str, Any], conv: Conversion) -> Conversion:
    before = _np_deltas(spec, _np(params))
    after = _np_deltas(conv.spec, conv.params)
    err = max(float(np.abs(before[t] - after[t]).max()) for t in before)
    return Conversion(conv.spec, conv.params, conv.exact, err, conv.note)


def _split_lowrank(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """A factor as (P, Q) with P @ Q equal to it: the pair itself, or (M, I) / (I, M) at the smaller rank."""
    if isinstance(x, tuple):
        return np.asarray(x[0]), np.asarray(x[1])
    M = np.asarray(x)
    return (M, np.eye(M.shape[1])) if M.shape[1] <= M.shape[0] else (np.eye(M.shape[0]), M)


def lokr_to_lora(spec: SuperLoRA, params: Mapping[str, Any]) -> Conversion:
    """Exact: kron(P1 Q1, P2 Q2) = kron(P1, P2) kron(Q1, Q2), a LoRA of rank r1 * r2 per target.

    A dense factor contributes its smaller side as rank (kron(w1, B A) = kron(w1, B) kron(I, A)).
    """
    _require(spec, "lokr")
    native = to_lokr(spec, _np(params))
    pairs = {}
    for t, (w1, w2, scale) in native.items():
        P1, Q1 = _split_lowrank(w1)
        P2, Q2 = _split_lowrank(w2)
        pairs[t] = (np.kron(Q1, Q2), np.kron(P1, P2) * scale)
    conv = _lora_from_pairs(spec, pairs, True, "exact: kron(P1 Q1, P2 Q2) = kron(P1, P2) kron(Q1, Q2)")
    return _finish(spec, params, conv)


def lotr_to_lora(spec: SuperLoRA, params: Mapping[str, Any]) -> Conversion:
    """Exact, per layer: dW_l = (U C_l) V^T (rank r2) or U (C_l V^T) (rank r1), the smaller."""
    _require(spec, "lotr")
    native = to_lotr(spec, _np(params))
    pairs = {}
    for g in spec.groups:
        U, cores, V, scale = native[g.index]
        for l, s in enumerate(g.segments):
            C = cores[l] * scale * _extra(spec, s.target)
            pairs[s.target] = (V.T, U @ C) if C.shape[1] <= C.shape[0] else (C @ V.T, U)
    conv = _lora_from_pairs(spec, pairs, True, "exact: dW_l = (U C_l) V^T per layer")
    return _finish(spec, params, conv)


def svd_to_lora(spec: SuperLoRA, params: Mapping[str, Any], rank: int | None = None, rtol: float = 1e-12) -> Conversion:
    """Any spec -> LoRA by truncated SVD of each dW_t; exact iff every discarded singular value <= rtol * s_max.

    ``rank=None`` keeps each target's numerical rank (exact by construction).
    """
    if rank is not None:
        from .validate import as_positive_int

        as_positive_int("rank", rank)
    deltas = _np_deltas(spec, _np(params))
    pairs, exact = {}, True
    for t, W in deltas.items():
        U, S, Vt = np.linalg.svd(W, full_matrices=False)
        keep = int((S > rtol * S[0]).sum()) if S.size and S[0] > 0 else 1
        r = max(1, keep if rank is None else min(rank, S.size))
        if S.size and S[0] > 0 and (S[r:] > rtol * S[0]).any():
            exact = False
        pairs[t] = (Vt[:r], U[:, :r] * S[:r])
    note = "exact (no singular value discarded)" if exact else f"truncated SVD to rank {rank}: best rank-{rank} approximation per target"
    return _finish(spec, params, _lora_from_pairs(spec, pairs, exact, note))


def to_lora_spec(spec: SuperLoRA, params: Mapping[str, Any], rank: int | None = None) -> Conversion:
    """Convert any adapter to LoRA: exactly for LoRA, LoKr and LoTR, else by truncated SVD (error reported)."""
    names = reduces_to(spec)
    if rank is None:
        if "lora" in names:
            native = to_lora(spec, _np(params))
            pairs = {t: (A, B * s) for t, (A, B, s) in native.items()}
            return _finish(spec, params, _lora_from_pairs(spec, pairs, True, "exact: already LoRA"))
        if "lokr" in names:
            return lokr_to_lora(spec, params)
        if "lotr" in names:
            return lotr_to_lora(spec, params)
    return svd_to_lora(spec, params, rank)
