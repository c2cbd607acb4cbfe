//! Auto-reply rules: a peer that answers by itself (`sockit nc --rules`,
//! and the assistant page).
//!
//! A rules file is TOML:
//!
//! ```toml
//! frame = "line"                # how received bytes are cut into messages
//!
//! [[rule]]
//! name = "ping"                 # optional, shown in logs
//! regex = '^PING (\d+)$'        # or exact = "...", contains = "...", hex = "01 03 ?? ??"
//! reply = "PONG {{1}} #{{seq}}" # a template; or reply_hex = "01 03 {{1}}"
//! append = ["crc16-modbus"]     # suffixes after the rendered reply
//! delay = 0.2                   # seconds before the reply goes out
//! once = true                   # fire once per connection
//! close = true                  # close the connection after replying
//! enabled = false               # kept in the file, not applied
//! ```
//!
//! Rules are tried in order and the first that matches wins. A rule with
//! no reply swallows the message (later rules do not see it), or with
//! `close` only hangs up. This module decides; the driver sends, waits
//! and closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use chrono::{DateTime, TimeZone};
use regex::bytes::{RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::append::Append;
use super::messages::FrameMode;
use super::pattern::{self, HexPattern, MAX_REGEX_SIZE, Matcher, PatternError};
use super::template::{CaptureUse, Context, Template, TemplateError};

/// Most rules one file may hold: far more than anyone writes by hand, few
/// enough that loading and matching stay instant.
pub const MAX_RULES: usize = 1000;
/// Longest per-rule delay: a reply held longer is a mistake, not a test.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Largest rules file read.
pub const MAX_RULES_FILE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("rules file: {0}")]
    Toml(String),
    #[error("rule {index}: {reason}")]
    Rule { index: usize, reason: String },
    #[error("rule {index}: {source}")]
    Pattern { index: usize, source: PatternError },
    #[error("rule {index}: {source}")]
    Template { index: usize, source: TemplateError },
    #[error("a rules file holds at most {MAX_RULES} rules")]
    TooMany,
    #[error("a rules file is at most {MAX_RULES_FILE} bytes")]
    TooLarge,
}

/// One rule as the file spells it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Option<String>,
    exact: Option<String>,
    contains: Option<String>,
    regex: Option<String>,
    hex: Option<String>,
    reply: Option<String>,
    reply_hex: Option<String>,
    #[serde(default)]
    append: Vec<String>,
    delay: Option<f64>,
    #[serde(default)]
    once: bool,
    #[serde(default)]
    close: bool,
    enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    frame: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The file's name for it, or `rule N` (counting from 1).
    pub name: String,
    pub matcher: Matcher,
    pub reply: Option<Template>,
    pub append: Vec<Append>,
    pub delay: Duration,
    pub once: bool,
    pub close: bool,
    pub enabled: bool,
    /// How much of its match the reply reads.
    pub captures: CaptureUse,
}

/// A loaded rules file, shared by every connection that answers with it.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The file's `frame`, if it names one.
    pub frame: Option<FrameMode>,
    index: Index,
}

/// Which rules can match a message, found without trying each: a message
/// costs a hash lookup, one pass of each automaton and the work of the
/// rules that do match, however many rules there are.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Exact rules by their length (hashing a length is cheaper than
    /// hashing a message), then compared.
    exact: HashMap<usize, Vec<usize>>,
    /// Closed hex patterns by their length; open ones are always tried.
    hex_by_len: HashMap<usize, Vec<usize>>,
    hex_open: Vec<usize>,
    /// Every regex rule in one automaton, and each pattern's rule.
    regexes: Option<RegexSet>,
    regex_rule: Vec<usize>,
    /// Every substring rule in one automaton, and each needle's rule.
    substrings: Option<AhoCorasick>,
    substring_rule: Vec<usize>,
    /// Rules no automaton covers (when one could not be built): tried on
    /// every message.
    always: Vec<usize>,
}

