"""What one PCN's task costs under Spark: runs ``strata.spark`` on a cohort with Spark's event
log on, then reads Spark's own task metrics back from the log (BENCHMARKS.md, "Many machines:
Spark").

    python benches/spark_task_cost.py --cohort DIR --out DIR [--master local[2]]
        [--engine group|map] [--partitions N] [--driver-memory 6g] [--events DIR]
        [--local-dir DIR] [--previous DIR] [--json FILE]

Spark settings: the event log (``spark.eventLog.enabled``) with per-stage executor metric peaks
(``spark.eventLog.logStageExecutorMetrics``) and process-tree metrics
(``spark.executor.processTreeMetrics.enabled``: the resident memory of the JVM and of its Python
workers, polled every 100 ms); ``--partitions`` shuffle partitions (default 64, so that most
tasks hold one PCN: a task's PCNs are told apart by its shuffle records). Alongside, the resident
memory of each Python worker process is sampled from /proc every 100 ms (Spark's process-tree
figure is the sum over all workers of the executor).

Prints one line per task of the scoring stage (wall, executor run time, executor CPU time, peak
execution memory, shuffle read, result size) and the stage's and job's totals, as JSON too
(``--json FILE``).
"""

from __future__ import annotations

import argparse
import glob
import resource
import json
import os
import sys
import threading
import time
from pathlib import Path


TICK = os.sysconf("SC_CLK_TCK")


def sample_workers(stop: threading.Event, peaks: dict, cpu: dict, interval: float = 0.1) -> None:
    """Resident memory (bytes) of every Python worker and of the Spark JVM, peak per process,
    and their CPU seconds (user + system) as last seen."""
    while not stop.is_set():
        total = 0
        for status in glob.glob("/proc/[0-9]*/status"):
            pid = status.split("/")[2]
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"pyspark.daemon" in cmd or b"pyspark/worker" in cmd:
                    kind = "python"
                elif b"org.apache.spark.deploy.SparkSubmit" in cmd:
                    kind = "jvm"
                else:
                    continue
                rss = 0
                for line in Path(status).read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # Fields 14 and 15 of stat (utime, stime), counted after the command name.
                cpu[(kind, pid)] = (int(stat[11]) + int(stat[12])) / TICK
            except (OSError, ValueError, IndexError):
                continue
            key = (kind, pid)
            peaks[key] = max(peaks.get(key, 0), rss)
            if kind == "python":
                total += rss
        peaks[("python_total", "")] = max(peaks.get(("python_total", ""), 0), total)
        stop.wait(interval)


def event_lines(paths):
    for path in paths:
        with open(path) as f:
            yield from f


def read_event_log(paths) -> dict:
    stages, tasks, jobs = {}, [], {}
    stage_peaks = {}
    for line in event_lines(paths):
        e = json.loads(line)
        ev = e["Event"]
        if ev == "SparkListenerTaskEnd":
            info, m = e["Task Info"], e.get("Task Metrics") or {}
            sr = m.get("Shuffle Read Metrics", {})
            sw = m.get("Shuffle Write Metrics", {})
            inp = m.get("Input Metrics", {})
            acc = {a.get("Name"): a.get("Update") for a in info.get("Accumulables", [])}
            tasks.append({
                "stage": e["Stage ID"],
                "task": info["Task ID"],
                "wall_s": (info["Finish Time"] - info["Launch Time"]) / 1000,
                "run_s": m.get("Executor Run Time", 0) / 1000,
                "cpu_s": m.get("Executor CPU Time", 0) / 1e9,
                "gc_s": m.get("JVM GC Time", 0) / 1000,
                "peak_execution_mb": m.get("Peak Execution Memory", 0) / 1e6,
                "input_mb": inp.get("Bytes Read", 0) / 1e6,
                "input_records": inp.get("Records Read", 0),
                "shuffle_read_mb": (sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)) / 1e6,
                "shuffle_read_records": sr.get("Total Records Read", 0),
                "shuffle_write_mb": sw.get("Shuffle Bytes Written", 0) / 1e6,
                "shuffle_write_records": sw.get("Shuffle Records Written", 0),
                "spill_disk_mb": m.get("Disk Bytes Spilled", 0) / 1e6,
                "result_mb": m.get("Result Size", 0) / 1e6,
                "python": {k: v for k, v in acc.items() if k and ("python" in k.lower() or "Python" in k)},
            })
        elif ev == "SparkListenerStageCompleted":
            s = e["Stage Info"]
            stages[s["Stage ID"]] = {
                "name": s["Stage Name"],
                "tasks": s["Number of Tasks"],
                "wall_s": ((s.get("Completion Time") or 0) - (s.get("Submission Time") or 0)) / 1000,
                "rdds": [r["Name"] for r in s.get("RDD Info", [])],
            }
        elif ev == "SparkListenerStageExecutorMetrics":
            stage_peaks[e["Stage ID"]] = e["Executor Metrics"]
        elif ev == "SparkListenerJobStart":
            jobs[e["Job ID"]] = {"start": e["Submission Time"], "stages": e.get("Stage IDs", [])}
        elif ev == "SparkListenerJobEnd":
            jobs.setdefault(e["Job ID"], {})["end"] = e["Completion Time"]
    return {"stages": stages, "tasks": tasks, "jobs": jobs, "stage_peaks": stage_peaks}


