"""``SuperLoRA``: the spec users build, the value (:class:`~superlora_tn.spec.SpecValue`) plus the
operations on it, at the top of the core layers.

The value and its plan sit at the bottom and import nothing above them; this subclass adds what
runs arrays (``init``, ``contract``), what describes (``summary``, ``draw``) and what recognises
(``identify``), each a one-line delegation to the layer that does the work. Every spec the
library builds (the constructor, ``from_dict``, ``replace``, the variants) is a ``SuperLoRA``.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (8, 8)}, rank=2)
>>> spec.contract(backend="numpy")["w"].shape, spec.identify(), type(spec.replace(rank=4)).__name__
((8, 8), 'lora', 'SuperLoRA')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .backends import Backend, get_backend
from .draw import draw
from .execute import contract
from .init import init_params
from .plan import Plan
from .spec import SpecValue
from .summary import summary

__all__ = ["SuperLoRA"]


class SuperLoRA(SpecValue):
    __doc__ = SpecValue.__doc__

    def plan(self, backend: str | Backend | None = None) -> Plan:
        """The cached contraction plan (opt_einsum expressions, one per batch of identical groups);
        ``backend``, if given, must name an installed backend (the plan itself is backend-neutral)."""
        if backend is not None:
            get_backend(backend)
        return super().plan()

    def init(self, backend: str | Backend = "numpy", *, seed: int | None = None, zero_init: Any = True,
             dtype: Any = None, device: Any = None) -> dict[str, Any]:
        """Seeded initial parameters, name -> array; dW == 0 exactly when ``zero_init`` is True.

        ``zero_init``: True (zero each group's default block), False (all random), or an
        iterable of parameter names to zero (at most one per group: two make a dead adapter).
        Values are drawn in NumPy float64 and converted, identical on every backend.
        """
        return init_params(self, backend, seed=seed, zero_init=zero_init, dtype=dtype, device=device)

    def contract(self, params: Mapping[str, Any] | None = None, *, backend: str | Backend | None = None,
                 dtype: Any = None, out: Any = None) -> dict[str, Any]:
        """dW per target, name -> array of the target's shape.

        Without ``params``, contracts seeded random NON-zero parameters (for checking identities)
        on ``backend`` (default numpy). With ``params``, the array type picks the backend unless
        ``backend`` forces one. ``out``: buffers to write dW into (a mapping name -> array of
        the target's shape, or one 1-D array of ``num_entries``, dW_all in target order), e.g.
        for merging; the returned dict holds those buffers (not differentiable).
        """
        return contract(self, params, backend=backend, dtype=dtype, out=out)

    def summary(self) -> str:
        """Per-group table: fold, splits, structure, equation, params, FLOPs, largest intermediate."""
        return summary(self)

    def draw(self, group: int = 0, path: Any = None) -> Any:
        """Draw group ``group``'s tensor network (matplotlib Figure); save it to ``path`` (.png/.svg) if given."""
        return draw(self, group, path)

    def identify(self) -> str:
        """The named variant this spec reduces to ("lora", "lokr", ...), else "superlora"."""
        # the one import taken at call time: the registry's variants build SuperLoRAs, so this
        # class and the registry need each other (docs/design.md §4)
        from .reductions import identify

        return identify(self)
