//! Reading `patients.parquet` (or its in-memory frame): every patient row checked, practices,
//! PCNs and ethnic groups interned, patients sorted by pseudonym.
//!
//! Pipeline position: part of the first stage, `input`; the patient index built from its result
//! ([`super::layout::PatientIndex`]) is what events and encounters are joined to.

use std::collections::HashMap;

use polars::prelude::*;
use rayon::prelude::*;

use super::checker::Checker;
use super::contract::parse_sex;
use super::frame::{bool_col, day_col, int_col, polars_err, text_col, Table};
use super::LoadOptions;
use crate::cohort::{Patients, Sex};
use crate::date;
use crate::privacy::is_nhs_number;
use crate::report::{FileCounts, Severity};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Check and lay out the patients table; `None` when any row is in error.
pub(crate) fn read_patients(t: &Table, opts: &LoadOptions, ck: &mut Checker) -> Option<Patients> {
    let name = t.name;
    let df = &t.df;
    let n = df.height();
    ck.files.push(FileCounts {
        file: name.into(),
        rows: n as u64,
        rejected: 0,
    });
    if n == 0 {
        ck.file_error(name, None, "has no rows: a cohort needs patients".into());
        return None;
    }
    let has = |c: &str| t.present.contains(&c);
    let cols = (|| -> PolarsResult<_> {
        Ok((
            text_col(df, "patient_id")?,
            day_col(df, "birth_date")?,
            text_col(df, "sex")?,
            text_col(df, "practice_code")?,
            text_col(df, "pcn_code")?,
            if has("imd_decile") {
                Some(int_col(df, "imd_decile")?)
            } else {
                None
            },
            if has("ethnicity_group") {
                Some(text_col(df, "ethnicity_group")?)
            } else {
                None
            },
            if has("care_home") {
                Some(bool_col(df, "care_home")?)
            } else {
                None
            },
            if has("death_date") {
                Some(day_col(df, "death_date")?)
            } else {
                None
            },
            if has("registration_start") {
                Some(day_col(df, "registration_start")?)
            } else {
                None
            },
            if has("registration_end") {
                Some(day_col(df, "registration_end")?)
            } else {
                None
            },
        ))
    })();
    let (pid, birth, sex, practice, pcn, imd, eth, care, death, reg_start, reg_end) = match cols {
        Ok(c) => c,
        Err(e) => {
            polars_err(ck, name, e);
            return None;
        }
    };
    let before = ck.problems.len();
    let err = Severity::Error;
    let mut bad: Vec<Vec<u64>> = vec![Vec::new(); 12];
    let (earliest, today) = (date::earliest(), opts.today);
    let mut p = Patients::default();
    let mut ids: Vec<&str> = Vec::with_capacity(n);
    for (i, v) in pid.iter().enumerate() {
        let row = i as u64 + 1;
        let s = v.map(str::trim).unwrap_or("");
        if s.is_empty() {
            bad[0].push(row);
        } else if s.len() > 128 {
            bad[1].push(row);
        } else if !opts.allow_identifiers && is_nhs_number(s) {
            bad[2].push(row);
        }
        ids.push(s);
    }
    for (i, v) in birth.iter().enumerate() {
        let row = i as u64 + 1;
        match v {
            None => bad[3].push(row),
            Some(d) if d < earliest || d > today => bad[4].push(row),
            Some(d) => {
                if !opts.allow_identifiers && date::civil(d).2 != 1 {
                    bad[5].push(row);
                }
            }
        }
        p.birth.push(v.unwrap_or(0));
    }
    for (i, v) in sex.iter().enumerate() {
        let s = parse_sex(v).unwrap_or_else(|| {
            bad[6].push(i as u64 + 1);
            Sex::U
        });
        p.sex.push(s);
    }
    let (practice, practices) = intern_column(&practice, None, &mut bad[7]);
    let (pcn, pcns) = intern_column(&pcn, None, &mut bad[8]);
    match imd {
        Some(imd) => {
            for (i, v) in imd.iter().enumerate() {
                match v {
                    None => p.imd_decile.push(0),
                    Some(d) if (1..=10).contains(&d) => p.imd_decile.push(d as u8),
                    Some(_) => {
                        bad[9].push(i as u64 + 1);
                        p.imd_decile.push(0);
                    }
                }
            }
        }
        None => p.imd_decile = vec![0; n],
    }
    let (ethnicity, ethnicities) = match eth {
        Some(eth) => intern_column(&eth, Some("Unknown"), &mut Vec::new()),
        None => (vec![0; n], vec!["Unknown".to_string()]),
    };
    p.care_home = match care {
        Some(c) => c.iter().map(|v| v.unwrap_or(false)).collect(),
        None => vec![false; n],
    };
    match death {
        Some(death) => {
            for (i, v) in death.iter().enumerate() {
                match v {
                    None => p.death.push(i32::MAX),
                    Some(d) if d < earliest || d > today || d < p.birth[i] => {
                        bad[10].push(i as u64 + 1);
                        p.death.push(i32::MAX);
                    }
                    Some(d) => p.death.push(d),
                }
            }
        }
        None => p.death = vec![i32::MAX; n],
    }
    // Registration: unknown start is "always", unknown end "still registered".
    p.registered_from = match reg_start {
        Some(c) => c.iter().map(|v| v.unwrap_or(i32::MIN)).collect(),
        None => vec![i32::MIN; n],
    };
    p.registered_to = match reg_end {
        Some(c) => c.iter().map(|v| v.unwrap_or(i32::MAX)).collect(),
        None => vec![i32::MAX; n],
    };
    // Patients in pseudonym order; duplicates sit side by side.
    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by(|&a, &b| ids[a].cmp(ids[b]).then(a.cmp(&b)));
    for w in order.windows(2) {
        if ids[w[0]] == ids[w[1]] && !ids[w[0]].is_empty() {
            bad[11].push(w[1] as u64 + 1);
        }
    }
    bad[11].sort_unstable();
    let msgs: [(&str, &str); 12] = [
        ("patient_id", "null or empty pseudonym"),
        ("patient_id", "pseudonym longer than 128 characters"),
        ("patient_id", "value is a valid NHS number: strata takes pseudonyms only (pass --allow-identifiers if these are not NHS numbers)"),
        ("birth_date", "null birth date"),
        ("birth_date", "birth date before 1900 or after today"),
        ("birth_date", "birth date more precise than the month (day is not the 1st): exact dates of birth identify people; truncate to the month or pass --allow-identifiers"),
        ("sex", "sex is not F, M or U"),
        ("practice_code", "null or empty practice code"),
        ("pcn_code", "null or empty PCN code"),
        ("imd_decile", "IMD decile outside 1-10"),
        ("death_date", "death date before 1900, after today or before birth"),
        ("patient_id", super::contract::DUPLICATE_PSEUDONYM),
    ];
    for (k, (col, msg)) in msgs.iter().enumerate() {
        ck.rows(err, name, col, msg, &bad[k]);
    }
    if ck.problems.len() > before {
        return None;
    }
    p.id = order.par_iter().map(|&i| ids[i].to_string()).collect();
    p.birth = permute(&p.birth, &order);
    p.sex = permute(&p.sex, &order);
    p.imd_decile = permute(&p.imd_decile, &order);
    p.care_home = permute(&p.care_home, &order);
    p.death = permute(&p.death, &order);
    p.registered_from = permute(&p.registered_from, &order);
    p.registered_to = permute(&p.registered_to, &order);
    p.practice = permute(&practice, &order);
    p.practices = practices;
    p.pcn = permute(&pcn, &order);
    p.pcns = pcns;
    p.ethnicity = permute(&ethnicity, &order);
    p.ethnicities = ethnicities;
    Some(p)
}

