"""The floor under the Spark job's CPU: what Spark itself spends to bring a cohort's records to
one task per PCN, with no strata work at all (BENCHMARKS.md, issue 26).

    python benches/spark_floor.py --cohort DIR [--master local[2]] [--rounds 1]

Two jobs, each timed as the machine's CPU seconds (user + system from /proc/stat, every process:
JVM start, garbage collection and Python workers included) and wall seconds:

- ``read``: every file read with the contract's columns and each row's number, written to
  Spark's ``noop`` sink (a bare read under Spark);
- ``move``: what ``strata.spark`` does before strata sees a row: the same read, each record
  tagged with its patient's PCN (the patient-to-PCN table broadcast, as the job does up to
  ``strata.spark.BROADCAST_PATIENTS``), the tables put side by side in one wide table,
  ``groupBy(pcn).applyInArrow`` (Spark 4) with a function that only counts the rows it is given;
  with each table's columns under their own names (the job before the twelfth session) and in
  typed slots shared across tables (the job now); with ``--shuffle-join``, also without the
  broadcast (a sort-merge join, as a national cohort's 60 million patients would need); with
  ``--code-ids``, also with the events' code system and code swapped for an integer id (what
  moving codes as ids would cost and save).

Run it on a quiet machine; compare with ``strata score`` (the binary) and ``python -m
strata.spark score`` on the same cohort, measured the same way.
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa

import strata
import strata.spark as sj


def cpu_seconds() -> float:
    """The machine's CPU time so far (user, nice, system), in seconds."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return sum(int(x) for x in fields[1:4]) / 100


def timed(name: str, job) -> None:
    c0, t0 = cpu_seconds(), time.time()
    detail = job()
    print(f"{name}: wall {time.time() - t0:.1f} s, CPU {cpu_seconds() - c0:.1f} s{detail}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--shuffle-join", action="store_true",
                    help="also time the move with a shuffle join (as at national size)")
    ap.add_argument("--code-ids", action="store_true",
                    help="also time the move with the events' codes as integer ids (a distinct "
                         "pass numbers the pairs, a broadcast join swaps them in)")
    a = ap.parse_args()
    from pyspark.sql import functions as F

    c0, t0 = cpu_seconds(), time.time()
    spark = sj._session(a.master, app="strata-floor", driver_memory=sj.driver_memory_needed(
        sj._records(lambda name: sj._footer_rows(__import__("pathlib").Path(a.cohort) / name)) or 0,
        sj._local_tasks(a.master)))
    spark.sparkContext.setLogLevel("ERROR")
    print(f"session: wall {time.time() - t0:.1f} s, CPU {cpu_seconds() - c0:.1f} s", flush=True)

    def read(tag: str):
        name = sj.TABLES[tag]
        df = spark.read.parquet(f"{a.cohort}/{name}")
        cols = [c for c in df.columns if c in strata._strata.read_columns(name)]
        return df.select(*cols, (F.col("_metadata.row_index") + 1).alias(sj.ROW)), cols

    def bare() -> str:
        for t in ("p", "e", "n"):
            df, _ = read(t)
            df.write.format("noop").mode("overwrite").save()
        return ""

    def move(slots: bool = False, broadcast: bool = True, code_ids: bool = False) -> str:
        files = {t: read(t) for t in ("p", "e", "n")}
        if code_ids:
            # Each distinct (code_system, code) pair numbered on a pass of its own, and the
            # events' two strings replaced by that number in a broadcast join.
            e, cols = files["e"]
            pairs = e.select("code_system", "code").distinct().withColumn(
                "code_id", F.monotonically_increasing_id())
            e = e.join(F.broadcast(pairs), ["code_system", "code"], "left").drop(
                "code_system", "code")
            files["e"] = (e, [c for c in cols if c not in ("code_system", "code")] + ["code_id"])
        key = F.regexp_replace(F.col("patient_id").cast("string"), r"(?U)^\s+|\s+$", "")
        p, pcols = files["p"]
        p = p.withColumn(sj.KEY, key).withColumn(sj.PCN, F.col("pcn_code").cast("string"))
        owners = p.select(sj.KEY, sj.PCN)
        owners = F.broadcast(owners) if broadcast else owners
        wide = None
        for t, (df, cols) in files.items():
            df = p if t == "p" else df.withColumn(sj.KEY, key).join(owners, sj.KEY, "left")
            if slots:
                # Columns of one type share slots across tables (the row is as wide as the
                # widest table, not the sum of them).
                types = dict(df.dtypes)
                seen: dict = {}
                named = []
                for c in cols:
                    k = seen[types[c]] = seen.get(types[c], -1) + 1
                    named.append(F.col(f"`{c}`").alias(f"{types[c]}_{k}"))
            else:
                named = [F.col(f"`{c}`").alias(f"{t}__{c}") for c in cols]
            part = df.select(F.lit(t).alias(sj.TAG), F.col(sj.PCN), F.col(sj.ROW), *named)
            wide = part if wide is None else wide.unionByName(part, allowMissingColumns=True)

        def count(table: pa.Table) -> pa.Table:
            return pa.table({"rows": [table.num_rows]})

        rows = wide.groupBy(sj.PCN).applyInArrow(count, "rows long").agg(F.sum("rows")).collect()
        return f" ({rows[0][0]} rows moved)"

    for _ in range(a.rounds):
        timed("read", bare)
        timed("move", move)
        timed("move, typed slots", lambda: move(slots=True))
        if a.code_ids:
            timed("move, typed slots, code ids", lambda: move(slots=True, code_ids=True))
        if a.shuffle_join:
            # National size: the patient-to-PCN table too large to broadcast.
            spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
            timed("move, typed slots, shuffle join", lambda: move(slots=True, broadcast=False))
            spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    spark.stop()


if __name__ == "__main__":
    main()
