//! strata's Python extension (`strata._strata`): scoring on Arrow data, and the per-partition and
//! driver steps of the Spark job (`strata.spark`).
//!
//! Tables cross the boundary through the Arrow C stream interface, as PyCapsules
//! (`__arrow_c_stream__`): anything that exports one (pyarrow, polars, DuckDB, ...) is read into
//! polars-arrow record batches without copying the buffers and checked by
//! [`Cohort::from_arrow_with_medications`] exactly as the binary checks files; results go back as
//! an [`ArrowStream`] that any consumer of the interface imports (`pyarrow.table(s)`).
//!
//! The Python package (`strata/__init__.py`) wraps these functions with keyword arguments and
//! pyarrow conversions; nothing here is meant to be called directly.

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Arc;

use polars::prelude::{Column, CompatLevel, DataFrame, PolarsError};
use polars_arrow::array::StructArray;
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema, Field as ArrowField};
use polars_arrow::ffi;
use polars_arrow::record_batch::RecordBatch;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use strata::carried::Carried;
use strata::changes::{Changes, ChangesError, Current, Previous};
use strata::cohort::Cohort;
use strata::config::{InputConfig, ScoreConfig};
use strata::disclosure::{self, Suppression};
use strata::indicators::{self, IndicatorCounts};
use strata::input::{ArrowTable, InputError};
use strata::lists::ListRules;
use strata::output::{self, PublishedTable, RiskColumns, TableWriter};
use strata::partition::{
    score_carried, score_partition, score_records, CompareWith, Partition, RecordsPart, RunModels,
};
use strata::population::Status;
use strata::risk::{self, Explainer, RiskModel};
use strata::scores::{EfiCategory, Scorer};
use strata::settings::Settings;
use strata::tables::{self, Counts, RowKey, TableKind};

mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

/// The capsule name the Arrow PyCapsule interface gives a C stream.
const STREAM: &CStr = c"arrow_array_stream";

create_exception!(
    _strata,
    InvalidCohortError,
    pyo3::exceptions::PyValueError,
    "The cohort failed strata's checks (the message is the validation report, as `strata validate` prints it)."
);
create_exception!(
    _strata,
    PreviousRunError,
    pyo3::exceptions::PyValueError,
    "A previous run's folder could not be read to compare with (the binary warns and compares with nothing)."
);
create_exception!(
    _strata,
    ModelsError,
    pyo3::exceptions::PyOSError,
    "A models folder (code lists, weights) is missing or malformed."
);

/// A library error of the run's models (loading them, or checking them against the ranking
/// and the programmes, [`strata::partition::RunModels`]) as a [`Failure`].
fn models_failure(e: strata::Error) -> Failure {
    match e {
        strata::Error::Definitions(e) => e.into(),
        strata::Error::Risk(e) => e.into(),
        strata::Error::Programme(e) => e.into(),
        strata::Error::Input(e) => e.into(),
        e => Failure::Argument(e.to_string()),
    }
}

