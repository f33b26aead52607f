"""The binary's PCN workbooks (``lists/<PCN>/<PCN>.xlsx``) read back by two independent readers,
openpyxl and LibreOffice (headless Calc, the spreadsheet program, which is stricter than openpyxl
and closer to what care coordinators open them in): every practice sheet's rows equal the PCN's
list CSV cell for cell, the Summary sheet's eFI counts equal ``summary.csv``; every sheet has its
frozen header row, and each practice sheet its bold header, its filter over the table and a
patient_id column wide enough to read. strata writes the workbooks with its own streaming writer,
so this is the check that other programs read them as meant.

LibreOffice (``soffice``, Debian's ``libreoffice-calc-nogui``) is skipped when it is not installed,
unless ``STRATA_REQUIRE_LIBREOFFICE=1`` (CI sets it and installs it)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import run_binary, strata_bin

if os.environ.get("STRATA_REQUIRE_SPARK"):
    import openpyxl  # the full suite (CI) installs it: a missing reader is a failure there
else:
    openpyxl = pytest.importorskip("openpyxl")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def as_text(v) -> str:
    """A workbook cell as the CSV writes the same value."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def same(cell, text: str) -> bool:
    if isinstance(cell, (int, float)) and not isinstance(cell, bool) and text != "":
        return float(text) == pytest.approx(float(cell), rel=1e-12, abs=0)
    return as_text(cell) == text


def check_run(out: Path) -> int:
    pcn_dirs = sorted(p for p in (out / "lists").iterdir())
    assert pcn_dirs, "no PCN folders"
    summary = read_csv(out / "summary.csv")
    checked = 0
    for d in pcn_dirs:
        pcn = d.name
        book = openpyxl.load_workbook(d / f"{pcn}.xlsx")
        assert book.sheetnames[0] == "Summary"
        listed = read_csv(d / f"{pcn}.csv")
        practices = sorted({r["practice_code"] for r in listed})
        # One sheet per practice, in practice code order, named by the code where it is a legal
        # sheet name as it stands.
        sheets = book.sheetnames[1:]
        assert len(sheets) == max(len(practices), 1)
        for got, code in zip(sheets, practices):
            if len(code) <= 31 and not any(ch in code for ch in "[]:*?/\\'"):
                assert got == code, (got, code)

        # The Summary sheet: this PCN's rows of summary.csv (everyone, then Core20).
        ws = book["Summary"]
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0][:3] == ("dimension", "group", "eligible")
        want = [r for r in summary if r["pcn_code"] == pcn]
        assert [r[0] for r in rows[1:1 + len(want)]] == [r["group"] for r in want]
        for got, w in zip(rows[1:], want):
            assert same(got[2], w["total"]), (pcn, got, w)
            for k, cat in enumerate(("fit", "mild", "moderate", "severe")):
                assert same(got[5 + k], w[cat]), (pcn, cat, got, w)
        assert ws.freeze_panes == "A2"

        # The practice sheets: the list, split by practice, in rank order, every cell as in the CSV.
        seen = []
        for name in book.sheetnames[1:]:
            ws = book[name]
            rows = list(ws.iter_rows(values_only=True))
            # The synthetic-model caveat, when the list's risk figures come from synthetic cards,
            # is a line above the header; the frozen pane and the filter start below it.
            synthetic = any(str(r.get("risk_models_trained_on", "")).startswith("SYNTHETIC") for r in listed)
            top = 1 if synthetic and len(rows) > 1 else 0
            if top:
                assert str(rows[0][0]).startswith("Risk models trained on synthetic data"), rows[0]
            assert ws.freeze_panes == f"A{top + 2}", name
            rows = rows[top:]
            header = list(rows[0])
            assert header[:3] == ["rank", "change", "patient_id"], header
            assert sorted(header) == sorted(listed[0].keys()) if listed else True
            assert ws.auto_filter.ref == (
                f"A{top + 1}:{openpyxl.utils.get_column_letter(len(header))}{len(rows) + top}"
            )
            assert all(c.font.b for c in next(ws.iter_rows(min_row=top + 1, max_row=top + 1))), "bold header"
            assert ws.column_dimensions["C"].width >= len("patient_id")
            for r in rows[1:]:
                seen.append(dict(zip(header, r)))
        assert len(seen) == len(listed), pcn
        by_id = {r["patient_id"]: r for r in seen}
        for row in listed:
            got = by_id[row["patient_id"]]
            for col, text in row.items():
                assert same(got[col], text), (pcn, row["patient_id"], col, got[col], text)
            checked += 1
    return checked


