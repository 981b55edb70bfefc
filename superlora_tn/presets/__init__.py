"""Where targets come from: model presets (shapes only), JSON/YAML files and safetensors headers.

Presets are JSON files shipped in this package (``vit-b16``, ``gpt2-medium``, ``llama-7b``,
``llama-70b``): per-layer attention and MLP weight names and (out, in) shapes. Each names a
default selection, the attention query and value weights that LoRA papers adapt.

>>> targets = preset_targets("llama-70b")
>>> len(targets), targets["model.layers.0.self_attn.v_proj.weight"]
(160, (1024, 8192))
>>> len(preset_targets("vit-b16", "all"))
72
>>> list(map(len, group_by_kind(preset_targets("vit-b16"))))
[12, 12]
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SpecError

__all__ = [
    "Preset",
    "checkpoint_targets",
    "file_targets",
    "group_by_kind",
    "list_presets",
    "load_preset",
    "preset_targets",
    "select_targets",
]

Targets = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Preset:
    """A model's adaptable weights: name -> (out, in), in model traversal order."""

    name: str
    description: str
    default_targets: str
    targets: Targets


def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def load_preset(name: str) -> Preset:
    """The preset called ``name``, its per-layer templates expanded for every layer."""
    if name not in list_presets():
        raise SpecError("preset", name, f"one of {list_presets()}")
    data = json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
    targets: Targets = {}
    for i in range(data["layers"]):
        for template, shape in data["per_layer"]:
            targets[template.format(i=i)] = tuple(shape)
    return Preset(data["name"], data["description"], data["default_targets"], targets)


def select_targets(targets: Mapping[str, tuple[int, ...]], pattern: str | None) -> Targets:
    """Targets whose name matches the regex ``pattern`` (``re.search``); ``"all"`` or None keeps all."""
    if pattern is None or pattern == "all":
        return dict(targets)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise SpecError("targets", pattern, f"a valid regular expression ({exc})") from None
    chosen = {k: v for k, v in targets.items() if regex.search(k)}
    if not chosen:
        sample = ", ".join(list(targets)[:3])
        raise SpecError("targets", pattern, f"a regex matching at least one weight name (such as {sample})")
    return chosen


def preset_targets(name: str, pattern: str | None = "default") -> Targets:
    """A preset's targets filtered by ``pattern`` ("default": its attention q, v selection)."""
    preset = load_preset(name)
    return select_targets(preset.targets, preset.default_targets if pattern == "default" else pattern)


def _read_structured(path: Path) -> Any:
    if not path.is_file():
        raise SpecError("file", str(path), "an existing JSON or YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("file", str(path), f"a UTF-8 text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise SpecError("file", str(path), f"a readable file ({exc.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SpecError("file", str(path), "a JSON file (pyyaml is not installed for YAML)") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError("file", str(path), f"valid YAML ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError("file", str(path), f"valid JSON ({exc})") from None


def file_targets(path: str | Path) -> Targets:
    """Targets from a JSON/YAML file: ``{name: shape}``, ``{"targets": {...}}`` or a list of pairs.

    A saved spec (``spec.to_dict()``) is accepted too: its ``targets`` are used.
    """
    data = _read_structured(Path(path))
    if isinstance(data, Mapping) and "targets" in data:
        data = data["targets"]
    items = list(data.items()) if isinstance(data, Mapping) else data
    if not isinstance(items, list) or not items:
        raise SpecError("targets file", str(path), 'a mapping {"name": [out, in], ...} or a list of [name, shape] pairs')
    out: Targets = {}
    for item in items:
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], list | tuple)):
            raise SpecError("targets file", item, "[name, [out, in]] entries")
        out[str(item[0])] = tuple(item[1])
    return out


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """name -> shape from a safetensors file's JSON header; no tensor data is read."""
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise SpecError("checkpoint", str(path), "a safetensors file (too short for a header)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise SpecError("checkpoint", str(path), "a safetensors file (header length is implausible)")
        try:
            header = json.loads(fh.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SpecError("checkpoint", str(path), "a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise SpecError("checkpoint", str(path), "a safetensors file (its header is not a JSON object)")
    shapes = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        shape = v.get("shape") if isinstance(v, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise SpecError("checkpoint", f"{path}: {k!r}", 'a safetensors header entry {"dtype": ..., "shape": [ints], ...}')
        shapes[k] = tuple(shape)
    return shapes


def checkpoint_targets(path: str | Path, *, conv1d: bool = False) -> Targets:
    """Weight shapes (2-D and higher) of a safetensors file, or of every ``*.safetensors`` in a folder.

    Only the header is read (``safe_open`` when safetensors is installed, else the raw header).
    ``conv1d=True`` transposes 2-D shapes: GPT-2 style ``Conv1D`` weights are stored (in, out).
    """
    p = Path(path)
    files = sorted(p.glob("*.safetensors")) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        raise SpecError("checkpoint", str(path), "a .safetensors file or a folder containing some")
    shapes: Targets = {}
    for f in files:
        try:
            from safetensors import safe_open

            with safe_open(str(f), framework="numpy") as fh:
                found = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        except ImportError:
            found = _header_shapes(f)
        except Exception:  # safetensors raises its own error types for bad files
            found = _header_shapes(f)
        shapes.update(found)
    out = {k: (s[::-1] if conv1d and len(s) == 2 else s) for k, s in shapes.items() if len(s) >= 2}
    if not out:
        raise SpecError("checkpoint", str(path), "a checkpoint holding at least one 2-D weight")
    return out


def group_by_kind(targets: Mapping[str, Any]) -> list[list[str]]:
    """Explicit groups: targets whose names differ only in their digits (the layer index) go together.

    All queries in one group, all values in another: the LoTR-style grouping.
    """
    kinds: dict[str, list[str]] = {}
    for name in targets:
        kinds.setdefault(re.sub(r"\d+", "#", name), []).append(name)
    return list(kinds.values())
