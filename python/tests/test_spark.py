"""``strata.spark`` on a real local Spark (``local[2]``) against the binary: every output file
byte for byte (lists, workbooks, pages, programme lists, the tables, ``rejects.csv`` and
``scores.parquet``), on the fixture cohort, a synthetic cohort and a cohort with bad rows; a
second run compared with a previous one (the lists' ``change`` column and ``dropped.csv``); an
output root (``latest``, ``runs.jsonl``); and the whole-cohort checks.

Needs pyspark and a Java runtime. Skipped without them unless ``STRATA_REQUIRE_SPARK=1`` (CI
sets it, so a missing install fails there instead of passing quietly).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import AS_OF, FIXTURE, TODAY, run_binary, strata_bin

REQUIRED = os.environ.get("STRATA_REQUIRE_SPARK") == "1"

try:
    import pyspark  # noqa: F401
    HAVE_SPARK = shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))
except ImportError:
    HAVE_SPARK = False

if not HAVE_SPARK:
    if REQUIRED:
        raise RuntimeError("STRATA_REQUIRE_SPARK=1 but pyspark or java is missing")
    pytest.skip("pyspark or java not installed", allow_module_level=True)

import strata.spark as sj  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    s = sj._session("local[2]", app="strata-tests")
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def engines(spark) -> list[str]:
    return ["group", "map"] if sj._spark_version(spark) >= (4, 0) else ["map"]


# Files only the binary writes: none (the care coordinator's workbooks and pages included).
BINARY_ONLY: tuple[str, ...] = ()
BINARY_ONLY_SUFFIXES: tuple[str, ...] = ()


def binary_only(name: str) -> bool:
    return name in BINARY_ONLY or name.endswith(BINARY_ONLY_SUFFIXES)


def is_scores(rel: str) -> bool:
    """The scores table: the binary's one file, or the Spark tasks' parts of it."""
    return rel == "scores.parquet" or rel.startswith("scores/")


def files(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not binary_only(p.name)
        and not is_scores(str(p.relative_to(d)))
    }


def scores_of(d: Path) -> pa.Table:
    """Every patient's scores in pseudonym order: the binary's file, or the parts Spark's tasks
    wrote (`scores/part-NNNNN.parquet`, one a PCN), put together."""
    def plain(t: pa.Table) -> pa.Table:
        # View types (as polars writes text) as plain ones, which pyarrow can sort and take.
        views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
        return t.cast(pa.schema([f.with_type(views.get(f.type, f.type)) for f in t.schema]))

    if (d / "scores.parquet").is_file():
        return plain(pq.read_table(d / "scores.parquet"))
    parts = sorted((d / "scores").glob("part-*.parquet"))
    assert parts, f"no scores in {d}"
    t = plain(pa.concat_tables([pq.read_table(p) for p in parts]))
    return t.take(pc.sort_indices(t, [("patient_id", "ascending")]))


def spark_outputs(outputs: list[dict]) -> list[dict]:
    """A manifest's list of output files without those only the binary writes and the scores
    (one file from the binary, parts from Spark: compared row for row)."""
    return [o for o in outputs
            if not binary_only(Path(o["path"]).name) and not is_scores(o["path"])]


def assert_same_outputs(binary: Path, spark_out: Path) -> None:
    want, got = files(binary), files(spark_out)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"{name} differs from the binary's"
    # The scores table row for row: the binary's one file against the tasks' parts.
    assert not (spark_out / "scores.parquet").exists()
    assert scores_of(spark_out).equals(scores_of(binary))
    # The manifest records every part, whose rows add up to the binary's file's.
    m = json.loads((spark_out / "manifest.json").read_text())
    parts = [o for o in m["outputs"] if is_scores(o["path"])]
    assert parts and all(o["path"].startswith("scores/part-") for o in parts)
    assert sum(o["rows"] for o in parts) == scores_of(binary).num_rows
    for o in parts:
        data = (spark_out / o["path"]).read_bytes()
        assert len(data) == o["bytes"] and hashlib.sha256(data).hexdigest() == o["sha256"]
    assert m["scores_table"].startswith("scores/")


def same_paths(warnings: list[str]) -> list[str]:
    """Warnings with the risk models' folder left out: the binary read ./models, the package its
    built-in copy."""
    return [re.sub(r"\((\S*/)?risk/", "(risk/", w) for w in warnings]


def run_both(spark, cohort: Path, tmp: Path, engine: str) -> tuple[Path, Path, dict]:
    # A new folder each time: a first run (nothing to compare with).
    binary = tmp / f"binary-{engine}"
    run_binary(cohort, binary)
    out = tmp / f"spark-{engine}"
    manifest = sj.score(str(cohort), AS_OF, str(out), spark=spark, today=TODAY, engine=engine)
    return binary, out, manifest


def test_fixture_cohort_equals_the_binary_byte_for_byte(spark, tmp_path):
    for engine in engines(spark):
        binary, out, m = run_both(spark, FIXTURE, tmp_path, engine)
        assert_same_outputs(binary, out)
        assert spark_outputs(m["outputs"]) == spark_outputs(json.loads((binary / "manifest.json").read_text())["outputs"])
        assert m["patients"] == 2000 and m["listed"] == 162
        assert m["today"] == TODAY
        # The same PCN folders (what is in them: assert_same_outputs).
        assert sorted(p.name for p in (out / "lists").iterdir()) == sorted(
            p.name for p in (binary / "lists").iterdir()
        )


def test_synthetic_cohort_equals_the_binary(spark, tmp_path):
    cohort = tmp_path / "synth"
    r = subprocess.run(
        [str(strata_bin()), "synth", "--patients", "3000", "--pcns", "5", "--seed", "11",
         "--out", str(cohort)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    binary, out, m = run_both(spark, cohort, tmp_path, "auto")
    assert_same_outputs(binary, out)
    assert len(list((out / "lists").glob("*/*.csv"))) == 5


def dirty_cohort(d: Path) -> Path:
    """The fixture with bad rows at the start and end of events and encounters: unknown and
    null patients (the orphans' group), an unknown code system, a date after today, a null
    code, an end date before the start (the tasks' checks); and, as extracts carry them, a
    column strata does not read (which Spark's tasks are not sent)."""
    d.mkdir()
    shutil.copy(FIXTURE / "patients.parquet", d / "patients.parquet")
    e = pq.read_table(FIXTURE / "events.parquet")
    rows = e.slice(0, 5).to_pylist()
    rows[0]["patient_id"] = "not-a-patient"
    rows[1]["patient_id"] = None
    rows[2]["code_system"] = "klingon"
    rows[3]["event_date"] = pa.scalar("2027-01-01").cast(pa.date32()).as_py()
    rows[4]["code"] = None
    bad = pa.Table.from_pylist(rows, schema=e.schema)
    e = pa.concat_tables([bad.slice(0, 2), e, bad.slice(2)])
    e = e.append_column("source_system", pa.array(["EMIS Web"] * e.num_rows, pa.string()))
    pq.write_table(e, d / "events.parquet", row_group_size=20000)
    n = pq.read_table(FIXTURE / "encounters.parquet")
    rows = n.slice(0, 2).to_pylist()
    rows[0]["end_date"] = pa.scalar("2001-01-01").cast(pa.date32()).as_py()
    rows[1]["patient_id"] = "ghost"
    bad = pa.Table.from_pylist(rows, schema=n.schema)
    pq.write_table(pa.concat_tables([n, bad]), d / "encounters.parquet")
    return d


def nhs_extract(d: Path) -> Path:
    """The fixture's facts written as NHS systems write them: dates as timestamps with a time
    of day (TPP, SUS), pseudonyms padded with a space in the events file, Read v2 codes with
    EMIS's two-character term code (``BBmA.00``), SNOMED codes copied from a spreadsheet with a
    trailing non-breaking space, and encounter ids as integers (SUS spell numbers) in both
    files that link diagnoses to admissions."""
    d.mkdir()
    p = pq.read_table(FIXTURE / "patients.parquet")
    for c in ("birth_date", "death_date"):
        p = p.set_column(p.schema.get_field_index(c), c, p.column(c).cast(pa.timestamp("ms")))
    pq.write_table(p, d / "patients.parquet")
    plain = pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type)
                       for f in pq.read_schema(FIXTURE / "events.parquet")])
    e = pq.read_table(FIXTURE / "events.parquet").cast(plain)
    n = pq.read_table(FIXTURE / "encounters.parquet")
    n = n.cast(pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type)
                          for f in n.schema]))
    ids = {v: i + 1_000_000_000 for i, v in enumerate(sorted(set(n.column("encounter_id").to_pylist())))}
    rows = e.to_pylist()
    for k, r in enumerate(rows):
        if k % 3 == 0:
            r["patient_id"] += " "
        if r["code_system"] == "read2" and len(r["code"]) == 5:
            r["code"] += "00"
        if r["code_system"] == "snomed" and k % 5 == 0:
            r["code"] += "\u00a0"
        r["encounter_id"] = ids.get(r["encounter_id"]) if r["encounter_id"] is not None else None
        r["event_date"] = _dt.datetime.combine(r["event_date"], _dt.time(13, 45))
    schema = plain.set(plain.get_field_index("event_date"), pa.field("event_date", pa.timestamp("us")))
    schema = schema.set(schema.get_field_index("encounter_id"), pa.field("encounter_id", pa.int64()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), d / "events.parquet", row_group_size=30000)
    n = n.set_column(n.schema.get_field_index("encounter_id"), "encounter_id",
                     pa.array([ids[v] for v in n.column("encounter_id").to_pylist()], pa.int64()))
    for c, t in (("start_date", _dt.time(9, 5)), ("end_date", _dt.time(17, 30))):
        days = n.column(c).to_pylist()
        n = n.set_column(n.schema.get_field_index(c), c, pa.array(
            [None if v is None else _dt.datetime.combine(v, t) for v in days], pa.timestamp("ms")))
    pq.write_table(n, d / "encounters.parquet")
    return d


