"""Issue 12, PEFT interop: converted exactly or refused with a SpecError, the same way on the
live-model, state-dict and directory paths; to_peft's names select exactly the spec's targets."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
from peft import LoKrConfig, LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

from superlora_tn import SpecError, SuperLoRA  # noqa: E402
from superlora_tn.interop import peft as ip  # noqa: E402

torch.set_num_threads(1)
P = "base_model.model."


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 6)
        self.emb = nn.Embedding(10, 8)
        self.conv = nn.Conv2d(4, 8, 3)
        self.c1d = nn.Conv1d(4, 8, 3)
        self.head = nn.Linear(6, 2)
        self.blk = nn.ModuleDict({"q": nn.Linear(8, 6)})

    def forward(self, x):  # pragma: no cover - never called
        return x


def three_paths(config, tmp_path):
    """from_peft on the live model, its state dict + config, and its saved directory."""
    torch.manual_seed(0)
    pm = get_peft_model(Model(), config)
    yield lambda: ip.from_peft(pm)
    yield lambda: ip.from_peft(get_peft_model_state_dict(pm), pm.peft_config["default"].to_dict())
    pm.save_pretrained(tmp_path)
    yield lambda: ip.from_peft(str(tmp_path))


REFUSED = {
    "lora_bias": (LoraConfig(target_modules=["q"], r=2, lora_bias=True), "lora_bias"),
    "embedding": (LoraConfig(target_modules=["emb"], r=2), "Embedding"),
    "modules_to_save": (LoraConfig(target_modules=["q"], r=2, modules_to_save=["head"]), "modules_to_save"),
    # r = 2 >= max(b, d) / 2: PEFT holds w2 (4, 2, 3) full and torch.kron scrambles the Conv1d kernel
    "conv1d lokr, full w2": (LoKrConfig(target_modules=["c1d"], r=2), "not a Kronecker product"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_on_every_path(case, tmp_path):
    config, pattern = REFUSED[case]
    for convert in three_paths(config, tmp_path):
        with pytest.raises(SpecError, match=pattern):
            convert()


def test_conv2d_lokr_converted_on_every_path(tmp_path):
    """A Conv2d LoKr (full w2 (b, d, kh, kw) at r = 2): the same exact dW from the model, the state dict
    and the directory (the kernel shows in w2, so no model is needed)."""
    config = LoKrConfig(target_modules=["conv"], r=2, alpha=3, init_weights=False)
    torch.manual_seed(0)
    want = get_peft_model(Model(), config).base_model.model.conv.get_delta_weight("default")
    for convert in three_paths(config, tmp_path):
        spec, params = convert()
        assert spec.identify() == "lokr" and spec.target_shapes == {"conv": (8, 4, 3, 3)}
        torch.testing.assert_close(spec.contract(params)["conv"], want, rtol=1e-5, atol=1e-7)


def test_lora_shapes_that_do_not_multiply_are_refused():
    state = {f"{P}w.lora_A.weight": torch.ones(4, 16), f"{P}w.lora_B.weight": torch.ones(32, 3)}
    with pytest.raises(SpecError, match="do not multiply"):
        ip.from_peft(state, {"peft_type": "LORA", "r": 4, "lora_alpha": 4})
    state[f"{P}w.lora_B.weight"] = torch.ones(32, 4)
    spec, params = ip.from_peft(state, {"peft_type": "LORA", "r": 4, "lora_alpha": 4})
    torch.testing.assert_close(spec.contract(params)["w"], torch.ones(32, 4) @ torch.ones(4, 16))


@pytest.mark.parametrize("source,config,field", [
    ({f"{P}w.lora_A.weight": torch.ones(2, 4)}, {"peft_type": "LORA"}, "layer 'w'"),  # missing lora_B: once a KeyError
    ({f"{P}w.lokr_w1": torch.ones(2, 2)}, {"peft_type": "LOKR"}, "layer 'w'"),
    ({f"{P}w.lora_A.weight": torch.ones(2, 4)}, [1], "config"),
])
def test_incomplete_or_malformed_state_dicts(source, config, field):
    with pytest.raises(SpecError) as info:
        ip.from_peft(source, config)
    assert info.value.field == field


@pytest.mark.parametrize("config,weights", [("{}", b"garbage!"), ("[1]", None), ("{not json", None)])
def test_garbage_directories(tmp_path, config, weights):
    (tmp_path / "adapter_config.json").write_text(config)
    if weights is None:
        save_file({f"{P}w.lora_A.weight": torch.ones(2, 4)}, str(tmp_path / "adapter_model.safetensors"))
    else:
        (tmp_path / "adapter_model.safetensors").write_bytes(weights)
    with pytest.raises(SpecError):
        ip.from_peft(str(tmp_path))


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.blk = nn.ModuleDict({"q": nn.Linear(8, 8)})

    def forward(self, x):  # pragma: no cover
        return x


def test_to_peft_patterns_select_exactly_their_target():
    # "q" and "blk.q" get different ranks and scales: a suffix-matching pattern for "q" would hit both
    spec = SuperLoRA({"q": (8, 8), "blk.q": (8, 8)}, rank=4, scale={"q": 2.0})
    params = spec.init("torch", zero_init=False, dtype=torch.float32, seed=3)
    with torch.no_grad():  # blk.q: rank 2 (zero columns), so ranks differ per layer
        params["g1_k0_A0"][:, 2:] = 0
        params["g1_k0_A1"][:, 2:] = 0
    state, config = ip.to_peft(spec, params)
    only_q = SuperLoRA({"q": (8, 8)}, rank=4)  # the spec's "q" alone must not select "blk.q"
    _, config_q = ip.to_peft(only_q, only_q.init("torch", zero_init=False, dtype=torch.float32))
    torch.manual_seed(0)
    pm = get_peft_model(Nested(), LoraConfig(**{k: v for k, v in config_q.items() if k != "peft_type"}))
    adapted = [n for n, m in pm.named_modules() if hasattr(m, "lora_A")]
    assert adapted == ["base_model.model.q"], adapted
    torch.manual_seed(0)
    pm = get_peft_model(Nested(), LoraConfig(**{k: v for k, v in config.items() if k != "peft_type"}))
    assert not set_peft_model_state_dict(pm, state).unexpected_keys
    dW = spec.contract(params)
    for name in ("q", "blk.q"):
        ref = pm.base_model.model.get_submodule(name).get_delta_weight("default")
        torch.testing.assert_close(ref, dW[name], rtol=1e-5, atol=1e-6)
    json.dumps(config)
