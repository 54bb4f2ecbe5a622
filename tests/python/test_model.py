"""Embeddings, the kNN graph and what it finds, with the default model (EfficientNet-Lite0,
exported by `make model`) on real images."""
import gzip
import json
import sys
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vislint
import vislint.testing
from conftest import run_cli

CACHE = Path(os.environ.get("VISLINT_CACHE") or Path.home() / ".cache" / "vislint")
MODEL_DIR = CACHE / "efficientnet_lite0"
REF_DIR = MODEL_DIR / "reference"
MILD = ("resize50_jpeg40", "jpeg15", "hflip", "brightness35")


def fashion_items(n, seed=0):
    """n Fashion-MNIST training images (Debian dataset-fashion-mnist) as PIL images."""
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
        data = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    idx = np.random.default_rng(seed).choice(len(data), n, replace=False)
    return [Image.fromarray(data[i]).resize((112, 112), Image.BILINEAR) for i in idx]


@pytest.fixture(scope="session")
def model_scan(corpus, tmp_path_factory):
    root, truth = corpus
    work = tmp_path_factory.mktemp("model") / "w"
    run_cli("scan", root, "-o", work, "-q")
    return root, work, truth, vislint.load(work)


def origin_of(truth):
    derived = truth["derived_from"]

    def origin(p):
        while p in derived:
            p = derived[p]
        return p

    return origin


def test_cpp_path_matches_torch_reference():
    ref = json.loads((REF_DIR / "reference.json").read_text())
    assert len(ref["entries"]) == 6
    for e in ref["entries"]:
        feats, logits = vislint.embed(REF_DIR / e["png"], model_size=e["size"], precision="f32")
        torch_feats = np.asarray(e["features"], dtype=np.float64)
        cosine = float(feats @ torch_feats / np.linalg.norm(torch_feats))
        assert cosine >= 1 - 1e-4, (e["png"], cosine)
        assert abs(np.linalg.norm(feats) - 1) < 1e-4
        assert int(np.argmax(logits)) == e["top5_indices"][0], e["png"]


def test_real_photos_land_in_the_right_imagenet_classes():
    _, logits = vislint.embed(REF_DIR / "chelsea.png")
    assert int(np.argmax(logits)) in range(281, 286)  # tabby / tiger / Egyptian cat ...
    _, logits = vislint.embed(REF_DIR / "coffee.png")
    assert int(np.argmax(logits)) in (967, 968, 504)  # espresso, cup, coffee mug


def test_features_npy_rows_are_image_ids(model_scan):
    root, work, truth, scan = model_scan
    feats = scan.features()
    images = scan.images()
    assert feats.dtype == np.float16 and feats.shape == (images["id"].max() + 1, 1280)
    for _, row in images.iterrows():
        norm = float(np.linalg.norm(feats[row["id"]].astype(np.float32)))
        if row["status"] == "ok":
            assert abs(norm - 1) < 1e-2
        else:
            assert norm == 0
    assert (work / "index.faiss").is_file()


def test_transformed_copies_are_near_duplicates_and_similar(model_scan):
    root, work, truth, scan = model_scan
    origin = origin_of(truth)
    near = scan.issues("near_duplicate")
    pairs = {frozenset((str(Path(a).relative_to(root)), str(Path(b).relative_to(root))))
             for a, b in zip(near["path"], near["other_path"])}
    for orig, copy, transform in truth["near_duplicates"]:
        if transform in MILD:
            assert frozenset((orig, copy)) in pairs, transform
        # Every transformed copy finds its original (or another copy of it) first.
        top = scan.similar(root / copy, k=3)
        assert origin(str(Path(top["path"][0]).relative_to(root))) == origin(copy), transform
        assert str(root / copy) not in set(top["path"])
    unrelated = [p for p in pairs if len({origin(x) for x in p}) > 1]
    assert unrelated == []
    assert (near["score"] >= near["threshold"]).all()