/// Why a call failed, before it becomes a Python exception.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// An argument is not usable (not an Arrow stream, a bad date or category).
    #[error("{0}")]
    Argument(String),
    /// An argument is of the wrong kind.
    #[error("{0}")]
    Type(String),
    /// The cohort was refused.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The models folder could not be loaded.
    #[error(transparent)]
    Definitions(#[from] strata::definitions::DefinitionError),
    /// A risk model card could not be loaded.
    #[error(transparent)]
    Risk(#[from] risk::RiskError),
    /// The aggregate tables could not be protected.
    #[error(transparent)]
    Disclosure(#[from] disclosure::DisclosureError),
    /// A table could not be built, exported or encoded.
    #[error("{0}")]
    Arrow(#[from] PolarsError),
    /// A file could not be written or read back.
    #[error(transparent)]
    Output(#[from] strata::publish::OutputError),
    /// A previous run could not be read.
    #[error(transparent)]
    Previous(#[from] ChangesError),
    /// A programme cannot be made with the models applied.
    #[error(transparent)]
    Programme(#[from] strata::programmes::ProgrammeError),
    /// A part of rejected rows written by a task could not be read.
    #[error(transparent)]
    RejectPart(#[from] strata::input::parts::RejectPartError),
    /// Writing the embedded models folder or a temporary file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        match f {
            Failure::Argument(m) => PyValueError::new_err(m),
            Failure::Type(m) => PyTypeError::new_err(m),
            Failure::Input(InputError::Invalid { report, .. }) => {
                InvalidCohortError::new_err(report.to_string())
            }
            Failure::Definitions(e) => ModelsError::new_err(e.to_string()),
            Failure::Risk(e) => ModelsError::new_err(e.to_string()),
            Failure::Programme(e) => ModelsError::new_err(e.to_string()),
            Failure::Previous(e) => PreviousRunError::new_err(e.to_string()),
            Failure::Io { .. } => pyo3::exceptions::PyOSError::new_err(f.to_string()),
            other => PyRuntimeError::new_err(other.to_string()),
        }
    }
}

/// An I/O error with what was being done.
fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Failure {
    move |source| Failure::Io {
        context: context.into(),
        source,
    }
}

/// Read an object speaking the Arrow PyCapsule stream interface into record batches (the
/// buffers are shared, not copied). `what` names the argument in messages.
fn import_stream(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ArrowTable> {
    if !obj.hasattr("__arrow_c_stream__")? {
        return Err(Failure::Type(format!(
            "{what}: expected an Arrow table (an object with __arrow_c_stream__: a pyarrow Table or RecordBatchReader, a polars DataFrame, ...), got {}",
            obj.get_type().name()?
        ))
        .into());
    }
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        Failure::Type(format!(
            "{what}: __arrow_c_stream__ did not return a PyCapsule"
        ))
    })?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // Move the stream out of the capsule and mark the capsule's copy released (the PyCapsule
    // interface's rule for consumers): the capsule's destructor then leaves it alone, and our
    // copy releases it when dropped.
    // SAFETY: a capsule named "arrow_array_stream" holds an `ArrowArrayStream` (the C stream
    // interface's struct, which `ffi::ArrowArrayStream` lays out with `repr(C)`).
    let stream = unsafe {
        std::ptr::replace(
            ptr.cast::<ffi::ArrowArrayStream>().as_ptr(),
            ffi::ArrowArrayStream::empty(),
        )
    };
    read_stream(stream, what).map_err(PyErr::from)
}

/// The batches of a C stream whose arrays are structs (one per record batch).
fn read_stream(stream: ffi::ArrowArrayStream, what: &str) -> Result<ArrowTable, Failure> {
    // SAFETY: the stream came from a producer of the C stream interface.
    let mut reader = unsafe { ffi::ArrowArrayStreamReader::try_new(Box::new(stream))? };
    let ArrowDataType::Struct(fields) = reader.field().dtype.to_storage().clone() else {
        return Err(Failure::Type(format!(
            "{what}: the Arrow stream does not hold record batches (its type is {:?})",
            reader.field().dtype
        )));
    };
    let schema: Arc<ArrowSchema> =
        Arc::new(fields.iter().map(|f| (f.name.clone(), f.clone())).collect());
    let mut batches = Vec::new();
    // SAFETY: as above; each array is checked to be a struct array below.
    while let Some(array) = unsafe { reader.next() } {
        let array = array?;
        let Some(s) = array.as_any().downcast_ref::<StructArray>() else {
            return Err(Failure::Type(format!(
                "{what}: a batch of the Arrow stream is not a struct array"
            )));
        };
        let (_, length, values, validity) = s.clone().into_data();
        if validity.is_some_and(|v| v.unset_bits() > 0) {
            return Err(Failure::Argument(format!(
                "{what}: a record batch has null rows at the top level"
            )));
        }
        batches.push(RecordBatch::try_new(length, schema.clone(), values)?);
    }
    if batches.is_empty() {
        // No rows: one empty batch keeps the columns, so the schema is still checked.
        let empty = fields
            .iter()
            .map(|f| polars_arrow::array::new_empty_array(f.dtype.clone()))
            .collect();
        batches.push(RecordBatch::try_new(0, schema, empty)?);
    }
    Ok(batches)
}

/// A table handed back to Python: it exports itself through the Arrow PyCapsule interface
/// (`pyarrow.table(s)`, `polars.from_arrow(s)`), as many times as asked. Strings are exported as
/// `large_string` (Arrow's widest-supported layout).
#[pyclass(module = "strata", frozen)]
struct ArrowStream {
    df: DataFrame,
}

#[pymethods]
impl ArrowStream {
    /// The table as an Arrow C stream capsule. `requested_schema` is accepted and ignored (the
    /// interface allows a producer to do so); cast the result if another schema is needed.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let stream = export_frame(&self.df)?;
        PyCapsule::new_with_value(py, stream, STREAM)
    }

    /// Rows.
    fn __len__(&self) -> usize {
        self.df.height()
    }

    /// Column names, in order.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }
}

/// A frame as a C stream of struct arrays, one per chunk.
fn export_frame(df: &DataFrame) -> Result<ffi::ArrowArrayStream, Failure> {
    let compat = CompatLevel::oldest();
    let mut df = df.clone();
    df.rechunk_mut();
    let fields: Vec<ArrowField> = df
        .columns()
        .iter()
        .map(|c| c.field().to_arrow(compat))
        .collect();
    let dtype = ArrowDataType::Struct(fields);
    let arrays = df
        .iter_chunks(compat, false)
        .map(|b| {
            let height = b.height();
            StructArray::try_new(dtype.clone(), height, b.into_arrays(), None).map(|a| a.boxed())
        })
        .collect::<Vec<_>>();
    let field = ArrowField::new("".into(), dtype, false);
    Ok(ffi::export_iterator(Box::new(arrays.into_iter()), field))
}

/// The models folder: the one given, else `$STRATA_MODELS`, else the copy embedded in the
/// extension, written once to a folder under the temporary directory named by its contents'
/// hash (so that a changed build never reads a stale copy).
fn models_dir(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(d) = given.or_else(|| std::env::var_os("STRATA_MODELS").map(PathBuf::from)) {
        return Ok(d);
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in models::FILES {
        for b in name
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(bytes.iter())
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let dir = std::env::temp_dir().join(format!("strata-models-{h:016x}"));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    // Write into a private folder, then move it into place: two processes racing both succeed.
    let tmp =
        std::env::temp_dir().join(format!("strata-models-{h:016x}.{}.tmp", std::process::id()));
    for (name, bytes) in models::FILES {
        let p = tmp.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&p, bytes).map_err(io_err(format!("writing {}", p.display())))?;
    }
    std::fs::write(tmp.join(".complete"), b"")
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process put it there first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if dir.join(".complete").is_file() {
        Ok(dir)
    } else {
        Err(Failure::Io {
            context: format!("creating {}", dir.display()),
            source: std::io::Error::other("the models folder could not be put in place"),
        })
    }
}

/// A scored cohort: what one call of `strata.run` computed (the library's map step,
/// [`strata::partition::score_partition`], as the binary's run and each Spark task call it),
/// from which the lists and the tables' counts are taken.
#[pyclass(module = "strata", frozen)]
struct Scoring {
    part: Partition,
    models: RunModels,
    as_of: i32,
    /// The named programmes (`[[programme]]`), in configuration order.
    programmes: Vec<strata::programmes::Programme>,
}

impl Scoring {
    /// Whether the lists come with `<PCN>.dropped.csv` files (the binary's rule in
    /// `output::write_outputs`: something was compared and found).
    fn has_dropped_files(changes: &Changes) -> bool {
        !changes.change.iter().all(Option::is_none) || !changes.dropped.iter().all(Vec::is_empty)
    }

    /// Each PCN's list frame (the binary's list files' rows and columns), PCNs in code order.
    fn list_frames(&self) -> Result<Vec<(String, DataFrame)>, Failure> {
        let scorer = Scorer::new(&self.models.definitions);
        let risk = self.risk_columns();
        let p = &self.part;
        p.ranked
            .iter()
            .map(|(pcn, pats)| {
                let df =
                    output::list_frame(&p.cohort, &p.scored, &scorer, pats, &risk, &p.changes)?;
                Ok((p.cohort.patients.pcns[*pcn as usize].clone(), df))
            })
            .collect()
    }

    /// Each PCN's files as bytes, from one frame per PCN (the binary's `output::pcn_frame`:
    /// the frailty list's rows first, then those only on a programme list): with `list`, the
    /// list's CSV and Parquet; always, each programme list's name, CSV and Parquet.
    #[allow(clippy::type_complexity)]
    fn pcn_bytes(
        &self,
        list: bool,
    ) -> Result<
        Vec<(
            String,
            Option<(Vec<u8>, Vec<u8>)>,
            Vec<(usize, String, Vec<u8>, Vec<u8>)>,
        )>,
        Failure,
    > {
        let scorer = Scorer::new(&self.models.definitions);
        let risk = self.risk_columns();
        let p = &self.part;
        let inputs = strata::programmes::Inputs {
            cohort: &p.cohort,
            scored: &p.scored,
            defs: &self.models.definitions,
            risks: &p.risks,
            register: &p.register,
            as_of: self.as_of,
        };
        let run = output::programmes::ProgrammeRun {
            programmes: &self.programmes,
            selected: &p.selected,
            inputs: &inputs,
        };
        let mut out = Vec::new();
        for (pcn, pats) in &p.ranked {
            let lists = if self.programmes.is_empty() {
                Vec::new()
            } else {
                run.of_pcn(*pcn)
            };
            if !list && lists.is_empty() {
                continue;
            }
            let (full, row_of) = output::pcn_frame(
                &p.cohort, &p.scored, &scorer, pats, &lists, &risk, &p.changes,
            )?;
            let list_bytes = if list {
                // The frailty list: the frame's first rows.
                let mut df = full.slice(0, pats.len());
                Some((
                    encode(&output::csv::Csv::EXCEL, &mut df)?,
                    encode(&output::parquet::Parquet, &mut df)?,
                ))
            } else {
                None
            };
            let mut programmes = Vec::new();
            for (k, patients) in lists {
                let programme = &self.programmes[k];
                let mut df = output::programmes::programme_frame(
                    programme, &inputs, patients, &full, &row_of,
                )?;
                programmes.push((
                    k,
                    programme.name.clone(),
                    encode(&output::csv::Csv::EXCEL, &mut df)?,
                    encode(&output::parquet::Parquet, &mut df)?,
                ));
            }
            out.push((
                p.cohort.patients.pcns[*pcn as usize].clone(),
                list_bytes,
                programmes,
            ));
        }
        Ok(out)
    }

    /// The risk models' columns of the lists and the scores file.
    fn risk_columns(&self) -> RiskColumns<'_> {
        let p = &self.part;
        RiskColumns {
            models: &self.models.models,
            pcn: &p.cohort.patients.pcn,
            risks: &p.risks,
            explainer: Explainer::new(&p.cohort, &self.models.definitions, &p.scored, self.as_of),
        }
    }
}

/// One PCN's list files: `(pcn_code, csv bytes, parquet bytes)`.
type ListFiles<'py> = (String, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// A table's rows as `(kind, section, label_a, label_b, fit, mild, moderate, severe, total)`.
type CountRow = (String, u8, String, String, u64, u64, u64, u64, u64);

fn count_rows(c: &Counts) -> Vec<CountRow> {
    let kind = match c.kind {
        TableKind::Summary => "summary",
        TableKind::Equity => "equity",
    };
    c.rows
        .iter()
        .map(|(k, v)| {
            (
                kind.to_string(),
                k.section,
                k.labels.0.clone(),
                k.labels.1.clone(),
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
            )
        })
        .collect()
}

/// Bytes of `df` written by `writer` (strata's own CSV or Parquet writer, so the bytes are the
/// binary's).
fn encode(writer: &dyn TableWriter, df: &mut DataFrame) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    writer.encode(&mut bytes, df)?;
    Ok(bytes)
}

#[pymethods]
impl Scoring {
    /// Every patient's scores (the rows and columns of the binary's `scores.parquet`).
    fn scores(&self) -> PyResult<ArrowStream> {
        let scorer = Scorer::new(&self.models.definitions);
        let df = output::scores_frame(
            &self.part.cohort,
            &self.part.scored,
            &scorer,
            &self.risk_columns(),
            &self.part.listed,
        )
        .map_err(Failure::from)?;
        Ok(ArrowStream { df })
    }

    /// Each PCN's list: `[(pcn_code, table)]` in PCN code order (the binary's list files).
    fn lists(&self) -> PyResult<Vec<(String, ArrowStream)>> {
        Ok(self
            .list_frames()?
            .into_iter()
            .map(|(pcn, df)| (pcn, ArrowStream { df }))
            .collect())
    }

    /// Each PCN's list as the bytes of the binary's files: `[(pcn_code, csv, parquet)]`.
    fn list_files<'py>(&self, py: Python<'py>) -> PyResult<Vec<ListFiles<'py>>> {
        let mut out = Vec::new();
        for (pcn, list, _) in self.pcn_bytes(true)? {
            if let Some((csv, parquet)) = list {
                out.push((pcn, PyBytes::new(py, &csv), PyBytes::new(py, &parquet)));
            }
        }
        Ok(out)
    }

    /// The programme lists, as the binary writes them beside each PCN's frailty list:
    /// `[(pcn_code, programme index, programme name, csv bytes, parquet bytes)]`, PCNs in code
    /// order (`lists/<PCN>/<PCN>.<programme>.csv` and `.parquet`).
    #[allow(clippy::type_complexity)]
    fn programme_files<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<
        Vec<(
            String,
            usize,
            String,
            Bound<'py, PyBytes>,
            Bound<'py, PyBytes>,
        )>,
    > {
        let mut out = Vec::new();
        for (pcn, _, programmes) in self.pcn_bytes(false)? {
            for (k, name, csv, parquet) in programmes {
                out.push((
                    pcn.clone(),
                    k,
                    name,
                    PyBytes::new(py, &csv),
                    PyBytes::new(py, &parquet),
                ));
            }
        }
        Ok(out)
    }

    /// Each PCN's list files and its programme lists' files, from one frame per PCN (what a
    /// Spark task hands up): `([(pcn_code, csv, parquet)], [(pcn_code, programme index,
    /// programme name, csv, parquet)])`.
    #[allow(clippy::type_complexity)]
    fn all_list_files<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Vec<ListFiles<'py>>,
        Vec<(
            String,
            usize,
            String,
            Bound<'py, PyBytes>,
            Bound<'py, PyBytes>,
        )>,
    )> {
        let (mut lists, mut programmes) = (Vec::new(), Vec::new());
        for (pcn, list, progs) in self.pcn_bytes(true)? {
            if let Some((csv, parquet)) = list {
                lists.push((
                    pcn.clone(),
                    PyBytes::new(py, &csv),
                    PyBytes::new(py, &parquet),
                ));
            }
            for (k, name, csv, parquet) in progs {
                programmes.push((
                    pcn.clone(),
                    k,
                    name,
                    PyBytes::new(py, &csv),
                    PyBytes::new(py, &parquet),
                ));
            }
        }
        Ok((lists, programmes))
    }

    /// The programmes and how many each lists, as the manifest says them:
    /// `[(name, description, listed)]`.
    fn programmes(&self) -> Vec<(String, String, u64)> {
        self.programmes
            .iter()
            .zip(&self.part.selected)
            .map(|(p, s)| (p.name.clone(), p.description.clone(), s.listed()))
            .collect()
    }

    /// Who dropped off each PCN's list since the previous run given: `[(pcn_code, table)]` in
    /// PCN code order (the binary's `lists/<PCN>/<PCN>.dropped.csv`), or `[]` when the binary writes
    /// none (nothing compared, or nobody listed and nobody dropped). Whole-cohort: a person who
    /// moved to a PCN outside the tables given reads as no longer in the cohort.
    fn dropped(&self) -> PyResult<Vec<(String, ArrowStream)>> {
        if !Scoring::has_dropped_files(&self.part.changes) {
            return Ok(Vec::new());
        }
        self.part
            .ranked
            .iter()
            .map(|&(pcn, _)| {
                let df = output::dropped_frame(&self.part.changes.dropped[pcn as usize])
                    .map_err(Failure::from)?;
                Ok((
                    self.part.cohort.patients.pcns[pcn as usize].clone(),
                    ArrowStream { df },
                ))
            })
            .collect()
    }

    /// The comparison with the previous run, as the manifest says it: `(compared_with,
    /// new_on_lists, dropped_off_lists)`.
    fn comparison(&self) -> (String, u64, u64) {
        (
            self.part.changes.compared_with.clone(),
            self.part.changes.new_on_lists(),
            self.part.changes.dropped_total(),
        )
    }

    /// The aggregate tables' counts (unprotected), addable across partitions:
    /// `[(kind, section, label_a, label_b, fit, mild, moderate, severe, total)]`.
    fn counts(&self) -> Vec<CountRow> {
        let c = &self.part.counts;
        let mut rows = count_rows(&c.summary);
        rows.extend(count_rows(&c.equity));
        rows
    }

    /// The population-health indicators' counts per PCN (unprotected), addable across
    /// partitions: `[(pcn_code, [the quantities of strata::indicators::QUANTITIES])]`.
    fn indicator_counts(&self) -> Vec<(String, Vec<u64>)> {
        self.part
            .counts
            .indicators
            .rows
            .iter()
            .map(|(pcn, v)| (pcn.clone(), v.to_vec()))
            .collect()
    }

    /// The PCN profile's counts (unprotected), addable across partitions: rows `[(pcn_code,
    /// dimension, value, counts)]`, counts the group's eligible people listed and eligible by eFI
    /// category (`[fit listed, fit eligible, mild listed, ..., severe eligible]`), from which
    /// the shape of each PCN's list follows. [`protect_run`] protects them with the other
    /// tables, as the binary does.
    fn profile_counts(&self) -> Vec<(String, String, String, Vec<u64>)> {
        self.part
            .counts
            .profile
            .rows
            .iter()
            .map(|((pcn, g), c)| {
                (
                    pcn.clone(),
                    g.dimension().to_string(),
                    g.value(),
                    c.iter().flatten().copied().collect(),
                )
            })
            .collect()
    }

    /// Rejected rows: `[(file, row, column, reason)]`, rows 1-based in the tables given.
    fn rejects(&self) -> Vec<(String, u64, String, String)> {
        rejects_of(&self.part.cohort)
    }

    /// Rows read and rejected per table: `[(file, rows, rejected)]`.
    fn files(&self) -> Vec<(String, u64, u64)> {
        self.part
            .cohort
            .report
            .files
            .iter()
            .map(|f| (f.file.clone(), f.rows, f.rejected))
            .collect()
    }

    /// Warnings of the validation report, as `strata validate` prints them, and one for each
    /// risk model trained on synthetic data (as the binary's manifest has them).
    fn warnings(&self) -> Vec<String> {
        // The reduce step's rule over this one partition (`strata::finish`).
        let p = &self.part;
        let mut w = strata::finish::input_warnings(None, &[p.handed()]);
        w.extend(strata::finish::model_warnings(
            p.cohort.synthetic.is_some(),
            &self.models.models,
            &self.models.withheld,
        ));
        w.extend(p.compare_warning.clone());
        w.extend(strata::input::spells::warnings(&p.cohort.spells.report));
        w
    }

    /// The default cards trained on synthetic data and not applied, the cohort not being
    /// synthetic (as the binary's manifest's `withheld_risk_models`): `[(outcome, path, fnv1a64)]`.
    fn withheld_risk_models(&self) -> Vec<(String, String, String)> {
        applied(&self.models.withheld)
    }

    /// The risk model cards applied: `[(outcome, path, fnv1a64)]`.
    fn risk_models(&self) -> Vec<(String, String, String)> {
        applied(&self.models.models)
    }

    /// The run's figures for a manifest: patients, eligible, listed, listed_core20, deceased,
    /// ignored_after_as_of, rejected_rows.
    fn figures(&self) -> Vec<(String, u64)> {
        // The library's figures, as the manifest names them.
        let f = self.part.figures();
        vec![
            ("patients".into(), f.patients),
            ("eligible".into(), f.eligible),
            ("listed".into(), f.listed),
            ("listed_core20".into(), f.listed_core20),
            ("deceased".into(), f.deceased),
            ("ignored_after_as_of".into(), f.ignored_after_as_of),
            ("rejected_rows".into(), f.rejected_rows),
        ]
    }

    /// What this partition hands up to the run's reduce step ([`finish`]) besides its counts
    /// and files, as JSON (`strata::partition::Handed`: figures, warnings with their scope,
    /// programme counts, prescriptions, how its spells were built).
    fn handed(&self) -> PyResult<String> {
        Ok(serde_json::to_string(&self.part.handed())
            .map_err(|e| Failure::Argument(e.to_string()))?)
    }

    /// Where the prescriptions came from (`medications.parquet`, `events.parquet (dmd)` or
    /// `none`), as the manifest says it.
    fn prescriptions(&self) -> &'static str {
        strata::input::prescriptions_source(&self.part.cohort)
    }

    /// The models files used, with their hashes: `[(path, fnv1a64)]`.
    fn models(&self) -> Vec<(String, String)> {
        self.models
            .definitions
            .files
            .iter()
            .map(|f| (f.path.clone(), f.fnv1a64.clone()))
            .collect()
    }
}

