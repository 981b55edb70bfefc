"""A spec to and from a JSON-ready dict (for saved adapters and the CLI's spec files).

>>> import superlora_tn as slt
>>> spec = slt.SuperLoRA({"w": (8, 8)}, rank=2, projection=None)
>>> slt.SuperLoRA.from_dict(spec.to_dict()) == spec
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config import PerFactor
from .errors import SpecError
from .projection import Fastfood, Gaussian, Projection
from .validate import plain

if TYPE_CHECKING:
    from .spec import SpecValue

__all__ = ["FORMAT_VERSION", "projection_from_dict", "projection_to_dict", "read_spec_dict", "spec_to_dict"]

FORMAT_VERSION = 1
_PROJECTIONS: dict[str, type[Projection]] = {"fastfood": Fastfood, "gaussian": Gaussian}


def _jsonable(value: Any) -> Any:
    if isinstance(value, PerFactor):  # a per-factor list must not read back as a per-mode tuple
        return {"per_factor": [_jsonable(v) for v in value]}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return plain(value)


def projection_to_dict(p: Projection | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"kind": type(p).__name__.lower(), "ratio": p.ratio, "seed": p.seed}


def projection_from_dict(d: Mapping[str, Any] | None) -> Projection | None:
    if d is None:
        return None
    kind = d.get("kind")
    if kind not in _PROJECTIONS:
        raise SpecError("projection.kind", kind, f"one of {sorted(_PROJECTIONS)}")
    return _PROJECTIONS[kind](ratio=d.get("ratio", 1.0), seed=d.get("seed"))


def spec_to_dict(spec: SpecValue) -> dict[str, Any]:
    """The spec's targets and canonical arguments as plain JSON types (``json.dumps`` accepts it)."""
    config = {key: projection_to_dict(value) if key == "projection" else _jsonable(value) for key, value in spec.config.items()}
    return {
        "format": "superlora_tn.spec",
        "version": FORMAT_VERSION,
        "targets": [[t.name, list(t.shape)] for t in spec.targets],
        "config": config,
    }


def read_spec_dict(data: Mapping[str, Any], allowed: tuple[str, ...]) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The targets and keyword arguments ``spec_to_dict`` wrote; SpecError naming the key for anything malformed.

    ``allowed``: the argument names a spec takes (``SPEC_ARGUMENTS``).
    """
    if not isinstance(data, Mapping):
        raise SpecError("spec", type(data).__name__, "a dict written by SuperLoRA.to_dict()")
    if data.get("format") != "superlora_tn.spec":
        raise SpecError("format", data.get("format"), '"superlora_tn.spec"')
    if data.get("version") != FORMAT_VERSION:
        raise SpecError("version", data.get("version"), f"{FORMAT_VERSION} (this library's spec format)")
    targets, config = data.get("targets"), data.get("config")
    if not isinstance(targets, list) or not all(isinstance(t, list | tuple) and len(t) == 2 for t in targets):
        raise SpecError("spec['targets']", targets, "a list of [name, shape] pairs")
    if not isinstance(config, Mapping):
        raise SpecError("spec['config']", config, "a mapping of SuperLoRA arguments")
    unknown = sorted(str(k) for k in config if k not in allowed)
    if unknown:
        raise SpecError("spec['config']", unknown, f"SuperLoRA arguments: {', '.join(allowed)}")
    config = dict(config)
    projection = config.get("projection")
    if projection is not None and not isinstance(projection, Mapping):
        raise SpecError("spec['config']['projection']", projection, 'null or {"kind": ..., "ratio": ..., "seed": ...}')
    config["projection"] = projection_from_dict(projection)
    fold = config.get("fold")
    config["fold"] = tuple(fold) if isinstance(fold, list) else fold
    for key in ("rank", "structure"):
        value = config.get(key)
        if isinstance(value, Mapping):
            if not isinstance(value.get("per_factor"), list):
                raise SpecError(f"spec['config'][{key!r}]", value, '{"per_factor": [...]}, a list, or a single value')
            config[key] = [tuple(v) if isinstance(v, list) else v for v in value["per_factor"]]
        elif isinstance(value, list):
            config[key] = tuple(value)
    modes = config.get("identity_modes") or ()
    config["identity_modes"] = tuple(modes) if isinstance(modes, list | tuple) else modes
    groups = config.get("groups")
    if isinstance(groups, list):
        config["groups"] = [list(g) if isinstance(g, list | tuple) else g for g in groups]
    pairs = []
    for name, shape in targets:
        pairs.append((name, tuple(shape) if isinstance(shape, list | tuple) else shape))
    return pairs, config