def test_reduced_index_keeps_exact_similarities(model_scan, tmp_path):
    """--index-dim 32 projects the 1280-d embeddings before the index (PCA); candidates are
    re-scored with the full vectors, so rows, scores and `similar` match the unreduced scan."""
    root, work, truth, scan = model_scan
    reduced_dir = tmp_path / "reduced"
    shutil.copytree(work, reduced_dir)
    run_cli("scan", root, "-o", reduced_dir, "-q", "--index-dim", "32")  # re-derives, no re-embedding
    reduced = vislint.load(reduced_dir)
    assert scan.run["index"] == "Flat"
    assert reduced.run["index"].startswith("PCA1280->32,")
    assert reduced.run["counts"]["reused"] == scan.run["counts"]["images"]

    def pairs(s):
        near = s.issues("near_duplicate")
        return {frozenset((a, b)): sc for a, b, sc in zip(near["path"], near["other_path"], near["score"])}
    full, red = pairs(scan), pairs(reduced)
    assert full and set(red) == set(full)
    assert max(abs(red[p] - full[p]) for p in full) < 1e-5
    a = scan.images().set_index("path")["outlier_score"].dropna()
    b = reduced.images().set_index("path")["outlier_score"].dropna()
    assert set(a.index) == set(b.index) and (a - b[a.index]).abs().max() < 1e-5
    for _, copy, _ in truth["near_duplicates"][:4]:
        x, y = scan.similar(root / copy, k=5), reduced.similar(root / copy, k=5)
        assert set(x["path"]) == set(y["path"])  # exact copies tie: their order may differ
        assert np.allclose(x["score"], y["score"], atol=1e-5)


def test_cli_similar_returns_the_original_first(model_scan):
    root, work, truth, _ = model_scan
    orig, copy, _ = next(t for t in truth["near_duplicates"] if t[2] == "jpeg15")
    out = run_cli("similar", work, root / copy, "-k", "3", "--format", "csv").stdout.splitlines()
    assert out[0] == "rank,path,score"
    assert out[1].split(",")[1] == str(root / orig)
    assert len(out) == 4


def test_similar_accepts_pixels_and_vectors(model_scan):
    root, work, truth, scan = model_scan
    orig, copy, _ = next(t for t in truth["near_duplicates"] if t[2] == "resize50_jpeg40")
    pixels = np.asarray(Image.open(root / copy).convert("RGB"))
    hits = scan.similar(pixels, k=3)  # the copy itself is in the dataset: it comes first
    assert hits["path"][0] == str(root / copy) and hits["score"][0] > 0.99
    assert str(root / orig) in set(hits["path"])
    images = scan.images().set_index("path")
    row = int(images.loc[str(root / orig), "id"])
    hits = scan.similar(np.asarray(scan.features()[row], dtype=np.float32), k=2)
    assert hits["path"][0] == str(root / orig) and hits["score"][0] > 0.999
    with pytest.raises(vislint.VislintError):
        scan.similar(np.zeros((3, 3)), k=1)


def test_clusters_and_outlier_ranking(model_scan):
    root, work, truth, scan = model_scan
    clusters = scan.clusters()
    assert (clusters["size"] >= 2).all() and list(clusters["size"]) == sorted(clusters["size"], reverse=True)
    members = {m for ms in clusters["members"] for m in ms}
    for orig, copy, t in truth["near_duplicates"]:
        if t in MILD:
            assert str(root / copy) in members
    ranking = scan.outliers(all=True)
    assert len(ranking) == int(scan.images()["has_embedding"].sum())
    assert ranking["score"].is_monotonic_decreasing


def _outlier_corpus(dirpath: Path, majority, odd, odd_name):
    dirpath.mkdir(parents=True)
    for i, im in enumerate(majority):
        im.convert("RGB").save(dirpath / f"item_{i:03d}.png")
    odd.convert("RGB").save(dirpath / odd_name)
    return dirpath