/// Cards as `[(outcome, path, fnv1a64)]`.
fn applied(models: &[RiskModel]) -> Vec<(String, String, String)> {
    models
        .iter()
        .map(|m| {
            (
                m.file.outcome.to_string(),
                m.file.path.clone(),
                m.file.fnv1a64.clone(),
            )
        })
        .collect()
}

/// Check, load and score a cohort handed as Arrow tables. `as_of` and `today` are
/// `YYYY-MM-DD`; `today` defaults to the machine's UTC date.
#[pyfunction]
#[pyo3(signature = (patients, events, encounters, as_of, medications=None, today=None, models=None, min_age=65, min_category="mild", max_rejected=0.01, allow_identifiers=false, risk_models=None, rank_by="frailty", list_risk_band=None, min_risk=None, top=None, top_percent=None, previous=None, cohort_synthetic=None, risk_bands=None, programmes=None, stage="all", carried=None))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    patients: &Bound<'_, PyAny>,
    events: &Bound<'_, PyAny>,
    encounters: &Bound<'_, PyAny>,
    as_of: &str,
    medications: Option<&Bound<'_, PyAny>>,
    today: Option<&str>,
    models: Option<PathBuf>,
    min_age: i32,
    min_category: &str,
    max_rejected: f64,
    allow_identifiers: bool,
    risk_models: Option<Vec<PathBuf>>,
    rank_by: &str,
    list_risk_band: Option<&str>,
    min_risk: Option<f64>,
    top: Option<u32>,
    top_percent: Option<f64>,
    previous: Option<&Bound<'_, PyAny>>,
    cohort_synthetic: Option<String>,
    risk_bands: Option<String>,
    programmes: Option<String>,
    stage: &str,
    carried: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    // The binary's settings, resolved by the library as for every front end
    // (`strata::settings`): these arguments are the keys of strata.toml.
    let models = models_dir(models)?;
    let config = ScoreConfig {
        as_of: Some(as_of.to_string()),
        models: Some(models.clone()),
        min_age: Some(min_age),
        min_category: Some(min_category.to_string()),
        // An empty list applies no card (the Spark job's --no-risk-models).
        no_risk_models: risk_models.as_ref().map(Vec::is_empty).filter(|&n| n),
        risk_models: risk_models.filter(|c| !c.is_empty()),
        rank_by: Some(rank_by.to_string()),
        list_risk_band: list_risk_band.map(str::to_string),
        min_risk,
        top,
        top_percent,
        risk_bands,
        programme: programmes
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| Failure::Argument(format!("programmes: {e}")))?,
        input: InputConfig {
            allow_identifiers: Some(allow_identifiers),
            max_rejected: Some(max_rejected),
            today: today.map(str::to_string),
            // Tables handed in memory are already loaded.
            skip_memory_check: Some(true),
            memory_limit: None,
        },
        ..Default::default()
    };
    let settings = Settings::resolve(&config).map_err(|e| Failure::Argument(e.to_string()))?;
    let p = import_stream(patients, "patients")?;
    let e = import_stream(events, "events")?;
    let n = import_stream(encounters, "encounters")?;
    let m = medications
        .map(|m| import_stream(m, "medications"))
        .transpose()?;
    let previous = previous.map(previous_arg).transpose()?;
    // A run split in two (the Spark job at national size): "records" reads a bucket of patients
    // with their records and returns what they say ([`Records`]); `carried=` gives that to the
    // PCN stage, whose tables hold the patients only.
    let records_stage = match stage {
        "all" => false,
        "records" => true,
        other => {
            return Err(Failure::Argument(format!(
                "stage: expected \"all\" or \"records\", got \"{other}\""
            ))
            .into())
        }
    };
    let carried = carried
        .map(|c| -> PyResult<DataFrame> { Ok(frame_of(import_stream(c, "carried")?)?) })
        .transpose()?;
    if records_stage && carried.is_some() {
        return Err(Failure::Argument("carried: not with stage=\"records\"".into()).into());
    }
    let done = py.detach(move || -> Result<Done, Failure> {
        let mut models = RunModels::load(&settings).map_err(models_failure)?;
        let mut cohort = Cohort::from_arrow_with_medications(p, e, n, m, &settings.load)?;
        // Arrow tables do not carry the Parquet files' mark: the caller reads it.
        cohort.synthetic = cohort_synthetic;
        models
            .for_cohort(&settings, cohort.synthetic.is_some())
            .map_err(models_failure)?;
        if records_stage {
            let part = score_records(cohort, &settings, &models);
            return Ok(Done::Records(Box::new(Records { part })));
        }
        let carried = carried.map(|df| carried_of(&df, &cohort)).transpose()?;
        // The binary's comparison (`strata score --previous DIR`), on the lists just ranked.
        let dir;
        let previous = match previous {
            None => CompareWith::Nothing,
            Some(PreviousArg::Rows(prev)) => CompareWith::Run(prev),
            Some(PreviousArg::Dir(d)) => {
                dir = d;
                CompareWith::Folder(&dir)
            }
        };
        let part = match carried {
            Some(c) => score_carried(cohort, c, &settings, &models, previous),
            None => score_partition(cohort, &settings, &models, previous, &mut |_| {}),
        };
        Ok(Done::Scoring(Box::new(Scoring {
            part,
            models,
            as_of: settings.as_of,
            programmes: settings.programmes.clone(),
        })))
    })?;
    Ok(match done {
        Done::Scoring(s) => Bound::new(py, *s)?.into_any().unbind(),
        Done::Records(r) => Bound::new(py, *r)?.into_any().unbind(),
    })
}

