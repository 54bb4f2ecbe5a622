"""Fixtures: a small real-image corpus with planted issues (vislint.testing, from Debian's
openclipart-png), scanned once per session by the installed `vislint` command."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vislint.testing

BIN_DIR = Path(sys.executable).parent
# VISLINT_BIN runs the tests against another build (e.g. to see a regression test fail on old code).
VISLINT = os.environ.get("VISLINT_BIN") or shutil.which("vislint", path=str(BIN_DIR)) or shutil.which("vislint")


def run_cli(*args, check=True):
    proc = subprocess.run([VISLINT, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"vislint {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def tree_digest(root: Path) -> dict:
    """path -> (sha256, size, mtime_ns, mode) for every file and folder under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            out[str(p.relative_to(root))] = (digest, st.st_size if p.is_file() else 0, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """(data_root, truth) of a 30-base-image corpus."""
    root = tmp_path_factory.mktemp("corpus") / "data"
    truth = vislint.testing.make_dataset(root, n_base=30, seed=1)
    return root, truth


@pytest.fixture(scope="session")
def scanned(corpus, tmp_path_factory):
    """(data_root, work_dir, truth, cli_result, digest_before) after one CLI scan."""
    root, truth = corpus
    before = tree_digest(root)
    work = tmp_path_factory.mktemp("work") / "w"
    result = run_cli("scan", root, "-o", work, "--threads", "2", "--model", "none")
    return root, work, truth, result, before