def test_clip_art_among_photos_and_photo_among_clip_art_is_top_outlier(tmp_path):
    clipart = [vislint.testing.load_rgb(p, 256) for p in vislint.testing.clipart_paths(31, seed=3)]
    fashion = fashion_items(30, seed=1)
    photo = Image.open(REF_DIR / "chelsea.png")
    cases = [
        (_outlier_corpus(tmp_path / "a", fashion, clipart[0], "odd_clipart.png"), "odd_clipart.png"),
        (_outlier_corpus(tmp_path / "b", clipart[1:], photo, "odd_photo.png"), "odd_photo.png"),
    ]
    # Ranked first by a clear margin; whether it is also flagged depends on where a 31-image
    # corpus puts the 3.5 cut: over 8 draws of these corpora the planted image ranked first 8/8
    # at f32 and bf16 but crossed the cut on only 3-4 (docs/benchmarks.md), so the flag is
    # checked for consistency with the z-score, not for its value.
    for data, odd in cases:
        scan = vislint.scan(data, data.parent / (data.name + "_work"), progress=False)
        ranking = scan.outliers(all=True)
        assert Path(ranking["path"][0]).name == odd, ranking.head()
        assert ranking["z"][0] > 1.5 * max(ranking["z"][1], 1.0), ranking.head()
        flagged = scan.issues("outlier")
        if ranking["z"][0] > 3.5:
            assert Path(flagged["path"].iloc[0]).name == odd
            assert flagged["other_path"].iloc[0] != ""
        else:
            assert odd not in {Path(p).name for p in flagged["path"]}


def test_rescan_with_another_model_does_not_mix_features(corpus, tmp_path):
    root, truth = corpus
    work = tmp_path / "w"
    a = vislint.scan(root, work, progress=False)
    fa = np.array(a.features())
    b = vislint.scan(root, work, progress=False, model_size=128)
    assert b.run["counts"]["analysed"] == b.run["counts"]["images"]  # nothing reused
    fb = np.array(b.features())
    fresh = vislint.scan(root, tmp_path / "fresh", progress=False, model_size=128)
    np.testing.assert_array_equal(fb, np.array(fresh.features()))
    assert not np.array_equal(fa, fb)
    c = vislint.scan(root, work, progress=False, model="none")
    assert c.features() is None and not (work / "index.faiss").exists()


def test_missing_or_bad_model_is_a_clear_error(corpus, tmp_path):
    root, _ = corpus
    env_cache = os.environ.get("VISLINT_CACHE")
    os.environ["VISLINT_CACHE"] = str(tmp_path / "empty-cache")
    try:
        with pytest.raises(vislint.VislintError, match="make model"):
            vislint.scan(root, tmp_path / "w", progress=False)
    finally:
        if env_cache is None:
            del os.environ["VISLINT_CACHE"]
        else:
            os.environ["VISLINT_CACHE"] = env_cache
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(vislint.VislintError, match="cannot load model"):
        vislint.scan(root, tmp_path / "w2", progress=False, model=str(bogus))
    p = run_cli("similar", tmp_path / "w2", REF_DIR / "chelsea.png", check=False)
    assert p.returncode != 0


def test_custom_onnx_model_with_options(corpus, tmp_path):
    """Any ONNX model: here the same network given by path, with explicit preprocessing."""
    root, truth = corpus
    onnx = tmp_path / "my_model.onnx"
    shutil.copy(MODEL_DIR / "efficientnet_lite0.onnx", onnx)
    scan = vislint.scan(root, tmp_path / "w", progress=False, model=str(onnx), model_size=160,
                        model_mean=[127, 127, 127], model_std=[128], model_output="features")
    default = vislint.scan(root, tmp_path / "w2", progress=False)
    np.testing.assert_allclose(np.array(scan.features(), dtype=np.float32),
                               np.array(default.features(), dtype=np.float32), atol=2e-3)