def test_an_extract_written_as_nhs_systems_write_it_equals_the_binary(spark, tmp_path):
    cohort = nhs_extract(tmp_path / "nhs")
    e = pq.read_table(cohort / "events.parquet")
    codes = e.column("code").to_pylist()
    # Each variant is there to be read.
    assert sum(len(c) == 7 for c, s in zip(codes, e.column("code_system").to_pylist()) if s == "read2") > 100
    assert sum(c.endswith("\u00a0") for c in codes) > 1000
    assert sum(p.endswith(" ") for p in e.column("patient_id").to_pylist()) > 10000
    assert e.column("encounter_id").drop_null().length() > 100
    plain = tmp_path / "plain"
    run_binary(FIXTURE, plain)
    for engine in engines(spark):
        binary, out, m = run_both(spark, cohort, tmp_path, engine)
        assert_same_outputs(binary, out)
        assert m["rejected_rows"] == 0
        # The same facts: every list as the plainly written fixture's, byte for byte.
        lists = sorted(p.relative_to(out) for p in (out / "lists").rglob("*.csv"))
        assert lists == sorted(p.relative_to(plain) for p in (plain / "lists").rglob("*.csv"))
        for rel in lists:
            assert (out / rel).read_bytes() == (plain / rel).read_bytes(), rel


