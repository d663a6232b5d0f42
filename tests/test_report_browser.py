"""The report in a real browser: headless Chromium loads index.html and history.html from disk.

Skipped, with the reason, when no Chromium is installed (`.ci/run` installs Debian's `chromium`).
Chromium runs with networking cut off (every host resolves to nothing), and the dumped DOM must hold
no element that loads anything from another host (CDN script, font, stylesheet). Screenshots go to the test's temporary folder, or
to $HARNESS_SCREENSHOTS when set; their paths are printed (pytest -s or -rP shows them).
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from harness import Check, Claim, Measurement, Plot, Tier, Within, experiment, register
from harness.report import render_report
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

HOSTILE = "<script>alert(1)</script>"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0")


def _chromium() -> str | None:
    for name in (os.environ.get("HARNESS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (apt-get install chromium, "
                                "or set HARNESS_CHROMIUM): the report is not checked in a browser")


@dataclasses.dataclass(frozen=True)
class BrowserConfig:
    steps: int = 12


@experiment("test_browser_tiny", BrowserConfig)
def browser_experiment(cfg: BrowserConfig, ctx) -> Measurement:
    steps = list(range(cfg.steps))
    curve = pd.DataFrame({"step": steps, "loss": [1.0 / (1 + s + ctx.seed) for s in steps]})
    return Measurement(scalars={"ratio": 2.0 + 0.01 * ctx.seed, "onset": 4.0}, curves={"traj": curve})


CLAIMS = [register(Claim(
    id=f"test-browser-{name}", source="Test 2024", statement=f"{name}: ratio near two {HOSTILE}",
    paper_value="2", experiment=browser_experiment, notes=f"note {HOSTILE}",
    tiers={"smoke": Tier(2, BrowserConfig()), "cpu": Tier(2, BrowserConfig())},
    checks=(Check("ratio", Within(target=2.0, rtol=0.1)),),
    plots=(Plot("traj", "step", ("loss",), f"loss {HOSTILE}"),),
)) for name in ("first", "second")]


def _run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=90)


class _Dom(HTMLParser):
    """Tags, ids, links and the <svg> elements inside each claim section of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.hrefs, self.section, self.svgs_in = [], set(), [], None, {}
        self.remote = []  # src/href/... pointing off the machine: the report must need no network

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        self.remote += [f"<{tag} {k}={v}>" for k, v in a.items()
                        if k in ("src", "href", "data", "action", "poster") and re.match(r"\s*(https?:)?//", v or "")]
        if tag == "section":
            self.section = a.get("id")
        if tag == "svg" and self.section:
            self.svgs_in[self.section] = self.svgs_in.get(self.section, 0) + 1

    def handle_endtag(self, tag):
        if tag == "section":
            self.section = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    store = ResultStore(root / "results")
    run_claims(CLAIMS, RunOptions(tier="smoke"), store)
    summary = run_claims(CLAIMS, RunOptions(tier="smoke"), store)
    # the plot shows its check: the band of `ratio`, the scored window and the onset (declared in the
    # stored plot, as a claim's Plot(band_check=..., window=..., onset=...) stores them)
    for claim in summary["claims"]:
        for plot in claim["plots"]:
            plot.update(band_check="ratio", window=0.3, onset="onset")
    store.save_run(summary["run_id"], summary)
    index = render_report(store, summary["run_id"], root / "reports")
    shots = Path(os.environ.get("HARNESS_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return index, shots, root / "profile"


def _load(report, page: str) -> tuple[_Dom, str, str]:
    index, shots, profile = report
    url = (index.parent / page).as_uri()
    proc = _run_chromium(profile, "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    return dom, proc.stdout, proc.stderr


def _console(stderr: str) -> list[str]:
    """Console messages and failed loads: a report without scripts or remote resources logs none."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "net::ERR_" in line]


def test_report_browser_index_shows_table_plots_and_history_link(report):
    dom, html, stderr = _load(report, "index.html")
    assert _console(stderr) == []
    assert "table" in dom.tags and 'class="data summary"' in html
    for claim in CLAIMS:
        assert dom.svgs_in.get(f"claim-{claim.id}", 0) >= 2, f"{claim.id}: curve plot and forest plot"
    assert "history.html" in dom.hrefs and "history-link" in dom.ids and "perf.html" in dom.hrefs
    for claim in CLAIMS:  # the trajectory figure carries its check: band, scored window, onset
        fig = f"claim-{claim.id}-p0"
        assert {fig, f"{fig}-accepted-band", f"{fig}-scored-window", f"{fig}-onset"} <= dom.ids, fig
        assert f"claim-{claim.id}-c0-accepted-band" in dom.ids  # the forest plot's band
    assert "script" not in dom.tags  # the planted <script> is text, not an element
    assert dom.remote == [] and "link" not in dom.tags
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4


def test_report_browser_history_page_renders(report):
    dom, html, stderr = _load(report, "history.html")
    assert _console(stderr) == []
    assert {"diff", "diff-empty", "timeline", "values"} <= dom.ids and "script" not in dom.tags
    assert dom.remote == []
    assert html.count('<th title="') == 2 and "svg" in dom.tags


@pytest.mark.parametrize("page", ["index", "history"])
def test_report_browser_screenshot_is_not_blank(report, page):
    index, shots, profile = report
    path = shots / f"{page}.png"
    proc = _run_chromium(profile, "--window-size=1280,1600", "--hide-scrollbars", f"--screenshot={path}",
                         (index.parent / f"{page}.html").as_uri())
    assert proc.returncode == 0 and path.is_file(), proc.stderr[-2000:]
    print(f"screenshot: {path}")
    assert _console(proc.stderr) == []
    try:
        from PIL import Image
    except ImportError:  # without Pillow: a blank 1280x1600 PNG compresses to a few kB, a page does not
        assert path.stat().st_size > 30_000
        return
    with Image.open(path) as im:
        colors = im.convert("RGB").resize((320, 400)).getcolors(maxcolors=1 << 16)
    assert colors is None or len(colors) > 20, "the screenshot is (nearly) one colour: nothing rendered"
