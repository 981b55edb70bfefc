"""JAX integration: a pure ``apply`` that returns the adapted parameter pytree (jit/grad-friendly).

>>> import jax, jax.numpy as jnp
>>> from superlora_tn import SuperLoRA
>>> from superlora_tn.jax import apply, init, targets_from_params
>>> base = {"dense": {"kernel": jnp.ones((8, 4)), "bias": jnp.zeros(4)}}     # flax layout (in, out)
>>> targets = targets_from_params(base, r"dense/kernel", layout="in_out")
>>> targets
{'dense/kernel': (4, 8)}
>>> spec = SuperLoRA(targets, rank=2)
>>> new = jax.jit(lambda b, a: apply(b, a, spec, layout="in_out"))(base, init(spec))
>>> new["dense"].get("kernel").shape
(8, 4)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import SpecError
from ..facade import SuperLoRA

__all__ = ["apply", "init", "targets_from_params", "to_kernel", "to_target"]

PathArg = str | Sequence[Any]
Layout = str  # "out_in" (torch convention, the spec's) or "in_out" (flax: (..spatial.., in, out))
_LAYOUTS = ("out_in", "in_out")


def init(spec: SuperLoRA, *, seed: int | None = None, zero_init: Any = True, dtype: Any = "float32") -> dict[str, Any]:
    """Initial adapter parameters as jax arrays: the same values as the torch and numpy backends."""
    return spec.init("jax", seed=seed, zero_init=zero_init, dtype=dtype)


def _path(name: str, paths: Mapping[str, PathArg] | None) -> tuple[Any, ...]:
    p = name if paths is None else paths.get(name, name)
    if isinstance(p, str):
        p = tuple(p.split("/"))
    elif isinstance(p, list | tuple):
        p = tuple(p)
    else:
        raise SpecError(f"paths[{name!r}]", p, 'a "a/b/kernel" string or a tuple of keys')
    if not p or not all(isinstance(k, str | int) and not isinstance(k, bool) and k != "" for k in p):
        raise SpecError(f"paths[{name!r}]", p, 'a non-empty "a/b/kernel" string or tuple of keys (str or int)')
    return p


def _index(node: Any, key: Any) -> int:
    """A list/tuple position from a path key: a non-negative integer below the length (no -1)."""
    try:
        i = int(key)
    except (TypeError, ValueError):
        raise IndexError(key) from None
    if not 0 <= i < len(node) or (isinstance(key, str) and not key.isdigit()):
        raise IndexError(key)
    return i


def _layout(name: str, layout: Layout | Mapping[str, Layout]) -> str:
    value = layout.get(name, "out_in") if isinstance(layout, Mapping) else layout
    if value not in _LAYOUTS:
        raise SpecError("layout", value, f"one of {_LAYOUTS} or a mapping target name -> one of them")
    return value


def to_target(kernel_shape: Sequence[int], layout: str) -> tuple[int, ...]:
    """The spec's target shape of a weight stored in ``layout``: (out, in, *spatial)."""
    shape = tuple(kernel_shape)
    if layout == "out_in" or len(shape) < 2:
        return shape
    return (shape[-1], shape[-2], *shape[:-2])


def to_kernel(delta: Any, layout: str) -> Any:
    """dW in the spec's (out, in, *spatial) layout moved to the weight's own layout."""
    if layout == "out_in" or delta.ndim < 2:
        return delta
    n = delta.ndim
    return delta.transpose((*range(2, n), 1, 0))


