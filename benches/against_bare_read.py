#!/usr/bin/env python3
"""The nightly run against a bare read of its input, whole process against whole process.

What it times, in interleaved rounds (each round the bare read first, then the strata binaries,
whose order alternates round by round, because this kind of VM drifts by up to 2x within
minutes):

- a bare read: a fresh `python3` process that imports polars and reads, from the three cohort
  files, exactly the columns strata reads (nothing computed, nothing written). Its wall time is
  taken from outside (the whole process: interpreter, import, read, exit) and, as the script
  prints it, from inside (the read alone);
- `strata score` as a nightly run: a fresh process comparing with a previous run (a copy of one
  made by the same binary before the rounds), so it reads the previous run and says what changed,
  and writes every output (lists as CSV and Parquet, workbooks, HTML pages, scores file, tables,
  manifest with SHA-256 of every file);
- optionally a second strata binary (`--baseline`), for before/after comparisons;
- optionally the analyst's peer script (`--peer ../shared/bench/peer_pipeline.py`: polars and
  pycomorb, the same job as people write it today), a fresh process writing its lists to a
  fresh folder each round.

With `--baseline`, use an even number of rounds, so that each binary runs as often in each
slot: on the VMs these figures come from, the binary run right after the bare read was 1-1.5 s
slower on a 1.2M cohort than the one run after it, whichever binary it was (waiting a few seconds
before each process, so that the memory the last one freed was handed back to the host, was tried
and did not remove it; the cause was not found).

`--no-compare` runs strata as `strata score --no-compare` into a fresh folder (nothing read from
a previous run), as the peer script does.

Usage (from the repository root, after `cargo build --release` and `cargo bench --bench score`,
which writes bench-data/ once):

    python3 benches/against_bare_read.py --rounds 8
    python3 benches/against_bare_read.py --baseline /path/to/older/strata --rounds 8
    python3 benches/against_bare_read.py --cohort DIR --peer ../shared/bench/peer_pipeline.py --no-compare

Needs python3 with polars (`pip install polars`). Prints one line per program per round, then the
medians and the per-round ratios. BENCHMARKS.md records what it printed.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BARE_READ = r"""
import sys, time
import polars as pl
d = sys.argv[1]
t = time.perf_counter()
p = pl.read_parquet(f"{d}/patients.parquet", columns=["patient_id", "birth_date", "sex",
    "practice_code", "pcn_code", "imd_decile", "care_home", "death_date"])
e = pl.read_parquet(f"{d}/events.parquet", columns=["patient_id", "event_date", "code_system", "code"])
n = pl.read_parquet(f"{d}/encounters.parquet", columns=["patient_id", "setting", "start_date",
    "end_date", "emergency"])
print(f"{time.perf_counter() - t:.4f} {p.height + e.height + n.height}")
"""


def timed(cmd, **kw):
    """Run `cmd`; its wall seconds (taken from outside) and its completed process."""
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return wall, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strata", default="target/release/strata")
    ap.add_argument("--baseline", help="a second strata binary to time beside the first")
    ap.add_argument("--cohort", default="bench-data/ics-1200000")
    ap.add_argument("--as-of", default="2025-04-01")
    ap.add_argument("--rounds", type=int, default=8, help="at least 1")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--peer", help="the analyst's peer script, timed beside strata")
    ap.add_argument("--no-compare", action="store_true",
                    help="strata writes a fresh folder and compares with nothing")
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    bins = {"strata": a.strata}
    if a.baseline:
        bins["baseline"] = a.baseline
    work = tempfile.mkdtemp(prefix="strata-bench-")
    try:
        # One previous run per binary, made before the rounds; every timed run compares with a
        # fresh copy of it.
        seeds = {}
        for name, b in bins.items():
            seeds[name] = os.path.join(work, f"seed-{name}")
            if not a.no_compare:
                timed([b, "score", "--cohort", a.cohort, "--as-of", a.as_of, "--out", seeds[name],
                       "-q"])
        rows = {k: [] for k in ["bare_process", "bare_read", *bins, *(["peer"] if a.peer else [])]}
        names = list(bins)
        for r in range(1, a.rounds + 1):
            order = names if r % 2 else names[::-1]
            wall, p = timed([a.python, "-c", BARE_READ, a.cohort])
            inside = float(p.stdout.split()[0])
            rows["bare_process"].append(wall)
            rows["bare_read"].append(inside)
            print(f"round {r}: bare read {wall:.2f} s whole process, {inside:.2f} s read", flush=True)
            for name in order:
                out = os.path.join(work, f"run-{name}")
                shutil.rmtree(out, ignore_errors=True)
                extra = ["--no-compare"] if a.no_compare else []
                if not a.no_compare:
                    shutil.copytree(seeds[name], out, symlinks=True)
                wall, _ = timed([bins[name], "score", "--cohort", a.cohort, "--as-of", a.as_of,
                                 "--out", out, "-q", *extra])
                rows[name].append(wall)
                print(f"round {r}: {name} {wall:.2f} s", flush=True)
            if a.peer:
                out = os.path.join(work, "run-peer")
                shutil.rmtree(out, ignore_errors=True)
                wall, _ = timed([a.python, a.peer, a.cohort, out, "--as-of", a.as_of])
                rows["peer"].append(wall)
                print(f"round {r}: peer {wall:.2f} s", flush=True)
        med = {k: statistics.median(v) for k, v in rows.items()}
        print()
        for k, v in rows.items():
            print(f"{k:13s} median {med[k]:.2f} s  range {min(v):.2f}-{max(v):.2f} s")
        for name in names:
            whole = [s / b for s, b in zip(rows[name], rows["bare_process"])]
            inner = [s / b for s, b in zip(rows[name], rows["bare_read"])]
            print(f"{name}: / bare read process, per round: median {statistics.median(whole):.2f}x "
                  f"(range {min(whole):.2f}-{max(whole):.2f}x); "
                  f"/ the read alone: median {statistics.median(inner):.2f}x "
                  f"(range {min(inner):.2f}-{max(inner):.2f}x)")
        if a.peer:
            pair = [p / s for s, p in zip(rows["strata"], rows["peer"])]
            print(f"peer / strata, per round: median {statistics.median(pair):.2f}x "
                  f"(range {min(pair):.2f}-{max(pair):.2f}x)")
        if a.baseline:
            pair = [b / s for s, b in zip(rows["strata"], rows["baseline"])]
            print(f"baseline / strata, per round: median {statistics.median(pair):.2f}x "
                  f"(range {min(pair):.2f}-{max(pair):.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