def test_rejected_rows_are_the_binarys_in_every_detail(spark, tmp_path):
    cohort = dirty_cohort(tmp_path / "dirty")
    # Both engines: the records of unknown patients are a group of their own under either.
    for engine in engines(spark):
        binary, out, m = run_both(spark, cohort, tmp_path, engine)
        assert (binary / "rejects.csv").is_file()
        assert_same_outputs(binary, out)
        assert m["rejected_rows"] == 7
    # The manifest's warnings are the binary's (rejected rows named by their rows in the files).
    want = json.loads((binary / "manifest.json").read_text())
    assert same_paths(m["warnings"]) == same_paths(want["warnings"])
    assert m["inputs"] == want["inputs"]
    inputs = {i["file"]: i["rejected"] for i in m["inputs"]}
    assert inputs["events.parquet"] == 5 and inputs["encounters.parquet"] == 2


# The manifest fields that say which engine ran and how (README, "Python and Spark"); every
# other field is the binary's value.
ENGINE_FIELDS = ("engine", "threads", "seconds", "read_paths", "distinct_codes", "unused_codes",
                 "scores_table")


def same_model_paths(entries: list[dict]) -> list[dict]:
    """Model file records with the folder each engine found left out (hashes and sizes kept)."""
    return [{**e, "path": re.sub(r"^.*?((risk/)?[^/]+)$", r"\1", e["path"])} for e in entries]


def unread_left_out(cohort: Path) -> int:
    """The event rows the Spark job leaves out before the shuffle (codes nothing strata computes
    reads, where the tasks would admit them: a known patient, dated before the as-of date, no
    encounter), counted here again from the file."""
    e = pq.read_table(cohort / "events.parquet")
    known = set(pq.read_table(cohort / "patients.parquet").column("patient_id").to_pylist())
    pairs = sorted({(s, c) for s, c in zip(e.column("code_system").to_pylist(),
                                             e.column("code").to_pylist()) if s and c})
    unread = {pc_ for pc_, u in zip(pairs, sj.strata._strata.unread_codes(pairs)) if u}
    last = _dt.date.fromisoformat(AS_OF) - _dt.timedelta(days=1)
    return sum(
        1 for p, d, s, c, n in zip(*(e.column(x).to_pylist() for x in
                                     ("patient_id", "event_date", "code_system", "code", "encounter_id")))
        if (s, c) in unread and p in known and d is not None
        and _dt.date(1900, 1, 2) <= d <= last and n is None
    )


def test_the_manifest_is_the_binarys_but_for_the_engine_fields(spark, tmp_path):
    # A cohort with rejected rows, so the warnings and inputs are not trivially empty.
    cohort = dirty_cohort(tmp_path / "dirty")
    binary, out, m = run_both(spark, cohort, tmp_path, "auto")
    want = json.loads((binary / "manifest.json").read_text())
    assert json.loads((out / "manifest.json").read_text()) == m
    assert m.keys() == want.keys()
    assert want["engine"] == "binary" and m["engine"].startswith("spark ")
    # Counted over the whole cohort: the binary's; under Spark, not counted (null), said so.
    assert want["distinct_codes"] and m["distinct_codes"] is None and m["unused_codes"] is None
    # The event rows left out before the shuffle (codes nothing strata computes reads, where the
    # tasks would admit them: a known patient, dated before the as-of date, no encounter), counted
    # here again from the file.
    left_out = unread_left_out(cohort)
    assert left_out > 10_000
    assert m["read_paths"] == [["events.parquet", f"spark: {left_out} rows whose code nothing strata "
                                "computes reads (admitted, dated before the as-of date, linked to no "
                                "encounter) left out before the shuffle"]]
    assert [s for s, _ in m["seconds"]][-2:] == ["protect", "write"]
    # The driver hashed the same input files.
    assert m["input_files"] == want["input_files"] and len(want["input_files"]) >= 3
    for key in ("models", "risk_models", "withheld_risk_models"):
        assert same_model_paths(m[key]) == same_model_paths(want[key]), key
    assert same_paths(m["warnings"]) == same_paths(want["warnings"])
    paths = ("cohort", "out", "previous", "models", "risk_models")
    assert {k: v for k, v in m["config"].items() if k not in paths} == {
        k: v for k, v in want["config"].items() if k not in paths
    }
    # Where each engine's files went.
    assert m["compared_with"].replace(str(out), "OUT") == want["compared_with"].replace(
        str(binary), "OUT")
    # Each engine records the commit its own build was made from (the same in CI, which builds
    # both from one checkout).
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", m["git_commit"])
    assert want["scores_table"] == "scores.parquet"
    # The outputs are the binary's but for the scores table (its parts: assert_same_outputs).
    assert spark_outputs(m["outputs"]) == spark_outputs(want["outputs"])
    compared = ENGINE_FIELDS + ("config", "models", "risk_models", "withheld_risk_models",
                                "warnings", "compared_with", "git_commit", "outputs")
    assert {k: v for k, v in m.items() if k not in compared} == {
        k: v for k, v in want.items() if k not in compared
    }


