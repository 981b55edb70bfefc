"""Saving and loading an adapter: ``adapter_model.safetensors`` + ``adapter_config.json``.

The JSON holds ``format`` ("superlora_tn.adapter"), ``version``, the spec (``spec.to_dict()``),
each target's layer kind, the heads saved with it, the SHA-256 and byte size of the tensor file,
and ``config_sha256``, the SHA-256 of every other field of the JSON (canonical form), so a
truncated or corrupted tensor file and an edited spec (alpha, seed, shuffle, target order...) are
both refused before anything is loaded. (A config without ``config_sha256``, written before it
existed, is read with the tensor file's checks only.) Tensors are stored as
``adapter.<param name>`` and ``heads.<module>.<param>`` in their own dtype: a round trip is
bit-exact.

Saving is atomic: both files are written to temporary files in the target directory and moved
into place with ``os.replace`` only once both are complete, so a failed save leaves an adapter
already in that directory untouched. Loading checks the files, the spec, every tensor's name,
shape and dtype, and every head against the model before it injects or copies anything: a
refused load leaves the model as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import SpecError
from ..facade import SuperLoRA
from .sharding import full_tensor, writes_files

if TYPE_CHECKING:
    from .model import AdaptedModel

__all__ = ["ADAPTER_FORMAT", "ADAPTER_VERSION", "CONFIG_NAME", "WEIGHTS_NAME", "check_tensors", "copy_values", "load_into", "read",
           "save", "spec_diff"]

ADAPTER_FORMAT = "superlora_tn.adapter"
ADAPTER_VERSION = 1
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of the config's fields except ``config_sha256`` itself, in canonical JSON."""
    body = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@contextlib.contextmanager
