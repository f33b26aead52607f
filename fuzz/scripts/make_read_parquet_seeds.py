#!/usr/bin/env python3
"""Write the seed corpus of the read_parquet fuzz target into fuzz/corpus/read_parquet/.

Each seed is one selector byte followed by the bytes of one file: selector 0x00 means the rest
replaces events.parquet, 0x01 means it replaces patients.parquet (see
fuzz_targets/read_parquet.rs). Needs pyarrow for the small Parquet seeds; without it only the
fixture-derived seeds are written.
"""
import io
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)
FIX = os.path.join(FUZZ, "..", "fixtures", "cohort-2000")
OUT = os.path.join(FUZZ, "corpus", "read_parquet")
EV, PA = b"\x00", b"\x01"


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


def put(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


os.makedirs(OUT, exist_ok=True)
events, patients, encounters = (fixture(n + ".parquet") for n in ("events", "patients", "encounters"))

# The three fixture files, as events (encounters and patients have the wrong schema there) and
# patients as patients.
put("fixture-events-as-events", EV + events)
put("fixture-encounters-as-events", EV + encounters)
put("fixture-patients-as-events", EV + patients)
put("fixture-patients-as-patients", PA + patients)
# Truncated copies: the footer cut off, and only the footer's tail kept.
put("truncated-patients-as-patients", PA + patients[: len(patients) // 2])
put("truncated-events-as-events", EV + events[:4096] + events[-2048:])
# Empty files.
put("empty-events", b"")
put("empty-patients", PA)
# Small CSV files, right columns but not Parquet.
put(
    "csv-events",
    EV
    + b"patient_id,event_date,code_system,code,value,encounter_id\n"
    + b"0028a1c928d22dd9,2021-06-04,snomed,390906007,,\n"
    + b"0028a1c928d22dd9,2022-10-07,read2,16D..,,\n",
)
put(
    "csv-patients",
    PA
    + b"patient_id,birth_date,sex,practice_code,pcn_code,imd_decile,ethnicity_group,care_home,death_date\n"
    + b"0028a1c928d22dd9,1990-06-01,F,P81098,U10074,1,White,false,\n",
)
put("magic-only-events", EV + b"PAR1PAR1")

try:
    import datetime
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:
    sys.exit("pyarrow missing: small Parquet seeds not written")


def parquet(table, **kw):
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


ev = pq.read_table(os.path.join(FIX, "events.parquet")).slice(0, 24)
pt = pq.read_table(os.path.join(FIX, "patients.parquet")).slice(0, 24)
# Small files in encodings other than the fixtures' (ZSTD, dictionary): plain and uncompressed,
# so that mutations hit values directly; snappy; several row groups; plain string columns.
put("small-events-plain", EV + parquet(ev, compression="none", use_dictionary=False))
put("small-events-snappy-dict", EV + parquet(ev, compression="snappy", row_group_size=8))
put("small-events-v2-pages", EV + parquet(ev, compression="none", data_page_version="2.0", use_dictionary=False))
put("small-patients-plain", PA + parquet(pt, compression="none", use_dictionary=False))
put("small-patients-gzip", PA + parquet(pt, compression="gzip", row_group_size=5))

# Hostile values in a well-formed file: odd codes, systems, dates and nulls.
hostile_events = pa.table(
    {
        "patient_id": ["0028a1c928d22dd9", None, "", "no-such-patient", "0028a1c928d22dd9", "003fe94a1d97d835"],
        "event_date": [
            datetime.date(2021, 6, 4),
            datetime.date(1850, 1, 1),
            None,
            datetime.date(2099, 12, 31),
            datetime.date(1, 1, 1),
            datetime.date(9999, 12, 31),
        ],
        "code_system": ["snomed", "READ2", "icd-10", "unknown", None, " ctv3 "],
        "code": ["390906007", "16D..", "i10.x", "", "8HTl.", "\u00e9\u00e9\u00e9"],
        "value": [None, 1.5, float("nan"), float("inf"), -1e308, 0.0],
        "encounter_id": [None, "e5a500ca6036e57e", None, "x", None, None],
    }
)
put("hostile-events-plain", EV + parquet(hostile_events, compression="none", use_dictionary=False))
hostile_patients = pa.table(
    {
        "patient_id": ["0028a1c928d22dd9", "0028a1c928d22dd9", None, "9434765919"],
        "birth_date": [datetime.date(1990, 6, 1), datetime.date(2030, 1, 1), None, datetime.date(1899, 12, 31)],
        "sex": ["F", "X", None, "m"],
        "practice_code": ["P81098", "", None, "P81000"],
        "pcn_code": ["U10074", "U10074", None, ""],
        "imd_decile": pa.array([1, 11, None, -3], pa.int32()),
        "ethnicity_group": ["White", None, "", "Not stated"],
        "care_home": [False, True, None, False],
        "death_date": [None, datetime.date(1980, 1, 1), None, datetime.date(2026, 1, 1)],
    }
)
put("hostile-patients-plain", PA + parquet(hostile_patients, compression="none", use_dictionary=False))
# Wrong types for the right column names.
wrong = pa.table({c: pa.array([1, 2], pa.int64()) for c in ev.column_names})
put("wrong-types-events", EV + parquet(wrong, compression="none"))
print("seeds written to", OUT)
