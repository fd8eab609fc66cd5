"""The HTML report of a finished tiny run, opened in headless Chromium: every plot decodes, and
nothing is fetched from the network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # a network load would fail instead of leaving the machine
    "--virtual-time-budget=5000",
]
# Appended to a copy of the report: after load, what the browser decoded, as JSON in the DOM.
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(img => ({
    src: img.src.slice(0, 40), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
  const resources = performance.getEntriesByType("resource").map(entry => entry.name);
  const out = document.createElement("pre");
  out.id = "siked-probe";
  out.textContent = JSON.stringify({images, resources});
  document.body.appendChild(out);
});
</script>
"""


def browser_view(html: Path, profile: Path) -> dict:
    probe = html.with_name("probe.html")
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    match = re.search(r'<pre id="siked-probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"chromium did not run the probe (rc {result.returncode}): {result.stderr[-500:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_html_renders_offline_in_chromium(tiny_run: Path, tmp_path: Path):
    html = tiny_run / "report.html"
    text = html.read_text(encoding="utf-8")
    # nothing in the page points at the network: no remote src/href, no remote CSS url()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*[\"']?\s*(https?:)?//", text, re.I)
    copy = Path(shutil.copy(html, tmp_path / "report.html"))
    view = browser_view(copy, tmp_path / "profile")
    assert len(view["images"]) >= 2, "the report should show its plots"
    for image in view["images"]:
        assert image["src"].startswith("data:image/png"), image
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, f"an image did not decode: {image}"
    assert [r for r in view["resources"] if re.match(r"https?:", r)] == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_screenshot_script_writes_a_png(tiny_run: Path, tmp_path: Path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.sh"
    out = tmp_path / "shot.png"
    subprocess.run(["bash", str(script), str(tiny_run), str(out), "800,1200"], check=True, timeout=120,
                   capture_output=True)
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (800, 1200)
