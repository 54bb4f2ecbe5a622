"""vislint: lint image datasets for broken files, duplicates and quality issues.

    import vislint
    scan = vislint.scan(["/data/images"], "/tmp/lint")   # or vislint.load("/tmp/lint")
    scan.summary()            # counts per issue type
    scan.issues("dark")       # DataFrame: type, path, other_path, score, threshold, detail
    scan.duplicates()         # DataFrame: path_a, path_b, score, kind, group
    scan.broken()             # DataFrame: path, reason, detail
    scan.images()             # per-image statistics
    scan.leaks(), scan.label_issues(), scan.label_conflicts(), scan.classes()  # with labels

The heavy lifting runs in the C++ core (vislint._core) with the GIL released; this module only
turns the work dir's SQLite database into pandas DataFrames.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import urllib.parse
import warnings
from pathlib import Path
from typing import Iterable, Optional, Union

import pandas as pd

from vislint import _core
from vislint._core import VislintError

__all__ = ["scan", "load", "embed", "Scan", "VislintError", "ISSUE_TYPES", "__version__"]
__version__ = _core.version()
ISSUE_TYPES = list(_core.issue_types())

PathLike = Union[str, os.PathLike]

# Names (paths, labels, splits) are byte strings on Linux and the work dir stores them as they are.
# They come back as str the way os.fsdecode() makes them (bytes that are not UTF-8 become lone
# surrogates), so os.fsencode(path) gives the original bytes and open(path) opens the file; they
# go into the core as bytes (os.fsencode), which keeps every byte.
_PATH_OPTIONS = ("model", "labels", "coco", "yolo", "embeddings", "names")


def _name_bytes(v) -> bytes:
    return v if isinstance(v, bytes) else os.fsencode(v)


def _printable(name: str) -> str:
    """``name`` as the CLI prints it: bytes that are not UTF-8 written as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# The type of every column the readers return, as `vislint stats` prints it: integers as pandas
# nullable Int64 (never floats, whatever is NULL), reals as float64 (NaN for NULL), 0/1 flags as
# nullable booleans, the 64-bit perceptual hashes as 16 hex digits, text as str (None for NULL).
_INT_COLUMNS = {"id", "file_size", "mtime_ns", "width", "height", "channels", "bit_depth",
                "orientation", "has_embedding", "nn_id", "group", "cluster", "count", "n",
                "image_id", "rank", "neighbour_id", "size"}
_REAL_COLUMNS = {"brightness", "brightness_p01", "brightness_p99", "contrast", "blur", "entropy",
                 "saturation", "colour_fraction", "outlier_score", "outlier_z", "nn_sim", "score",
                 "threshold", "label_score", "z", "nearest_similarity"}
_BOOL_COLUMNS = {"is_grayscale", "is_keeper", "flagged"}
_HASH64_COLUMNS = {"phash", "dhash"}


def _column(name: str, values: list):
    """One result column with its reader type (see above); unknown names by their values."""
    import numpy as np

    kind = ("int" if name in _INT_COLUMNS else "real" if name in _REAL_COLUMNS else
            "bool" if name in _BOOL_COLUMNS else "hash64" if name in _HASH64_COLUMNS else None)
    if kind is None:
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) for v in present):
            kind = "int"
        elif present and all(isinstance(v, (int, float)) for v in present):
            kind = "real"
    if kind == "int":
        return pd.array(values, dtype="Int64")
    if kind == "real":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "bool":
        return pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
    # SQLite holds the unsigned hashes as signed 64-bit integers.
    if kind == "hash64":
        return pd.Series([None if v is None else format(v & (2**64 - 1), "016x") for v in values],
                         dtype=object)
    return pd.Series(values, dtype=object)