impl Index {
    fn new(rules: &[Rule]) -> Self {
        let mut index = Index::default();
        let (mut sources, mut needles) = (Vec::new(), Vec::new());
        for (i, rule) in rules.iter().enumerate().filter(|(_, r)| r.enabled) {
            match &rule.matcher {
                Matcher::Exact(bytes) => index.exact.entry(bytes.len()).or_default().push(i),
                Matcher::Hex(p) if p.open_end() => index.hex_open.push(i),
                Matcher::Hex(p) => index.hex_by_len.entry(p.len()).or_default().push(i),
                Matcher::Regex(re) => {
                    sources.push(re.as_str().to_owned());
                    index.regex_rule.push(i);
                }
                Matcher::Contains(finder) => {
                    needles.push(finder.needle().to_vec());
                    index.substring_rule.push(i);
                }
            }
        }
        // Each pattern compiled alone under the limit; together they may
        // not fit, and then each is tried on its own.
        index.regexes = RegexSetBuilder::new(&sources)
            .multi_line(true)
            .crlf(true)
            .size_limit(MAX_REGEX_SIZE.saturating_mul(8))
            .dfa_size_limit(MAX_REGEX_SIZE.saturating_mul(8))
            .build()
            .ok();
        if index.regexes.is_none() {
            index.always.append(&mut index.regex_rule);
        }
        index.substrings = AhoCorasick::new(&needles).ok();
        if index.substrings.is_none() {
            index.always.append(&mut index.substring_rule);
        }
        index
    }

