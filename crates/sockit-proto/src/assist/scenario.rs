//! Scenarios: expect for sockets (`sockit nc --script FILE`).
//!
//! A scenario is a TOML list of steps run in order over one connection:
//!
//! ```toml
//! timeout = 5                  # seconds an expect waits, unless it says
//!
//! [[step]]
//! send = "hello {{seq}}\n"     # a template; or send_hex = "01 02 {{hex:03}}"
//! [[step]]
//! expect = '^hello 1$'         # a regex searched in what has arrived
//! timeout = 2
//! [[step]]
//! expect_hex = "01 ?? 03"      # or a hex pattern
//! [[step]]
//! send = '{"cmd":"ls"}'
//! frame = "len32le"            # the send gets a 4-byte length prefix
//! [[step]]
//! delay = 0.5
//! [[step]]
//! close = true                 # half-close: the peer reads end of stream
//! [[step]]
//! expect_closed = true         # the peer closes its side too
//! ```
//!
//! An expectation searches the bytes received and not yet consumed; when
//! it matches, everything up to the end of the match is consumed, so the
//! next expectation starts after it. This module parses and matches; the
//! driver owns the socket and the clock.

use std::time::Duration;

use serde::Deserialize;

use super::messages::FrameMode;
use super::pattern::{self, Found, HexPattern, PatternError};
use super::template::{Template, TemplateError};

/// Most steps in one scenario.
pub const MAX_STEPS: usize = 10_000;
/// An expect's wait when neither it nor the file says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait or delay a step may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Most received bytes kept unconsumed while waiting: an expectation that
/// has not matched in this much output is not going to.
pub const MAX_PENDING: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario: {0}")]
    Toml(String),
    #[error("step {index}: {reason}")]
    Step { index: usize, reason: String },
    #[error("step {index}: {source}")]
    Pattern { index: usize, source: PatternError },
    #[error("step {index}: {source}")]
    Template { index: usize, source: TemplateError },
    #[error("a scenario has at most {MAX_STEPS} steps")]
    TooMany,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    name: Option<String>,
    send: Option<String>,
    send_hex: Option<String>,
    frame: Option<String>,
    expect: Option<String>,
    expect_hex: Option<String>,
    expect_closed: Option<bool>,
    timeout: Option<f64>,
    delay: Option<f64>,
    close: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    timeout: Option<f64>,
    #[serde(default, rename = "step")]
    steps: Vec<StepSpec>,
}

/// What an expect step looks for.
#[derive(Debug, Clone)]
pub enum Expectation {
    Regex(regex::bytes::Regex),
    Hex(HexPattern),
}

impl Expectation {
    /// The first match in `pending`, the bytes received and not consumed.
    pub fn find(&self, pending: &[u8]) -> Option<Found> {
        match self {
            Expectation::Regex(re) => pattern::regex_found(re, pending, 0),
            Expectation::Hex(p) => p.find(pending),
        }
    }

    /// How a report names it: `/regex/` or `hex 01 ?? 03`.
    pub fn describe(&self) -> String {
        match self {
            Expectation::Regex(re) => format!("/{}/", re.as_str()),
            Expectation::Hex(p) => format!("hex {p}"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Send the rendered template, framed (`Raw`: as is).
    Send {
        template: Template,
        frame: FrameMode,
    },
    Expect {
        what: Expectation,
        timeout: Duration,
    },
    /// The peer closes its side within the timeout.
    ExpectClosed {
        timeout: Duration,
    },
    Delay(Duration),
    /// Half-close our side.
    Close,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// The file's name for it, or what it does (`send`, `expect /x/`).
    pub name: String,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub steps: Vec<Step>,
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Toml(e.message().to_owned()))?;
        if file.steps.len() > MAX_STEPS {
            return Err(ScenarioError::TooMany);
        }
        let default_timeout = match file.timeout {
            None => DEFAULT_TIMEOUT,
            Some(s) => seconds(s).ok_or_else(|| ScenarioError::Toml("timeout is 0 to 3600 seconds".into()))?,
        };
        let steps = file
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, spec)| compile(i + 1, spec, default_timeout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { steps })
    }
}

fn seconds(s: f64) -> Option<Duration> {
    (0.0..=MAX_WAIT.as_secs_f64())
        .contains(&s)
        .then(|| Duration::from_secs_f64(s))
}

