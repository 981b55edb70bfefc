"""LyCORIS / kohya interop: LoRA (LoCon), LoKr and LoHa adapters to SuperLoRA specs and back.

- :func:`from_lycoris` reads a LyCORIS state dict or ``.safetensors`` file (the keys
  ``lycoris_<module>.lokr_w1``, ``lora_unet_<module>.hada_w1_a``, ``....alpha`` ...) and returns
  ``(spec, params)`` whose dW equals what LyCORIS's **forward** adds to each layer; with
  ``model`` it returns an :class:`~superlora_tn.torch.AdaptedModel` instead.
- :func:`to_lycoris` writes a LoRA, LoKr or LoHa spec's parameters as LyCORIS keys (and a
  ``.safetensors`` file when ``path`` is given).

Conventions (docs/lycoris.md has the tables):

- Factor shapes follow LyCORIS 4.x ``factorization`` (``SuperLoRA(factorization="lycoris")``),
  or its ``unbalanced_factorization``; the importer finds the convention and the factor from
  the file's shapes.
- Scale: LyCORIS's forward multiplies by alpha / r once (r its ``lora_dim``), and by 1 when both
  LoKr factors are full matrices. Its ``get_diff_weight`` (used by its merge) multiplies by
  alpha / r a second time; imports follow the forward.
- Layers whose factors LyCORIS stored in different forms (w2 low-rank on one layer, full on
  another; Tucker conv layers next to Linear ones) are held in the common exact form: the full
  product (``mixed="dense"``, default), or refused (``mixed="error"``). Smaller ranks are padded
  with zero columns to the largest (exact) and per-layer alpha / r become per-target scales.
- DoRA (``dora_scale``), Tucker LoCon (``lora_mid``), GLoRA, (B)OFT, IA3, full/diff and norm
  modules are refused, naming the algorithm.

>>> import torch
>>> from superlora_tn.interop.lycoris import from_lycoris, to_lycoris
>>> g = torch.Generator().manual_seed(0)
>>> state = {"lycoris_fc.lokr_w1": torch.randn(4, 4, generator=g), "lycoris_fc.lokr_w2_a": torch.randn(8, 2, generator=g),
...          "lycoris_fc.lokr_w2_b": torch.randn(2, 8, generator=g), "lycoris_fc.alpha": torch.tensor(1.0)}
>>> spec, params = from_lycoris(state)
>>> spec.identify(), spec.target_shapes, spec.config["factorization"]
('lokr', {'lycoris_fc': (32, 32)}, 'lycoris')
>>> back = to_lycoris(spec, params)
>>> all(torch.equal(back[k], v) for k, v in state.items())
True
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..factorize import FACTORIZATIONS, lycoris_splits
from ..spec import SuperLoRA

__all__ = ["PREFIXES", "from_lycoris", "lycoris_module_name", "to_lycoris"]

#: Module-name prefixes of LyCORIS (``create_lycoris``) and kohya sd-scripts files.
PREFIXES = ("lycoris", "lora_unet", "lora_te1", "lora_te2", "lora_te3", "lora_te")

LORA_LEAVES = {"lora_up.weight", "lora_down.weight", "alpha"}
LOKR_LEAVES = {"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "alpha"}
LOHA_LEAVES = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "alpha"}
#: Leaves of LyCORIS algorithms that are not SuperLoRA settings, and the algorithm each names.
REFUSED = {
    "dora_scale": "DoRA weight decomposition (dora_wd)",
    "lora_mid.weight": "Tucker LoCon (lora_mid, use_tucker with algo=locon)",
    "lokr_t1": "LoKr with a Tucker w1 (lokr_t1)",
    "oft_blocks": "OFT/BOFT", "oft_diag": "OFT (diag-oft)", "rescale": "OFT/BOFT (rescaled)",
    "a1.weight": "GLoRA", "a2.weight": "GLoRA", "b1.weight": "GLoRA", "b2.weight": "GLoRA", "bm.weight": "GLoRA",
    "diff": "full (dense diff)", "diff_b": "full (dense diff)",
    "weight": "IA3 or a norm module", "on_input": "IA3", "w_norm": "norm", "b_norm": "norm",
    "up.weight": "DyLoRA", "down.weight": "DyLoRA",
}


@dataclass
class _Layer:
    """One LyCORIS module of a file: its tensors (leaf -> tensor), algorithm, weight shape, r, alpha."""

    key: str  # the LyCORIS module name, e.g. "lycoris_down_0"
    name: str  # the target name (module path with a model, else ``key``)
    algo: str  # "lora", "lokr" or "loha"
    t: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    kernel_known: bool = True  # False: a LoKr conv whose w2_b holds the kernel flattened, read without a model

    @property
    def alpha(self) -> float | None:
        a = self.t.get("alpha")
        return None if a is None else float(a)

    @property
    def rank(self) -> int | None:
        """LyCORIS's ``lora_dim`` of the layer (None: a LoKr of two full matrices, scale 1)."""
        t = self.t
        if self.algo == "lora":
            return int(t["lora_down.weight"].shape[0])
        if self.algo == "loha":
            return int(t["hada_w1_b"].shape[0])
        if "lokr_w1_a" in t:
            return int(t["lokr_w1_a"].shape[1])
        if "lokr_t2" in t:
            return int(t["lokr_t2"].shape[0])
        if "lokr_w2_a" in t:
            return int(t["lokr_w2_a"].shape[1])
        return None

    @property
    def scale(self) -> float:
        """alpha / r as LyCORIS's forward applies it (alpha missing or 0: r; both LoKr factors full: 1)."""
        r = self.rank
        if r is None:
            return 1.0
        alpha = self.alpha
        return float(r if not alpha else alpha) / r


