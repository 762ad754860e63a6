//! Unit tests of schedule validation: every bad field reported with its path.

use super::*;

fn weekly(day: &str, start: &str, end: &str) -> WeeklyIntervalInput {
    WeeklyIntervalInput {
        weekday: day.into(),
        start: start.into(),
        end: end.into(),
    }
}

fn iv(start: &str, end: &str) -> LocalIntervalInput {
    LocalIntervalInput {
        start: start.into(),
        end: end.into(),
    }
}

fn over(date: &str, intervals: Vec<LocalIntervalInput>) -> DateOverrideInput {
    DateOverrideInput {
        date: date.into(),
        intervals,
    }
}

fn base() -> ScheduleInput {
    ScheduleInput {
        timezone: "Europe/Berlin".into(),
        weekly: vec![weekly("mon", "09:00", "17:00")],
        ..ScheduleInput::default()
    }
}

/// The field paths of the errors, in order.
fn fields(input: ScheduleInput) -> Vec<String> {
    match input.validate() {
        Ok(_) => vec![],
        Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn valid_input_builds_schedule() {
    let s = base().validate().unwrap();
    assert_eq!(s.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(s.weekly.len(), 1);
    assert_eq!(s.weekly[0].weekday, chrono::Weekday::Mon);
    assert_eq!((s.buffer_before_minutes, s.buffer_after_minutes), (0, 0));
    assert_eq!(
        (s.min_notice_minutes, s.horizon_days, s.slot_step_minutes),
        (0, 60, 30)
    );
}

#[test]
fn api_example_deserializes_and_round_trips() {
    let body = r#"{"timezone": "Europe/Berlin",
         "weekly": [{"weekday": "mon", "start": "09:00", "end": "17:00"},
                    {"weekday": "fri", "start": "22:00", "end": "24:00"}],
         "overrides": [{"date": "2027-03-10",
                        "intervals": [{"start": "10:00", "end": "12:00"}]}],
         "buffer_before_minutes": 0, "buffer_after_minutes": 15,
         "min_notice_minutes": 120, "horizon_days": 60, "slot_step_minutes": 30}"#;
    let s: Schedule = serde_json::from_str(body).unwrap();
    assert_eq!(s.buffer_after_minutes, 15);
    assert_eq!(
        s.overrides[0].date,
        NaiveDate::from_ymd_opt(2027, 3, 10).unwrap()
    );
    let json = serde_json::to_value(&s).unwrap();
    let expected: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json, expected);
    assert_eq!(ScheduleInput::from(&s).validate().unwrap(), s);
}

#[test]
fn deserialize_rejects_invalid_and_unknown() {
    let bad = r#"{"timezone": "Nowhere/Town", "weekly": []}"#;
    let err = serde_json::from_str::<Schedule>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("timezone"), "{err}");
    let unknown = r#"{"timezone": "UTC", "weekly": [], "colour": "red"}"#;
    assert!(serde_json::from_str::<ScheduleInput>(unknown).is_err());
    let unknown_nested = r#"{"timezone": "UTC",
        "weekly": [{"weekday": "mon", "start": "09:00", "end": "10:00", "x": 1}]}"#;
    assert!(serde_json::from_str::<ScheduleInput>(unknown_nested).is_err());
    // Defaults when absent.
    let minimal: ScheduleInput = serde_json::from_str(r#"{"timezone": "UTC"}"#).unwrap();
    assert_eq!(minimal, ScheduleInput::default());
}

#[test]
fn unknown_timezone() {
    for tz in ["", "Mars/Olympus", "europe/berlin", "Europe/Berlin "] {
        let input = ScheduleInput {
            timezone: tz.into(),
            ..base()
        };
        assert_eq!(fields(input), ["timezone"], "{tz:?}");
    }
    for tz in [
        "UTC",
        "Asia/Kathmandu",
        "Pacific/Apia",
        "Australia/Lord_Howe",
    ] {
        let input = ScheduleInput {
            timezone: tz.into(),
            ..base()
        };
        assert!(fields(input).is_empty());
    }
}