def _cpu_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("prec") / "data"
    d.mkdir()
    for i, p in enumerate(vislint.testing.clipart_paths(6, seed=11)):
        vislint.testing.load_rgb(p, 200).save(d / f"img{i}.png")
    return d


def test_precision_that_ran_is_in_run_json_the_report_and_the_signature(small_set, tmp_path):
    work = tmp_path / "w"
    f32 = vislint.scan(small_set, work, progress=False, precision="f32")
    inf = f32.run["inference"]
    assert inf["precision"] == "f32" and inf["precision_option"] == "f32"
    assert inf["runtime"].startswith("OpenVINO 2026.4.1")
    flags = _cpu_flags()
    for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16"):
        assert (f in inf["cpu_flags"]) == (f in flags), f
    assert "FP32" in inf["cpu_capabilities"]
    page = (work / "report" / "index.html").read_text()
    data = json.loads(page.split('id="vislint-data">', 1)[1].split("</script>", 1)[0])
    assert data["run"]["inference"]["precision"] == "f32"
    f32_feats = np.array(f32.features(), dtype=np.float32)  # the file is rewritten below
    # auto is bf16 exactly where OpenVINO reports BF16 for this CPU.
    auto = vislint.scan(small_set, work, progress=False, precision="auto")
    has_bf16 = "BF16" in inf["cpu_capabilities"]
    assert auto.run["inference"]["precision"] == ("bf16" if has_bf16 else "f32")
    counts = auto.run["counts"]
    if has_bf16:  # a resumed scan never mixes precisions: everything is embedded again
        assert counts["analysed"] == counts["images"] == 6
        a = np.asarray(auto.features(), dtype=np.float32)
        b = f32_feats
        assert not np.array_equal(a, b)
        assert (np.sum(a * b, axis=1) > 0.98).all()  # bf16 stays close to f32
    else:
        assert counts["reused"] == 6 and counts["analysed"] == 0


def test_int8_scans_with_the_quantized_model_and_stays_close_to_f32(small_set, tmp_path):
    meta = json.loads((MODEL_DIR / "model.json").read_text())
    assert (MODEL_DIR / meta["int8"]["file"]).is_file(), "run `make model`"
    work = tmp_path / "w"
    run_cli("scan", small_set, "-o", work, "-q", "--precision", "f32")
    f32 = vislint.load(work)
    f32_feats = np.array(f32.features(), dtype=np.float32)  # the file is rewritten below
    run_cli("scan", small_set, "-o", work, "-q", "--precision", "int8")
    run = json.loads((work / "run.json").read_text())
    assert run["inference"]["precision"] == "int8" and run["options"]["precision"] == "int8"
    page = (work / "report" / "index.html").read_text()
    data = json.loads(page.split('id="vislint-data">', 1)[1].split("</script>", 1)[0])
    assert data["run"]["inference"]["precision"] == "int8"
    int8 = vislint.load(work)
    # Another precision is another analysis: every image is embedded again, none reused.
    assert run["counts"]["analysed"] == 6 and run["counts"]["reused"] == 0
    assert int8.images()["has_embedding"].all()
    a = np.array(int8.features(), dtype=np.float32)
    cos = np.sum(a * f32_feats, axis=1)
    # make model measured int8 vs f32 on 100 held-out clip-art images at 160 px: mean 0.982,
    # minimum 0.89; these six are another sample, so the bounds leave room below that.
    assert cos.min() > 0.85 and cos.mean() > 0.95, cos
    assert not np.array_equal(a, f32_feats)
    # `similar` embeds the query at the scan's precision: a copy of an image from outside the
    # dataset finds it with the int8 vector it has (f32's would score about cos[2] < 0.999).
    shutil.copy(small_set / "img2.png", tmp_path / "query.png")
    p = run_cli("similar", work, tmp_path / "query.png", "-k", "1", "--format", "csv")
    _, path, score = p.stdout.splitlines()[1].split(",")
    assert path.endswith("img2.png") and float(score) > 0.999, (p.stdout, cos)


