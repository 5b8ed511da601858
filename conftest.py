"""Fixtures shared by the tests: the paper's release files and the data prepared from them, once per session.

The release's files are looked for in ../shared/data next to the checkout (override with RLVR_SHARED_DATA).
Without them the tests that need them are skipped, or fail when CI is set (CI always has ../shared).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("RLVR_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_dir():
    """The release's files (layout of ../shared/data/README.md)."""
    if not (SHARED / "one_shot_rlvr" / "dsr_sub.parquet").is_file():
        reason = f"the release's files are not at {SHARED} (set RLVR_SHARED_DATA to their folder)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED


@pytest.fixture(scope="session")
def data_dir(shared_dir, tmp_path_factory):
    """`python data/prepare.py --source <release files> --out <tmp>`, run once for all tests."""
    out = tmp_path_factory.mktemp("prepared")
    result = subprocess.run([sys.executable, "data/prepare.py", "--source", str(shared_dir), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out