#[test]
fn bad_weekday() {
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "09:00", "10:00"),
            weekly("Tue", "09:00", "10:00"),
        ],
        ..base()
    };
    assert_eq!(fields(input), ["weekly[1].weekday"]);
}

#[test]
fn time_format_is_exact() {
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "9:00", "10:00"),
            weekly("tue", "09:00", "10:0"),
            weekly("wed", "24:00", "24:00"),
            weekly("thu", "09:60", "25:00"),
            weekly("fri", "00:00", "24:00"),
        ],
        ..base()
    };
    assert_eq!(
        fields(input),
        [
            "weekly[0].start",
            "weekly[1].end",
            "weekly[2].start",
            "weekly[3].start",
            "weekly[3].end"
        ]
    );
}

#[test]
fn start_must_be_before_end() {
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "10:00", "10:00"),
            weekly("tue", "10:00", "09:00"),
            weekly("wed", "10:00", "00:00"),
        ],
        ..base()
    };
    assert_eq!(
        fields(input),
        ["weekly[0].end", "weekly[1].end", "weekly[2].end"]
    );
}

#[test]
fn weekly_intervals_of_one_day_must_not_overlap() {
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "09:00", "12:00"),
            weekly("mon", "12:00", "14:00"), // touching: fine
            weekly("tue", "11:00", "13:00"), // other day: fine
            weekly("mon", "13:00", "15:00"), // starts inside weekly[1]
            weekly("mon", "08:00", "09:30"), // ends inside weekly[0]
        ],
        ..base()
    };
    let Err(Error::Invalid(errors)) = input.validate() else {
        panic!("expected errors")
    };
    let got: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(got, ["weekly[4].end", "weekly[3].start"]);
    assert!(
        errors[1].message.contains("weekly[1]"),
        "{}",
        errors[1].message
    );
}

#[test]
fn containing_and_identical_intervals_overlap() {
    let input = ScheduleInput {
        weekly: vec![
            weekly("sat", "10:00", "11:00"),
            weekly("sat", "09:00", "12:00"),
            weekly("sun", "09:00", "12:00"),
            weekly("sun", "09:00", "12:00"),
        ],
        ..base()
    };
    assert_eq!(fields(input), ["weekly[1].end", "weekly[3].start"]);
}

/// Which interval of an overlapping pair is blamed, and at which end, is part of the
/// message a user acts on: the one later in the input, at a time inside the other.
#[test]
fn overlap_blames_the_later_interval_at_a_time_inside_the_other() {
    // Both start at 09:00; the shorter one is later in the input: its start is inside
    // the other.
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "09:00", "12:00"),
            weekly("mon", "09:00", "10:00"),
        ],
        ..base()
    };
    assert_eq!(fields(input), ["weekly[1].start"]);
    // The same with the shorter one first in the input: the longer one, at its start.
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "09:00", "10:00"),
            weekly("mon", "09:00", "12:00"),
        ],
        ..base()
    };
    assert_eq!(fields(input), ["weekly[1].start"]);
    // Two intervals end together; a third starts inside both. It is reported against
    // the widest one seen first.
    let input = ScheduleInput {
        weekly: vec![
            weekly("mon", "09:00", "12:00"),
            weekly("mon", "10:00", "12:00"),
            weekly("mon", "11:00", "11:30"),
        ],
        ..base()
    };
    let Err(Error::Invalid(errors)) = input.validate() else {
        panic!("expected errors")
    };
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "weekly[1].start",
                "overlaps weekly[0] (mon 09:00-12:00); intervals of one day must not overlap"
            ),
            (
                "weekly[2].start",
                "overlaps weekly[0] (mon 09:00-12:00); intervals of one day must not overlap"
            ),
        ]
    );
}