/// A cohort's rejected rows: `[(file, row, column, reason)]`, rows 1-based in the tables given.
fn rejects_of(cohort: &Cohort) -> Vec<(String, u64, String, String)> {
    cohort
        .rejects
        .iter()
        .map(|r| {
            (
                r.file.to_string(),
                r.row,
                r.column.to_string(),
                r.reason.to_string(),
            )
        })
        .collect()
}

/// What [`run`] computed: a partition scored, or a bucket's records read.
enum Done {
    Scoring(Box<Scoring>),
    Records(Box<Records>),
}

/// The records handed to the PCN stage (`carried=`: `patient_id`, `carried` binary) in the
/// order of `cohort`'s patients.
fn carried_of(df: &DataFrame, cohort: &Cohort) -> Result<Carried, Failure> {
    let what = "carried";
    let ids = df
        .column("patient_id")
        .map_err(|_| Failure::Argument(format!("{what}: no column 'patient_id'")))?
        .cast(&polars::prelude::DataType::String)?;
    let ids = ids.str()?;
    let bytes = df
        .column("carried")
        .map_err(|_| Failure::Argument(format!("{what}: no column 'carried'")))?;
    let bytes = bytes
        .binary()
        .map_err(|_| Failure::Argument(format!("{what}: 'carried' is not binary")))?;
    let records: Vec<(&str, &[u8])> = ids
        .iter()
        .zip(bytes.iter())
        .map(|(i, b)| (i.unwrap_or(""), b.unwrap_or(&[])))
        .collect();
    Carried::gather(&cohort.patients.id, &records).map_err(|e| Failure::Argument(e.to_string()))
}

/// A bucket of patients read with their records: the records stage of a run split in two
/// ([`strata::partition::score_records`]). Its [`Records::carried`] goes to the patients' PCN
/// tasks (`run(..., carried=)`); its counts, rejected rows and what it hands up go to the
/// driver.
#[pyclass(module = "strata", frozen)]
struct Records {
    part: RecordsPart,
}

#[pymethods]
impl Records {
    /// Each admitted patient's record: a table of `patient_id`, `pcn_code` and `carried`
    /// (binary), patients in pseudonym order.
    fn carried(&self) -> PyResult<ArrowStream> {
        let p = &self.part;
        let pa = &p.cohort.patients;
        let mut buf = Vec::with_capacity(pa.len() * strata::carried::RECORD_BYTES);
        for k in 0..pa.len() {
            p.carried.encode(k, &mut buf);
        }
        let slices: Vec<&[u8]> = buf.chunks(strata::carried::RECORD_BYTES).collect();
        let pcn: Vec<&str> = pa
            .pcn
            .iter()
            .map(|&k| pa.pcns[k as usize].as_str())
            .collect();
        let df = DataFrame::new(
            pa.len(),
            vec![
                Column::new("patient_id".into(), &pa.id),
                Column::new("pcn_code".into(), pcn),
                Column::new("carried".into(), slices),
            ],
        )
        .map_err(Failure::from)?;
        Ok(ArrowStream { df })
    }

    /// The population-health indicators' counts of the bucket's patients per PCN, addable
    /// across parts (as [`Scoring::indicator_counts`]).
    fn indicator_counts(&self) -> Vec<(String, Vec<u64>)> {
        self.part
            .indicators
            .rows
            .iter()
            .map(|(pcn, v)| (pcn.clone(), v.to_vec()))
            .collect()
    }

    /// Rejected rows: `[(file, row, column, reason)]`, rows 1-based in the tables given.
    fn rejects(&self) -> Vec<(String, u64, String, String)> {
        rejects_of(&self.part.cohort)
    }

    /// What the records stage hands up to the reduce step, as JSON
    /// (`strata::partition::Handed`).
    fn handed(&self) -> PyResult<String> {
        Ok(serde_json::to_string(&self.part.handed())
            .map_err(|e| Failure::Argument(e.to_string()))?)
    }
}

/// The previous run handed to [`run`]: a folder (read as the binary reads it), or its rows.
enum PreviousArg {
    /// A previous run's output folder.
    Dir(PathBuf),
    /// Rows of a previous run's scores (the Spark job's tasks get their own patients' rows).
    Rows(Previous),
}

/// Text columns of an imported table, by name (`None` for a missing optional column).
fn text_column(df: &DataFrame, name: &str, what: &str) -> Result<Vec<Option<String>>, Failure> {
    let c = df
        .column(name)
        .map_err(|_| Failure::Argument(format!("{what}: no column '{name}'")))?
        .cast(&polars::prelude::DataType::String)?;
    Ok(c.str()?.iter().map(|v| v.map(String::from)).collect())
}