def scoring_stage(by_stage: dict) -> int:
    """The stage whose tasks send data to Python workers (applyInArrow / mapInArrow); if Spark
    did not report it, the one with the most shuffle read."""
    def sent(ts):
        return sum(int(t["python"].get("data sent to Python workers", 0) or 0) for t in ts)

    stage = max(by_stage, key=lambda s: sent(by_stage[s]))
    if sent(by_stage[stage]) > 0:
        return stage
    return max(by_stage, key=lambda s: sum(t["shuffle_read_mb"] for t in by_stage[s]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--as-of", default="2025-04-01")
    ap.add_argument("--today", default="2026-11-30")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--engine", default="group", choices=["group", "map"])
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--events", default="/tmp/strata-spark-events")
    ap.add_argument("--local-dir", help="spark.local.dir: where shuffle files and spills go")
    ap.add_argument("--previous", help="compare with this previous run (default: none)")
    ap.add_argument("--json")
    a = ap.parse_args()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    import strata.spark as sj

    Path(a.events).mkdir(parents=True, exist_ok=True)
    t_session = time.time()
    builder = SparkSession.builder
    if a.local_dir:
        Path(a.local_dir).mkdir(parents=True, exist_ok=True)
        builder = builder.config("spark.local.dir", a.local_dir)
    spark = (
        builder.appName("strata-task-cost")
        .master(a.master)
        .config("spark.driver.memory", a.driver_memory)
        .config("spark.sql.shuffle.partitions", str(a.partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.eventLog.enabled", "true")
        .config("spark.eventLog.dir", Path(a.events).resolve().as_uri())
        .config("spark.eventLog.compress", "false")
        .config("spark.eventLog.rolling.enabled", "false")
        .config("spark.eventLog.logStageExecutorMetrics", "true")
        .config("spark.executor.processTreeMetrics.enabled", "true")
        .config("spark.executor.metrics.pollingInterval", "100ms")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    app_id = spark.sparkContext.applicationId
    session_s = time.time() - t_session

    peaks: dict = {}
    cpu: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_workers, args=(stop, peaks, cpu), daemon=True)
    sampler.start()
    time.sleep(0.3)
    cpu_before = dict(cpu)
    cpu0 = os.times()
    t0 = time.time()
    m = sj.score(a.cohort, a.as_of, a.out, spark=spark, today=a.today, engine=a.engine,
                 previous=a.previous, compare=a.previous is not None)
    job_s = time.time() - t0
    cpu1 = os.times()
    time.sleep(0.3)
    stop.set()
    sampler.join()
    spark.stop()
    used = {k: v - cpu_before.get(k, 0.0) for k, v in cpu.items()}
    jvm_cpu = sum(v for (k, _), v in used.items() if k == "jvm")
    python_cpu = sum(v for (k, _), v in used.items() if k == "python")

    # One uncompressed file (rolling and compression are turned off above).
    ev = read_event_log([Path(a.events) / app_id])
    # The scoring stage: the one whose tasks run the Python function (most CPU, shuffle read).
    by_stage: dict = {}
    for t in ev["tasks"]:
        by_stage.setdefault(t["stage"], []).append(t)
    score_stage = scoring_stage(by_stage)
    stage_tasks = sorted(by_stage[score_stage], key=lambda t: -t["shuffle_read_records"])
    print(f"session start {session_s:.1f} s; job {job_s:.1f} s wall; this process's CPU (the "
          f"driver's Python and the /proc sampler) "
          f"{(cpu1.user - cpu0.user) + (cpu1.system - cpu0.system):.1f} s (children "
          f"{(cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system):.1f} s)")
    print(f"stages (seconds): {m['seconds']}")
    driver_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"CPU during the job (from /proc): JVM {jvm_cpu:.1f} s, Python workers {python_cpu:.1f} s, "
          f"this process (driver Python + sampler) {(cpu1.user - cpu0.user) + (cpu1.system - cpu0.system):.1f} s; "
          f"driver Python peak RSS {driver_rss / 1e6:.0f} MB")
    print(f"patients {m.get('patients')}, listed {m.get('listed')}, engine {m['engine']}; "
          f"compared with {m['compared_with']}: {m['new_on_lists']} new, "
          f"{m['dropped_off_lists']} dropped")
    print(f"scoring stage {score_stage}: {ev['stages'].get(score_stage, {}).get('name')}, "
          f"{len(stage_tasks)} tasks, {ev['stages'].get(score_stage, {}).get('wall_s')} s")
    print("task  wall_s  run_s  cpu_s  gc_s  peak_exec_MB  shuffle_read_MB  records  result_MB")
    for t in stage_tasks:
        if t["shuffle_read_records"] == 0 and t["input_records"] == 0:
            continue
        print(f"{t['task']:>4} {t['wall_s']:7.2f} {t['run_s']:6.2f} {t['cpu_s']:6.2f} "
              f"{t['gc_s']:5.2f} {t['peak_execution_mb']:13.1f} {t['shuffle_read_mb']:16.1f} "
              f"{t['shuffle_read_records']:>9} {t['result_mb']:10.2f}  {t['python']}")
    for s, ts in sorted(by_stage.items()):
        print(f"stage {s}: {len(ts)} tasks, cpu {sum(t['cpu_s'] for t in ts):.1f} s, run "
              f"{sum(t['run_s'] for t in ts):.1f} s, input {sum(t['input_mb'] for t in ts):.0f} MB, "
              f"shuffle write {sum(t['shuffle_write_mb'] for t in ts):.0f} MB, shuffle read "
              f"{sum(t['shuffle_read_mb'] for t in ts):.0f} MB, spill {sum(t['spill_disk_mb'] for t in ts):.0f} MB"
              f" ({ev['stages'].get(s, {}).get('name', '')[:60]})")
    sp = ev["stage_peaks"].get(score_stage, {})
    print("scoring stage executor peaks (Spark process-tree metrics, MB): "
          + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in sp.items()
                      if k in ("JVMHeapMemory", "ProcessTreeJVMRSSMemory", "ProcessTreePythonRSSMemory",
                               "OnHeapExecutionMemory")))
    workers = sorted((v for (k, _), v in peaks.items() if k == "python"), reverse=True)
    print("sampled peaks (MB): python workers " + ", ".join(f"{v / 1e6:.0f}" for v in workers[:6])
          + f"; all python at once {peaks.get(('python_total', ''), 0) / 1e6:.0f}; JVM "
          + ", ".join(f"{v / 1e6:.0f}" for (k, _), v in peaks.items() if k == "jvm"))
    if a.json:
        Path(a.json).write_text(json.dumps({
            "job_s": job_s, "session_s": session_s, "jvm_cpu_s": jvm_cpu,
            "python_worker_cpu_s": python_cpu, "driver_python_peak_rss": driver_rss,
            "driver_python_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), "manifest_seconds": m["seconds"],
            "score_stage": score_stage, "tasks": stage_tasks, "all_tasks": ev["tasks"],
            "stages": ev["stages"],
            "stage_peaks": ev["stage_peaks"],
            "sampled": {f"{k}:{p}": v for (k, p), v in peaks.items()},
        }, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
