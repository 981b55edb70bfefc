"""The built wheel is a complete install: the benchmarks ship inside it, and ``superlora-tn bench``
runs from the wheel's files alone (no repository on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (found,) = out.glob("superlora_tn-*.whl")
    return found


def test_wheel_holds_the_package_and_its_benchmarks(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("superlora_tn/cli.py", "superlora_tn/bench/__main__.py", "superlora_tn/bench/planning.py",
                   "superlora_tn/bench/train_step.py", "superlora_tn/backends/torch_cpu.py", "superlora_tn/presets/__init__.py"):
        assert module in names, module
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)


def test_bench_runs_from_the_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    run = subprocess.run([sys.executable, "-c", "import sys; from superlora_tn.cli import main; sys.exit(main())",
                          "bench", "--quick", "--only", "planning", "--repeats", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "planning" in run.stdout.lower()
    probe = subprocess.run([sys.executable, "-c", "import superlora_tn; print(superlora_tn.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().startswith(str(site)), probe.stdout
