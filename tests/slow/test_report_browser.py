"""The report page in a real browser: headless Chromium (Debian `chromium`) loads results/report/index.html
of the tiny DAG (the pair and the 10-cell chat-template matrix); every image decodes and every link
points at a file that exists. A screenshot is left beside the page for a person to look at."""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000"]
# Appended to a copy of the page: after load, write what the browser saw into the DOM for --dump-dom.
PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0,
                                                 width: i.naturalWidth}));
  const links = [...document.querySelectorAll("a[href]")].map(a => a.href);
  const out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify({images, links}); document.body.appendChild(out);
});</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_every_image_loads_and_every_link_resolves_in_chromium(tiny_dag, tmp_path):
    report = tiny_dag.root / "results/report"
    probe_page = report / "browser_probe.html"
    probe_page.write_text((report / "index.html").read_text().replace("</body>", PROBE + "</body>"))
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    try:
        dom = subprocess.run([CHROMIUM, *FLAGS, *profile, "--dump-dom", probe_page.as_uri()], capture_output=True,
                             text=True, timeout=120).stdout
        subprocess.run([CHROMIUM, *FLAGS, *profile, "--window-size=1280,4000",
                        f"--screenshot={report / 'screenshot.png'}", (report / "index.html").as_uri()],
                       capture_output=True, timeout=120)
    finally:
        probe_page.unlink()
    seen = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL).group(1)))
    assert len(seen["images"]) >= 5
    assert [i["src"] for i in seen["images"] if not i["ok"]] == []
    files = [Path(unquote(urlparse(url).path)) for url in seen["links"] if url.startswith("file:")]
    assert len(files) == len(seen["links"]) and len(files) > 10
    assert [str(f) for f in files if not f.is_file()] == []
    assert (report / "screenshot.png").stat().st_size > 50_000