def test_too_many_rejected_rows_refuse_the_cohort(spark, tmp_path):
    cohort = dirty_cohort(tmp_path / "dirty")
    with pytest.raises(sj.SparkJobError, match="events.parquet: 5 of 91401 rows rejected"):
        sj.score(str(cohort), AS_OF, str(tmp_path / "out"), spark=spark, today=TODAY,
                 max_rejected=0.00001)
    assert not (tmp_path / "out").exists()


def test_duplicate_pseudonyms_across_pcns_are_refused(spark, tmp_path):
    d = tmp_path / "dup"
    shutil.copytree(FIXTURE, d)
    p = pq.read_table(d / "patients.parquet")
    pcns = p.column("pcn_code").to_pylist()
    # A copy of patient 1 in another PCN: only a whole-cohort check can see it.
    row = p.slice(0, 1).to_pylist()[0]
    row["pcn_code"] = next(x for x in pcns if x != row["pcn_code"])
    pq.write_table(pa.concat_tables([p, pa.Table.from_pylist([row], schema=p.schema)]),
                   d / "patients.parquet")
    with pytest.raises(sj.SparkJobError, match=r"patients.parquet, column patient_id: duplicate pseudonym \(1 row; row 2001\)"):
        sj.score(str(d), AS_OF, str(tmp_path / "out"), spark=spark, today=TODAY)


def test_a_schema_problem_is_refused_once_with_the_binarys_message(spark, tmp_path):
    d = tmp_path / "noseX"
    shutil.copytree(FIXTURE, d)
    p = pq.read_table(d / "patients.parquet").drop_columns(["sex"])
    pq.write_table(p, d / "patients.parquet")
    with pytest.raises(sj.SparkJobError, match="patients.parquet, column sex: required column is missing"):
        sj.score(str(d), AS_OF, str(tmp_path / "out"), spark=spark, today=TODAY)


def test_the_command_line(tmp_path):
    """``python -m strata.spark score`` end to end, in its own process and session, with the
    cohort given as a URI (as on a cluster), an optional file present and a programmes file,
    the records read in buckets (``--join buckets``, the national path)."""
    import sys

    cohort = with_medications(tmp_path / "meds")
    out = tmp_path / "out"
    programmes = tmp_path / "programmes.toml"
    programmes.write_text(PROGRAMMES_TOML)
    r = subprocess.run(
        [sys.executable, "-m", "strata.spark", "score", "--cohort", cohort.as_uri(), "--as-of", AS_OF,
         "--today", TODAY, "--out", str(out), "--master", "local[2]", "--programmes", str(programmes),
         # The national path (records read in buckets), with the optional file.
         "--join", "buckets", "--buckets", "4"],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "scored 2000 patients" in r.stdout
    binary = tmp_path / "binary"
    run_binary(cohort, binary, "--programmes", str(programmes))
    assert any(p.name.endswith(".falls_prevention.csv") for p in out.rglob("*.csv"))
    assert_same_outputs(binary, out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["prescriptions"] == "medications.parquet"


def with_medications(d: Path) -> Path:
    """The fixture with its dm+d events moved to ``medications.parquet`` (one in every five
    given a VTM, a few with a bad date or an unknown patient, to be rejected)."""
    d.mkdir()
    shutil.copy(FIXTURE / "patients.parquet", d / "patients.parquet")
    shutil.copy(FIXTURE / "encounters.parquet", d / "encounters.parquet")
    e = pq.read_table(FIXTURE / "events.parquet")
    e = e.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) else f.type)
                          for f in e.schema]))
    is_dmd = pc.equal(e.column("code_system").cast(pa.string()), "dmd")
    pq.write_table(e.filter(pc.invert(is_dmd)), d / "events.parquet")
    dmd = e.filter(is_dmd)
    rows = [
        {"patient_id": r["patient_id"], "issue_date": r["event_date"], "dmd_code": r["code"],
         "vtm_code": r["code"][:6] if i % 5 == 0 else None}
        for i, r in enumerate(dmd.select(["patient_id", "event_date", "code"]).to_pylist())
    ]
    rows[10]["patient_id"] = "nobody"
    rows[20]["issue_date"] = None
    pq.write_table(pa.Table.from_pylist(rows), d / "medications.parquet")
    return d


def test_medications_file_equals_the_binary(spark, tmp_path):
    cohort = with_medications(tmp_path / "meds")
    binary, out, m = run_both(spark, cohort, tmp_path, "auto")
    assert_same_outputs(binary, out)
    assert m["prescriptions"] == "medications.parquet"
    want = json.loads((binary / "manifest.json").read_text())
    assert same_paths(m["warnings"]) == same_paths(want["warnings"])
    assert {i["file"]: i["rejected"] for i in m["inputs"]}["medications.parquet"] == 2


PROGRAMMES_TOML = """
[[programme]]
name = "anticipatory_care"
description = "Severe frailty: anticipatory care planning"
[[programme.rule]]
min_category = "severe"

[[programme]]
name = "falls_prevention"
description = "Falls history or high falls risk"
rank_by = "falls_admission"
top = 15
[[programme.rule]]
falls_history = true
[[programme.rule]]
risk = "falls_admission"
min_band = "high"

[[programme]]
name = "palliative_register_review"
description = "High one-year mortality risk, not on the palliative care register"
rank_by = "death"
[[programme.rule]]
risk = "death"
min_band = "high"
palliative_register = false
"""

