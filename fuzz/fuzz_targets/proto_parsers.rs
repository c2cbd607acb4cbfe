//! Every other total parser in sockit-proto, on any bytes, with the
//! invariants each one promises (not just "no panic"):
//! - RelPath never yields an escaping component and round-trips;
//! - exec::classify decides on 4+ bytes, and on any non-empty bytes once paused;
//! - a time reply never exceeds its limit;
//! - an upper-cased datagram is never longer than the request;
//! - any JSON object parses to a request or a typed error.
#![no_main]

use chrono::{FixedOffset, TimeZone};
use libfuzzer_sys::fuzz_target;
use sockit_proto::exec::{Opening, classify};
use sockit_proto::files::Request;
use sockit_proto::path::RelPath;
use sockit_proto::{clock, echo};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(path) = RelPath::parse_dir(text) {
            for c in path.components() {
                assert!(!c.is_empty() && c != "." && c != "..");
                assert!(!c.contains(['/', '\\', '\0']));
            }
            assert_eq!(RelPath::parse_dir(&path.to_string()).ok(), Some(path));
        }
    }

    let decided = classify(data, 65_536, false);
    if data.len() >= 4 {
        assert_ne!(decided, Opening::NeedMore);
    }
    if !data.is_empty() {
        assert_ne!(classify(data, 65_536, true), Opening::NeedMore);
    }

    if let Some(now) = FixedOffset::east_opt(8 * 3600).and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 23, 0, 0).single()) {
        if let Ok(reply) = clock::format_request(data, &now, clock::REPLY_ALLOWANCE) {
            assert!(reply.len() <= clock::REPLY_ALLOWANCE);
        }
    }

    assert!(echo::upper_datagram(data).len() <= data.len());

    if let Ok(serde_json::Value::Object(header)) = serde_json::from_slice(data) {
        let _ = Request::from_header(&header);
    }
});
