//! Filename remapping with tftpd-hpa's rule files (`in.tftpd -m FILE`), so
//! a map written for tftpd-hpa works unchanged: PXE ROMs that ask for
//! `\boot\PXELINUX.0` in the wrong case with backslashes, per-client
//! files by address, and names refused outright.
//!
//! A rule is `FLAGS REGEX [REPLACEMENT]` on a line; `#` starts a comment,
//! and a backslash keeps the next character (a space, a `#`) from ending
//! a field. Flags: `r` rewrite the first match, `g` every match, `i`
//! ignore case, `e` end here if it matched, `s` start over if it matched,
//! `a` refuse the request if it matched, `G` reads only, `P` writes only,
//! `4`/`6` IPv4/IPv6 clients only, `~` fire when the regex does *not*
//! match. The replacement knows `\0`-`\9`, `\i` (the client's address),
//! `\x` (the same in upper-case hex), and `\U`, `\L`, `\E` for case.
//!
//! Where this differs from tftpd-hpa 5.2, on purpose (docs/tftp.md):
//! - Every step is bounded: a `g` rewrite that keeps matching, or an `s`
//!   loop, ends with the request refused after [`MAX_STEPS`], and a name
//!   that grows past [`MAX_NAME`] is refused too. tftpd-hpa 5.2 spins for
//!   ever on `rg o oo`.
//! - `s` starts over from the first rule, as the manual says (5.2 resumes
//!   at the second; later versions fixed that).
//! - Matching is Rust's `regex` on the POSIX syntax translated: leftmost-
//!   first where POSIX is leftmost-longest, which only differs for an
//!   alternation whose earlier branch is a prefix of a later one
//!   (`(foo|foobar)`); back-references inside a regex are refused.

use std::fmt;
use std::net::IpAddr;

use regex::{Captures, Regex, RegexBuilder};

/// Rule evaluations (and `g` rewrites) for one name before it is refused
/// as a loop: tftpd-hpa's deadman count.
pub const MAX_STEPS: u32 = 1024;

/// The longest name remapping may produce (PATH_MAX).
pub const MAX_NAME: usize = 4096;

/// Largest map file read: far beyond any real one.
pub const MAX_FILE: usize = 1024 * 1024;

/// A parsed map file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    line: usize,
    regex: Regex,
    replacement: String,
    rewrite: bool,
    global: bool,
    end: bool,
    restart: bool,
    abort: bool,
    invert: bool,
    only: Option<Direction>,
    family: Option<Family>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    Neither,
}

/// A line of a map file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RuleError {
    pub line: usize,
    pub message: String,
}

/// Every bad line of a map file: tftpd-hpa refuses to start on any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapErrors(pub Vec<RuleError>);

impl fmt::Display for MapErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl std::error::Error for MapErrors {}

/// The request a name belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub is_read: bool,
    pub client: IpAddr,
}