#[test]
fn override_rules() {
    let input = ScheduleInput {
        overrides: vec![
            over(
                "2027-03-10",
                vec![iv("10:00", "12:00"), iv("11:00", "13:00")],
            ),
            over("2027-3-11", vec![]),
            over("2027-03-10", vec![]),
            over("2027-02-30", vec![iv("10:00", "09:00"), iv("x", "24:00")]),
            over("2027-03-12", vec![iv("00:00", "24:00")]),
        ],
        ..base()
    };
    assert_eq!(
        fields(input),
        [
            "overrides[0].intervals[1].start",
            "overrides[1].date",
            "overrides[2].date",
            "overrides[3].date",
            "overrides[3].intervals[0].end",
            "overrides[3].intervals[1].start",
        ]
    );
}

#[test]
fn strict_dates() {
    for bad in [
        "2027-03-1",
        "+2027-03-01",
        "27-03-01",
        "2027/03/01",
        "2027-13-01",
        " 2027-03-01",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
    assert_eq!(
        parse_date("2024-02-29"),
        NaiveDate::from_ymd_opt(2024, 2, 29)
    );
}

#[test]
fn numeric_ranges() {
    type Setter = fn(&mut ScheduleInput, i64);
    let cases: [(&str, Setter, i64, i64); 5] = [
        ("slot_step_minutes", |s, v| s.slot_step_minutes = v, 5, 1440),
        (
            "buffer_before_minutes",
            |s, v| s.buffer_before_minutes = v,
            0,
            1440,
        ),
        (
            "buffer_after_minutes",
            |s, v| s.buffer_after_minutes = v,
            0,
            1440,
        ),
        (
            "min_notice_minutes",
            |s, v| s.min_notice_minutes = v,
            0,
            525_600,
        ),
        ("horizon_days", |s, v| s.horizon_days = v, 1, 3660),
    ];
    for (field, set, lo, hi) in cases {
        for (value, ok) in [
            (lo - 1, false),
            (lo, true),
            (hi, true),
            (hi + 1, false),
            (i64::MIN, false),
            (i64::MAX, false),
        ] {
            let mut input = base();
            set(&mut input, value);
            let expected: Vec<String> = if ok { vec![] } else { vec![field.to_owned()] };
            assert_eq!(fields(input), expected, "{field} = {value}");
        }
    }
}

#[test]
fn count_limits() {
    let input = ScheduleInput {
        weekly: (0..101)
            .map(|i| {
                weekly(
                    "mon",
                    &format!("{:02}:{:02}", i / 6, (i % 6) * 10),
                    &format!("{:02}:{:02}", i / 6, (i % 6) * 10 + 5),
                )
            })
            .collect(),
        ..base()
    };
    assert_eq!(fields(input), ["weekly"]);
    let at_limit = ScheduleInput {
        weekly: (0..100)
            .map(|i| {
                weekly(
                    "mon",
                    &format!("{:02}:{:02}", i / 6, (i % 6) * 10),
                    &format!("{:02}:{:02}", i / 6, (i % 6) * 10 + 5),
                )
            })
            .collect(),
        ..base()
    };
    assert!(fields(at_limit).is_empty());
    let day = |i: i64| {
        (NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + chrono::Duration::days(i)).to_string()
    };
    let input = ScheduleInput {
        overrides: (0..1001).map(|i| over(&day(i), vec![])).collect(),
        ..base()
    };
    assert_eq!(fields(input), ["overrides"]);
    let input = ScheduleInput {
        overrides: (0..1000).map(|i| over(&day(i), vec![])).collect(),
        ..base()
    };
    assert!(fields(input).is_empty());
}

#[test]
fn collects_all_errors_at_once() {
    let input = ScheduleInput {
        timezone: "Nope".into(),
        weekly: vec![weekly("xyz", "09:00", "08:00")],
        overrides: vec![over("soon", vec![iv("25:00", "12:00")])],
        buffer_before_minutes: -1,
        buffer_after_minutes: 1441,
        min_notice_minutes: -5,
        horizon_days: 0,
        slot_step_minutes: 4,
    };
    assert_eq!(
        fields(input),
        [
            "timezone",
            "weekly[0].weekday",
            "weekly[0].end",
            "overrides[0].date",
            "overrides[0].intervals[0].start",
            "buffer_before_minutes",
            "buffer_after_minutes",
            "min_notice_minutes",
            "horizon_days",
            "slot_step_minutes",
        ]
    );
}