/// `previous=` of [`run`]: a folder, a [`PreviousRun`], or a table of a previous run's scores
/// rows (`patient_id`, `pcn_code`, `efi_category`, optional `listed`, default true).
fn previous_arg(obj: &Bound<'_, PyAny>) -> PyResult<PreviousArg> {
    if let Ok(p) = obj.cast::<PreviousRun>() {
        return Ok(PreviousArg::Rows(p.get().previous.clone()));
    }
    if !obj.hasattr("__arrow_c_stream__")? {
        let dir: PathBuf = obj.extract().map_err(|_| {
            Failure::Type(format!(
                "previous: expected a folder, a PreviousRun or an Arrow table, got {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        return Ok(PreviousArg::Dir(dir));
    }
    let df = frame_of(import_stream(obj, "previous")?)?;
    let what = "previous";
    let ids = text_column(&df, "patient_id", what)?;
    let pcns = text_column(&df, "pcn_code", what)?;
    let cats = text_column(&df, "efi_category", what)?;
    let listed: Vec<bool> = match df.column("listed") {
        Ok(c) => c
            .bool()
            .map_err(|_| Failure::Argument("previous: 'listed' is not boolean".into()))?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect(),
        Err(_) => vec![true; df.height()],
    };
    let rows = ids
        .into_iter()
        .zip(pcns)
        .zip(cats)
        .zip(listed)
        .map(|(((id, pcn), cat), listed)| {
            (
                id.unwrap_or_default(),
                pcn.unwrap_or_default(),
                cat.as_deref().and_then(EfiCategory::parse),
                listed,
            )
        })
        .collect();
    let prev =
        Previous::from_rows(PathBuf::from("(rows given)"), None, rows).map_err(Failure::from)?;
    Ok(PreviousArg::Rows(prev))
}

/// A previous run's output folder, read as the binary reads it to say what changed: the Spark
/// job's driver reads it once, hands each task its patients' rows ([`PreviousRun::listed`]),
/// and compares the whole run's scores with it ([`PreviousRun::compare`]).
#[pyclass(module = "strata", frozen)]
struct PreviousRun {
    previous: Previous,
}

/// What [`PreviousRun::compare`] returns: `(compared_with, new_on_lists, dropped_off_lists,
/// dropped files [(pcn_code, csv bytes)] or [] when the binary writes none)`.
type Comparison<'py> = (String, u64, u64, Vec<(String, Bound<'py, PyBytes>)>);

#[pymethods]
impl PreviousRun {
    /// The folder.
    #[getter]
    fn dir(&self) -> String {
        self.previous.dir.display().to_string()
    }

    /// Its as-of date, from its manifest.
    #[getter]
    fn as_of(&self) -> Option<String> {
        self.previous.as_of.clone()
    }

    /// Its listed people: `patient_id`, `pcn_code`, `efi_category`, in pseudonym order (what
    /// the `change` column of this run's lists is worked out from).
    fn listed(&self) -> PyResult<ArrowStream> {
        let (mut ids, mut pcns, mut cats) = (Vec::new(), Vec::new(), Vec::new());
        for (id, pcn, cat) in self.previous.listed_rows() {
            ids.push(id);
            pcns.push(pcn);
            cats.push(cat.map(|c| c.name()));
        }
        let n = ids.len();
        let df = DataFrame::new(
            n,
            vec![
                Column::new("patient_id".into(), ids),
                Column::new("pcn_code".into(), pcns),
                Column::new("efi_category".into(), cats),
            ],
        )
        .map_err(Failure::from)?;
        Ok(ArrowStream { df })
    }

    /// Compare a whole run's scores (the rows of its `scores.parquet`, in pseudonym order:
    /// `patient_id`, `pcn_code`, `status`, `efi_category`, `listed`) with this run, as the
    /// binary does; `min_category` is the lists' cut-off. Returns what changed as the manifest
    /// says it, and the bytes of each PCN's `dropped.csv` (every PCN of the scores).
    fn compare<'py>(
        &self,
        py: Python<'py>,
        scores: &Bound<'py, PyAny>,
        min_category: &str,
    ) -> PyResult<Comparison<'py>> {
        let min_category = EfiCategory::parse(min_category).ok_or_else(|| {
            Failure::Argument(format!(
                "min_category: '{min_category}' is not fit, mild, moderate or severe"
            ))
        })?;
        let batches = import_stream(scores, "scores")?;
        let prev = &self.previous;
        let (compared, files) = py.detach(move || -> Result<_, Failure> {
            let df = frame_of(batches)?;
            let (changes, pcns) = changes_of_scores(&df, prev, min_category, None)?;
            let compared = (
                changes.compared_with.clone(),
                changes.new_on_lists(),
                changes.dropped_total(),
            );
            Ok((compared, dropped_files(&changes, &pcns)?))
        })?;
        let files = files
            .into_iter()
            .map(|(pcn, csv)| (pcn, PyBytes::new(py, &csv)))
            .collect();
        Ok((compared.0, compared.1, compared.2, files))
    }
}

/// What changed since `prev`, worked out from a whole run's scores (the rows of its
/// `scores.parquet`, in pseudonym order: `patient_id`, `pcn_code`, `status`, `efi_category`,
/// `listed`; or only the rows of the people on a list now or on `prev`'s, which is all the
/// comparison reads), as the binary works it out; with the run's PCN codes (`all_pcns`, or
/// those of the scores).
fn changes_of_scores(
    df: &DataFrame,
    prev: &Previous,
    min_category: EfiCategory,
    all_pcns: Option<Vec<String>>,
) -> Result<(Changes, Vec<String>), Failure> {
    let what = "scores";
    let ids: Vec<String> = text_column(df, "patient_id", what)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    if ids.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Failure::Argument(
            "scores: patients are not in pseudonym order (or a pseudonym is repeated)".into(),
        ));
    }
    let pcn_text = text_column(df, "pcn_code", what)?;
    let mut pcns: Vec<String> =
        all_pcns.unwrap_or_else(|| pcn_text.iter().flatten().cloned().collect());
    pcns.sort_unstable();
    pcns.dedup();
    let pcn = pcn_text
        .iter()
        .map(|c| {
            let c = c.as_deref().unwrap_or_default();
            pcns.binary_search_by(|x| x.as_str().cmp(c))
                .map(|i| i as u32)
                .map_err(|_| Failure::Argument("scores: a null pcn_code".into()))
        })
        .collect::<Result<Vec<u32>, Failure>>()?;
    let statuses = [
        Status::Eligible,
        Status::TooYoung,
        Status::Deceased,
        Status::NotYetBorn,
    ];
    let status = text_column(df, "status", what)?
        .iter()
        .map(|s| {
            let s = s.as_deref().unwrap_or_default();
            statuses
                .into_iter()
                .find(|x| x.name() == s)
                .ok_or_else(|| Failure::Argument(format!("scores: unknown status '{s}'")))
        })
        .collect::<Result<Vec<Status>, Failure>>()?;
    let category = text_column(df, "efi_category", what)?
        .iter()
        .map(|c| {
            let c = c.as_deref().unwrap_or_default();
            EfiCategory::parse(c)
                .ok_or_else(|| Failure::Argument(format!("scores: unknown efi_category '{c}'")))
        })
        .collect::<Result<Vec<EfiCategory>, Failure>>()?;
    let listed: Vec<bool> = df
        .column("listed")
        .map_err(|_| Failure::Argument("scores: no column 'listed'".into()))?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let now = Current {
        ids: &ids,
        pcns: &pcns,
        pcn: &pcn,
        status: &status,
        category: &category,
        listed: &listed,
    };
    Ok((Changes::between(&now, min_category, prev), pcns))
}

/// Each PCN's `dropped.csv` bytes (`(pcn_code, csv)`, PCNs as `pcns`), or none when the binary
/// writes none (nothing compared and found).
fn dropped_files(changes: &Changes, pcns: &[String]) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut files = Vec::new();
    if Scoring::has_dropped_files(changes) {
        for (k, code) in pcns.iter().enumerate() {
            let mut df = output::dropped_frame(&changes.dropped[k])?;
            files.push((code.clone(), encode(&output::csv::Csv::PLAIN, &mut df)?));
        }
    }
    Ok(files)
}

/// Read the previous run in `dir` as the binary does: `None` when it holds no
/// `scores.parquet`; raises `PreviousRunError` when it cannot be read.
#[pyfunction]
fn read_previous(py: Python<'_>, dir: PathBuf) -> PyResult<Option<PreviousRun>> {
    let prev = py.detach(move || Previous::read(&dir).map_err(Failure::from))?;
    Ok(prev.map(|previous| PreviousRun { previous }))
}

