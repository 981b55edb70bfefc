"""The facade: the operations a user calls on a spec, provided to the value from the top layer.

``SuperLoRA`` (superlora_tn/spec.py) is a value at the bottom of the layers and imports nothing
above it; it declares its operations (``spec.plan()``, ``spec.init()``, ``spec.contract()``,
``spec.summary()``, ``spec.draw()``, ``spec.identify()``) and delegates each to the
:class:`~superlora_tn.spec.Operations` installed here. ``import superlora_tn`` imports this
module, so every spec has its operations; the modules that implement them load on first use.

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (8, 8)}, rank=2)
>>> spec.contract(backend="numpy")["w"].shape, spec.identify()
((8, 8), 'lora')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .spec import provide_operations

if TYPE_CHECKING:
    from .plan import Plan
    from .spec import SuperLoRA

__all__ = ["SpecOperations"]


class SpecOperations:
    """The implementation of :class:`~superlora_tn.spec.Operations`: one delegation each, to the
    layer that does the work (plan, backends, execution, pictures, reductions)."""

    def plan(self, spec: SuperLoRA) -> Plan:
        from .plan import Plan

        return Plan(spec)

    def check_backend(self, backend: Any) -> None:
        from .backends import get_backend

        get_backend(backend)

    def init(self, spec: SuperLoRA, backend: Any, *, seed: int | None, zero_init: Any, dtype: Any,
             device: Any) -> dict[str, Any]:
        from .init import init_params

        return init_params(spec, backend, seed=seed, zero_init=zero_init, dtype=dtype, device=device)

    def contract(self, spec: SuperLoRA, params: Mapping[str, Any] | None, *, backend: Any, dtype: Any,
                 out: Any) -> dict[str, Any]:
        from .execute import contract

        return contract(spec, params, backend=backend, dtype=dtype, out=out)

    def summary(self, spec: SuperLoRA) -> str:
        from .summary import summary

        return summary(spec)

    def draw(self, spec: SuperLoRA, group: int, path: Any) -> Any:
        from .draw import draw

        return draw(spec, group, path)

    def identify(self, spec: SuperLoRA) -> str:
        from .reductions import identify

        return identify(spec)


provide_operations(SpecOperations())