PROGRAMMES = [
    {"name": "anticipatory_care", "description": "Severe frailty: anticipatory care planning",
     "rule": [{"min_category": "severe"}]},
    {"name": "falls_prevention", "description": "Falls history or high falls risk",
     "rank_by": "falls_admission", "top": 15,
     "rule": [{"falls_history": True}, {"risk": "falls_admission", "min_band": "high"}]},
    {"name": "palliative_register_review",
     "description": "High one-year mortality risk, not on the palliative care register",
     "rank_by": "death",
     "rule": [{"risk": "death", "min_band": "high", "palliative_register": False}]},
]


def test_programme_lists_equal_the_binarys(spark, tmp_path):
    toml = tmp_path / "programmes.toml"
    toml.write_text(PROGRAMMES_TOML)
    binary = tmp_path / "binary"
    run_binary(FIXTURE, binary, "--programmes", str(toml))
    out = tmp_path / "spark"
    m = sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY, programmes=PROGRAMMES)
    assert_same_outputs(binary, out)
    want = json.loads((binary / "manifest.json").read_text())
    assert m["programmes"] == want["programmes"]
    assert spark_outputs(m["outputs"]) == spark_outputs(want["outputs"])
    assert all(p["listed"] > 0 for p in m["programmes"]), m["programmes"]
    assert sum(".falls_prevention." in o["path"] for o in m["outputs"]) >= 2


def test_an_output_root_is_kept_as_the_binary_keeps_it(spark, tmp_path):
    broot, sroot = tmp_path / "binary", tmp_path / "spark"
    r = subprocess.run([str(strata_bin()), "score", "--cohort", str(FIXTURE), "--as-of", AS_OF,
                        "--root", str(broot), "--today", TODAY], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = sj.score(str(FIXTURE), AS_OF, root=str(sroot), spark=spark, today=TODAY)
    assert_same_outputs(broot / AS_OF, sroot / AS_OF)
    assert (sroot / "latest").resolve() == (sroot / AS_OF).resolve()
    assert os.readlink(sroot / "latest") == os.readlink(broot / "latest") == AS_OF
    want = json.loads((broot / AS_OF / "manifest.json").read_text())
    assert m["compared_with"] == want["compared_with"].replace(str(broot), str(sroot))
    lines = [json.loads(x) for x in (sroot / "runs.jsonl").read_text().splitlines()]
    binary = [json.loads(x) for x in (broot / "runs.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["start", "end"]
    assert {k: v for k, v in lines[1].items() if k not in ("run", "at", "pid")} == {
        k: v for k, v in binary[1].items() if k not in ("run", "at", "pid")
    }
    assert lines[1]["status"] == "ok" and lines[1]["patients"] == 2000
    # Out or root, not both.
    with pytest.raises(sj.SparkJobError, match="not both"):
        sj.score(str(FIXTURE), AS_OF, str(tmp_path / "o"), root=str(sroot), spark=spark)


def test_lists_ranked_by_a_risk_model_equal_the_binary(spark, tmp_path):
    binary = tmp_path / "binary"
    run_binary(FIXTURE, binary, "--rank-by", "falls_admission", "--list-risk-band", "moderate",
               "--top", "25", "--risk-bands", "pcn", "--disclosure-rule", "nhse-2018")
    out = tmp_path / "spark"
    m = sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY,
                 rank_by="falls_admission", list_risk_band="moderate", top=25, risk_bands="pcn",
                 disclosure_rule="nhse-2018")
    assert_same_outputs(binary, out)
    # The settings, resolved by the library for both engines, are the binary's.
    want = json.loads((binary / "manifest.json").read_text())
    assert m["rules"] == want["config"]["rules"] == want["rules"]
    assert m["suppression"] == want["config"]["suppression"]
    # The whole `config` has the binary's shape and values; only paths differ (the models
    # folder each engine found, where the files went).
    paths = ("cohort", "out", "previous", "models", "risk_models")
    assert m["config"].keys() == want["config"].keys()
    assert {k: v for k, v in m["config"].items() if k not in paths} == {
        k: v for k, v in want["config"].items() if k not in paths
    }


def test_the_driver_memory_a_cohort_needs_is_said_before_any_work(spark, tmp_path, monkeypatch):
    # In local mode 512 MiB and 6.25 bytes a record for each task at once, to the nearest 256
    # MiB, at least Spark's default 1 GiB: a small cohort runs on the default; the 1.2M synthetic
    # ICS (64.7M records) gets 1.25 GiB at local[2] (it failed with 768 MiB and ran with 1 GiB).
    # A cluster's driver runs no task.
    assert sj.driver_memory_needed(60_000) == 1 << 30
    assert sj.driver_memory_needed(64_674_604, tasks=2) == 1280 << 20
    assert sj.driver_memory_needed(64_674_604, tasks=8) == 3584 << 20
    assert sj.driver_memory_needed(64_674_604, tasks=0) == 1 << 30
    assert sj.driver_memory_needed(400_000_000, tasks=2) == 5376 << 20
    # Records read in buckets: no task holds a PCN's records in the JVM.
    assert sj.driver_memory_needed(400_000_000, tasks=2, join="buckets") == 1 << 30
    assert [sj._local_tasks(m) for m in ("local", "local[3]", "local[4,2]", "yarn", "spark://h:7077",
                                         "local-cluster[2,1,1024]")] == [1, 3, 4, 0, 0, 0]
    assert sj._local_tasks("local[*]") == sj._local_tasks(None) == os.cpu_count()
    assert sj._local_tasks(None, spark) == spark.sparkContext.defaultParallelism
    records = sj._records(lambda name: sj._footer_rows(FIXTURE / name))
    assert records == pq.ParquetFile(FIXTURE / "events.parquet").metadata.num_rows + \
        pq.ParquetFile(FIXTURE / "encounters.parquet").metadata.num_rows
    # A driver with less than the cohort needs is refused at once, naming the setting to use.
    monkeypatch.setattr(sj, "LOCAL_BYTES_PER_RECORD_AND_TASK", float(1 << 30))  # 1 GiB a record
    out = tmp_path / "out"
    with pytest.raises(sj.SparkJobError, match=rf"{records} records .* need about .* --driver-memory \d+m"):
        sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY)
    assert not out.exists()
    # The same cohort read in buckets needs only Spark's default: it runs.
    m = sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY, join="buckets",
                 buckets=2)
    assert m["patients"] == 2000


