"""Parity with PEFT itself: its get_delta_weight and layer forward against our contraction.

Random factor values on nn.Linear layers: square, rectangular, prime sizes, 768 and 1024. Equal
to float32 round-off (relative to the largest entry). Read, write, state dict, directory.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from peft import LoKrConfig, LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict  # noqa: E402
from peft.tuners.lokr.layer import factorization  # noqa: E402

from superlora_tn import SpecError, variants  # noqa: E402
from superlora_tn.factorize import mode_split, peft_factorization  # noqa: E402
from superlora_tn.interop import peft as ip  # noqa: E402

SHAPES = {"sq": (16, 16), "rect": (10, 24), "prime": (13, 7), "tall": (31, 5), "vit": (768, 768), "up": (1024, 768), "down": (768, 1024)}
SMALL = {k: v for k, v in SHAPES.items() if max(v) < 100}
RTOL = 2e-6  # float32: a few ulps of the largest entry
LARGEST: dict[str, float] = {}


class Net(torch.nn.Module):
    def __init__(self, shapes):
        super().__init__()
        self.layers = torch.nn.ModuleDict({k: torch.nn.Linear(i, o) for k, (o, i) in shapes.items()})

    def forward(self, x):  # pragma: no cover - PEFT never calls it here
        return x


def peft_model(config, shapes, seed=0):
    torch.manual_seed(seed)
    pm = get_peft_model(Net(shapes), config)
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in pm.named_parameters():
        if "lora_" in name or "lokr_" in name:
            p.data = torch.randn(p.shape, generator=g) / max(1, p.shape[-1]) ** 0.5
    return pm


def layer(pm, target):
    return pm.base_model.model.get_submodule(target)


def compare(pm, spec, params, label, largest=LARGEST):
    dW = spec.contract(params)
    g = torch.Generator().manual_seed(7)
    for t in spec.targets:
        mod = layer(pm, t.name)
        ref = mod.get_delta_weight("default").detach()
        err = float((dW[t.name].detach() - ref).abs().max())
        scale = max(1e-30, float(ref.abs().max()))
        assert err <= RTOL * scale, (label, t.name, err, scale)
        x = torch.randn(3, t.shape[1], generator=g)
        with torch.no_grad():
            ours = mod.get_base_layer()(x) + x @ dW[t.name].detach().T
            theirs = mod(x)
        ferr = float((ours - theirs).abs().max())
        assert ferr <= 4 * RTOL * max(1.0, float(theirs.abs().max())), (label, t.name, ferr)
        largest[label] = max(largest.get(label, 0.0), err / scale, ferr / max(1.0, float(theirs.abs().max())))
        largest[label + " dW abs"] = max(largest.get(label + " dW abs", 0.0), err)
        largest[label + " dW rel"] = max(largest.get(label + " dW rel", 0.0), err / scale)


def targets_of(shapes):
    return [f"layers.{k}" for k in shapes]


LORA_CONFIGS = [
    dict(r=4, lora_alpha=8),
    dict(r=1, lora_alpha=1),
    dict(r=8, lora_alpha=3, rank_pattern={"sq": 2}, alpha_pattern={"prime": 5}),
    dict(r=6, lora_alpha=12, use_rslora=True),
]


@pytest.mark.parametrize("cfg", LORA_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items())[:40])
def test_lora_parity_model_state_dict_and_export(cfg, tmp_path):
    shapes = SHAPES if cfg["r"] == 4 else SMALL
    pm = peft_model(LoraConfig(target_modules=list(shapes), **cfg), shapes)
    spec, params = ip.from_peft(pm)
    assert spec.identify() == "lora"
    assert [t.name for t in spec.targets] == targets_of(shapes)
    compare(pm, spec, params, "lora")
    # the saved form: adapter_model.safetensors keys + adapter_config.json fields
    spec2, params2 = ip.from_peft(get_peft_model_state_dict(pm), pm.peft_config["default"].to_dict())
    compare(pm, spec2, params2, "lora")
    pm.save_pretrained(tmp_path)
    spec3, params3 = ip.from_peft(str(tmp_path))
    compare(pm, spec3, params3, "lora")
    # and back: our export loads into a fresh PEFT model and gives the same dW
    state, config = ip.to_peft(spec, params)
    fresh = peft_model(LoraConfig(**{k: v for k, v in config.items() if k != "peft_type"}), shapes, seed=99)
    assert not set_peft_model_state_dict(fresh, state).unexpected_keys
    compare(fresh, spec, params, "lora")


LOKR_CONFIGS = [
    dict(r=2, alpha=4),
    dict(r=2, alpha=3, decompose_both=True),
    dict(r=1, alpha=2, decompose_factor=4),
    dict(r=3, alpha=5, decompose_factor=32, decompose_both=True),  # factor > sqrt(dim): PEFT keeps (32, dim / 32) unsorted
    dict(r=16, alpha=16),  # large r: PEFT makes w2 dense on the small layers, low-rank on the big ones
    dict(r=2, alpha=2, init_weights="lycoris"),
]


@pytest.mark.parametrize("cfg", LOKR_CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items())[:40])
def test_lokr_parity_model_state_dict_and_export(cfg):
    pm = peft_model(LoKrConfig(target_modules=list(SHAPES), **cfg), SHAPES)
    spec, params = ip.from_peft(pm)
    assert spec.identify() == "lokr"
    compare(pm, spec, params, "lokr")
    spec2, params2 = ip.from_peft(get_peft_model_state_dict(pm), pm.peft_config["default"].to_dict())
    compare(pm, spec2, params2, "lokr")
    state, config = ip.to_peft(spec, params)
    fresh = peft_model(LoKrConfig(**{k: v for k, v in config.items() if k != "peft_type"}), SHAPES, seed=99)
    result = set_peft_model_state_dict(fresh, state)
    assert not result.unexpected_keys
    compare(fresh, spec, params, "lokr")


@pytest.mark.parametrize("decompose_both", [False, True])
@pytest.mark.parametrize("factor", [-1, 4])
def test_our_lokr_and_lora_specs_export_to_peft(decompose_both, factor):
    targets = {f"layers.{k}": v for k, v in SMALL.items()}
    for spec in (variants.lokr(targets, 2, factor=factor, decompose_both=decompose_both, alpha=3.0), variants.lora(targets, 3, alpha=6.0)):
        params = spec.init("torch", zero_init=False, dtype=torch.float32, seed=5)
        state, config = ip.to_peft(spec, params)
        kind = LoKrConfig if config["peft_type"] == "LOKR" else LoraConfig
        config["target_modules"] = list(SMALL)
        fresh = peft_model(kind(**{k: v for k, v in config.items() if k != "peft_type"}), SMALL, seed=3)
        assert not set_peft_model_state_dict(fresh, state).unexpected_keys
        compare(fresh, spec, params, config["peft_type"].lower())
        spec_back, params_back = ip.from_peft(fresh)
        assert spec_back.identify() == spec.identify()
        compare(fresh, spec_back, params_back, config["peft_type"].lower())


def test_factorization_matches_peft():
    for n in [*range(1, 200), 768, 1024, 3072, 4096]:
        for f in (-1, 1, 2, 3, 4, 5, 7, 8, 16, 32, 64):
            assert peft_factorization(n, f) == factorization(n, f), (n, f)
            assert mode_split(n, 2, exact=True, factor=f) == factorization(n, f), (n, f)


@pytest.mark.parametrize("init", [True, "lycoris"])
def test_zero_block_conventions(init):
    torch.manual_seed(0)
    pm = get_peft_model(Net(SMALL), LoKrConfig(target_modules=list(SMALL), r=2, alpha=2, init_weights=init, decompose_both=True))
    spec, params = ip.from_peft(pm)
    zero = sorted(k for k, v in params.items() if not v.any())
    assert zero == ip.peft_zero_blocks(spec, "peft" if init is True else "lycoris")
    assert set(ip.peft_zero_blocks(spec, "superlora")) == {g.zero_block for g in spec.groups}


def test_refusals():
    mixed_shapes = {"sq": (16, 16), "big": (256, 256)}  # r = 4: w2 dense on 16x16 (4x4 factors), low-rank on 256x256
    pm = peft_model(LoKrConfig(target_modules=list(mixed_shapes), r=4, alpha=4), mixed_shapes)
    assert ip.from_peft(pm)[0].identify() == "lokr"  # default: w2 held dense everywhere
    with pytest.raises(SpecError, match="mixed"):
        ip.from_peft(pm, mixed="error")
    with pytest.raises(SpecError, match="scale_convention"):
        ip.from_peft(pm, scale_convention="kohya")
    with pytest.raises(SpecError, match="LoRA or LoKr spec"):
        ip.to_peft(variants.lorta({"a": (8, 8)}, 2), variants.lorta({"a": (8, 8)}, 2).init())
    with pytest.raises(SpecError, match="source"):
        ip.from_peft(42)
    with pytest.raises(SpecError, match="fan_in_fan_out"):
        ip.from_peft({"base_model.model.x.lokr_w1": torch.zeros(2, 3), "base_model.model.x.lokr_w2": torch.zeros(4, 2)},
                     {"peft_type": "LOKR", "fan_in_fan_out": True})
    with pytest.raises(SpecError, match="Hadamard"):
        ip.from_peft({"base_model.model.x.hada_w1_a": torch.zeros(2, 3)}, {"peft_type": "LOHA"})


def test_lycoris_scale_convention():
    pm = peft_model(LoKrConfig(target_modules=list(SMALL), r=16, alpha=4), SMALL)  # w2 dense on every small layer
    spec, params = ip.from_peft(pm, scale_convention="lycoris")
    for t in spec.targets:
        kinds = {k for k in params if k.startswith(spec.groups[[x.name for x in spec.targets].index(t.name)].prefix)}
        if all(k.endswith("dense") for k in kinds):
            assert spec.target_scale(t.name) == 1.0


def test_report_largest_error():
    """The largest relative parity error, measured here on one LoRA and one LoKr model of every shape
    (so it checks something when run alone), then printed with what the other tests of this run saw."""
    largest: dict[str, float] = {}
    for label, config in (("lora", LoraConfig(target_modules=list(SHAPES), r=4, lora_alpha=8)),
                          ("lokr", LoKrConfig(target_modules=list(SHAPES), r=2, alpha=4))):
        pm = peft_model(config, SHAPES)
        spec, params = ip.from_peft(pm)
        compare(pm, spec, params, label, largest)
    assert set(largest) == {f"{k}{s}" for k in ("lora", "lokr") for s in ("", " dW abs", " dW rel")}
    assert all(v <= 4 * RTOL for k, v in largest.items() if not k.endswith("abs"))
    print("largest relative parity error:", largest, "| in this run:", LARGEST)
