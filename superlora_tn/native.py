"""A spec's parameters as each variant's textbook (native) parameters, and back.

``reference.<formula>(*native[key])`` equals ``spec.contract(params)`` (per target for
dense/lora/lokr, per group for the rest). The layout (groups, segments, the fold cut) is
re-implemented here from the layout in docs/semantics.md by slicing, independent of the contraction path.

>>> import superlora_tn as slt
>>> from superlora_tn import reference
>>> spec = slt.SuperLoRA({"w": (6, 5)}, rank=2)
>>> p = spec.init(zero_init=False)
>>> bool(abs(reference.lora_delta(*to_lora(spec, p)["w"]) - spec.contract(p)["w"]).max() < 1e-12)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import reference as ref
from .backends import backend_for, get_backend
from .errors import SpecError
from .identify import NAMES, identify, reduces_to

if TYPE_CHECKING:
    from .network import GroupNetwork
    from .spec import SuperLoRA
    from .structures import FactorSpec

__all__ = [
    "from_cp", "from_dense", "from_lokr", "from_lonkr", "from_lora", "from_lorta", "from_lotr", "from_native",
    "reference_deltas", "to_cp", "to_dense", "to_loha", "to_lokr", "to_lonkr", "to_lora", "to_lorta", "to_lotr", "to_native",
]

TARGET_LEVEL = ("dense", "lora", "lokr", "loha")  # native parameters keyed by target; the others by group index


def _p(params: Mapping[str, Any], g: GroupNetwork, k: int, local: str) -> Any:
    return params[g.param_name(k, local)]


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
    """Place each group's n entries (C order) onto the targets' row-major entries (docs/semantics.md)."""
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
    if not isinstance(name, str) or name not in NAMES:
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
    loha        target    (w1, w2, scale), each a (w_a, w_b) pair or a tensor    ``loha_delta``
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
            x = _factor_native(fs[0], params, g, 0) if len(fs[0].shape) == 2 else None
            if x is None:  # Tucker conv (LoCon lora_mid): A = core x_2 A1, its (r0, in, k...) view flattened
                core, A1 = _p(params, g, 0, "core"), _p(params, g, 0, "A1")
                B, A = _p(params, g, 0, "A0"), ref.mode_product(core, A1, 1).reshape(core.shape[0], -1)
            elif isinstance(x, tuple):
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
        elif name in ("lokr", "loha"):
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
        formula = {"dense": ref.dense_delta, "lora": ref.lora_delta, "lokr": _lokr_formula, "loha": ref.loha_delta}[name]
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


def to_loha(spec: SuperLoRA, params: Mapping[str, Any]) -> dict[str, tuple]:
    """{target: (w1, w2, scale)}, w a (w_a, w_b) pair or a Tucker tensor: ``reference.loha_delta(*native[t])``."""
    return to_native(spec, params, "loha")


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
    if f.structure == "dense":
        x = _matrix(x)
        _shape_check(field_name, x, f.shape)
        out[g.param_name(k, "dense")] = x
    elif f.structure == "lora":
        if not isinstance(x, tuple):
            raise SpecError(field_name, "a full matrix", f"a (w_a, w_b) low-rank pair of rank {f.ranks[0]} (this factor is lora)")
        wa, wb = x
        _shape_check(field_name + "[0]", wa, (f.shape[0], f.ranks[0]))
        _shape_check(field_name + "[1]", wb, (f.ranks[0], f.shape[1]))
        out[g.param_name(k, "A0")], out[g.param_name(k, "A1")] = wa, wb.T
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
        if name in ("lora", "lokr", "loha"):
            t = g.segments[0].target
            item = tuple(native[t])
            if name == "lora":
                A, B, scale = item if len(item) == 3 else (*item, None)
                _check_scale(spec, t, scale, spec.target_scale(t))
                if fs[0].structure not in ("lora", "cp"):
                    raise SpecError("structure", fs[0].structure, "lora (or cp) for from_lora")
                _shape_check(f"native[{t!r}][1]", B, (fs[0].shape[0], fs[0].ranks[0]))
                _shape_check(f"native[{t!r}][0]", A, (fs[0].ranks[0], fs[0].shape[1]))
                out[g.param_name(0, "A0")], out[g.param_name(0, "A1")] = B, A.T
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
                out[g.param_name(0, local)] = x
        else:
            f = fs[0]
            if name == "lorta":
                core, factors, scale = item
                out[g.param_name(0, "core")] = core
            else:
                factors, scale = item
            _check_scale(spec, g.index, scale, spec.scale_factor)
            shapes = f.param_shapes()
            for m, A in enumerate(factors):
                if m not in f.identity_modes:
                    out[g.param_name(0, f"A{m}")] = A
            for local, shape in shapes.items():
                if g.param_name(0, local) in out:
                    _shape_check(f"native[{g.index}].{local}", out[g.param_name(0, local)], shape)
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
        out[g.param_name(0, "dense")] = vec.reshape(*f.shape)
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