def _get(tree: Any, path: tuple[Any, ...], name: str) -> Any:
    node = tree
    for i, key in enumerate(path):
        try:
            node = node[key if not isinstance(node, Sequence) else _index(node, key)]
        except (KeyError, IndexError, TypeError, ValueError):
            raise SpecError(f"paths[{name!r}]", "/".join(map(str, path[: i + 1])),
                            "a path of keys that exists in base_params (list positions 0..len-1, no negative ones)") from None
    return node


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``tree`` with the leaf at ``path`` replaced (only the containers on the path are copied)."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(tree, Mapping):
        new = dict(tree)
        new[key] = _set(tree[key], rest, value)
        return type(tree)(new) if type(tree) is not dict else new
    if isinstance(tree, list | tuple):
        items = list(tree)
        i = _index(items, key)
        items[i] = _set(items[i], rest, value)
        return type(tree)(items) if type(tree) in (list, tuple) else type(tree)(*items)
    raise SpecError("paths", key, "dicts, lists or tuples along the path")


def apply(base_params: Any, adapter_params: Mapping[str, Any], spec: SuperLoRA,
          paths: Mapping[str, PathArg] | None = None, *, layout: Layout | Mapping[str, Layout] = "out_in") -> Any:
    """The adapted pytree: base_params with W + dW at every target's path. Pure: jit/grad/vmap-safe.

    Args:
        base_params: nested dicts / lists / tuples of arrays (e.g. a flax ``params`` dict).
        adapter_params: name -> array, the spec's parameters (``init(spec)``), the trained leaves.
        spec: the SuperLoRA spec; its target shapes are (out, in, *spatial).
        paths: target name -> path in ``base_params`` (a tuple of keys or an ``"a/b/kernel"``
            string); None, or a missing name, means the target name itself is the "/"-path.
        layout: ``"out_in"`` (torch / the spec's convention) or ``"in_out"`` (flax ``Dense`` kernel
            (in, out), ``Conv`` kernel (*spatial, in, out)); one for all or a mapping per target.
    """
    if not isinstance(spec, SuperLoRA):
        raise SpecError("spec", type(spec).__name__, "a SuperLoRA spec")
    if paths is not None and not isinstance(paths, Mapping):
        raise SpecError("paths", paths, "None or a mapping target name -> path")
    deltas = spec.contract(adapter_params)
    out = base_params
    for name, dw in deltas.items():
        path, lay = _path(name, paths), _layout(name, layout)
        w = _get(out, path, name)
        dk = to_kernel(dw, lay)
        if tuple(w.shape) != tuple(dk.shape):
            raise SpecError(f"base_params[{'/'.join(map(str, path))}]", f"shape {tuple(w.shape)}",
                            f"shape {tuple(dk.shape)} (target {name!r} {spec.target_shapes[name]} in layout {lay!r})")
        out = _set(out, path, w + dk.astype(w.dtype))
    return out


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _leaves(v, (*prefix, str(k)))
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            yield from _leaves(v, (*prefix, str(i)))
    elif hasattr(tree, "shape"):
        yield prefix, tree


def targets_from_params(base_params: Any, pattern: str, *, layout: Layout | Mapping[str, Layout] = "out_in",
                        exclude: str | None = None) -> dict[str, tuple[int, ...]]:
    """Targets for a spec: every leaf whose "/"-path fullmatches ``pattern`` -> its (out, in, ...) shape.

    Leaves with fewer than 2 dimensions are skipped (biases). The order is the pytree's order.
    """
    for field, regex in (("pattern", pattern), ("exclude", exclude)):
        if regex is None and field == "exclude":
            continue
        if not isinstance(regex, str):
            raise SpecError(field, regex, "a regular expression string")
        try:
            re.compile(regex)
        except re.error as exc:
            raise SpecError(field, regex, f"a valid regular expression ({exc})") from None
    found = {}
    for path, leaf in _leaves(base_params):
        name = "/".join(path)
        if len(leaf.shape) < 2 or not re.fullmatch(pattern, name) or (exclude and re.fullmatch(exclude, name)):
            continue
        found[name] = to_target(leaf.shape, _layout(name, layout))
    if not found:
        sample = ["/".join(p) for p, leaf in _leaves(base_params) if len(leaf.shape) >= 2][:4]
        raise SpecError("pattern", pattern, f"a regex fullmatching at least one weight path, such as {sample}")
    return found
