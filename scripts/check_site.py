"""Check the built documentation site in a real browser (headless Chromium).

Every page is loaded over a local HTTP server (127.0.0.1 only) inside a harness page; after its
scripts ran, the check fails if any formula is left raw (``\\[``, ``\\(`` or ``$$`` in the rendered
text outside code blocks) or any image did not load. Usage, from the repository root::

    .venv/bin/python -m mkdocs build --strict -d site
    .venv/bin/python scripts/check_site.py site          # needs Debian's chromium package

Prints one line per problem and exits 1 if there is any, else prints the pages checked.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

HARNESS = "__browser_check.html"
PAGE_BUDGET_MS = 4000  # virtual time per page: scripts and images settle well within it

SCRIPT = r"""
<!doctype html><html><body><pre id="result">pending</pre><iframe id="f" width="1200" height="900"></iframe>
<script>
const pages = PAGES;
const problems = [];
let done = 0;
function check(url) {
  const doc = document.getElementById("f").contentDocument;
  const body = doc.body.cloneNode(true);
  body.querySelectorAll("pre, code, script, style").forEach(e => e.remove());
  const text = body.textContent;
  for (const raw of ["\\[", "\\(", "$$"]) {
    if (text.includes(raw)) problems.push(url + ": raw " + raw + " left in the text");
  }
  if (doc.querySelector(".arithmatex") && !doc.querySelector(".katex")) problems.push(url + ": formulas not rendered");
  for (const img of doc.images) {
    if (!img.complete || img.naturalWidth === 0) problems.push(url + ": image did not load: " + img.getAttribute("src"));
  }
}
function next() {
  if (done === pages.length) {
    document.getElementById("result").textContent = JSON.stringify({pages: pages.length, problems});
    return;
  }
  const url = pages[done];
  const frame = document.getElementById("f");
  frame.onload = () => setTimeout(() => { check(url); done += 1; next(); }, 1500);
  frame.src = url;
}
next();
</script></body></html>
"""


def pages(site: Path) -> list[str]:
    """URL paths of every page of the built site (``index.html`` files, 404 left out)."""
    found = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    return ["/" + p for p in found if not p.startswith(("assets/", "search/"))]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def check(site: Path, browser: str) -> dict:
    """Serve ``site`` on a free loopback port, run the harness in ``browser``; return its result."""
    urls = pages(site)
    (site / HARNESS).write_text(SCRIPT.replace("PAGES", json.dumps(urls)))
    handler = functools.partial(QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{HARNESS}"
        budget = PAGE_BUDGET_MS * (len(urls) + 1)
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--virtual-time-budget={budget}", "--dump-dom", url],
            capture_output=True, text=True, timeout=300, check=False,
        ).stdout
        server.shutdown()
    (site / HARNESS).unlink()
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    if not found or found.group(1) == "pending":
        return {"pages": len(urls), "problems": [f"the harness did not finish (browser output: {dom[-300:]!r})"]}
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site without logging every request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else "site")
    browser = chromium()
    if browser is None:
        print("no chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    result = check(site, browser)
    for problem in result["problems"]:
        print(problem)
    if result["problems"]:
        return 1
    print(f"{result['pages']} pages: formulas rendered, every image loaded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