/// What the rules make of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remapped {
    Name(String),
    /// An `a` rule matched: refused, with its message if it has one.
    Denied(Option<String>),
    /// The rules ran past [`MAX_STEPS`] or grew the name past [`MAX_NAME`].
    Runaway,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Self, MapErrors> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (index, line) in text.split_inclusive('\n').enumerate() {
            match parse_line(line) {
                Ok(None) => {}
                Ok(Some(mut rule)) => {
                    rule.line = index + 1;
                    rules.push(rule);
                }
                Err(message) => errors.push(RuleError {
                    line: index + 1,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(Self { rules })
        } else {
            Err(MapErrors(errors))
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules over `name`, top to bottom.
    pub fn apply(&self, name: &str, context: Context) -> Remapped {
        let mut current = name.to_owned();
        let mut steps = 0u32;
        let mut index = 0;
        let family = match context.client.to_canonical() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let direction = if context.is_read {
            Direction::Read
        } else {
            Direction::Write
        };
        while let Some(rule) = self.rules.get(index) {
            index += 1;
            if rule.only.is_some_and(|d| d != direction) || rule.family.is_some_and(|f| f != family) {
                continue;
            }
            let mut fired = false;
            loop {
                steps += 1;
                if steps > MAX_STEPS || current.len() > MAX_NAME {
                    return Remapped::Runaway;
                }
                let captures = rule.regex.captures(&current);
                let hit = captures.is_some() != rule.invert;
                if !hit {
                    break;
                }
                fired = true;
                // An inverted rule has no match to take groups from.
                let captures = if rule.invert { None } else { captures };
                if rule.abort {
                    if rule.replacement.is_empty() {
                        return Remapped::Denied(None);
                    }
                    let text = substitute(&current, captures.as_ref(), &rule.replacement, context.client);
                    return Remapped::Denied(Some(text));
                }
                if rule.rewrite {
                    current = substitute(&current, captures.as_ref(), &rule.replacement, context.client);
                }
                if !(rule.rewrite && rule.global) {
                    break;
                }
            }
            if current.len() > MAX_NAME {
                return Remapped::Runaway;
            }
            if fired && rule.end {
                break;
            }
            if fired && rule.restart {
                index = 0;
            }
        }
        Remapped::Name(current)
    }

    /// The line of the rule file each rule came from (for logs).
    pub fn lines(&self) -> impl Iterator<Item = usize> + '_ {
        self.rules.iter().map(|r| r.line)
    }
}

/// `current` with the match replaced by the expanded replacement; with no
/// match (an inverted rule), the expansion alone.
fn substitute(current: &str, captures: Option<&Captures<'_>>, replacement: &str, client: IpAddr) -> String {
    let expanded = expand(replacement, captures, client);
    match captures.and_then(|c| c.get(0)) {
        Some(m) => {
            let (before, after) = (current.get(..m.start()), current.get(m.end()..));
            format!("{}{expanded}{}", before.unwrap_or_default(), after.unwrap_or_default())
        }
        None => expanded,
    }
}

#[derive(Clone, Copy)]
enum Case {
    Keep,
    Upper,
    Lower,
}

/// Expands a replacement: `\0`-`\9` groups (empty when unmatched), `\i`
/// and `\x` the client's address, `\U` `\L` `\E` case, `\` + anything
/// else that character.
fn expand(replacement: &str, captures: Option<&Captures<'_>>, client: IpAddr) -> String {
    let mut out = String::new();
    let mut case = Case::Keep;
    let push = |out: &mut String, text: &str, case: Case| match case {
        Case::Keep => out.push_str(text),
        Case::Upper => out.push_str(&text.to_ascii_uppercase()),
        Case::Lower => out.push_str(&text.to_ascii_lowercase()),
    };
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        // Past the cap the name is refused anyway: stop copying.
        if out.len() > MAX_NAME {
            break;
        }
        if c != '\\' {
            push(&mut out, c.encode_utf8(&mut [0; 4]), case);
            continue;
        }
        match chars.next() {
            None => push(&mut out, "\\", case),
            Some(d @ '0'..='9') => {
                let group = d.to_digit(10).and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
                let text = captures.and_then(|c| c.get(group)).map_or("", |m| m.as_str());
                push(&mut out, text, case);
            }
            Some('i') => push(&mut out, &client.to_canonical().to_string(), case),
            Some('x') => push(&mut out, &hex_address(client), case),
            Some('U') => case = Case::Upper,
            Some('L') => case = Case::Lower,
            Some('E') => case = Case::Keep,
            Some(other) => push(&mut out, other.encode_utf8(&mut [0; 4]), case),
        }
    }
    out
}

/// `7F000001` for 127.0.0.1; 32 digits for IPv6 (tftpd-hpa's `\x`).
fn hex_address(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{:08X}", u32::from(v4)),
        IpAddr::V6(v6) => v6.octets().iter().map(|b| format!("{b:02X}")).collect(),
    }
}