def test_an_output_folder_that_is_not_stratas_is_left_alone(spark, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(sj.OutputFolderError, match="not a strata output folder"):
        sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY)
    assert (out / "precious.txt").read_text() == "keep me"
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    assert not any(p.name.startswith(".out.") for p in tmp_path.iterdir())


def test_a_bad_patient_row_refuses_the_cohort_naming_its_pcn(spark, tmp_path):
    d = tmp_path / "badsex"
    shutil.copytree(FIXTURE, d)
    p = pq.read_table(d / "patients.parquet")
    rows = p.to_pylist()
    rows[5]["sex"] = "X"
    pq.write_table(pa.Table.from_pylist(rows, schema=p.schema), d / "patients.parquet")
    with pytest.raises(sj.SparkJobError, match=rf"PCN {rows[5]['pcn_code']} .*\n.*sex is not F, M or U"):
        sj.score(str(d), AS_OF, str(tmp_path / "out"), spark=spark, today=TODAY)


def test_a_patient_with_no_pcn_refuses_the_cohort(spark, tmp_path):
    d = tmp_path / "nopcn"
    shutil.copytree(FIXTURE, d)
    p = pq.read_table(d / "patients.parquet")
    rows = p.to_pylist()
    rows[5]["pcn_code"] = None
    pq.write_table(pa.Table.from_pylist(rows, schema=p.schema), d / "patients.parquet")
    with pytest.raises(sj.SparkJobError, match=r"null or empty PCN code"):
        sj.score(str(d), AS_OF, str(tmp_path / "out"), spark=spark, today=TODAY)
    assert not (tmp_path / "out").exists()
    # Nothing staged is left beside the output folder.
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".tmp-")] == []


def later_extract(d: Path, first: Path) -> Path:
    """The fixture as a later extract would have it, against the run ``first`` made of it: of
    the people listed there, three moved to another PCN, three left the cohort (with their
    records), three died; the rest as they were (scored at a later as-of date, some rise)."""
    d.mkdir()
    listed = [r for r in pq.read_table(first / "scores.parquet").to_pylist() if r["listed"]]
    assert len(listed) > 12
    pcns = sorted({r["pcn_code"] for r in listed})
    moved = {r["patient_id"]: next(x for x in pcns if x != r["pcn_code"]) for r in listed[0:3]}
    gone = {r["patient_id"] for r in listed[3:6]}
    died = {r["patient_id"] for r in listed[6:9]}
    p = pq.read_table(FIXTURE / "patients.parquet")
    rows = []
    for r in p.to_pylist():
        if r["patient_id"] in gone:
            continue
        r["pcn_code"] = moved.get(r["patient_id"], r["pcn_code"])
        if r["patient_id"] in died:
            r["death_date"] = pa.scalar("2025-06-01").cast(pa.date32()).as_py()
        rows.append(r)
    pq.write_table(pa.Table.from_pylist(rows, schema=p.schema), d / "patients.parquet")
    for name in ("events", "encounters"):
        t = pq.read_table(FIXTURE / f"{name}.parquet")
        t = t.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_string_view(f.type)
                                       else f.type) for f in t.schema]))
        keep = pc.invert(pc.is_in(t.column("patient_id").cast(pa.string()),
                                  pa.array(sorted(gone), pa.string())))
        pq.write_table(t.filter(keep), d / f"{name}.parquet")
    return d