/// Intern a text column to indices into its sorted distinct (trimmed) values. Null or empty
/// values become `missing` when given, else their rows are recorded in `bad`.
fn intern_column(
    ca: &StringChunked,
    missing: Option<&str>,
    bad: &mut Vec<u64>,
) -> (Vec<u32>, Vec<String>) {
    let mut first: FastMap<&str, u32> = FastMap::default();
    let mut raw_ids = Vec::with_capacity(ca.len());
    let mut distinct: Vec<&str> = Vec::new();
    for (i, v) in ca.iter().enumerate() {
        let s = match v.map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => match missing {
                Some(m) => m,
                None => {
                    bad.push(i as u64 + 1);
                    ""
                }
            },
        };
        let next = distinct.len() as u32;
        let id = *first.entry(s).or_insert(next);
        if id == next {
            distinct.push(s);
        }
        raw_ids.push(id);
    }
    let mut sorted: Vec<(&str, u32)> = distinct.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    let mut remap = vec![0u32; sorted.len()];
    for (rank, (_, old)) in sorted.iter().enumerate() {
        remap[*old as usize] = rank as u32;
    }
    (
        raw_ids.into_iter().map(|i| remap[i as usize]).collect(),
        sorted
            .into_iter()
            .map(|(s, _)| s.chars().take(64).collect())
            .collect(),
    )
}

fn permute<T: Copy>(v: &[T], order: &[usize]) -> Vec<T> {
    order.iter().map(|&i| v[i]).collect()
}
