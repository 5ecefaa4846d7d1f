//! vCalendar 1.0 (`text/x-vcalendar`) ⇄ iCalendar 2.0 (`text/calendar`) for `VEVENT`
//! and `VTODO`; see the module docs of [`crate::content`] for what is converted.

use super::syntax::{split_escaped, text_new_to_old, text_old_to_new, Component, Param, Prop};
use super::vcard::{params_new_to_old, params_old_to_new};

/// Prefix of a 1.0 property kept in 2.0 because it has no 2.0 form.
const FROM_V1: &str = "X-VCAL10-";
/// Prefix of a 2.0 property kept in 1.0 because it has no 1.0 form.
const FROM_V2: &str = "X-ICAL20-";

const PRODID: &str = "-//syncml-rs//content conversion//EN";

// ---------------------------------------------------------------------------------
// Date-times and durations
// ---------------------------------------------------------------------------------

/// A date (`secs` `None`) or date-time, in UTC or floating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    /// Days since 1970-01-01.
    days: i64,
    /// Seconds into the day; `None` for a date.
    secs: Option<i64>,
    utc: bool,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYYMMDD`, `YYYYMMDDTHHMMSS` or `YYYYMMDDTHHMMSSZ` (extended `-`/`:` forms read).
fn parse_dt(s: &str) -> Option<DateTime> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let (t, utc) = match t.strip_suffix(['Z', 'z']) {
        Some(r) => (r, true),
        None => (t.as_str(), false),
    };
    let date = t.get(..8)?;
    let (y, m, d) = (
        digits(date.get(..4)?)?,
        digits(date.get(4..6)?)?,
        digits(date.get(6..8)?)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let rest = &t[8..];
    if rest.is_empty() {
        return (!utc).then_some(DateTime {
            days,
            secs: None,
            utc,
        });
    }
    let time = rest.strip_prefix(['T', 't'])?;
    if time.len() != 6 && time.len() != 4 {
        return None;
    }
    let h = digits(time.get(..2)?)?;
    let mi = digits(time.get(2..4)?)?;
    let se = if time.len() == 6 {
        digits(time.get(4..6)?)?
    } else {
        0
    };
    if h > 24 || mi > 59 || se > 60 {
        return None;
    }
    Some(DateTime {
        days,
        secs: Some(h * 3600 + mi * 60 + se),
        utc,
    })
}

fn fmt_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}")
}

fn fmt_dt(dt: DateTime) -> String {
    let mut s = fmt_date(dt.days);
    if let Some(secs) = dt.secs {
        s.push_str(&format!(
            "T{:02}{:02}{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ));
        if dt.utc {
            s.push('Z');
        }
    }
    s
}

/// `dt` (a date counts as its midnight) plus `delta` seconds.
fn add_secs(dt: DateTime, delta: i64) -> Option<DateTime> {
    let total = dt
        .days
        .checked_mul(86_400)?
        .checked_add(dt.secs.unwrap_or(0))?
        .checked_add(delta)?;
    Some(DateTime {
        days: total.div_euclid(86_400),
        secs: Some(total.rem_euclid(86_400)),
        utc: dt.utc,
    })
}

fn secs_between(from: DateTime, to: DateTime) -> Option<i64> {
    let a = from
        .days
        .checked_mul(86_400)?
        .checked_add(from.secs.unwrap_or(0))?;
    let b = to
        .days
        .checked_mul(86_400)?
        .checked_add(to.secs.unwrap_or(0))?;
    b.checked_sub(a)
}

/// An ISO 8601 / RFC 5545 duration (`-PT15M`, `P1D`, `P1W`) in seconds.
fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_uppercase();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    let s = s.strip_prefix('P')?;
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut time = false;
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if num.len() >= 9 {
                return None;
            }
            num.push(c);
            continue;
        }
        if c == 'T' {
            time = true;
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = match (c, time) {
            ('W', false) => 604_800,
            ('D', false) => 86_400,
            ('H', true) => 3600,
            ('M', true) => 60,
            ('S', true) => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    (any && num.is_empty()).then_some(if neg { -total } else { total })
}

fn fmt_duration(secs: i64) -> String {
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
    }
    let s = secs.unsigned_abs();
    out.push('P');
    let (d, rem) = (s / 86_400, s % 86_400);
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if rem > 0 || d == 0 {
        out.push('T');
        let (h, m, sec) = (rem / 3600, rem / 60 % 60, rem % 60);
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if sec > 0 || rem == 0 {
            out.push_str(&format!("{sec}S"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Recurrence rules
// ---------------------------------------------------------------------------------

const WEEKDAYS: [&str; 7] = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];

fn weekday(tok: &str) -> Option<&'static str> {
    WEEKDAYS
        .iter()
        .copied()
        .find(|d| d.eq_ignore_ascii_case(tok))
}

/// `3` / `3+` → 3, `3-` → -3, within `1..=max`.
fn signed_number(tok: &str, max: i64) -> Option<i64> {
    let (n, neg) = match tok.strip_suffix('-') {
        Some(n) => (n, true),
        None => (tok.strip_suffix('+').unwrap_or(tok), false),
    };
    let n = digits(n)?;
    (1..=max).contains(&n).then_some(if neg { -n } else { n })
}

fn old_number(n: i64) -> String {
    if n < 0 {
        format!("{}-", -n)
    } else {
        n.to_string()
    }
}

/// A vCalendar 1.0 rule as an iCalendar 2.0 `RRULE` value, when it maps cleanly.
fn rrule_old_to_new(v: &str, all_day: bool) -> Option<String> {
    let mut toks = v.split_whitespace();
    let first = toks.next()?.to_ascii_uppercase();
    let split = first
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(first.len());
    let (code, interval) = first.split_at(split);
    let interval = if interval.is_empty() {
        1
    } else {
        digits(interval)?
    };
    if !(1..=9999).contains(&interval) {
        return None;
    }
    let freq = match code {
        "D" => "DAILY",
        "W" => "WEEKLY",
        "MP" | "MD" => "MONTHLY",
        "YM" | "YD" => "YEARLY",
        _ => return None,
    };
    let mut by: Vec<String> = Vec::new();
    let mut end: Option<String> = None;
    let mut ended = false;
    let mut ordinal: Option<(i64, bool)> = None; // MP: occurrence, has a weekday
    for tok in toks {
        if ended {
            return None; // a nested rule or junk after the duration
        }
        if let Some(n) = tok.strip_prefix('#') {
            let n = digits(n)?;
            end = (n > 0).then(|| format!("COUNT={n}"));
            ended = true;
            continue;
        }
        if tok.len() >= 8 {
            let dt = parse_dt(tok)?;
            let until = if all_day {
                fmt_date(dt.days)
            } else {
                fmt_dt(dt)
            };
            end = Some(format!("UNTIL={until}"));
            ended = true;
            continue;
        }
        match code {
            "W" => by.push(weekday(tok)?.to_string()),
            "MP" => match (weekday(tok), ordinal) {
                (Some(d), Some((n, _))) => {
                    by.push(format!("{n}{d}"));
                    ordinal = Some((n, true));
                }
                (Some(_), None) => return None,
                (None, Some((_, false))) => return None,
                (None, _) => ordinal = Some((signed_number(tok, 5)?, false)),
            },
            "MD" => by.push(if tok.eq_ignore_ascii_case("LD") {
                "-1".to_string()
            } else {
                signed_number(tok, 31)?.to_string()
            }),
            "YM" => by.push(signed_number(tok, 12).filter(|n| *n > 0)?.to_string()),
            "YD" => by.push(signed_number(tok, 366)?.to_string()),
            _ => return None, // D: time lists
        }
    }
    if matches!(ordinal, Some((_, false))) {
        return None;
    }
    if !ended {
        end = Some("COUNT=2".to_string()); // the vCalendar 1.0 default duration
    }
    let mut out = format!("FREQ={freq}");
    if interval != 1 {
        out.push_str(&format!(";INTERVAL={interval}"));
    }
    if !by.is_empty() {
        let key = match code {
            "W" | "MP" => "BYDAY",
            "MD" => "BYMONTHDAY",
            "YM" => "BYMONTH",
            _ => "BYYEARDAY",
        };
        out.push_str(&format!(";{key}={}", by.join(",")));
    }
    if let Some(e) = end {
        out.push(';');
        out.push_str(&e);
    }
    Some(out)
}

/// An iCalendar 2.0 `RRULE` value as a vCalendar 1.0 rule, when it maps cleanly.
fn rrule_new_to_old(v: &str) -> Option<String> {
    let mut freq = None;
    let mut interval = 1;
    let mut count = None;
    let mut until = None;
    let (mut byday, mut bymonthday, mut bymonth, mut byyearday) = (None, None, None, None);
    for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part.split_once('=')?;
        let val = val.trim().to_ascii_uppercase();
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(val),
            "INTERVAL" => interval = digits(&val).filter(|n| (1..=9999).contains(n))?,
            "COUNT" => count = Some(digits(&val).filter(|n| *n > 0)?),
            "UNTIL" => until = Some(parse_dt(&val)?),
            "BYDAY" => byday = Some(val),
            "BYMONTHDAY" => bymonthday = Some(val),
            "BYMONTH" => bymonth = Some(val),
            "BYYEARDAY" => byyearday = Some(val),
            "WKST" if val == "MO" => {}
            _ => return None,
        }
    }
    if count.is_some() && until.is_some() {
        return None;
    }
    let list = |s: &Option<String>| -> Vec<String> {
        s.as_deref()
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let nums = |s: &Option<String>, max: i64| -> Option<Vec<String>> {
        list(s)
            .iter()
            .map(|x| {
                let n: i64 = x.strip_prefix('+').unwrap_or(x).parse().ok()?;
                (n != 0 && n.abs() <= max).then(|| old_number(n))
            })
            .collect()
    };
    let days = list(&byday);
    let only = |which: &[bool]| {
        [
            byday.is_some(),
            bymonthday.is_some(),
            bymonth.is_some(),
            byyearday.is_some(),
        ]
        .iter()
        .zip(which)
        .all(|(has, allowed)| !has || *allowed)
    };
    let mut out = match freq?.as_str() {
        "DAILY" if only(&[false, false, false, false]) => format!("D{interval}"),
        "WEEKLY" if only(&[true, false, false, false]) => {
            let mut s = format!("W{interval}");
            for d in &days {
                s.push(' ');
                s.push_str(weekday(d)?);
            }
            s
        }
        "MONTHLY" if byday.is_some() && only(&[true, false, false, false]) => {
            let mut s = format!("MP{interval}");
            let mut last = None;
            for d in &days {
                let split = d.len().checked_sub(2)?;
                let (n, day) = (d.get(..split)?, weekday(d.get(split..)?)?);
                let n: i64 = n.strip_prefix('+').unwrap_or(n).parse().ok()?;
                if n == 0 || n.abs() > 5 {
                    return None;
                }
                if last != Some(n) {
                    s.push_str(&format!(" {}{}", n.abs(), if n < 0 { '-' } else { '+' }));
                    last = Some(n);
                }
                s.push(' ');
                s.push_str(day);
            }
            s
        }
        "MONTHLY" if only(&[false, true, false, false]) => {
            let mut s = format!("MD{interval}");
            for n in nums(&bymonthday, 31)? {
                s.push(' ');
                s.push_str(&n);
            }
            s
        }
        "YEARLY" if byyearday.is_some() && only(&[false, false, false, true]) => {
            let mut s = format!("YD{interval}");
            for n in nums(&byyearday, 366)? {
                s.push(' ');
                s.push_str(&n);
            }
            s
        }
        "YEARLY" if only(&[false, false, true, false]) => {
            let mut s = format!("YM{interval}");
            for n in nums(&bymonth, 12)? {
                if n.ends_with('-') {
                    return None;
                }
                s.push(' ');
                s.push_str(&n);
            }
            s
        }
        _ => return None,
    };
    match (count, until) {
        (Some(n), _) => out.push_str(&format!(" #{n}")),
        (None, Some(u)) => {
            let u = match u.secs {
                Some(_) => u,
                // A date: the whole day counts.
                None => DateTime {
                    secs: Some(86_399),
                    ..u
                },
            };
            out.push(' ');
            out.push_str(&fmt_dt(u));
        }
        (None, None) => out.push_str(" #0"),
    }
    Some(out)
}

// ---------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------

/// Properties whose values are not text: copied (apart from the handling below).
fn is_raw(name: &str) -> bool {
    matches!(
        name,
        "DTSTART"
            | "DTEND"
            | "DUE"
            | "COMPLETED"
            | "DCREATED"
            | "CREATED"
            | "LAST-MODIFIED"
            | "DTSTAMP"
            | "RECURRENCE-ID"
            | "EXDATE"
            | "RDATE"
            | "RRULE"
            | "EXRULE"
            | "UID"
            | "URL"
            | "PRIORITY"
            | "SEQUENCE"
            | "TZ"
            | "GEO"
            | "TRIGGER"
            | "DURATION"
            | "REPEAT"
            | "TRANSP"
            | "STATUS"
            | "CLASS"
            | "VERSION"
            | "ATTACH"
            | "ATTENDEE"
            | "ORGANIZER"
            | "PRODID"
    )
}

/// Date-valued properties (besides `DTSTART`/`DTEND`, which all-day events treat
/// differently).
fn is_date_prop(name: &str) -> bool {
    matches!(
        name,
        "DUE"
            | "COMPLETED"
            | "DCREATED"
            | "CREATED"
            | "LAST-MODIFIED"
            | "DTSTAMP"
            | "RECURRENCE-ID"
    )
}

fn generic_to_new(mut p: Prop) -> Prop {
    p.params = params_old_to_new(std::mem::take(&mut p.params));
    if !is_raw(&p.name) {
        p.value = text_old_to_new(&p.value, false);
    }
    p
}

fn generic_to_old(mut p: Prop) -> Prop {
    p.params = params_new_to_old(std::mem::take(&mut p.params));
    if !is_raw(&p.name) {
        p.value = text_new_to_old(&p.value);
    }
    p
}

/// A property the other version has no form for, kept under an `X-` name with its
/// value and parameters verbatim.
fn carry(mut p: Prop, prefix: &str) -> Prop {
    p.name = format!("{prefix}{}", p.name);
    p
}

fn with_date_param(mut p: Prop) -> Prop {
    p.params.push(Param::named("VALUE", "DATE"));
    p
}

// ---------------------------------------------------------------------------------
// 1.0 → 2.0
// ---------------------------------------------------------------------------------

/// vCalendar 1.0 components (read in old syntax) as iCalendar 2.0.
pub(crate) fn to_new(comps: Vec<Component>, notes: &mut Vec<String>) -> Vec<Component> {
    comps
        .into_iter()
        .map(|c| {
            if c.name == "VCALENDAR" {
                calendar_to_new(c, notes)
            } else {
                generic_component_to_new(c)
            }
        })
        .collect()
}

fn generic_component_to_new(mut c: Component) -> Component {
    c.props = c.props.into_iter().map(generic_to_new).collect();
    c.children = c
        .children
        .into_iter()
        .map(generic_component_to_new)
        .collect();
    c
}

fn calendar_to_new(c: Component, notes: &mut Vec<String>) -> Component {
    let mut out = Component::new("VCALENDAR");
    out.props.push(Prop::new("VERSION", "2.0"));
    for p in c.props {
        match p.name.as_str() {
            "VERSION" => {}
            n if n.starts_with(FROM_V2) => out.props.push(restore(p, FROM_V2)),
            _ => out.props.push(generic_to_new(p)),
        }
    }
    if out.prop("PRODID").is_none() {
        out.props.insert(1, Prop::new("PRODID", PRODID));
    }
    for child in c.children {
        out.children.push(match child.name.as_str() {
            "VEVENT" | "VTODO" => entry_to_new(child, notes),
            _ => generic_component_to_new(child),
        });
    }
    out
}

fn restore(mut p: Prop, prefix: &str) -> Prop {
    p.name = p.name.get(prefix.len()..).unwrap_or_default().to_string();
    p
}

fn entry_to_new(e: Component, notes: &mut Vec<String>) -> Component {
    let is_todo = e.name == "VTODO";
    let dt = |n: &str| e.prop(n).and_then(|p| parse_dt(&p.value));
    let (start, end, due) = (dt("DTSTART"), dt("DTEND"), dt("DUE"));
    let all_day = match (start, end) {
        (Some(s), _) if s.secs.is_none() => true,
        (Some(s), Some(en)) => {
            !s.utc
                && !en.utc
                && s.secs == Some(0)
                && en.secs.is_some_and(|x| x >= 23 * 3600 + 59 * 60)
                && en.days >= s.days
        }
        _ => false,
    };
    let summary = e.prop("SUMMARY").map(|p| text_old_to_new(&p.value, false));
    let mut out = Component::new(&e.name);
    let mut alarms = Vec::new();
    for p in e.props {
        let name = p.name.clone();
        let parsed = parse_dt(&p.value);
        match name.as_str() {
            "DTSTART" | "DTEND" if all_day => {
                let days = match (name.as_str(), parsed) {
                    ("DTEND", Some(d)) => d.days + 1,
                    (_, Some(d)) => d.days,
                    _ => {
                        out.props.push(generic_to_new(p));
                        continue;
                    }
                };
                let mut q = generic_to_new(p);
                q.value = fmt_date(days);
                out.props.push(with_date_param(q));
            }
            "DTSTART" | "DTEND" => out.props.push(generic_to_new(p)),
            n if is_date_prop(n) => {
                let mut q = generic_to_new(p);
                if n == "DCREATED" {
                    q.name = "CREATED".into();
                }
                if parsed.is_some_and(|d| d.secs.is_none()) {
                    q = with_date_param(q);
                }
                out.props.push(q);
            }
            "EXDATE" | "RDATE" => {
                let mut q = generic_to_new(p);
                let items: Vec<Option<DateTime>> = q.value.split(';').map(parse_dt).collect();
                if items.iter().all(|d| {
                    d.is_some_and(|d| d.secs.is_none() || (all_day && d.secs == Some(0) && !d.utc))
                }) && !items.is_empty()
                {
                    q.value = items
                        .iter()
                        .flatten()
                        .map(|d| fmt_date(d.days))
                        .collect::<Vec<_>>()
                        .join(",");
                    q = with_date_param(q);
                } else {
                    q.value = q.value.replace(';', ",");
                }
                out.props.push(q);
            }
            "CATEGORIES" | "RESOURCES" => {
                let value = split_escaped(&p.value, ';')
                    .iter()
                    .map(|item| text_old_to_new(item, false))
                    .collect::<Vec<_>>()
                    .join(",");
                let mut q = generic_to_new(p);
                q.value = value;
                out.props.push(q);
            }
            "STATUS" => {
                let v = p.value.trim().to_ascii_uppercase();
                let mapped = match v.as_str() {
                    "NEEDS ACTION" | "NEEDS-ACTION" => Some("NEEDS-ACTION"),
                    "COMPLETED" => Some("COMPLETED"),
                    "TENTATIVE" => Some("TENTATIVE"),
                    "CONFIRMED" => Some("CONFIRMED"),
                    "CANCELLED" => Some("CANCELLED"),
                    _ => None,
                };
                match mapped {
                    Some(m) => {
                        let mut q = generic_to_new(p);
                        q.value = m.into();
                        out.props.push(q);
                    }
                    None => {
                        notes.push(format!(
                            "STATUS:{v} has no iCalendar 2.0 value; kept as {FROM_V1}STATUS"
                        ));
                        out.props.push(carry(p, FROM_V1));
                    }
                }
            }
            "TRANSP" => {
                let mut q = generic_to_new(p);
                q.value = match digits(q.value.trim()) {
                    Some(0) => "OPAQUE".into(),
                    Some(_) => "TRANSPARENT".into(),
                    None => q.value,
                };
                out.props.push(q);
            }
            "RRULE" | "EXRULE" => match rrule_old_to_new(&p.value, all_day) {
                Some(v) => {
                    let mut q = generic_to_new(p);
                    q.value = v;
                    out.props.push(q);
                }
                None => {
                    notes.push(format!(
                        "{name}:{} has no iCalendar 2.0 form; kept as {FROM_V1}{name}",
                        p.value
                    ));
                    out.props.push(carry(p, FROM_V1));
                }
            },
            "AALARM" | "DALARM" => {
                let anchor = if is_todo && start.is_none() {
                    due.map(|d| (d, true))
                } else {
                    start.map(|d| (d, false))
                };
                match alarm_to_new(&p, anchor, summary.as_deref()) {
                    Some(a) => alarms.push(a),
                    None => {
                        notes.push(format!(
                            "{name}:{} has no run time; kept as {FROM_V1}{name}",
                            p.value
                        ));
                        out.props.push(carry(p, FROM_V1));
                    }
                }
            }
            "MALARM" | "PALARM" => {
                notes.push(format!(
                    "{name} (mail/procedure alarm) is not converted; kept as {FROM_V1}{name}"
                ));
                out.props.push(carry(p, FROM_V1));
            }
            "ATTENDEE" => {
                let mut q = generic_to_new(p);
                let v = q.value.trim();
                if v.contains('@') && !v.contains([':', ' ', '<']) {
                    q.value = format!("mailto:{v}");
                }
                out.props.push(q);
            }
            n if n.starts_with(FROM_V2) => out.props.push(restore(p, FROM_V2)),
            _ => out.props.push(generic_to_new(p)),
        }
    }
    out.children = alarms;
    out.children
        .extend(e.children.into_iter().map(generic_component_to_new));
    out
}

/// `AALARM`/`DALARM` (`runTime;snoozeTime;repeatCount;content`) as a `VALARM`.
/// `anchor` is the time a relative trigger counts from (and whether that is the end).
fn alarm_to_new(
    p: &Prop,
    anchor: Option<(DateTime, bool)>,
    summary: Option<&str>,
) -> Option<Component> {
    let parts = split_escaped(&p.value, ';');
    let part = |i: usize| parts.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
    let run = parse_dt(part(0)?)?;
    let run = DateTime {
        secs: Some(run.secs.unwrap_or(0)),
        ..run
    };
    let audio = p.name == "AALARM";
    let mut a = Component::new("VALARM");
    a.props
        .push(Prop::new("ACTION", if audio { "AUDIO" } else { "DISPLAY" }));
    let relative = anchor.and_then(|(anc, is_end)| {
        (anc.utc == run.utc)
            .then(|| secs_between(anc, run))
            .flatten()
            .map(|d| (d, is_end))
    });
    match relative {
        Some((d, is_end)) => {
            let mut t = Prop::new("TRIGGER", fmt_duration(d));
            if is_end {
                t.params.push(Param::named("RELATED", "END"));
            }
            a.props.push(t);
        }
        None => {
            let mut t = Prop::new("TRIGGER", fmt_dt(run));
            t.params.push(Param::named("VALUE", "DATE-TIME"));
            a.props.push(t);
        }
    }
    if let (Some(snooze), Some(repeat)) = (part(1), part(2).and_then(digits)) {
        if parse_duration(snooze).is_some() && repeat > 0 {
            a.props
                .push(Prop::new("DURATION", snooze.to_ascii_uppercase()));
            a.props.push(Prop::new("REPEAT", repeat.to_string()));
        }
    }
    let content = part(3);
    if audio {
        if let Some(c) = content {
            a.props.push(Prop::new("ATTACH", c));
        }
    } else {
        let text = content
            .map(|c| text_old_to_new(c, false))
            .or_else(|| summary.map(str::to_string))
            .unwrap_or_else(|| "Reminder".to_string());
        a.props.push(Prop::new("DESCRIPTION", text));
    }
    Some(a)
}

// ---------------------------------------------------------------------------------
// 2.0 → 1.0
// ---------------------------------------------------------------------------------

/// iCalendar 2.0 components (read in new syntax) as vCalendar 1.0.
pub(crate) fn to_old(comps: Vec<Component>, notes: &mut Vec<String>) -> Vec<Component> {
    comps
        .into_iter()
        .map(|c| {
            if c.name == "VCALENDAR" {
                calendar_to_old(c, notes)
            } else {
                generic_component_to_old(c)
            }
        })
        .collect()
}

fn generic_component_to_old(mut c: Component) -> Component {
    c.props = c.props.into_iter().map(generic_to_old).collect();
    c.children = c
        .children
        .into_iter()
        .map(generic_component_to_old)
        .collect();
    c
}

fn calendar_to_old(c: Component, notes: &mut Vec<String>) -> Component {
    let mut out = Component::new("VCALENDAR");
    out.props.push(Prop::new("VERSION", "1.0"));
    for p in c.props {
        match p.name.as_str() {
            "VERSION" => {}
            n if n.starts_with(FROM_V1) => out.props.push(restore(p, FROM_V1)),
            _ => out.props.push(generic_to_old(p)),
        }
    }
    for child in c.children {
        match child.name.as_str() {
            "VEVENT" | "VTODO" => out.children.push(entry_to_old(child, notes)),
            "VTIMEZONE" => notes.push(format!(
                "VTIMEZONE {} has no vCalendar 1.0 form; dropped (local times kept)",
                child.prop("TZID").map_or("", |p| p.value.as_str())
            )),
            _ => out.children.push(generic_component_to_old(child)),
        }
    }
    out
}

fn is_date_valued(p: &Prop) -> bool {
    p.param("VALUE").as_deref() == Some("DATE")
        || parse_dt(&p.value).is_some_and(|d| d.secs.is_none())
}

fn entry_to_old(e: Component, notes: &mut Vec<String>) -> Component {
    let is_todo = e.name == "VTODO";
    let dt = |n: &str| e.prop(n).and_then(|p| parse_dt(&p.value));
    let start = dt("DTSTART");
    let all_day = e.prop("DTSTART").is_some_and(is_date_valued);
    let duration = e.prop("DURATION").and_then(|p| parse_duration(&p.value));
    let end = dt("DTEND").or_else(|| {
        start
            .zip(duration)
            .and_then(|(s, d)| add_secs(s, d))
            .map(|d| {
                if all_day {
                    DateTime { secs: None, ..d }
                } else {
                    d
                }
            })
    });
    let due = dt("DUE");
    let has_dtend = e.prop("DTEND").is_some();
    let mut out = Component::new(&e.name);
    let mut had_tzid = false;
    for mut p in e.props {
        if p.params.iter().any(|x| x.is("TZID")) {
            had_tzid = true;
            p.remove_param("TZID");
        }
        let name = p.name.clone();
        match name.as_str() {
            "DTSTART" if all_day => {
                let mut q = generic_to_old(p);
                if let Some(s) = start {
                    q.value = format!("{}T000000", fmt_date(s.days));
                }
                out.props.push(q);
            }
            "DTEND" if all_day => {
                let mut q = generic_to_old(p);
                if let Some(en) = end {
                    let last = (en.days - 1).max(start.map_or(en.days - 1, |s| s.days));
                    q.value = format!("{}T235959", fmt_date(last));
                }
                out.props.push(q);
            }
            "DURATION" if !is_todo && !has_dtend => {
                // Replaced by the DTEND it implies.
                match (end, start) {
                    (Some(en), Some(s)) => {
                        let value = if all_day {
                            let last = (en.days - 1).max(s.days);
                            format!("{}T235959", fmt_date(last))
                        } else {
                            fmt_dt(en)
                        };
                        out.props.push(Prop::new("DTEND", value));
                    }
                    _ => out.props.push(generic_to_old(p)),
                }
            }
            n if is_date_prop(n) => {
                let date = is_date_valued(&p);
                let mut q = generic_to_old(p);
                if n == "CREATED" {
                    q.name = "DCREATED".into();
                }
                if date {
                    if let Some(d) = parse_dt(&q.value) {
                        q.value = fmt_date(d.days);
                    }
                }
                out.props.push(q);
            }
            "EXDATE" | "RDATE" => {
                let date = is_date_valued(&p);
                let mut q = generic_to_old(p);
                q.value = q
                    .value
                    .split(',')
                    .map(|v| match parse_dt(v) {
                        Some(d) if date && all_day => format!("{}T000000", fmt_date(d.days)),
                        Some(d) if date => fmt_date(d.days),
                        _ => v.trim().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(";");
                out.props.push(q);
            }
            "CATEGORIES" | "RESOURCES" => {
                let value = split_escaped(&p.value, ',')
                    .iter()
                    .map(|item| text_new_to_old(item))
                    .collect::<Vec<_>>()
                    .join(";");
                let mut q = generic_to_old(p);
                q.value = value;
                out.props.push(q);
            }
            "STATUS" => {
                let v = p.value.trim().to_ascii_uppercase();
                let mapped = match v.as_str() {
                    "NEEDS-ACTION" => Some("NEEDS ACTION"),
                    "COMPLETED" => Some("COMPLETED"),
                    "TENTATIVE" => Some("TENTATIVE"),
                    "CONFIRMED" => Some("CONFIRMED"),
                    _ => None,
                };
                match mapped {
                    Some(m) => {
                        let mut q = generic_to_old(p);
                        q.value = m.into();
                        out.props.push(q);
                    }
                    None => {
                        notes.push(format!(
                            "STATUS:{v} has no vCalendar 1.0 value; kept as {FROM_V2}STATUS"
                        ));
                        out.props.push(carry(p, FROM_V2));
                    }
                }
            }
            "TRANSP" => {
                let mut q = generic_to_old(p);
                q.value = match q.value.trim().to_ascii_uppercase().as_str() {
                    "OPAQUE" => "0".into(),
                    "TRANSPARENT" => "1".into(),
                    _ => q.value,
                };
                out.props.push(q);
            }
            "RRULE" | "EXRULE" => match rrule_new_to_old(&p.value) {
                Some(v) => {
                    let mut q = generic_to_old(p);
                    q.value = v;
                    out.props.push(q);
                }
                None => {
                    notes.push(format!(
                        "{name}:{} has no vCalendar 1.0 form; kept as {FROM_V2}{name}",
                        p.value
                    ));
                    out.props.push(carry(p, FROM_V2));
                }
            },
            "ATTENDEE" => {
                let mut q = generic_to_old(p);
                let v = q.value.trim();
                if let (Some(scheme), Some(addr)) = (v.get(..7), v.get(7..)) {
                    if scheme.eq_ignore_ascii_case("mailto:") && !addr.is_empty() {
                        q.value = addr.to_string();
                    }
                }
                out.props.push(q);
            }
            n if n.starts_with(FROM_V1) => out.props.push(restore(p, FROM_V1)),
            _ => out.props.push(generic_to_old(p)),
        }
    }
    if had_tzid {
        notes.push(format!(
            "{}: TZID has no vCalendar 1.0 form; local times kept as floating times",
            e.name
        ));
    }
    for child in e.children {
        if child.name == "VALARM" {
            let anchor_start = if is_todo && start.is_none() {
                due
            } else {
                start
            };
            let anchor_end = if is_todo { due } else { end };
            match alarm_to_old(&child, anchor_start, anchor_end) {
                Ok(p) => out.props.push(p),
                Err(why) => notes.push(why),
            }
        } else {
            out.children.push(generic_component_to_old(child));
        }
    }
    out
}

/// Old-syntax text with every `;` not yet escaped escaped (one component of a
/// structured value).
fn escape_bare_semicolons(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    for c in s.chars() {
        if c == ';' && prev != Some('\\') {
            out.push('\\');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// A `VALARM` as `AALARM`/`DALARM`, or why it cannot be one.
fn alarm_to_old(
    a: &Component,
    start: Option<DateTime>,
    end: Option<DateTime>,
) -> Result<Prop, String> {
    let action = a
        .prop("ACTION")
        .map(|p| p.value.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let name = match action.as_str() {
        "AUDIO" => "AALARM",
        "DISPLAY" => "DALARM",
        _ => {
            return Err(format!(
                "VALARM ACTION:{action} has no vCalendar 1.0 form; dropped"
            ))
        }
    };
    let trigger = a
        .prop("TRIGGER")
        .ok_or_else(|| "VALARM without TRIGGER dropped".to_string())?;
    let run = match parse_duration(&trigger.value) {
        Some(d) => {
            let anchor = if trigger.param("RELATED").as_deref() == Some("END") {
                end
            } else {
                start
            };
            anchor.and_then(|t| add_secs(t, d))
        }
        None => parse_dt(&trigger.value),
    }
    .ok_or_else(|| {
        format!(
            "VALARM TRIGGER:{} cannot be placed in time; dropped",
            trigger.value
        )
    })?;
    let run = DateTime {
        secs: Some(run.secs.unwrap_or(0)),
        ..run
    };
    let mut parts = vec![fmt_dt(run), String::new(), String::new(), String::new()];
    if let (Some(d), Some(r)) = (a.prop("DURATION"), a.prop("REPEAT")) {
        parts[1] = d.value.trim().to_string();
        parts[2] = r.value.trim().to_string();
    }
    parts[3] = if name == "AALARM" {
        a.prop("ATTACH")
            .map(|p| p.value.clone())
            .unwrap_or_default()
    } else {
        a.prop("DESCRIPTION")
            .map(|p| escape_bare_semicolons(&text_new_to_old(&p.value)))
            .unwrap_or_default()
    };
    while parts.len() > 1 && parts.last().is_some_and(|s| s.is_empty()) {
        parts.pop();
    }
    Ok(Prop::new(name, parts.join(";")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{convert_with_notes, ContentType};

    fn v10() -> ContentType {
        ContentType::new("text/x-vcalendar", "1.0")
    }
    fn v20() -> ContentType {
        ContentType::new("text/calendar", "2.0")
    }
    fn to20(s: &str) -> (String, Vec<String>) {
        let c = convert_with_notes(s.as_bytes(), &v10(), &v20()).expect("convert");
        (String::from_utf8(c.data).expect("utf8"), c.notes)
    }
    fn to10(s: &str) -> (String, Vec<String>) {
        let c = convert_with_notes(s.as_bytes(), &v20(), &v10()).expect("convert");
        (String::from_utf8(c.data).expect("utf8"), c.notes)
    }
    fn cal(version: &str, body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:{version}\r\n{body}END:VCALENDAR\r\n")
    }

    #[test]
    fn civil_day_arithmetic_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 29) + 1),
            (2024, 3, 1)
        );
    }

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("-PT15M"), Some(-900));
        assert_eq!(parse_duration("P1W"), Some(604_800));
        assert_eq!(parse_duration("P1DT2H"), Some(93_600));
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(fmt_duration(-900), "-PT15M");
        assert_eq!(fmt_duration(86_400), "P1D");
        assert_eq!(fmt_duration(0), "PT0S");
    }

    #[test]
    fn vcalendar_10_event_becomes_icalendar_20() {
        let (out, notes) = to20(&cal(
            "1.0",
            "BEGIN:VEVENT\r\n\
UID:42\r\n\
SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Team =C3=A9vent, weekly\r\n\
DESCRIPTION;ENCODING=QUOTED-PRINTABLE:Line 1=0D=0ALine 2\r\n\
LOCATION:Room 1\r\n\
DTSTART:20240108T090000Z\r\n\
DTEND:20240108T100000Z\r\n\
CATEGORIES:MEETING;WORK\r\n\
CLASS:PRIVATE\r\n\
PRIORITY:1\r\n\
STATUS:CONFIRMED\r\n\
TRANSP:0\r\n\
RRULE:W1 MO TU #10\r\n\
EXDATE:20240115T090000Z;20240122T090000Z\r\n\
DALARM:20240108T084500Z;PT5M;2;Wake up\r\n\
X-NOKIA-EXTRA:kept\r\n\
END:VEVENT\r\n",
        ));
        assert_eq!(
            out,
            "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//syncml-rs//content conversion//EN\r\n\
BEGIN:VEVENT\r\n\
UID:42\r\n\
SUMMARY:Team évent\\, weekly\r\n\
DESCRIPTION:Line 1\\nLine 2\r\n\
LOCATION:Room 1\r\n\
DTSTART:20240108T090000Z\r\n\
DTEND:20240108T100000Z\r\n\
CATEGORIES:MEETING,WORK\r\n\
CLASS:PRIVATE\r\n\
PRIORITY:1\r\n\
STATUS:CONFIRMED\r\n\
TRANSP:OPAQUE\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,TU;COUNT=10\r\n\
EXDATE:20240115T090000Z,20240122T090000Z\r\n\
X-NOKIA-EXTRA:kept\r\n\
BEGIN:VALARM\r\n\
ACTION:DISPLAY\r\n\
TRIGGER:-PT15M\r\n\
DURATION:PT5M\r\n\
REPEAT:2\r\n\
DESCRIPTION:Wake up\r\n\
END:VALARM\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n"
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn icalendar_20_event_becomes_vcalendar_10() {
        let (out, notes) = to10(&cal(
            "2.0",
            "PRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\n\
UID:42\r\n\
SUMMARY:Team évent\\, weekly\r\n\
DTSTART:20240108T090000\r\n\
DURATION:PT1H30M\r\n\
CATEGORIES:MEETING,WORK\r\n\
STATUS:TENTATIVE\r\n\
TRANSP:TRANSPARENT\r\n\
CREATED:20240101T000000Z\r\n\
RRULE:FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20241231T235959\r\n\
ATTENDEE;CN=Jo:mailto:jo@example.com\r\n\
BEGIN:VALARM\r\n\
ACTION:AUDIO\r\n\
TRIGGER:-PT10M\r\n\
END:VALARM\r\n\
END:VEVENT\r\n",
        ));
        assert_eq!(
            out,
            "BEGIN:VCALENDAR\r\n\
VERSION:1.0\r\n\
PRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\n\
UID:42\r\n\
SUMMARY;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Team =C3=A9vent, weekly\r\n\
DTSTART:20240108T090000\r\n\
DTEND:20240108T103000\r\n\
CATEGORIES:MEETING;WORK\r\n\
STATUS:TENTATIVE\r\n\
TRANSP:1\r\n\
DCREATED:20240101T000000Z\r\n\
RRULE:MD1 15 20241231T235959\r\n\
ATTENDEE;CN=Jo:jo@example.com\r\n\
AALARM:20240108T085000\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n"
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn vcalendar_all_day_event_maps_to_date_values_with_exclusive_end() {
        let (out, _) = to20(&cal(
            "1.0",
            "BEGIN:VEVENT\r\nSUMMARY:Holiday\r\nDTSTART:20240501T000000\r\nDTEND:20240502T235900\r\nEND:VEVENT\r\n",
        ));
        assert!(out.contains("DTSTART;VALUE=DATE:20240501\r\n"), "{out}");
        assert!(out.contains("DTEND;VALUE=DATE:20240503\r\n"), "{out}");
        let (back, _) = to10(&out);
        assert!(back.contains("DTSTART:20240501T000000\r\n"), "{back}");
        assert!(back.contains("DTEND:20240502T235959\r\n"), "{back}");
        let (dates, _) = to20(&cal(
            "1.0",
            "BEGIN:VEVENT\r\nDTSTART:20240501\r\nDTEND:20240501\r\nEND:VEVENT\r\n",
        ));
        assert!(dates.contains("DTEND;VALUE=DATE:20240502\r\n"), "{dates}");
    }

    #[test]
    fn vcalendar_todo_status_due_and_completed_convert() {
        let (out, _) = to20(&cal(
            "1.0",
            "BEGIN:VTODO\r\nSUMMARY:Taxes\r\nDUE:20240415T235900\r\nSTATUS:NEEDS ACTION\r\n\
AALARM:20240415T090000\r\nEND:VTODO\r\n",
        ));
        assert!(out.contains("STATUS:NEEDS-ACTION\r\n"), "{out}");
        assert!(out.contains("DUE:20240415T235900\r\n"), "{out}");
        assert!(out.contains("TRIGGER;RELATED=END:-PT14H59M\r\n"), "{out}");
        let (back, _) = to10(&out);
        assert!(back.contains("STATUS:NEEDS ACTION\r\n"), "{back}");
        assert!(back.contains("AALARM:20240415T090000\r\n"), "{back}");
        let (done, _) = to10(&cal(
            "2.0",
            "BEGIN:VTODO\r\nSTATUS:COMPLETED\r\nCOMPLETED:20240410T120000Z\r\nDUE;VALUE=DATE:20240415\r\nEND:VTODO\r\n",
        ));
        assert!(
            done.contains("STATUS:COMPLETED\r\nCOMPLETED:20240410T120000Z\r\nDUE:20240415\r\n"),
            "{done}"
        );
    }

    #[test]
    fn vcalendar_basic_recurrence_rules_map_both_ways() {
        for (old, new) in [
            ("D1 #0", "FREQ=DAILY"),
            ("D2 #5", "FREQ=DAILY;INTERVAL=2;COUNT=5"),
            ("W1 MO TU #10", "FREQ=WEEKLY;BYDAY=MO,TU;COUNT=10"),
            ("MD1 15 #0", "FREQ=MONTHLY;BYMONTHDAY=15"),
            ("MD1 1- #0", "FREQ=MONTHLY;BYMONTHDAY=-1"),
            ("MP1 2+ TU TH #0", "FREQ=MONTHLY;BYDAY=2TU,2TH"),
            ("MP1 1- FR #3", "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3"),
            ("YM1 6 #0", "FREQ=YEARLY;BYMONTH=6"),
            ("YD1 100 #0", "FREQ=YEARLY;BYYEARDAY=100"),
            (
                "W2 WE 20241231T000000Z",
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE;UNTIL=20241231T000000Z",
            ),
        ] {
            assert_eq!(rrule_old_to_new(old, false).as_deref(), Some(new), "{old}");
            assert_eq!(rrule_new_to_old(new).as_deref(), Some(old), "{new}");
        }
        assert_eq!(
            rrule_old_to_new("D1", false).as_deref(),
            Some("FREQ=DAILY;COUNT=2")
        );
        assert_eq!(
            rrule_old_to_new("MD1 LD #0", false).as_deref(),
            Some("FREQ=MONTHLY;BYMONTHDAY=-1")
        );
    }

    #[test]
    fn unconvertible_recurrence_rules_are_kept_as_x_properties_and_reported() {
        assert_eq!(rrule_old_to_new("D1 1200 1800 #5", false), None);
        assert_eq!(rrule_old_to_new("YM1 6 MP1 1+ SU #0", false), None);
        assert_eq!(rrule_new_to_old("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1"), None);
        assert_eq!(rrule_new_to_old("FREQ=DAILY;BYDAY=MO,TU"), None);
        let ical = cal(
            "2.0",
            "BEGIN:VEVENT\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1\r\nEND:VEVENT\r\n",
        );
        let (out, notes) = to10(&ical);
        assert!(
            out.contains("X-ICAL20-RRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1\r\n"),
            "{out}"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        let (back, _) = to20(&out);
        assert!(
            back.contains("\r\nRRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=-1\r\n"),
            "{back}"
        );
        let (v2, notes) = to20(&cal(
            "1.0",
            "BEGIN:VEVENT\r\nRRULE:D1 1200 #5\r\nEND:VEVENT\r\n",
        ));
        assert!(v2.contains("X-VCAL10-RRULE:D1 1200 #5\r\n"), "{v2}");
        assert_eq!(notes.len(), 1);
        let (v1, _) = to10(&v2);
        assert!(v1.contains("\r\nRRULE:D1 1200 #5\r\n"), "{v1}");
    }

    #[test]
    fn tzid_and_vtimezone_are_dropped_with_notes() {
        let (out, notes) = to10(&cal(
            "2.0",
            "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:20240101T100000\r\nEND:VEVENT\r\n",
        ));
        assert!(out.contains("DTSTART:20240101T100000\r\n"), "{out}");
        assert!(!out.contains("VTIMEZONE"), "{out}");
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn icalendar_20_to_10_to_20_keeps_a_typical_event() {
        let ical = cal(
            "2.0",
            "PRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\n\
UID:abc\r\n\
SUMMARY:Lunch\\; with Bob\\, Al\r\n\
DESCRIPTION:a\\nb\r\n\
DTSTART:20240108T120000Z\r\n\
DTEND:20240108T130000Z\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\n\
BEGIN:VALARM\r\n\
ACTION:DISPLAY\r\n\
TRIGGER:-PT15M\r\n\
DESCRIPTION:Lunch\r\n\
END:VALARM\r\n\
END:VEVENT\r\n",
        );
        let (v1, _) = to10(&ical);
        let (v2, notes) = to20(&v1);
        assert_eq!(v2, ical, "via {v1}");
        assert!(notes.is_empty());
    }
}
