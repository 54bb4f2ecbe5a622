"""File, folder and label names that are not UTF-8 (Latin-1 names from old archives): stored as
their bytes, printed with every odd byte as \\xNN, returned by Python as os.fsdecode() strings."""
import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

import vislint
import vislint.testing as vt
from conftest import VISLINT


def cli(*args) -> str:
    """Runs vislint with byte arguments; its output must be UTF-8 (the \\xNN spelling)."""
    proc = subprocess.run([VISLINT, *map(os.fsencode, args)], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    proc.stderr.decode("utf-8")
    return proc.stdout.decode("utf-8")


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """Real images under non-UTF-8 names: b"caf\\xe9.png", its exact copy in the folder
    b"caf\\xe9s", a truncated PNG b"tronqu\\xe9.png", and a label CSV (itself named
    b"\\xe9tiquettes.csv") giving b"caf\\xe9.png" the label b"chat\\xe9" and naming a missing
    b"manquant\\xe9.png". Scanned once by the CLI and once by the Python API."""
    base = tmp_path_factory.mktemp("names")
    root = base / "data"
    root.mkdir()
    r = os.fsencode(root)
    os.mkdir(r + b"/caf\xe9s")
    ims = [vt.load_rgb(p) for p in vt.clipart_paths(3, seed=11)]
    ims[0].thumbnail((180, 180))
    ims[0].save(r + b"/caf\xe9.png", format="PNG")
    shutil.copyfile(r + b"/caf\xe9.png", r + b"/caf\xe9s/copie\xff.png")
    ims[1].save(r + b"/plain.png", format="PNG")
    ims[2].save(r + b"/caf\xe9s/b.jpg", format="JPEG", quality=90)
    png = (root / "plain.png").read_bytes()
    with open(r + b"/tronqu\xe9.png", "wb") as f:
        f.write(png[: len(png) // 2])
    labels = r + b"/\xe9tiquettes.csv"
    with open(labels, "wb") as f:
        f.write(b"path,label\ncaf\xe9.png,chat\xe9\nplain.png,dog\ncaf\xe9s/b.jpg,dog\n"
                b"manquant\xe9.png,dog\n")
    files = {r + b"/caf\xe9.png", r + b"/caf\xe9s/copie\xff.png", r + b"/plain.png",
             r + b"/caf\xe9s/b.jpg", r + b"/tronqu\xe9.png"}
    work = base / "w_cli"
    cli("scan", root, "-o", work, "--model", "none", "--labels", labels, "-q")
    api = base / "w_api"
    vislint.scan(root, api, progress=False, model="none", threads=2, labels=os.fsdecode(labels))
    return root, files, labels, work, api


def spelled(root, tail: str) -> str:
    return f"{root}/{tail}"


def test_cli_prints_names_escaped_in_every_format(odd):
    root, _, _, work, _ = odd
    issues = json.loads(cli("issues", work, "--format", "json"))
    exact = [i for i in issues if i["type"] == "exact_duplicate"]
    assert len(exact) == 1
    assert {exact[0]["path"], exact[0]["other_path"]} == {
        spelled(root, "caf\\xe9.png"), spelled(root, "caf\\xe9s/copie\\xff.png")}
    broken = [i for i in issues if i["type"] == "broken"]
    assert [b["path"] for b in broken] == [spelled(root, "tronqu\\xe9.png")]
    assert broken[0]["detail"].startswith("truncated")
    for fmt in ("csv", "table"):
        out = cli("issues", work, "--format", fmt)
        assert spelled(root, "caf\\xe9s/copie\\xff.png") in out and "tronqu\\xe9.png" in out

    stats = json.loads(cli("stats", work, "--format", "json"))
    assert {s["path"] for s in stats} == {spelled(root, t) for t in (
        "caf\\xe9.png", "caf\\xe9s/copie\\xff.png", "plain.png", "caf\\xe9s/b.jpg", "tronqu\\xe9.png")}
    csv_out = cli("stats", work, "--format", "csv")
    assert spelled(root, "caf\\xe9s/b.jpg") in csv_out

    classes = json.loads(cli("classes", work, "--format", "json"))
    assert {c["label"]: c["count"] for c in classes["classes"]} == {"chat\\xe9": 1, "dog": 2}
    assert "chat\\xe9" in cli("classes", work, "--format", "csv")
    assert "chat\\xe9" in cli("classes", work, "--format", "table")


def test_run_json_and_report_are_valid_utf8_json(odd):
    root, _, labels, work, api = odd
    for w in (work, api):
        run = json.loads((w / "run.json").read_bytes().decode("utf-8"))
        assert run["status"] == "complete"
        assert run["options"]["labels"]["labels"] == spelled(root, "\\xe9tiquettes.csv")
        assert any("manquant\\xe9.png" in x for x in run["warnings"]), run["warnings"]
        html = (w / "report" / "index.html").read_bytes().decode("utf-8")
        m = re.search(r'<script type="application/json" id="vislint-data">(.*?)</script>', html, re.S)
        data = json.loads(m.group(1))
        paths = {row[data["image_columns"].index("path")] for row in data["images"]}
        assert {spelled(root, "caf\\xe9.png"), spelled(root, "caf\\xe9s/copie\\xff.png"),
                spelled(root, "tronqu\\xe9.png")} <= paths
        assert data["overview"]["labels"] == {"chat\\xe9": 1, "dog": 2}
        assert "\ufffd" not in m.group(1)  # nothing was replaced: every byte is spelled out


@pytest.mark.parametrize("which", ["cli", "api"])
def test_python_readers_give_back_the_real_bytes(odd, which):
    root, files, _, work, api = odd
    scan = vislint.load(work if which == "cli" else api)
    images = scan.images()
    assert {os.fsencode(p) for p in images["path"]} == files
    for p in images["path"]:
        with open(p, "rb") as f, open(os.fsencode(p), "rb") as g:
            assert f.read() == g.read() and os.path.getsize(p) > 0
    r = os.fsencode(root)
    by = images.set_index(images["path"].map(os.fsencode))
    assert by.loc[r + b"/caf\xe9.png", "label"].encode("utf-8", "surrogateescape") == b"chat\xe9"

    dups = scan.duplicates()
    assert len(dups) == 1
    assert {os.fsencode(dups["path_a"][0]), os.fsencode(dups["path_b"][0])} == {
        r + b"/caf\xe9.png", r + b"/caf\xe9s/copie\xff.png"}
    assert os.fsencode(dups["keeper"][0]) in {r + b"/caf\xe9.png", r + b"/caf\xe9s/copie\xff.png"}
    exact = scan.issues("exact_duplicate")
    assert os.fsencode(exact["other_path"][0]) in files
    broken = scan.broken()
    assert [os.fsencode(p) for p in broken["path"]] == [r + b"/tronqu\xe9.png"]
    classes = scan.classes()
    assert sorted(classes["label"].map(lambda s: s.encode("utf-8", "surrogateescape"))) == [b"chat\xe9", b"dog"]
    groups = scan.duplicate_groups()
    assert {os.fsencode(p) for p in groups["path"]} == {r + b"/caf\xe9.png", r + b"/caf\xe9s/copie\xff.png"}

    gallery = scan.show("exact_duplicate")
    html = gallery if isinstance(gallery, str) else gallery.data
    html.encode("utf-8")  # no lone surrogates: the gallery prints names as \xNN
    assert "caf\\xe9s/copie\\xff.png" in html
    assert html.count("data:image/jpeg;base64,") == 2  # both thumbnails found by their path


def test_python_takes_non_utf8_inputs_and_label_rows(odd, tmp_path):
    root, files, _, _, _ = odd
    r = os.fsencode(root)
    folder = os.fsdecode(r + b"/caf\xe9s")  # a str as os.listdir(str) gives it: lone surrogates
    labels = pd.DataFrame({"path": [os.fsdecode(r + b"/caf\xe9s/b.jpg"), r + b"/caf\xe9s/copie\xff.png"],
                           "label": [os.fsdecode(b"\xe9t\xe9"), "dog"]})
    scan = vislint.scan([folder], tmp_path / "w", progress=False, model="none", labels=labels)
    images = scan.images()
    assert {os.fsencode(p) for p in images["path"]} == {r + b"/caf\xe9s/b.jpg", r + b"/caf\xe9s/copie\xff.png"}
    got = {os.fsencode(p): lab.encode("utf-8", "surrogateescape") for p, lab in zip(images["path"], images["label"])}
    assert got == {r + b"/caf\xe9s/b.jpg": b"\xe9t\xe9", r + b"/caf\xe9s/copie\xff.png": b"dog"}
    # the same folder given as bytes is the same dataset; the work dir's own name may be odd too
    work = os.fsencode(tmp_path) + b"/r\xe9sultats"
    again = vislint.scan([r + b"/caf\xe9s"], work, progress=False, model="none")
    assert sorted(again.images()["path"]) == sorted(images["path"])
    assert os.fsencode(again.report(progress=False)) == work + b"/report/index.html"


def test_similar_and_model_readers_with_non_utf8_names(odd, tmp_path):
    root, files, labels, _, _ = odd
    r = os.fsencode(root)
    work = tmp_path / "w"
    cli("scan", root, "-o", work, "--labels", labels, "-q")  # the default model
    scan = vislint.load(work)
    hits = scan.similar(os.fsdecode(r + b"/caf\xe9.png"), k=2)
    assert os.fsencode(hits["path"][0]) == r + b"/caf\xe9s/copie\xff.png" and hits["score"][0] > 0.99
    out = json.loads(cli("similar", work, r + b"/caf\xe9.png", "-k", "2", "--format", "json"))
    assert out[0]["path"] == spelled(root, "caf\\xe9s/copie\\xff.png")
    ranked = scan.outliers(all=True)
    assert {os.fsencode(p) for p in ranked["path"]} == files - {r + b"/tronqu\xe9.png"}
    assert ranked["score"].dtype == "float64" and ranked["flagged"].dtype == bool
    members = [os.fsencode(p) for c in scan.clusters()["members"] for p in c]
    assert set(members) <= files and r + b"/caf\xe9.png" in members
