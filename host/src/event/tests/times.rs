//! Times: fractions, the calendar, `24:00` and leap seconds, offsets and
//! zones, through [`parse_timestamp`] and [`parse_zone`].

use super::*;

#[test]
fn fractional_seconds_of_0_to_9_digits() {
    let base = 1_704_103_200_000; // 2024-01-01T10:00:00Z
    let cases = [
        ("", 0),
        (".", 0),
        (".1", 100),
        (".12", 120),
        (".123", 123),
        (".1239", 123),
        (".12399", 123),
        (".123999", 123),
        (".1239999", 123),
        (".12399999", 123),
        (".999999999", 999),
        (".000999999", 0),
    ];
    for (fraction, ms) in cases {
        assert_eq!(
            time(&format!("2024-01-01T10:00:00{fraction}")),
            Ok(base + ms),
            "{fraction}"
        );
        assert_eq!(
            time(&format!("2024-01-01T10:00:00{fraction}Z")),
            Ok(base + ms),
            "{fraction}"
        );
    }
    assert_eq!(time("2024-01-01T10:00:00.1234567891"), Err(()));
    assert_eq!(time("2024-01-01T10:00:00.0000000000"), Err(()));
    assert_eq!(time("2024-01-01T10:00:00.12a"), Err(()));
    assert_eq!(time("2024-01-01T10:00:00.."), Err(()));
    // Floor, not truncation towards zero, before 1970.
    assert_eq!(time("1969-12-31T23:59:59.9999"), Ok(-1));
    assert_eq!(time("1969-12-31T23:59:59.0001"), Ok(-1000));
}

#[test]
fn calendar_is_strict_with_right_leap_years() {
    assert!(time("2024-02-29T00:00:00").is_ok());
    assert!(time("2000-02-29T00:00:00").is_ok());
    assert!(time("1600-02-29T00:00:00").is_ok());
    assert!(time("0000-02-29T00:00:00").is_ok());
    assert_eq!(time("2023-02-29T00:00:00"), Err(()));
    assert_eq!(time("1900-02-29T00:00:00"), Err(()));
    assert_eq!(time("2100-02-29T00:00:00"), Err(()));
    assert_eq!(time("2024-02-30T00:00:00"), Err(()));
    assert_eq!(time("2024-04-31T00:00:00"), Err(()));
    assert_eq!(time("2024-00-10T00:00:00"), Err(()));
    assert_eq!(time("2024-13-10T00:00:00"), Err(()));
    assert_eq!(time("2024-01-00T00:00:00"), Err(()));
    assert_eq!(time("2024-01-32T00:00:00"), Err(()));
    assert_eq!(
        time("2024-03-01T00:00:00"),
        Ok(time("2024-02-29T00:00:00").unwrap() + MS_PER_DAY)
    );
    assert_eq!(time("1970-01-01T00:00:00"), Ok(0));
    assert_eq!(time("0000-01-01T00:00:00"), Ok(-62_167_219_200_000));
    assert_eq!(time("9999-12-31T23:59:59.999"), Ok(253_402_300_799_999));
}

#[test]
fn a_remembered_date_still_checks_the_time_and_reads_its_own_day() {
    let day = time("2024-02-29T00:00:00").unwrap();
    assert_eq!(time("2024-02-29T23:59:59"), Ok(day + MS_PER_DAY - 1000));
    assert_eq!(time("2024-02-29T25:00:00"), Err(()));
    assert_eq!(time("2024-02-29T24:00:00"), Ok(day + MS_PER_DAY));
    assert_eq!(time("2024-02-28T00:00:00"), Ok(day - MS_PER_DAY));
    // A date refused once is refused again (only valid dates are kept).
    assert_eq!(time("2023-02-29T00:00:00"), Err(()));
    assert_eq!(time("2023-02-29T00:00:00"), Err(()));
    assert_eq!(time("2024-02-29T00:00:00"), Ok(day));
}

