#!/usr/bin/env python3
"""fastdup adapter (v1 API: fastdup.create(...).run() at defaults, bundled ONNX model, CPU).

Run in build/peers/fastdup-venv with SENTRY_OPT_OUT=1 (set here too, before import):
  python run_fastdup.py --input DIR --out OUT.json [--workdir TMP] [--threads N]
Mapping:
  near_duplicate  <- fd.similarity(): pairs at default threshold 0.9 (cosine sim, score = similarity)
  outlier         <- fd.outliers(): bottom lower_threshold=5% of nearest-neighbour similarity,
                     score = 1 - nn_similarity (higher = more outlying); NOT a full ranking
  broken          <- fd.invalid_instances()
  blurry/dark/bright <- fd.img_stats() with the thresholds fastdup's own fd.summary() uses
                     by default: blur < 150, mean > 253 (bright), mean < 4 (dark)
"""
import os
import sys
import tempfile

os.environ.setdefault("SENTRY_OPT_OUT", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer_common as C  # noqa: E402

BLUR_T, BRIGHT_T, DARK_T = 150.0, 253.0, 4.0  # fastdup_controller.FastdupController.summary defaults


def main():
    args = C.parse_args(lambda ap: ap.add_argument(
        "--threads", type=int, default=-1, help="fastdup's num_threads (default -1: all cores)"))
    import fastdup
    res = C.new_result("fastdup", str(fastdup.__version__))
    indir = os.path.abspath(args.input)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="fastdup-work-"))
    os.makedirs(workdir, exist_ok=True)
    for k in ("near_duplicate", "outlier", "broken", "dark", "bright", "blurry"):
        res["supported"][k] = True
    cwd = os.getcwd()

    def ab(fn):
        p = fn if os.path.isabs(fn) else os.path.join(cwd, fn)  # fastdup reports cwd-relative names
        p = os.path.abspath(p)
        if not os.path.exists(p):
            res["notes"].append(f"path not on disk after mapping: {fn!r} -> {p!r}")
        return p

    with C.Timer() as t:
        fd = fastdup.create(work_dir=workdir, input_dir=indir)
        fd.run(overwrite=True, num_threads=args.threads)
        sim = fd.similarity()
        out = fd.outliers()
        inv = fd.invalid_instances()
        stats = fd.img_stats()
    res["seconds"] = round(t.seconds, 3)
    res["workdir"] = workdir
    cfg = getattr(fd, "_config", {}) or {}
    res["settings"] = {k: cfg.get(k) for k in ("threshold", "lower_threshold", "distance",
                                                "nearest_neighbors_k", "model_path", "d", "turi_param")}

    pairs = [[ab(r.filename_from), ab(r.filename_to), float(r.distance)] for r in sim.itertuples()]
    res["findings"]["near_duplicate"] = C.uniq_pairs(pairs)
    if out is not None and len(out):
        best = {}
        for r in out.itertuples():
            p = ab(r.filename_outlier)
            best[p] = max(best.get(p, -1.0), 1.0 - float(r.distance))
        res["findings"]["outlier"] = sorted(([p, round(s, 6)] for p, s in best.items()),
                                            key=lambda x: -x[1])
    res["findings"]["broken"] = [ab(f) for f in inv["filename"]] if inv is not None else []
    res["broken_error_codes"] = ({ab(r.filename): r.error_code for r in inv.itertuples()}
                                 if inv is not None else {})
    valid = stats[stats["is_valid"].astype(bool)] if "is_valid" in stats.columns else stats
    res["findings"]["blurry"] = [ab(f) for f in valid.loc[valid["blur"] < BLUR_T, "filename"]]
    res["findings"]["bright"] = [ab(f) for f in valid.loc[valid["mean"] > BRIGHT_T, "filename"]]
    res["findings"]["dark"] = [ab(f) for f in valid.loc[valid["mean"] < DARK_T, "filename"]]
    res["notes"].append("exact duplicates are not separated: byte/pixel copies appear in near_duplicate "
                        "with similarity ~1.0; score = cosine similarity (higher = more similar)")
    res["notes"].append(f"dark/bright/blurry use the thresholds of fastdup's own summary() "
                        f"(mean<{DARK_T}, mean>{BRIGHT_T}, blur<{BLUR_T}); run() itself labels nothing")
    res["notes"].append("outlier = fd.outliers() default (bottom 5% of nn similarity), not a full ranking")
    res["notes"].append("embedding model: bundled UndisclosedFastdupModel.ort (no download)")
    C.write(res, args.out)


if __name__ == "__main__":
    main()
