"""Backend-neutral testing helpers and an independent reference implementation of docs/design.md §2.

The reference shares no code with the contraction path: Tucker by explicit mode products
(tensordot), CP by a sum of outer products, Kronecker by ``numpy.kron``, the projection as a dense
matrix built from its definition, the shuffle's permutation drawn from its seed (not borrowed from
the plan) and scattered by index assignment.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from superlora_tn.hadamard import sylvester

BACKENDS = [name for name in ("numpy", "torch", "jax") if importlib.util.find_spec(name) is not None]


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def mode_product(T: np.ndarray, A: np.ndarray, mode: int) -> np.ndarray:
    """T x_mode A: contract T's mode with A's columns (A has shape (n, r))."""
    return np.moveaxis(np.tensordot(A, T, axes=(1, mode)), 0, mode)


def factor_tensor(factor: Any, get: Any) -> np.ndarray:
    """One Kronecker factor from its parameters, written out per structure."""
    if factor.structure == "dense":
        return get("dense")
    if factor.structure == "lora":
        return get("A0") @ get("A1").T
    if factor.structure == "cp":
        mats = [get(f"A{m}") for m in range(len(factor.shape))]
        T = np.zeros(factor.shape)
        for j in range(factor.ranks[0]):
            outer = mats[0][:, j]
            for A in mats[1:]:
                outer = np.multiply.outer(outer, A[:, j])
            T = T + outer
        return T
    T = get("core")
    for m in range(len(factor.shape)):
        if m not in factor.identity_modes:
            T = mode_product(T, get(f"A{m}"), m)
    return T


def dense_projection(group: Any, seed: int) -> np.ndarray:
    """F as an (n, n') matrix, built from the projection's definition and seeded constants."""
    proj, n, n_gen = group.projection, group.size, group.generated
    consts = proj.constants([n], [n_gen], seed, [group.index])
    if "matrix" in consts:
        return consts["matrix"][0]
    L, nb = consts["L"], consts["nb"]
    H = sylvester(L)
    perm = consts["perm"].reshape(nb, L) - np.arange(nb)[:, None] * L
    blocks = []
    for b in range(nb):
        P = np.zeros((L, L))
        P[np.arange(L), perm[b]] = 1.0
        blocks.append(H @ np.diag(consts["gauss"][0, b]) @ P @ H @ np.diag(consts["signs"][0, b]))
    return np.concatenate(blocks)[:n, :n_gen]


def reference_contract(spec: Any, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """dW per target by the definitions of docs/design.md section 2, in float64 NumPy."""
    params = {k: to_numpy(v).astype(np.float64) for k, v in params.items()}
    ys = []
    for g in spec.groups:
        Ts = [factor_tensor(f, lambda local, k=k, g=g: params[f"g{g.index}_k{k}_{local}"]) for k, f in enumerate(g.factors)]
        X = Ts[0]
        for T in Ts[1:]:
            X = np.kron(X, T)
        X = X[tuple(slice(0, n) for n in g.fold)]
        u = X.reshape(-1)[: g.generated]
        ys.append(u if g.projection is None else dense_projection(g, spec.config["seed"]) @ u)
    z = np.concatenate(ys)
    flat = {t.name: np.full(t.size, np.nan) for t in spec.targets}
    if spec.config["shuffle"] is not None:  # dW_all, targets in spec order, is z[perm], perm drawn from its seed here
        dw_all = z[np.random.default_rng([spec.config["shuffle"], 0x5AF]).permutation(z.size)]
        for t in spec.targets:
            flat[t.name][:] = dw_all[t.offset : t.offset + t.size]
    else:  # each group's entries go to its segments, in the order the group lists them
        pos = 0
        for g in spec.groups:
            for s in g.segments:
                flat[s.target][s.start : s.stop] = z[pos : pos + s.size]
                pos += s.size
    return {t.name: flat[t.name].reshape(t.shape) * spec.target_scale(t.name) for t in spec.targets}


def spawn_gloo(worker, args: tuple, nprocs: int) -> None:
    """``torch.multiprocessing.spawn`` for the gloo tests, run again (at most twice) if a process
    died of SIGABRT: torch 2.13's gloo sometimes aborts ("terminate called without an active
    exception") in a few percent of runs of an unchanged test. A third abort, or any other failure,
    is raised; the tests' assertions only ever see the results of a run that completed."""
    import torch.multiprocessing as mp

    for attempt in range(3):
        try:
            mp.spawn(worker, args=args, nprocs=nprocs, join=True)
            return
        except mp.ProcessExitedException as exc:
            if exc.signal_name != "SIGABRT" or attempt == 2:
                raise


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the gloo tests' rendezvous; loopback only)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_leave() -> None:
    """Leave the process group together: gloo's destroy can abort ("terminate called without an
    active exception") when one rank tears its connections down while the other still uses them."""
    import torch.distributed as dist

    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