fn compile(index: usize, spec: StepSpec, default_timeout: Duration) -> Result<Step, ScenarioError> {
    let bad = |reason: &str| ScenarioError::Step {
        index,
        reason: reason.to_owned(),
    };
    let timeout = match spec.timeout {
        None => default_timeout,
        Some(s) => seconds(s).ok_or_else(|| bad("timeout is 0 to 3600 seconds"))?,
    };
    let kinds = [
        spec.send.is_some(),
        spec.send_hex.is_some(),
        spec.expect.is_some(),
        spec.expect_hex.is_some(),
        spec.expect_closed == Some(true),
        spec.delay.is_some(),
        spec.close == Some(true),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(bad(
            "give exactly one of send, send_hex, expect, expect_hex, expect_closed, delay or close",
        ));
    }
    let frame = spec
        .frame
        .as_deref()
        .map(str::parse::<FrameMode>)
        .transpose()
        .map_err(|e| bad(&e.to_string()))?
        .unwrap_or(FrameMode::Raw);
    if spec.frame.is_some() && spec.send.is_none() && spec.send_hex.is_none() {
        return Err(bad("frame applies to a send"));
    }
    if spec.timeout.is_some() && spec.expect.is_none() && spec.expect_hex.is_none() && spec.expect_closed.is_none() {
        return Err(bad("timeout applies to an expect"));
    }
    let template_err = |source| ScenarioError::Template { index, source };
    let pattern_err = |source| ScenarioError::Pattern { index, source };
    let (action, what) = if let Some(t) = &spec.send {
        let template = Template::parse(t).map_err(template_err)?;
        (Action::Send { template, frame }, "send".to_owned())
    } else if let Some(h) = &spec.send_hex {
        let template = Template::parse_hex(h).map_err(template_err)?;
        (Action::Send { template, frame }, "send".to_owned())
    } else if let Some(r) = &spec.expect {
        let what = Expectation::Regex(pattern::regex(r).map_err(pattern_err)?);
        let name = format!("expect {}", what.describe());
        (Action::Expect { what, timeout }, name)
    } else if let Some(h) = &spec.expect_hex {
        let what = Expectation::Hex(HexPattern::parse(h).map_err(pattern_err)?);
        let name = format!("expect {}", what.describe());
        (Action::Expect { what, timeout }, name)
    } else if let Some(d) = spec.delay {
        let d = seconds(d).ok_or_else(|| bad("delay is 0 to 3600 seconds"))?;
        (Action::Delay(d), format!("delay {}s", d.as_secs_f64()))
    } else if spec.close == Some(true) {
        (Action::Close, "close".to_owned())
    } else {
        (Action::ExpectClosed { timeout }, "expect closed".to_owned())
    };
    Ok(Step {
        name: spec.name.unwrap_or(what),
        action,
    })
}

/// Received bytes as a report shows them: text with escapes, at most
/// `limit` bytes, and how many more there were.
pub fn show_received(data: &[u8], limit: usize) -> String {
    let shown = data.get(..limit.min(data.len())).unwrap_or_default();
    let mut out = String::from("\"");
    match std::str::from_utf8(shown) {
        Ok(text) => out.push_str(&text.escape_debug().to_string()),
        Err(_) => out.push_str(&shown.escape_ascii().to_string()),
    }
    out.push('"');
    if data.len() > shown.len() {
        out.push_str(&format!(" (and {} more bytes)", data.len() - shown.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_step() {
        let s = Scenario::from_toml(
            r#"
            timeout = 2
            [[step]]
            send = "hi {{seq}}\n"
            [[step]]
            send_hex = "01 02"
            frame = "len32le"
            [[step]]
            name = "greeting"
            expect = '^hi 1$'
            [[step]]
            expect_hex = "01 ?? 03"
            timeout = 0.5
            [[step]]
            delay = 0.1
            [[step]]
            close = true
            [[step]]
            expect_closed = true
            "#,
        )
        .unwrap();
        let names: Vec<&str> = s.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "send",
                "send",
                "greeting",
                "expect hex 01 ?? 03",
                "delay 0.1s",
                "close",
                "expect closed"
            ]
        );
        assert!(matches!(
            s.steps[1].action,
            Action::Send {
                frame: FrameMode::Len32Le,
                ..
            }
        ));
        assert!(matches!(s.steps[2].action, Action::Expect { timeout, .. } if timeout == Duration::from_secs(2)));
        assert!(matches!(s.steps[3].action, Action::Expect { timeout, .. } if timeout == Duration::from_millis(500)));
    }

    #[test]
    fn bad_steps_are_named() {
        let err = |t: &str| Scenario::from_toml(t).unwrap_err().to_string();
        assert!(err("[[step]]\nsend='a'\nexpect='b'").starts_with("step 1: give exactly one"));
        assert!(err("[[step]]\n").starts_with("step 1: give exactly one"));
        assert!(err("[[step]]\nsend='a'\n[[step]]\nexpect='('").starts_with("step 2: regex"));
        assert!(err("[[step]]\nexpect='a'\nframe='line'").contains("frame applies to a send"));
        assert!(err("[[step]]\nsend='a'\ntimeout=1").contains("timeout applies to an expect"));
        assert!(err("[[step]]\ndelay=-1").contains("delay is"));
        assert!(err("[[step]]\nsend='{{bogus-macro}}'").contains("unknown macro"));
        assert!(err("[[step]]\nsned='a'").contains("unknown field"));
    }

    #[test]
    fn expectations_search_pending_bytes() {
        let re = Expectation::Regex(pattern::regex("^HELLO (\\w+)$").unwrap());
        assert_eq!(re.find(b"junk\r\nHELLO ann\r\nrest").unwrap().span(), 6..15);
        assert!(re.find(b"hello ann\n").is_none());
        let hex = Expectation::Hex(HexPattern::parse("01 ?? 03").unwrap());
        assert_eq!(hex.find(&[0, 1, 2, 3, 4]).unwrap().span(), 1..4);
        assert_eq!(show_received(b"ab\n\xff", 10), r#""ab\n\xff""#);
        assert_eq!(show_received("你好\n".as_bytes(), 10), r#""你好\n""#);
        assert_eq!(show_received(b"abcdef", 2), r#""ab" (and 4 more bytes)"#);
    }
}
