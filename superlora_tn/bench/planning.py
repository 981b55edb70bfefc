"""Case 5: building and planning a spec for a 70B-parameter target set (in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

from .common import Table

SCRIPT = r"""
import json, time
import superlora_tn as slt
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
before = rss_kb()
targets = {}
for l in range(80):
    for name, shape in (("q", (8192, 8192)), ("k", (1024, 8192)), ("v", (1024, 8192)), ("o", (8192, 8192)),
                        ("gate", (28672, 8192)), ("up", (28672, 8192)), ("down", (8192, 28672))):
        targets[f"layers.{l}.{name}"] = shape
out = {}
for label, kw in (("LoRA r=8", dict(rank=8)), ("LoKr r=8", dict(splits=2, structure=["dense", "lora"], rank=8, exact_splits=True)),
                  ("Tucker M=3 r=8, 560 balanced groups", dict(groups=560, fold="balanced", order=3, rank=8))):
    t = time.perf_counter()
    spec = slt.SuperLoRA(targets, **kw)
    plan = spec.plan()
    n_batches = len(plan.batches)
    progs = [b.program for b in plan.batches]
    out[label] = (time.perf_counter() - t, n_batches, len(progs))
rss = rss_kb()
out["rss_mb"] = rss / 1024
out["rss_before_mb"] = before / 1024
out["entries"] = spec.num_entries
print(json.dumps(out))
"""


def run(table: Table, repeats: int, quick: bool) -> None:
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        table.add("plan 70B set", "ours", None, note=res.stderr.strip().splitlines()[-1][:80])
        return
    data = json.loads(res.stdout.strip().splitlines()[-1])
    case = f"plan 70B set (560 targets, {data['entries'] / 1e9:.1f}G entries)"
    for label, (seconds, n_batches, _) in ((k, v) for k, v in data.items() if isinstance(v, list)):
        table.add(case, f"build+plan {label}", seconds, note=f"{n_batches} batched contraction(s)")
    table.add(case, f"peak resident {data['rss_mb']:.0f} MB (VmHWM)", None,
              note=f"whole process; {data['rss_before_mb']:.0f} MB after importing superlora_tn")
