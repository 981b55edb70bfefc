"""Reading a LyCORIS state dict into a SuperLoRA spec and its parameters (see :mod:`~superlora_tn.interop.lycoris`).

Each module's keys name its algorithm; its tensors give the weight shape, LyCORIS's ``lora_dim``
and alpha; the factor shapes give the factorization convention and factor (``find_factorization``).

>>> import torch
>>> layers = read_layers({"lycoris_fc.lora_up.weight": torch.ones(8, 2), "lycoris_fc.lora_down.weight": torch.ones(2, 4)}, None)
>>> [(la.key, la.algo, la.shape, la.rank, la.scale) for la in layers]
[('lycoris_fc', 'lora', (8, 4), 2, 1.0)]
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..facade import SuperLoRA
from ..factorize import LYCORIS_FACTORIZATIONS, lycoris_splits
from .lycoris_format import (
    KERNELS,
    LOHA_LEAVES,
    LOKR_LEAVES,
    LORA_LEAVES,
    PREFIXES,
    REFUSED,
    Layer,
    lycoris_module_name,
    pad,
    pad_core,
    w1_shape,
    w2_shape,
)

__all__ = ["build_spec", "load_state", "read_layers"]

def _algo(key: str, leaves: set[str]) -> str:
    for leaf in sorted(leaves):
        if leaf in REFUSED:
            raise SpecError(f"{key}.{leaf}", REFUSED[leaf], "LoRA/LoCon, LoKr or LoHa modules (this algorithm is not a SuperLoRA setting)")
    for algo, known in (("lokr", LOKR_LEAVES), ("loha", LOHA_LEAVES), ("lora", LORA_LEAVES)):
        if leaves & (known - {"alpha"}):
            unknown = sorted(leaves - known)
            if unknown:
                raise SpecError(f"{key}.{unknown[0]}", unknown, f"{algo} keys: {', '.join(sorted(known))}")
            return algo
    raise SpecError(key, sorted(leaves), "LyCORIS module keys (lora_up/lora_down, lokr_w1/lokr_w2..., hada_w1_a...)")


def load_state(source: Any) -> dict[str, Any]:
    """A state dict, or the tensors of a .safetensors / torch file."""
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise SpecError("source", path, "a LyCORIS .safetensors (or torch .pt) file")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return dict(load_file(path))
        import torch

        return dict(torch.load(path, map_location="cpu", weights_only=True))
    if isinstance(source, Mapping):
        return dict(source)
    raise SpecError("source", type(source).__name__, "a LyCORIS state dict or a .safetensors file path")


def _inferred_shape(layer: Layer) -> tuple[int, ...]:
    """The weight shape a layer's tensors imply (a conv whose kernel LyCORIS flattened reads as (out, in*k))."""
    t = layer.t
    if layer.algo == "lora":
        up, down = t["lora_up.weight"], t["lora_down.weight"]
        kernel = t["lora_mid.weight"].shape[2:] if "lora_mid.weight" in t else down.shape[2:]
        return (int(up.shape[0]), int(down.shape[1]), *map(int, kernel))
    if layer.algo == "loha":
        if "hada_t1" in t:
            return (int(t["hada_w1_a"].shape[1]), int(t["hada_w1_b"].shape[1]), *map(int, t["hada_t1"].shape[2:]))
        return (int(t["hada_w1_a"].shape[0]), int(t["hada_w1_b"].shape[1]))
    a, c = w1_shape(t)
    if "lokr_w2" in t:
        w2 = t["lokr_w2"]
        return (a * int(w2.shape[0]), c * int(w2.shape[1]), *map(int, w2.shape[2:]))
    if "lokr_t2" in t:
        return (a * int(t["lokr_w2_a"].shape[1]), c * int(t["lokr_w2_b"].shape[1]), *map(int, t["lokr_t2"].shape[2:]))
    return (a * int(t["lokr_w2_a"].shape[0]), c * int(t["lokr_w2_b"].reshape(t["lokr_w2_b"].shape[0], -1).shape[1]))