def lycoris_module_name(name: str, prefix: str = "lycoris") -> str:
    """The LyCORIS/kohya key of a module path: ``prefix + "_" + name`` with dots as underscores.

    >>> lycoris_module_name("down_blocks.0.attn1.to_q", "lora_unet")
    'lora_unet_down_blocks_0_attn1_to_q'
    """
    if any(name.startswith(p + "_") for p in PREFIXES):
        return name.replace(".", "_")
    return f"{prefix}_{name}".replace(".", "_")


# ====================================================================== reading
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


def _load(source: Any) -> dict[str, Any]:
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


def _inferred_shape(layer: _Layer) -> tuple[int, ...]:
    """The weight shape a layer's tensors imply (a conv whose kernel LyCORIS flattened reads as (out, in*k))."""
    t = layer.t
    if layer.algo == "lora":
        up, down = t["lora_up.weight"], t["lora_down.weight"]
        return (int(up.shape[0]), *map(int, down.shape[1:]))
    if layer.algo == "loha":
        if "hada_t1" in t:
            return (int(t["hada_w1_a"].shape[1]), int(t["hada_w1_b"].shape[1]), *map(int, t["hada_t1"].shape[2:]))
        return (int(t["hada_w1_a"].shape[0]), int(t["hada_w1_b"].shape[1]))
    a, c = _w1_shape(t)
    if "lokr_w2" in t:
        w2 = t["lokr_w2"]
        return (a * int(w2.shape[0]), c * int(w2.shape[1]), *map(int, w2.shape[2:]))
    if "lokr_t2" in t:
        return (a * int(t["lokr_w2_a"].shape[1]), c * int(t["lokr_w2_b"].shape[1]), *map(int, t["lokr_t2"].shape[2:]))
    return (a * int(t["lokr_w2_a"].shape[0]), c * int(t["lokr_w2_b"].reshape(t["lokr_w2_b"].shape[0], -1).shape[1]))


def _w1_shape(t: Mapping[str, Any]) -> tuple[int, int]:
    if "lokr_w1" in t:
        return int(t["lokr_w1"].shape[0]), int(t["lokr_w1"].shape[1])
    return int(t["lokr_w1_a"].shape[0]), int(t["lokr_w1_b"].shape[1])