class _TqdmProgress:
    """Progress callback for the core: one tqdm bar per stage."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> bool:
        if not self.enabled:
            return True
        if stage != self.stage:
            self.close()
            from tqdm.auto import tqdm

            self.stage = stage
            self.bar = tqdm(total=total or None, desc=stage, unit="img", leave=False)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)
        return True

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _log(level: str, message: str) -> None:
    if level != "info":
        print(f"vislint: {level}: {message}", file=sys.stderr)


def scan(inputs: Union[None, PathLike, Iterable[PathLike]] = None, work_dir: Optional[PathLike] = None, *,
         progress: bool = True, labels=None, report: bool = True, max_rows_per_type: Optional[int] = None,
         embeddings=None, names=None, **options) -> "Scan":
    """Scan folders, image files or list files into ``work_dir`` and return the result.

    Options (all optional; same meaning as the CLI flags with dashes): ``model`` ("none"),
    ``threads``, ``max_pixels``, ``max_image_memory_mb``, ``blurry_threshold``, ``dark_threshold``, ``bright_threshold``,
    ``low_information_threshold``, ``grayscale_threshold``, ``aspect_ratio_threshold``,
    ``odd_size_ratio``, ``min_side``, ``hash_radius``, ``dhash_radius``, ``small_copy_threshold``; with an embedding model
    (``model="default"``, the default, or a path to an ONNX file or an OpenVINO IR .xml):
    ``model_size``, ``model_mean``, ``model_std`` (lists of 1 or 3 numbers), ``model_output``,
    ``batch_size``, ``precision`` ("auto", the default: bf16 where the CPU has it, else f32;
    "f32", "bf16" or "int8"; the one that ran is in ``Scan.run["inference"]``), ``k``, ``index_dim`` (kNN index: -1 = PCA to
    256 above 8,192 images, 0 = never, N = PCA to N; similarities stay exact), ``near_duplicate_threshold``, ``cluster_threshold``, ``outlier_z``, ``copy_candidate_threshold``.

    Labels and splits: ``labels`` is "folder" (parent folder names), the path of a CSV file
    (``path,label`` and optionally ``split`` columns; paths relative to the CSV) or a pandas
    DataFrame with ``path`` and ``label`` (and optionally ``split``) columns (relative paths
    resolve against the current directory). ``coco`` (a COCO JSON file), ``yolo`` (a YOLO dataset
    folder), ``objects=True`` (every box becomes an item ``image.jpg#box_id``),
    ``min_box_side``, ``box_margin``, ``splits`` ("auto": from train/val/test folder names, or
    "none"), ``label_issue_threshold``. With labels, ``inputs`` may be None: the images the
    labels name are scanned. ``rebuild=True`` discards the work dir's database, features and
    index first (the fix for a damaged work dir). ``report=False`` skips writing the HTML report
    (``work_dir/report/index.html``, see :meth:`Scan.report`, which also explains
    ``max_rows_per_type``; it is checked before the scan starts). An unknown option or a bad value raises
    VislintError. The scan runs with the GIL released; Ctrl-C cancels it cleanly (what was
    analysed is kept and a re-run resumes) and raises KeyboardInterrupt.

    Embeddings-only mode: ``embeddings`` (an n x d float16/float32 array, or the path of an .npy)
    and ``names`` (n strings, or the path of a text file with one per line) and no ``inputs``:
    item i is names[i] (stored verbatim, never opened) with vector embeddings[i]. It finds
    near duplicates, duplicate groups, clusters, outliers, and with ``labels`` (a CSV path or a
    DataFrame whose ``path`` column holds the names) label issues and leaks. An array or list is
    written to a temporary file in ``work_dir`` for the scan (and re-imported on every call).
    """
    if work_dir is None:
        raise VislintError("scan() needs work_dir")
    temp_files = []
    if embeddings is not None or names is not None:
        embeddings, names = _embedding_inputs(embeddings, names, work_dir, temp_files)
        options["embeddings"] = embeddings
        if names is not None:
            options["names"] = names
    try:
        return _scan(inputs, work_dir, progress, labels, report, max_rows_per_type,
                     names_only=embeddings is not None and not inputs, **options)
    finally:
        for f in temp_files:
            f.unlink(missing_ok=True)


def _embedding_inputs(embeddings, names, work_dir, temp_files):
    """Paths for the embeddings and names, writing in-memory ones into work_dir."""
    import numpy as np
    if embeddings is None:
        raise VislintError("names= goes with embeddings= (row i of embeddings is names[i])")
    work = Path(os.fsdecode(work_dir))
    if not isinstance(embeddings, (str, bytes, os.PathLike)):
        arr = np.asarray(embeddings)
        if arr.dtype not in (np.float16, np.float32):
            raise VislintError(f"embeddings must be float16 or float32, got {arr.dtype} "
                               "(e.g. embeddings.astype(np.float32))")
        if arr.ndim != 2:
            raise VislintError(f"embeddings must be a 2-D array (one row per item), got shape {arr.shape}")
        work.mkdir(parents=True, exist_ok=True)
        path = work / ".input-embeddings.npy"
        np.save(path, np.ascontiguousarray(arr))
        temp_files.append(path)
        embeddings = path
    if names is not None and not isinstance(names, (str, bytes, os.PathLike)):
        names = [n.decode("utf-8", "surrogateescape") if isinstance(n, bytes) else str(n) for n in names]
        bad = next((i for i, n in enumerate(names) if "\n" in n or "\r" in n or not n), None)
        if bad is not None:
            raise VislintError(f"names[{bad}] is empty or holds a line break: {names[bad]!r}")
        work.mkdir(parents=True, exist_ok=True)
        path = work / ".input-names.txt"
        path.write_bytes("".join(n + "\n" for n in names).encode("utf-8", "surrogateescape"))
        temp_files.append(path)
        names = path
    return _name_bytes(embeddings), None if names is None else _name_bytes(names)


def _scan(inputs, work_dir, progress, labels, report, max_rows_per_type, names_only=False, **options):
    if inputs is None:
        inputs = []
    elif isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [_name_bytes(p) for p in inputs]
    options = {k: _name_bytes(v) if k in _PATH_OPTIONS and isinstance(v, (str, bytes, os.PathLike))
               else os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
    if labels is not None:
        if isinstance(labels, pd.DataFrame):
            options["label_rows"] = _label_rows(labels, names_only)
        else:
            options["labels"] = _name_bytes(labels)
    if report:
        _core.check_report_options(max_rows_per_type)
    bar = _TqdmProgress(progress)
    try:
        _core.scan(inputs, _name_bytes(work_dir), dict(options), bar, _log)
        if report:
            _core.write_report(_name_bytes(work_dir), bar, max_rows_per_type)
    finally:
        bar.close()
    return Scan(work_dir)


def _label_rows(df: pd.DataFrame, names_only: bool = False) -> list:
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        raise VislintError(f"labels DataFrame needs columns path and label (missing: {', '.join(missing)})")
    splits = df["split"] if "split" in df.columns else [""] * len(df)

    def text(v) -> bytes:
        if v is None or (isinstance(v, float) and v != v):
            return b""
        return v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")

    # Item names (embeddings-only mode) are keys as written; file paths resolve against the cwd.
    key = text if names_only else (lambda p: os.path.abspath(_name_bytes(p)))
    return [(key(p), text(lab), text(sp)) for p, lab, sp in zip(df["path"], df["label"], splits)]


def embed(path: PathLike, **options):
    """Embed one image exactly as a scan would: returns (features, logits) as float32 arrays
    (features L2-normalised; logits empty when the model has no classifier output). Options:
    ``model``, ``model_size``, ``model_mean``, ``model_std``, ``model_output``, ``precision``."""
    return _core.embed_image(_name_bytes(path), dict(options))


def load(work_dir: PathLike) -> "Scan":
    """Open the results of an earlier scan."""
    return Scan(work_dir)


class Scan:
    """Results of a scan, read from its work dir. Every method returns a new DataFrame."""

    def __init__(self, work_dir: PathLike):
        self.work_dir = Path(os.fsdecode(work_dir) if isinstance(work_dir, bytes) else work_dir)
        self.db_path = self.work_dir / "vislint.db"
        if not self.db_path.is_file():
            raise VislintError(f"not a vislint work dir (no vislint.db): {self.work_dir}")
        self._verified = None
        self._verify()

    def _verify(self) -> None:
        """Check the database (the core's quick_check and stored checksum) once per state of the
        file, and warn when the last scan did not finish (results may be partial or stale)."""
        try:
            st = self.db_path.stat()
        except OSError as e:
            raise VislintError(f"cannot read {self.db_path}: {e}") from None
        state = (st.st_size, st.st_mtime_ns, st.st_ino)
        if state == self._verified:
            return
        message = _core.work_dir_warning(_name_bytes(self.work_dir))
        self._verified = state
        if message:
            warnings.warn(message, stacklevel=3)

    def _connect(self) -> sqlite3.Connection:
        """A read-only connection whose text comes back as os.fsdecode() would make it."""
        uri = self.db_path.absolute().as_uri() + "?mode=ro"
        if not os.access(self.work_dir, os.W_OK):
            uri += "&immutable=1"  # read-only folder: no -shm can exist, nobody can be writing
        con = sqlite3.connect(uri, uri=True)
        con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        return con

    def _query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """The rows of ``sql`` with the reader types of their columns (see _column)."""
        self._verify()
        try:
            con = self._connect()
            try:
                cur = con.execute(sql, params)
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            raise VislintError(f"the work dir database {self.db_path} is damaged ({e}): delete the work dir "
                               "or re-scan with --rebuild (rebuild=True)") from None
        values = list(zip(*rows)) if rows else [()] * len(names)
        return pd.DataFrame({n: _column(n, list(v)) for n, v in zip(names, values)}, columns=names)

    @property
    def run(self) -> dict:
        """Contents of run.json: version, options, counts, stage timings."""
        return json.loads((self.work_dir / "run.json").read_text())

    def images(self) -> pd.DataFrame:
        """Per-image table: path, status, format, size, stats, hashes (hex), label and split.
        Integers are nullable Int64 (<NA> for a broken file), reals float64, phash / dhash the
        16 hex digits `vislint stats` prints."""
        df = self._query("SELECT i.*, l.label, l.split FROM images i "
                         "LEFT JOIN labels l ON l.image_id = i.id ORDER BY i.id")
        # The hashes of transformed views are a derivation input, not a per-image fact.
        return df.drop(columns=["variant_hashes"], errors="ignore")

    def issues(self, type: Optional[str] = None) -> pd.DataFrame:
        """Issue rows: type, path, other_path, score, threshold, detail (strongest first)."""
        if type is not None and type not in ISSUE_TYPES:
            raise VislintError(f"unknown issue type '{type}'; known types: {', '.join(ISSUE_TYPES)}")
        sql = ("SELECT i.type, a.path, b.path AS other_path, i.score, i.threshold, i.detail "
               "FROM issues i JOIN images a ON a.id = i.image_id "
               "LEFT JOIN images b ON b.id = i.other_id")
        params: tuple = ()
        if type is not None:
            sql += " WHERE i.type = ?"
            params = (type,)
        sql += " ORDER BY i.type, i.score DESC, a.path"
        return self._query(sql, params)

    def duplicates(self) -> pd.DataFrame:
        """Exact and near duplicate pairs: path_a, path_b, score, kind, group (and keeper).

        ``kind`` is "exact" or "near"; ``group`` is the duplicate group both belong to and
        ``keeper`` that group's suggested image to keep. Near groups are stars (every member is a
        near duplicate of its keeper), so a near pair whose sides went to different groups, or
        to none, has no group (NA).
        """
        return self._query(
            "SELECT a.path AS path_a, b.path AS path_b, i.score, "
            "CASE i.type WHEN 'exact_duplicate' THEN 'exact' ELSE 'near' END AS kind, "
            "g.group_id AS \"group\", k.path AS keeper, i.detail "
            "FROM issues i JOIN images a ON a.id = i.image_id JOIN images b ON b.id = i.other_id "
            "LEFT JOIN duplicate_groups g ON g.image_id = i.image_id AND g.kind = "
            "  CASE i.type WHEN 'exact_duplicate' THEN 'exact' ELSE 'near' END "
            "  AND EXISTS (SELECT 1 FROM duplicate_groups o WHERE o.group_id = g.group_id "
            "              AND o.image_id = i.other_id) "
            "LEFT JOIN duplicate_groups gk ON gk.group_id = g.group_id AND gk.is_keeper = 1 "
            "LEFT JOIN images k ON k.id = gk.image_id "
            "WHERE i.type IN ('exact_duplicate', 'near_duplicate') "
            "ORDER BY kind, \"group\", i.score DESC, path_a")

    def duplicate_groups(self) -> pd.DataFrame:
        """One row per (group, member): group, kind, path, is_keeper."""
        df = self._query(
            "SELECT g.group_id AS \"group\", g.kind, i.path, g.is_keeper FROM duplicate_groups g "
            "JOIN images i ON i.id = g.image_id ORDER BY g.group_id, i.id")
        df["is_keeper"] = df["is_keeper"].astype(bool)
        return df

    def broken(self) -> pd.DataFrame:
        """Files that could not be analysed: path, reason (first word), detail."""
        df = self._query("SELECT path, status AS reason, error AS detail FROM images "
                         "WHERE status != 'ok' ORDER BY id")
        return df

    def summary(self) -> pd.DataFrame:
        """Count per issue type (every type listed, zeros included)."""
        counts = self._query("SELECT type, count(*) AS count FROM issues GROUP BY type")
        by_type = dict(zip(counts["type"], counts["count"]))
        return pd.DataFrame({"type": ISSUE_TYPES,
                             "count": [int(by_type.get(t, 0)) for t in ISSUE_TYPES]})

    def clusters(self) -> pd.DataFrame:
        """Clusters of look-alikes (kNN edges >= the cluster threshold; singletons are not
        clusters): cluster, size, members (list of paths), labels (label -> count, most common
        first; unlabelled members not counted), mixed (more than one label), largest first."""
        df = self._query("SELECT c.cluster_id AS cluster, i.path, l.label FROM clusters c "
                         "JOIN images i ON i.id = c.image_id LEFT JOIN labels l ON l.image_id = i.id "
                         "ORDER BY c.cluster_id, i.id")
        rows = []
        for c, g in df.groupby("cluster", sort=True):
            mix = g["label"].dropna().value_counts()
            rows.append((int(c), len(g), list(g["path"]), {str(k): int(v) for k, v in mix.items()},
                         len(mix) > 1))
        return pd.DataFrame(rows, columns=["cluster", "size", "members", "labels", "mixed"])

    def labels(self) -> pd.DataFrame:
        """Every labelled or split-assigned item: path, label, split, label_score (the kNN vote's
        confidence that the label is wrong; empty without a model), suggested (the vote's
        winner)."""
        return self._query("SELECT i.path, l.label, l.split, l.label_score, l.suggested "
                           "FROM labels l JOIN images i ON i.id = l.image_id ORDER BY i.id")

    def leaks(self) -> pd.DataFrame:
        """Duplicates across splits: path (the image in the later split), split, other_path
        (its duplicate in the earlier split), other_split, score (similarity), detail."""
        return self._query(
            "SELECT a.path, la.split, b.path AS other_path, lb.split AS other_split, i.score, i.detail "
            "FROM issues i JOIN images a ON a.id = i.image_id JOIN images b ON b.id = i.other_id "
            "LEFT JOIN labels la ON la.image_id = a.id LEFT JOIN labels lb ON lb.image_id = b.id "
            "WHERE i.type = 'leak' ORDER BY i.score DESC, a.path")

    def label_issues(self, all: bool = False) -> pd.DataFrame:
        """Items whose label disagrees with their nearest neighbours' labels, most suspicious
        first: path, given, suggested, score (confidence the given label is wrong), neighbours
        and neighbour_labels (the labelled neighbours that voted, nearest first). ``all=True``
        ranks every labelled item (neighbours listed for the flagged ones only)."""
        if all:
            df = self._query("SELECT i.id, i.path, l.label AS given, l.suggested, l.label_score AS score "
                             "FROM labels l JOIN images i ON i.id = l.image_id "
                             "WHERE l.label_score IS NOT NULL ORDER BY l.label_score DESC, i.path")
        else:
            df = self._query("SELECT i.id, i.path, l.label AS given, s.detail AS suggested, s.score "
                             "FROM issues s JOIN images i ON i.id = s.image_id "
                             "JOIN labels l ON l.image_id = i.id "
                             "WHERE s.type = 'label_issue' ORDER BY s.score DESC, i.path")
        votes = self._query("SELECT v.image_id, n.path, l.label FROM label_votes v "
                            "JOIN images n ON n.id = v.neighbour_id "
                            "LEFT JOIN labels l ON l.image_id = n.id ORDER BY v.image_id, v.rank")
        by_id = {int(k): g for k, g in votes.groupby("image_id")}
        df["neighbours"] = [list(by_id[i]["path"]) if i in by_id else [] for i in df["id"]]
        df["neighbour_labels"] = [list(by_id[i]["label"]) if i in by_id else [] for i in df["id"]]
        return df.drop(columns=["id"])

    def label_conflicts(self) -> pd.DataFrame:
        """Exact or near duplicate groups whose members carry different labels (the same
        picture labelled twice differently): group, kind, path, label, one row per member."""
        return self._query(
            "SELECT g.group_id AS \"group\", g.kind, i.path, l.label FROM duplicate_groups g "
            "JOIN images i ON i.id = g.image_id LEFT JOIN labels l ON l.image_id = i.id "
            "WHERE g.group_id IN (SELECT g2.group_id FROM duplicate_groups g2 "
            "  JOIN labels l2 ON l2.image_id = g2.image_id WHERE l2.label IS NOT NULL "
            "  GROUP BY g2.group_id HAVING count(DISTINCT l2.label) > 1) "
            "ORDER BY g.group_id, i.id")

    def classes(self) -> pd.DataFrame:
        """Per-class summary: label, count, then one column per issue type found in that class
        (items of the class with at least one issue of the type), most frequent class first."""
        counts = self._query("SELECT label, count(*) AS count FROM labels WHERE label IS NOT NULL "
                             "GROUP BY label")
        per = self._query("SELECT l.label, s.type, count(DISTINCT s.image_id) AS n FROM issues s "
                          "JOIN labels l ON l.image_id = s.image_id WHERE l.label IS NOT NULL "
                          "GROUP BY l.label, s.type")
        df = counts
        if len(per):
            wide = per.pivot(index="label", columns="type", values="n").fillna(0).astype("Int64")
            wide = wide[[t for t in ISSUE_TYPES if t in wide.columns]].reset_index()
            df = counts.merge(wide, on="label", how="left")
            df[wide.columns[1:]] = df[wide.columns[1:]].fillna(0).astype("Int64")
        return df.sort_values(["count", "label"], ascending=[False, True]).reset_index(drop=True)

    def confused_classes(self) -> pd.DataFrame:
        """The class pairs most often confused: given, suggested, count of label_issue rows."""
        return self._query(
            "SELECT l.label AS given, s.detail AS suggested, count(*) AS count FROM issues s "
            "JOIN labels l ON l.image_id = s.image_id WHERE s.type = 'label_issue' "
            "GROUP BY l.label, s.detail ORDER BY count DESC, given, suggested")

    def outliers(self, all: bool = False) -> pd.DataFrame:
        """Images ranked by isolation (1 - mean similarity to their nearest neighbours), most
        isolated first: path, score, z, nearest, nearest_similarity, flagged. ``all=False``
        keeps only the flagged ones."""
        df = self._query(
            "SELECT i.path, i.outlier_score AS score, i.outlier_z AS z, n.path AS nearest, "
            "i.nn_sim AS nearest_similarity, "
            "EXISTS(SELECT 1 FROM issues s WHERE s.type = 'outlier' AND s.image_id = i.id) AS flagged "
            "FROM images i LEFT JOIN images n ON n.id = i.nn_id "
            "WHERE i.outlier_score IS NOT NULL ORDER BY i.outlier_score DESC, i.path")
        df["flagged"] = df["flagged"].astype(bool)
        return df if all else df[df["flagged"]].reset_index(drop=True)

    def evaluate(self, truth) -> pd.DataFrame:
        """Precision, recall and F1 per issue type against a ground truth: a DataFrame (or a path
        to a CSV) with columns type, path, other_path (empty / NaN for single-image types).

        Single-image types compare as sets of images, ``leak`` as unordered pairs; exact and
        near duplicate pairs are closed transitively into groups on both sides and compared as
        pairs of images sharing a group: "duplicate" for both kinds together, "exact_duplicate"
        for exact alone. Relative paths resolve against the current directory (a CSV's: its
        folder). Returns one row per type present in either side, indexed by type: precision,
        recall, f1, predicted, true, matched (for duplicates these count pairs)."""
        self._verify()
        if isinstance(truth, (str, os.PathLike)):  # read and checked as `vislint eval` does
            scores, notes = _core.evaluate_csv(_name_bytes(self.work_dir), _name_bytes(truth))
        else:
            missing = {"type", "path"} - set(truth.columns)
            if missing:
                raise VislintError("truth needs the columns type, path, other_path "
                                   f"(missing: {', '.join(sorted(missing))})")
            others = truth["other_path"] if "other_path" in truth.columns else [None] * len(truth)

            def name(v) -> bytes:
                return b"" if v is None or (isinstance(v, float) and v != v) else _name_bytes(v)

            rows = [(str(t), name(p), name(o)) for t, p, o in zip(truth["type"], truth["path"], others)]
            scores, notes = _core.evaluate(_name_bytes(self.work_dir), rows, b"")
        for note in notes:
            warnings.warn(note, stacklevel=2)
        cols = ["precision", "recall", "f1", "predicted", "true", "matched"]
        df = pd.DataFrame([scores[t] for t in scores], index=pd.Index(list(scores), name="type"), columns=cols)
        return df.astype({"predicted": "int64", "true": "int64", "matched": "int64"})

    def features(self):
        """The embeddings: a read-only memory map of features.npy (float16, row = image id;
        rows of broken images are zero). None for a hash-only scan."""
        import numpy as np

        path = self.work_dir / "features.npy"
        return np.load(path, mmap_mode="r") if path.exists() else None

    def similar(self, query, k: int = 10) -> pd.DataFrame:
        """The k dataset images most similar to ``query``: an image path (inside or outside the
        dataset; the file itself is left out), an H x W x 3 uint8 RGB image array, or a 1-D
        embedding. Returns path, score (cosine similarity), best first."""
        import numpy as np

        self._verify()
        if isinstance(query, (str, os.PathLike)):
            hits = _core.similar_path(_name_bytes(self.work_dir), _name_bytes(query), k)
        else:
            arr = np.asarray(query)
            if arr.ndim == 1:
                hits = _core.similar_vector(_name_bytes(self.work_dir), arr.astype(np.float32), k)
            elif arr.ndim == 3 and arr.shape[2] == 3:
                hits = _core.similar_pixels(_name_bytes(self.work_dir),
                                            np.ascontiguousarray(arr[:, :, ::-1], dtype=np.uint8), k)
            else:
                raise VislintError("query must be a path, an H x W x 3 image or a 1-D embedding")
        return pd.DataFrame(hits, columns=["path", "score"])

    def report(self, open: bool = False, progress: bool = True, max_rows_per_type: Optional[int] = None) -> Path:
        """Write (or refresh) the HTML report, ``work_dir/report/index.html``, and return its
        path. It opens from disk in any browser; ``open=True`` also opens it with the
        ``webbrowser`` module. The page shows at most ``max_rows_per_type`` rows of each issue
        type, the strongest (None: ``_core.default_max_rows_per_type``, 5,000), and as many
        duplicate groups, with the true totals beside them; every row stays in the work dir
        (:meth:`issues`). A value below 1 raises VislintError."""
        bar = _TqdmProgress(progress)
        try:
            page = Path(_core.write_report(_name_bytes(self.work_dir), bar, max_rows_per_type))
        finally:
            bar.close()
        if open:
            import webbrowser

            webbrowser.open(page.resolve().as_uri())
        return page

    def _repr_html_(self) -> str:
        """Jupyter: the summary table (issue types with a count)."""
        import html

        s = self.summary()
        rows = "".join(f"<tr><td>{html.escape(t)}</td><td style='text-align:right'>{c}</td></tr>"
                       for t, c in zip(s["type"], s["count"]))
        n = self._query("SELECT count(*) AS n FROM images")["n"][0]
        return (f"<div><b>vislint scan</b> of {int(n)} images &mdash; "
                f"<code>{html.escape(_printable(str(self.work_dir)))}</code>"
                f"<table><tr><th>issue type</th><th>count</th></tr>{rows}</table></div>")

    def show(self, type: str, n: int = 20):
        """Jupyter: an inline gallery of the ``n`` strongest rows of one issue type (thumbnails
        inlined as data URIs; pairs side by side). Returns an ``IPython.display.HTML`` object
        when IPython is available, else the HTML string."""
        import base64
        import html

        df = self.issues(type).head(n)
        thumbs = self.work_dir / "report" / "thumbs"
        shown = sorted({p for p in list(df["path"]) + list(df["other_path"]) if isinstance(p, str)})
        # Paths are bound as their bytes (a str with surrogates cannot be bound as text).
        hashes = dict(self._query(
            "SELECT path, CASE WHEN source_path IS NULL THEN file_hash ELSE pixel_hash END AS h "
            f"FROM images WHERE path IN ({','.join(['CAST(? AS TEXT)'] * len(shown))})",
            tuple(_name_bytes(p) for p in shown)
        ).itertuples(index=False, name=None)) if shown else {}

        def img(path) -> str:
            if path is None or (isinstance(path, float) and path != path):
                return ""
            t = thumbs / f"{hashes.get(path)}.jpg"
            if not t.is_file():
                return ("<div style='width:120px;height:90px;background:#ddd;display:inline-block'>"
                        "</div>")
            b64 = base64.b64encode(t.read_bytes()).decode()
            return f"<img src='data:image/jpeg;base64,{b64}' style='max-width:160px;max-height:160px'>"

        if not thumbs.is_dir():
            self.report(progress=False)
        cards = []
        for r in df.itertuples(index=False):
            other = r.other_path if isinstance(r.other_path, str) else None
            cards.append(
                "<div style='display:inline-block;vertical-align:top;margin:4px;padding:4px;"
                "border:1px solid #ccc;max-width:360px'>"
                f"{img(r.path)}{img(other)}<div style='font-size:11px;word-break:break-all'>"
                f"{html.escape(_printable(str(r.path)))}" +
                (f"<br>{html.escape(_printable(other))}" if other else "") +
                f"<br>score {r.score:.4g} &middot; {html.escape(_printable(str(r.detail)))}</div></div>")
        out = f"<div><b>{html.escape(type)}</b>: {len(df)} of {len(self.issues(type))}<br>{''.join(cards)}</div>"
        try:
            from IPython.display import HTML

            return HTML(out)
        except ImportError:
            return out

    def __repr__(self) -> str:
        s = self.summary()
        found = ", ".join(f"{t}={c}" for t, c in zip(s["type"], s["count"]) if c)
        return f"<vislint.Scan {self.work_dir}: {found or 'no issues'}>"
