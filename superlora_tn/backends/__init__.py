"""Backend registry: pick a backend by name or by array type; load each one lazily.

Built-in backends are numpy, torch and jax. A third party adds one by declaring an entry point
in the group ``superlora_tn.backends`` (``name = "package.module:BackendClass"``), the class
implementing :class:`~superlora_tn.backends.base.Backend`. There is no global "current"
backend: each call names one or passes arrays that imply one.

>>> get_backend("numpy").name
'numpy'
>>> import numpy as np
>>> backend_for(np.zeros(2)).name
'numpy'
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache, lru_cache
from importlib.metadata import entry_points
from typing import Any

from ..errors import SpecError
from .base import Backend

__all__ = ["Backend", "available_backends", "backend_for", "get_backend", "known_backends", "resolve_backend"]

ENTRY_POINT_GROUP = "superlora_tn.backends"

_BUILTIN = {
    "numpy": ("superlora_tn.backends.numpy_backend:NumpyBackend", "numpy"),
    "torch": ("superlora_tn.backends.torch_backend:TorchBackend", "torch"),
    "jax": ("superlora_tn.backends.jax_backend:JaxBackend", "jax"),
}


@lru_cache(maxsize=1)
def _registry() -> dict[str, tuple[str, str | None]]:
    """name -> (import path, framework module); built-ins first, then entry points."""
    table: dict[str, tuple[str, str | None]] = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, (ep.value, None))
    return table


def known_backends() -> list[str]:
    """Every registered backend name, installed or not."""
    return list(_registry())


def available_backends() -> list[str]:
    """Registered backends whose framework is importable here (nothing is imported)."""
    names = []
    for name, (_, framework) in _registry().items():
        if framework is None or importlib.util.find_spec(framework) is not None:
            names.append(name)
    return names


@cache
def _load(name: str) -> Backend:
    path, _ = _registry()[name]
    module, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    backend = cls()
    if not isinstance(backend, Backend):
        raise TypeError(f"{path} is not a superlora_tn Backend")
    return backend


def get_backend(name: str | Backend) -> Backend:
    """The backend called ``name`` (``"numpy"``, ``"torch"``, ``"jax"`` or a registered one)."""
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str) or name not in _registry():
        raise SpecError("backend", name, f"one of the installed backends {available_backends()}")
    try:
        return _load(name)
    except ImportError as exc:
        raise SpecError("backend", name, f"an installed backend {available_backends()} ({exc})") from None


def backend_for(array: Any) -> Backend:
    """The backend whose array type ``array`` is (only already-imported frameworks are tried).

    The answer is memoised per array type (it is on the hot path of every ``contract`` call).
    """
    cls = type(array)
    found = _by_type.get(cls)
    if found is not None:
        return found
    for name, (_, framework) in _registry().items():
        if framework is not None and framework not in sys.modules:
            continue
        try:
            backend = _load(name)
        except ImportError:
            continue
        if backend.is_array(array):
            _by_type[cls] = backend
            return backend
    raise SpecError("params", cls.__name__, f"arrays of an installed backend {available_backends()}")


def resolve_backend(backend: str | Backend | None, like: Any) -> Backend:
    """The backend a public call runs on, resolved once at the entry: the one named (or given),
    else the one ``like``'s array type implies. Everything below takes the ``Backend`` itself.

    >>> import numpy as np
    >>> resolve_backend(None, np.zeros(2)).name, resolve_backend("numpy", None).name
    ('numpy', 'numpy')
    """
    return get_backend(backend) if backend is not None else backend_for(like)


#: array type -> backend, filled by ``backend_for`` (a memo, never a "current backend")
_by_type: dict[type, Backend] = {}