def test_a_second_run_compared_with_the_fixtures_first_equals_the_binarys(spark, tmp_path, binary_out):
    """The lists' ``change`` column and ``lists/<PCN>/<PCN>.dropped.csv`` of a second run: into the
    folder holding the first run (compared with it by default, as the binary's ``--out``), and
    with ``previous=`` another folder (``--previous``)."""
    cohort = later_extract(tmp_path / "later", binary_out)
    later = "2025-10-01"
    binary = tmp_path / "binary-second"
    shutil.copytree(binary_out, binary)
    run_binary(cohort, binary, as_of=later)
    want = json.loads((binary / "manifest.json").read_text())
    dropped = b"".join(p.read_bytes() for p in sorted((binary / "lists").glob("*/*.dropped.csv")))
    # The comparison is not trivial: the kinds of change and of reason are there.
    for why in (b"died", b"moved to another PCN", b"no longer in the cohort"):
        assert why in dropped, why
    change = set()
    for p in (binary / "lists").glob("*/*.parquet"):
        change |= set(pq.read_table(p, columns=["change"]).column("change").to_pylist())
    assert {"new", "same", "up"} <= change, change
    for engine in engines(spark):
        out = tmp_path / f"spark-second-{engine}"
        if engine == "group":
            shutil.copytree(binary_out, out)
            m = sj.score(str(cohort), later, str(out), spark=spark, today=TODAY, engine=engine)
            assert m["compared_with"].startswith(f"{out} (as of {AS_OF})")
        else:
            m = sj.score(str(cohort), later, str(out), spark=spark, today=TODAY, engine=engine,
                         previous=str(binary_out))
            assert m["compared_with"] == want["compared_with"].replace(str(binary), str(binary_out))
        assert_same_outputs(binary, out)
        assert (m["new_on_lists"], m["dropped_off_lists"]) == (
            want["new_on_lists"], want["dropped_off_lists"])
        # The manifest lists the same files, with the same rows, sizes and hashes.
        assert spark_outputs(m["outputs"]) == spark_outputs(want["outputs"])
    # The previous run a Spark run (its scores table a folder of parts), as a nightly Spark job
    # meets its own last run in --out: compared just the same.
    out = tmp_path / "spark-after-spark"
    sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY)
    m = sj.score(str(cohort), later, str(out), spark=spark, today=TODAY)
    assert m["compared_with"].startswith(f"{out} (as of {AS_OF})"), m["compared_with"]
    assert_same_outputs(binary, out)
    assert (m["new_on_lists"], m["dropped_off_lists"]) == (
        want["new_on_lists"], want["dropped_off_lists"])


def test_a_partition_sorted_by_pcn_is_cut_into_one_table_per_pcn():
    """The map engine's cutting: runs of a PCN that cross batch boundaries are put together,
    each PCN once, in order, every row kept."""
    pcns = ["A"] * 3 + ["B"] * 5 + ["C"] + ["D"] * 4
    t = pa.table({sj.PCN: pcns, "x": list(range(len(pcns)))})
    batches = t.to_batches(max_chunksize=4)
    assert len(batches) == 4
    got = list(sj._pcn_runs(iter(batches)))
    assert [g.column(sj.PCN).unique().to_pylist() for g in got] == [["A"], ["B"], ["C"], ["D"]]
    assert sum(g.num_rows for g in got) == len(pcns)
    assert pa.concat_tables(got).column("x").to_pylist() == list(range(len(pcns)))
    assert list(sj._pcn_runs(iter([]))) == []


def test_columns_share_a_slot_of_the_wide_table_only_with_their_own_type():
    slots = sj._slots({
        "p": [("patient_id", "string"), ("birth_date", "date"), ("imd_decile", "int")],
        "e": [("patient_id", "string"), ("event_date", "date"), ("code", "string")],
        "n": [("patient_id", "string"), ("imd_decile", "string")],
    })
    # One table's columns each have their own slot.
    for cols in slots.values():
        assert len(set(cols.values())) == len(cols)
    # Across tables, a slot holds one type: the k-th string column of every table shares one.
    assert slots["p"]["patient_id"] == slots["e"]["patient_id"] == slots["n"]["patient_id"]
    assert slots["p"]["birth_date"] == slots["e"]["event_date"]
    assert slots["e"]["code"] == slots["n"]["imd_decile"]
    assert slots["p"]["imd_decile"] not in slots["n"].values()


def test_tasks_scored_with_other_models_files_than_the_drivers_are_refused(spark, tmp_path, monkeypatch):
    # The executors loaded one version of a code list and the driver, finishing the run,
    # another (a comment line added: the same codes, other bytes). Made here by changing the
    # file after the tasks have run and before the driver's reduce step loads it.
    models = tmp_path / "models"
    shutil.copytree(strata_models_dir(), models)
    real_finish = sj.strata._strata.finish

    def finish_after_a_change(*args, **kwargs):
        with open(models / "efi" / "codes.tsv", "a") as f:
            f.write("# a later version\n")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(sj.strata._strata, "finish", finish_after_a_change)
    out = tmp_path / "out"
    with pytest.raises(sj.SparkJobError, match=r"the part of PCN \S+ was scored with efi/codes.tsv "
                       r"SHA-256 [0-9a-f]{16}, but the run's models folder holds SHA-256 "
                       r"[0-9a-f]{16}.*executors the driver's"):
        sj.score(str(FIXTURE), AS_OF, str(out), spark=spark, today=TODAY, models=str(models))
    assert not out.exists()


def strata_models_dir() -> Path:
    """The models folder the package ships (what a run loads without ``models``)."""
    return Path(sj.strata._strata.default_models())


def with_unread_orphan(d: Path) -> Path:
    """The dirty cohort with, besides, an event of an unknown patient whose code nothing strata
    reads (body weight, say): under ``join="buckets"`` it is left out before the shuffle, counted
    by patient, and must still be rejected, not counted as left out."""
    dirty_cohort(d)
    e = pq.read_table(d / "events.parquet")
    pairs = sorted({(s, c) for s, c in zip(e.column("code_system").to_pylist(),
                                             e.column("code").to_pylist()) if s and c})
    unread = [pc_ for pc_, u in zip(pairs, sj.strata._strata.unread_codes(pairs)) if u]
    row = e.slice(10, 1).to_pylist()[0]
    row.update(patient_id="nobody-weighed", code_system=unread[0][0], code=unread[0][1],
               encounter_id=None, event_date=_dt.date(2024, 6, 1))
    e = pa.concat_tables([e, pa.Table.from_pylist([row], schema=e.schema)])
    pq.write_table(e, d / "events.parquet", row_group_size=20000)
    return d