#[test]
fn midnight_24_and_leap_second() {
    let midnight = 1_704_153_600_000; // 2024-01-02T00:00:00Z
    assert_eq!(time("2024-01-01T24:00:00"), Ok(midnight));
    assert_eq!(time("2024-01-01T24:00:00."), Ok(midnight));
    assert_eq!(time("2024-01-01T24:00:00.000000000"), Ok(midnight));
    assert_eq!(time("2024-12-31T24:00:00"), Ok(time("2025-01-01T00:00:00").unwrap()));
    assert_eq!(time("2024-02-29T24:00:00"), Ok(time("2024-03-01T00:00:00").unwrap()));
    assert_eq!(time("2024-01-01T24:00:00+09:00"), Ok(midnight - JST));
    assert_eq!(time("2024-01-01T24:00:00.001"), Err(()));
    assert_eq!(time("2024-01-01T24:01:00"), Err(()));
    assert_eq!(time("2024-01-01T24:00:01"), Err(()));
    assert_eq!(time("2024-01-01T25:00:00"), Err(()));
    assert_eq!(time("2024-02-30T24:00:00"), Err(()));

    assert_eq!(time("2024-01-01T23:59:60"), Ok(midnight - 1000));
    assert_eq!(time("2024-01-01T23:59:60.5"), Ok(midnight - 500));
    assert_eq!(time("2024-01-01T23:59:60.999999999Z"), Ok(midnight - 1));
    assert_eq!(time("2024-01-01T23:58:60"), Err(()));
    assert_eq!(time("2024-01-01T10:59:60"), Err(()));
    assert_eq!(time("2024-01-01T23:59:61"), Err(()));
    assert_eq!(time("2024-01-01T23:60:00"), Err(()));
}

#[test]
fn offsets_win_over_the_zone() {
    let utc = 1_704_103_200_000; // 2024-01-01T10:00:00Z
    for (suffix, offset) in [
        ("Z", 0),
        ("z", 0),
        ("+00:00", 0),
        ("-00:00", 0),
        ("+09:00", JST),
        ("+0900", JST),
        ("+09", JST),
        ("-05:30", -(5 * MS_PER_HOUR + 1_800_000)),
        ("-0530", -(5 * MS_PER_HOUR + 1_800_000)),
        ("+18:00", 18 * MS_PER_HOUR),
        ("-18:00", -18 * MS_PER_HOUR),
    ] {
        let s = format!("2024-01-01T10:00:00{suffix}");
        assert_eq!(parse_timestamp(s.as_bytes(), 12_345), Ok(utc - offset), "{s}");
    }
    assert_eq!(parse_timestamp(b"2024-01-01T10:00:00", JST), Ok(utc - JST));
    assert_eq!(parse_timestamp(b"2024-01-01t10:00:00", -JST), Ok(utc + JST));
    for bad in [
        "2024-01-01 10:00:00",
        "2024-01-01X10:00:00",
        "2024-01-01T10:00:00 ",
        " 2024-01-01T10:00:00",
        "2024-01-01T10:00:00+18:01",
        "2024-01-01T10:00:00+19:00",
        "2024-01-01T10:00:00+09:60",
        "2024-01-01T10:00:00+9:00",
        "2024-01-01T10:00:00+09:0",
        "2024-01-01T10:00:00+09:00:00",
        "2024-01-01T10:00:00+09:00Z",
        "2024-01-01T10:00:00ZZ",
        "2024-01-01T10:00:00UTC",
        "2024-01-01T10:00:00[UTC]",
        "2024-01-01T10:00:00+",
        "2024-01-01T10:00",
        "2024-01-01",
        "2024-1-01T10:00:00",
        "24-01-01T10:00:00",
        "+2024-01-01T10:00:00",
        "-2024-01-01T10:00:00",
        "2024-01-01T1:00:00.0",
        "2024-01-01T10:0a:00",
        "２０２４-01-01T10:00:00",
        "",
    ] {
        assert_eq!(time(bad), Err(()), "{bad:?}");
    }
    // Via the parser: a space instead of `T`.
    let line = line_with("event_time", Some("\"2024-01-01 10:00:00\""));
    assert_eq!(reason(&line), BadReason::BadTime);
}

#[test]
fn zones() {
    for (s, ms) in [
        ("UTC", 0),
        ("utc", 0),
        ("GMT", 0),
        ("Z", 0),
        ("+09:00", JST),
        ("+0900", JST),
        ("+09", JST),
        ("UTC+09:00", JST),
        ("-05:30", -(5 * MS_PER_HOUR + 1_800_000)),
        ("-18:00", -MAX_OFFSET_MS),
    ] {
        assert_eq!(parse_zone(s), Ok(ms), "{s}");
    }
    for s in [
        "",
        "Asia/Tokyo",
        "+19:00",
        "09:00",
        "+9",
        "UTC+",
        "+09:00 ",
        "JST",
        "ZZ",
    ] {
        let err = parse_zone(s).expect_err(s);
        assert!(err.contains(&format!("{s:?}")) && err.contains("+09:00"), "{err}");
    }
}
