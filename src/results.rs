//! The per-patient results of a run: what the per-patient stages (`features`, `scores`,
//! `population`) hand to the cohort-wide ones (`lists`, `tables`, `output`).
//!
//! Pipeline position: between the two halves, `scores` + `population` -> **results** ->
//! `lists`, `tables`, `output`. It lives on its own rather than in `run` (which builds it) so
//! that the stages reading it do not depend on the module that wires them together. One vector
//! per field, in patient order; a new per-patient result is a new field here.

use crate::codes::CodeSystem;
use crate::features::{Activity, Features};
use crate::population::Status;
use crate::scores::Scores;

/// Per-patient results of a run, in patient order.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Features.
    pub features: Vec<Features>,
    /// Hospital activity for the prediction models.
    pub activity: Vec<Activity>,
    /// Scores.
    pub scores: Vec<Scores>,
    /// Age at the as-of date.
    pub ages: Vec<i32>,
    /// Status at the as-of date.
    pub status: Vec<Status>,
    /// Distinct codes of the cohort no code list uses, per system.
    pub unused_codes: Vec<(CodeSystem, u64)>,
    /// Whether the cohort's events hold care home residence codes (then a model card trained
    /// on it names `care_home` as dated, not a snapshot). The feature itself is per patient: a
    /// residence code on or before the date, else, for a patient with none at all, the
    /// patients file's flag.
    pub care_home_coded: bool,
}