def read_layers(state: Mapping[str, Any], model: Any, modules: Any = None) -> list[Layer]:
    """The file's modules in file order (only ``modules``: LyCORIS names or module paths), each
    checked (algorithm, shapes) and named."""
    if modules is not None and (isinstance(modules, str) or not all(isinstance(m, str) for m in modules)):
        raise SpecError("modules", modules, "None or a list of LyCORIS module names / module paths")
    wanted = None if modules is None else set(modules)
    by_key: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        if not isinstance(key, str) or "." not in key:
            raise SpecError("state_dict key", key, "<module>.<leaf> keys such as lycoris_fc.lokr_w1")
        module, leaf = key.split(".", 1)
        if leaf == "scalar":  # LyCORIS resets use_scalar's scalar to 1 on load; its saved weights hold it
            continue
        by_key.setdefault(module, {})[leaf] = value
    if not by_key:
        raise SpecError("state_dict", "0 modules", "a LyCORIS state dict with at least one module")
    names: dict[str, tuple[str, Any]] = {}
    if model is not None:
        for name, module in model.named_modules():
            if name:
                for prefix in PREFIXES:
                    names.setdefault(lycoris_module_name(name, prefix), (name, module))
    layers = []
    for key, tensors in by_key.items():
        if wanted is not None and key not in wanted and names.get(key, (key,))[0] not in wanted:
            continue
        layer = Layer(key, key, _algo(key, set(tensors)), tensors)
        shape = _inferred_shape(layer)
        if model is not None:
            if key not in names:
                raise SpecError("state_dict module", key, f"a module of the model ({', '.join(list(names)[:3])}, ...); "
                                "modules=[...] converts a subset (e.g. the lora_unet_ modules with the UNet)")
            layer.name, module = names[key]
            weight = getattr(module, "weight", None)
            if weight is None or math.prod(weight.shape) != math.prod(shape) or weight.shape[0] != shape[0]:
                got = None if weight is None else tuple(weight.shape)
                raise SpecError(f"module {layer.name!r}", got, f"a weight of shape {shape} (what the file's {key} holds)")
            shape = tuple(int(n) for n in weight.shape)
        elif layer.algo == "lokr" and "lokr_w2_b" in tensors and "lokr_t2" not in tensors:
            layer.kernel_known = False
        layer.shape = shape
        layers.append(layer)
    unknown = sorted((wanted or set()) - {la.key for la in layers} - {la.name for la in layers})
    if unknown:
        raise SpecError("modules", unknown, f"modules of the file ({', '.join(list(by_key)[:3])}, ...)")
    return layers


def _scale_args(layers: list[Layer], rank_ref: int) -> dict[str, Any]:
    """alpha when every layer has alpha / r with r = the spec's rank, else per-target scales."""
    alphas = {layer.alpha for layer in layers}
    ranks = {layer.rank for layer in layers}
    if len(alphas) == 1 and ranks == {rank_ref} and None not in alphas and next(iter(alphas)):
        return {"alpha": next(iter(alphas))}
    scales = {layer.name: layer.scale for layer in layers}
    return {"alpha": None, "scale": scales if any(s != 1.0 for s in scales.values()) else None}


def _check(spec: SuperLoRA, params: dict[str, Any]) -> tuple[SuperLoRA, dict[str, Any]]:
    shapes = spec.param_shapes
    for name, value in params.items():
        if tuple(value.shape) != shapes[name]:  # a file whose shapes contradict each other
            raise SpecError(f"params[{name!r}]", tuple(value.shape), f"shape {shapes[name]} (inconsistent LyCORIS tensors)")
    return spec, params