/// One line: a rule, nothing (blank or comment), or why it is bad.
fn parse_line(line: &str) -> Result<Option<Rule>, String> {
    let mut rest = line;
    let mut fields = Vec::with_capacity(3);
    for _ in 0..3 {
        let (field, after) = next_field(rest);
        fields.push(field);
        rest = after;
    }
    let mut fields = fields.into_iter();
    let flags = fields.next().unwrap_or_default();
    if flags.is_empty() {
        return Ok(None);
    }
    let pattern = fields.next().unwrap_or_default();
    let replacement = fields.next().unwrap_or_default();
    let mut rule = Rule {
        line: 0,
        // Replaced below; a regex that cannot fail to compile.
        regex: Regex::new("").map_err(|e| e.to_string())?,
        replacement,
        rewrite: false,
        global: false,
        end: false,
        restart: false,
        abort: false,
        invert: false,
        only: None,
        family: None,
    };
    let mut ignore_case = false;
    for flag in flags.chars() {
        match flag {
            'r' => rule.rewrite = true,
            'g' => rule.global = true,
            'i' => ignore_case = true,
            'e' => rule.end = true,
            's' => rule.restart = true,
            'a' => rule.abort = true,
            // As in tftpd-hpa, the last of G and P counts.
            'G' => rule.only = Some(Direction::Read),
            'P' => rule.only = Some(Direction::Write),
            // Both: a rule for no client at all (tftpd-hpa accepts it).
            '4' | '6' if rule.family.is_some() => rule.family = Some(Family::Neither),
            '4' => rule.family = Some(Family::V4),
            '6' => rule.family = Some(Family::V6),
            '~' => rule.invert = true,
            other => return Err(format!("flag '{other}' is not one of r g i e s a G P 4 6 ~")),
        }
    }
    if rule.rewrite && rule.invert {
        return Err("an r rule cannot be inverted with ~".into());
    }
    if pattern.is_empty() {
        return Err("no regular expression".into());
    }
    let translated = translate(&pattern)?;
    rule.regex = RegexBuilder::new(&translated)
        .case_insensitive(ignore_case)
        .dot_matches_new_line(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad regular expression {pattern}: {}", first_line(&e.to_string())))?;
    Ok(Some(rule))
}

fn first_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

/// The next field of a rule line and what follows it. A backslash keeps
/// the next character (whitespace or `#`) in the field and stays in it;
/// an unescaped `#` ends the line.
fn next_field(text: &str) -> (String, &str) {
    let start = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let mut field = String::new();
    let mut escaped = false;
    for (at, c) in start.char_indices() {
        if !escaped && (c.is_ascii_whitespace() || c == '#') {
            let rest = if c == '#' {
                ""
            } else {
                start.get(at..).unwrap_or_default()
            };
            return (field, rest);
        }
        escaped = !escaped && c == '\\';
        field.push(c);
    }
    (field, "")
}

/// POSIX extended regular expression syntax as Rust's `regex` reads it.
///
/// - Inside a bracket expression a backslash is an ordinary character,
///   and so are `[` (unless it opens `[:class:]`), `&`, `-` and `~`
///   sequences that Rust would read as set operations.
/// - Outside, `\` + a letter or digit that POSIX (with GNU's extensions)
///   gives a meaning keeps it (`\w \W \s \S \b \B`; `\<` and `\>` become
///   `\b`); any other escaped character is that character.
/// - `{,n}` is `{0,n}`.
fn translate(posix: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = posix.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                None => out.push_str("\\\\"),
                Some(e @ ('w' | 'W' | 's' | 'S' | 'b' | 'B')) => {
                    out.push('\\');
                    out.push(e);
                }
                Some('<' | '>') => out.push_str("\\b"),
                Some(d @ '1'..='9') => {
                    return Err(format!(
                        "back-reference \\{d} inside a regular expression is not supported"
                    ));
                }
                Some(other) => out.push_str(&regex::escape(other.encode_utf8(&mut [0; 4]))),
            },
            '[' => translate_bracket(&mut chars, &mut out)?,
            '{' if chars.peek() == Some(&',') => out.push_str("{0"),
            other => out.push(other),
        }
    }
    Ok(out)
}

const POSIX_CLASSES: [&str; 12] = [
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit",
];

