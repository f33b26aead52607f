"""Shared fixtures: the repository, the strata binary and its outputs on the fixture cohort.

The binary is ``$STRATA_BIN`` if set, else ``$CARGO_TARGET_DIR/debug/strata``, else
``<repo>/target/debug/strata`` (what ``cargo test --workspace`` leaves behind). The tests compare
the installed ``strata`` package with it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "cohort-2000"
AS_OF = "2025-04-01"
# A fixed "today", passed to the binary and the package alike.
TODAY = "2026-11-30"


def strata_bin() -> Path:
    if os.environ.get("STRATA_BIN"):
        return Path(os.environ["STRATA_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "strata"


def run_binary(cohort: Path, out: Path, *extra: str, as_of: str = AS_OF) -> None:
    """``strata score`` on ``cohort`` at ``as_of`` into ``out``; fails the test with its output
    if it fails."""
    exe = strata_bin()
    if not exe.is_file():
        pytest.fail(f"strata binary not found at {exe}: build it (cargo build) or set STRATA_BIN")
    cmd = [str(exe), "score", "--cohort", str(cohort), "--as-of", as_of, "--out", str(out),
           "--today", TODAY, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="session")
def binary_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The binary's output folder for the 2,000-patient fixture."""
    out = tmp_path_factory.mktemp("binary") / "out"
    run_binary(FIXTURE, out)
    return out
