"""DistributedDataParallel: 2 CPU processes, gloo on 127.0.0.1 only, equal to one process on the whole batch."""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
from helpers import free_port, gloo_leave, spawn_gloo  # noqa: E402
from torch import nn  # noqa: E402

from superlora_tn.torch import inject  # noqa: E402

WORLD = 2
STEPS = 3
SPEC = dict(groups=2, fold="balanced", order=3, rank=3, alpha=6.0)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(8, 8, generator=g), torch.randn(8, 2, generator=g)) for _ in range(STEPS)]


def _train(module: nn.Module, params: list[torch.Tensor], shard: slice) -> None:
    opt = torch.optim.Adam(params, lr=0.05)
    for x, y in _batches():
        opt.zero_grad()
        torch.nn.functional.mse_loss(module(x[shard]), y[shard]).backward()  # mean over this shard
        opt.step()


def _state(adapted) -> dict[str, torch.Tensor]:
    out = {f"adapter.{k}": p.detach().clone() for k, p in adapted.adapter.items()}
    out.update({f"head.{k}": p.detach().clone() for k, p in adapted.base_model[4].named_parameters()})
    return out


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        adapted = inject(_model(), targets=["0", "2"], spec=SPEC, modules_to_save=["4"])
        ddp = torch.nn.parallel.DistributedDataParallel(adapted)
        per = 8 // WORLD
        _train(ddp, [p for p in ddp.parameters() if p.requires_grad], slice(rank * per, (rank + 1) * per))
        state = _state(adapted)
        gathered = [None] * WORLD
        dist.all_gather_object(gathered, state)
        if rank == 0:
            torch.save(gathered, os.path.join(out_dir, "states.pt"))
    finally:
        gloo_leave()


def test_ddp_two_processes_match_one_process_on_the_whole_batch(tmp_path):
    start = time.perf_counter()
    spawn_gloo(_worker, (free_port(), str(tmp_path)), WORLD)
    wall = time.perf_counter() - start
    print(f"DDP 2-process gloo run: {wall:.2f} s wall")
    states = torch.load(tmp_path / "states.pt")
    torch.set_num_threads(1)
    single = inject(_model(), targets=["0", "2"], spec=SPEC, modules_to_save=["4"])
    init = _state(single)
    _train(single, [p for p in single.parameters() if p.requires_grad], slice(0, 8))
    reference = _state(single)
    assert set(states[0]) == set(reference) and len(states[0]) == len(single.adapter) + 2
    for name in reference:
        assert torch.equal(states[0][name], states[1][name]), name  # identical across ranks, bit for bit
        torch.testing.assert_close(states[0][name], reference[name], atol=1e-6, rtol=1e-5)
        assert not torch.equal(reference[name], init[name]), name  # every parameter trained
