"""Malformed saved specs, adapters and injection arguments get SpecErrors, never raw exceptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import superlora_tn as slt

SPEC = slt.SuperLoRA({"a": (4, 4)}, rank=2)
D = SPEC.to_dict()

FROM_DICT_CASES = [
    ([], "to_dict"),
    ({**D, "config": None}, "config"),
    ({**D, "config": {**D["config"], "ranks": 2}}, "ranks"),
    ({**D, "targets": [["a"]]}, "targets"),
    ({**D, "config": {**D["config"], "rank": {"x": 1}}}, "per_factor"),
    ({**D, "config": {**D["config"], "projection": [1]}}, "projection"),
    ({**D, "version": 99}, "version"),
]


@pytest.mark.parametrize("data,fragment", FROM_DICT_CASES)
def test_from_dict_refuses_malformed_input(data: object, fragment: str) -> None:
    with pytest.raises(slt.SpecError, match=fragment):
        slt.SuperLoRA.from_dict(data)  # type: ignore[arg-type]


def _model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(spec=dict(ranks=2)), "ranks"),
    (dict(spec=dict(rank=2), adapter_dtype="cuda"), "adapter_dtype"),
    (dict(spec=dict(rank=2), adapter_dtype="int64"), "adapter_dtype"),
    (dict(spec=dict(rank=2), modules_to_save=[2]), "modules_to_save"),
])
def test_inject_refuses_bad_arguments(kwargs: dict, fragment: str) -> None:
    from superlora_tn.torch import inject

    with pytest.raises(slt.SpecError, match=fragment):
        inject(_model(), ["0"], **kwargs)


def test_modules_to_save_as_one_string_and_dtype_as_a_string() -> None:
    torch = pytest.importorskip("torch")
    from superlora_tn.torch import inject

    adapted = inject(_model(), ["0"], dict(rank=2), modules_to_save="1", adapter_dtype="float32")
    assert adapted.head_names == ["1"] and adapted.adapter_dtype == torch.float32
    assert adapted(torch.randn(3, 4)).shape == (3, 2)


@pytest.mark.parametrize("key,value", [("spec", None), ("layers", [1]), ("files", [1]), ("modules_to_save", "1")])
def test_load_refuses_tampered_configs(tmp_path: Path, key: str, value: object) -> None:
    from superlora_tn.torch import inject, load

    inject(_model(), ["0"], dict(rank=2)).save(tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    cfg[key] = value
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(slt.SpecError, match=key):
        load(_model(), tmp_path)


def test_load_with_unknown_spec_keys(tmp_path: Path) -> None:
    from superlora_tn.torch import inject, load

    inject(_model(), ["0"], dict(rank=2)).save(tmp_path)
    with pytest.raises(slt.SpecError, match="ranks"):
        load(_model(), tmp_path, spec=dict(ranks=3))
