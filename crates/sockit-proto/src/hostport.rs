//! `HOST[:PORT]` as people type a server: `example.org`, `10.0.0.5:8080`,
//! `::1`, `[::1]:8080`. The port is optional; each service fills in its own
//! well-known one.

use std::fmt;

/// A host (name or address, unresolved) and, if given, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A name or an IP address, without brackets.
    pub host: String,
    pub port: Option<u16>,
}

/// Why a server address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("no host given")]
    Empty,
    #[error("'{0}' is not a port (0-65535)")]
    BadPort(String),
    #[error("unclosed '[' in '{0}'")]
    Unclosed(String),
    #[error("'{0}' is not HOST, HOST:PORT or [IPV6]:PORT")]
    Malformed(String),
}

impl HostPort {
    /// Parses `HOST`, `HOST:PORT`, a bare IPv6 address or `[IPV6]:PORT`.
    pub fn parse(text: &str) -> Result<Self, HostPortError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(HostPortError::Empty);
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| HostPortError::Unclosed(text.to_owned()))?;
            if host.is_empty() {
                return Err(HostPortError::Empty);
            }
            let port = match after {
                "" => None,
                p => Some(parse_port(
                    p.strip_prefix(':')
                        .ok_or_else(|| HostPortError::Malformed(text.to_owned()))?,
                )?),
            };
            return Ok(Self {
                host: host.to_owned(),
                port,
            });
        }
        match text.matches(':').count() {
            0 => Ok(Self {
                host: text.to_owned(),
                port: None,
            }),
            1 => {
                let (host, port) = text.split_once(':').unwrap_or((text, ""));
                if host.is_empty() {
                    return Err(HostPortError::Empty);
                }
                Ok(Self {
                    host: host.to_owned(),
                    port: Some(parse_port(port)?),
                })
            }
            // Several colons without brackets: a bare IPv6 address.
            _ if text.parse::<std::net::Ipv6Addr>().is_ok() => Ok(Self {
                host: text.to_owned(),
                port: None,
            }),
            _ => Err(HostPortError::Malformed(text.to_owned())),
        }
    }

    /// `host:port` as socket APIs take it (IPv6 in brackets), the port
    /// given or `default`.
    pub fn with_default(&self, default: u16) -> String {
        Self {
            host: self.host.clone(),
            port: Some(self.port.unwrap_or(default)),
        }
        .to_string()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = self.host.contains(':');
        match (bracket, self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

impl std::str::FromStr for HostPort {
    type Err = HostPortError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn parse_port(text: &str) -> Result<u16, HostPortError> {
    text.parse::<u16>().map_err(|_| HostPortError::BadPort(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: Option<u16>) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn every_form_people_type() {
        let cases = [
            ("example.org", hp("example.org", None)),
            ("example.org:21", hp("example.org", Some(21))),
            ("10.0.0.5", hp("10.0.0.5", None)),
            ("10.0.0.5:8080", hp("10.0.0.5", Some(8080))),
            ("::1", hp("::1", None)),
            ("fe80::1:2", hp("fe80::1:2", None)),
            ("[::1]", hp("::1", None)),
            ("[::1]:7", hp("::1", Some(7))),
        ];
        for (text, want) in cases {
            assert_eq!(HostPort::parse(text).as_ref(), Ok(&want), "{text}");
        }
    }

    #[test]
    fn defaults_fill_in_and_ipv6_gets_brackets() {
        assert_eq!(HostPort::parse("h").unwrap().with_default(69), "h:69");
        assert_eq!(HostPort::parse("h:1").unwrap().with_default(69), "h:1");
        assert_eq!(HostPort::parse("::1").unwrap().with_default(69), "[::1]:69");
        assert_eq!(HostPort::parse("[::1]:5").unwrap().with_default(69), "[::1]:5");
    }

    #[test]
    fn bad_forms_say_why() {
        assert_eq!(HostPort::parse(""), Err(HostPortError::Empty));
        assert_eq!(HostPort::parse(":80"), Err(HostPortError::Empty));
        assert_eq!(HostPort::parse("h:x"), Err(HostPortError::BadPort("x".into())));
        assert_eq!(HostPort::parse("h:70000"), Err(HostPortError::BadPort("70000".into())));
        assert_eq!(HostPort::parse("[::1"), Err(HostPortError::Unclosed("[::1".into())));
        assert_eq!(
            HostPort::parse("[::1]x"),
            Err(HostPortError::Malformed("[::1]x".into()))
        );
        assert_eq!(HostPort::parse("a:b:c"), Err(HostPortError::Malformed("a:b:c".into())));
    }
}
