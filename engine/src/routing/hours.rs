//! The rule file's clock: a fixed UTC offset and named business-hours
//! calendars. Everything is turned into plain integers when the file is
//! loaded, so that `time.*` and `hours.*` cost a few divisions at evaluation.

use chrono::NaiveDate;

use crate::Millis;

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Weekday names as rules write them, Monday first.
pub(crate) const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The timezone and calendars of one rule file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Schedule {
    /// Added to UTC to get the file's local time.
    pub(crate) offset_ms: i64,
    /// Indexed by `BoolExpr::Hours`.
    pub(crate) calendars: Vec<Calendar>,
}

/// One `[hours.<name>]` table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Calendar {
    pub(crate) name: String,
    /// Bit `i` set when weekday `i` (Monday = 0) is a working day.
    pub(crate) days: u8,
    /// Minutes after local midnight; open is inclusive, close exclusive.
    pub(crate) open_minute: u32,
    pub(crate) close_minute: u32,
    /// Holidays as days since 1970-01-01, sorted.
    pub(crate) closed_days: Vec<i64>,
}

/// A moment seen on the file's local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalTime {
    /// Days since 1970-01-01 in local time.
    pub(crate) day: i64,
    /// Monday = 0.
    pub(crate) weekday: usize,
    pub(crate) minute_of_day: u32,
}

impl Schedule {
    /// `at` on this schedule's local clock.
    pub(crate) fn local_time(&self, at: Millis) -> LocalTime {
        let local = at.saturating_add(self.offset_ms);
        let day = local.div_euclid(MS_PER_DAY);
        let ms_of_day = local.rem_euclid(MS_PER_DAY);
        LocalTime {
            day,
            // 1970-01-01 was a Thursday (index 3).
            weekday: (day + 3).rem_euclid(7) as usize,
            minute_of_day: (ms_of_day / MS_PER_MINUTE) as u32,
        }
    }

    /// `start` plus `duration` of calendar `index`'s open time: the clock
    /// stops outside its hours (closed days and holidays included). An
    /// index that does not exist counts every millisecond.
    pub(crate) fn add_open_time(&self, index: usize, start: Millis, duration: Millis) -> Millis {
        let Some(calendar) = self.calendars.get(index) else {
            return start.saturating_add(duration);
        };
        let mut remaining = duration.max(0);
        let mut at = start;
        // Eight years of days bound the walk (a calendar with holidays on
        // every working day would otherwise never open).
        for _ in 0..8 * 366 {
            let local = self.local_time(at);
            let midnight = local.day * MS_PER_DAY - self.offset_ms;
            let open = midnight + i64::from(calendar.open_minute) * MS_PER_MINUTE;
            let close = midnight + i64::from(calendar.close_minute) * MS_PER_MINUTE;
            let open_day = calendar.days & (1 << local.weekday) != 0
                && calendar.closed_days.binary_search(&local.day).is_err();
            if open_day && at < close {
                let from = at.max(open);
                if from.saturating_add(remaining) <= close {
                    return from + remaining;
                }
                remaining -= close - from;
            }
            at = midnight + MS_PER_DAY;
        }
        at.saturating_add(remaining)
    }

    /// Whether `time` is inside calendar `index`; false for an index that does not exist.
    pub(crate) fn is_open(&self, index: usize, time: LocalTime) -> bool {
        self.calendars
            .get(index)
            .is_some_and(|calendar| calendar.is_open(time))
    }
}

impl LocalTime {
    /// `time.hour`.
    pub(crate) fn hour(self) -> u32 {
        self.minute_of_day / 60
    }

    /// `time.weekday`.
    pub(crate) fn weekday_name(self) -> &'static str {
        WEEKDAYS[self.weekday % 7]
    }
}

impl Calendar {
    fn is_open(&self, time: LocalTime) -> bool {
        self.days & (1 << time.weekday) != 0
            && (self.open_minute..self.close_minute).contains(&time.minute_of_day)
            && self.closed_days.binary_search(&time.day).is_err()
    }
}

/// Parses `"+08:00"`, `"-05:30"`, `"Z"` or `"UTC"` into milliseconds east of UTC.
pub(crate) fn parse_timezone(text: &str) -> Result<i64, String> {
    if text == "Z" || text.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let error = || {
        format!(
            "invalid timezone `{text}`: use a fixed UTC offset such as \"+08:00\" or \"-05:00\""
        )
    };
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(error()),
    };
    let minutes = parse_hh_mm(rest).ok_or_else(error)?;
    if minutes > 14 * 60 {
        return Err(error());
    }
    Ok(sign * i64::from(minutes) * MS_PER_MINUTE)
}