/// Copies a bracket expression, `[` already taken, up to its `]`.
fn translate_bracket(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) -> Result<(), String> {
    out.push('[');
    if chars.peek() == Some(&'^') {
        chars.next();
        out.push('^');
    }
    // A `]` first is a member, not the end.
    if chars.peek() == Some(&']') {
        chars.next();
        out.push_str("\\]");
    }
    while let Some(c) = chars.next() {
        match c {
            ']' => {
                out.push(']');
                return Ok(());
            }
            '[' if matches!(chars.peek(), Some(':' | '=' | '.')) => {
                // [:class:], [=x=], [.x.]: copied through to their closer.
                let kind = chars.next().unwrap_or(':');
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some(k) if k == kind && chars.peek() == Some(&']') => {
                            chars.next();
                            break;
                        }
                        Some(k) => name.push(k),
                        None => return Err("unterminated [ in a bracket expression".into()),
                    }
                }
                match kind {
                    ':' if POSIX_CLASSES.contains(&name.as_str()) => out.push_str(&format!("[:{name}:]")),
                    ':' => return Err(format!("no character class [:{name}:]")),
                    // A one-character equivalence class or collating
                    // element is that character (the C locale has no others).
                    _ if name.chars().count() == 1 => out.push_str(&regex::escape(&name)),
                    _ => return Err(format!("collating element [{kind}{name}{kind}] is not supported")),
                }
            }
            '\\' | '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '-' if chars.peek() == Some(&'-') => out.push_str("\\-"),
            other => out.push(other),
        }
    }
    Err("unmatched [".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        match Rules::parse(text) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn read(rules: &Rules, name: &str) -> Remapped {
        rules.apply(
            name,
            Context {
                is_read: true,
                client: "127.0.0.1".parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            },
        )
    }

    fn name(s: &str) -> Remapped {
        Remapped::Name(s.into())
    }

    #[test]
    fn the_pxe_rules_rewrite_case_and_backslashes() {
        let r = rules("rg \\\\ /\nri ^/?pxelinux\\.0$ pxelinux.0\n# a comment\n\n");
        assert_eq!(r.len(), 2);
        assert_eq!(read(&r, "boot\\PXELINUX.0"), name("boot/PXELINUX.0"));
        assert_eq!(read(&r, "/PXELinux.0"), name("pxelinux.0"));
        assert_eq!(read(&r, "other"), name("other"));
    }

    #[test]
    fn replacement_escapes() {
        let r = rules(
            "r ^ip$ ip-\\i\nr ^hex$ x-\\x-y\nr ^(g)(h)?(zz)?$ fo\\2\\3o\\9\nr ^up-(.*)$ \\U\\1\\E-\\L\\1\nr ^esc$ \\n\\e\\w\\ \\#\n",
        );
        assert_eq!(read(&r, "ip"), name("ip-127.0.0.1"));
        assert_eq!(read(&r, "hex"), name("x-7F000001-y"));
        assert_eq!(read(&r, "g"), name("foo"));
        assert_eq!(read(&r, "up-Ab"), name("AB-ab"));
        assert_eq!(read(&r, "esc"), name("new #"));
        let v6 = r.apply(
            "hex",
            Context {
                is_read: true,
                client: "::1".parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            },
        );
        assert_eq!(v6, name("x-00000000000000000000000000000001-y"));
    }

    #[test]
    fn end_restart_abort_and_direction() {
        let r = rules(
            "e ^ok$\nr ^ok$ foo\nr ^b$ c\nrs ^a$ b\nrG ^up$ got\nrP ^up$ put\na \\.pvt$\na ^secret(.*)$ Go\\ away:\\1\n",
        );
        assert_eq!(read(&r, "ok"), name("ok"));
        // `s` starts over from the first rule: a -> b -> c.
        assert_eq!(read(&r, "a"), name("c"));
        assert_eq!(read(&r, "up"), name("got"));
        let put = r.apply(
            "up",
            Context {
                is_read: false,
                client: "10.0.0.1".parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            },
        );
        assert_eq!(put, name("put"));
        assert_eq!(read(&r, "x.pvt"), Remapped::Denied(None));
        assert_eq!(read(&r, "secretABC"), Remapped::Denied(Some("Go away:ABC".into())));
        let inverted = rules("a~ ^(foo|b)$\n");
        assert_eq!(read(&inverted, "c"), Remapped::Denied(None));
        assert_eq!(read(&inverted, "foo"), name("foo"));
    }

    #[test]
    fn runaway_rules_are_bounded() {
        for text in [
            "rg o oo\n",
            "rg x* _\n",
            "rs ^(.*)$ \\1\n",
            "s ^foo$\n",
            "r ^(.*)$ \\1\\1\\1\\1\nrs ^(.*)$ \\1\n",
        ] {
            assert_eq!(read(&rules(text), "foo"), Remapped::Runaway, "{text}");
        }
        let many = "r ^zzz$ y\n".repeat(1025);
        assert_eq!(read(&rules(&many), "foo"), Remapped::Runaway);
        let enough = "r ^zzz$ y\n".repeat(1024);
        assert_eq!(read(&rules(&enough), "foo"), name("foo"));
    }

    #[test]
    fn bad_lines_are_all_reported() {
        let errors = match Rules::parse("A ^foo$\nr ^ok$ x\nr ^(foo$ b\nr\nr~ ^x$ y\nr [[:bogus:]] x\n") {
            Err(MapErrors(e)) => e,
            Ok(r) => panic!("parsed {} rules", r.len()),
        };
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 4, 5, 6]);
    }

    #[test]
    fn fields_follow_tftpd_tokenising() {
        let r = rules("r ^sp$ a\\ b\nr ^x\\ y$ foo\nr ^u$ foo#bar\nr ^four$ foo extra stuff\nr ^v$# comment\n");
        assert_eq!(read(&r, "sp"), name("a b"));
        assert_eq!(read(&r, "x y"), name("foo"));
        assert_eq!(read(&r, "u"), name("foo"));
        assert_eq!(read(&r, "four"), name("foo"));
        assert_eq!(read(&r, "v"), name(""));
    }

    #[test]
    fn posix_brackets_and_escapes() {
        let r = rules("r [\\]x y\nr ^\\(p\\)$ paren\nr ^[[:digit:]]{,2}$ num\nr ^a\\dz$ adz\n");
        assert_eq!(read(&r, "\\x"), name("y"));
        assert_eq!(read(&r, "(p)"), name("paren"));
        assert_eq!(read(&r, "42"), name("num"));
        assert_eq!(read(&r, "adz"), name("adz"));
    }
}
