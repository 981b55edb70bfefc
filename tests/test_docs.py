"""Every ```python block in docs/*.md and README.md runs, so the documentation cannot rot.

A block is skipped when the line before its opening fence is ``<!-- skip -->`` (for examples
that need a trained model or a download). Each block runs in a fresh namespace, in a
temporary working directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = "<!-- skip -->"


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """(line, code, skipped) of each ```python block of a Markdown file."""
    text = path.read_text()
    blocks = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1), before == SKIP))
    return blocks


def _files() -> list[Path]:
    files = sorted((ROOT / "docs").glob("*.md"))
    return files + ([ROOT / "README.md"] if (ROOT / "README.md").exists() else [])


CASES = [pytest.param(code, skipped, id=f"{p.relative_to(ROOT)}:{line}") for p in _files() for line, code, skipped in python_blocks(p)]


def test_blocks_are_found():
    assert len(CASES) >= 10
    assert python_blocks(ROOT / "docs" / "concepts.md")


def test_skip_marker(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("<!-- skip -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n")
    assert [(c, s) for _, c, s in python_blocks(md)] == [("raise SystemExit\n", True), ("x = 1\n", False)]


@pytest.mark.parametrize(("code", "skipped"), CASES)
def test_doc_block_runs(code, skipped, tmp_path, monkeypatch):
    if skipped:
        pytest.skip("marked <!-- skip --> in the docs")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc block>", "exec"), {"__name__": "__doc_block__"})
