"""The HTML report in a real headless browser: it renders, its figures decode, it references nothing outside.

Needs Debian's `chromium` (`apt-get install -y chromium`); skipped with that reason when absent.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from basefuse.reports.build import build_report
from test_report_build import write_run

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "chromium-headless-shell")
                 if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
# Added to a copy of the page only: after load, draw every image on a canvas and write into the DOM the share
# of its pixels that are opaque (matplotlib figures have an opaque background; a broken or truncated PNG has
# transparent or no pixels).
PROBE = """<script>window.addEventListener('load', () => {
  const shares = [...document.images].map(img => {
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    if (!c.width || !c.height) return 0;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let opaque = 0; for (let i = 3; i < px.length; i += 4) opaque += px[i] === 255;
    return Math.round(100 * opaque / (px.length / 4));
  });
  document.body.setAttribute('data-opaque', shares.join(','));
});</script>"""

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")]


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"  # a fresh profile each time: nothing cached from another run
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def test_html_report_renders_in_chromium(tmp_path):
    paths = build_report(write_run(tmp_path), n_boot=200)
    page = paths.html.read_text()
    # nothing outside the file: every src is an embedded PNG, no links, stylesheets or remote scripts
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert len(srcs) == len(paths.figures) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"https?://|<link|<script|@import|url\(", page)

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shares = re.search(r'data-opaque="([^"]*)"', dom.stdout)
    assert shares, "the page did not finish loading"
    assert [int(w) for w in shares.group(1).split(",")] == [100] * 4  # every figure decoded whole
    assert "Planned vs finished" in dom.stdout or "Plan unknown" in dom.stdout
    assert "Primary comparison" in dom.stdout and "<table>" in dom.stdout

    shot = tmp_path / "report.png"
    res = chromium(tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", paths.html.as_uri())
    assert res.returncode == 0 and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
