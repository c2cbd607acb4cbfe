//! Quick sends: named messages kept in a profile
//! (`~/.config/sockit/assistant.toml` or `--profile FILE`), sent by name
//! (`nc --send NAME`, `/send NAME` typed in a session, a button on the
//! assistant page).
//!
//! ```toml
//! [[send]]
//! name = "read-reg"
//! hex = "01 03 00 00 00 01"
//! append = ["crc16-modbus"]
//!
//! [[send]]
//! name = "hello"
//! text = "hello #{{seq}}\n"
//! ```

use serde::Deserialize;

use super::append::Append;
use super::template::{Template, TemplateError};

/// Most quick sends in one profile: a screenful of buttons, and then some.
pub const MAX_SENDS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("profile: {0}")]
    Toml(String),
    #[error("quick send {index}: {reason}")]
    Send { index: usize, reason: String },
    #[error("quick send '{name}': {source}")]
    Template { name: String, source: TemplateError },
    #[error("a profile holds at most {MAX_SENDS} quick sends")]
    TooMany,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSpec {
    name: Option<String>,
    text: Option<String>,
    hex: Option<String>,
    #[serde(default)]
    append: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default, rename = "send")]
    sends: Vec<SendSpec>,
}

/// One named message.
#[derive(Debug, Clone)]
pub struct QuickSend {
    pub name: String,
    /// The template as written, for showing on a button.
    pub source: String,
    pub hex: bool,
    pub template: Template,
    pub append: Vec<Append>,
}

#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub sends: Vec<QuickSend>,
}

impl Profile {
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Toml(e.message().to_owned()))?;
        if file.sends.len() > MAX_SENDS {
            return Err(ProfileError::TooMany);
        }
        let mut sends: Vec<QuickSend> = Vec::with_capacity(file.sends.len());
        for (i, spec) in file.sends.into_iter().enumerate() {
            let index = i + 1;
            let bad = |reason: &str| ProfileError::Send {
                index,
                reason: reason.to_owned(),
            };
            let name = spec.name.ok_or_else(|| bad("needs a name"))?;
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(bad("a name is one word (it is typed after /send)"));
            }
            if sends.iter().any(|s| s.name == name) {
                return Err(bad(&format!("the name '{name}' is already taken")));
            }
            let template_err = |source| ProfileError::Template {
                name: name.clone(),
                source,
            };
            let (source, hex, template) = match (spec.text, spec.hex) {
                (Some(t), None) => {
                    let template = Template::parse(&t).map_err(template_err)?;
                    (t, false, template)
                }
                (None, Some(h)) => {
                    let template = Template::parse_hex(&h).map_err(template_err)?;
                    (h, true, template)
                }
                _ => return Err(bad("give text or hex (one of them)")),
            };
            let append = spec
                .append
                .iter()
                .map(|a| a.parse::<Append>().map_err(|e| bad(&e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            sends.push(QuickSend {
                name,
                source,
                hex,
                template,
                append,
            });
        }
        Ok(Self { sends })
    }

    pub fn find(&self, name: &str) -> Option<&QuickSend> {
        self.sends.iter().find(|s| s.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.sends.iter().map(|s| s.name.as_str()).collect()
    }
}

/// A typed `/send NAME` line: the name, or `None` if the line is data.
pub fn command(line: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches(['\r', '\n']);
    text.strip_prefix("/send ").map(str::trim)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loads_text_and_hex_sends() {
        let p = Profile::from_toml(
            r#"
            [[send]]
            name = "read-reg"
            hex = "01 03 00 00 00 01"
            append = ["crc16-modbus"]
            [[send]]
            name = "hello"
            text = "hello #{{seq}}"
            "#,
        )
        .unwrap();
        assert_eq!(p.names(), ["read-reg", "hello"]);
        let reg = p.find("read-reg").unwrap();
        assert!(reg.hex && reg.template.is_constant());
        assert_eq!(reg.append, [Append::Crc16Modbus]);
        assert!(!p.find("hello").unwrap().template.is_constant());
        assert!(p.find("nope").is_none());
    }

    #[test]
    fn bad_profiles_say_which_send() {
        let err = |t: &str| Profile::from_toml(t).unwrap_err().to_string();
        assert!(err("[[send]]\ntext='x'").contains("quick send 1: needs a name"));
        assert!(err("[[send]]\nname='a b'\ntext='x'").contains("one word"));
        assert!(err("[[send]]\nname='a'\ntext='x'\n[[send]]\nname='a'\nhex='01'").contains("already taken"));
        assert!(err("[[send]]\nname='a'").contains("text or hex"));
        assert!(err("[[send]]\nname='a'\nhex='0g'").starts_with("quick send 'a'"));
    }

    #[test]
    fn send_commands() {
        assert_eq!(command(b"/send hello\n"), Some("hello"));
        assert_eq!(command(b"/send  read-reg \r\n"), Some("read-reg"));
        assert_eq!(command(b"hello\n"), None);
        assert_eq!(command(b"/sendx\n"), None);
    }
}
