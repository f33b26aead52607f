"""strata in Python: the electronic Frailty Index, the Hospital Frailty Risk Score and the
Charlson index on Arrow data, with the same checks and the same rows as the ``strata`` binary.

Tables go in and out through the Arrow PyCapsule interface (``__arrow_c_stream__``): pass pyarrow
tables, polars data frames, DuckDB results or pandas data frames (converted with pyarrow), with
the columns of strata's cohort contract (README.md, "The cohort contract").

>>> import pyarrow.parquet as pq, strata
>>> scores = strata.score(pq.read_table("cohort/patients.parquet"),
...                       pq.read_table("cohort/events.parquet"),
...                       pq.read_table("cohort/encounters.parquet"), as_of="2025-03-31")

``strata.run`` gives everything one scoring computes (scores, each PCN's list, the aggregate
counts, rejected rows); ``python -m strata.spark`` runs the nightly job under Apache Spark.
"""

from __future__ import annotations

import json

from typing import Any, List, Optional, Tuple

import pyarrow as pa

from ._strata import (
    ArrowStream,
    InvalidCohortError,
    ModelsError,
    PreviousRun,
    PreviousRunError,
    Scoring,
    __version__,
    default_models,
    encode_table,
    pcn_files,
    protect_run,
    protect_tables,
    read_previous,
)
from ._strata import resolve_settings as _resolve_settings
from ._strata import run as _run

__all__ = [
    "score",
    "run",
    "Scoring",
    "ArrowStream",
    "InvalidCohortError",
    "ModelsError",
    "PreviousRun",
    "PreviousRunError",
    "read_previous",
    "default_models",
    "pcn_files",
    "protect_tables",
    "protect_run",
    "settings",
    "encode_table",
    "synthetic_mark",
    "__version__",
]

#: The Parquet key-value metadata key ``strata synth`` marks its files with.
SYNTHETIC_KEY = b"strata.synthetic"


def synthetic_mark(path: Any) -> Optional[str]:
    """``strata synth``'s mark on a cohort's Parquet file (a file, or a folder of part files:
    the first one), or ``None`` when the file has none or cannot be opened here. Arrow tables
    read with ``pq.read_table`` do not carry it (polars writes its own schema), so pass it to
    :func:`run` as ``cohort_synthetic``: the default risk cards, trained on synthetic data, are
    applied only to a synthetic cohort unless named."""
    import os  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    import pyarrow.fs as pafs  # noqa: PLC0415

    try:
        path = os.fspath(path)
        # Local paths and URIs (s3://, abfss://, hdfs://, ...) alike, through pyarrow's file systems.
        fs, inner = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        if fs.get_file_info(inner).type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(inner))
            parts = sorted(i.path for i in infos if i.path.endswith(".parquet"))
            if not parts:
                return None
            inner = parts[0]
        meta = pq.read_metadata(inner, filesystem=fs).metadata or {}
    except Exception:  # noqa: BLE001  (unreadable here: unmarked, and the defaults withheld)
        return None
    mark = meta.get(SYNTHETIC_KEY)
    return None if mark is None else mark.decode("utf-8", "replace")


def _arrow(table: Any, what: str) -> Any:
    """An object exporting ``__arrow_c_stream__``: the table itself, or a pandas data frame
    converted by pyarrow (pandas before 2.2 does not export the interface)."""
    if table is None or hasattr(table, "__arrow_c_stream__"):
        return table
    try:
        import pandas as pd  # noqa: PLC0415  (optional)
    except ImportError:  # pragma: no cover - pandas is optional
        pd = None
    if pd is not None and isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(
        f"{what}: expected an Arrow table (pyarrow, polars, pandas, ... exporting "
        f"__arrow_c_stream__), got {type(table).__name__}"
    )


