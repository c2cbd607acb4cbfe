//! What the extra section holds, by mode: the nickname and group of an
//! entry, a message's text and attached file list, the packet number a
//! RECVMSG acknowledges, and the file a GETFILEDATA asks for.
//! Also which encoding a packet's strings are in.

use crate::assist::text::{TextDecoder, TextEncoding};

use super::command::{Command, opt};

/// Separates entries in a file list ("\a", BEL).
pub const FILE_SEPARATOR: char = '\x07';

/// Attribute value of a plain file in a file list (IPMSG_FILE_REGULAR).
pub const FILE_REGULAR: u32 = 0x1;

/// FeiQ appends its font settings to message text as `{/font;...}`.
const FEIQ_STYLE_MARK: &str = "{/font;";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtraError {
    #[error("file entry {0:?} lacks its id, name, size, time or attributes")]
    FileEntry(String),
    #[error("{0:?} is not a file request (packet:file:offset in hex)")]
    FileRequest(String),
}

/// Decodes a packet's strings: UTF-8 when the command says so (UTF8OPT) or
/// when the bytes are valid UTF-8 (iptux sends UTF-8 without the flag, and
/// GBK text is almost never valid UTF-8), otherwise `legacy` (GB18030 by
/// default, the superset of FeiQ's GBK).
pub fn decode_text(bytes: &[u8], command: Command, legacy: TextEncoding) -> String {
    if command.has(opt::UTF8) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => TextDecoder::decode_message(legacy, bytes).0,
    }
}

/// Message text without FeiQ's trailing style block.
pub fn strip_feiq_style(text: &str) -> &str {
    match text.rfind(FEIQ_STYLE_MARK) {
        Some(at) if text.ends_with('}') => text.get(..at).unwrap_or(text),
        _ => text,
    }
}

/// An entry's extra section: nickname and group; iptux adds its icon and
/// the name of the encoding it prefers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryInfo {
    pub nick: String,
    pub group: String,
    /// The peer said it prefers UTF-8 (iptux's fourth field).
    pub prefers_utf8: bool,
}

impl EntryInfo {
    pub fn parse(parts: &[String]) -> EntryInfo {
        EntryInfo {
            nick: parts.first().cloned().unwrap_or_default(),
            group: parts.get(1).cloned().unwrap_or_default(),
            prefers_utf8: parts.get(3).is_some_and(|e| e.eq_ignore_ascii_case("utf-8")),
        }
    }
}

/// One file in a message's attachment list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub id: u32,
    pub name: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: u64,
    pub attr: u32,
}

impl FileEntry {
    /// `fileID:filename:size:mtime:fileattr:` with size, mtime and attr in
    /// hex and a ':' in the name doubled (IPMSG spec, "file attachment").
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{:x}:{:x}:{:x}:",
            self.id,
            self.name.replace(':', "::"),
            self.size,
            self.mtime,
            self.attr
        )
    }

    pub fn is_regular(&self) -> bool {
        self.attr & 0xff == FILE_REGULAR
    }
}

/// Parses a file list, entries separated by '\a'; an entry that does not
/// parse fails the whole list, so a peer's mistake is reported, not guessed.
pub fn parse_file_list(text: &str) -> Result<Vec<FileEntry>, ExtraError> {
    text.split(FILE_SEPARATOR)
        .map(|entry| entry.trim_start_matches(':'))
        .filter(|entry| !entry.trim().is_empty())
        .map(parse_file_entry)
        .collect()
}

pub fn encode_file_list(files: &[FileEntry]) -> String {
    files
        .iter()
        .map(|f| format!("{}{}", f.encode(), FILE_SEPARATOR))
        .collect()
}

fn parse_file_entry(entry: &str) -> Result<FileEntry, ExtraError> {
    let fields = split_escaped(entry);
    let bad = || ExtraError::FileEntry(entry.to_string());
    let field = |i: usize| fields.get(i).map(String::as_str).ok_or_else(bad);
    let id = field(0)?.trim().parse().map_err(|_| bad())?;
    let name = field(1)?.to_string();
    let size = u64::from_str_radix(field(2)?, 16).map_err(|_| bad())?;
    let mtime = u64::from_str_radix(field(3)?, 16).map_err(|_| bad())?;
    let attr = u32::from_str_radix(field(4)?, 16).map_err(|_| bad())?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok(FileEntry {
        id,
        name,
        size,
        mtime,
        attr,
    })
}

/// Splits at single ':'; "::" stands for a literal ':'.
fn split_escaped(entry: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = entry.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ':' {
            field.push(c);
        } else if chars.peek() == Some(&':') {
            chars.next();
            field.push(':');
        } else {
            fields.push(std::mem::take(&mut field));
        }
    }
    fields.push(field);
    fields
}