def _w2_shape(t: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[int, int]:
    """(b, d): w2's rows and its in-channel columns (kernel excluded)."""
    a, c = _w1_shape(t)
    return shape[0] // a, shape[1] // c


def _layers(state: Mapping[str, Any], model: Any) -> list[_Layer]:
    """The file's modules in file order, each checked (algorithm, shapes) and named."""
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
        layer = _Layer(key, key, _algo(key, set(tensors)), tensors)
        shape = _inferred_shape(layer)
        if model is not None:
            if key not in names:
                raise SpecError("state_dict module", key, f"a module of the model ({', '.join(list(names)[:3])}, ...)")
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
    return layers


def from_lycoris(source: Any, model: Any = None, *, modules: Any = None, mixed: str = "dense", dtype: Any = None,
                 seed: int = 0, factored: bool | str = "auto") -> Any:
    """A SuperLoRA spec and its parameters (torch tensors) from a LyCORIS LoRA/LoCon, LoKr or LoHa file.

    ``source``: a state dict or a ``.safetensors``/``.pt`` path. Without ``model``, targets are
    named by the file's module names (``lycoris_fc``, ``lora_unet_...``) and shaped from the
    tensors (a conv whose kernel LyCORIS stored flattened reads as (out, in*kh*kw)); returns
    ``(spec, params)``. With ``model`` (an ``nn.Module``), targets are its module paths with their
    real weight shapes, and the adapter is injected: returns the ``AdaptedModel``.
    ``modules``: only these LyCORIS module names (or, with ``model``, module paths), e.g. the
    Tucker conv layers of a file in one spec and its Linear layers in another.
    ``mixed``: ``"dense"`` holds factors stored in different forms on different layers as their
    exact full products; ``"error"`` refuses.
    """
    if mixed not in ("dense", "error"):
        raise SpecError("mixed", mixed, '"dense" or "error"')
    layers = _layers(_load(source), model)
    if modules is not None:
        if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
            raise SpecError("modules", modules, "None or a list of LyCORIS module names / module paths")
        wanted = set(modules)
        unknown = sorted(wanted - {la.key for la in layers} - {la.name for la in layers})
        if unknown:
            raise SpecError("modules", unknown, f"modules of the file ({', '.join(la.key for la in layers[:3])}, ...)")
        layers = [la for la in layers if la.key in wanted or la.name in wanted]
    algos = sorted({layer.algo for layer in layers})
    if len(algos) != 1:
        raise SpecError("state_dict", algos, "one algorithm per conversion (pick each one's modules with modules=[...])")
    cast = (lambda x: x.detach().to(dtype)) if dtype is not None else (lambda x: x.detach().clone())
    algo = layers[0].algo
    build = {"lora": _lora_spec, "loha": _loha_spec, "lokr": _lokr_spec}[algo]
    spec, params = build(layers, cast, seed, mixed)
    if model is None:
        return spec, params
    from ..torch import inject

    adapted = inject(model, spec=spec, factored=factored, adapter_dtype=next(iter(params.values())).dtype)
    with _no_grad():
        for name, value in params.items():
            adapted.adapter[name].copy_(value)
    return adapted


def _no_grad() -> Any:
    import torch

    return torch.no_grad()


def _scale_args(layers: list[_Layer], rank_ref: int) -> dict[str, Any]:
    """alpha when every layer has alpha / r with r = the spec's rank, else per-target scales."""
    alphas = {layer.alpha for layer in layers}
    ranks = {layer.rank for layer in layers}
    if len(alphas) == 1 and ranks == {rank_ref} and None not in alphas and next(iter(alphas)):
        return {"alpha": next(iter(alphas))}
    scales = {layer.name: layer.scale for layer in layers}
    return {"alpha": None, "scale": scales if any(s != 1.0 for s in scales.values()) else None}


def _pad(x: Any, R: int, dim: int) -> Any:
    """Zero-pad dimension ``dim`` of x to R (exact: zero rank components add nothing)."""
    import torch

    r = x.shape[dim]
    if r == R:
        return x.contiguous()
    shape = list(x.shape)
    shape[dim] = R - r
    return torch.cat([x, torch.zeros(shape, dtype=x.dtype, device=x.device)], dim=dim)


def _pad_core(t: Any, R: int) -> Any:
    return _pad(_pad(t, R, 0), R, 1)


def _check(spec: SuperLoRA, params: dict[str, Any]) -> tuple[SuperLoRA, dict[str, Any]]:
    shapes = spec.param_shapes
    for name, value in params.items():
        if tuple(value.shape) != shapes[name]:  # a file whose shapes contradict each other
            raise SpecError(f"params[{name!r}]", tuple(value.shape), f"shape {shapes[name]} (inconsistent LyCORIS tensors)")
    return spec, params


def _lora_spec(layers: list[_Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    R = max(layer.rank or 1 for layer in layers)
    spec = SuperLoRA([(la.name, la.shape) for la in layers], rank=R, structure="lora", seed=seed, **_scale_args(layers, R))
    params = {}
    for g, la in zip(spec.groups, layers):
        up, down = cast(la.t["lora_up.weight"]), cast(la.t["lora_down.weight"])
        params[f"{g.prefix}k0_A0"] = _pad(up.reshape(up.shape[0], -1), R, 1)
        params[f"{g.prefix}k0_A1"] = _pad(down.reshape(down.shape[0], -1).T, R, 1)
    return _check(spec, params)


def _tucker_layers(layers: list[_Layer], core: str, mixed: str) -> bool:
    """True when every layer is a Tucker conv layer of one order; SpecError/False when only some are."""
    tucker = [core in la.t for la in layers]
    if all(tucker) and len({len(la.shape) for la in layers}) == 1:
        return True
    if any(tucker) and mixed == "error":
        raise SpecError("mixed", mixed, f'"dense": {sum(tucker)} of {len(layers)} layers are Tucker ({core}), the others not')
    return False


def _loha_spec(layers: list[_Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
    import torch

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
            p = f"{g.prefix}k{k}_"
            if tucker:
                params[p + "core"] = _pad_core(cast(la.t[f"hada_t{k + 1}"]), R)
                params[p + "A0"], params[p + "A1"] = _pad(wa.T, R, 1), _pad(wb.T, R, 1)
            elif f"hada_t{k + 1}" in la.t:  # a Tucker layer among plain ones
                raise SpecError("mixed", mixed, "LoHa files whose Tucker and plain layers are converted separately "
                                "(a Tucker LoHa factor has no exact rank-r matrix form)")
            else:
                params[p + "A0"], params[p + "A1"] = _pad(wa, R, 1), _pad(wb.reshape(wb.shape[0], -1).T, R, 1)
    del torch
    return _check(spec, params)


def _lokr_parts(la: _Layer, cast: Any) -> tuple[Any, Any]:
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


KERNELS = (1, 9, 4, 16, 25, 49)  # square kernel sizes (kh * kw) tried for a conv read without its model


def _find_factorization(layers: list[_Layer]) -> tuple[str, int]:
    """The LyCORIS convention and factor that produce every layer's (w1, w2) shapes.

    A LoKr conv layer read without its model stores its kernel flattened into w2_b: it is read
    as the (out, in * k) matrix when some factor explains that, else with the first square
    kernel size of ``KERNELS`` the shapes agree with, as (out, in, s, s).
    """
    wanted = {}
    candidates = {-1}
    for la in layers:
        (a, c), shape = _w1_shape(la.t), la.shape
        b, d = _w2_shape(la.t, shape)
        wanted[la.name] = ((a, b), (c, d))
        candidates |= {a, b, c, d}
    for kernels in ((1,), KERNELS):  # a plain matrix first: a kernel is guessed only when nothing else fits
        for convention in FACTORIZATIONS[1:]:
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


def _kernels_fitting(layers: list[_Layer], wanted: Mapping[str, Any], kernels: tuple[int, ...], convention: str,
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


def _lokr_spec(layers: list[_Layer], cast: Any, seed: int, mixed: str) -> tuple[SuperLoRA, dict[str, Any]]:
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
        p = g.prefix
        if f1.structure == "dense":
            params[p + "k0_dense"] = _full(w1, f1.shape)
        elif f1.structure == "lora":
            params[p + "k0_A0"], params[p + "k0_A1"] = _pad(w1[0], R, 1), _pad(w1[1].T, R, 1)
        else:  # tucker with unit kernel modes: identity core, w1 = w1_a @ I @ w1_b
            import torch

            eye = torch.eye(R, dtype=w1[0].dtype, device=w1[0].device).reshape(R, R, *f1.shape[2:])
            params[p + "k0_core"], params[p + "k0_A0"], params[p + "k0_A1"] = eye, _pad(w1[0], R, 1), _pad(w1[1].T, R, 1)
        if f2.structure == "dense":
            params[p + "k1_dense"] = _full(w2, f2.shape)
        elif f2.structure == "lora":
            params[p + "k1_A0"], params[p + "k1_A1"] = _pad(w2[0], R, 1), _pad(w2[1].reshape(w2[1].shape[0], -1).T, R, 1)
        else:
            _, t2, wa, wb = w2
            params[p + "k1_core"], params[p + "k1_A0"], params[p + "k1_A1"] = _pad_core(t2, R), _pad(wa.T, R, 1), _pad(wb.T, R, 1)
    return _check(spec, params)


# ====================================================================== writing
def _torch(x: Any) -> Any:
    import numpy as np
    import torch

    from ..backends import backend_for

    if isinstance(x, torch.Tensor):
        return x.detach().contiguous()
    return torch.from_numpy(np.ascontiguousarray(backend_for(x).to_numpy(x)))


def _alpha(spec: SuperLoRA, name: str, r: int, like: Any) -> Any:
    """alpha such that LyCORIS's alpha / r is the target's scale; the spec's own alpha when r is its rank."""
    import torch

    c = spec.config
    if c["alpha"] is not None and (c["scale"] or {}).get(name, 1.0) == 1.0 and r == spec.rank_ref:
        value = float(c["alpha"])
    else:
        value = spec.target_scale(name) * r
    return torch.tensor(value, dtype=torch.float32)


def to_lycoris(spec: Any, params: Mapping[str, Any] | None = None, path: Any = None, *, prefix: str = "lycoris",
               dtype: Any = None) -> dict[str, Any]:
    """A LoRA, LoKr or LoHa spec's parameters as a LyCORIS state dict; saved to ``path`` (.safetensors) if given.

    ``spec`` may be an ``AdaptedModel`` (then ``params`` defaults to its adapter). Keys are
    ``lycoris_module_name(target, prefix) + "." + leaf``; targets already named with a LyCORIS
    prefix keep their name. Each module gets the tensors LyCORIS's own module of that layer
    holds, so its forward is the spec's dW: LoKr factors LyCORIS would hold as full matrices at
    that rank are written as their exact products (with alpha / r folded in when both are full,
    since LyCORIS then forces scale 1).
    """
    if hasattr(spec, "spec") and hasattr(spec, "adapter"):
        params = dict(spec.adapter) if params is None else params
        spec = spec.spec
    if not isinstance(spec, SuperLoRA):
        raise SpecError("spec", type(spec).__name__, "a SuperLoRA spec (with params) or an AdaptedModel")
    if params is None:
        raise SpecError("params", None, "the spec's parameters (name -> array)")
    if prefix not in PREFIXES:
        raise SpecError("prefix", prefix, f"one of {PREFIXES}")
    kind = spec.identify()
    if kind not in ("lora", "lokr", "loha"):
        raise SpecError("spec", kind, "a LoRA, LoKr or LoHa spec (convert others first, e.g. reductions.to_lora_spec)")
    import torch

    tp = {k: _torch(v) for k, v in params.items()}
    if dtype is not None:
        tp = {k: v.to(dtype) for k, v in tp.items()}
    state: dict[str, Any] = {}
    for g in spec.groups:
        target = spec._by_name[g.segments[0].target]
        key = lycoris_module_name(target.name, prefix)
        out = {"lora": _write_lora, "lokr": _write_lokr, "loha": _write_loha}[kind](spec, g, target, tp)
        for leaf, value in out.items():
            state[f"{key}.{leaf}"] = value.contiguous()
    if path is not None:
        from safetensors.torch import save_file

        save_file(state, os.fspath(path))
    del torch
    return state


def _write_lora(spec: SuperLoRA, g: Any, target: Any, tp: Mapping[str, Any]) -> dict[str, Any]:
    B, A = tp[f"{g.prefix}k0_A0"], tp[f"{g.prefix}k0_A1"]
    r = B.shape[1]
    shape = target.shape
    up = B if len(shape) == 2 else B.reshape(shape[0], r, *(1,) * (len(shape) - 2))
    down = A.T if len(shape) == 2 else A.T.reshape(r, *shape[1:])
    return {"lora_up.weight": up, "lora_down.weight": down, "alpha": _alpha(spec, target.name, r, B)}


def _write_loha(spec: SuperLoRA, g: Any, target: Any, tp: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    p = g.prefix
    R = max(f.ranks[0] for f in g.factors)
    for k, f in enumerate(g.factors):
        A0, A1 = tp[f"{p}k{k}_A0"], tp[f"{p}k{k}_A1"]
        if f.structure == "tucker":
            out[f"hada_t{k + 1}"] = _pad_core(tp[f"{p}k{k}_core"], R)
            out[f"hada_w{k + 1}_a"], out[f"hada_w{k + 1}_b"] = _pad(A0, R, 1).T, _pad(A1, R, 1).T
        else:
            out[f"hada_w{k + 1}_a"], out[f"hada_w{k + 1}_b"] = _pad(A0, R, 1), _pad(A1, R, 1).T
    out["alpha"] = _alpha(spec, target.name, R, A0)
    return out


def _write_lokr(spec: SuperLoRA, g: Any, target: Any, tp: Mapping[str, Any]) -> dict[str, Any]:
    """LyCORIS's module for this layer: its dense/low-rank choice replayed (``make_module_from_state_dict``)."""
    import torch

    f1, f2 = g.factors
    p = g.prefix
    kernel = tuple(target.shape[2:])
    a, c = f1.shape[:2]
    b, d = f2.shape[0], target.matrix_shape[1] // (c * math.prod(kernel))
    tucker = f2.structure == "tucker"
    R = max((f.ranks[0] for f in (f1, f2) if f.structure != "dense"), default=1)
    # LyCORIS's LokrModule keeps w2 low-rank (or Tucker) only when r < max(b, d) / 2, and w1 low-rank
    # (decompose_both) only when r < max(a, c) / 2; otherwise it holds the full matrix, written here exactly
    w2_low = f2.structure != "dense" and R < max(b, d) / 2
    w1_low = f1.structure != "dense" and R < max(a, c) / 2
    scale = spec.target_scale(target.name)
    out: dict[str, Any] = {}
    if w1_low:
        A0, A1 = tp[p + "k0_A0"], tp[p + "k0_A1"]
        if f1.structure == "tucker":  # w1 = A0 core A1^T: the core joins w1_a
            A0 = A0 @ tp[p + "k0_core"].reshape(f1.ranks[0], f1.ranks[1])
        out["lokr_w1_a"], out["lokr_w1_b"] = _pad(A0, R, 1), _pad(A1, R, 1).T
    else:
        out["lokr_w1"] = _dense_factor(f1, p + "k0_", tp).reshape(a, c)
    if w2_low and tucker:
        out["lokr_t2"] = _pad_core(tp[p + "k1_core"], R)
        out["lokr_w2_a"], out["lokr_w2_b"] = _pad(tp[p + "k1_A0"], R, 1).T, _pad(tp[p + "k1_A1"], R, 1).T
    elif w2_low:
        out["lokr_w2_a"], out["lokr_w2_b"] = _pad(tp[p + "k1_A0"], R, 1), _pad(tp[p + "k1_A1"], R, 1).T
    else:
        w2 = _dense_factor(f2, p + "k1_", tp).reshape(b, d, *kernel)
        out["lokr_w2"] = w2 if w1_low or scale == 1.0 else w2 * scale  # both full: LyCORIS's scale is 1, ours goes into w2
    if w1_low or w2_low:
        out["alpha"] = _alpha(spec, target.name, R, out.get("lokr_w1_a", out.get("lokr_w2_a")))
    else:  # LyCORIS reads lora_dim 1 and alpha 1 for two full matrices (what its own load-and-save writes)
        out["alpha"] = torch.tensor(1.0, dtype=torch.float32)
    return out


def _dense_factor(f: Any, p: str, tp: Mapping[str, Any]) -> Any:
    """A factor's full tensor (dense as stored; lora A0 A1^T; tucker core x A0 x A1, identity kernel modes)."""
    import torch

    if f.structure == "dense":
        return tp[p + "dense"]
    if f.structure == "lora":
        return tp[p + "A0"] @ tp[p + "A1"].T
    core = tp[p + "core"]
    return torch.einsum("ij...,pi,rj->pr...", core, tp[p + "A0"], tp[p + "A1"])
