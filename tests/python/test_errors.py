"""Bad models, bad option values and bad label numbers get an error naming the file / option /
field (exit code 2, one line, never "internal error"); paths mean files however they are spelled."""
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import vislint
import vislint.testing
from conftest import VISLINT, run_cli


# --- tiny ONNX models ------------------------------------------------------------------------

def _const(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _model(path, nodes, in_shape, out_shape, inits=(), out_name="emb", opset=11):
    """A one-input, one-output float model."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
                              initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _pool(tail=()):
    """input -> per-channel mean (N x 3) -> tail nodes; the last node writes 'emb'."""
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p"]),
             helper.make_node("Flatten", ["p"], ["emb" if not tail else "f"])]
    return nodes + list(tail)


NCHW = ["N", 3, "H", "W"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "good": _model(d / "good.onnx", _pool(), NCHW, ["N", 3]),
        # A current opset (Flatten / GlobalAveragePool unchanged, the file says opset 18).
        "good18": _model(d / "good18.onnx", _pool(), NCHW, ["N", 3], opset=18),
        "one_channel": _model(d / "one_channel.onnx", _pool(), ["N", 1, "H", "W"], ["N", 1]),
        "rank2": _model(d / "rank2.onnx", [helper.make_node("Relu", ["input"], ["emb"])], ["N", 3], ["N", 3]),
        "scalar": _model(d / "scalar.onnx", [helper.make_node("ReduceMean", ["input"], ["emb"], keepdims=0)],
                         NCHW, []),
        "zeros": _model(d / "zeros.onnx", _pool([helper.make_node("Mul", ["f", "zero"], ["emb"])]), NCHW,
                        ["N", 3], [_const("zero", [0.0])]),
        # log(0 * x - 1) = log(-1) = NaN for every input
        "nan_log": _model(d / "nan_log.onnx", _pool([helper.make_node("Mul", ["f", "zero"], ["z"]),
                                                     helper.make_node("Sub", ["z", "one"], ["m"]),
                                                     helper.make_node("Log", ["m"], ["emb"])]),
                          NCHW, ["N", 3], [_const("zero", [0.0]), _const("one", [1.0])]),
        # (0 * x) / (0 * x) = 0 / 0
        "nan_div": _model(d / "nan_div.onnx", _pool([helper.make_node("Mul", ["f", "zero"], ["z"]),
                                                     helper.make_node("Div", ["z", "z"], ["emb"])]),
                          NCHW, ["N", 3], [_const("zero", [0.0])]),
        "fixed64": _model(d / "fixed64.onnx", _pool(), [1, 3, 64, 64], [1, 3]),
        # log(mean pixel - 50): finite for the probe pictures, NaN for a near-black image
        # (with --model-mean 0 --model-std 1 the net sees raw pixel values)
        "dark_nan": _model(d / "dark_nan.onnx", _pool([helper.make_node("Sub", ["f", "c"], ["m"]),
                                                       helper.make_node("Log", ["m"], ["emb"])]),
                           NCHW, ["N", 3], [_const("c", [50.0])]),
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Four real clip-art images, one of them planted twice (copy.png)."""
    d = tmp_path_factory.mktemp("imgs") / "data"
    d.mkdir()
    for i, p in enumerate(vislint.testing.clipart_paths(4, seed=5)):
        vislint.testing.load_rgb(p, 160).save(d / f"img{i}.png")
    (d / "copy.png").write_bytes((d / "img0.png").read_bytes())
    return d


def _fails(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vislint: error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


MODEL_ERRORS = [
    ("one_channel", "its input 'input' is Nx1xHxW; vislint feeds N x 3 x H x W"),
    ("rank2", "its input 'input' is Nx3; vislint feeds N x 3 x H x W"),
    ("scalar", "output 'emb' (declared as a scalar) has shape"),
    ("zeros", "output 'emb' is all zeros for a test image"),
    ("nan_log", "output 'emb' is not finite (NaN or infinity) for a test image"),
    ("nan_div", "output 'emb' is not finite (NaN or infinity) for a test image"),
    ("fixed64", "a fixed 64x64 image; pass --model-size 64"),
]


@pytest.mark.parametrize("name,message", MODEL_ERRORS)
def test_unusable_model_is_refused_naming_the_file(models, images, tmp_path, name, message):
    path = models[name]
    line = _fails(run_cli("scan", images, "-o", tmp_path / "w", "-q", "--model", path, check=False),
                  f"model {path}", message)
    assert "internal error" not in line
    with pytest.raises(vislint.VislintError, match="model .*" + name):
        vislint.embed(images / "img1.png", model=str(path))
    with pytest.raises(vislint.VislintError) as e:
        vislint.scan(images, tmp_path / "w2", model=str(path), progress=False, report=False)
    assert message in str(e.value)


def test_usable_tiny_model_scans_and_wrong_output_name_lists_the_outputs(models, images, tmp_path):
    scan = vislint.scan(images, tmp_path / "w", model=str(models["good"]), progress=False, report=False)
    assert scan.images()["has_embedding"].all()
    assert scan.features().shape[1] == 3
    # Any opset the runtime reads: the same net declared at opset 18 gives the same vectors.
    scan18 = vislint.scan(images, tmp_path / "w18", model=str(models["good18"]), progress=False, report=False)
    np.testing.assert_allclose(np.asarray(scan18.features(), dtype=np.float32),
                               np.asarray(scan.features(), dtype=np.float32), atol=1e-3)
    # A fixed 64x64 input is fine at that size.
    vislint.scan(images, tmp_path / "w64", model=str(models["fixed64"]), model_size=64, progress=False,
                 report=False)
    _fails(run_cli("scan", images, "-o", tmp_path / "w2", "--model", models["good"], "--model-output", "feats",
                   check=False),
           f"model {models['good']} has no output named 'feats' (--model-output); its outputs are: 'emb'")


def test_default_model_wrong_output_name(images, tmp_path):
    _fails(run_cli("scan", images, "-o", tmp_path / "w", "--model-output", "nope", check=False),
           "has no output named 'nope' (--model-output); its outputs are: 'features', 'logits'")


def test_nan_embedding_at_scan_time_is_left_out_with_a_warning(models, images, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted(images.iterdir()):
        (data / p.name).write_bytes(p.read_bytes())
    Image.new("RGB", (64, 64), (5, 5, 5)).save(data / "black.png")
    work = tmp_path / "w"
    args = ("scan", data, "-o", work, "-q", "--no-report", "--model", models["dark_nan"],
            "--model-mean", "0", "--model-std", "1")
    proc = run_cli(*args)
    assert "no usable embedding (all zeros, NaN or infinity) for 1 image(s), e.g. " + str(data / "black.png") in proc.stderr
    scan = vislint.load(work)
    emb = scan.images().set_index("path")["has_embedding"]
    assert not emb[str(data / "black.png")]
    assert emb.drop(str(data / "black.png")).all() and len(emb) == 6
    assert np.all(np.isfinite(np.asarray(scan.features(), dtype=np.float32)))
    assert str(data / "black.png") not in set(scan.outliers(all=True)["path"])
    # The image is still analysed otherwise (it is dark), and a re-scan says it again.
    assert str(data / "black.png") in set(scan.issues("dark")["path"])
    again = run_cli(*args)
    assert "0 analysed" in again.stdout and "no usable embedding" in again.stderr
    assert any("no usable embedding" in w for w in vislint.load(work).run["warnings"])
    # Asking for images like it, or for its embedding: there is none.
    _fails(run_cli("similar", work, data / "black.png", check=False), "no usable embedding", "black.png")
    with pytest.raises(vislint.VislintError, match="no usable embedding .* for the given pixels"):
        scan.similar(np.asarray(Image.open(data / "black.png").convert("RGB")), k=2)
    with pytest.raises(vislint.VislintError, match="dark_nan.onnx gives no usable embedding .*black.png"):
        vislint.embed(data / "black.png", model=str(models["dark_nan"]), model_mean=0, model_std=1)
    feats, _ = vislint.embed(data / "img1.png", model=str(models["dark_nan"]), model_mean=0, model_std=1)
    assert feats.shape == (3,) and abs(np.linalg.norm(feats) - 1) < 1e-5


# --- option values ---------------------------------------------------------------------------

DOUBLE_OPTIONS = ["--near-duplicate-threshold", "--cluster-threshold", "--outlier-z", "--blurry-threshold",
                  "--dark-threshold", "--bright-threshold", "--low-information-threshold",
                  "--grayscale-threshold", "--aspect-ratio-threshold", "--odd-size-ratio",
                  "--label-issue-threshold", "--box-margin"]


@pytest.mark.parametrize("option", DOUBLE_OPTIONS)
def test_non_finite_threshold_is_refused_by_name(images, tmp_path, option):
    for value, shown in (("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("1e999", "inf")):
        _fails(run_cli("scan", images, "-o", tmp_path / "w", "--model", "none", option, value, check=False),
               f"{option} must be a finite number (got {shown})")
    key = option.lstrip("-").replace("-", "_")
    for value in (float("nan"), float("inf"), 10 ** 400):
        with pytest.raises(vislint.VislintError, match=f"^{option} must be a finite number"):
            vislint.scan(images, tmp_path / "w", model="none", progress=False, report=False, **{key: value})
    with pytest.raises(vislint.VislintError, match=f"^{option} must be a number \\(got '0.5'\\)"):
        vislint.scan(images, tmp_path / "w", model="none", progress=False, report=False, **{key: "0.5"})
    assert not (tmp_path / "w").exists()  # refused before anything was written


OPTION_ERRORS = [
    (["--model-mean", "nan"], dict(model_mean=float("nan")), "--model-mean values must be finite numbers (got nan)"),
    (["--model-mean", "1,inf,3"], dict(model_mean=[1, float("inf"), 3]), "--model-mean values must be finite numbers (got inf)"),
    (["--model-mean", "1,2"], dict(model_mean=[1, 2]), "--model-mean takes 1 or 3 numbers (R,G,B), got 2"),
    (["--model-std", "0"], dict(model_std=0), "--model-std values must be positive (got 0)"),
    (["--model-std", "1,-2,3"], dict(model_std=[1, -2, 3]), "--model-std values must be positive (got -2)"),
    (["--model-std", "nan"], dict(model_std=[float("nan")]), "--model-std values must be finite numbers (got nan)"),
    (["--model-std", "1,2,3,4"], dict(model_std=[1, 2, 3, 4]), "--model-std takes 1 or 3 numbers (R,G,B), got 4"),
    (["--max-pixels", "1e20"], dict(max_pixels=1e20), "--max-pixels must be a whole number of pixels between 1 and 1000000000000"),
    (["--max-pixels", "99999999999999999999"], dict(max_pixels=10 ** 20), "--max-pixels must be a whole number of pixels between 1 and 1000000000000"),
    (["--max-pixels", "0"], dict(max_pixels=0), "--max-pixels must be a whole number of pixels between 1 and 1000000000000"),
    (["--max-pixels", "-5"], dict(max_pixels=-5), "--max-pixels must be a whole number of pixels between 1 and 1000000000000"),
    (["--max-pixels", "1.5"], dict(max_pixels=1.5), "--max-pixels must be a whole number"),
    (["--max-pixels", "nan"], dict(max_pixels=float("nan")), "--max-pixels must be a whole number"),
    (["--max-pixels", "0x10"], dict(max_pixels="16"), "--max-pixels must be a whole number"),
    (["-k", "1001"], dict(k=2 ** 40), "-k must be between 1 and 1000"),
]


@pytest.mark.parametrize("args,kwargs,message", OPTION_ERRORS)
def test_bad_option_value_names_the_option(images, tmp_path, args, kwargs, message):
    _fails(run_cli("scan", images, "-o", tmp_path / "w", *args, check=False), message)
    with pytest.raises(vislint.VislintError) as e:
        vislint.scan(images, tmp_path / "w", progress=False, report=False, **kwargs)
    assert str(e.value).startswith(message.split(" (got")[0].split(", got")[0]), str(e.value)
    assert not (tmp_path / "w").exists()


def test_max_pixels_in_e_notation_is_a_whole_number(images, tmp_path):
    run_cli("scan", images, "-o", tmp_path / "w", "-q", "--model", "none", "--max-pixels", "1e4")
    run = json.loads((tmp_path / "w" / "run.json").read_text())
    assert run["options"]["max_pixels"] == 10000
    # Clip art of up to 160 px a side: those above 10000 pixels are too_large.
    broken = vislint.load(tmp_path / "w").broken()
    sizes = [Image.open(p).size for p in sorted(images.iterdir())]
    assert len(broken) == sum(w * h > 10000 for w, h in sizes) > 0
    assert set(broken["reason"]) == {"too_large"}
    scan = vislint.scan(images, tmp_path / "w2", model="none", max_pixels=1e4, progress=False, report=False)
    assert scan.run["options"]["max_pixels"] == 10000


def test_python_keywords_of_the_wrong_kind_are_vislint_errors(images, tmp_path):
    bad = [(dict(threads="4"), "--threads must be a whole number (got '4')"),
           (dict(threads=True), "--threads must be a whole number (got True)"),
           (dict(objects=1), "--objects must be True or False (got 1)"),
           (dict(model_mean="127"), "--model-mean must be a number or a list of 1 or 3 numbers (got '127')"),
           (dict(model_std=[1, "a", 3]), "--model-std must be a number or a list of 1 or 3 numbers"),
           (dict(model=3), "--model must be a string (got 3)")]
    for kwargs, message in bad:
        with pytest.raises(vislint.VislintError) as e:
            vislint.scan(images, tmp_path / "w", progress=False, report=False, **kwargs)
        assert str(e.value).startswith(message), (kwargs, str(e.value))
    with pytest.raises(vislint.VislintError, match="--model-std values must be positive"):
        vislint.embed(images / "img0.png", model_std=-1)
    # NumPy numbers and arrays are numbers.
    scan = vislint.scan(images, tmp_path / "w", model="none", max_pixels=np.int64(10 ** 6),
                        dark_threshold=np.float32(40), progress=False, report=False)
    assert scan.run["options"]["max_pixels"] == 10 ** 6


def test_similar_k_out_of_range(images, tmp_path):
    work = tmp_path / "w"
    vislint.scan(images, work, progress=False, report=False)
    for k in ("2147483647", "0", "100001"):
        _fails(run_cli("similar", work, images / "img1.png", "-k", k, check=False), "-k must be between 1 and 100000")
    scan = vislint.load(work)
    for k in (2 ** 40, 2 ** 31 - 1, 0, -3):
        with pytest.raises(vislint.VislintError, match="^-k must be between 1 and 100000$"):
            scan.similar(images / "img1.png", k=k)
    with pytest.raises(vislint.VislintError, match="^-k must be a whole number"):
        scan.similar(images / "img1.png", k="3")
    with pytest.raises(vislint.VislintError, match="^-k must be between"):
        scan.similar(np.asarray(scan.features()[0], dtype=np.float32), k=2 ** 40)
    with pytest.raises(vislint.VislintError, match="not finite"):
        scan.similar(np.full(scan.features().shape[1], np.nan, dtype=np.float32), k=2)
    assert len(scan.similar(images / "img1.png", k=100000)) == 4  # every other image


# --- COCO / YOLO numbers via the command ------------------------------------------------------

def test_coco_numbers_out_of_range_name_the_file_and_field(images, tmp_path):
    coco = tmp_path / "instances.json"
    good = {"images": [{"id": 1, "file_name": "img0.png"}, {"id": 2, "file_name": "img1.png"}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": i, "image_id": 1 + i % 2, "category_id": 1, "bbox": [1, 2, 30, 40]}
                            for i in range(5)]}

    def fails_with(mutate, *needles):
        doc = json.loads(json.dumps(good))
        text = mutate(doc)
        coco.write_text(text if isinstance(text, str) else json.dumps(doc))
        _fails(run_cli("scan", images, "-o", tmp_path / "w", "--model", "none", "--coco", coco, check=False),
               str(coco), *needles)
        with pytest.raises(vislint.VislintError, match="instances.json"):
            vislint.scan(images, tmp_path / "w", coco=coco, model="none", progress=False, report=False)

    # json.dumps cannot write 1e999: edit the text of annotation 3's box.
    fails_with(lambda d: json.dumps(d).replace('"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 2, 30, 40]',
                                               '"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 2, 1e999, 40]'),
               "annotations[3].bbox[2]: 1e999 is not a finite number")
    fails_with(lambda d: d["annotations"][2].update(bbox=[1, "2", 3, 4]),
               'annotations[2].bbox[1] must be a number (found the string "2")')
    fails_with(lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotations[0].bbox must be [x, y, width, height] (found 3 values)")
    fails_with(lambda d: json.dumps(d).replace('"bbox": [1, 2, 30, 40]', '"bbox": [NaN, 2, 30, 40]', 1),
               "not valid JSON")
    fails_with(lambda d: d["images"][1].update(id=-2), "images[1].id: -2 is negative")
    fails_with(lambda d: d["images"][0].update(id=2 ** 64 - 1), "images[0].id: 18446744073709551615 is too large for an id")
    fails_with(lambda d: d["annotations"][4].update(category_id="1"), 'annotations[4].category_id must be an integer (found the string "1")')
    fails_with(lambda d: d["annotations"][1].update(id=0), "annotations[1].id 0 is used twice (also by annotations[0])")
    coco.write_text(json.dumps(good))  # and the untouched file works
    assert vislint.scan(images, tmp_path / "ok", coco=coco, model="none", progress=False,
                        report=False).run["counts"]["labelled"] == 2


def test_yolo_numbers_name_the_line_and_field(tmp_path):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    vislint.testing.load_rgb(vislint.testing.clipart_paths(1, seed=2)[0], 120).save(root / "images" / "a.png")
    (root / "classes.txt").write_text("thing\n")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 1e999 0.2 0.2\n")
    _fails(run_cli("scan", "-o", tmp_path / "w", "--yolo", root, "--model", "none", check=False),
           f"{root / 'labels' / 'a.txt'}:2: y_center '1e999' is not a finite number")


# --- paths -----------------------------------------------------------------------------------

def _db_paths(work):
    con = sqlite3.connect(Path(work) / "vislint.db")
    try:
        return sorted(p for (p,) in con.execute("SELECT path FROM images"))
    finally:
        con.close()


def test_one_item_per_file_however_spelled_and_resume_across_spellings(images, tmp_path, monkeypatch):
    base = tmp_path / "base"
    base.mkdir()
    data = base / "data"
    data.mkdir()
    for p in sorted(images.iterdir()):
        (data / p.name).write_bytes(p.read_bytes())
    monkeypatch.chdir(base)
    work = tmp_path / "w"
    expected = sorted(str(data / p.name) for p in images.iterdir())
    first = run_cli("scan", "./data/../data/", "-o", work, "-q", "--model", "none")
    assert "5 analysed" in first.stdout
    assert _db_paths(work) == expected
    # The same folder spelled absolutely, with a redundant component: every row is reused.
    again = run_cli("scan", str(base) + "//./data", "-o", work, "-q", "--model", "none")
    assert "0 analysed, 5 unchanged and reused" in again.stdout and "removed" not in again.stdout
    # One file named three ways in a list file (and once directly) is one item.
    listing = base / "list.txt"
    listing.write_text(f"data/img1.png\n./data/../data/img1.png\n{data / 'img1.png'}\n")
    run_cli("scan", listing, "data/img1.png", "-o", tmp_path / "w2", "-q", "--model", "none")
    assert _db_paths(tmp_path / "w2") == [str(data / "img1.png")]
    # Labels match whatever spelling the CSV used.
    (base / "labels.csv").write_text("path,label\n./data/img0.png,a\ndata/../data/img1.png,b\n"
                                     f"{base}/./data/img2.png,c\n")
    run_cli("scan", "data", "-o", tmp_path / "w3", "-q", "--model", "none", "--labels", "labels.csv")
    labels = vislint.load(tmp_path / "w3").labels().set_index("path")["label"].to_dict()
    assert labels == {str(data / "img0.png"): "a", str(data / "img1.png"): "b", str(data / "img2.png"): "c"}
    # Splits are still read below the input folder, however it was spelled.
    (data / "test").mkdir()
    (data / "img3.png").rename(data / "test" / "img3.png")
    run_cli("scan", "./data/../data", "-o", tmp_path / "w4", "-q", "--model", "none")
    splits = vislint.load(tmp_path / "w4").labels().set_index("path")["split"].to_dict()
    assert splits == {str(data / "test" / "img3.png"): "test"}


def test_similar_leaves_out_the_query_however_spelled(images, tmp_path, monkeypatch):
    base = tmp_path / "base"
    data = base / "data"
    data.mkdir(parents=True)
    for p in sorted(images.iterdir()):
        (data / p.name).write_bytes(p.read_bytes())
    (base / "outside").mkdir()
    os.symlink(data / "img0.png", base / "outside" / "link.png")
    monkeypatch.chdir(base)
    work = tmp_path / "w"
    run_cli("scan", "data", "-o", work, "-q", "--no-report")
    scan = vislint.load(work)
    query, twin = str(data / "img0.png"), str(data / "copy.png")
    spellings = ["data/img0.png", "./data/../data/img0.png", query, str(base) + "//data/./img0.png",
                 "outside/link.png", "outside/../data/img0.png"]
    for q in spellings:
        hits = scan.similar(q, k=3)
        assert query not in set(hits["path"]), q
        assert hits["path"][0] == twin and hits["score"][0] > 0.99, (q, hits)
        assert len(hits) == 3
        out = run_cli("similar", work, q, "-k", "3", "--format", "csv").stdout.splitlines()
        assert out[1].split(",")[1] == twin and all(query != line.split(",")[1] for line in out[1:]), (q, out)
    # Pixels are no file: the image itself is the best match there.
    pixels = np.asarray(Image.open(data / "img0.png").convert("RGB"))
    assert set(scan.similar(pixels, k=2)["path"]) == {query, twin}


def test_similar_leaves_out_a_dataset_symlink_to_the_query(images, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for p in sorted(images.iterdir()):
        (data / p.name).write_bytes(p.read_bytes())
    os.symlink("img0.png", data / "img0_link.png")  # the same file, twice in the dataset
    work = tmp_path / "w"
    vislint.scan(data, work, progress=False, report=False)
    hits = vislint.load(work).similar(data / "img0.png", k=4)
    assert list(hits["path"])[0] == str(data / "copy.png")
    assert set(hits["path"]) == {str(data / f"img{i}.png") for i in (1, 2, 3)} | {str(data / "copy.png")}
