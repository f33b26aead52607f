"""strata's nightly job as a PySpark job: the same lists, documents, ``summary.csv``,
``equity.csv``, ``indicators.csv``, ``pcn_profile.csv`` and scores as ``strata score`` (the
scores table as ``scores/``, one part per PCN, the same rows as the binary's ``scores.parquet``),
computed where the data are (Databricks, Foundry, plain ``spark-submit``).

    python -m strata.spark score --cohort DIR --as-of DATE --out DIR [--master local[2]]

How it runs:

1. The driver reads the three (or four) Parquet files with Spark, checks their schemas once with
   strata's own checks, and checks for duplicate pseudonyms in Spark.
2. Up to ``BROADCAST_PATIENTS`` patients (``--join broadcast``), every record is tagged with
   its patient's PCN in one left join against the patient-to-PCN table broadcast to the tasks
   (so the records cross one shuffle), and the four tables are put side by side in one wide
   table, so that each PCN's patients and records meet in one task: ``groupBy(pcn)
   .applyInArrow`` on Spark 4.0 and later, ``repartition(pcn) .sortWithinPartitions(pcn)
   .mapInArrow`` on Spark 3.5 (a partition then holds several whole PCNs, one after another).
   Records whose patient is not in ``patients.parquet`` form one more group, whose task writes
   them as rejected rows (counted, never dropped silently). Event rows whose code nothing
   strata computes reads are left out before the shuffle where the library would surely admit
   them and nothing depends on them (counted in the manifest's ``read_paths``).
   Each task checks and scores its PCNs one at a time in strata (the library's map step, as the
   binary runs it), writes each PCN's list, programme lists and part of the scores table into
   a staging folder beside ``--out`` with its rejected rows (a Parquet part, rows numbered in
   the files), and returns those files' records (rows, bytes, SHA-256), the aggregate tables' counts and what the reduce step takes of them
   (figures, warnings), and, when comparing, the scores of the people on a list now or on the
   previous run's.

   Beyond it (``--join buckets``, the national path: 60 million patients do not broadcast, and
   a shuffle join would move every record twice), the run is split in two. The records meet
   their patients in buckets of the pseudonym's hash (``repartition(key)``: one shuffle, no
   join, nothing collected on the driver); each bucket's task runs the library's records stage
   (``run(stage="records")``: features, hospital activity, the palliative care register, the
   indicators' counts; its rejected rows staged, a record of an unknown patient finding none in
   its bucket) and sends each patient's row on with one record of 79 bytes
   (``strata::carried``). Those rows (patients, not records) then go to their PCN's task as
   above, which runs the map step without the records (``run(carried=...)``) and gives the
   same files. The unread event rows do not cross the shuffle: they are counted per patient key
   before it, the bucket adds up the counts of its known patients and names its unknown ones,
   whose unread rows the driver then finds (a second, filtered pass over the events, only then)
   and rejects.
3. The counts are added up in Spark; the driver then calls the library's reduce step, as the
   binary does: the tasks' rejected rows read from their parts and the rejected-row limit
   applied on whole files, the tables protected together, the
   tasks' files moved in and each PCN's workbook and page made from its list (one PCN at a time:
   the driver never holds every list), the manifest, and the folder published in place of
   ``--out`` only when everything succeeded.

What changed since the previous run (as the binary: ``--previous DIR``, by default the ``--out``
folder being replaced; ``--no-compare`` for none): the driver reads the previous run once; its
listed people travel with their current patient's rows to the tasks, which fill each list's
``change`` column (new, up, down, same); who dropped off each list and why (died, moved to
another PCN, ...) needs the whole cohort, so the driver works it out from the scores of the
people on a list now or then, and writes ``lists/<PCN>/<PCN>.dropped.csv``.

"Today" (after which a date is impossible) is decided once on the driver (``--today``, default
the driver's UTC date) and passed to every task: no executor reads its own clock.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc

import strata

PATIENTS = "patients.parquet"
EVENTS = "events.parquet"
ENCOUNTERS = "encounters.parquet"
MEDICATIONS = "medications.parquet"
# Table tags in the wide table, and the contract file each stands for.
TABLES = {"p": PATIENTS, "e": EVENTS, "n": ENCOUNTERS, "m": MEDICATIONS}
# The previous run's listed people, tagged "v" in the wide table (not a contract file).
PREVIOUS_COLUMNS = ["patient_id", "pcn_code", "efi_category"]
# Where each file's dates are, for the reject reasons' column names (the binary's).
KEY = "_key"  # trimmed pseudonym as text: the join key
PCN = "_pcn"
# Set on every record whose patient is in patients.parquet (the join's marker).
KNOWN = "_known"
# The group of records whose patient is not in patients.parquet: its task writes them as
# rejected rows (no PCN code can hold a NUL character, so it is never a PCN's).
ORPHANS = "\x00orphans"
# Up to this many patients (``--join auto``), the patient-to-PCN table is broadcast to the tasks
# that read the records, so the records cross one shuffle (to their PCN's task). The driver builds
# the broadcast; the 1.2 million cohort's ran within Spark's default 1 GiB driver. The limit itself
# was not measured (an ICS has up to 3 million people); beyond it, records in buckets (``--join
# buckets``), as a national cohort needs: at 1.2 million it cost about 10% more CPU than the
# broadcast on one machine (BENCHMARKS.md, sixteenth session).
BROADCAST_PATIENTS = 3_000_000
# Beyond it the records meet their patients in buckets of the pseudonym's hash (``--join
# buckets``), at most this many patients a bucket by default: one task holds a bucket's patients
# with all their records. An estimate, not measured: 54 records a patient at synthetic density and
# 99 bytes a record in Arrow (thirteenth session) make 0.5 GB a bucket, which the task's Python
# holds more than once (the batches, their concatenation, each table's rows, the library's copy).
BUCKET_PATIENTS = 100_000
# The group of the records stage's own results (counts, rejected rows, what it hands up), sent
# on to the driver through the PCN stage (no PCN code can hold a NUL character).
BUCKETS = "\x00buckets"
CARRIED = "_carried"  # a patient's record from the records stage; a records task's results
# A patient key's event rows whose code nothing strata reads (``--join buckets``): one row a key,
# their count (``UNREAD_COUNT``), combined before the shuffle.
UNREAD_TAG = "u"
UNREAD_COUNT = "_unread_count"
ROW = "_row"  # 1-based row in the file
TAG = "_t"
UNREAD = "_unread"  # set on the events whose code nothing strata computes reads
# The staging folder's folder of the tasks' rejected rows (read by the reduce step, then removed
# with the staging folder).
REJECTS = ".rejects"

# Reject reasons the driver gives (strata::input::contract::reason).
NULL_PATIENT = "null patient_id"
UNKNOWN_PATIENT = "patient_id not in patients.parquet"

# The output of each task: one row per item. The task writes its files into the run's staging
# folder itself; a file's record is JSON [path in the run folder, rows, bytes, SHA-256].
#   kind "list":   key = PCN code, data = the records of its list's .csv and .parquet
#   kind "scores": data = Arrow IPC stream of the task's patients who are on a list now or were
#                   on the previous run's (patient_id, pcn_code, status, efi_category, listed):
#                   what the driver works out what changed from
#   kind "scores_part": data = the record of the task's part of the scores table
#                   (scores/part-NNNNN.parquet)
#   kind "count":  key = table (summary, equity), section, a, b, c0..c4 = the counts
#   kind "indicator": key = PCN code, c0..c21 = its population-health indicator counts
#   kind "profile": key = PCN code, b = dimension, a = value, c0..c7 = listed and eligible by eFI
#                   category (fit listed, fit eligible, ..., severe eligible)
#   kind "programme": key = PCN code, section = programme index, a = its name, data = the
#                   records of its .csv and .parquet
#   kind "rejects_part": data = JSON [path in the staging folder, rows] of the task's rejected
#                   rows (file, row in the file, column, reason), written by the task
#   kind "meta":   data = JSON: errors, and what the task hands the reduce step
# Counts per indicator row (strata.indicators' quantities: the headline counts, then the people
# and falls admissions of the six age bands of the standardised falls rate).
INDICATOR_WIDTH = strata._strata.INDICATOR_WIDTH
RESULT_DDL = "kind string, key string, data binary, section int, a string, b string, " + ", ".join(
    f"c{i} long" for i in range(INDICATOR_WIDTH)
)
RESULT_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("key", pa.string()),
        ("data", pa.binary()),
        ("section", pa.int32()),
        ("a", pa.string()),
        ("b", pa.string()),
    ]
    + [(f"c{i}", pa.int64()) for i in range(INDICATOR_WIDTH)]
)


class SparkJobError(Exception):
    """The cohort was refused, or the job could not complete: the message says why."""


class OutputFolderError(SparkJobError):
    """``--out`` exists and is not a strata output folder (the binary's exit code 5)."""


def _result_batch(rows: List[Dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=RESULT_SCHEMA)


def _slots(dtypes: Dict[str, List[Tuple[str, str]]]) -> Dict[str, Dict[str, str]]:
    """Each table's columns (name, Spark type) given a slot of the wide table: columns of one type
    share slots across tables (``s<type>_<k>``: the k-th column of that type in its table), so a
    row of the wide table is as wide as its widest table, not the sum of them (a quarter less of
    the CPU Spark spends moving the records, measured: BENCHMARKS.md, issue 26)."""
    types: Dict[str, int] = {}
    out: Dict[str, Dict[str, str]] = {}
    for tag, cols in dtypes.items():
        seen: Dict[str, int] = {}
        out[tag] = {}
        for c, ty in cols:
            k = seen[ty] = seen.get(ty, -1) + 1
            out[tag][c] = f"s{types.setdefault(ty, len(types))}_{k}"
    return out


def _split(table: pa.Table, columns: Dict[str, List[str]],
           slots: Dict[str, Dict[str, str]], keep: Sequence[str] = ()) -> Dict[str, pa.Table]:
    """The wide table's rows by tag, each with its own columns under their contract names (the
    row number kept as ``_row``, and the columns ``keep`` where the table has them)."""
    out = {}
    tags = table.column(TAG)
    extra = [c for c in keep if c in table.column_names]
    for tag, cols in columns.items():
        rows = table.filter(pc.equal(tags, tag))
        t = rows.select([slots[tag][c] for c in cols] + [ROW] + extra)
        out[tag] = t.rename_columns(cols + [ROW] + extra)
    return out


def score_task(table: pa.Table, settings: Dict[str, Any]) -> pa.Table:
    """Score the whole PCNs in ``table`` (the wide table's rows of one group or partition) and
    return the task's result rows. Errors in the data are returned as rows, not raised, so that
    the driver can report every partition's problems together."""
    columns: Dict[str, List[str]] = settings["columns"]
    if table.num_rows and table.column(PCN)[0].as_py() == ORPHANS:
        return _orphans(table, settings)
    if table.num_rows and table.column(PCN)[0].as_py() == BUCKETS:
        # The records stage's results, as its tasks returned them.
        return pa.concat_tables(
            [pa.ipc.open_stream(b).read_all() for b in table.column(CARRIED).to_pylist()]
        ).cast(RESULT_SCHEMA)
    national = settings.get("buckets") is not None
    if national:
        # The PCN stage of a run split in two: the patients with their records' results; the
        # records themselves were read in the records stage.
        parts = _split(table, {t: columns[t] for t in ("p", "v") if t in columns},
                       settings["slots"], keep=(KEY, CARRIED))
        p = parts["p"]
        carried = pa.table({"patient_id": p.column(KEY), "carried": p.column(CARRIED)})
        p = p.drop_columns([KEY, CARRIED])
        e, n, m = settings["empty"]["e"], settings["empty"]["n"], None
        if "v" in parts:
            parts["v"] = parts["v"].drop_columns([c for c in (KEY, CARRIED)
                                                  if c in parts["v"].column_names])
    else:
        carried = None
        parts = _split(table, columns, settings["slots"])
        p, e, n = parts["p"], parts["e"], parts["n"]
        m = parts.get("m")
    # The previous run's listed people among this task's patients (when comparing).
    v = parts["v"].drop_columns([ROW]) if settings.get("compare") else None
    if p.num_rows == 0:
        return pa.Table.from_batches([], schema=RESULT_SCHEMA)
    meta: Dict[str, Any] = {"errors": []}
    rows: List[Dict[str, Any]] = []
    try:
        s = strata.run(
            p.drop_columns([ROW]),
            e.drop_columns([ROW]),
            n.drop_columns([ROW]),
            settings["as_of"],
            medications=None if m is None else m.drop_columns([ROW]),
            previous=v,
            carried=carried,
            **_run_settings(settings),
        )
    except strata.InvalidCohortError as err:
        pcns = sorted(set(p.column("pcn_code").cast(pa.string()).to_pylist()))
        meta["errors"].append({"pcns": [str(x) for x in pcns], "report": str(err)})
        rows.append({"kind": "meta", "data": json.dumps(meta).encode()})
        return pa.Table.from_batches([_result_batch(rows)])
    # Each PCN's list and programme lists (from one frame per PCN), and its part of the scores
    # table, written here into the run's staging folder under their names in the run folder, so
    # that the driver never holds them; handed up as their records.
    stage = settings["stage"]
    list_files, programme_files = s.all_list_files()
    for pcn, csv, parquet in list_files:
        stem = settings["stems"][pcn]
        k_rows = _parquet_rows(parquet)
        files = [_stage_file(stage, f"{stem}.csv", csv, k_rows),
                 _stage_file(stage, f"{stem}.parquet", parquet, k_rows)]
        rows.append({"kind": "list", "key": pcn, "data": json.dumps(files).encode()})
    for pcn, k, name, csv, parquet in programme_files:
        stem = settings["stems"][pcn]
        k_rows = _parquet_rows(parquet)
        files = [_stage_file(stage, f"{stem}.{name}.csv", csv, k_rows),
                 _stage_file(stage, f"{stem}.{name}.parquet", parquet, k_rows)]
        rows.append({"kind": "programme", "key": pcn, "section": k, "a": name,
                     "data": json.dumps(files).encode()})
    scores = pa.table(s.scores())
    task_pcn = table.column(PCN)[0].as_py()
    part = f"scores/part-{settings['parts'][task_pcn]:05d}.parquet"
    data = bytes(strata.encode_table(scores, "parquet"))
    rows.append({"kind": "scores_part",
                 "data": json.dumps(_stage_file(stage, part, data, scores.num_rows)).encode()})
    # What the driver needs of them to say what changed since the previous run: the people on a
    # list now, and those on the previous run's (who may have died, moved or left the list).
    if settings.get("compare"):
        keep = scores.column("listed")
        if v is not None and v.num_rows:
            keep = pc.or_(keep, pc.is_in(scores.column("patient_id"),
                                         value_set=v.column("patient_id").cast(pa.string())))
        slim = scores.filter(keep).select(
            ["patient_id", "pcn_code", "status", "efi_category", "listed"])
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, slim.schema) as w:
            w.write_table(slim)
        rows.append({"kind": "scores", "data": sink.getvalue()})
    for kind, section, a, b, *c in s.counts():
        rows.append(
            {"kind": "count", "key": kind, "section": section, "a": a, "b": b,
             **{f"c{i}": v for i, v in enumerate(c)}}
        )
    for pcn, c in s.indicator_counts():
        rows.append({"kind": "indicator", "key": pcn, **{f"c{i}": v for i, v in enumerate(c)}})
    for pcn, dimension, value, c in s.profile_counts():
        rows.append({"kind": "profile", "key": pcn, "b": dimension, "a": value,
                     **{f"c{i}": v for i, v in enumerate(c)}})
    # The rejected rows, numbered in their files, written here as a part the reduce step reads
    # (the driver's Python never holds them).
    rejected = s.rejects()
    if rejected:
        rows.append(_stage_rejects(settings["stage"], f"part-{settings['parts'][task_pcn]:05d}",
                                   _in_files(rejected, {EVENTS: e, ENCOUNTERS: n, MEDICATIONS: m})))
    # What the library's reduce step takes from each part (strata::partition::Handed).
    meta["handed"] = s.handed()
    rows.append({"kind": "meta", "data": json.dumps(meta).encode()})
    return pa.Table.from_batches([_result_batch(rows)])


def records_task(table: pa.Table, settings: Dict[str, Any], bucket: int) -> pa.Table:
    """The records stage of a run split in two (``--join buckets``): ``table`` holds the wide
    table's rows of one bucket of the pseudonym's hash, every patient in it with all their
    records. strata reads them (``run(stage="records")``: features, hospital activity, the
    palliative care register, the indicators' counts) and each admitted patient leaves with
    their patients row, their PCN and one small record (``CARRIED``), for their PCN's task; the
    bucket's rejected rows are written into the staging folder; its counts and what it hands up
    leave as rows of the ``BUCKETS`` group, on to the driver."""
    columns: Dict[str, List[str]] = settings["columns"]
    slots = settings["slots"]
    out_schema: pa.Schema = settings["bucket_schema"]
    tags = table.column(TAG)
    parts = _split(table, {t: c for t, c in columns.items()}, slots, keep=(KEY, PCN))
    p = parts["p"]
    meta: Dict[str, Any] = {"errors": [], "unread": 0}
    results: List[Dict[str, Any]] = []
    reject_tables: List[pa.Table] = []
    # Event rows slimmed before the shuffle (a code nothing strata reads): counted as left out
    # when their patient is in patients.parquet, else rejected as any record of an unknown
    # patient is.
    if UNREAD_COUNT in table.column_names:
        slim = table.filter(pc.equal(tags, UNREAD_TAG))
        known = pc.is_in(slim.column(KEY), value_set=p.column(KEY))
        meta["unread"] = pc.sum(pc.if_else(known, slim.column(UNREAD_COUNT), 0)).as_py() or 0
        # Unknown patients' unread rows are rejected: counted here, found and written by a
        # second pass over the events (only when there are any).
        meta["unread_orphans"] = pc.sum(
            pc.if_else(known, 0, slim.column(UNREAD_COUNT))).as_py() or 0
    records = {t: parts[t] for t in ("e", "n", "m") if t in parts}
    out: List[pa.Table] = []
    if p.num_rows == 0:
        # Records of no patient here: each rejected, as a whole read rejects them.
        for t, r in records.items():
            if r.num_rows:
                # Null is the library's "null patient_id"; blank is an unknown pseudonym.
                reject_tables.append(_patient_rejects(
                    TABLES[t], r.column(ROW),
                    pc.if_else(r.column(KEY).is_null(), NULL_PATIENT, UNKNOWN_PATIENT)))
    else:
        def bare(t: pa.Table) -> pa.Table:
            return t.drop_columns([c for c in (ROW, KEY, PCN) if c in t.column_names])

        try:
            rec = strata.run(
                bare(p), bare(records["e"]), bare(records["n"]), settings["as_of"],
                medications=bare(records["m"]) if "m" in records else None,
                stage="records",
                **_run_settings(settings),
            )
        except strata.InvalidCohortError as err:
            pcns = sorted(set(p.column("pcn_code").cast(pa.string()).to_pylist()))
            meta["errors"].append({"pcns": [str(x) for x in pcns], "report": str(err),
                                   "bucket": bucket})
        else:
            carried = pa.table(rec.carried())
            # Each patient's record (patients rows are admitted or the cohort refused), matched
            # on the pseudonym as Spark trimmed it, which is how the library trims it: checked.
            at = pc.index_in(p.column(KEY).cast(pa.large_string()),
                             value_set=carried.column("patient_id").cast(pa.large_string()))
            if at.null_count or carried.num_rows != p.num_rows:
                raise SparkJobError(
                    f"bucket {bucket}: {p.num_rows} patients rows, {carried.num_rows} admitted, "
                    f"{p.num_rows - at.null_count} matched by pseudonym: the library and Spark "
                    "trimmed a pseudonym differently"
                )
            cols = {TAG: pa.repeat(pa.scalar("p"), p.num_rows), PCN: p.column(PCN),
                    KEY: p.column(KEY), ROW: p.column(ROW),
                    CARRIED: pc.take(carried.column("carried"), at)}
            for c in columns["p"]:
                cols[slots["p"][c]] = p.column(c)
            out.append(_conform(cols, p.num_rows, out_schema))
            # The previous run's listed people who are patients here, with their current PCN.
            if "v" in parts and parts["v"].num_rows:
                v = parts["v"]
                owner = pc.index_in(v.column(KEY), value_set=p.column(KEY))
                v = v.filter(pc.is_valid(owner))
                if v.num_rows:
                    vcols = {TAG: pa.repeat(pa.scalar("v"), v.num_rows),
                             PCN: pc.take(p.column(PCN), pc.drop_null(owner)),
                             KEY: v.column(KEY), ROW: v.column(ROW)}
                    for c in columns["v"]:
                        vcols[slots["v"][c]] = v.column(c)
                    out.append(_conform(vcols, v.num_rows, out_schema))
            for pcn, c in rec.indicator_counts():
                results.append({"kind": "indicator", "key": pcn,
                                **{f"c{i}": x for i, x in enumerate(c)}})
            rejected = rec.rejects()
            if rejected:
                reject_tables.append(_in_files(rejected, {
                    EVENTS: records["e"], ENCOUNTERS: records["n"],
                    MEDICATIONS: records.get("m")}))
            meta["handed"] = rec.handed()
    if reject_tables:
        results.append(_stage_rejects(settings["stage"], f"bucket-{bucket:05d}",
                                      pa.concat_tables(reject_tables)))
    results.append({"kind": "meta", "data": json.dumps(meta).encode()})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, RESULT_SCHEMA) as w:
        w.write_batch(_result_batch(results))
    out.append(_conform({TAG: pa.array(["r"]), PCN: pa.array([BUCKETS]),
                         CARRIED: pa.array([sink.getvalue()], pa.binary())}, 1, out_schema))
    return pa.concat_tables(out)


