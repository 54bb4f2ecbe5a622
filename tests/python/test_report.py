"""The HTML report: written by scan, self-contained, opened from file:// in Debian's chromium."""
import contextlib
import csv
import io
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import vislint
import vislint.testing as vt
from conftest import VISLINT, run_cli

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
    data = json.loads(m.group(1))
    # Images are rows of the fields named in image_columns (the page turns them into objects).
    data["images"] = [dict(zip(data["image_columns"], row)) for row in data["images"]]
    return data


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


@contextlib.contextmanager
def _report_page(work, errors, dialogs=None):
    """The work dir's report open in headless chromium; console errors, page errors and
    (when given) dialogs are appended to the lists."""
    sync_api = _browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            if dialogs is not None:
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto((work / "report" / "index.html").resolve().as_uri())
            yield page
        finally:
            browser.close()


@pytest.mark.browser
def test_report_in_chromium(reported):
    _, work, _ = reported
    errors, dialogs = [], []
    with _report_page(work, errors, dialogs) as page:
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
        # under the cap nothing is left out, and no note says otherwise
        assert page.locator("#view-note").is_hidden()
        assert page.locator("#view-note").get_attribute("data-truncated") == "0"

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
    assert dialogs == []
    assert errors == []


# ---------- the caps: the page holds the strongest rows of each type, the work dir all of them ----------

