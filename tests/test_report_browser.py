"""The HTML report in a real headless browser: it renders, its figures decode, it references nothing outside,
and at 1400 px nothing sticks out of the page body (a wide table scrolls inside its own box) and every image is a
captioned figure.

Needs Debian's `chromium` (`apt-get install -y chromium`); skipped with that reason when absent.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from basefuse.reports.build import build_report
from test_report_build import write_run
from test_report_figures import write_nine_target_run

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
    paths = build_report(write_run(tmp_path))
    page = paths.html.read_text()
    # nothing outside the file: every src is an embedded PNG, no links, stylesheets or remote scripts
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    # 4 measured claims (C3 needs 5 targets) + 6 standard figures
    assert len(srcs) == len(paths.figures) == 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"https?://|<link|<script|@import|url\(", page)

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shares = re.search(r'data-opaque="([^"]*)"', dom.stdout)
    assert shares, "the page did not finish loading"
    assert [int(w) for w in shares.group(1).split(",")] == [100] * 10  # every figure decoded whole
    assert "Planned vs finished" in dom.stdout or "Plan unknown" in dom.stdout
    assert "Confirmatory claims (C1-C5)" in dom.stdout and "<table>" in dom.stdout

    shot = tmp_path / "report.png"
    res = chromium(tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", paths.html.as_uri())
    assert res.returncode == 0 and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


# Added to a copy of the page only: after load, list every element whose right edge passes the body's and that no
# sideways-scrolling box (overflow-x auto or scroll) holds; count the boxes that do scroll; and for every image,
# whether it sits in a <figure> whose <figcaption> has text.
LAYOUT_PROBE = """<script>window.addEventListener('load', () => {
  const body = document.body.getBoundingClientRect();
  const scrolled = el => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > body.right + 0.5 && !scrolled(el)) out.push(el.tagName + ':' + Math.round(r.right));
  }
  const scrolling = [...document.querySelectorAll('*')].filter(
    b => ['auto', 'scroll'].includes(getComputedStyle(b).overflowX) && b.scrollWidth > b.clientWidth + 1).length;
  const captioned = [...document.images].map(img => {
    const f = img.closest('figure'); const c = f && f.querySelector(':scope > figcaption');
    return c && c.textContent.trim() ? 1 : 0;
  });
  const b = document.body;
  b.setAttribute('data-overflow', out.join(' ') || 'none');
  b.setAttribute('data-scrolling', scrolling);
  b.setAttribute('data-viewport', window.innerWidth + ',' + document.documentElement.scrollWidth + ',' +
                 Math.round(body.right));
  b.setAttribute('data-captioned', captioned.join(','));
});</script>"""


def test_nine_target_report_fits_a_1400px_window_and_captions_every_figure(tmp_path):
    paths = build_report(write_nine_target_run(tmp_path))
    probe = tmp_path / "layout.html"
    probe.write_text(paths.html.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom = chromium(tmp_path, "--window-size=1400,3000", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = dict(re.findall(r'data-(overflow|scrolling|viewport|captioned)="([^"]*)"', dom.stdout))
    assert len(attrs) == 4, "the page did not finish loading"
    viewport, page_width, body_right = map(int, attrs["viewport"].split(","))
    assert viewport == 1400 and page_width <= viewport and body_right <= viewport
    assert attrs["overflow"] == "none"  # nothing passes the body's right edge outside a scrolling box
    # the per-target table (9 target columns) is wider than the body: it is the one that scrolls in its own box
    assert int(attrs["scrolling"]) >= 1
    assert attrs["captioned"] == ",".join(["1"] * len(paths.figures)) and len(paths.figures) == 8  # 4 claims + 4 standard