def run(
    patients: Any,
    events: Any,
    encounters: Any,
    as_of: str,
    *,
    medications: Any = None,
    today: Optional[str] = None,
    models: Optional[str] = None,
    min_age: int = 65,
    min_category: str = "mild",
    max_rejected: float = 0.01,
    allow_identifiers: bool = False,
    risk_models: Optional[List[str]] = None,
    rank_by: str = "frailty",
    list_risk_band: Optional[str] = None,
    min_risk: Optional[float] = None,
    top: Optional[int] = None,
    top_percent: Optional[float] = None,
    previous: Any = None,
    cohort_synthetic: Optional[str] = None,
    risk_bands: Optional[str] = None,
    programmes: Optional[List[dict]] = None,
    stage: str = "all",
    carried: Any = None,
) -> Any:
    """Check, load and score a cohort handed as Arrow tables, as ``strata score`` does.

    ``as_of`` is the index date (``YYYY-MM-DD``): records after it are ignored. ``today`` is the
    date after which any date is impossible (default: the machine's UTC date). ``models`` is a
    models folder (default: ``$STRATA_MODELS``, else the copy built into the package).
    ``risk_models`` are the risk model cards to apply (files, or folders of cards; default: the
    models folder's ``risk/``, as the binary; ``[]`` for none); ``rank_by`` (``frailty`` or an
    outcome), ``list_risk_band``, ``min_risk``, ``top``, ``top_percent`` and ``risk_bands`` are
    ``strata score``'s ``--rank-by``, ``--list-risk-band``, ``--min-risk``, ``--top``,
    ``--top-percent`` and ``--risk-bands``. Every setting is resolved (defaults, checks, error
    messages) by the library, as the binary's are (:func:`settings`). ``programmes`` are named
    programme lists, as ``[[programme]]`` tables of ``strata.toml`` (a list of mappings:
    ``{"name": ..., "description": ..., "rule": [{"min_category": "severe"}]}``):
    ``Scoring.programme_files()`` gives their files as the binary writes them.
    ``previous`` is ``--previous``: a previous run's output folder (or a :class:`PreviousRun`)
    to say what changed since, as the binary does: the lists' ``change`` column,
    ``Scoring.dropped()`` (each PCN's ``dropped.csv``) and ``Scoring.comparison()``; a folder
    without a run compares with nothing, an unreadable one adds a warning. Default: nothing
    compared (the ``change`` column empty, as ``--no-compare``). ``cohort_synthetic`` is the
    cohort's ``strata synth`` mark (:func:`synthetic_mark`; default: the patients table's schema
    metadata, if it has the mark): without it the default cards, trained on synthetic data, are
    not applied (as the binary on an unmarked cohort), with a warning; name them in
    ``risk_models`` to apply them anyway.

    A run split in two (the Spark job at national size, where records and patients meet in
    buckets of the pseudonym's hash): ``stage="records"`` reads a bucket and returns a
    ``Records`` (``.carried()``: one small record per patient, with its PCN;
    ``.indicator_counts()``, ``.rejects()``, ``.handed()``); each PCN's patients are then run
    without their records, ``carried=`` those records (a table of ``patient_id`` and
    ``carried``), and give the same :class:`Scoring` as with them, but for what the records
    stage hands up.

    Raises :class:`InvalidCohortError` (a ``ValueError``) with the validation report when the
    cohort fails strata's checks, :class:`ModelsError` when the models folder cannot be loaded.
    Returns a :class:`Scoring`: ``.scores()``, ``.lists()``, ``.counts()``, ``.rejects()``, ...
    (with ``stage="records"``, a ``Records``). A ``Scoring`` made from ``carried=`` records
    describes its patients only: its ``files()``, ``prescriptions()`` and ``warnings()`` say
    nothing of the records, which the records stage hands up.
    """
    return _run(
        _arrow(patients, "patients"),
        _arrow(events, "events"),
        _arrow(encounters, "encounters"),
        as_of,
        medications=_arrow(medications, "medications"),
        today=today,
        models=models,
        min_age=min_age,
        min_category=min_category,
        max_rejected=max_rejected,
        allow_identifiers=allow_identifiers,
        risk_models=risk_models,
        rank_by=rank_by,
        list_risk_band=list_risk_band,
        min_risk=min_risk,
        top=top,
        top_percent=top_percent,
        previous=previous,
        cohort_synthetic=cohort_synthetic if cohort_synthetic is not None else _table_mark(patients),
        risk_bands=risk_bands,
        programmes=None if programmes is None else json.dumps(programmes),
        stage=stage,
        carried=None if carried is None else _arrow(carried, "carried"),
    )


def settings(**keys: Any) -> dict:
    """What a run's settings resolve to, as the library resolves them for every front end: the
    keys of ``strata.toml`` (``min_age=70``, ``top=10``, ``input={"today": "2025-04-02"}``,
    ``disclosure={"rule": "nhse-2018"}``, ...) in, the run's values out (as the binary's
    ``manifest.json`` records them under ``config``). Raises ``ValueError`` naming a setting
    that cannot be used."""
    return json.loads(_resolve_settings(json.dumps(keys)))


def _table_mark(table: Any) -> Optional[str]:
    """The synthetic mark in an Arrow table's schema metadata, if it has one."""
    meta = getattr(getattr(table, "schema", None), "metadata", None) or {}
    mark = meta.get(SYNTHETIC_KEY) if isinstance(meta, dict) else None
    return None if mark is None else bytes(mark).decode("utf-8", "replace")


def score(
    patients: Any,
    events: Any,
    encounters: Any,
    as_of: str,
    **options: Any,
) -> pa.Table:
    """Every patient's scores as a pyarrow Table: the rows and columns of the binary's
    ``scores.parquet``, in pseudonym order. Options as for :func:`run`."""
    return pa.table(run(patients, events, encounters, as_of, **options).scores())


def lists(
    patients: Any,
    events: Any,
    encounters: Any,
    as_of: str,
    **options: Any,
) -> List[Tuple[str, pa.Table]]:
    """Each PCN's ranked list as ``(pcn_code, pyarrow Table)``, PCNs in code order: the rows of
    the binary's ``lists/<PCN>/<PCN>.csv``. Options as for :func:`run`."""
    scoring = run(patients, events, encounters, as_of, **options)
    return [(pcn, pa.table(t)) for pcn, t in scoring.lists()]


__all__.append("lists")
