"""FSDP2 (``fully_shard``): 2 CPU processes, gloo on 127.0.0.1 only, a grouped projected spec.

Losses and adapter values equal one process on the concatenated batch; the adapter saved from
the sharded run loads into a plain model, and merging it there gives the adapted outputs.
"""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
from helpers import free_port, gloo_leave, spawn_gloo  # noqa: E402
from torch import nn  # noqa: E402

from superlora_tn import Fastfood, SpecError  # noqa: E402
from superlora_tn.torch import inject, load  # noqa: E402
from superlora_tn.torch.sharding import is_sharded  # noqa: E402

fsdp = pytest.importorskip("torch.distributed.fsdp")
if not hasattr(fsdp, "fully_shard"):
    pytest.skip("this torch has no FSDP2 fully_shard", allow_module_level=True)

WORLD = 2
STEPS = 3
SPEC = dict(groups=1, fold="balanced", order=3, rank=3, alpha=6.0, projection=Fastfood(0.5))
TARGETS = r"\d+\.(up|down)"


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(8, 16)
        self.down = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.tanh(self.up(x)))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(Block(), Block(), nn.Linear(8, 2))


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(8, 8, generator=g), torch.randn(8, 2, generator=g)) for _ in range(STEPS)]


def _train(module: nn.Module, params: list[torch.Tensor], shard: slice) -> list[float]:
    opt = torch.optim.Adam(params, lr=0.05)
    losses = []
    for x, y in _batches():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(module(x[shard]), y[shard])  # mean over this shard
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _worker(rank: int, port: int, out_dir: str) -> None:
    from torch.distributed.fsdp import fully_shard

    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        adapted = inject(_model(), targets=TARGETS, spec=SPEC, modules_to_save=["2"])
        for block in (adapted.base_model[0], adapted.base_model[1]):
            fully_shard(block)
        fully_shard(adapted)  # the adapter and the head: the root group, gathered once per forward
        assert all(is_sharded(p) for p in adapted.adapter.values())
        per = 8 // WORLD
        losses = _train(adapted, [p for p in adapted.parameters() if p.requires_grad], slice(rank * per, (rank + 1) * per))
        with pytest.raises(SpecError, match="merge"):  # a sharded model merges after a load into a plain one
            adapted.merge()
        adapted.save(os.path.join(out_dir, "adapter"))  # every rank gathers; rank 0 writes
        gathered = [None] * WORLD
        dist.all_gather_object(gathered, losses)
        if rank == 0:
            torch.save(gathered, os.path.join(out_dir, "losses.pt"))
    finally:
        gloo_leave()


def test_fsdp2_two_processes_match_one_process_and_the_saved_adapter_merges(tmp_path):
    start = time.perf_counter()
    spawn_gloo(_worker, (free_port(), str(tmp_path)), WORLD)
    print(f"FSDP2 2-process gloo run: {time.perf_counter() - start:.2f} s wall")
    losses = torch.load(tmp_path / "losses.pt")
    torch.set_num_threads(1)
    single = inject(_model(), targets=TARGETS, spec=SPEC, modules_to_save=["2"])
    init = {k: p.detach().clone() for k, p in single.adapter.items()}
    ref_losses = _train(single, [p for p in single.parameters() if p.requires_grad], slice(0, 8))
    # each rank's loss is over its half of the batch: their mean is the whole batch's loss
    for step, ref in enumerate(ref_losses):
        assert abs((losses[0][step] + losses[1][step]) / 2 - ref) < 1e-5 * max(1.0, abs(ref))
    loaded = load(_model(), tmp_path / "adapter")
    for name, p in single.adapter.items():
        torch.testing.assert_close(loaded.adapter[name], p.detach(), atol=1e-6, rtol=1e-5)
        assert not torch.equal(p.detach(), init[name]), name  # every parameter trained
    x = _batches()[0][0]
    adapted_out = loaded(x).detach()
    torch.testing.assert_close(adapted_out, single(x).detach(), atol=1e-6, rtol=1e-5)
    merged = loaded.merge_and_unload()
    torch.testing.assert_close(merged(x), adapted_out, atol=1e-5, rtol=1e-5)