/// Protect the aggregate tables of a whole run once, from their counts added up over
/// partitions (rows as [`Scoring::counts`] gives them), and return the bytes of the binary's
/// `summary.csv` and `equity.csv`. `publication` rounds to 5 as `--publication` does.
#[pyfunction]
#[pyo3(signature = (rows, publication=false))]
fn protect_tables<'py>(
    py: Python<'py>,
    rows: Vec<CountRow>,
    publication: bool,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (summary, equity) = table_counts(rows)?;
    let suppression = if publication {
        Suppression::publication()
    } else {
        Suppression::default()
    };
    let (s, e) = py.detach(move || -> Result<(Vec<u8>, Vec<u8>), Failure> {
        let (st, et) = (summary.table(), equity.table());
        let cells = disclosure::protect(&[&st, &et], &suppression)?;
        let csv = |stem: &str, table, cells: &Vec<_>| -> Result<Vec<u8>, Failure> {
            let mut df = output::table_frame(&PublishedTable { stem, table, cells })?;
            encode(&output::csv::Csv::PLAIN, &mut df)
        };
        Ok((
            csv("summary", &st, &cells[0])?,
            csv("equity", &et, &cells[1])?,
        ))
    })?;
    Ok((PyBytes::new(py, &s), PyBytes::new(py, &e)))
}

/// The summary and equity counts from count rows (rows with the same labels add up).
fn table_counts(rows: Vec<CountRow>) -> Result<(Counts, Counts), Failure> {
    let mut summary = Counts::new(TableKind::Summary);
    let mut equity = Counts::new(TableKind::Equity);
    for (kind, section, a, b, fit, mild, moderate, severe, total) in rows {
        let counts = match kind.as_str() {
            "summary" => &mut summary,
            "equity" => &mut equity,
            other => {
                return Err(Failure::Argument(format!(
                    "counts: unknown table kind '{other}'"
                )))
            }
        };
        // Rows with the same labels (from different partitions) add up.
        let row = counts
            .rows
            .entry(RowKey {
                section,
                labels: (a, b),
            })
            .or_default();
        for (x, v) in row.iter_mut().zip([fit, mild, moderate, severe, total]) {
            *x += v;
        }
    }
    Ok((summary, equity))
}

/// Protect every aggregate table of a whole run together, as the binary does: the summary and
/// equity tables from their count rows ([`Scoring::counts`]), the population-health indicators
/// from theirs ([`Scoring::indicator_counts`]) and the PCN profile from its
/// ([`Scoring::profile_counts`]), each added up over partitions; `publication` and
/// `min_interval` and `rule` as `--publication`, `--min-interval` and `--disclosure-rule`.
/// Returns the bytes of the binary's
/// `summary.csv`, `equity.csv`, `indicators.csv` and `pcn_profile.csv`.
#[pyfunction]
#[pyo3(signature = (rows, indicator_rows, publication=false, profile=None, min_interval=0, rule=None))]
#[allow(clippy::type_complexity)]
fn protect_run<'py>(
    py: Python<'py>,
    rows: Vec<CountRow>,
    indicator_rows: Vec<(String, Vec<u64>)>,
    publication: bool,
    profile: Option<ProfileArg>,
    min_interval: u64,
    rule: Option<String>,
) -> PyResult<TableBytes<'py>> {
    // The same protection as [`protect`], under these settings.
    let settings = serde_json::json!({
        "publication": publication,
        "disclosure": {"rule": rule, "min_interval": min_interval},
    });
    protect(py, rows, indicator_rows, &settings.to_string(), profile)?.tables(py)
}

/// The bytes of `summary.csv`, `equity.csv`, `indicators.csv` and `pcn_profile.csv`.
type TableBytes<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

/// A whole run's aggregate tables protected together, as the binary protects them, kept so that
/// the tables and every PCN's documents (workbook, page) come from the one protection: what the
/// Spark driver publishes after its tasks have counted.
#[pyclass(module = "strata", frozen)]
struct Protected {
    /// The counted tables, in `output::AGGREGATE_TABLES` order.
    tables: [tables::CountedTable; 4],
    cells: Vec<Vec<disclosure::Cell>>,
    rules: ListRules,
}

#[pymethods]
impl Protected {
    /// The bytes of `summary.csv`, `equity.csv`, `indicators.csv` and `pcn_profile.csv`, as the
    /// binary writes them.
    #[allow(clippy::type_complexity)]
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<TableBytes<'py>> {
        let bytes = output::published(&self.tables, &self.cells)
            .iter()
            .map(|t| encode(&output::csv::Csv::PLAIN, &mut t.frame()?))
            .collect::<Result<Vec<Vec<u8>>, Failure>>()?;
        Ok((
            PyBytes::new(py, &bytes[0]),
            PyBytes::new(py, &bytes[1]),
            PyBytes::new(py, &bytes[2]),
            PyBytes::new(py, &bytes[3]),
        ))
    }

    /// One PCN's documents, as the binary writes them beside its list: `[(extension, bytes)]`
    /// (`xlsx`, `html`), from the list (the bytes of its `lists/<PCN>/<PCN>.parquet`) and this
    /// run's protected summary and profile rows of the PCN. `as_of` is `YYYY-MM-DD`.
    fn documents<'py>(
        &self,
        py: Python<'py>,
        pcn: &str,
        list_parquet: Vec<u8>,
        as_of: &str,
    ) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
        let docs = py.detach(|| -> Result<Vec<(String, Vec<u8>)>, Failure> {
            use polars::prelude::SerReader as _;
            let list =
                polars::prelude::ParquetReader::new(std::io::Cursor::new(list_parquet)).finish()?;
            let published = output::published(&self.tables, &self.cells);
            let summary = output::PcnSummary::new(
                &published[output::SUMMARY],
                &published[output::PROFILE],
                pcn,
                as_of,
                &self.rules,
            );
            output::PCN_FORMATS
                .iter()
                .map(|w| {
                    let mut bytes = Vec::new();
                    w.encode(&mut bytes, &list, &summary).map_err(|e| {
                        Failure::Argument(format!("PCN {pcn}'s {}: {e}", w.extension()))
                    })?;
                    Ok((w.extension().to_string(), bytes))
                })
                .collect()
        })?;
        Ok(docs
            .into_iter()
            .map(|(ext, b)| (ext, PyBytes::new(py, &b)))
            .collect())
    }
}

/// Protect a whole run's aggregate tables together, as the binary does, from their counts added
/// up over partitions ([`Scoring::counts`], [`Scoring::indicator_counts`],
/// [`Scoring::profile_counts`]), under the run's settings (`settings`: JSON of strata.toml's
/// keys, resolved by the library: the disclosure rule, `publication`, `min_interval`, the list
/// rules the documents state). Returns a [`Protected`]: its tables and each PCN's documents.
#[pyfunction]
#[pyo3(signature = (rows, indicator_rows, settings, profile=None))]
fn protect(
    py: Python<'_>,
    rows: Vec<CountRow>,
    indicator_rows: Vec<(String, Vec<u64>)>,
    settings: &str,
    profile: Option<ProfileArg>,
) -> PyResult<Protected> {
    let c: ScoreConfig =
        serde_json::from_str(settings).map_err(|e| Failure::Argument(format!("settings: {e}")))?;
    let settings = Settings::resolve(&c).map_err(|e| Failure::Argument(e.to_string()))?;
    let (summary, equity) = table_counts(rows)?;
    let profile = profile_counts(profile)?;
    let ind = indicator_counts(indicator_rows)?;
    Ok(py.detach(move || -> Result<Protected, Failure> {
        // In `output::AGGREGATE_TABLES` order, as the binary protects them.
        let tables = [
            summary.table(),
            equity.table(),
            ind.table(),
            profile.table(),
        ];
        let cells = disclosure::protect(&tables.iter().collect::<Vec<_>>(), &settings.suppression)?;
        Ok(Protected {
            tables,
            cells,
            rules: settings.rules,
        })
    })?)
}

/// A list file handed up: `(pcn_code, csv bytes, parquet bytes)`.
/// A file a task wrote into the staging folder: path relative to the run folder, data rows,
/// bytes, SHA-256 (hex).
type StagedFile = (String, u64, u64, String);

fn staged_record((path, rows, bytes, sha256): StagedFile) -> strata::publish::Written {
    strata::publish::Written {
        path,
        rows,
        bytes,
        sha256,
    }
}

