"""Several adapters through PEFT's layout: ``save_peft`` writes ``default`` at the root and each other
adapter in ``<dir>/<name>/`` (as ``PeftModel.save_pretrained``); ``load_peft`` reads such a directory,
or a live PeftModel with several adapters, into named adapters. Forward parity with PEFT for each
adapter, the PEFT model loading ours with ``from_pretrained`` + ``load_adapter``."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from superlora_tn.errors import SpecError
from superlora_tn.interop.peft import load_peft, save_peft
from superlora_tn.torch import inject

peft = pytest.importorskip("peft")
RTOL, ATOL = 2e-5, 2e-6
ERRORS: dict[str, float] = {}


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 6))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def peft_two_adapters(base: nn.Module, kind: str) -> nn.Module:
    if kind == "lora":
        first = peft.LoraConfig(r=3, lora_alpha=5, target_modules=["0", "2"], init_lora_weights=False, lora_dropout=0.1)
        second = peft.LoraConfig(r=2, lora_alpha=7, target_modules=["2", "4"], init_lora_weights=False, use_rslora=True)
    else:
        first = peft.LoKrConfig(r=2, alpha=3, target_modules=["0", "2"], init_weights=False, decompose_both=True)
        second = peft.LoKrConfig(r=4, alpha=2, target_modules=["4"], init_weights=False)
    pm = peft.get_peft_model(copy.deepcopy(base), first)
    pm.add_adapter("other", second)
    torch.manual_seed(1)
    for name, p in pm.named_parameters():  # non-zero values for every adapter (add_adapter's init zeros a block)
        if "other" in name:
            p.data.normal_()
    return pm.eval()


@pytest.mark.parametrize("kind", ["lora", "lokr"])
def test_read_several_adapters_from_model_and_directory(kind, tmp_path):
    base = net()
    pm = peft_two_adapters(base, kind)
    x = torch.randn(5, 12)
    want = {}
    for name in ("default", "other"):
        pm.set_adapter(name)
        want[name] = pm(x).detach()
    pm.set_adapter("default")
    pm.save_pretrained(tmp_path / "peft")
    assert (tmp_path / "peft" / "adapter_config.json").is_file() and (tmp_path / "peft" / "other" / "adapter_config.json").is_file()
    for source in (pm, tmp_path / "peft"):
        ours = load_peft(copy.deepcopy(base), source).eval()
        assert ours.adapter_names == ["default", "other"] and ours.active_adapter == "default"
        for name in ("default", "other"):
            ours.set_adapter(name)
            ERRORS[f"{kind} read"] = max(ERRORS.get(f"{kind} read", 0.0), rel(ours(x), want[name]))
            torch.testing.assert_close(ours(x), want[name], rtol=RTOL, atol=ATOL)
        ours.set_adapter("default")
        if kind == "lora":  # lora_dropout becomes the adapter's dropout, per adapter
            assert ours.dropout == 0.1 and ours._slots["other"]["dropout"] == 0.0
    only = load_peft(copy.deepcopy(base), tmp_path / "peft", adapter_name="other").eval()
    assert only.adapter_names == ["other"]
    torch.testing.assert_close(only(x), want["other"], rtol=RTOL, atol=ATOL)
    with pytest.raises(SpecError, match="adapter_name"):
        load_peft(copy.deepcopy(base), tmp_path / "peft", adapter_name="missing")


@pytest.mark.parametrize("kind", ["lora", "lokr"])
def test_write_several_adapters_peft_loads_each(kind, tmp_path):
    base = net()
    pm = peft_two_adapters(base, kind)
    ours = load_peft(copy.deepcopy(base), pm).eval()
    save_peft(ours, tmp_path / "ours")
    assert ours.active_adapter == "default"  # save_peft leaves the active adapter as it was
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    back.load_adapter(tmp_path / "ours" / "other", adapter_name="other")
    x = torch.randn(5, 12)
    for name in ("default", "other"):
        back.set_adapter(name)
        ours.set_adapter(name)
        ERRORS[f"{kind} written"] = max(ERRORS.get(f"{kind} written", 0.0), rel(back(x), ours(x)))
        torch.testing.assert_close(back(x), ours(x), rtol=RTOL, atol=ATOL)
    if kind == "lora":
        cfg = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
        assert cfg["lora_dropout"] == 0.1


def test_our_adapters_without_default_and_refusal_writes_nothing(tmp_path):
    """Adapters made here (no "default": every one in its subdirectory, as PEFT does); a spec PEFT
    cannot hold among them refuses the whole save before any file is written."""
    base = net()
    ours = inject(copy.deepcopy(base), targets=["0", "2"], spec=dict(rank=3, alpha=4.0), adapter_name="a", zero_init=False)
    ours.add_adapter("b", dict(splits=2, exact_splits=True, rank=2, structure=["dense", "lora"]), targets=["2", "4"],
                     zero_init=False)
    save_peft(ours, tmp_path / "ours")
    assert not (tmp_path / "ours" / "adapter_config.json").exists()
    x = torch.randn(3, 12)
    for name, kind in (("a", "LORA"), ("b", "LOKR")):
        assert json.loads((tmp_path / "ours" / name / "adapter_config.json").read_text())["peft_type"] == kind
        back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours" / name, adapter_name=name).eval()
        ours.set_adapter(name)
        torch.testing.assert_close(back(x), ours(x), rtol=RTOL, atol=ATOL)
    ours.add_adapter("grouped", dict(groups=1, fold="balanced", order=3, rank=2), targets=["0", "2"])
    with pytest.raises(SpecError, match="not representable as PEFT"):
        save_peft(ours, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    assert ours.active_adapter == "b"


class HeadNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16))
        self.head = nn.Sequential(nn.Linear(16, 4), nn.BatchNorm1d(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.mark.parametrize("kind", ["lora", "lokr"])
def test_modules_to_save_heads_per_adapter_both_ways(kind, tmp_path):
    """PEFT's modules_to_save (each adapter its own head copy, a third adapter without one runs the
    base's own head) read into per-adapter heads, and written back in PEFT's layout."""
    base = HeadNet().eval()
    Config = peft.LoraConfig if kind == "lora" else peft.LoKrConfig
    init = {"init_lora_weights": False} if kind == "lora" else {"init_weights": False}
    pm = peft.get_peft_model(copy.deepcopy(base), Config(r=2, target_modules=["body.0"], modules_to_save=["head"], **init))
    pm.add_adapter("other", Config(r=3, target_modules=["body.2"], modules_to_save=["head"], **init))
    pm.add_adapter("plain", Config(r=2, target_modules=["body.2"], **init))
    torch.manual_seed(1)
    for name, p in pm.named_parameters():  # distinct head values per adapter, non-zero adapters
        if "modules_to_save" in name or "other" in name or "plain" in name:
            p.data.normal_()
    for name, b in pm.named_buffers():
        if "modules_to_save" in name and "running_var" in name:
            b.data.uniform_(0.5, 2.0)
    pm.eval()
    x = torch.randn(5, 12)
    want = {}
    for name in ("default", "other", "plain"):
        pm.set_adapter(name)
        want[name] = pm(x).detach()
    pm.set_adapter("default")
    pm.save_pretrained(tmp_path / "peft")
    for source in (pm, tmp_path / "peft"):
        ours = load_peft(copy.deepcopy(base), source).eval()
        assert sorted(ours.adapter_names) == ["default", "other", "plain"]
        for name in ("default", "other", "plain"):
            ours.set_adapter(name)
            assert ours.head_names == ([] if name == "plain" else ["head"])
            ERRORS[f"{kind} heads read"] = max(ERRORS.get(f"{kind} heads read", 0.0), rel(ours(x), want[name]))
            torch.testing.assert_close(ours(x), want[name], rtol=RTOL, atol=ATOL)
    ours.set_adapter("default")
    save_peft(ours, tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "plain" / "adapter_config.json").read_text())["modules_to_save"] is None
    back = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    for name in ("other", "plain"):
        back.load_adapter(tmp_path / "ours" / name, adapter_name=name)
    for name in ("default", "other", "plain"):
        back.set_adapter(name)
        ERRORS[f"{kind} heads written"] = max(ERRORS.get(f"{kind} heads written", 0.0), rel(back(x), want[name]))
        torch.testing.assert_close(back(x), want[name], rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module", autouse=True)
def report_largest_errors(pytestconfig: pytest.Config):
    """Not a test: after this module's tests, print the largest errors they recorded (each test
    asserts its own bound); shown with ``pytest -s``."""
    yield
    if ERRORS and pytestconfig.getoption("capture") == "no":
        print(f"\nseveral adapters, largest relative forward error vs PEFT: {ERRORS}")