def soffice() -> str | None:
    """LibreOffice's command, or None (the test then skips, unless it is required)."""
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None and os.environ.get("STRATA_REQUIRE_LIBREOFFICE") == "1":
        pytest.fail("STRATA_REQUIRE_LIBREOFFICE=1 but soffice is not installed")
    return exe


# LibreOffice's CSV export: comma, double quotes, UTF-8, from row 1, quoted fields not forced to
# text, numbers detected, cell contents not as shown (full precision), no formulas, spaces kept,
# every sheet (one file each, `<book>-<sheet>.csv`).
CSV_FILTER = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"


def lo_same(text: str, want: str) -> bool:
    """A cell as LibreOffice exported it against the list CSV's text of the same value."""
    if text == want:
        return True
    if want in ("true", "false"):
        return text == want.upper()
    try:
        return want != "" and text != "" and float(text) == float(want)
    except ValueError:
        return False


def check_libreoffice(out: Path) -> int:
    """Open every workbook of a run in LibreOffice and compare its cells with the list CSVs and
    summary.csv; the number of list rows compared (0 when LibreOffice is not installed)."""
    exe = soffice()
    if exe is None:
        return 0
    books = sorted((out / "lists").glob("*/*.xlsx"))
    assert books
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        r = subprocess.run(
            [exe, f"-env:UserInstallation=file://{tmp / 'profile'}", "--headless",
             "--convert-to", CSV_FILTER, "--outdir", str(tmp / "csv"), *map(str, books)],
            capture_output=True, text=True, timeout=600,
        )
        assert r.returncode == 0, r.stderr
        summary = read_csv(out / "summary.csv")
        checked = 0
        for book in books:
            pcn = book.stem
            sheets = {p.name[len(pcn) + 1:-4]: p for p in (tmp / "csv").glob(f"{pcn}-*.csv")}
            assert "Summary" in sheets, (pcn, sorted(sheets), r.stdout, r.stderr)
            with open(sheets.pop("Summary"), newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            assert rows[0][:3] == ["dimension", "group", "eligible"], rows[0]
            want = [x for x in summary if x["pcn_code"] == pcn]
            for got, w in zip(rows[1:], want):
                assert got[0] == w["group"], (pcn, got, w)
                assert lo_same(got[2], w["total"]), (pcn, got, w)
                for k, cat in enumerate(("fit", "mild", "moderate", "severe")):
                    assert lo_same(got[5 + k], w[cat]), (pcn, cat, got, w)
            listed = read_csv(book.with_suffix(".csv"))
            seen = {}
            for sheet in sheets.values():
                with open(sheet, newline="", encoding="utf-8") as f:
                    rows = list(csv.reader(f))
                head = next(k for k, x in enumerate(rows) if x[:3] == ["rank", "change", "patient_id"])
                header = rows[head]
                for x in rows[head + 1:]:
                    if not any(x):
                        break
                    seen[x[header.index("patient_id")]] = dict(zip(header, x))
            assert set(seen) == {x["patient_id"] for x in listed}, pcn
            for row in listed:
                got = seen[row["patient_id"]]
                for col, text in row.items():
                    assert lo_same(got[col], text), (pcn, row["patient_id"], col, got[col], text)
                checked += 1
        return checked


def test_workbooks_of_the_fixture_read_back_as_the_lists(binary_out):
    assert check_run(binary_out) > 100


def test_libreoffice_opens_every_workbook_as_the_lists(binary_out, tmp_path):
    """The fixture's run, a second run compared with it (the `change` column filled), one ranked
    by a risk model with risk bands and a top-N cut, and one under the publication rule: every
    workbook opens in LibreOffice with the list's cells."""
    if soffice() is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    from conftest import FIXTURE

    assert check_libreoffice(binary_out) > 100
    second = tmp_path / "second"
    run_binary(FIXTURE, second, "--previous", str(binary_out), as_of="2025-10-01")
    assert check_libreoffice(second) > 100
    ranked = tmp_path / "ranked"
    run_binary(FIXTURE, ranked, "--rank-by", "falls_admission", "--list-risk-band", "moderate",
               "--top", "25", "--risk-bands", "pcn")
    assert check_libreoffice(ranked) > 50
    published = tmp_path / "published"
    run_binary(FIXTURE, published, "--publication")
    assert check_libreoffice(published) > 100


def test_workbooks_with_profiles_read_back_as_the_lists(tmp_path):
    cohort = tmp_path / "synth"
    r = subprocess.run(
        [str(strata_bin()), "synth", "--patients", "4000", "--pcns", "2", "--seed", "5",
         "--out", str(cohort)],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    run_binary(cohort, out)
    assert check_run(out) > 100
    check_libreoffice(out)
    # PCNs of 2,000 people have 100+ eligible: their Summary sheets show the make-up by practice.
    pcn = sorted((out / "lists").iterdir())[0].name
    ws = openpyxl.load_workbook(out / "lists" / pcn / f"{pcn}.xlsx")["Summary"]
    dims = {r[0] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert {"practice", "sex", "imd_quintile"} <= dims, dims


def test_every_part_is_well_formed_xml(binary_out):
    """Each part of each workbook parses as XML (a stray '&' or control character would not)."""
    import xml.etree.ElementTree as ET
    import zipfile

    for book in sorted((binary_out / "lists").glob("*/*.xlsx")):
        with zipfile.ZipFile(book) as z:
            assert z.testzip() is None, book  # every entry's CRC-32 checks
            names = z.namelist()
            assert names[0] == "[Content_Types].xml"
            for n in names:
                ET.fromstring(z.read(n))


def test_awkward_practice_codes_make_legal_sheets(tmp_path):
    """Practice codes with XML metacharacters, quotes, a slash and more than 31 characters become
    legal, distinct sheet names, and the rows under them are still the list's."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import FIXTURE

    cohort = tmp_path / "cohort"
    shutil.copytree(FIXTURE, cohort)
    t = pq.read_table(cohort / "patients.parquet")
    awkward = {
        "P81000": "P&1 <a> 'quoted'",
        "P81007": "P/2:[x]*?",
        "P81014": "Practice " + "y" * 40,
        "P81021": "Practice " + "y" * 40 + " (2)",
    }
    codes = [awkward.get(c, c) for c in t.column("practice_code").to_pylist()]
    t = t.set_column(t.schema.get_field_index("practice_code"), "practice_code",
                     pa.array(codes, pa.string()))
    pq.write_table(t, cohort / "patients.parquet")
    out = tmp_path / "out"
    run_binary(cohort, out)
    assert check_run(out) > 100
    check_libreoffice(out)
    pcn = "U10000"
    book = openpyxl.load_workbook(out / "lists" / pcn / f"{pcn}.xlsx")
    names = book.sheetnames[1:]
    assert len(set(n.lower() for n in names)) == len(names), names
    for n in names:
        assert len(n) <= 31 and not any(ch in n for ch in "[]:*?/\\"), n
        assert not n.startswith("'") and not n.endswith("'"), n
    # Each sheet's rows are one practice's, and every awkward code is on some sheet intact.
    seen = set()
    for n in names:
        rows = list(book[n].iter_rows(values_only=True))
        # The table starts at its header (under the synthetic models' line, when there is one)
        # and ends at the blank row before any notes.
        rows = rows[next(k for k, r in enumerate(rows) if "practice_code" in r):]
        rows = rows[: next((k for k, r in enumerate(rows) if all(v is None for v in r)), len(rows))]
        col = rows[0].index("practice_code")
        practices = {r[col] for r in rows[1:]}
        assert len(practices) <= 1, (n, practices)
        seen |= practices
    used = {c for c, q in zip(codes, t.column("pcn_code").to_pylist()) if q == pcn}
    assert set(awkward.values()) <= used, "the awkward practices are U10000's"
    assert set(awkward.values()) <= seen
    # The PCN's page shows the codes as text, escaped.
    page = (out / "lists" / pcn / f"{pcn}.html").read_text(encoding="utf-8")
    assert "P&amp;1 &lt;a&gt;" in page and "<a>" not in page
