"""The HTML report: written by scan, self-contained, opened from file:// in Debian's chromium."""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import vislint
import vislint.testing as vt
from conftest import run_cli

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<img src=x onerror=alert(1)>.jpg"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A small real-image folder with a planted exact duplicate, a near duplicate under a hostile
    file name, a truncated JPEG and labels; scanned by the CLI (which writes the report)."""
    root = tmp_path_factory.mktemp("rep") / "data"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    paths = vt.clipart_paths(8, seed=5)
    ims = []
    for i, p in enumerate(paths):
        im = vt.load_rgb(p)
        im.thumbnail((200, 200))
        ims.append(im)
        im.save(root / ("cats" if i % 2 else "dogs") / f"img{i}.png")
    shutil.copy(root / "dogs" / "img0.png", root / "cats" / "copy_of_img0.png")
    ims[3].resize((ims[3].width // 2, ims[3].height // 2)).save(root / "dogs" / HOSTILE, quality=80)
    ims[2].save(root / "dogs" / "cut.jpg", quality=90)
    cut = (root / "dogs" / "cut.jpg").read_bytes()
    (root / "dogs" / "cut.jpg").write_bytes(cut[: len(cut) // 2])
    work = tmp_path_factory.mktemp("repw") / "w"
    proc = run_cli("scan", root, "-o", work, "--model", "none", "--labels", "folder", "-q")
    return root, work, proc


def page_data(work: Path) -> dict:
    text = (work / "report" / "index.html").read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="vislint-data">(.*?)</script>', text, re.S)
    assert m, "data element missing"
    return json.loads(m.group(1))


def test_scan_writes_a_self_contained_report(reported):
    root, work, proc = reported
    page = work / "report" / "index.html"
    assert f"report: {page}" in proc.stdout
    text = page.read_text(encoding="utf-8")
    # no network: nothing is loaded from anywhere but the page's own folder
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)
    assert "@import" not in text and "<link" not in text.lower()
    d = page_data(work)
    assert d["overview"]["images"] == 11
    assert d["overview"]["counts"]["exact_duplicate"] == 1 and d["overview"]["counts"]["broken"] == 1
    assert d["overview"]["labels"] == {"cats": 5, "dogs": 6}
    assert d["run"]["warnings"] == []  # shown at the top of the page when there are any
    # the hostile name is data, and the raw HTML never contains it unescaped
    assert any(i["path"].endswith(HOSTILE) for i in d["images"])
    assert HOSTILE not in text
    # every thumbnail referenced exists; broken files have none
    for im in d["images"]:
        if im["status"] == "ok":
            assert (work / "report" / im["thumb"]).is_file()
        else:
            assert im["thumb"] is None


def test_report_reuses_thumbnails_and_never_touches_inputs(reported, tmp_path):
    root, work, _ = reported
    thumbs = sorted((work / "report" / "thumbs").iterdir())
    mtimes = {p.name: p.stat().st_mtime_ns for p in thumbs}
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    page = vislint.load(work).report(progress=False)
    assert page == work / "report" / "index.html"
    assert {p.name: p.stat().st_mtime_ns for p in (work / "report" / "thumbs").iterdir()} == mtimes
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    proc = run_cli("report", tmp_path / "nowhere", check=False)
    assert proc.returncode == 2 and "not a vislint work dir" in proc.stderr


def test_jupyter_summary_and_gallery(reported):
    _, work, _ = reported
    scan = vislint.load(work)
    summary = scan._repr_html_()
    assert "<table>" in summary and "exact_duplicate" in summary
    gallery = scan.show("near_duplicate")
    html = gallery if isinstance(gallery, str) else gallery.data
    assert "data:image/jpeg;base64," in html
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html and HOSTILE not in html


def _browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    return sync_api


@pytest.mark.browser
def test_report_in_chromium(reported):
    sync_api = _browser()
    _, work, _ = reported
    url = (work / "report" / "index.html").resolve().as_uri()
    errors, dialogs = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_selector(".card")

            # the planted duplicate pair
            page.select_option("#type-filter", "exact_duplicate")
            cards = page.locator('.card[data-type="exact_duplicate"]')
            assert cards.count() == 1
            text = cards.first.inner_text()
            assert "img0.png" in text and "copy_of_img0.png" in text

            # the broken file, with its reason
            page.select_option("#type-filter", "broken")
            cards = page.locator('.card[data-type="broken"]')
            assert cards.count() == 1
            assert "cut.jpg" in cards.first.inner_text() and "truncated" in cards.first.inner_text()
            assert re.search(r"\b1 rows?\b", page.locator("#result-count").inner_text())

            # search narrows the near duplicates to the hostile name, shown as text
            page.select_option("#type-filter", "near_duplicate")
            page.fill("#search", "onerror")
            cards = page.locator('.card[data-type="near_duplicate"]')
            assert cards.count() >= 1
            assert any(HOSTILE in t for t in cards.first.locator(".path").all_inner_texts())
            assert page.locator('img[src="x"]').count() == 0
            page.fill("#search", "no-such-file-anywhere")
            assert page.locator(".card").count() == 0

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.fill("#search", "")
            page.select_option("#type-filter", "near_duplicate")
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert dialogs == []
    assert errors == []
