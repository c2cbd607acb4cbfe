//! The time services' formats; the caller supplies the time.
//!
//! - The seeds' UDP time service: the request is a strftime format (empty
//!   means `%Y-%m-%d %X`), the reply is the formatted local time.
//! - RFC 867 daytime: a human-readable line.
//! - RFC 868 time: seconds since 1900-01-01 00:00 UTC as a 32-bit
//!   big-endian count.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, TimeZone};

/// The seeds' default: `time_fmt='%Y-%m-%d %X'` for an empty request.
pub const DEFAULT_FORMAT: &str = "%Y-%m-%d %X";

/// Longest reply the time service sends: UDP replies are bounded by
/// max(request length, this). 64 bytes fits every sensible format and
/// caps how far a small spoofed request can be amplified.
pub const REPLY_ALLOWANCE: usize = 64;

/// Seconds from 1900-01-01 to 1970-01-01 (RFC 868).
pub const RFC868_EPOCH_OFFSET: i64 = 2_208_988_800;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("format is not UTF-8")]
    NotUtf8,
    #[error("invalid strftime format")]
    BadFormat,
    #[error("reply would exceed {0} bytes")]
    TooLong(usize),
}

/// Formats `now` for a time-service request. `limit` is the largest reply
/// allowed; a longer result is refused, not cut.
pub fn format_request<Tz: TimeZone>(request: &[u8], now: &DateTime<Tz>, limit: usize) -> Result<String, TimeError>
where
    Tz::Offset: std::fmt::Display,
{
    let format = std::str::from_utf8(request).map_err(|_| TimeError::NotUtf8)?.trim();
    let format = if format.is_empty() { DEFAULT_FORMAT } else { format };
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(TimeError::BadFormat);
    }
    // Every item is at most a few dozen bytes, so checking the count first
    // bounds the work before formatting anything.
    if items.len() > limit {
        return Err(TimeError::TooLong(limit));
    }
    let mut out = String::new();
    use std::fmt::Write as _;
    write!(out, "{}", now.format_with_items(items.into_iter())).map_err(|_| TimeError::BadFormat)?;
    if out.len() > limit {
        return Err(TimeError::TooLong(limit));
    }
    Ok(out)
}

/// The error text a time request gets back (short, never larger than the limit).
pub fn error_text(e: &TimeError) -> String {
    format!("error: {e}")
}

/// RFC 867 daytime: the `ctime` layout most servers use, with CRLF.
pub fn daytime<Tz: TimeZone>(now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{}\r\n", now.format("%a %b %e %H:%M:%S %Y %Z"))
}

/// RFC 868: seconds since 1900, as 4 big-endian bytes. The count wraps in
/// 2036, which RFC 868 leaves to the reader; taking it modulo 2^32 is what
/// every implementation does.
pub fn rfc868(unix_seconds: i64) -> [u8; 4] {
    let since_1900 = unix_seconds.wrapping_add(RFC868_EPOCH_OFFSET);
    (since_1900.rem_euclid(1 << 32) as u32).to_be_bytes()
}

/// Decodes an RFC 868 reply back to Unix seconds, taking the era closest to
/// `near` (so 2036's wrap decodes correctly).
pub fn rfc868_decode(bytes: [u8; 4], near_unix: i64) -> i64 {
    let count = i64::from(u32::from_be_bytes(bytes));
    let era = (near_unix + RFC868_EPOCH_OFFSET - count + (1 << 31)).div_euclid(1 << 32);
    count + era * (1 << 32) - RFC868_EPOCH_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn at() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(2018, 7, 14, 17, 37, 54)
            .unwrap()
    }

    #[test]
    fn empty_request_means_the_seed_default() {
        assert_eq!(format_request(b"", &at(), 64).unwrap(), "2018-07-14 17:37:54");
        assert_eq!(format_request(b"  \n", &at(), 64).unwrap(), "2018-07-14 17:37:54");
    }

    #[test]
    fn formats_are_strftime() {
        assert_eq!(format_request(b"%Y", &at(), 64).unwrap(), "2018");
        assert_eq!(format_request(b"%Y %m %d", &at(), 64).unwrap(), "2018 07 14");
        assert_eq!(format_request("%H时%M分".as_bytes(), &at(), 64).unwrap(), "17时37分");
    }

    #[test]
    fn bad_and_oversized_formats_are_errors_not_panics() {
        assert_eq!(format_request(b"%Q", &at(), 64), Err(TimeError::BadFormat));
        assert_eq!(format_request(b"%", &at(), 64), Err(TimeError::BadFormat));
        assert_eq!(format_request(b"\xff", &at(), 64), Err(TimeError::NotUtf8));
        assert_eq!(format_request(b"%c%c%c%c", &at(), 64), Err(TimeError::TooLong(64)));
        let many = "%Y".repeat(10_000);
        assert_eq!(format_request(many.as_bytes(), &at(), 64), Err(TimeError::TooLong(64)));
        assert!(error_text(&TimeError::BadFormat).len() <= REPLY_ALLOWANCE);
    }

    #[test]
    fn rfc868_counts_from_1900() {
        // RFC 868: 2,208,988,800 is 1970-01-01 00:00 GMT.
        assert_eq!(rfc868(0), 2_208_988_800u32.to_be_bytes());
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap().timestamp();
        assert_eq!(rfc868_decode(rfc868(now), now), now);
        // Past the 2036 wrap.
        let later = Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap().timestamp();
        assert_eq!(rfc868_decode(rfc868(later), later), later);
    }

    #[test]
    fn daytime_is_a_crlf_line() {
        let line = daytime(&at());
        assert_eq!(line, "Sat Jul 14 17:37:54 2018 +08:00\r\n");
    }
}