/// A GETFILEDATA request: which offer, which file, from which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRequest {
    pub packet_no: u64,
    pub file_id: u32,
    pub offset: u64,
}

impl FileRequest {
    /// `packetID:fileID:offset`, all hex (IPMSG spec, GETFILEDATA).
    pub fn parse(text: &str) -> Result<FileRequest, ExtraError> {
        let bad = || ExtraError::FileRequest(text.to_string());
        let mut fields = text.trim_end_matches(['\0', ':']).split(':');
        let mut hex = || {
            fields
                .next()
                .and_then(|f| u64::from_str_radix(f.trim(), 16).ok())
                .ok_or_else(bad)
        };
        let packet_no = hex()?;
        let file_id = u32::try_from(hex()?).map_err(|_| bad())?;
        let offset = hex()?;
        Ok(FileRequest {
            packet_no,
            file_id,
            offset,
        })
    }

    pub fn encode(&self) -> String {
        format!("{:x}:{:x}:{:x}", self.packet_no, self.file_id, self.offset)
    }
}

/// The packet number a RECVMSG acknowledges (decimal).
pub fn parse_acked_packet_no(text: &str) -> Option<u64> {
    text.trim_matches(|c: char| c == '\0' || c.is_whitespace()).parse().ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ipmsg::command::Mode;

    #[test]
    fn text_follows_the_flag_then_validity() {
        let gbk = TextEncoding::Gbk.encode("你好").unwrap();
        let plain = Command::new(Mode::SendMsg, 0);
        assert_eq!(decode_text(&gbk, plain, TextEncoding::Gb18030), "你好");
        assert_eq!(decode_text("你好".as_bytes(), plain, TextEncoding::Gb18030), "你好");
        let utf8 = Command::new(Mode::SendMsg, opt::UTF8);
        assert_eq!(decode_text("你好".as_bytes(), utf8, TextEncoding::Gb18030), "你好");
    }

    #[test]
    fn feiq_style_is_stripped() {
        assert_eq!(strip_feiq_style("hi{/font;-16777216;12;0;0;0;0;宋体;0;}"), "hi");
        assert_eq!(strip_feiq_style("a {/font; b"), "a {/font; b");
        assert_eq!(strip_feiq_style("plain"), "plain");
    }

    #[test]
    fn file_lists_from_the_spec_parse() {
        // ipmsg spec: fileID:filename:size:mtime:fileattr[:ext...]:\a
        let list = "0:report.txt:1f:5f5e1000:1:\x071:a::b.bin:400:5f5e1001:1:14=0:\x07";
        let files = parse_file_list(list).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0],
            FileEntry {
                id: 0,
                name: "report.txt".into(),
                size: 31,
                mtime: 0x5f5e_1000,
                attr: 1
            }
        );
        assert_eq!(files[1].name, "a:b.bin");
        assert_eq!(files[1].size, 1024);
        assert!(files[1].is_regular());
        assert_eq!(parse_file_list(&encode_file_list(&files)).unwrap(), files);
        assert!(parse_file_list("0:x:zz:1:1:\x07").is_err());
        assert!(parse_file_list("0::1:1:1:\x07").is_err());
    }

    #[test]
    fn file_requests_are_hex() {
        let r = FileRequest::parse("5fd3a1b2:a:100").unwrap();
        assert_eq!(
            r,
            FileRequest {
                packet_no: 0x5fd3_a1b2,
                file_id: 10,
                offset: 256
            }
        );
        assert_eq!(FileRequest::parse(&r.encode()).unwrap(), r);
        assert!(FileRequest::parse("1:2").is_err());
        assert!(FileRequest::parse("1:g:0").is_err());
    }

    #[test]
    fn iptux_entries_say_they_prefer_utf8() {
        let parts: Vec<String> = ["nick", "group", "icon.png", "utf-8"].map(String::from).to_vec();
        let info = EntryInfo::parse(&parts);
        assert_eq!(info.nick, "nick");
        assert!(info.prefers_utf8);
        assert!(!EntryInfo::parse(&parts[..2]).prefers_utf8);
    }

    proptest! {
        #[test]
        fn file_list_round_trip(name in "[^\x07\0]{1,20}", size in any::<u64>(), mtime in any::<u32>(), id in any::<u32>()) {
            prop_assume!(!name.starts_with(':'));
            let f = FileEntry { id, name, size, mtime: u64::from(mtime), attr: FILE_REGULAR };
            prop_assert_eq!(parse_file_list(&encode_file_list(std::slice::from_ref(&f))).unwrap(), vec![f]);
        }

        #[test]
        fn parsers_never_panic(text in ".{0,80}") {
            let _ = parse_file_list(&text);
            let _ = FileRequest::parse(&text);
            let _ = parse_acked_packet_no(&text);
        }
    }
}
