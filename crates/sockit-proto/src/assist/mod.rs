//! The network debugging assistant's pure parts (`sockit nc`): what a typed
//! line becomes on the wire and how arriving bytes are shown.
//!
//! - [`text`]: encodings for both directions (UTF-8, GBK, GB18030, Shift_JIS).
//! - [`hex`]: `--send-hex` input and the hexdump of what arrives.
//! - [`append`]: line endings and checksums appended to each send.
//! - [`compose`]: a typed line or payload turned into the bytes sent.
//! - [`messages`]: splitting a byte stream into messages for display.
//! - [`pattern`]: what a rule or an expectation looks for (exact, substring,
//!   regex with captures, hex with `??`).
//! - [`profile`]: quick sends, named messages sent by name.
//! - [`rules`]: auto-reply rules: which rule answers a message, and how.
//! - [`scenario`]: scripted exchanges (send, expect, delay, close).
//! - [`template`]: message templates with macros (`{{seq}}`, `{{time:..}}`,
//!   captures), for replies and sends.
//!
//! No sockets and no terminal here: the driver moves bytes, the binary
//! prints.

pub mod append;
pub mod compose;
pub mod hex;
pub mod messages;
pub mod pattern;
pub mod profile;
pub mod rules;
pub mod scenario;
pub mod template;
pub mod text;