CAP = 3


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """Real clip art with more rows than CAP of several types: near copies (near_duplicate), a set
    of four identical files and a pair (exact_duplicate, groups), five cut PNGs (broken) and six
    grey copies (grayscale); scanned by the CLI with --max-rows-per-type CAP."""
    root = tmp_path_factory.mktemp("cap") / "data"
    root.mkdir()
    ims = []
    for i, p in enumerate(vt.clipart_paths(10, seed=11)):
        im = vt.load_rgb(p)
        im.thumbnail((160, 160))
        ims.append(im)
        im.save(root / f"base{i}.png")
        im.resize((im.width * 9 // 10, im.height * 9 // 10)).save(root / f"base{i}_small.jpg", quality=85)
        im.save(root / f"base{i}_q.jpg", quality=70)
    for j in range(3):
        shutil.copy(root / "base0.png", root / f"copy{j}_of_base0.png")
    shutil.copy(root / "base1.png", root / "copy_of_base1.png")
    for i in range(6):
        ims[i].convert("L").save(root / f"grey{i}.png")
    for i in range(5):
        data = (root / f"base{i}.png").read_bytes()
        (root / f"cut{i}.png").write_bytes(data[: len(data) // 3])
    work = tmp_path_factory.mktemp("capw") / "w"
    run_cli("scan", root, "-o", work, "--model", "none", "--max-rows-per-type", CAP, "-q")
    return root, work


def _csv_rows(work: Path) -> list:
    proc = run_cli("issues", work, "--format", "csv")
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def check_strongest(work: Path, cap: int) -> dict:
    """The page holds min(cap, total) rows of every type, and they are the strongest by the rank
    DATA.md documents, checked against every row `vislint issues --format csv` prints; its
    totals are the true ones. Returns {type: total} of the CSV."""
    d = page_data(work)
    rows = _csv_rows(work)
    everything = defaultdict(list)
    for r in rows:
        everything[r["type"]].append(r)
    assert d["truncation"]["max_rows_per_type"] == cap
    paths = [im["path"] for im in d["images"]]
    held = defaultdict(list)
    for r in d["issues"]:
        held[r["type"]].append((paths[r["image"]], paths[r["other"]] if r["other"] is not None else "", r["score"]))
    assert set(d["overview"]["counts"]) == set(vislint.ISSUE_TYPES)
    for t in vislint.ISSUE_TYPES:
        all_t, page_t = everything[t], held[t]
        total = len(all_t)
        assert d["overview"]["counts"][t] == total, t
        assert d["truncation"]["issues"][t]["total"] == total, t
        assert len(page_t) == d["truncation"]["issues"][t]["shown"] == min(cap, total), t
        # every row on the page is a row of the work dir
        csv_keyed = defaultdict(list)
        for r in all_t:
            csv_keyed[(r["path"], r["other_path"])].append(float(r["score"]))
        for path, other, score in page_t:
            assert any(abs(x - score) < 1e-6 for x in csv_keyed[(path, other)]), (t, path, other, score)
        if t == "exact_duplicate":
            # the largest sets of copies first: weight = rows sharing the keeper (other_path)
            size = Counter(r["other_path"] for r in all_t)
            assert sorted((size[o] for _, o, _ in page_t), reverse=True) == \
                sorted((size[r["other_path"]] for r in all_t), reverse=True)[:cap]
        elif t in ("broken", "wrong_extension"):
            assert sorted(p for p, _, _ in page_t) == sorted(r["path"] for r in all_t)[:cap]
        else:
            want = sorted((float(r["score"]) for r in all_t), reverse=True)[:cap]
            got = sorted((s for _, _, s in page_t), reverse=True)
            assert got == pytest.approx(want, abs=1e-6), t  # the CSV prints 6 significant digits
    return {t: len(everything[t]) for t in vislint.ISSUE_TYPES}


def test_report_holds_the_strongest_rows_up_to_the_cap(capped):
    root, work = capped
    totals = check_strongest(work, CAP)
    # the fixture really has more rows than the cap of these types, so something was left out
    for t in ("near_duplicate", "exact_duplicate", "broken", "grayscale"):
        assert totals[t] > CAP, (t, totals[t])
    # the CSV export, the Python reader and the DB itself still have every row
    db = sqlite3.connect(work / "vislint.db")
    in_db = dict(db.execute("SELECT type, count(*) FROM issues GROUP BY type").fetchall())
    db.close()
    assert {t: n for t, n in totals.items() if n} == in_db
    scan = vislint.load(work)
    assert len(scan.issues()) == sum(totals.values())
    assert scan.summary().set_index("type")["count"].to_dict() == totals
    # the exact set of four (three rows sharing one keeper) fills the cap
    d = page_data(work)
    paths = [im["path"] for im in d["images"]]
    exact = [r for r in d["issues"] if r["type"] == "exact_duplicate"]
    assert {Path(paths[r["image"]]).name for r in exact} | {Path(paths[exact[0]["other"]]).name} == \
        {"base0.png", "copy0_of_base0.png", "copy1_of_base0.png", "copy2_of_base0.png"}


def test_report_caps_duplicate_groups_and_keeps_their_sizes(capped):
    _, work = capped
    d = page_data(work)
    groups = vislint.load(work).duplicate_groups()
    sizes = groups.groupby("group").size()
    assert len(sizes) > CAP
    assert d["truncation"]["groups"] == {"shown": CAP, "total": len(sizes), "ranked_by": "size, largest first"}
    assert len(d["groups"]) == CAP
    assert [g["size"] for g in d["groups"]] == sorted(sizes, reverse=True)[:CAP]
    paths = [im["path"] for im in d["images"]]
    for g in d["groups"]:
        assert len(g["members"]) == g["size"]  # under max_group_members, every member is there
        members = {paths[m] for m in g["members"]}
        match = [grp for _, grp in groups.groupby("group") if set(grp["path"]) == members]
        assert len(match) == 1
        keeper = match[0][match[0]["is_keeper"]]["path"].tolist()
        assert (paths[g["keeper"]] if g["keeper"] is not None else None) == (keeper[0] if keeper else None)


def test_report_makes_thumbnails_only_for_what_it_shows(capped):
    root, work = capped
    d = page_data(work)
    shown = {im["path"] for im in d["images"]}
    everything = set(vislint.load(work).images()["path"])
    assert shown < everything  # rows were left out, and so were their images
    thumbs = {p.name for p in (work / "report" / "thumbs").iterdir()}
    wanted = {Path(im["thumb"]).name for im in d["images"] if im["thumb"]}
    assert thumbs == wanted and wanted
    # images whose content the page never shows get no thumbnail
    db = sqlite3.connect(work / "vislint.db")
    hashes = dict(db.execute("SELECT path, file_hash FROM images WHERE status = 'ok'").fetchall())
    db.close()
    left_out = {hashes[p] for p in everything - shown if p in hashes} - {hashes[p] for p in shown if p in hashes}
    assert left_out
    assert not {f"{h}.jpg" for h in left_out} & thumbs


def test_report_cap_from_the_report_command_and_python(capped, tmp_path):
    _, work = capped
    run_cli("report", work, "--max-rows-per-type", 2, "-q")
    check_strongest(work, 2)
    vislint.load(work).report(progress=False, max_rows_per_type=5)
    check_strongest(work, 5)
    # the default holds every row of this small scan, and says so
    vislint.load(work).report(progress=False)
    d = page_data(work)
    assert d["truncation"]["max_rows_per_type"] == 5000  # the documented default
    assert all(v["shown"] == v["total"] for v in d["truncation"]["issues"].values())
    run_cli("report", work, "--max-rows-per-type", CAP, "-q")  # the other tests see CAP again
    check_strongest(work, CAP)


@pytest.mark.parametrize("bad", ["0", "-4"])
def test_report_cap_below_one_is_an_error(capped, tmp_path, bad):
    root, work = capped
    before = (work / "report" / "index.html").read_bytes()
    proc = run_cli("report", work, "--max-rows-per-type", bad, check=False)
    assert proc.returncode == 2
    assert f"--max-rows-per-type must be at least 1 (got {bad})" in proc.stderr
    assert (work / "report" / "index.html").read_bytes() == before
    # scan checks it before scanning: nothing is written
    proc = run_cli("scan", root, "-o", tmp_path / "w", "--model", "none", "-q", "--max-rows-per-type", bad, check=False)
    assert proc.returncode == 2 and f"--max-rows-per-type must be at least 1 (got {bad})" in proc.stderr
    assert not (tmp_path / "w").exists()
    with pytest.raises(vislint.VislintError, match=rf"--max-rows-per-type must be at least 1 \(got {bad}\)"):
        vislint.load(work).report(progress=False, max_rows_per_type=int(bad))
    with pytest.raises(vislint.VislintError, match=r"--max-rows-per-type must be at least 1"):
        vislint.scan(root, tmp_path / "p", model="none", progress=False, max_rows_per_type=int(bad))
    assert not (tmp_path / "p").exists()
    with pytest.raises(vislint.VislintError, match=r"--max-rows-per-type must be a whole number \(got 'many'\)"):
        vislint.load(work).report(progress=False, max_rows_per_type="many")
    assert (work / "report" / "index.html").read_bytes() == before


def _report_peak_rss_kb(work: Path, cap: int) -> int:
    """Peak RSS (KiB) of one `vislint report` process."""
    code = ("import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, VISLINT, "report", str(work), "-q",
                          "--max-rows-per-type", str(cap)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def _with_synthetic_rows(src: Path, dst: Path, n: int, seed: int) -> Path:
    """A copy of a real work dir with n extra issue rows (random real image pairs, random scores,
    spread over near_duplicate, exact_duplicate, grayscale and broken). Its checksum and run state
    are dropped, as in a work dir written before vislint kept them, since the rows are not a scan's."""
    dst.mkdir(parents=True)
    for name in ("vislint.db", "run.json"):
        shutil.copy(src / name, dst / name)
    rng = random.Random(seed)
    db = sqlite3.connect(dst / "vislint.db")
    ids = [r[0] for r in db.execute("SELECT id FROM images WHERE status = 'ok'")]
    types = ["near_duplicate", "near_duplicate", "exact_duplicate", "grayscale", "broken"]
    db.executemany("INSERT INTO issues(type, image_id, other_id, score, threshold, detail) VALUES(?,?,?,?,?,?)",
                   ((t, rng.choice(ids), rng.choice(ids) if t.endswith("duplicate") else None,
                     1.0 if t in ("exact_duplicate", "broken") else rng.random(), 0.5, f"synthetic row {k}")
                    for k, t in ((k, types[k % len(types)]) for k in range(n))))
    db.execute("DELETE FROM meta WHERE key IN ('checksum', 'run_state')")
    db.commit()
    db.close()
    return dst


def test_report_memory_does_not_grow_with_the_number_of_rows(capped, tmp_path):
    """20 k and 400 k issue rows, cap 50: the report's peak RSS grows by far less than the rows
    would take (before the caps the 400 k rows alone took hundreds of MB as JSON)."""
    _, work = capped
    small = _with_synthetic_rows(work, tmp_path / "small", 20_000, seed=1)
    large = _with_synthetic_rows(work, tmp_path / "large", 400_000, seed=2)
    rss_small = _report_peak_rss_kb(small, 50)
    rss_large = _report_peak_rss_kb(large, 50)
    assert rss_large - rss_small < 24 * 1024, (rss_small, rss_large)
    totals = check_strongest(large, 50)
    assert totals["near_duplicate"] > 150_000
    assert len(page_data(large)["issues"]) <= 50 * len(vislint.ISSUE_TYPES)


@pytest.mark.browser
def test_capped_report_in_chromium(capped):
    """The page says, in the gallery, the type menu and the overview, that it holds CAP of more rows."""
    _, work = capped
    d = page_data(work)
    total = d["overview"]["counts"]["near_duplicate"]
    groups_total = d["truncation"]["groups"]["total"]
    assert total > CAP and groups_total > CAP
    errors = []
    with _report_page(work, errors) as page:
        page.wait_for_selector(".card")

        page.select_option("#type-filter", "near_duplicate")
        assert page.locator('.card[data-type="near_duplicate"]').count() == CAP
        note = page.locator("#view-note")
        assert note.is_visible() and note.get_attribute("data-truncated") == "1"
        text = note.inner_text()
        assert f"Showing {CAP} of {total:,} near_duplicate rows (the first by score, highest first)" in text
        assert f"{total - CAP:,} left out" in text
        assert "--max-rows-per-type" in text and "vislint issues" in text and "--type near_duplicate" in text
        option = page.locator('#type-filter option[value="near_duplicate"]').inner_text()
        assert f"({CAP} of {total:,})" in option

        # the overview gives the true total and, beside it, what the page holds
        counts = page.locator("#issue-counts")
        assert "in report" in counts.locator("tr").first.inner_text()
        row = counts.locator("tr", has=page.locator('button[data-type="near_duplicate"]')).inner_text()
        assert re.search(rf"near_duplicate\s+{total:,}\s+{CAP}\b", row), row
        assert page.locator("#counts-note").inner_text()
        # long run values (CPU flags, runtime) wrap instead of squeezing the names to a letter a line
        shares = page.evaluate("Array.from(document.querySelectorAll('#run-info tr')).map("
                               "r => r.cells[0].getBoundingClientRect().width / r.getBoundingClientRect().width)")
        assert shares and min(shares) > 0.3, shares

        page.select_option("#type-filter", "groups")
        assert page.locator('.card[data-type="groups"]').count() == CAP
        assert f"Showing {CAP} of {groups_total:,} duplicate groups (the first by size, largest first)" in note.inner_text()

        # a type the page holds whole has no note
        page.select_option("#type-filter", "leak")
        assert note.is_hidden() and note.get_attribute("data-truncated") == "0"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.select_option("#type-filter", "near_duplicate")
        page.screenshot(path=str(ARTIFACTS / "report-capped.png"), full_page=True)
    assert errors == []
