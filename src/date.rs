//! Dates as days since 1970-01-01 (`i32`), the one representation used from `cohort` onwards
//! (it is also Arrow's and Parquet's `Date32`). Calendar arithmetic goes through chrono here,
//! except [`civil`], integer arithmetic for the hot path (ages).

use chrono::{Months, NaiveDate};

/// 1970-01-01.
pub fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid constant date")
}

/// Days since 1970-01-01 of a date.
pub fn to_days(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

/// The date of a day number.
pub fn from_days(days: i32) -> NaiveDate {
    epoch() + chrono::Duration::days(days as i64)
}

/// Parse `YYYY-MM-DD` to days.
pub fn parse_days(s: &str) -> Option<i32> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .map(to_days)
}

/// ISO text of a day number.
pub fn format_days(days: i32) -> String {
    from_days(days).format("%Y-%m-%d").to_string()
}

/// Serialize a day number as its ISO text (for `#[serde(serialize_with)]`).
pub fn serialize_days<S: serde::Serializer>(days: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_days(*days))
}

/// The first day of "the `months` calendar months ending on `as_of`", the one definition of a
/// look-back window strata uses (list columns, model features, indicators, programme rules):
/// the day after `as_of` minus `months` months, so the window is `window_start..=as_of` (12
/// months: 365 days, 366 across 29 February) and windows of consecutive years tile without
/// overlap.
pub fn window_start(as_of: i32, months: u32) -> i32 {
    minus_months(as_of, months) + 1
}

/// The same calendar day `months` months earlier (clamped to the month's last day: 29 Feb minus
/// 12 months is 28 Feb).
pub fn minus_months(days: i32, months: u32) -> i32 {
    let d = from_days(days);
    to_days(d.checked_sub_months(Months::new(months)).unwrap_or(d))
}

/// The (year, month, day) of a day number, by integer arithmetic alone (H. Hinnant's
/// `civil_from_days`, proleptic Gregorian, as chrono): called once per patient for an age (the date of the age is split once, [`age_on`]), where
/// going through `NaiveDate` cost more than the rest of the age calculation.
pub fn civil(days: i32) -> (i32, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// Whole years between a birth date and a date (the age on that date).
pub fn age_years(birth: i32, on: i32) -> i32 {
    age_on(birth, civil(on))
}

/// [`age_years`] on a date already split by [`civil`]: for a whole cohort's ages on one date,
/// which is then split once.
pub fn age_on(birth: i32, (oy, om, od): (i32, u32, u32)) -> i32 {
    let (by, bm, bd) = civil(birth);
    let mut age = oy - by;
    if (om, od) < (bm, bd) {
        age -= 1;
    }
    age
}

/// Today in UTC, as days.
pub fn today() -> i32 {
    to_days(chrono::Utc::now().date_naive())
}

/// 1900-01-01: the earliest date accepted in a cohort.
pub fn earliest() -> i32 {
    to_days(NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid constant date"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn round_trip_and_months() {
        let d = parse_days("2025-04-01").unwrap();
        assert_eq!(format_days(d), "2025-04-01");
        assert_eq!(format_days(minus_months(d, 24)), "2023-04-01");
        assert_eq!(format_days(minus_months(d, 12)), "2024-04-01");
        let leap = parse_days("2024-02-29").unwrap();
        assert_eq!(format_days(minus_months(leap, 12)), "2023-02-28");
        assert_eq!(parse_days("1970-01-01"), Some(0));
    }

    #[test]
    fn civil_equals_chrono_from_1800_to_2200() {
        let (lo, hi) = (
            to_days(NaiveDate::from_ymd_opt(1800, 1, 1).unwrap()),
            to_days(NaiveDate::from_ymd_opt(2200, 12, 31).unwrap()),
        );
        for days in lo..=hi {
            let d = from_days(days);
            assert_eq!(civil(days), (d.year(), d.month(), d.day()), "day {days}");
        }
    }

    #[test]
    fn age_turns_on_the_birthday() {
        let b = parse_days("1960-04-01").unwrap();
        assert_eq!(age_years(b, parse_days("2025-03-31").unwrap()), 64);
        assert_eq!(age_years(b, parse_days("2025-04-01").unwrap()), 65);
        // Born on 29 February: a year older on 1 March in a common year.
        let leap = parse_days("2000-02-29").unwrap();
        assert_eq!(age_years(leap, parse_days("2025-02-28").unwrap()), 24);
        assert_eq!(age_years(leap, parse_days("2025-03-01").unwrap()), 25);
        assert_eq!(age_years(leap, parse_days("2028-02-29").unwrap()), 28);
    }
}
