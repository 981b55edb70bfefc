"""The built site in a real browser: every formula rendered by KaTeX, every image loaded.

Needs the docs extra and Debian's ``chromium`` (``.ci/run`` installs it when it can); skipped
without them. ``scripts/check_site.py`` is the same check from the command line.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_site", ROOT / "scripts" / "check_site.py")
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)


def test_site_renders_formulas_and_images_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    browser = check_site.chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    result = check_site.check(site, browser)
    assert result["problems"] == [] and result["pages"] >= 10, result


def test_pages_lists_every_built_page(tmp_path: Path) -> None:
    for page in ("index.html", "choosing/index.html", "assets/x/index.html"):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("<html></html>")
    assert check_site.pages(tmp_path) == ["/choosing/index.html", "/index.html"]
