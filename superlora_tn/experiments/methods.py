"""The data-driven method table shared by all experiments.

Each :class:`Method` is a name, a family (one curve in the plot), a kind and, for SuperLoRA
settings, the keyword arguments of ``superlora_tn.SuperLoRA``. Task-dependent values are written
as placeholders and resolved against the task's :class:`TargetInfo`:

* ``"@layers"``  - the number of adapted layers (for ``groups=G`` with G = #layers),
* ``"@roles"``   - explicit groups, one per role (all queries, all values: LoTR),
* ``"@L"`` inside a rank tuple - the number of targets per role (LoTR's layer mode),
* ``("fastfood", rho)`` / ``("gaussian", rho)`` - a projection, built when the method runs,
* ``("fastfood_d", d)`` - a Fastfood projection whose generated size is exactly ``d`` for one
  group of all adapted entries (the random-subspace control, :func:`random_subspace`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ._adapter import (
    DeltaGenerator,
    DenseDelta,
    LoRAReference,
    SpecAdapter,
)

#: kinds that need no weight-update generator
NO_GENERATOR = {"zero-shot", "head", "bias"}


@dataclass(frozen=True)
class TargetInfo:
    """What a task adapts: target shapes (ordered), number of layers and role groups."""

    targets: OrderedDict[str, tuple[int, int]]
    layers: int
    roles: dict[str, list[str]]


@dataclass(frozen=True)
class Method:
    """One row of the comparison.

    Attributes:
        name: row label.
        family: plot curve it belongs to.
        kind: ``zero-shot`` (no training), ``head`` (train the head only), ``bias`` (biases
            only), ``full`` (dense dW of the adapted matrices), ``lora`` (LoRA through the
            SuperLoRA spec), ``lora_ref`` (the hand-written LoRA reference, a sanity check) or
            ``spec`` (any other SuperLoRA spec).
        spec: ``superlora_tn.SuperLoRA`` keyword arguments (with placeholders).
        quick: part of the ``--quick`` subset.
        lr: learning rate for this run (None: the task's default for the kind); the protocol
            sets it with ``dataclasses.replace(method, lr=...)``.
        steps: optimisation steps of this run, with the cosine schedule over them (None: the
            task's budget); set only for shortened tuning runs (``run(tune_steps=...)``).
    """

    name: str
    family: str
    kind: str
    spec: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    lr: float | None = None
    steps: int | None = None


def _lora(r: int, quick: bool = False) -> Method:
    spec = dict(groups="weight", fold="natural", order=2, splits=1, structure="lora", rank=r)
    return Method(f"LoRA r={r}", "LoRA", "lora", spec, quick)


def _grouped(
    order: int,
    groups: Any,
    rank: int,
    rho: float | None = None,
    shuffle: int | None = None,
    quick: bool = False,
) -> Method:
    structure = "lora" if order == 2 else "tucker"
    spec: dict[str, Any] = dict(
        groups=groups, fold="balanced", order=order, splits=1, structure=structure, rank=rank
    )
    g = "L" if groups == "@layers" else str(groups)
    name = f"SuperLoRA {order}-D G={g} r={rank}"
    family = f"SuperLoRA {order}-D" + (" Tucker" if order > 2 else "")
    if rho is not None:
        spec["projection"] = ("fastfood", rho)
        name += f" ff={rho:g}"
        family += " + fastfood"
    if shuffle is not None:
        spec["shuffle"] = shuffle
        name += " shuffled"
        family += " shuffled"
    return Method(name, family, "spec", spec, quick)


#: family of the random-subspace control
RANDOM_SUBSPACE = "random subspace"


def random_subspace(d: int, quick: bool = False) -> Method:
    """The intrinsic-dimension control (Li et al. 2018; Aghajanyan et al. 2020): ``d`` free
    parameters, zero at the start, mapped onto all adapted entries by one fixed Fastfood
    projection, the one the projected SuperLoRA settings use (``groups=1``).

    In SuperLoRA terms: one group, fold of order 1, one ``dense`` factor of ``d`` entries and
    ``projection=Fastfood(d / n)``; the spec counts exactly ``d`` parameters.

    >>> random_subspace(33).name, random_subspace(33).spec["projection"]
    ('random subspace d=33', ('fastfood_d', 33))
    """
    if int(d) < 1:
        raise ValueError(f"random_subspace needs d >= 1, got {d}")
    spec = dict(groups=1, fold="balanced", order=1, splits=1, structure="dense",
                projection=("fastfood_d", int(d)))
    return Method(f"{RANDOM_SUBSPACE} d={int(d)}", RANDOM_SUBSPACE, "subspace", spec, quick)


def all_methods() -> list[Method]:
    """The full method table, in report order."""
    methods = [
        Method("zero-shot", "baseline", "zero-shot", quick=True),
        Method("head only", "baseline", "head", quick=True),
        Method("biases only", "baseline", "bias", quick=True),
        _lora(1, quick=True),
        _lora(2),
        _lora(4),
        _lora(8),
        Method(
            "LoKr r=1",
            "LoKr",
            "spec",
            dict(groups="weight", fold="natural", order=2, splits=2,
                 structure=["dense", "lora"], rank=1),
        ),
        Method(
            "LoNKr r=1",
            "LoNKr",
            "spec",
            dict(groups="weight", fold="natural", order=2, splits=3,
                 structure=["dense", "dense", "lora"], rank=1),
        ),
        Method(
            "LoTR r=4",
            "LoTR",
            "spec",
            dict(groups="@roles", fold="stack", order=3, splits=1, structure="tucker",
                 rank=("@L", 4, 4), identity_modes=(0,)),
        ),
        _grouped(2, 1, 1, quick=True),  # quick: the settings competitive below LoRA r=1 in the full runs
        _grouped(2, "@layers", 1, quick=True),
        _grouped(3, 1, 4),
        _grouped(3, "@layers", 4),
        _grouped(4, 1, 4),
        _grouped(4, "@layers", 4),
        _grouped(3, 1, 16),  # larger ranks: can SuperLoRA reach LoRA r=2..8 with fewer params?
        _grouped(3, "@layers", 8),
        _grouped(2, 1, 1, rho=0.5),
        _grouped(2, 1, 1, rho=0.1),
        _grouped(2, 1, 1, rho=0.01),
        _grouped(3, 1, 2, rho=0.5),
        _grouped(3, 1, 2, rho=0.1),
        _grouped(3, 1, 2, rho=0.01, quick=True),
        _grouped(4, 1, 2, rho=0.5),
        _grouped(4, 1, 2, rho=0.1),
        _grouped(4, 1, 2, rho=0.01),
        _grouped(3, 1, 1, rho=0.01),
        _grouped(4, 1, 1, rho=0.01),
        _grouped(3, 1, 4, shuffle=0),
        Method("full FT (adapted W)", "full FT", "full", quick=True),
    ]
    return methods


def by_name(name: str) -> Method:
    """A method of the table, or a random subspace written ``random subspace d=<int>``."""
    for m in all_methods():
        if m.name == name:
            return m
    prefix = f"{RANDOM_SUBSPACE} d="
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return random_subspace(int(name[len(prefix):]))
    valid = sorted(m.name for m in all_methods())
    raise ValueError(f"unknown method {name!r}; valid: {valid} or '{prefix}<int>'")


def select(quick: bool = False, names: list[str] | None = None) -> list[Method]:
    """Methods to run: the quick subset or all, or the named ones (table order, then random
    subspaces in the order given)."""
    if names is None:
        return [m for m in all_methods() if (m.quick or not quick)]
    wanted = [by_name(n) for n in names]  # raises on an unknown name
    table = [m for m in all_methods() if m.name in names]
    return table + [m for m in wanted if m.kind == "subspace"]


def resolve_spec(spec: dict[str, Any], info: TargetInfo) -> dict[str, Any]:
    """Replace placeholders of a spec dict by the task's values."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, tuple) and value and value[0] == "fastfood_d":
            import superlora_tn

            entries = sum(o * i for o, i in info.targets.values())
            if not 1 <= value[1] <= entries:
                raise ValueError(f"a random subspace needs 1 <= d <= {entries} (adapted entries), got {value[1]}")
            value = superlora_tn.Fastfood(value[1] / entries)
        elif value == "@layers":
            value = info.layers
        elif value == "@roles":
            value = [list(names) for names in info.roles.values()]
        elif isinstance(value, tuple) and value and value[0] in ("fastfood", "gaussian"):
            import superlora_tn

            cls = superlora_tn.Fastfood if value[0] == "fastfood" else superlora_tn.Gaussian
            value = cls(value[1])
        elif isinstance(value, tuple):
            per_role = len(next(iter(info.roles.values())))
            value = tuple(per_role if v == "@L" else v for v in value)
        out[key] = value
    return out


def build_generator(method: Method, info: TargetInfo, seed: int) -> DeltaGenerator | None:
    """The weight-update generator of a method (None for head/bias/zero-shot)."""
    if method.kind in NO_GENERATOR:
        return None
    if method.kind == "full":
        return DenseDelta(info.targets)
    if method.kind == "lora_ref":
        return LoRAReference(info.targets, rank=int(method.spec["rank"]), seed=seed)
    return SpecAdapter(info.targets, **resolve_spec(method.spec, info), seed=seed)


def implementation(method: Method) -> str:
    """Which code path a method runs on (for the results table)."""
    return {"lora": "spec", "lora_ref": "reference", "spec": "spec", "subspace": "spec"}.get(method.kind, "torch")