/// The run's reduce step for an engine that scored it in parts (the Spark job's driver), as the
/// binary's run calls it over its one partition (`strata::finish::finish`): the whole files'
/// checks (`files`: each file's rows; `rejects`: the parts of rejected rows the tasks wrote
/// into `stage`, each its path within it and the rows its task wrote, rows numbered in the
/// whole files; too many refuse the run with `InvalidCohortError`), the aggregate tables
/// protected together from the parts' counts added up, every file written (the lists and
/// programme lists the tasks wrote into the staging folder `stage`, `lists`: PCN code and its
/// `.csv` and `.parquet`, `programmes`: programme index, PCN code, name and its two files;
/// each PCN's workbook and page made here from its list, one PCN at a time; the scores table,
/// and, with `previous_run`, what changed since it: the `dropped` lists and the manifest's
/// figures, worked out from the whole run's scores), the manifest, and the folder published to `out` (with `in_root`,
/// `ROOT/<as-of>` of an output root, `latest` moved); the files the tasks wrote themselves into
/// the staging folder `stage` (the scores table's parts, `staged`: path in the run folder, rows,
/// bytes, SHA-256) are moved into it; `read_paths` says how the engine read each file (the
/// manifest's `read_paths`). `settings` is JSON of strata.toml's keys,
/// resolved by the library; `parts` each part's [`Scoring::handed`]; `compared_with` and
/// `compare_warning` say why nothing was compared when there is no `previous_run`. Returns the
/// manifest as JSON.
#[pyfunction]
#[pyo3(signature = (settings, cohort, out, *, in_root, previous, engine, threads, seconds, counts, indicator_rows, profile, parts, files, rejects, lists, programmes, scores, previous_run, compared_with, compare_warning, cohort_synthetic, hash_inputs, stage, staged, read_paths=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn finish(
    py: Python<'_>,
    settings: &str,
    cohort: PathBuf,
    out: PathBuf,
    in_root: bool,
    previous: Option<PathBuf>,
    engine: String,
    threads: usize,
    seconds: Vec<(String, f64)>,
    counts: Vec<CountRow>,
    indicator_rows: Vec<(String, Vec<u64>)>,
    profile: Option<ProfileArg>,
    parts: Vec<String>,
    files: Vec<(String, u64)>,
    rejects: Vec<(String, u64)>,
    lists: Vec<(String, StagedFile, StagedFile)>,
    programmes: Vec<(usize, String, String, StagedFile, StagedFile)>,
    scores: Option<&Bound<'_, PyAny>>,
    previous_run: Option<Py<PreviousRun>>,
    compared_with: String,
    compare_warning: Option<String>,
    cohort_synthetic: Option<String>,
    hash_inputs: bool,
    stage: PathBuf,
    staged: Vec<StagedFile>,
    read_paths: Option<Vec<(String, String)>>,
) -> PyResult<String> {
    let mut c: ScoreConfig =
        serde_json::from_str(settings).map_err(|e| Failure::Argument(format!("settings: {e}")))?;
    // The models the tasks loaded: the folder given, else $STRATA_MODELS, else the package's.
    c.models = Some(models_dir(c.models.take())?);
    let settings = Settings::resolve(&c).map_err(|e| Failure::Argument(e.to_string()))?;
    let (summary, equity) = table_counts(counts)?;
    let run_counts = strata::partition::RunCounts {
        summary,
        equity,
        indicators: indicator_counts(indicator_rows)?,
        profile: profile_counts(profile)?,
    };
    let parts = parts
        .iter()
        .map(|p| serde_json::from_str::<strata::partition::Handed>(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Argument(format!("parts: {e}")))?;
    let scores = scores.map(|t| import_stream(t, "scores")).transpose()?;
    let destination = match (in_root, out.parent()) {
        (true, Some(root)) => strata::publish::Destination::Root(root.to_path_buf()),
        _ => strata::publish::Destination::Folder(out.clone()),
    };
    let manifest = py.detach(move || -> Result<String, Failure> {
        // The driver's stages so far, then this one (the whole files' checks, the scores put in
        // order and compared), then the library's `protect` and `write`.
        let stages = strata::finish::Stages::after(seconds, "whole_files");
        let mut models = RunModels::load(&settings).map_err(models_failure)?;
        models
            .for_cohort(&settings, cohort_synthetic.is_some())
            .map_err(models_failure)?;
        // The tasks' rejected rows, read from their parts in the staging folder.
        let mut read = Vec::new();
        for (part, rows) in &rejects {
            read.extend(strata::input::parts::read_reject_part(
                &stage.join(part),
                *rows,
            )?);
        }
        let (rejects, report) = strata::input::parts::whole_files(&files, read, &settings.load);
        if report.errors() > 0 {
            return Err(Failure::Input(InputError::Invalid {
                dir: cohort.clone(),
                report: Box::new(report),
            }));
        }
        let warnings = report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>();
        let hashes = hash_inputs.then(|| strata::provenance::InputHashes::start(&cohort));
        let opts = strata::settings::ScoreOptions {
            cohort: cohort.clone(),
            out: destination,
            settings,
            previous,
        };
        // The rows of the people on a list now or on the previous run's, in pseudonym order:
        // what changed since the previous run is worked out from them, as the binary works it
        // out (who moved between PCNs, who died, who left the cohort or the list).
        let mut scores = scores.map(frame_of).transpose()?;
        if let Some(df) = &mut scores {
            df.sort_in_place(["patient_id"], Default::default())?;
        }
        let pcn_codes: Vec<String> = lists.iter().map(|(pcn, _, _)| pcn.clone()).collect();
        let mut comparison = strata::finish::Comparison {
            compared_with,
            warning: compare_warning,
            ..Default::default()
        };
        let mut dropped = Vec::new();
        if let (Some(prev), Some(df)) = (&previous_run, &scores) {
            let (changes, pcns) = changes_of_scores(
                df,
                &prev.get().previous,
                opts.settings.rules.min_category,
                Some(pcn_codes),
            )?;
            comparison = strata::finish::Comparison::of(&changes, comparison.warning);
            dropped = dropped_files(&changes, &pcns)?;
        }
        let reduce = strata::finish::Reduce {
            opts: &opts,
            models: &models,
            engine,
            threads,
            scores_table: "scores/ (one Parquet part per PCN, written by the Spark tasks: together the rows of the binary's scores.parquet)".into(),
            counts: run_counts,
            parts,
            input: strata::finish::WholeInput {
                files: report.files,
                rejects,
                warnings: Some(warnings),
                read_paths: read_paths.unwrap_or_default(),
                distinct_codes: None,
                unused_codes: None,
                cohort_synthetic,
            },
            comparison,
            hashes,
        };
        let handed = output::parts::PartFiles {
            lists: lists
                .into_iter()
                .map(|(pcn, csv, parquet)| (pcn, staged_record(csv), staged_record(parquet)))
                .collect(),
            programmes: programmes
                .into_iter()
                .map(|(k, pcn, name, csv, parquet)| {
                    (k, pcn, name, staged_record(csv), staged_record(parquet))
                })
                .collect(),
            dropped,
            scores: None,
            staged: staged.into_iter().map(staged_record).collect(),
            stage: Some(stage),
        };
        let manifest = strata::finish::finish(reduce, stages, |dir, docs| {
            Ok(output::parts::write_parts(dir, handed, docs)?)
        })
        .map_err(|e| match e {
            strata::Error::Output(e) => Failure::Output(e),
            strata::Error::Input(e) => Failure::Input(e),
            // A part scored with other models files than these (ModelsError).
            strata::Error::Definitions(e) => Failure::Definitions(e),
            e => Failure::Argument(e.to_string()),
        })?;
        serde_json::to_string(&manifest).map_err(|e| Failure::Argument(e.to_string()))
    })?;
    Ok(manifest)
}

/// A run being recorded in an output root's `runs.jsonl`, as `strata score --root` records
/// its runs (`strata::history::RunLog`): the start line is written when this is made, the end
/// line by [`RunLog::end`].
#[pyclass(module = "strata", frozen)]
struct RunLog {
    log: std::sync::Mutex<Option<strata::history::RunLog>>,
}

#[pymethods]
impl RunLog {
    #[new]
    fn new(root: PathBuf, as_of: &str) -> PyResult<RunLog> {
        let log = strata::history::RunLog::start(&root, as_of).map_err(Failure::from)?;
        Ok(RunLog {
            log: std::sync::Mutex::new(Some(log)),
        })
    }

    /// Write the end line: the run's patients and listed people, or the error that ended it.
    #[pyo3(signature = (patients=None, listed=None, error=None))]
    fn end(
        &self,
        patients: Option<u64>,
        listed: Option<u64>,
        error: Option<String>,
    ) -> PyResult<()> {
        let log = self
            .log
            .lock()
            .map_err(|_| Failure::Argument("the run log was poisoned".into()))?
            .take();
        let Some(log) = log else {
            return Err(Failure::Argument("the run's end is already recorded".into()).into());
        };
        let outcome = match error {
            Some(e) => Err(e),
            None => Ok((patients.unwrap_or(0), listed.unwrap_or(0))),
        };
        log.end(outcome).map_err(Failure::from)?;
        Ok(())
    }
}

/// The previous run an output root holds for a run of `as_of` (`YYYY-MM-DD`), as `strata score
/// --root` finds it: the newest run before that date, else a run of that date being replaced,
/// else the root itself (which holds no run: a first run says so).
#[pyfunction]
fn previous_in_root(root: PathBuf, as_of: &str) -> PyResult<Option<PathBuf>> {
    let days = strata::date::parse_days(as_of)
        .ok_or_else(|| Failure::Argument(format!("as_of: '{as_of}' is not a date")))?;
    let dest = strata::publish::Destination::Root(root.clone());
    Ok(strata::settings::previous_run(
        &ScoreConfig::default(),
        &dest,
        days,
    ))
}

/// A programmes file (`--programmes FILE`: `[[programme]]` tables, as in strata.toml), read and
/// checked as the binary reads it: JSON of its programmes, for `run(programmes=)`.
#[pyfunction]
fn read_programmes(path: PathBuf) -> PyResult<String> {
    let file = strata::config::ProgrammesFile::load(&path)
        .map_err(|e| Failure::Argument(e.to_string()))?;
    Ok(serde_json::to_string(&file.programme).map_err(|e| Failure::Argument(e.to_string()))?)
}

/// A run's settings, resolved by the library as every front end resolves them
/// (`strata::settings::Settings::resolve`): `config` is JSON of strata.toml's keys (`[input]`
/// and `[disclosure]` as objects); returns JSON of what the run does (the binary's manifest
/// spells the same values under `config`). Errors name the setting.
#[pyfunction]
fn resolve_settings(config: &str) -> PyResult<String> {
    let c: ScoreConfig =
        serde_json::from_str(config).map_err(|e| Failure::Argument(format!("settings: {e}")))?;
    let s = Settings::resolve(&c).map_err(|e| Failure::Argument(e.to_string()))?;
    Ok(serde_json::to_string(&s).map_err(|e| Failure::Argument(e.to_string()))?)
}

/// The error of a cohort read in parts whose `patients.parquet` gives one pseudonym to more than
/// one row (`rows`: 1-based, every row after each pseudonym's first, found by the engine across
/// its parts), as `strata validate` prints it (`strata::input::parts::duplicate_pseudonyms`);
/// `None` when there are none.
#[pyfunction]
fn duplicate_pseudonyms(rows: Vec<u64>) -> Option<String> {
    strata::input::parts::duplicate_pseudonyms(rows).map(|r| {
        r.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The columns of a contract file (`patients.parquet`, ...): an engine that hands strata its
/// rows moves these and no others (strata ignores any other column once the whole file's schema
/// has been checked for direct identifiers).
#[pyfunction]
fn read_columns(file: &str) -> PyResult<Vec<String>> {
    let spec = strata::input::contract::columns(file)
        .ok_or_else(|| Failure::Argument(format!("{file} is not a file of the cohort contract")))?;
    Ok(spec.iter().map(|c| c.name.to_string()).collect())
}

/// The indicator counts of a run from their parts ([`Scoring::indicator_counts`]).
fn indicator_counts(rows: Vec<(String, Vec<u64>)>) -> Result<IndicatorCounts, Failure> {
    let mut ind = IndicatorCounts::default();
    for (pcn, v) in rows {
        let v: [u64; indicators::WIDTH] = v.try_into().map_err(|v: Vec<u64>| {
            Failure::Argument(format!(
                "indicator_rows: {} counts for PCN {pcn}, expected {}",
                v.len(),
                indicators::WIDTH
            ))
        })?;
        let mut one = IndicatorCounts::default();
        one.rows.insert(pcn, v);
        ind.add(&one);
    }
    Ok(ind)
}

/// The PCN profile's counts as [`Scoring::profile_counts`] gives them, added up over
/// partitions.
type ProfileArg = Vec<(String, String, String, Vec<u64>)>;

/// The profile counts of a run from their parts (an empty profile when none is given).
fn profile_counts(arg: Option<ProfileArg>) -> Result<tables::ProfileCounts, Failure> {
    let mut counts = tables::ProfileCounts::default();
    for (pcn, dimension, value, c) in arg.unwrap_or_default() {
        let g = tables::ProfileGroup::parse(&dimension, &value).ok_or_else(|| {
            Failure::Argument(format!(
                "profile: '{dimension}={value}' names no profile group"
            ))
        })?;
        let [l0, e0, l1, e1, l2, e2, l3, e3]: [u64; 8] = c.try_into().map_err(|c: Vec<u64>| {
            Failure::Argument(format!(
                "profile: {} counts for {pcn} {dimension}={value}, expected 8",
                c.len()
            ))
        })?;
        if [(l0, e0), (l1, e1), (l2, e2), (l3, e3)]
            .iter()
            .any(|(l, e)| l > e)
        {
            return Err(Failure::Argument(format!(
                "profile: more listed than eligible for {pcn} {dimension}={value}"
            )));
        }
        let mut one = tables::ProfileCounts::default();
        one.rows
            .insert((pcn, g), [[l0, e0], [l1, e1], [l2, e2], [l3, e3]]);
        // Rows with the same labels (from different partitions) add up.
        counts.add(&one);
    }
    Ok(counts)
}

/// A frame from imported record batches (buffers shared): each column is the batches' arrays
/// as chunks.
fn frame_of(batches: ArrowTable) -> Result<DataFrame, Failure> {
    Ok(strata::input::from_batches(batches)?)
}

/// The bytes of an Arrow table written by strata's own writer for `format` (`csv`, `parquet`,
/// or `scores`: Parquet in the binary's row groups for the scores file): how the Spark job writes
/// `scores.parquet` and `rejects.csv` exactly as the binary does, from rows put together across
/// partitions.
#[pyfunction]
fn encode_table<'py>(
    py: Python<'py>,
    table: &Bound<'py, PyAny>,
    format: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let writer: Option<&dyn TableWriter> = match format {
        "csv" => Some(&output::csv::Csv::PLAIN),
        "parquet" => Some(&output::parquet::Parquet),
        "scores" => None,
        other => {
            return Err(Failure::Argument(format!(
                "format: '{other}' is not csv, parquet or scores"
            ))
            .into())
        }
    };
    let batches = import_stream(table, "table")?;
    let bytes = py.detach(move || -> Result<Vec<u8>, Failure> {
        let mut df = frame_of(batches)?;
        match writer {
            Some(w) => encode(w, &mut df),
            // The scores file in the binary's row groups.
            None => {
                let mut bytes = Vec::new();
                output::parquet::encode_batched(
                    &mut bytes,
                    std::path::Path::new("scores.parquet"),
                    df.height(),
                    output::SCORES_BATCH,
                    |r| Ok(df.slice(r.start as i64, r.len())),
                )?;
                Ok(bytes)
            }
        }
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// For each raw (code system, code) pair as the events file writes it, whether it names a
/// well-formed code that nothing strata computes reads, with the models folder `models` (else
/// `$STRATA_MODELS`, else the package's): `strata::definitions::Definitions::unread`. The Spark
/// job leaves such rows out before its shuffle, when it is sure the library would admit them.
#[pyfunction]
#[pyo3(signature = (pairs, models=None))]
fn unread_codes(pairs: Vec<(String, String)>, models: Option<PathBuf>) -> PyResult<Vec<bool>> {
    let defs =
        strata::definitions::Definitions::load(&models_dir(models)?).map_err(Failure::from)?;
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(s, c)| (s.as_str(), c.as_str()))
        .collect();
    Ok(defs.unread(&refs))
}

/// Each PCN's file path without extension, relative to the run folder (`lists/<PCN>/<PCN>`),
/// for PCN codes given in code order: the binary's names, clashing clean-ups numbered `~2`, `~3`.
#[pyfunction]
fn pcn_files(pcns: Vec<String>) -> Vec<String> {
    output::pcn_stems(&pcns)
        .iter()
        .map(|s| output::pcn_file(s))
        .collect()
}

/// The embedded models folder (written out on first use), or the one `$STRATA_MODELS` names.
#[pyfunction]
fn default_models() -> PyResult<String> {
    Ok(models_dir(None)?.display().to_string())
}

/// The extension module.
#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    // The counts per PCN of the population-health indicators (the Spark job's result rows
    // are this wide).
    m.add("INDICATOR_WIDTH", indicators::WIDTH)?;
    m.add_function(wrap_pyfunction!(protect_tables, m)?)?;
    m.add_function(wrap_pyfunction!(protect_run, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_settings, m)?)?;
    m.add_function(wrap_pyfunction!(protect, m)?)?;
    m.add_function(wrap_pyfunction!(previous_in_root, m)?)?;
    m.add_function(wrap_pyfunction!(read_programmes, m)?)?;
    m.add_function(wrap_pyfunction!(finish, m)?)?;
    m.add_function(wrap_pyfunction!(read_columns, m)?)?;
    m.add_function(wrap_pyfunction!(duplicate_pseudonyms, m)?)?;
    m.add("AGGREGATE_TABLES", output::AGGREGATE_TABLES.to_vec())?;
    m.add_class::<RunLog>()?;
    m.add_class::<Protected>()?;
    m.add_function(wrap_pyfunction!(pcn_files, m)?)?;
    m.add_function(wrap_pyfunction!(unread_codes, m)?)?;
    m.add_function(wrap_pyfunction!(encode_table, m)?)?;
    m.add_function(wrap_pyfunction!(default_models, m)?)?;
    m.add_function(wrap_pyfunction!(read_previous, m)?)?;
    m.add_class::<PreviousRun>()?;
    m.add("PreviousRunError", m.py().get_type::<PreviousRunError>())?;
    m.add_class::<ArrowStream>()?;
    m.add_class::<Scoring>()?;
    m.add_class::<Records>()?;
    m.add(
        "InvalidCohortError",
        m.py().get_type::<InvalidCohortError>(),
    )?;
    m.add("ModelsError", m.py().get_type::<ModelsError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
