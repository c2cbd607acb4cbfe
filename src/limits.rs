//! Every server limit, defined once: its name (the config key; the flag is
//! the same with dashes), the range it must lie in, and why. Flags and
//! config files both go through [`Limit::check`], so `--max-connections 0`
//! and `max_connections = 0` are refused alike, when parsed, with the same
//! message.
//!
//! The ranges keep a server usable: a zero connection limit serves nobody,
//! a zero timeout works on loopback only by accident, and a header limit
//! too small for any request refuses everything.

use std::fmt;

/// A limit's unit, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Bytes,
}

#[derive(Debug)]
pub struct Limit {
    /// The config key (`max_connections`); the flag is `--max-connections`.
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
    pub unit: Unit,
    /// Why the minimum, for the error message.
    pub why: &'static str,
}

/// Why a limit's value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError(pub String);

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitError {}

impl Limit {
    /// The value if it lies in range, else why not.
    pub fn check(&self, value: u64) -> Result<u64, LimitError> {
        let unit = match self.unit {
            Unit::Count => "",
            Unit::Seconds => " s",
            Unit::Bytes => " bytes",
        };
        if value < self.min {
            return Err(LimitError(format!(
                "{} must be at least {}{unit} ({}), not {value}",
                self.key, self.min, self.why
            )));
        }
        if value > self.max {
            return Err(LimitError(format!(
                "{} must be at most {}{unit}, not {value}",
                self.key, self.max
            )));
        }
        Ok(value)
    }

    /// Parses a flag's text and checks it.
    pub fn parse(&self, text: &str) -> Result<u64, LimitError> {
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| LimitError(format!("{} must be a whole number, not {text:?}", self.key)))?;
        self.check(value)
    }
}

/// A clap value parser for `limit`, into the flag's own integer type.
pub fn parser<T>(limit: &'static Limit) -> impl Fn(&str) -> Result<T, LimitError> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64>,
{
    move |text| {
        let v = limit.parse(text)?;
        T::try_from(v).map_err(|_| LimitError(format!("{} is too large: {v}", limit.key)))
    }
}

const DAY: u64 = 86_400;

pub const MAX_CONNECTIONS: Limit = Limit {
    key: "max_connections",
    min: 1,
    // Each connection may hold a socket and a file: half the 20,000-fd
    // process limit of these machines, with room to spare.
    max: 100_000,
    unit: Unit::Count,
    why: "a server with no connection slots serves nobody",
};

pub const MAX_PER_PEER: Limit = Limit {
    key: "max_per_peer",
    min: 1,
    max: 100_000,
    unit: Unit::Count,
    why: "every client needs at least one connection",
};

pub const BACKLOG: Limit = Limit {
    key: "backlog",
    min: 1,
    max: 65_535,
    unit: Unit::Count,
    why: "the kernel needs room for one pending connection",
};

pub const HANDSHAKE_TIMEOUT: Limit = Limit {
    key: "handshake_timeout",
    min: 1,
    max: 3600,
    unit: Unit::Seconds,
    why: "a real client needs a round trip to answer",
};

pub const IDLE_TIMEOUT: Limit = Limit {
    key: "idle_timeout",
    min: 1,
    max: 7 * DAY,
    unit: Unit::Seconds,
    why: "a client needs time to send its next request",
};

pub const REQUEST_TIMEOUT: Limit = Limit {
    key: "request_timeout",
    min: 1,
    max: DAY,
    unit: Unit::Seconds,
    why: "a request header needs time to arrive",
};

pub const MIN_RATE: Limit = Limit {
    key: "min_rate",
    min: 0,
    max: 1 << 40,
    unit: Unit::Bytes,
    why: "0 turns the check off",
};

pub const DRAIN_TIMEOUT: Limit = Limit {
    key: "drain_timeout",
    min: 0,
    max: 3600,
    unit: Unit::Seconds,
    why: "0 drops transfers in flight at once",
};

pub const MAX_HEADER: Limit = Limit {
    key: "max_header",
    // `{"cmd":"put","filename":...,"filesize":...}` with a short name.
    min: 256,
    max: 16 * 1024 * 1024,
    unit: Unit::Bytes,
    why: "smaller refuses ordinary requests",
};

pub const EXEC_TIMEOUT: Limit = Limit {
    key: "exec_timeout",
    min: 1,
    max: DAY,
    unit: Unit::Seconds,
    why: "a command needs time to run",
};

pub const EXEC_MAX_OUTPUT: Limit = Limit {
    key: "exec_max_output",
    min: 1,
    max: 1 << 30,
    unit: Unit::Bytes,
    why: "an empty output cap hides every result",
};

pub const MAX_PARTIAL_BYTES: Limit = Limit {
    key: "max_partial_bytes",
    min: 0,
    max: u64::MAX,
    unit: Unit::Bytes,
    why: "0 keeps no interrupted upload for a resume",
};

pub const MAX_TRANSFERS: Limit = Limit {
    key: "max_transfers",
    min: 1,
    max: 10_000,
    unit: Unit::Count,
    why: "a server with no transfer slots serves nobody",
};

pub const MEMBER_BACKLOG: Limit = Limit {
    key: "member_backlog",
    min: 4096,
    max: 1 << 30,
    unit: Unit::Bytes,
    why: "a member must be able to queue one full line",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_absurd_values_are_refused_with_the_reason() {
        let e = MAX_CONNECTIONS.parse("0").unwrap_err().to_string();
        assert!(
            e.contains("max_connections must be at least 1") && e.contains("serves nobody"),
            "{e}"
        );
        assert!(IDLE_TIMEOUT.parse("0").is_err());
        assert!(HANDSHAKE_TIMEOUT.check(0).is_err());
        assert!(MAX_HEADER.check(0).is_err());
        assert!(MAX_CONNECTIONS.parse("-3").is_err());
        assert!(MAX_CONNECTIONS.parse("lots").is_err());
        assert_eq!(MAX_CONNECTIONS.parse("1024"), Ok(1024));
        assert_eq!(DRAIN_TIMEOUT.parse("0"), Ok(0));
        let narrow = parser::<u8>(&BACKLOG);
        assert!(narrow("300").is_err(), "300 does not fit a u8");
    }
}