def test_int8_needs_its_file_or_a_quantized_model(small_set, tmp_path, monkeypatch):
    meta = json.loads((MODEL_DIR / "model.json").read_text())
    # A cache whose int8 IR lost its weights (.bin): a clear error naming the file and the fix.
    cache = tmp_path / "cache" / "efficientnet_lite0"
    cache.mkdir(parents=True)
    for f in ("model.json", "efficientnet_lite0.onnx", meta["int8"]["file"]):
        shutil.copy(MODEL_DIR / f, cache / f)
    monkeypatch.setenv("VISLINT_CACHE", str(tmp_path / "cache"))
    p = run_cli("scan", small_set, "-o", tmp_path / "w", "--precision", "int8", check=False)
    missing = cache / (Path(meta["int8"]["file"]).stem + ".bin")
    assert p.returncode == 2, p.stderr
    assert f"the default model's int8 file {missing} is missing; run `make model`" in p.stderr, p.stderr
    with pytest.raises(vislint.VislintError, match="int8 file .* is missing; run `make model`"):
        vislint.embed(small_set / "img0.png", precision="int8")
    # f32 needs no int8 file.
    assert vislint.embed(small_set / "img0.png", precision="f32")[0].shape == (1280,)
    monkeypatch.undo()
    # A user's float ONNX at int8 is refused, naming the file; so is the quantized IR at f32.
    onnx = str(MODEL_DIR / "efficientnet_lite0.onnx")
    p = run_cli("scan", small_set, "-o", tmp_path / "w2", "--model", onnx, "--precision", "int8", check=False)
    assert p.returncode == 2 and f"--precision int8 needs a quantized model" in p.stderr, p.stderr
    assert f"{onnx} has none" in p.stderr, p.stderr
    xml = str(MODEL_DIR / meta["int8"]["file"])
    with pytest.raises(vislint.VislintError, match="is quantized \\(int8\\); pass --precision int8"):
        vislint.embed(small_set / "img0.png", model=xml, model_output="features", model_size=160,
                      model_mean=[127], model_std=[128], precision="f32")


def test_unknown_precisions_are_refused(small_set, tmp_path):
    p = run_cli("scan", small_set, "-o", tmp_path / "w", "--precision", "fp16", check=False)
    assert p.returncode == 2 and "--precision must be auto, f32, bf16 or int8 (got 'fp16')" in p.stderr, p.stderr
    caps = vislint.scan(small_set, tmp_path / "w2", progress=False, report=False,
                        precision="f32").run["inference"]["cpu_capabilities"]
    if "BF16" not in caps:
        with pytest.raises(vislint.VislintError, match="--precision bf16 needs a CPU with BF16 support"):
            vislint.embed(small_set / "img0.png", precision="bf16")


def test_openvino_ir_model_gives_the_onnx_features(small_set, tmp_path):
    """--model takes an OpenVINO IR (.xml + .bin), here the default network saved by the
    runtime itself (ov.serialize: no conversion tool)."""
    # `import openvino` imports openvino.tools.ovc, which sends a telemetry event unless
    # openvino_telemetry cannot be imported (then it uses a stub): make it unimportable.
    sys.modules.setdefault("openvino_telemetry", None)
    import openvino as ov
    xml = tmp_path / "lite0.xml"
    ov.serialize(ov.Core().read_model(str(MODEL_DIR / "efficientnet_lite0.onnx")), str(xml))
    opts = dict(model_size=160, model_output="features", precision="f32")
    onnx_feats, _ = vislint.embed(small_set / "img1.png", model=str(MODEL_DIR / "efficientnet_lite0.onnx"), **opts)
    ir_feats, _ = vislint.embed(small_set / "img1.png", model=str(xml), **opts)
    np.testing.assert_allclose(ir_feats, onnx_feats, atol=1e-5)
    scan = vislint.scan(small_set, tmp_path / "w", model=str(xml), progress=False, report=False, **opts)
    assert scan.images()["has_embedding"].all() and scan.features().shape[1] == 1280
    xml.with_suffix(".bin").unlink()
    with pytest.raises(vislint.VislintError, match="needs its weights next to it"):
        vislint.embed(small_set / "img1.png", model=str(xml), **opts)