def _lora_spec(layers: list[Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    """LoRA/LoCon: A0 = up, A1 = down^T (kernel flattened). Tucker LoCon (``lora_mid``) on every
    layer: ``fold="shape"``, core = mid, A1 = down^T; among plain layers it becomes the exact pair
    (up, mid x_2 down) of rank r."""
    import torch

    R = max(layer.rank or 1 for layer in layers)
    targets = [(la.name, la.shape) for la in layers]
    tucker = _tucker_layers(layers, "lora_mid.weight", mixed)
    if tucker:
        spec = SuperLoRA(targets, rank=R, structure="tucker", fold="shape", identity_modes=tuple(range(2, len(layers[0].shape))),
                         seed=seed, **_scale_args(layers, R))
    else:
        spec = SuperLoRA(targets, rank=R, structure="lora", seed=seed, **_scale_args(layers, R))
    params = {}
    for g, la in zip(spec.groups, layers):
        up, down = cast(la.t["lora_up.weight"]), cast(la.t["lora_down.weight"])
        up, down = up.reshape(up.shape[0], -1), down.reshape(down.shape[0], -1)
        params[g.param_name(0, "A0")] = pad(up, R, 1)
        if tucker:
            params[g.param_name(0, "core")] = pad_core(cast(la.t["lora_mid.weight"]), R)
        elif "lora_mid.weight" in la.t:
            down = torch.einsum("ij...,jc->ic...", cast(la.t["lora_mid.weight"]), down).reshape(down.shape[0], -1)
        params[g.param_name(0, "A1")] = pad(down.T, R, 1)
    return _check(spec, params)


def _tucker_layers(layers: list[Layer], core: str, mixed: str) -> bool:
    """True when every layer is a Tucker conv layer of one order; SpecError (``mixed="error"``) or
    False when only some are."""
    tucker = [core in la.t for la in layers]
    if all(tucker) and len({len(la.shape) for la in layers}) == 1:
        return True
    if any(tucker) and mixed == "error":
        raise SpecError("mixed", mixed, f'"dense": {sum(tucker)} of {len(layers)} layers are Tucker ({core}), the others not')
    return False


def _loha_spec(layers: list[Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    R = max(la.rank or 1 for la in layers)
    tucker = _tucker_layers(layers, "hada_t1", mixed)
    targets = [(la.name, la.shape) for la in layers]
    if tucker:
        order = len(layers[0].shape)
        spec = SuperLoRA(targets, splits=2, compose="hadamard", rank=R, structure="tucker", fold="shape",
                         identity_modes=tuple(range(2, order)), seed=seed, **_scale_args(layers, R))
    else:
        spec = SuperLoRA(targets, splits=2, compose="hadamard", rank=R, structure="lora", seed=seed, **_scale_args(layers, R))
    params = {}
    for g, la in zip(spec.groups, layers):
        for k in (0, 1):
            wa, wb = cast(la.t[f"hada_w{k + 1}_a"]), cast(la.t[f"hada_w{k + 1}_b"])
            if tucker:
                params[g.param_name(k, "core")] = pad_core(cast(la.t[f"hada_t{k + 1}"]), R)
                params[g.param_name(k, "A0")], params[g.param_name(k, "A1")] = pad(wa.T, R, 1), pad(wb.T, R, 1)
            elif f"hada_t{k + 1}" in la.t:  # a Tucker layer among plain ones
                raise SpecError("mixed", mixed, "LoHa files whose Tucker and plain layers are converted separately "
                                "(a Tucker LoHa factor has no exact rank-r matrix form)")
            else:
                params[g.param_name(k, "A0")], params[g.param_name(k, "A1")] = pad(wa, R, 1), pad(wb.reshape(wb.shape[0], -1).T, R, 1)
    return _check(spec, params)


def _lokr_parts(la: Layer, cast: Any) -> tuple[Any, Any]:
    """(w1, w2): each a tensor, a (w_a, w_b) pair, or for w2 ("tucker", t2, w2_a, w2_b)."""
    t = {k: cast(v) for k, v in la.t.items() if k != "alpha"}
    w1 = t["lokr_w1"] if "lokr_w1" in t else (t["lokr_w1_a"], t["lokr_w1_b"])
    if "lokr_w2" in t:
        w2: Any = t["lokr_w2"]
    elif "lokr_t2" in t:
        w2 = ("tucker", t["lokr_t2"], t["lokr_w2_a"], t["lokr_w2_b"])
    else:
        w2 = (t["lokr_w2_a"], t["lokr_w2_b"])
    return w1, w2


def _full(w: Any, shape: tuple[int, ...]) -> Any:
    """A LoKr factor as its full tensor of ``shape`` (LyCORIS's rebuild; Tucker: t2 x w2_a^T x w2_b^T)."""
    import torch

    if isinstance(w, tuple) and w[0] == "tucker":
        _, t2, wa, wb = w
        return torch.einsum("ij...,ip,jr->pr...", t2, wa, wb).reshape(shape)
    if isinstance(w, tuple):
        return (w[0] @ w[1].reshape(w[1].shape[0], -1)).reshape(shape)
    return w.reshape(shape)


def _find_factorization(layers: list[Layer]) -> tuple[str, int]:
    """The LyCORIS convention and factor that produce every layer's (w1, w2) shapes.

    A LoKr conv layer read without its model stores its kernel flattened into w2_b: it is read
    as the (out, in * k) matrix when some factor explains that, else with the first square
    kernel size of ``KERNELS`` the shapes agree with, as (out, in, s, s).
    """
    wanted = {}
    candidates = {-1}
    for la in layers:
        (a, c), shape = w1_shape(la.t), la.shape
        b, d = w2_shape(la.t, shape)
        wanted[la.name] = ((a, b), (c, d))
        candidates |= {a, b, c, d}
    for kernels in ((1,), KERNELS):  # a plain matrix first: a kernel is guessed only when nothing else fits
        for convention in LYCORIS_FACTORIZATIONS:
            for factor in sorted(candidates):
                picked = _kernels_fitting(layers, wanted, kernels, convention, factor)
                if picked is None:
                    continue
                for la in layers:
                    k = picked[la.name]
                    if k > 1:  # LyCORIS's convs are square: k = s * s
                        s = math.isqrt(k)
                        la.shape = (la.shape[0], la.shape[1] // k, s, s)
                return convention, factor
    la = layers[0]
    raise SpecError("factorization", wanted[la.name], f"shapes LyCORIS's factorization gives for {la.shape[:2]} with one factor "
                    "for all layers (and the unbalanced rule or not); convert such layers separately (modules=[...])")


def _kernels_fitting(layers: list[Layer], wanted: Mapping[str, Any], kernels: tuple[int, ...], convention: str,
                     factor: int) -> dict[str, int] | None:
    """Per layer, the kernel size k for which (convention, factor) gives its shapes; None if some layer has none."""
    picked = {}
    for la in layers:
        (a, b), (c, d) = wanted[la.name]
        for k in (kernels if not la.kernel_known else (1,)):
            dims = (la.shape[0], la.shape[1] // k)
            if la.shape[1] % k == 0 and d % k == 0 and tuple(lycoris_splits(dims, dims, convention, factor)) == ((a, b), (c, d // k)):
                picked[la.name] = k
                break
        else:
            return None
    return picked


def _lokr_spec(layers: list[Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    convention, factor = _find_factorization(layers)
    parts = {la.name: _lokr_parts(la, cast) for la in layers}
    tucker = _tucker_layers(layers, "lokr_t2", mixed)
    # per factor: "lora" when every layer stores a low-rank pair, "tucker" for w2 when all are Tucker, else "dense"
    forms = []
    for k in (0, 1):
        kinds = {("tucker" if isinstance(p[k], tuple) and p[k][0] == "tucker" else "pair") if isinstance(p[k], tuple) else "full"
                 for p in parts.values()}
        if len(kinds) > 1 and mixed == "error":
            raise SpecError("mixed", mixed, f'"dense": LoKr factor w{k + 1} is stored as {sorted(kinds)} on different layers')
        forms.append(kinds.pop() if len(kinds) == 1 else "full")
    if tucker and forms[1] != "tucker":  # cannot happen (all layers have t2), kept for clarity
        tucker = False
    ranks = [max((la.rank or 1) for la in layers)] * 2
    targets = [(la.name, la.shape) for la in layers]
    if tucker:
        order = len(layers[0].shape)
        structure = ["tucker" if forms[0] == "pair" else "dense", "tucker"]
        spec = SuperLoRA(targets, splits=2, factorization=convention, split_factor=factor, fold="shape", rank=ranks[0],
                         structure=structure, identity_modes=tuple(range(2, order)), seed=seed, **_scale_args(layers, ranks[0]))
    else:
        structure = ["lora" if forms[k] == "pair" else "dense" for k in (0, 1)]
        rank_ref = ranks[0] if "lora" in structure else 1
        spec = SuperLoRA(targets, splits=2, factorization=convention, split_factor=factor, rank=ranks[0], structure=structure,
                         seed=seed, **_scale_args(layers, rank_ref))
    R = ranks[0]
    params = {}
    for g, la in zip(spec.groups, layers):
        w1, w2 = parts[la.name]
        f1, f2 = g.factors
        if f1.structure == "dense":
            params[g.param_name(0, "dense")] = _full(w1, f1.shape)
        elif f1.structure == "lora":
            params[g.param_name(0, "A0")], params[g.param_name(0, "A1")] = pad(w1[0], R, 1), pad(w1[1].T, R, 1)
        else:  # tucker with unit kernel modes: identity core, w1 = w1_a @ I @ w1_b
            import torch

            eye = torch.eye(R, dtype=w1[0].dtype, device=w1[0].device).reshape(R, R, *f1.shape[2:])
            params[g.param_name(0, "core")] = eye
            params[g.param_name(0, "A0")] = pad(w1[0], R, 1)
            params[g.param_name(0, "A1")] = pad(w1[1].T, R, 1)
        if f2.structure == "dense":
            params[g.param_name(1, "dense")] = _full(w2, f2.shape)
        elif f2.structure == "lora":
            params[g.param_name(1, "A0")], params[g.param_name(1, "A1")] = pad(w2[0], R, 1), pad(w2[1].reshape(w2[1].shape[0], -1).T, R, 1)
        else:
            _, t2, wa, wb = w2
            params[g.param_name(1, "core")] = pad_core(t2, R)
            params[g.param_name(1, "A0")] = pad(wa.T, R, 1)
            params[g.param_name(1, "A1")] = pad(wb.T, R, 1)
    return _check(spec, params)


def build_spec(layers: list[Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    """The spec and parameters of layers of one algorithm (``cast`` copies or converts each tensor)."""
    build = {"lora": _lora_spec, "loha": _loha_spec, "lokr": _lokr_spec}[layers[0].algo]
    return build(layers, cast, seed, mixed)
