"""Shared helpers for the peer adapters (stdlib only; imported by each run_*.py)."""
import argparse
import json
import os
import resource
import sys
import time

CATEGORIES = ["exact_duplicate", "near_duplicate", "broken", "outlier", "dark", "bright",
              "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size",
              "label_issue"]
LIST_FINDINGS = ["near_duplicate", "exact_duplicate", "broken", "outlier", "dark", "bright",
                 "blurry", "low_information", "grayscale", "odd_aspect_ratio", "odd_size"]


def parse_args(extra=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="folder of images")
    ap.add_argument("--out", required=True, help="output JSON path")
    ap.add_argument("--workdir", default=None, help="scratch dir for the peer (default: temp dir)")
    if extra:
        extra(ap)
    return ap.parse_args()


def new_result(peer, version):
    return {"peer": peer, "version": version, "seconds": None, "peak_rss_mb": None,
            "supported": {c: False for c in CATEGORIES},
            "findings": {c: [] for c in LIST_FINDINGS},
            "notes": []}


def peak_rss_mb():
    """Peak RSS of this process plus the largest reaped child (ru_maxrss is KiB on Linux).

    RUSAGE_CHILDREN's ru_maxrss is the max over all waited-for descendants, not a sum,
    so with a worker pool this is self + largest worker, a lower bound on the true peak."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return round(own + kids, 1), round(own, 1), round(kids, 1)


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False


def uniq_pairs(pairs):
    """Canonicalise [a, b, score] pairs: order a<b, drop self pairs and repeats (keep best score first seen)."""
    seen = {}
    for a, b, s in pairs:
        if a == b:
            continue
        k = (a, b) if a < b else (b, a)
        if k not in seen:
            seen[k] = s
    return [[a, b, s] for (a, b), s in sorted(seen.items())]


def write(result, out):
    total, own, kids = peak_rss_mb()
    result["peak_rss_mb"] = total
    result["peak_rss_detail_mb"] = {"self": own, "children_max": kids}
    for k in result["findings"]:
        v = result["findings"][k]
        if v and isinstance(v[0], str):
            result["findings"][k] = sorted(set(v))
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    counts = {k: len(v) for k, v in result["findings"].items() if v}
    print(f"[{result['peer']}] {result['seconds']}s peak_rss={total}MB findings={counts} -> {out}",
          file=sys.stderr)