/// Parses `"09:00"` (or `"24:00"`, for closing at midnight) into minutes after midnight.
pub(crate) fn parse_clock(text: &str) -> Result<u32, String> {
    parse_hh_mm(text)
        .filter(|&minutes| minutes <= 24 * 60)
        .ok_or_else(|| format!("invalid time `{text}`: use 24-hour HH:MM such as \"09:00\""))
}

fn parse_hh_mm(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    (minutes < 60).then_some(hours * 60 + minutes)
}

/// Parses `"mon"` … `"sun"` into Monday = 0 … Sunday = 6.
pub(crate) fn parse_weekday(text: &str) -> Result<usize, String> {
    WEEKDAYS
        .iter()
        .position(|day| day.eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("unknown day `{text}`: use mon, tue, wed, thu, fri, sat or sun"))
}

/// Parses `"2026-10-01"` into days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Result<i64, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a valid date");
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| (date - epoch).num_days())
        .map_err(|_| format!("invalid date `{text}`: use YYYY-MM-DD such as \"2026-10-01\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-02 00:00 UTC, a Monday.
    const MONDAY_UTC: Millis = 1_772_409_600_000;
    const HOUR: Millis = 3_600_000;

    fn schedule(offset: &str) -> Schedule {
        Schedule {
            offset_ms: parse_timezone(offset).unwrap(),
            calendars: vec![Calendar {
                name: "support".to_owned(),
                days: 0b001_1111,
                open_minute: parse_clock("09:00").unwrap(),
                close_minute: parse_clock("18:00").unwrap(),
                closed_days: vec![parse_date("2026-03-04").unwrap()],
            }],
        }
    }

    fn check(offset: &str, at: Millis, expected: (&str, u32, bool)) {
        let schedule = schedule(offset);
        let local = schedule.local_time(at);
        let got = (
            local.weekday_name(),
            local.hour(),
            schedule.is_open(0, local),
        );
        assert_eq!(got, expected, "offset {offset}, at {at}");
    }

    #[test]
    fn local_time_and_business_hours() {
        check("Z", MONDAY_UTC, ("mon", 0, false));
        check("Z", MONDAY_UTC + 9 * HOUR, ("mon", 9, true));
        check("Z", MONDAY_UTC + 18 * HOUR - 1, ("mon", 17, true));
        check("Z", MONDAY_UTC + 18 * HOUR, ("mon", 18, false));
        // 01:00 UTC Monday is 09:00 in +08:00.
        check("+08:00", MONDAY_UTC + HOUR, ("mon", 9, true));
        // 23:00 UTC Sunday is 07:00 Monday in +08:00: before opening.
        check("+08:00", MONDAY_UTC - HOUR, ("mon", 7, false));
        check("-05:00", MONDAY_UTC + 14 * HOUR, ("mon", 9, true));
        // Saturday and Sunday are not working days.
        check(
            "Z",
            MONDAY_UTC + 5 * 24 * HOUR + 10 * HOUR,
            ("sat", 10, false),
        );
        check(
            "Z",
            MONDAY_UTC + 6 * 24 * HOUR + 10 * HOUR,
            ("sun", 10, false),
        );
        // Wednesday 2026-03-04 is a holiday.
        check(
            "Z",
            MONDAY_UTC + 2 * 24 * HOUR + 10 * HOUR,
            ("wed", 10, false),
        );
        check(
            "Z",
            MONDAY_UTC + 3 * 24 * HOUR + 10 * HOUR,
            ("thu", 10, true),
        );
        // Before 1970 still works (euclidean division).
        check("Z", -HOUR, ("wed", 23, false));
    }

    #[test]
    fn parsing_clock_values() {
        assert_eq!(parse_timezone("+08:00"), Ok(8 * 60 * MS_PER_MINUTE));
        assert_eq!(parse_timezone("-05:30"), Ok(-330 * MS_PER_MINUTE));
        assert_eq!(parse_timezone("UTC"), Ok(0));
        assert!(parse_timezone("+15:00").is_err());
        assert!(parse_timezone("Asia/Shanghai").is_err());
        assert!(parse_timezone("+8").is_err());
        assert_eq!(parse_clock("24:00"), Ok(1440));
        assert!(parse_clock("24:01").is_err());
        assert!(parse_clock("9:00").is_err());
        assert!(parse_clock("09:60").is_err());
        assert_eq!(parse_weekday("Sun"), Ok(6));
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert!(parse_date("2026-13-01").is_err());
    }
}
