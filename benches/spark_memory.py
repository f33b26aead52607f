"""The Spark job's driver memory, measured: the job run once per driver heap size, each in a
fresh process, saying whether it ran (BENCHMARKS.md, issue 26; the rule in
``strata.spark.driver_memory_needed`` comes from these runs).

    python benches/spark_memory.py --cohort DIR --heap 512 768 1024 [--engine group|map]
        [--join broadcast|buckets] [--master local[2]] [--as-of 2025-04-01]

For each heap size (MiB) it starts a session with ``spark.driver.memory`` set to it, runs the
job on the cohort (``--skip-memory-check``: the point is to see where it fails) into a fresh
folder, and prints: ran or the error (an ``OutOfMemoryError`` is raised in a task; in local
mode the tasks run in the driver's JVM), wall and CPU seconds (the machine's, /proc/stat), the
driver Python's peak resident memory, and the rule's figure for the cohort. Slow: one whole job
a size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ONE = r"""
import resource, sys, time
import strata.spark as sj
cohort, out, heap, engine, master, as_of, join = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
spark = sj._session(master, app="strata-memory", driver_memory=heap << 20)
spark.sparkContext.setLogLevel("OFF")
heap_max = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory() >> 20
def cpu():
    with open("/proc/stat") as f:
        return sum(int(x) for x in f.readline().split()[1:4]) / 100
c0, t0 = cpu(), time.time()
try:
    sj._score(cohort, as_of, out, spark=spark, compare=False, skip_memory_check=True,
              engine=engine, join=join)
    what = "ran"
except Exception as e:  # noqa: BLE001 - reported, not raised: the point is where it fails
    text = str(e)
    what = "failed: " + ("OutOfMemoryError" if "OutOfMemory" in text else text.splitlines()[0][:120])
print(f"heap {heap} MiB (JVM max {heap_max} MiB): {what}; wall {time.time() - t0:.1f} s, "
      f"CPU {cpu() - c0:.1f} s, driver Python peak "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB", flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--heap", type=int, nargs="+", required=True, help="driver heap sizes, MiB")
    ap.add_argument("--engine", default="auto", choices=["auto", "group", "map"])
    ap.add_argument("--join", default="auto", choices=["auto", "broadcast", "buckets"])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--as-of", default="2025-04-01")
    a = ap.parse_args()
    import strata.spark as sj

    records = sj._records(lambda name: sj._footer_rows(Path(a.cohort) / name))
    need = sj.driver_memory_needed(records or 0, sj._local_tasks(a.master))
    print(f"{a.cohort}: {records} records; the rule asks {need >> 20} MiB", flush=True)
    for heap in a.heap:
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(
                [sys.executable, "-c", ONE, a.cohort, str(Path(tmp) / "out"), str(heap),
                 a.engine, a.master, a.as_of, a.join],
                check=False, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
            )
            # A JVM stopped by the error may take the process with it before it says anything.
            print(r.stdout.strip() or f"heap {heap} MiB: the process died (exit {r.returncode})",
                  flush=True)


if __name__ == "__main__":
    main()
