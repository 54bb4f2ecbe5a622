#!/usr/bin/env python3
"""imagededup adapter: hashing methods (PHash, DHash, AHash, WHash) at their defaults.

Run in build/peers/imagededup-venv:
  python run_imagededup.py --input DIR --out OUT.json [--method phash|dhash|ahash|whash|all]
--method all (default) writes one file per method: OUT.json -> OUT.phash.json, OUT.dhash.json, ...
(each in the common schema, peer = "imagededup-<method>").

imagededup is installed with --no-deps (no torch/torchvision). Its package __init__s
(imagededup.methods, imagededup.utils) import the torch-based CNN eagerly, so we register
empty package stubs for those two and import only imagededup.methods.hashing.
"""
import importlib.util
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as C  # noqa: E402

METHODS = ["phash", "dhash", "ahash", "whash"]


def import_hashing():
    spec = importlib.util.find_spec("imagededup")
    root = os.path.dirname(spec.origin)
    for sub in ("methods", "utils"):
        name = "imagededup." + sub
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__path__ = [os.path.join(root, sub)]
            sys.modules[name] = m
    import imagededup
    from imagededup.methods import hashing
    return imagededup.__version__, hashing


def cnn_note():
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        return "CNN available in principle but not run (weights come from a model hub, no network)"
    except Exception as e:  # noqa: BLE001
        return (f"CNN not run: torch/torchvision not installed on purpose (torchvision from PyPI "
                f"would pull another torch; CNN also downloads MobileNetV3 weights at run time). "
                f"import error: {type(e).__name__}: {e}")


def run_one(method, args, version, hashing):
    cls = {"phash": hashing.PHash, "dhash": hashing.DHash,
           "ahash": hashing.AHash, "whash": hashing.WHash}[method]
    res = C.new_result("imagededup-" + method, version)
    res["supported"]["near_duplicate"] = True
    res["notes"].append("settings: default max_distance_threshold=10 (Hamming, 64-bit hash); "
                        "recursive=True (non-default: needed to see sub-folders); scores=True. "
                        "score = Hamming distance, LOWER = more similar (0 = identical hash).")
    res["notes"].append("imagededup does not separate exact from near duplicates: all pairs are "
                        "under near_duplicate (score 0 pairs are hash-identical, not necessarily byte-identical).")
    res["notes"].append(cnn_note())
    indir = os.path.abspath(args.input)
    hasher = cls(verbose=False)
    with C.Timer() as t:
        enc = hasher.encode_images(image_dir=indir, recursive=True)
        dups = hasher.find_duplicates(encoding_map=enc, scores=True)
    res["seconds"] = round(t.seconds, 3)
    pairs = []
    for a, lst in dups.items():
        for b, d in lst:
            pairs.append([os.path.join(indir, a), os.path.join(indir, b), int(d)])
    res["findings"]["near_duplicate"] = C.uniq_pairs(pairs)
    # files imagededup listed but could not hash (it skips them with a log warning)
    from imagededup.utils.general_utils import generate_files
    listed = [os.path.abspath(str(p)) for p in generate_files(indir, True)]
    hashed = {os.path.join(indir, k) for k in enc}
    skipped = sorted(p for p in listed if p not in hashed)
    res["unhashed_files"] = skipped
    res["notes"].append("no broken-image detection as such; 'unhashed_files' lists files it "
                        f"enumerated but silently skipped (could not decode or unsupported ext): {len(skipped)}")
    return res


def main():
    args = C.parse_args(lambda ap: ap.add_argument("--method", default="all",
                                                   choices=METHODS + ["all"]))
    version, hashing = import_hashing()
    methods = METHODS if args.method == "all" else [args.method]
    for m in methods:
        out = args.out
        if args.method == "all":
            base = args.out[:-5] if args.out.endswith(".json") else args.out
            out = f"{base}.{m}.json"
        C.write(run_one(m, args, version, hashing), out)


if __name__ == "__main__":
    main()