def star_violations(scan) -> list:
    """Members of near-duplicate groups that are neither an exact copy of the keeper nor paired
    with it (themselves or through an exact copy): a chain, which "keep one, remove the rest" must
    not act on."""
    groups = scan.duplicate_groups()
    near = scan.issues("near_duplicate")
    exact = scan.issues("exact_duplicate")
    paired = {frozenset(p) for p in zip(near["path"], near["other_path"])}
    copy_of = {}
    for a, b in zip(exact["path"], exact["other_path"]):
        copy_of.setdefault(a, set()).add(b)
        copy_of.setdefault(b, set()).add(a)
    bad = []
    for _, g in groups[groups["kind"] == "near"].groupby("group"):
        keeper = g.loc[g["is_keeper"], "path"].iloc[0]
        keeper_side = {keeper} | copy_of.get(keeper, set())
        for m in g.loc[~g["is_keeper"], "path"]:
            sides = {m} | copy_of.get(m, set())
            if sides & keeper_side:
                continue  # an exact copy of the keeper
            if not any(frozenset((x, k)) in paired for x in sides for k in keeper_side):
                bad.append((keeper, m))
    return bad


def test_near_groups_on_real_clip_art_never_chain(model_scan, tmp_path):
    root, work, truth, scan = model_scan
    groups = scan.duplicate_groups()
    assert (groups["kind"] == "near").any()
    assert star_violations(scan) == []
    # At a loose threshold pairs chain distinct pictures; the groups still are stars, and pairs
    # whose two sides are not in one group (other groups, or none) stay pairs.
    loose_dir = tmp_path / "w"
    shutil.copytree(work, loose_dir)
    loose = vislint.scan(root, loose_dir, near_duplicate_threshold=0.6, progress=False, report=False)
    assert loose.run["counts"]["analysed"] == 0
    assert star_violations(loose) == []
    g = loose.duplicate_groups()
    group_of = dict(zip(g.loc[g["kind"] == "near", "path"], g.loc[g["kind"] == "near", "group"]))
    near = loose.issues("near_duplicate")
    across = [(a, b) for a, b in zip(near["path"], near["other_path"])
              if group_of.get(a, a) != group_of.get(b, b)]
    assert len(across) > 0


def test_transformed_copies_under_the_threshold_pair_through_their_views(model_scan, tmp_path):
    """A mirrored, cropped or rotated copy can sit far under the 0.90 similarity of a near
    duplicate; a kNN edge from 0.5 up pairs it when a transformed view of one image hashes like
    the other. Off (--copy-candidate-threshold 0.9), those pairs are gone, with no re-analysis."""
    root, work, truth, scan = model_scan
    planted = {frozenset((str(root / a), str(root / b))): t for a, b, t in truth["near_duplicates"]}
    near = scan.issues("near_duplicate")
    by_view = near[near["detail"].str.contains("hashes like the other")]
    assert len(by_view) > 0
    assert (by_view["score"] < 0.9).all() and (by_view["threshold"] == 0.5).all()
    kinds = {planted.get(frozenset(p)) for p in zip(by_view["path"], by_view["other_path"])}
    assert kinds & {"center_crop85", "rotate7", "hflip"}, kinds
    assert None not in kinds  # every pair matched by a view is a planted copy
    off_dir = tmp_path / "w"
    shutil.copytree(work, off_dir)
    off = vislint.scan(root, off_dir, copy_candidate_threshold=0.9, progress=False, report=False)
    assert off.run["counts"]["analysed"] == 0
    off_near = off.issues("near_duplicate")
    assert not off_near["detail"].str.contains("hashes like the other").any()
    assert len(off_near) == len(near) - len(by_view)