    /// The rules that may match `message`, in order, into `out`; and
    /// whether each was already proven to match by an automaton.
    fn candidates(&self, message: &[u8], out: &mut Vec<(usize, bool)>) {
        out.clear();
        let unproven = |i: &usize| (*i, false);
        out.extend(self.exact.get(&message.len()).into_iter().flatten().map(unproven));
        out.extend(self.hex_by_len.get(&message.len()).into_iter().flatten().map(unproven));
        out.extend(self.hex_open.iter().map(unproven));
        out.extend(self.always.iter().map(unproven));
        if let Some(set) = &self.regexes {
            if !self.regex_rule.is_empty() {
                let hits = set.matches(message);
                out.extend(
                    hits.iter()
                        .filter_map(|slot| self.regex_rule.get(slot))
                        .map(|i| (*i, true)),
                );
            }
        }
        if let Some(ac) = &self.substrings {
            if !self.substring_rule.is_empty() {
                for m in ac.find_overlapping_iter(message) {
                    if let Some(i) = self.substring_rule.get(m.pattern().as_usize()) {
                        out.push((*i, true));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup_by_key(|(i, _)| *i);
    }
}

impl RuleSet {
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        if text.len() > MAX_RULES_FILE {
            return Err(RulesError::TooLarge);
        }
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError::Toml(e.message().to_owned()))?;
        if file.rules.len() > MAX_RULES {
            return Err(RulesError::TooMany);
        }
        let frame = file
            .frame
            .map(|f| f.parse::<FrameMode>())
            .transpose()
            .map_err(|e| RulesError::Toml(e.to_string()))?;
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, spec)| compile(i + 1, spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(rules, frame))
    }

    pub fn new(rules: Vec<Rule>, frame: Option<FrameMode>) -> Self {
        let index = Index::new(&rules);
        Self { rules, frame, index }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first enabled rule, not `spent`, that matches, and its match.
    /// `scratch` is reused between messages.
    fn first_match(
        &self,
        message: &[u8],
        spent: &[bool],
        scratch: &mut Vec<(usize, bool)>,
    ) -> Option<(usize, pattern::Found)> {
        self.index.candidates(message, scratch);
        scratch.iter().find_map(|&(i, proven)| {
            let rule = self.rules.get(i)?;
            if spent.get(i).copied().unwrap_or(false) {
                return None;
            }
            if proven && rule.captures == CaptureUse::None {
                // An automaton matched it and the reply reads no capture.
                return Some((i, pattern::Found::default()));
            }
            rule.matcher
                .find_as_needed(message, rule.captures)
                .map(|found| (i, found))
        })
    }
}

fn compile(index: usize, spec: RuleSpec) -> Result<Rule, RulesError> {
    let bad = |reason: &str| RulesError::Rule {
        index,
        reason: reason.to_owned(),
    };
    let pattern_err = |source| RulesError::Pattern { index, source };
    let matcher = match (&spec.exact, &spec.contains, &spec.regex, &spec.hex) {
        (Some(t), None, None, None) => Matcher::exact(t),
        (None, Some(t), None, None) => {
            if t.is_empty() {
                return Err(bad(
                    "contains = \"\" matches everything; use regex = '' for a catch-all",
                ));
            }
            Matcher::contains(t)
        }
        (None, None, Some(r), None) => Matcher::Regex(pattern::regex(r).map_err(pattern_err)?),
        (None, None, None, Some(h)) => Matcher::Hex(HexPattern::parse(h).map_err(pattern_err)?),
        (None, None, None, None) => return Err(bad("needs one of exact, contains, regex or hex")),
        _ => return Err(bad("give only one of exact, contains, regex or hex")),
    };
    let template_err = |source| RulesError::Template { index, source };
    let reply = match (&spec.reply, &spec.reply_hex) {
        (Some(t), None) => Some(Template::parse(t).map_err(template_err)?),
        (None, Some(h)) => Some(Template::parse_hex(h).map_err(template_err)?),
        (None, None) => None,
        _ => return Err(bad("give reply or reply_hex, not both")),
    };
    if let Some(name) = reply
        .iter()
        .flat_map(Template::capture_names)
        .find(|name| match &matcher {
            Matcher::Regex(re) => !re.capture_names().flatten().any(|n| n == *name),
            _ => true,
        })
    {
        return Err(bad(&format!(
            "{{{{{name}}}}}: the rule's pattern has no group named {name}"
        )));
    }
    let append = spec
        .append
        .iter()
        .map(|a| a.parse::<Append>().map_err(|e| bad(&e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let delay = match spec.delay {
        None => Duration::ZERO,
        Some(s) if (0.0..=MAX_DELAY.as_secs_f64()).contains(&s) => Duration::from_secs_f64(s),
        Some(_) => return Err(bad("delay is a number of seconds, 0 to 3600")),
    };
    Ok(Rule {
        name: spec.name.unwrap_or_else(|| format!("rule {index}")),
        matcher,
        append,
        delay,
        once: spec.once,
        close: spec.close,
        enabled: spec.enabled.unwrap_or(true),
        captures: reply.as_ref().map_or(CaptureUse::None, Template::captures_used),
        reply,
    })
}

/// What a matching rule asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Index of the rule in its set.
    pub rule: usize,
    /// The reply's bytes (before the session's framing wraps them).
    pub reply: Option<Vec<u8>>,
    pub delay: Duration,
    /// Close the connection once the reply (if any) has gone out.
    pub close: bool,
}

/// One connection's use of a rule set: its `{{seq}}` counter and which
/// `once` rules have fired.
#[derive(Debug, Clone)]
pub struct Responder {
    rules: Arc<RuleSet>,
    spent: Vec<bool>,
    seq: u64,
    scratch: Vec<(usize, bool)>,
}

impl Responder {
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let spent = vec![false; rules.len()];
        Self {
            rules,
            spent,
            seq: 0,
            scratch: Vec::new(),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// What to do about one received message, if any rule matches. The
    /// clock is read only for a reply that shows the time.
    pub fn answer<Tz: TimeZone>(
        &mut self,
        message: &[u8],
        now: impl FnOnce() -> DateTime<Tz>,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Option<Action>
    where
        Tz::Offset: std::fmt::Display,
    {
        let (index, found) = self.rules.first_match(message, &self.spent, &mut self.scratch)?;
        let rule = self.rules.rules.get(index)?;
        if rule.once {
            if let Some(spent) = self.spent.get_mut(index) {
                *spent = true;
            }
        }
        let reply = rule.reply.as_ref().map(|template| {
            self.seq += 1;
            let captures = found.slices(message);
            let named = found.named_slices(message);
            let now = template.uses_clock().then(now);
            let mut ctx = Context {
                seq: self.seq,
                now,
                random,
                received: Some(message),
                captures: &captures,
                named: &named,
            };
            let mut bytes = template.render(&mut ctx);
            for a in &rule.append {
                a.apply(&mut bytes);
            }
            bytes
        });
        Some(Action {
            rule: index,
            reply,
            delay: rule.delay,
            close: rule.close,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Utc;
    use proptest::prelude::*;

    fn responder(toml: &str) -> Responder {
        Responder::new(Arc::new(RuleSet::from_toml(toml).unwrap()))
    }

    fn answer(r: &mut Responder, msg: &[u8]) -> Option<Action> {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 8, 30, 5).unwrap();
        r.answer(msg, || now, &mut |b: &mut [u8]| b.fill(0x5a))
    }

    fn reply(r: &mut Responder, msg: &[u8]) -> Option<Vec<u8>> {
        answer(r, msg).and_then(|a| a.reply)
    }

    #[test]
    fn first_match_wins_with_captures_and_seq() {
        let mut r = responder(
            r#"
            [[rule]]
            regex = '^PING (\d+)$'
            reply = "PONG {{1}} #{{seq}}"
            [[rule]]
            contains = "PING"
            reply = "never: the first rule wins"
            [[rule]]
            exact = "time"
            reply = "{{time:%H:%M}} len={{len}}"
            "#,
        );
        assert_eq!(reply(&mut r, b"PING 42").unwrap(), b"PONG 42 #1");
        assert_eq!(reply(&mut r, b"PING 7").unwrap(), b"PONG 7 #2");
        assert_eq!(reply(&mut r, b"xPINGx").unwrap(), b"never: the first rule wins");
        assert_eq!(reply(&mut r, b"time").unwrap(), b"08:30 len=4");
        assert_eq!(answer(&mut r, b"nothing"), None);
    }

    #[test]
    fn modbus_reply_with_crc_over_the_reply() {
        let mut r = responder(
            r#"
            [[rule]]
            hex = "01 03 ?? ?? 00 01 ?? ??"
            reply_hex = "01 03 02 {{1}} {{2}}"
            append = ["crc16-modbus"]
            "#,
        );
        let out = reply(&mut r, &[1, 3, 0x00, 0x10, 0, 1, 0x85, 0xcf]).unwrap();
        // Data then CRC-16/MODBUS of exactly those five bytes, low byte first.
        let mut want = vec![1, 3, 2, 0x00, 0x10];
        Append::Crc16Modbus.apply(&mut want);
        assert_eq!(out, want);
    }

    #[test]
    fn once_close_delay_and_disabled() {
        let mut r = responder(
            r#"
            [[rule]]
            exact = "hello"
            reply = "first"
            once = true
            [[rule]]
            exact = "hello"
            reply = "again"
            delay = 0.25
            [[rule]]
            exact = "bye"
            close = true
            [[rule]]
            exact = "x"
            reply = "off"
            enabled = false
            "#,
        );
        assert_eq!(reply(&mut r, b"hello").unwrap(), b"first");
        let again = answer(&mut r, b"hello").unwrap();
        assert_eq!(again.reply.as_deref(), Some(&b"again"[..]));
        assert_eq!(again.delay, Duration::from_millis(250));
        let bye = answer(&mut r, b"bye").unwrap();
        assert_eq!((bye.reply, bye.close), (None, true));
        assert_eq!(answer(&mut r, b"x"), None);
        // Each connection has its own `once` and counter.
        let mut fresh = Responder::new(Arc::clone(&r.rules));
        assert_eq!(reply(&mut fresh, b"hello").unwrap(), b"first");
    }

    #[test]
    fn many_regex_rules_keep_their_order() {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("[[rule]]\nregex = '^cmd{i}( .*)?$'\nreply = \"r{i}\"\n"));
        }
        text.push_str("[[rule]]\nregex = ''\nreply = \"default {{0}}\"\n");
        let mut r = responder(&text);
        assert_eq!(reply(&mut r, b"cmd57 x").unwrap(), b"r57");
        assert_eq!(reply(&mut r, b"cmd1").unwrap(), b"r1");
        assert_eq!(reply(&mut r, b"other").unwrap(), b"default ");
    }

    #[test]
    fn bad_files_say_which_rule() {
        let err = |t: &str| RuleSet::from_toml(t).unwrap_err().to_string();
        assert!(err("[[rule]]\nreply = 'x'").contains("rule 1: needs one of"));
        assert!(err("[[rule]]\nexact='a'\n[[rule]]\nexact='a'\nregex='b'").contains("rule 2: give only one"));
        assert!(err("[[rule]]\nregex = '(a{1000}){1000}'").starts_with("rule 1: regex"));
        assert!(err("[[rule]]\nexact='a'\nreply='{{nope}}'").contains("no group named nope"));
        assert!(err("[[rule]]\nexact='a'\nreply='{{seq'").contains("no closing"));
        assert!(err("[[rule]]\nexact='a'\nappend=['crc64']").contains("crc64"));
        assert!(err("[[rule]]\nexact='a'\ndelay=-1").contains("delay"));
        assert!(err("[[rule]]\nexact='a'\nreplay='x'").contains("unknown field"));
        assert!(err("frame = 'morse'").contains("morse"));
        assert!(err("[[rule]]\ncontains=''").contains("catch-all"));
        let ok = RuleSet::from_toml("frame = 'len32le'").unwrap();
        assert_eq!((ok.frame, ok.len()), (Some(FrameMode::Len32Le), 0));
    }

    /// The first rule that matches, found the slow way: each in order.
    fn naive_first(set: &RuleSet, msg: &[u8]) -> Option<usize> {
        set.rules()
            .iter()
            .position(|r| r.enabled && r.matcher.find(msg).is_some())
    }

    proptest! {
        /// The index finds the same first rule as trying each rule in
        /// order, across every kind of matcher.
        #[test]
        fn index_agrees_with_trying_each_rule(msg in proptest::collection::vec(proptest::sample::select(b"ab\x01\x02xyz ".to_vec()), 0..8)) {
            let set = RuleSet::from_toml(
                r#"
                [[rule]]
                contains = "ab"
                enabled = false
                [[rule]]
                hex = "01 ?? 02"
                [[rule]]
                exact = "xyz"
                [[rule]]
                regex = '^a+b$'
                [[rule]]
                contains = "b x"
                [[rule]]
                hex = "78 *"
                [[rule]]
                regex = 'z{2}'
                [[rule]]
                contains = "ab"
                [[rule]]
                exact = ""
                "#,
            ).unwrap();
            let mut scratch = Vec::new();
            let indexed = set.first_match(&msg, &[], &mut scratch).map(|(i, _)| i);
            prop_assert_eq!(indexed, naive_first(&set, &msg));
        }

        /// Whatever arrives, answering never panics, and a reply is always
        /// the template with the capture substituted exactly.
        #[test]
        fn answers_never_panic(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = responder(
                "[[rule]]\nregex = '(?s-u)^(.{0,4})'\nreply = '<{{1}}|{{len}}|{{rand:2}}>'\n",
            );
            let out = reply(&mut r, &msg).unwrap();
            let mut want = b"<".to_vec();
            want.extend_from_slice(&msg[..msg.len().min(4)]);
            want.extend_from_slice(format!("|{}|5a5a>", msg.len()).as_bytes());
            prop_assert_eq!(out, want);
        }
    }
}