def _temporary(directory: Path, name: str) -> Iterator[Path]:
    """A temporary file next to ``directory / name`` (same file system, so ``os.replace`` is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save(adapted: AdaptedModel, path: Any) -> Path:
    """Write the adapter (and heads) of ``adapted`` into directory ``path`` atomically; returns it.

    Sharded with FSDP2, every rank must call it (the shards are gathered); rank 0 writes.
    """
    from safetensors.torch import save_file

    out = Path(path)
    tensors = {f"adapter.{name}": full_tensor(p.detach()).cpu().contiguous() for name, p in adapted.adapter.items()}
    modules = dict(adapted.base_model.named_modules())
    for head in adapted.head_names:
        for pname, p in modules[head].state_dict().items():
            tensors[f"heads.{head}.{pname}"] = full_tensor(p.detach()).cpu().contiguous()
    if not writes_files(adapted.adapter.values()):  # FSDP2: every rank gathered, rank 0 writes
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError("path", str(out), f"a directory that can be created and written ({exc.strerror})") from None
    config: dict[str, Any] = {
        "format": ADAPTER_FORMAT,
        "version": ADAPTER_VERSION,
        "spec": adapted.spec.to_dict(),
        "layers": {name: info.kind for name, info in adapted.layers.items()},
        "modules_to_save": list(adapted.head_names),
        "merged": adapted.merged,
        "dropout": adapted.dropout,
    }
    try:
        json.dumps(config)  # fails here, before any file is written, if anything is not JSON-ready
    except (TypeError, ValueError) as exc:
        raise SpecError("spec", adapted.spec.config, f"JSON-ready values ({exc})") from None
    try:
        with _temporary(out, WEIGHTS_NAME) as tmp_weights, _temporary(out, CONFIG_NAME) as tmp_config:
            save_file(tensors, str(tmp_weights), metadata={"format": ADAPTER_FORMAT, "version": str(ADAPTER_VERSION)})
            config["files"] = {WEIGHTS_NAME: {"sha256": _sha256(tmp_weights), "bytes": tmp_weights.stat().st_size}}
            config["config_sha256"] = _config_digest(config)
            tmp_config.write_text(json.dumps(config, indent=1))
            os.replace(tmp_weights, out / WEIGHTS_NAME)
            os.replace(tmp_config, out / CONFIG_NAME)
    except OSError as exc:
        raise SpecError("path", str(out), f"a writable directory ({exc.strerror}); any adapter there is unchanged") from None
    return out


def read(path: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checked config and tensors of a saved adapter (SpecError on anything wrong)."""
    from safetensors.torch import load_file

    src = Path(path)
    cfg_path, weights = src / CONFIG_NAME, src / WEIGHTS_NAME
    for f in (cfg_path, weights):
        if not f.is_file():
            raise SpecError("adapter path", str(f), f"a directory written by AdaptedModel.save ({CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(CONFIG_NAME, str(cfg_path), f"valid JSON (the file is truncated or corrupted: {exc})") from None
    if not isinstance(config, dict) or config.get("format") != ADAPTER_FORMAT:
        raise SpecError("format", config.get("format") if isinstance(config, dict) else config, f'"{ADAPTER_FORMAT}"')
    if config.get("version") != ADAPTER_VERSION:
        raise SpecError("version", config.get("version"), f"{ADAPTER_VERSION} (the adapter format this library reads)")
    for key, kind in (("spec", dict), ("layers", dict), ("files", dict)):
        if not isinstance(config.get(key), kind):
            raise SpecError(f"{CONFIG_NAME}[{key!r}]", config.get(key), f"a {kind.__name__} as AdaptedModel.save writes it")
    mts = config.get("modules_to_save")
    if mts is not None and not (isinstance(mts, list) and all(isinstance(m, str) for m in mts)):
        raise SpecError(f"{CONFIG_NAME}['modules_to_save']", mts, "a list of module names")
    expected = config["files"].get(WEIGHTS_NAME)
    if not isinstance(expected, dict):
        raise SpecError(f"{CONFIG_NAME}['files']", config["files"], f"a record of {WEIGHTS_NAME} (bytes, sha256)")
    digest = config.get("config_sha256")
    if digest is not None and digest != _config_digest(config):
        raise SpecError(CONFIG_NAME, str(cfg_path), "the config as AdaptedModel.save wrote it (its config_sha256 does "
                                                    "not match: a field such as the spec was edited)")
    size = weights.stat().st_size
    if expected.get("bytes") != size:
        raise SpecError(WEIGHTS_NAME, f"{size} bytes", f"{expected.get('bytes')} bytes as recorded (the file is truncated or corrupted)")
    digest = _sha256(weights)
    if expected.get("sha256") != digest:
        raise SpecError(WEIGHTS_NAME, f"sha256 {digest[:16]}...", f"sha256 {str(expected.get('sha256'))[:16]}... (the file is corrupted)")
    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise SpecError(WEIGHTS_NAME, str(weights), f"a readable safetensors file ({exc})") from None
    return config, tensors


def spec_diff(a: SuperLoRA, b: SuperLoRA) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    diff = []
    if da["targets"] != db["targets"]:
        ta, tb = dict((n, tuple(s)) for n, s in da["targets"]), dict((n, tuple(s)) for n, s in db["targets"])
        names = [n for n in dict.fromkeys([*ta, *tb]) if ta.get(n) != tb.get(n)]
        diff += [f"targets[{n!r}]: {ta.get(n)} vs {tb.get(n)}" for n in names[:4]] or ["target order"]
    diff += [f"{k}: {da['config'].get(k)!r} vs {db['config'].get(k)!r}"
             for k in dict.fromkeys([*da["config"], *db["config"]]) if da["config"].get(k) != db["config"].get(k)]
    return diff


Heads = dict[str, dict[str, torch.Tensor]]


def check_tensors(spec: SuperLoRA, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
                   model: nn.Module, adapter_dtype: torch.dtype | None) -> tuple[dict[str, torch.Tensor], Heads]:
    """(adapter params, heads' states) of a saved adapter, every name, shape and dtype checked
    against ``spec`` and ``model``: a SpecError here means nothing has been touched."""
    expected = spec.param_shapes
    params: dict[str, torch.Tensor] = {}
    heads: Heads = {}
    for key, value in tensors.items():
        if key.startswith("adapter."):
            params[key[len("adapter."):]] = value
        elif key.startswith("heads."):
            head, pname = _split_head(key, config)
            heads.setdefault(head, {})[pname] = value
        else:
            raise SpecError(WEIGHTS_NAME, key, "tensors named adapter.<param> or heads.<module>.<param>")
    if params.keys() != expected.keys():
        missing, extra = sorted(set(expected) - set(params))[:5], sorted(set(params) - set(expected))[:5]
        raise SpecError("adapter", f"missing {missing}, unexpected {extra}", f"exactly the spec's parameters {list(expected)[:5]}...")
    dtypes = {v.dtype for v in params.values()}
    dtype = adapter_dtype if adapter_dtype is not None else next(iter(params.values())).dtype
    for name, value in params.items():
        if tuple(value.shape) != expected[name]:
            raise SpecError(f"adapter[{name!r}]", f"saved shape {tuple(value.shape)}", f"the spec's shape {expected[name]}")
        if len(dtypes) > 1 or value.dtype != dtype or not value.dtype.is_floating_point:
            own = ", the adapter_dtype of this model" if adapter_dtype else ""
            raise SpecError(f"adapter[{name!r}]", f"dtype {value.dtype}", f"one floating dtype for every parameter ({dtype}{own})")
    modules = dict(model.named_modules())
    for head in config.get("modules_to_save") or []:
        module = modules.get(head)
        if module is None:
            raise SpecError("modules_to_save", head, "a module of this model (the saved head is missing)")
        own, state = module.state_dict(), heads.get(head, {})
        if own.keys() != state.keys():
            missing, extra = sorted(set(own) - set(state))[:4], sorted(set(state) - set(own))[:4]
            raise SpecError(f"heads[{head!r}]", f"missing {missing}, unexpected {extra}", "every tensor of the model's head, nothing else")
        for pname, value in state.items():
            shape = tuple(own[pname].shape)
            if shape != tuple(value.shape):
                raise SpecError(f"heads[{head!r}].{pname}", f"saved shape {tuple(value.shape)}", f"the model's shape {shape}")
    return params, heads


def copy_values(adapted: AdaptedModel, params: Mapping[str, torch.Tensor], heads: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Copy checked values in (after ``_check_tensors``: nothing here can refuse)."""
    modules = dict(adapted.base_model.named_modules())
    with torch.no_grad():
        remerge = adapted.merged
        if remerge:
            adapted.unmerge()
        for name, value in params.items():
            adapted.adapter[name].copy_(value)
        for head, state in heads.items():
            modules[head].load_state_dict(dict(state), strict=True)
        if remerge:
            adapted.merge()


def _split_head(key: str, config: Mapping[str, Any]) -> tuple[str, str]:
    rest = key[len("heads."):]
    for head in sorted(config.get("modules_to_save") or [], key=len, reverse=True):
        if rest.startswith(head + "."):
            return head, rest[len(head) + 1:]
    raise SpecError("heads", key, f"a tensor of a saved head ({config.get('modules_to_save')})")


def load_into(adapted: AdaptedModel, path: Any) -> None:
    """Load a saved adapter into an existing ``AdaptedModel`` whose spec must be the saved one."""
    config, tensors = read(path)
    saved = SuperLoRA.from_dict(config["spec"])
    if saved != adapted.spec:
        raise SpecError("spec", spec_diff(saved, adapted.spec)[:6], "the spec the adapter was saved with (saved vs this model)")
    params, heads = check_tensors(saved, config, tensors, adapted.base_model, adapted.adapter_dtype)
    copy_values(adapted, params, heads)