def test_records_read_in_buckets_equal_the_binary(spark, tmp_path, binary_out):
    """``join="buckets"`` (the national path: no patient-to-PCN table; records read with their
    patients in buckets of the pseudonym's hash, one small record per patient then moved to its
    PCN): the binary's outputs byte for byte under both engines, on a cohort with bad rows (an
    unknown patient's unread event among them), with programme lists (the palliative care
    register carried), and compared with a previous run (its listed people found in the
    buckets); and on a cohort so small that some buckets hold records of no patient."""
    cohort = with_unread_orphan(tmp_path / "dirty")
    toml = tmp_path / "programmes.toml"
    toml.write_text(PROGRAMMES_TOML)
    binary = tmp_path / "binary"
    run_binary(cohort, binary, "--programmes", str(toml))
    for engine in engines(spark):
        out = tmp_path / f"spark-{engine}"
        m = sj.score(str(cohort), AS_OF, str(out), spark=spark, today=TODAY, engine=engine,
                     programmes=PROGRAMMES, join="buckets", buckets=3)
        assert m["engine"].startswith(f"spark {spark.version} (records in buckets, then ")
        assert_same_outputs(binary, out)
        assert m["rejected_rows"] == 8 and m["patients"] == 2000
        assert any(p.name.endswith(".palliative_register_review.csv") for p in out.rglob("*.csv"))
        # What the records stage hands up reaches the manifest as the binary's run says it: the
        # spells, prescriptions, figures, programmes and warnings (each once).
        want = json.loads((binary / "manifest.json").read_text())
        for key in ("hospital_spells", "prescriptions", "patients", "eligible", "listed",
                    "listed_core20", "deceased", "ignored_after_as_of", "rejected_rows",
                    "programmes", "inputs"):
            assert m[key] == want[key], key
        assert same_paths(m["warnings"]) == same_paths(want["warnings"])
        (path, said), = m["read_paths"]
        assert path == "events.parquet" and re.fullmatch(
            rf"spark: {unread_left_out(cohort)} rows whose code nothing strata computes reads \(admitted, dated before "
            r"the as-of date, linked to no encounter\) left out before the shuffle, counted by "
            r"patient", said), said
    # A second run compared with the first: the previous run's listed people travel with their
    # patients through the buckets.
    later = later_extract(tmp_path / "later", binary_out)
    second = tmp_path / "binary-second"
    shutil.copytree(binary_out, second)
    run_binary(later, second, as_of="2025-10-01")
    want = json.loads((second / "manifest.json").read_text())
    out = tmp_path / "spark-second"
    m = sj.score(str(later), "2025-10-01", str(out), spark=spark, today=TODAY,
                 previous=str(binary_out), join="buckets", buckets=3)
    assert_same_outputs(second, out)
    assert (m["new_on_lists"], m["dropped_off_lists"]) == (
        want["new_on_lists"], want["dropped_off_lists"]) and m["new_on_lists"] > 0
    # Twenty patients in more buckets than that: an unknown patient's records and a blank
    # pseudonym's each in a bucket of no patient; no event with a code nothing strata reads (so
    # none is counted per patient).
    small = tmp_path / "small"
    small.mkdir()
    p = pq.read_table(FIXTURE / "patients.parquet").slice(0, 20)
    pq.write_table(p, small / "patients.parquet")
    ids = pa.array(sorted(p.column("patient_id").cast(pa.string()).to_pylist()))
    from pyspark.sql import functions as F

    def buckets_of(keys, n):
        """Where Spark's hash partitioning (repartition(n, key)) puts each key."""
        df = spark.createDataFrame([(k,) for k in keys], "k string")
        return [r[0] for r in df.select(F.expr(f"pmod(hash(k), {n})")).collect()]

    ghost_id = "ghost"
    n_buckets = next(n for n in range(16, 200)
                     if not set(buckets_of([ghost_id, ""], n)) & set(buckets_of(ids.to_pylist(), n)))
    for name in ("events", "encounters"):
        t = pq.read_table(FIXTURE / f"{name}.parquet")
        t = t.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_string_view(f.type)
                                       else f.type) for f in t.schema]))
        t = t.filter(pc.is_in(t.column("patient_id"), value_set=ids))
        if name == "events":
            pairs = sorted(set(zip(t.column("code_system").to_pylist(), t.column("code").to_pylist())))
            unread = {pc_ for pc_, u in zip(pairs, sj.strata._strata.unread_codes(pairs)) if u}
            t = t.filter(pa.array([pair not in unread for pair in zip(
                t.column("code_system").to_pylist(), t.column("code").to_pylist())]))
            stray = t.slice(0, 2).to_pylist()
            # Dated after the as-of date: never left out as unread, read as records.
            stray[0].update(patient_id=ghost_id, encounter_id=None, event_date=_dt.date(2025, 6, 1))
            stray[1].update(patient_id="  ", encounter_id=None, event_date=_dt.date(2025, 6, 1))
            t = pa.concat_tables([t, pa.Table.from_pylist(stray, schema=t.schema)])
            assert t.num_rows > 250
        pq.write_table(t, small / f"{name}.parquet")
    binary = tmp_path / "binary-small"
    run_binary(small, binary)
    out = tmp_path / "spark-small"
    m = sj.score(str(small), AS_OF, str(out), spark=spark, today=TODAY, join="buckets",
                 buckets=n_buckets)
    assert_same_outputs(binary, out)
    assert m["read_paths"] == []
    assert m["rejected_rows"] == 2 and m["patients"] == 20
