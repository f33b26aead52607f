"""The installed ``strata`` package against the binary: the same scores on the fixture cohort,
whatever Arrow types the tables arrive in (Spark's, pyarrow's, polars'), and the same checks."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import strata
from conftest import AS_OF, FIXTURE, TODAY, run_binary

FILES = ("patients", "events", "encounters")
# The fixture's strata synth mark: tables converted to other types or frames lose the schema
# metadata that carries it, so those tests pass it (as README says a caller does).
MARK = {"cohort_synthetic": strata.synthetic_mark(FIXTURE / "patients.parquet")}


def cohort() -> list[pa.Table]:
    return [pq.read_table(FIXTURE / f"{f}.parquet") for f in FILES]


def expected(binary_out) -> list[dict]:
    return pq.read_table(binary_out / "scores.parquet").to_pylist()


def with_types(t: pa.Table, text: pa.DataType, date: pa.DataType) -> pa.Table:
    """``t`` with every string column cast to ``text`` and every date column to ``date``."""
    fields = []
    for f in t.schema:
        ty = f.type
        if pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_string_view(ty):
            ty = text
        elif pa.types.is_date32(ty):
            ty = date
        fields.append(pa.field(f.name, ty))
    return t.cast(pa.schema(fields))


def test_scores_equal_the_binarys_scores_parquet(binary_out):
    got = strata.score(*cohort(), as_of=AS_OF, today=TODAY)
    want = pq.read_table(binary_out / "scores.parquet")
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows == 2000
    assert got.to_pylist() == want.to_pylist()
    # Same logical types (strings travel as large_string, the binary's file holds string_view).
    for a, b in zip(got.schema, want.schema):
        if pa.types.is_large_string(a.type):
            assert pa.types.is_string_view(b.type) or pa.types.is_large_string(b.type), a.name
        else:
            assert a.type == b.type, a.name


@pytest.mark.parametrize("text", [pa.string(), pa.large_string(), pa.string_view()],
                         ids=["string", "large_string", "string_view"])
@pytest.mark.parametrize("date", [pa.date32(), pa.timestamp("us", tz="UTC"),
                                  pa.timestamp("us", tz="Etc/UTC"), pa.timestamp("us")],
                         ids=["date32", "timestamp_utc", "timestamp_etc_utc", "timestamp_naive"])
def test_spark_and_pyarrow_types_give_the_same_scores(binary_out, text, date):
    tables = [with_types(t, text, date) for t in cohort()]
    got = strata.score(*tables, as_of=AS_OF, today=TODAY, **MARK)
    assert got.to_pylist() == expected(binary_out)


def test_int32_pseudonyms_are_read_as_their_decimal_text(binary_out):
    """Spark hands integer ids as int32: they are pseudonyms written as decimal text."""
    p, e, n = cohort()
    ids = p.column("patient_id").cast(pa.string()).to_pylist()
    number = {v: i + 1 for i, v in enumerate(ids)}

    def as_int(t: pa.Table) -> pa.Table:
        col = t.column("patient_id").cast(pa.string()).to_pylist()
        i = t.schema.get_field_index("patient_id")
        return t.set_column(i, "patient_id", pa.array([number[v] for v in col], pa.int32()))

    got = strata.score(as_int(p), as_int(e), as_int(n), as_of=AS_OF, today=TODAY).to_pylist()
    back = {str(v): k for k, v in number.items()}
    for row in got:
        row["patient_id"] = back[row["patient_id"]]
    assert sorted(got, key=lambda r: r["patient_id"]) == expected(binary_out)


def test_record_batch_readers_and_chunked_tables_are_accepted(binary_out):
    p, e, n = cohort()
    e = pa.Table.from_batches(e.to_batches(max_chunksize=1000))
    reader = pa.RecordBatchReader.from_batches(n.schema, n.to_batches(max_chunksize=777))
    got = strata.score(p, e, reader, as_of=AS_OF, today=TODAY)
    assert got.to_pylist() == expected(binary_out)


def test_pandas_frames_are_accepted(binary_out):
    pd = pytest.importorskip("pandas")
    p, e, n = cohort()
    frame = p.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    got = strata.score(frame, e, n, as_of=AS_OF, today=TODAY, **MARK)
    assert got.to_pylist() == expected(binary_out)


def test_polars_frames_are_accepted(binary_out):
    pl = pytest.importorskip("polars")
    p, e, n = cohort()
    got = strata.score(*(pl.from_arrow(t) for t in (p, e, n)), as_of=AS_OF, today=TODAY, **MARK)
    assert got.to_pylist() == expected(binary_out)


def test_lists_equal_the_binarys_list_files(binary_out):
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY)
    lists = s.lists()
    assert [pcn for pcn, _ in lists] == sorted(p.stem for p in (binary_out / "lists").glob("*/*.csv"))
    for pcn, table in lists:
        want = pq.read_table(binary_out / "lists" / pcn / f"{pcn}.parquet")
        assert pa.table(table).to_pylist() == want.to_pylist(), pcn
    for pcn, csv, parquet in s.list_files():
        assert csv == (binary_out / "lists" / pcn / f"{pcn}.csv").read_bytes(), pcn
        assert parquet == (binary_out / "lists" / pcn / f"{pcn}.parquet").read_bytes(), pcn


def test_aggregate_tables_protected_from_counts_equal_the_binarys(binary_out):
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY)
    summary, equity = strata.protect_tables(s.counts())
    assert summary == (binary_out / "summary.csv").read_bytes()
    assert equity == (binary_out / "equity.csv").read_bytes()
    # All three tables of a run, protected together as the binary does.
    summary, equity, indicators, profile = strata.protect_run(
        s.counts(), s.indicator_counts(), profile=s.profile_counts()
    )
    assert summary == (binary_out / "summary.csv").read_bytes()
    assert equity == (binary_out / "equity.csv").read_bytes()
    assert indicators == (binary_out / "indicators.csv").read_bytes()
    assert profile == (binary_out / "pcn_profile.csv").read_bytes()


def test_a_minimum_protection_interval_protects_as_the_binary_does(tmp_path):
    out = tmp_path / "out"
    run_binary(FIXTURE, out, "--min-interval", "3")
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY)
    summary, equity, indicators, profile = strata.protect_run(
        s.counts(), s.indicator_counts(), profile=s.profile_counts(), min_interval=3
    )
    assert summary == (out / "summary.csv").read_bytes()
    assert equity == (out / "equity.csv").read_bytes()
    assert indicators == (out / "indicators.csv").read_bytes()
    assert profile == (out / "pcn_profile.csv").read_bytes()
    plain = strata.protect_run(s.counts(), s.indicator_counts(), profile=s.profile_counts())
    hidden = lambda tables: sum(t.count(b"[c]") for t in tables)  # noqa: E731
    assert hidden((summary, equity, indicators)) > hidden(plain[:3])


def test_the_nhse_2018_rule_protects_as_the_binary_does(tmp_path):
    out = tmp_path / "out"
    run_binary(FIXTURE, out, "--disclosure-rule", "nhse-2018")
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY)
    tables = strata.protect_run(
        s.counts(), s.indicator_counts(), profile=s.profile_counts(), rule="nhse-2018"
    )
    for name, got in zip(["summary", "equity", "indicators", "pcn_profile"], tables):
        assert got == (out / f"{name}.csv").read_bytes(), name
    with pytest.raises(Exception, match="disclosure rule 'hes'"):
        strata.protect_run(s.counts(), s.indicator_counts(), rule="hes")


def test_the_binary_and_the_package_resolve_settings_alike(tmp_path):
    out = tmp_path / "out"
    run_binary(FIXTURE, out, "--min-age", "70", "--min-category", "moderate", "--top", "10",
               "--rank-by", "emergency_admission", "--list-risk-band", "moderate",
               "--risk-bands", "pcn", "--disclosure-rule", "nhse-2018", "--min-interval", "2",
               "--max-rejected", "0.02")
    want = json.loads((out / "manifest.json").read_text())["config"]
    got = strata.settings(
        as_of=AS_OF, min_age=70, min_category="moderate", top=10, rank_by="emergency_admission",
        list_risk_band="moderate", risk_bands="pcn",
        disclosure={"rule": "nhse-2018", "min_interval": 2},
        input={"today": TODAY, "max_rejected": 0.02},
    )
    for key in ["as_of", "rules", "suppression", "default_risk_models", "programmes"]:
        assert got[key] == want[key], key
    assert got["load"] == want["load"]
    # run() takes the same path: a setting that cannot be used is refused with the same words.
    with pytest.raises(ValueError, match=r"risk_bands \(--risk-bands\): 'x' is not card or pcn"):
        strata.settings(risk_bands="x")
    with pytest.raises(ValueError, match=r"risk_bands \(--risk-bands\): 'x' is not card or pcn"):
        strata.run(*cohort(), as_of=AS_OF, risk_bands="x")


def test_a_missing_column_is_refused_with_the_binarys_message():
    p, e, n = cohort()
    with pytest.raises(strata.InvalidCohortError, match="patients.parquet, column sex: required column is missing"):
        strata.score(p.drop_columns(["sex"]), e, n, as_of=AS_OF, today=TODAY)


def test_a_column_of_the_wrong_type_is_refused():
    p, e, n = cohort()
    p = p.set_column(p.schema.get_field_index("birth_date"), "birth_date",
                     p.column("birth_date").cast(pa.string()))
    with pytest.raises(strata.InvalidCohortError, match="birth_date: has type"):
        strata.score(p, e, n, as_of=AS_OF, today=TODAY)


def test_bad_rows_are_rejected_and_counted_not_dropped():
    p, e, n = cohort()
    rows = e.slice(0, 3).to_pylist()
    rows[0]["patient_id"] = "not-a-patient"
    rows[1]["code_system"] = "klingon"
    bad = pa.Table.from_pylist(rows, schema=e.schema)
    s = strata.run(p, pa.concat_tables([e, bad]), n, as_of=AS_OF, today=TODAY)
    rejects = s.rejects()
    assert len(rejects) == 2
    assert {r[0] for r in rejects} == {"events.parquet"}
    assert [r[1] for r in rejects] == [e.num_rows + 1, e.num_rows + 2]
    assert dict(s.figures())["rejected_rows"] == 2


def test_too_many_rejected_rows_refuse_the_cohort():
    p, e, n = cohort()
    rows = e.slice(0, 2000).to_pylist()
    for r in rows:
        r["code_system"] = "klingon"
    bad = pa.Table.from_pylist(rows, schema=e.schema)
    with pytest.raises(strata.InvalidCohortError, match="rejected"):
        strata.score(p, pa.concat_tables([e, bad]), n, as_of=AS_OF, today=TODAY)


def test_arguments_are_checked():
    p, e, n = cohort()
    with pytest.raises(TypeError, match="patients: expected an Arrow table"):
        strata.score([1, 2], e, n, as_of=AS_OF)
    with pytest.raises(ValueError, match=r"as_of \(--as-of\): '2025-13-01' is not a date"):
        strata.score(p, e, n, as_of="2025-13-01")
    with pytest.raises(ValueError, match="min_category"):
        strata.score(p, e, n, as_of=AS_OF, min_category="frail")


def test_the_result_exports_the_arrow_stream_interface_again_and_again():
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY).scores()
    assert len(s) == 2000
    assert pa.table(s).equals(pa.table(s))
    assert "efi_category" in s.column_names


def test_lists_ranked_by_a_risk_model_equal_the_binarys(tmp_path):
    out = tmp_path / "out"
    run_binary(FIXTURE, out, "--rank-by", "emergency_admission")
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY, rank_by="emergency_admission")
    files = s.list_files()
    assert len(files) == len(list((out / "lists").glob("*/*.csv")))
    for pcn, csv, parquet in files:
        assert csv == (out / "lists" / pcn / f"{pcn}.csv").read_bytes(), pcn
        assert parquet == (out / "lists" / pcn / f"{pcn}.parquet").read_bytes(), pcn
    assert pa.table(s.scores()).to_pylist() == pq.read_table(out / "scores.parquet").to_pylist()
    assert [o for o, _, _ in s.risk_models()] == ["emergency_admission", "falls_admission", "death"]


def test_no_risk_models_gives_the_binarys_frailty_only_outputs(tmp_path):
    out = tmp_path / "out"
    run_binary(FIXTURE, out, "--no-risk-models")
    got = strata.score(*cohort(), as_of=AS_OF, today=TODAY, risk_models=[])
    want = pq.read_table(out / "scores.parquet")
    assert got.column_names == want.column_names
    assert not any(c.endswith("_risk") for c in got.column_names)
    assert got.to_pylist() == want.to_pylist()
    with pytest.raises(strata.ModelsError, match="no emergency_admission model"):
        strata.score(*cohort(), as_of=AS_OF, today=TODAY, risk_models=[], rank_by="emergency_admission")


def test_default_synthetic_cards_follow_the_cohorts_mark():
    # The fixture is marked (strata synth's key-value metadata, which pyarrow keeps here).
    assert strata.synthetic_mark(FIXTURE / "patients.parquet")
    marked = strata.run(*cohort(), as_of=AS_OF, today=TODAY)
    assert len(marked.risk_models()) == 3
    # Without the mark, as the binary on an unmarked cohort: not applied, and said so.
    p, e, n = cohort()
    bare = p.replace_schema_metadata(None)
    s = strata.run(bare, e, n, as_of=AS_OF, today=TODAY)
    assert s.risk_models() == []
    assert any("were not applied" in w for w in s.warnings())
    with pytest.raises(strata.ModelsError, match="not synthetic"):
        strata.run(bare, e, n, as_of=AS_OF, today=TODAY, rank_by="death")
    # The mark given, or the cards named: applied.
    given = strata.run(bare, e, n, as_of=AS_OF, today=TODAY, cohort_synthetic="strata synth")
    assert len(given.risk_models()) == 3
    named = strata.run(bare, e, n, as_of=AS_OF, today=TODAY, risk_models=[str(Path(strata.default_models()) / "risk")])
    assert len(named.risk_models()) == 3
    assert any("trained on synthetic data" in w for w in named.warnings())


@pytest.mark.parametrize(
    "flags, options",
    [
        (["--rank-by", "death", "--min-risk", "0.05", "--top-percent", "10"],
         {"rank_by": "death", "min_risk": 0.05, "top_percent": 10.0}),
        (["--top", "7"], {"top": 7}),
    ],
    ids=["min_risk_top_percent", "top"],
)
def test_list_size_options_give_the_binarys_lists(tmp_path, flags, options):
    out = tmp_path / "out"
    run_binary(FIXTURE, out, *flags)
    s = strata.run(*cohort(), as_of=AS_OF, today=TODAY, **options)
    files = s.list_files()
    assert len(files) == len(list((out / "lists").glob("*/*.csv")))
    for pcn, csv, parquet in files:
        assert csv == (out / "lists" / pcn / f"{pcn}.csv").read_bytes(), pcn
        assert parquet == (out / "lists" / pcn / f"{pcn}.parquet").read_bytes(), pcn


def test_list_size_options_are_checked():
    p, e, n = cohort()
    with pytest.raises(ValueError, match=r"min_risk \(--min-risk\) needs rank_by \(--rank-by\) a model"):
        strata.run(p, e, n, as_of=AS_OF, min_risk=0.1)
    with pytest.raises(ValueError, match="not both"):
        strata.run(p, e, n, as_of=AS_OF, top=5, top_percent=5.0)
    with pytest.raises(ValueError, match="top_percent"):
        strata.run(p, e, n, as_of=AS_OF, top_percent=0.0)


def test_previous_compares_as_the_binarys_previous(tmp_path, binary_out):
    """``previous=`` a run's folder: the lists' ``change`` column, each PCN's dropped list and
    the manifest's figures are the binary's ``--previous``; a folder without a run compares
    with nothing, an unreadable one warns."""
    later = "2025-10-01"
    out = tmp_path / "out"
    run_binary(FIXTURE, out, "--previous", str(binary_out), as_of=later)
    s = strata.run(*cohort(), as_of=later, today=TODAY, previous=str(binary_out))
    files = s.list_files()
    assert len(files) == len(list((out / "lists").glob("*/*.parquet")))
    for pcn, csv, parquet in files:
        assert csv == (out / "lists" / pcn / f"{pcn}.csv").read_bytes(), pcn
        assert parquet == (out / "lists" / pcn / f"{pcn}.parquet").read_bytes(), pcn
    dropped = s.dropped()
    assert [pcn for pcn, _ in dropped] == [pcn for pcn, _, _ in files]
    for pcn, table in dropped:
        want = (out / "lists" / pcn / f"{pcn}.dropped.csv").read_bytes()
        assert strata.encode_table(table, "csv") == want, pcn
    m = json.loads((out / "manifest.json").read_text())
    assert s.comparison() == (m["compared_with"], m["new_on_lists"], m["dropped_off_lists"])
    assert m["new_on_lists"] > 0

    none = strata.run(*cohort(), as_of=later, today=TODAY, previous=str(tmp_path))
    assert none.comparison() == (f"no previous run in {tmp_path} to compare with", 0, 0)
    assert none.dropped() == []
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "scores.parquet").write_text("not parquet")
    warned = strata.run(*cohort(), as_of=later, today=TODAY, previous=str(bad))
    assert any("not compared with the previous run" in w for w in warned.warnings())
    with pytest.raises(strata.PreviousRunError):
        strata.read_previous(str(bad))


def test_the_scores_file_is_encoded_in_the_binarys_row_groups(tmp_path):
    """``encode_table(t, "scores")`` writes the binary's ``scores.parquet`` layout (row groups of
    262,144 rows), so the Spark driver's scores file is the binary's bytes at any size, not only
    below one row group; plain ``parquet`` writes one table as it comes."""
    n = 600_000
    t = pa.table({"patient_id": pa.array([f"p{i:07d}" for i in range(n)]),
                  "efi": pa.array(range(n), pa.int32())})
    path = tmp_path / "scores.parquet"
    path.write_bytes(strata.encode_table(t, "scores"))
    f = pq.ParquetFile(path)
    groups = [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
    assert groups == [262_144, 262_144, n - 2 * 262_144]
    assert f.read().to_pydict() == t.to_pydict()
    with pytest.raises(ValueError, match="not csv, parquet or scores"):
        strata.encode_table(t, "xlsx")