def _stage_unread_orphans(stage: str):
    """The function for ``mapInArrow`` over the row numbers of unknown patients' unread event
    rows: each partition's written as a part of rejected rows in the staging folder; its record
    returned."""

    def f(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        rows = [b.column(0) for b in batches if b.num_rows]
        if not rows:
            return
        row = pa.chunked_array(rows).cast(pa.int64())
        ctx = TaskContext.get()
        part = _stage_rejects(stage, f"unread-orphans-{ctx.partitionId() if ctx else 0:05d}",
                              _patient_rejects(EVENTS, row, UNKNOWN_PATIENT))
        yield pa.RecordBatch.from_pylist([{"data": part["data"]}],
                                         schema=pa.schema([("data", pa.binary())]))

    return f


def _conform(cols: Dict[str, Any], n: int, schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from the columns given (cast to its types), nulls elsewhere."""
    arrays = []
    for f in schema:
        if f.name in cols:
            a = cols[f.name]
            if isinstance(a, pa.ChunkedArray):
                a = a.combine_chunks()
            arrays.append(a.cast(f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _records_partition(settings: Dict[str, Any]):
    """The function for the records stage's ``mapInArrow``: a partition is one bucket."""

    def f(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        batches = list(batches)
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        if table.num_rows == 0:
            return
        ctx = TaskContext.get()
        bucket = ctx.partitionId() if ctx is not None else 0
        yield from records_task(table, settings, bucket).to_batches()

    return f


def _parquet_rows(data) -> int:
    """Rows of a Parquet file held as bytes, from its footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows


def _stage_file(stage: str, rel: str, data, rows: int) -> list:
    """Write ``data`` as ``rel`` in the staging folder ``stage``, whole or not at all (under a
    name of its own, synced, then renamed: a task run twice replaces its file in one step); its
    record as the binary records a file it writes: [path, rows, bytes, SHA-256]."""
    path = Path(stage) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{time.time_ns()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return [rel, rows, len(data), hashlib.sha256(data).hexdigest()]


def _in_files(rejected: List[Tuple[str, int, str, str]],
              tables: Dict[str, Optional[pa.Table]]) -> pa.Table:
    """A task's rejected rows (``Scoring.rejects()``: rows 1-based in the tables the task gave
    the library) as a table whose rows are numbered in their files (each table's ROW column)."""
    files = pa.array([r[0] for r in rejected], pa.string())
    rows = pa.array([r[1] for r in rejected], pa.int64())
    numbered = rows
    for name, t in tables.items():
        mask = pc.equal(files, name)
        if t is None or not pc.any(mask).as_py():
            continue
        at = pc.if_else(mask, pc.subtract(rows, 1), 0)
        numbered = pc.if_else(mask, pc.take(t.column(ROW), at).cast(pa.int64()), numbered)
    return pa.table({
        "file": files,
        "row": numbered,
        "column": pa.array([r[2] for r in rejected], pa.string()),
        "reason": pa.array([r[3] for r in rejected], pa.string()),
    })


def _stage_rejects(stage: str, name: str, rejects: pa.Table) -> Dict[str, Any]:
    """Write a task's rejected rows (file, row in the file, column, reason) as ``name`` in the
    staging folder's ``REJECTS`` folder, for the reduce step to read (never published as
    they are: the run's ``rejects.csv`` is made from every part); its result row."""
    rel = f"{REJECTS}/{name}.parquet"
    _stage_file(stage, rel, bytes(strata.encode_table(rejects, "parquet")), rejects.num_rows)
    return {"kind": "rejects_part", "data": json.dumps([rel, rejects.num_rows]).encode()}


def _patient_rejects(file: str, rows, reason) -> pa.Table:
    """Rejected rows of ``file`` (rows numbered in it) whose ``patient_id`` names no patient:
    ``reason`` one for all, or one a row."""
    n = len(rows)
    if isinstance(reason, str):
        reason = pa.repeat(pa.scalar(reason), n)
    return pa.table({
        "file": pa.repeat(pa.scalar(file), n),
        "row": pc.cast(rows, pa.int64()),
        "column": pa.repeat(pa.scalar("patient_id"), n),
        "reason": reason,
    })


def _run_settings(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The run's settings as ``strata.run`` takes them, the same for every task."""
    return dict(
        today=settings["today"], models=settings.get("models"), min_age=settings["min_age"],
        min_category=settings["min_category"],
        # The limit applies to whole files: the driver checks it.
        max_rejected=1.0,
        allow_identifiers=settings["allow_identifiers"], risk_models=settings["risk_models"],
        rank_by=settings["rank_by"], list_risk_band=settings["list_risk_band"],
        min_risk=settings["min_risk"], top=settings["top"], top_percent=settings["top_percent"],
        cohort_synthetic=settings.get("cohort_synthetic"), risk_bands=settings.get("risk_bands"),
        programmes=settings.get("programmes"),
    )


def _orphans(table: pa.Table, settings: Dict[str, Any]) -> pa.Table:
    """The task of the records whose patient is not in patients.parquet: each a rejected row of
    its file (its 1-based row number there), as a whole read rejects it."""
    slots = settings["slots"]
    tags = table.column(TAG)
    parts = []
    for t in sorted(tags.unique().to_pylist()):
        mine = table.filter(pc.equal(tags, t))
        null = mine.column(slots[t]["patient_id"]).is_null()
        parts.append(_patient_rejects(TABLES[t], mine.column(ROW),
                                      pc.if_else(null, NULL_PATIENT, UNKNOWN_PATIENT)))
    rows = [{"kind": "meta", "data": json.dumps({"errors": []}).encode()}]
    if parts:
        rows.append(_stage_rejects(settings["stage"], "part-orphans", pa.concat_tables(parts)))
    return pa.Table.from_batches([_result_batch(rows)])


def _pcn_runs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """The rows of a partition sorted by PCN, one table per PCN: batches are cut where the PCN
    changes, and each PCN's pieces put together once its last row has passed."""
    pending: List[pa.RecordBatch] = []
    current: Any = None
    for b in batches:
        if b.num_rows == 0:
            continue
        runs = pc.run_end_encode(b.column(PCN))
        start = 0
        for end, value in zip(runs.run_ends.to_pylist(), runs.values.to_pylist()):
            if pending and value != current:
                yield pa.Table.from_batches(pending)
                pending = []
            current = value
            pending.append(b.slice(start, end - start))
            start = end
    if pending:
        yield pa.Table.from_batches(pending)


def _map_partition(settings: Dict[str, Any]):
    """The function for ``mapInArrow``: a partition holds whole PCNs, its rows sorted by PCN;
    each PCN is scored on its own (a task holds one PCN's rows at a time, as with
    ``applyInArrow``)."""

    def f(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for table in _pcn_runs(batches):
            yield from score_task(table, settings).to_batches()

    return f


def _apply_group(settings: Dict[str, Any]):
    """The function for ``groupBy(pcn).applyInArrow``: one PCN per call."""

    def f(table: pa.Table) -> pa.Table:
        return score_task(table, settings)

    return f


# The driver's memory (JVM heap) a cohort needs. In local mode (``--master local[N]``) the driver's
# JVM also runs the tasks, and the limit measured is theirs: the 1.2M cohort's OutOfMemoryError is
# raised where Spark's grouped Arrow writer builds a PCN's records into one batch for its task, so
# the need grows with the records (events, encounters, medications), not with the patients, and
# with the tasks that run at once. Measured here (BENCHMARKS.md, thirteenth session; local[2],
# Spark 4.0.5): the default synthetic ICS (1.2M patients, 64.7M records) fails with 512 and 768
# MiB and runs with 1 GiB; 240,000 patients (13.2M records) run with 512 MiB. The rule: 512 MiB
# and 6.25 bytes a record for each task at once (12.5 at local[2]: 1.25 GiB for the ICS, a
# quarter above what ran), at least Spark's default 1 GiB; only local[2] was measured, other
# counts are scaled. On a cluster the driver runs no task and collects no record or list (its
# Python peaked at 0.24 GB at 1.2M patients): Spark's default 1 GiB (not tried on a cluster; the
# executors then hold the records).
DRIVER_BASE_BYTES = 1 << 30
LOCAL_BASE_BYTES = 512 << 20
LOCAL_BYTES_PER_RECORD_AND_TASK = 6.25


def driver_memory_needed(records: int, tasks: int = 2, join: str = "broadcast") -> int:
    """Bytes of driver memory (JVM heap) the job needs for a cohort of ``records`` (rows of
    events, encounters and medications), to the nearest 256 MiB, when ``tasks`` run at once in
    the driver's JVM (local mode: ``local[N]`` runs N); on a cluster (``tasks=0``, the driver
    runs none) Spark's default. With ``join="buckets"`` no task holds a PCN's records in the JVM
    (a bucket's records stream to Python in batches; a PCN's task gets its patients' rows and
    their 79-byte records): Spark's default, whatever the cohort (measured: 512 MiB ran the
    1.2M ICS at ``local[2]``; BENCHMARKS.md, sixteenth session)."""
    if tasks <= 0 or join == "buckets":
        return DRIVER_BASE_BYTES
    step = 256 << 20
    need = LOCAL_BASE_BYTES + LOCAL_BYTES_PER_RECORD_AND_TASK * tasks * records
    return max(DRIVER_BASE_BYTES, int(round(need / step) * step))


def _leave_out_unread(spark, tagged: Dict[str, Any], events, columns: List[str],
                      last: _dt.date, models: Optional[str], national: bool = False):
    """Leave out, before the shuffle, the event rows whose code nothing strata computes reads
    (``Definitions::unread``: body height and weight, blood pressure, smoking status, ...; 29% of
    the synthetic ICS's event rows) where the library would surely admit them and nothing else
    depends on them: a known patient, a date well inside the contract's bounds and before the
    as-of date (so they are not among the records counted after it), and no encounter they link
    to; ``last`` is the latest date a row left out may have. Replaces ``tagged["e"]``; returns the Spark ``Observation`` counting the rows left out
    as they pass (no second scan), or None when nothing is left out.

    ``national`` (``--join buckets``: whether the patient is known is found only in the records
    stage, after the shuffle): the rows are left out whoever their patient, counted per patient
    key (``tagged["u"]``) for the records stage to add up (a known patient) or report (an
    unknown one, whose rows are then rejected by a second pass); returns those rows (key and row
    number) for that pass, or None."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    types = dict(events.dtypes)
    if types.get("code_system") != "string" or types.get("code") != "string":
        return None  # integer codes: left to the tasks, which read them as their digits
    pairs = [
        (r[0], r[1])
        for r in events.select("code_system", "code").distinct()
        .where(F.col("code_system").isNotNull() & F.col("code").isNotNull()).collect()
    ]
    unread = [pq for pq, u in zip(pairs, strata._strata.unread_codes(pairs, models)) if u]
    if not unread:
        return None
    marks = spark.createDataFrame(unread, "code_system string, code string").withColumn(
        UNREAD, F.lit(True))
    # A day of margin (here and in ``last``): a timestamp's date never decides it.
    first = _dt.date(1900, 1, 2)
    known = (F.coalesce(F.col(KEY), F.lit("")) != "") if national else F.col(KNOWN).isNotNull()
    leave = (F.col(UNREAD).isNotNull() & known
             & F.to_date(F.col("event_date")).between(F.lit(first), F.lit(last)))
    if "encounter_id" in columns:
        leave = leave & F.col("encounter_id").isNull()
    leave = F.coalesce(leave, F.lit(False))
    e = tagged["e"].join(F.broadcast(marks), ["code_system", "code"], "left")
    if national:
        # Counted per patient key before the shuffle (13 million rows sent on slimmed to their
        # key and row number cost 40 CPU-seconds more at 1.2 million patients, their row numbers
        # gathered in lists 480 more; BENCHMARKS.md, sixteenth session). Returns the rows, for
        # the driver to find those of unknown patients.
        e = e.withColumn(UNREAD, leave)
        unread_rows = e.where(F.col(UNREAD)).select(KEY, ROW)
        tagged["u"] = unread_rows.groupBy(KEY).agg(F.count(F.lit(1)).alias(UNREAD_COUNT))
        tagged["e"] = e.where(~F.col(UNREAD)).drop(UNREAD)
        return unread_rows
    seen = Observation("unread")
    e = e.observe(seen, F.sum(F.when(leave, 1).otherwise(0)).alias("rows"))
    tagged["e"] = e.where(~leave).drop(UNREAD)
    return seen


def _local_tasks(master: Optional[str], spark=None) -> int:
    """The tasks that run at once in the driver's JVM: N for ``local[N]`` (``local`` 1,
    ``local[*]`` and no master at all, Spark's default, every core); 0 on a cluster. With a
    session, its own master and parallelism."""
    if spark is not None:
        sc = spark.sparkContext
        return sc.defaultParallelism if sc.master.startswith("local") else 0
    if master is None:
        return os.cpu_count() or 1
    # `local-cluster[...]` runs its executors in JVMs of their own.
    if not master.startswith("local") or master.startswith("local-cluster"):
        return 0
    inside = master[len("local"):].strip("[]").split(",")[0]
    if inside == "":
        return 1
    return (os.cpu_count() or 1) if inside == "*" else int(inside)


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def _spark_size(n: int) -> str:
    """A size as Spark's settings spell it (``1280m``)."""
    return f"{-(-n // (1 << 20))}m"


def _records(rows) -> Optional[int]:
    """Records of a cohort (rows of events, encounters and, when present, medications), given
    ``rows(file name)``: a file's rows, None when unknown (or 0 for an absent medications file)."""
    n = [rows(EVENTS), rows(ENCOUNTERS)]
    if any(x is None for x in n):
        return None
    return sum(n) + (rows(MEDICATIONS) or 0)


def _footer_rows(path: Path) -> Optional[int]:
    """Rows of a local Parquet file from its footer (no rows read); None when it cannot be read."""
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - a missing or bad file is reported later, by the run
        return None


def _driver_heap(spark) -> Optional[int]:
    """The driver JVM's maximum heap, in bytes (what ``spark.driver.memory`` gave it)."""
    try:
        return int(spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory())
    except Exception:  # noqa: BLE001 - a remote driver (Spark Connect) does not say
        return None


def _session(master: Optional[str], app: str = "strata", driver_memory: Optional[int] = None):
    from pyspark.sql import SparkSession

    # Workers must run this interpreter (it has pyarrow and strata).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = SparkSession.builder.appName(app)
    if master:
        b = b.master(master)
    if master and master.startswith("local"):
        # A few shuffle partitions suit one machine (Spark's default of 200 is for clusters).
        b = b.config("spark.sql.shuffle.partitions", "4")
    if driver_memory is not None:
        # Takes effect because this call starts the driver's JVM.
        b = b.config("spark.driver.memory", _spark_size(driver_memory))
    b = b.config("spark.sql.session.timeZone", "UTC")
    b = b.config("spark.ui.enabled", "false")
    return b.getOrCreate()


def _medications_present(spark, cohort: str, cohort_dir: Path) -> bool:
    """Whether the cohort has ``medications.parquet`` (optional): a local path is looked at, a
    URI (``dbfs:/``, ``abfss://``, ...) asked of Spark, where only "path not found" means absent."""
    if "://" not in cohort:
        return (cohort_dir / MEDICATIONS).exists()
    try:
        spark.read.parquet(f"{cohort.rstrip('/')}/{MEDICATIONS}").schema
    except Exception as e:  # noqa: BLE001 - pyspark's exception classes vary by version
        text = str(e)
        if "PATH_NOT_FOUND" in text or "Path does not exist" in text:
            return False
        raise
    return True


def _spark_version(spark) -> Tuple[int, int]:
    major, minor = spark.version.split(".")[:2]
    return int(major), int(minor)


def _from_arrow(spark, table: pa.Table, ddl: str):
    """A Spark data frame of a (driver-side) pyarrow table of text columns: directly on Spark
    4.0+, through pandas with Arrow transfer on 3.5."""
    table = table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))
    if _spark_version(spark) >= (4, 0):
        return spark.createDataFrame(table, schema=ddl)
    key = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(key, "false")
    spark.conf.set(key, "true")
    try:
        return spark.createDataFrame(table.to_pandas(), schema=ddl)
    finally:
        spark.conf.set(key, before)


def score(
    cohort: str,
    as_of: str,
    out: Optional[str] = None,
    *,
    root: Optional[str] = None,
    previous: Optional[str] = None,
    **options: Any,
) -> Dict[str, Any]:
    """Run the nightly job under Spark and write the binary's outputs into ``out`` (a folder
    replaced as a whole), or, with ``root``, into ``root/<as_of>/`` as ``strata score --root``
    does: ``root/latest`` moved to it once it is in place (never backwards), the run's start and
    end recorded in ``root/runs.jsonl``, and by default compared with the newest earlier run in
    the root. Returns the manifest; other options are :func:`_score`'s."""
    if (out is None) == (root is None):
        raise SparkJobError("give out (--out DIR) or root (--root ROOT), not both")
    if root is None:
        return _score(cohort, as_of, out, previous=previous, **options)
    if previous is None and options.get("compare", True):
        previous = str(strata._strata.previous_in_root(root, as_of))
    log = strata._strata.RunLog(root, as_of)
    try:
        m = _score(cohort, as_of, str(Path(root) / as_of), previous=previous, in_root=True, **options)
    except BaseException as e:
        log.end(error=str(e) or type(e).__name__)
        raise
    log.end(patients=m.get("patients", 0), listed=m.get("listed", 0))
    return m


def _score(
    cohort: str,
    as_of: str,
    out: str,
    *,
    in_root: bool = False,
    spark=None,
    master: Optional[str] = None,
    today: Optional[str] = None,
    models: Optional[str] = None,
    min_age: int = 65,
    min_category: str = "mild",
    max_rejected: float = 0.01,
    allow_identifiers: bool = False,
    publication: bool = False,
    min_interval: int = 0,
    disclosure_rule: Optional[str] = None,
    engine: str = "auto",
    risk_models: Optional[List[str]] = None,
    rank_by: str = "frailty",
    list_risk_band: Optional[str] = None,
    min_risk: Optional[float] = None,
    top: Optional[int] = None,
    top_percent: Optional[float] = None,
    previous: Optional[str] = None,
    compare: bool = True,
    risk_bands: Optional[str] = None,
    programmes: Optional[List[Dict[str, Any]]] = None,
    skip_memory_check: bool = False,
    join: str = "auto",
    buckets: Optional[int] = None,
) -> Dict[str, Any]:
    """Run the nightly job under Spark and write the binary's outputs into ``out``. Returns the
    manifest. ``engine`` is ``group`` (``applyInArrow``, Spark 4.0+), ``map`` (``repartition`` +
    ``mapInArrow``, Spark 3.3+) or ``auto`` (``group`` where available). ``previous`` is the
    run to say what changed since (default: ``out``, the folder being replaced, as the binary's
    ``--out``); ``compare=False`` compares with none (``--no-compare``). Raises
    :class:`SparkJobError` when the cohort is refused."""
    from pyspark.sql import functions as F

    # The settings, resolved (and refused) by the library before Spark starts, as the binary
    # resolves its flags: the manifest records the library's values.
    keys = dict(
        as_of=as_of, min_age=min_age, min_category=min_category, rank_by=rank_by,
        list_risk_band=list_risk_band, min_risk=min_risk, top=top, top_percent=top_percent,
        risk_bands=risk_bands, publication=publication, programme=programmes,
        no_risk_models=True if risk_models == [] else None,
        risk_models=risk_models or None,
        disclosure={"rule": disclosure_rule, "min_interval": min_interval},
        input={"today": today, "allow_identifiers": allow_identifiers, "max_rejected": max_rejected},
    )
    resolved = strata.settings(**keys)
    if join not in ("auto", "broadcast", "buckets"):
        raise SparkJobError(f"join: expected auto, broadcast or buckets, got {join}")
    if buckets is not None and buckets < 1:
        raise SparkJobError(f"buckets: expected 1 or more, got {buckets}")
    t0 = time.time()
    seconds: List[Tuple[str, float]] = []

    def lap(name: str) -> None:
        nonlocal t0
        seconds.append((name, round(time.time() - t0, 3)))
        t0 = time.time()

    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
        # Said before any work; checked again when the folder is replaced.
        raise OutputFolderError(f"{out} exists and is not a strata output folder: not replaced")
    # The driver's memory, from the record files' footers, before Spark starts: a session this
    # job starts on this machine gets what the cohort needs (unless driver memory was set); an
    # existing driver with less is refused at once, with the setting to use, rather than failing
    # with an OutOfMemoryError minutes in.
    cohort_dir = Path(cohort)
    patients = None if "://" in cohort else _footer_rows(cohort_dir / PATIENTS)
    records = None if "://" in cohort else _records(lambda name: _footer_rows(cohort_dir / name))
    tasks = _local_tasks(master)
    if join == "auto" and patients is not None:
        join = "broadcast" if patients <= BROADCAST_PATIENTS else "buckets"
    need = driver_memory_needed(records, tasks, join) if records is not None else None
    if spark is None:
        from pyspark.sql import SparkSession

        set_by_user = "--driver-memory" in os.environ.get("PYSPARK_SUBMIT_ARGS", "") or (
            SparkSession.getActiveSession() is not None
        )
        grow = need is not None and need > DRIVER_BASE_BYTES and not set_by_user
        spark = _session(master, driver_memory=need if grow else None)
    heap = _driver_heap(spark)
    if heap is not None and not skip_memory_check:
        # The session's own master decides: in local mode its tasks run in this JVM.
        tasks = _local_tasks(master, spark)
        if tasks and records is None:
            # A cohort Spark reads from elsewhere: its files' rows through Spark (from the
            # footers; no record read).
            records = _records(
                lambda name: spark.read.parquet(f"{cohort.rstrip('/')}/{name}").count()
                if name != MEDICATIONS or _medications_present(spark, cohort, cohort_dir) else 0
            )
        need = driver_memory_needed(records or 0, tasks, join)
        # The JVM reports a little less than the heap it was given.
        if heap < need * 0.8:
            why = (
                f"{records} records (events, encounters, medications) with {tasks} tasks at once "
                "in the driver (local mode) need"
                if tasks else "the Spark driver needs"
            )
            raise SparkJobError(
                f"error: {why} about {_gib(need)} of Spark driver memory and this driver has "
                f"{_gib(heap)}: give --driver-memory {_spark_size(need)} to spark-submit (or "
                f"spark.driver.memory={_spark_size(need)}), or --skip-memory-check to try anyway"
            )
    version = _spark_version(spark)
    if engine == "auto":
        engine = "group" if version >= (4, 0) else "map"
    if engine == "group" and version < (4, 0):
        raise SparkJobError(f"--engine group needs Spark 4.0 or later (this is {spark.version})")
    today = resolved["load"]["today"]  # the library's reading (its default: the UTC date)
    if not cohort_dir.is_dir() and "://" not in cohort:
        raise SparkJobError(f"error: {cohort}: cohort folder does not exist")
    # Tasks load the models folder given (it must then be readable on every executor), else
    # their own $STRATA_MODELS or the copy built into the package.

    # The previous run, read once on the driver (the binary's rules and messages).
    prev = None
    compared_with = "nothing compared (no previous run given)"
    compare_warning: Optional[str] = None
    if compare:
        prev_dir = previous if previous is not None else out
        try:
            prev = strata.read_previous(prev_dir)
            if prev is None:
                compared_with = f"no previous run in {prev_dir} to compare with"
        except strata.PreviousRunError as err:
            compare_warning = f"warning: not compared with the previous run: {err}"
            compared_with = str(err)

    # 1. Read, with each row's 1-based number in its file.
    def read(name: str):
        path = str(cohort_dir / name) if "://" not in cohort else f"{cohort.rstrip('/')}/{name}"
        df = spark.read.parquet(path)
        return df.select("*", (F.col("_metadata.row_index") + 1).alias(ROW))

    files = {"p": read(PATIENTS), "e": read(EVENTS), "n": read(ENCOUNTERS)}
    # strata synth's mark (Spark's rows do not carry Parquet metadata): read once here.
    mark = strata.synthetic_mark(
        str(cohort_dir / PATIENTS) if "://" not in cohort else f"{cohort.rstrip('/')}/{PATIENTS}"
    )
    if _medications_present(spark, cohort, cohort_dir):
        files["m"] = read(MEDICATIONS)
    # Only the contract's columns travel to the tasks: strata ignores any other, once the whole
    # files' schemas have been checked (below) for direct identifiers.
    columns = {
        t: [c for c in df.columns if c in strata._strata.read_columns(TABLES[t])]
        for t, df in files.items()
    }

    # The schemas, checked once with strata's own checks (on empty tables).
    from pyspark.sql.pandas.types import to_arrow_schema

    def empty(t: str) -> pa.Table:
        schema = to_arrow_schema(files[t].drop(ROW).schema)
        return pa.Table.from_batches([], schema=schema)

    try:
        strata.run(
            empty("p"), empty("e"), empty("n"), as_of,
            medications=empty("m") if "m" in files else None,
            today=today, models=models, min_age=min_age, min_category=min_category,
            allow_identifiers=allow_identifiers, risk_models=risk_models, rank_by=rank_by,
            list_risk_band=list_risk_band, min_risk=min_risk, top=top, top_percent=top_percent,
            cohort_synthetic=mark, risk_bands=risk_bands, programmes=programmes,
        )
    except strata.InvalidCohortError as err:
        # Only the schema's problems: the tables checked here are empty on purpose.
        errors = [
            ln for ln in str(err).splitlines()
            if ln.startswith("error:") and "has no rows" not in ln
        ]
        if errors:
            raise SparkJobError("\n".join(errors)) from None
    lap("read_and_check_schemas")

    # 2. Whole-cohort checks: duplicate pseudonyms; records for unknown patients.
    def key(df):
        return F.regexp_replace(F.col("patient_id").cast("string"), r"(?U)^\s+|\s+$", "")

    p = files["p"].withColumn(KEY, key(files["p"]))
    dup_rows = (
        p.where(F.col(KEY) != "")
        .groupBy(KEY)
        .agg(F.sort_array(F.collect_list(ROW)).alias("rows"))
        .where(F.size("rows") > 1)
        .select(F.explode(F.slice("rows", 2, 1 << 30)).alias("row"))
        .orderBy("row")
        .collect()
    )
    if dup_rows:
        raise SparkJobError(
            # In the library's words (strata::input::parts::duplicate_pseudonyms).
            strata._strata.duplicate_pseudonyms([r["row"] for r in dup_rows])
        )
    owners = p.select(KEY, F.col("pcn_code").cast("string").alias(PCN), F.lit(True).alias(KNOWN))
    if patients is None:
        patients = p.count()
    if join == "auto":
        join = "broadcast" if patients <= BROADCAST_PATIENTS else "buckets"
    national = join == "buckets"
    tagged = {}
    if national:
        # The records meet their patients in buckets of the pseudonym's hash (one shuffle, no
        # join): no patient-to-PCN table to broadcast, whatever the cohort's size. A record
        # whose patient is not in patients.parquet finds none in its bucket, and is rejected
        # there.
        for t in ("e", "n", "m"):
            if t in files:
                tagged[t] = files[t].withColumn(KEY, key(files[t])).withColumn(
                    PCN, F.lit(None).cast("string"))
    else:
        owners = F.broadcast(owners)
        # Each record tagged with its patient's PCN in one join, read once: a record whose
        # patient is not in patients.parquet goes to the ORPHANS group, whose task rejects it
        # (counted and reported, never dropped unsaid).
        for t in ("e", "n", "m"):
            if t not in files:
                continue
            df = files[t].withColumn(KEY, key(files[t]))
            tagged[t] = df.join(owners, KEY, "left").withColumn(
                PCN, F.when(F.col(KNOWN).isNull(), F.lit(ORPHANS)).otherwise(F.col(PCN))
            )
    tagged["p"] = p.withColumn(PCN, F.col("pcn_code").cast("string"))
    # The day before the earlier of the as-of date and today, as the library read them above.
    last = min(_dt.date.fromisoformat(resolved["as_of"]),
               _dt.date.fromisoformat(resolved["load"]["today"])) - _dt.timedelta(days=1)
    unread = _leave_out_unread(spark, tagged, files["e"], columns["e"], last, models,
                               national=national)
    if prev is not None:
        # The previous run's listed people, each with their current patient's PCN (someone no
        # longer in the cohort matters only to the driver's dropped lists); with buckets, the
        # records stage finds the patient and their PCN.
        listed = _from_arrow(spark, pa.table(prev.listed()),
                             ", ".join(f"{c} string" for c in PREVIOUS_COLUMNS))
        v = listed.withColumn(KEY, F.col("patient_id"))
        if national:
            v = v.withColumn(PCN, F.lit(None).cast("string"))
        else:
            v = v.join(owners.drop(KNOWN), KEY, "inner")
        tagged["v"] = v.withColumn(ROW, F.lit(None).cast("long"))
        columns["v"] = PREVIOUS_COLUMNS
    lap("whole_cohort_checks")

    # 3. One wide table: each table's columns in typed slots shared across tables, rows tagged.
    unread_rows = tagged.pop("u", None)
    slots = _slots({t: [(c, dict(df.dtypes)[c]) for c in columns[t]] for t, df in tagged.items()})
    wide = None
    for t, df in tagged.items():
        sel = [F.lit(t).alias(TAG), F.col(PCN), F.col(ROW)] + [
            F.col(f"`{c}`").alias(slots[t][c]) for c in columns[t]
        ]
        if national:
            sel.append(F.col(KEY))
        part = df.select(*sel)
        wide = part if wide is None else wide.unionByName(part, allowMissingColumns=True)
    if unread_rows is not None:
        wide = wide.unionByName(
            unread_rows.select(F.lit(UNREAD_TAG).alias(TAG), F.lit(None).cast("string").alias(PCN),
                               F.lit(None).cast("long").alias(ROW), F.col(KEY),
                               F.col(UNREAD_COUNT)),
            allowMissingColumns=True)
    # The staging folder the tasks write their own files into (each PCN's part of the scores
    # table), beside the run's folder and on its file system, so the library moves them into the
    # published folder; named as strata names its temporary entries (removed below whatever
    # happens, and by a later run if this process dies).
    stage = out_dir.parent / f".tmp-{out_dir.name}-{os.getpid()}-{time.time_ns()}"
    (stage / "scores").mkdir(parents=True)
    # (A null PCN code sorts last: its task refuses the cohort before writing anything.)
    pcn_values = sorted((r[0] for r in tagged["p"].select(PCN).distinct().collect()),
                        key=lambda v: (v is None, v or ""))
    codes = [v for v in pcn_values if v is not None]
    settings = {
        "stage": str(stage),
        "parts": {pcn: i for i, pcn in enumerate(pcn_values)},
        # Each PCN's files' path in the run folder without extension (the binary's names).
        "stems": dict(zip(codes, strata._strata.pcn_files(codes))),
        "columns": {t: columns[t] for t in tagged},
        "slots": slots,
        "as_of": as_of,
        "today": today,
        "models": models,
        "min_age": min_age,
        "min_category": min_category,
        "allow_identifiers": allow_identifiers,
        "risk_models": risk_models,
        "rank_by": rank_by,
        "list_risk_band": list_risk_band,
        "min_risk": min_risk,
        "top": top,
        "top_percent": top_percent,
        "risk_bands": risk_bands,
        "programmes": programmes,
        "compare": prev is not None,
        "cohort_synthetic": mark,
    }
    shuffle_partitions = int(spark.conf.get("spark.sql.shuffle.partitions", "200"))
    if national:
        # The records stage: one task per bucket of the pseudonym's hash; what leaves it is one
        # row per admitted patient (their patients row, PCN and record), the previous run's
        # listed people found among them, and one row of the bucket's own results.
        from pyspark.sql.types import BinaryType, StructField, StructType

        keep = [TAG, PCN, ROW, KEY] + sorted(
            {slots[t][c] for t in ("p", "v") if t in columns for c in columns[t]})
        bucket_struct = StructType(
            [StructField(c, wide.schema[c].dataType, True) for c in keep]
            + [StructField(CARRIED, BinaryType(), True)])
        # At most BUCKET_PATIENTS patients a bucket (what one task holds with their records),
        # and no fewer buckets than Spark's shuffle partitions.
        settings["buckets"] = buckets or max(shuffle_partitions, -(-patients // BUCKET_PATIENTS))
        settings["bucket_schema"] = to_arrow_schema(bucket_struct)
        settings["empty"] = {
            t: empty(t).select(columns[t]).append_column(ROW, pa.array([], pa.int64()))
            for t in ("e", "n")}
        staged = (
            wide.repartition(settings["buckets"], KEY)
            .mapInArrow(_records_partition(settings), bucket_struct)
        )
    else:
        staged = wide
    try:
        if engine == "group":
            result = staged.groupBy(PCN).applyInArrow(_apply_group(settings), RESULT_DDL)
        else:
            n_pcns = p.select("pcn_code").distinct().count()
            parts = max(1, min(n_pcns + national, shuffle_partitions))
            result = (
                staged.repartition(parts, PCN)
                .sortWithinPartitions(PCN)
                .mapInArrow(_map_partition(settings), RESULT_DDL)
            )
        result = result.persist()

        # 4. The counts, added up in Spark; everything else to the driver.
        counts = (
            result.where(F.col("kind") == "count")
            .groupBy("key", "section", "a", "b")
            .agg(*[F.sum(f"c{i}").alias(f"c{i}") for i in range(5)])
            .collect()
        )
        indicator_counts = (
            result.where(F.col("kind") == "indicator")
            .groupBy("key")
            .agg(*[F.sum(f"c{i}").alias(f"c{i}") for i in range(INDICATOR_WIDTH)])
            .collect()
        )
        profile_counts = (
            result.where(F.col("kind") == "profile")
            .groupBy("key", "b", "a")
            .agg(*[F.sum(f"c{i}").alias(f"c{i}") for i in range(8)])
            .collect()
        )
        items = (
            result.where(~F.col("kind").isin("count", "indicator", "profile"))
            .select("kind", "key", "section", "a", "data")
            .collect()
        )
        result.unpersist()
        lap("score_per_pcn")

        metas = [json.loads(bytes(r["data"])) for r in items if r["kind"] == "meta"]
        errors = [e for m in metas for e in m["errors"]]
        if errors:
            lines = []
            for e in errors:
                if "bucket" in e:
                    named = ", ".join(e["pcns"][:3]) + (
                        f" and {len(e['pcns']) - 3} more" if len(e["pcns"]) > 3 else "")
                    lines.append(f"records bucket {e['bucket']}, patients of PCNs {named} (row "
                                 "numbers within the bucket's rows, in the order Spark gave them):")
                    lines.extend(ln for ln in e["report"].splitlines() if ln.startswith("error:"))
                    continue
                lines.append(f"PCN {', '.join(e['pcns'])} (row numbers within the PCN's patients):")
                lines.extend(ln for ln in e["report"].splitlines() if ln.startswith("error:"))
            raise SparkJobError("\n".join(lines))
        unread_rejects = []
        if sum(m.get("unread_orphans", 0) for m in metas):
            # The unread rows of patients not in patients.parquet: rejected, as every record of
            # an unknown patient is. A second pass over the events, only then: those rows found
            # in Spark (an anti-join against the patients) and written by the tasks as parts of
            # rejected rows; the driver gets the parts' records.
            orphan_rows = unread.join(p.select(KEY), KEY, "left_anti").select(ROW)
            unread_rejects = [
                tuple(json.loads(bytes(r["data"])))
                for r in orphan_rows.mapInArrow(_stage_unread_orphans(str(stage)),
                                                "data binary").collect()
            ]
        totals = {TABLES[t]: df.count() for t, df in files.items()}
        score_tables = [
            pa.ipc.open_stream(bytes(r["data"])).read_all() for r in items if r["kind"] == "scores"
        ]
        scores = pa.concat_tables(score_tables) if score_tables else None
        lap("collect")

        # 5. The library's reduce step, as the binary's run calls it (strata::finish): the whole
        # files' checks, the tables protected together, every file (each PCN's workbook and page
        # made from its list), the manifest, the folder published as the binary publishes it.
        try:
            manifest_json = strata._strata.finish(
                json.dumps({**keys, "models": models}),
                cohort,
                str(out_dir),
                in_root=in_root,
                previous=(previous if previous is not None else out) if compare else None,
                engine=f"spark {spark.version} ({'records in buckets, then ' if national else ''}"
                f"{'groupBy.applyInArrow' if engine == 'group' else 'repartition.mapInArrow'})",
                threads=spark.sparkContext.defaultParallelism,
                seconds=seconds,
                counts=[(r["key"], r["section"], r["a"], r["b"], *[r[f"c{i}"] for i in range(5)])
                        for r in counts],
                indicator_rows=[(r["key"], [r[f"c{i}"] for i in range(INDICATOR_WIDTH)])
                                for r in indicator_counts],
                profile=[(r["key"], r["b"], r["a"], [r[f"c{i}"] for i in range(8)])
                         for r in profile_counts],
                parts=[m["handed"] for m in metas if "handed" in m],
                files=list(totals.items()),
                # The tasks' rejected rows, in parts in the staging folder.
                rejects=sorted([tuple(json.loads(bytes(r["data"])))
                                for r in items if r["kind"] == "rejects_part"] + unread_rejects),
                lists=[(r["key"], *map(tuple, json.loads(bytes(r["data"]))))
                       for r in items if r["kind"] == "list"],
                programmes=[(r["section"], r["key"], r["a"], *map(tuple, json.loads(bytes(r["data"]))))
                            for r in items if r["kind"] == "programme"],
                scores=scores,
                # What changed since the previous run, worked out by the library from the whole
                # run's scores (the tasks filled the lists' `change` column).
                previous_run=prev,
                compared_with=compared_with,
                compare_warning=compare_warning,
                cohort_synthetic=mark,
                # The input files' hashes, where the driver can read them (not a URI).
                hash_inputs="://" not in cohort,
                # The scores table's parts, written by the tasks.
                stage=str(stage),
                staged=[tuple(json.loads(bytes(r["data"])))
                        for r in items if r["kind"] == "scores_part"],
                read_paths=[(EVENTS, f"spark: {sum(m.get('unread', 0) for m in metas)} rows "
                             "whose code nothing strata computes reads (admitted, dated before "
                             "the as-of date, linked to no encounter) left out before the "
                             "shuffle, counted by patient")]
                if national and unread is not None else
                [(EVENTS, f"spark: {unread.get['rows'] or 0} rows whose code nothing "
                  "strata computes reads (admitted, dated before the as-of date, "
                  "linked to no encounter) left out before the shuffle")]
                if unread is not None else [],
            )
        except strata.InvalidCohortError as err:
            raise SparkJobError(
                "\n".join(ln for ln in str(err).splitlines() if ln.startswith("error:"))
            ) from None
        except strata.ModelsError as err:
            # Among them: a task scored with other models files than the driver loads here
            # (every part hands up what it was scored with and its PCNs; the library refuses a
            # difference, naming the part's PCNs).
            raise SparkJobError(f"error: {err}") from None
        except RuntimeError as e:
            if str(e).startswith("rejected rows part"):
                raise SparkJobError(
                    f"error: {e} (the tasks write their rejected rows into the staging folder "
                    f"{stage}: it must be a folder the driver and every executor share)"
                ) from None
            if "not a strata output folder" in str(e):
                raise OutputFolderError(
                    f"{out_dir} exists and is not a strata output folder: not replaced"
                ) from e
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return json.loads(manifest_json)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m strata.spark", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score a cohort folder under Spark and write the binary's outputs")
    s.add_argument("--cohort", required=True, help="folder with patients/events/encounters.parquet")
    s.add_argument("--as-of", required=True, metavar="YYYY-MM-DD")
    dest = s.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="output folder (replaced when the run succeeds)")
    dest.add_argument("--root", help="output root: the run goes to ROOT/<as-of>/, ROOT/latest points at the last good run, ROOT/runs.jsonl records every run")
    s.add_argument("--master", help="Spark master, e.g. local[2] (default: the session's)")
    s.add_argument("--today", metavar="YYYY-MM-DD", help="treat this date as today (default: the driver's UTC date)")
    s.add_argument("--models", help="models folder (default: $STRATA_MODELS or the built-in copy)")
    s.add_argument("--min-age", type=int, default=65)
    s.add_argument("--min-category", default="mild")
    s.add_argument("--max-rejected", type=float, default=0.01)
    s.add_argument("--allow-identifiers", action="store_true")
    s.add_argument("--skip-memory-check", action="store_true",
                   help="run even when the Spark driver has less memory than the cohort needs")
    s.add_argument("--publication", action="store_true")
    s.add_argument("--min-interval", type=int, default=0, metavar="N",
                   help="every hidden count's provable interval at least N wide (strata score's)")
    s.add_argument("--disclosure-rule", choices=["complementary", "nhse-2018"],
                   help="the aggregate tables' small-number rule (strata score's --disclosure-rule)")
    s.add_argument("--engine", choices=["auto", "group", "map"], default="auto",
                   help="group: groupBy.applyInArrow (Spark 4.0+); map: repartition.mapInArrow")
    s.add_argument("--join", choices=["auto", "broadcast", "buckets"], default="auto",
                   help="how records meet their PCN: broadcast the patient-to-PCN table (up to "
                   f"{BROADCAST_PATIENTS:,} patients, the default there), or buckets: read the "
                   "records with their patients in buckets of the pseudonym's hash, then move "
                   "one small record per patient to its PCN (the default beyond)")
    s.add_argument("--buckets", type=int, metavar="N",
                   help="buckets of --join buckets (default: one per 100,000 patients, at least spark.sql.shuffle.partitions)")
    s.add_argument("--risk-models", action="append", metavar="CARD|DIR",
                   help="risk model card or folder of cards (repeatable; default: the models folder's risk/)")
    s.add_argument("--no-risk-models", action="store_true", help="apply no risk model")
    s.add_argument("--rank-by", default="frailty",
                   help="frailty, emergency_admission, falls_admission or death")
    s.add_argument("--list-risk-band", help="low, moderate, high or very_high (with --rank-by a model)")
    s.add_argument("--min-risk", type=float, help="also list people with at least this probability (with --rank-by a model)")
    prev = s.add_mutually_exclusive_group()
    prev.add_argument("--previous", metavar="DIR",
                      help="the previous run to say what changed since (default: --out, if it holds a run)")
    prev.add_argument("--no-compare", action="store_true", help="compare with no previous run")
    s.add_argument("--programmes", metavar="FILE",
                   help="named programme lists: a TOML file of [[programme]] tables (strata score's --programmes)")
    s.add_argument("--risk-bands", choices=["card", "pcn"],
                   help="risk bands by the card's cut-offs (default) or by rank within each PCN")
    size = s.add_mutually_exclusive_group()
    size.add_argument("--top", type=int, help="keep only the top N of each PCN's list")
    size.add_argument("--top-percent", type=float, help="keep only the top X%% of each PCN's eligible people")
    a = ap.parse_args(argv)
    try:
        m = score(
            a.cohort, a.as_of, a.out, root=a.root, master=a.master, today=a.today, models=a.models,
            min_age=a.min_age, min_category=a.min_category, max_rejected=a.max_rejected,
            allow_identifiers=a.allow_identifiers, skip_memory_check=a.skip_memory_check,
            publication=a.publication,
            min_interval=a.min_interval, disclosure_rule=a.disclosure_rule, engine=a.engine,
            risk_models=[] if a.no_risk_models else a.risk_models, rank_by=a.rank_by,
            list_risk_band=a.list_risk_band, min_risk=a.min_risk, top=a.top,
            top_percent=a.top_percent, previous=a.previous, compare=not a.no_compare,
            risk_bands=a.risk_bands, join=a.join, buckets=a.buckets,
            programmes=json.loads(strata._strata.read_programmes(a.programmes)) if a.programmes else None,
        )
    except OutputFolderError as e:
        print(e, file=sys.stderr)
        return 5
    except SparkJobError as e:
        print(e, file=sys.stderr)
        return 3
    print(
        f"scored {m.get('patients', 0)} patients at {m['as_of']} under {m['engine']}: "
        f"{m.get('eligible', 0)} eligible, {m.get('listed', 0)} listed across "
        f"{sum(1 for w in m['outputs'] if w['path'].startswith('lists/') and w['path'].endswith('.csv') and not w['path'].endswith('.dropped.csv'))} PCN lists; "
        f"{m['rejected_rows']} rows rejected"
    )
    for w in m["warnings"]:
        if "not compared with the previous run" in w:
            print(w, file=sys.stderr)
    print(
        f"since the previous run: {m['new_on_lists']} new on a list, {m['dropped_off_lists']} "
        f"dropped off (compared with: {m['compared_with']})"
    )
    return 0


def cli() -> None:
    """The ``strata-spark`` command: :func:`main`, its exit code raised as ``SystemExit`` (so that
    a caller that ignores return values, such as a Databricks Python wheel task, still sees a
    failed run fail)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
