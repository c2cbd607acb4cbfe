//! IPMSG command numbers: the low byte is the mode (what the packet is), the
//! other bits are option flags (H. Shirouzu's `ipmsg.h`, protocol v1 with
//! the v3 extensions FeiQ and iptux use).

use std::fmt;

/// What a packet is: the command number's low byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    NoOperation,
    BrEntry,
    BrExit,
    AnsEntry,
    BrAbsence,
    SendMsg,
    RecvMsg,
    ReadMsg,
    GetInfo,
    SendInfo,
    GetFileData,
    ReleaseFiles,
    /// A mode this node does not act on (list exchange, encryption keys,
    /// iptux's private commands, ...); carried so it can be logged.
    Other(u8),
}

impl Mode {
    pub fn from_byte(byte: u8) -> Mode {
        match byte {
            0x00 => Mode::NoOperation,
            0x01 => Mode::BrEntry,
            0x02 => Mode::BrExit,
            0x03 => Mode::AnsEntry,
            0x04 => Mode::BrAbsence,
            0x20 => Mode::SendMsg,
            0x21 => Mode::RecvMsg,
            0x30 => Mode::ReadMsg,
            0x40 => Mode::GetInfo,
            0x41 => Mode::SendInfo,
            0x60 => Mode::GetFileData,
            0x61 => Mode::ReleaseFiles,
            other => Mode::Other(other),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Mode::NoOperation => 0x00,
            Mode::BrEntry => 0x01,
            Mode::BrExit => 0x02,
            Mode::AnsEntry => 0x03,
            Mode::BrAbsence => 0x04,
            Mode::SendMsg => 0x20,
            Mode::RecvMsg => 0x21,
            Mode::ReadMsg => 0x30,
            Mode::GetInfo => 0x40,
            Mode::SendInfo => 0x41,
            Mode::GetFileData => 0x60,
            Mode::ReleaseFiles => 0x61,
            Mode::Other(byte) => byte,
        }
    }
}

/// Option flags, the command number's upper 24 bits. Several share a value
/// and mean different things by mode (ABSENCEOPT on entries is SENDCHECKOPT
/// on messages), so they are plain bit masks, not an enum.
pub mod opt {
    /// Entries: the sender is away.
    pub const ABSENCE: u32 = 0x0000_0100;
    /// Entries: sent to a listed host rather than to a broadcast address.
    pub const DIALUP: u32 = 0x0001_0000;
    /// Messages: the receiver must answer RECVMSG.
    pub const SENDCHECK: u32 = 0x0000_0100;
    /// Messages: sealed, to be opened by the user.
    pub const SECRET: u32 = 0x0000_0200;
    /// Messages: sent to many at once; never acknowledged.
    pub const BROADCAST: u32 = 0x0000_0400;
    pub const MULTICAST: u32 = 0x0000_0800;
    /// Messages: an automatic reply (absence notice); never acknowledged,
    /// never answered, so two away nodes cannot loop.
    pub const AUTORET: u32 = 0x0000_2000;
    /// Messages: a resend of an earlier packet.
    pub const RETRY: u32 = 0x0000_4000;
    pub const NOLOG: u32 = 0x0002_0000;
    pub const NOADDLIST: u32 = 0x0008_0000;
    pub const READCHECK: u32 = 0x0010_0000;
    /// Messages: a file list follows the text.
    pub const FILEATTACH: u32 = 0x0020_0000;
    pub const ENCRYPT: u32 = 0x0040_0000;
    /// This packet's strings are UTF-8.
    pub const UTF8: u32 = 0x0080_0000;
    /// Entries: the sender understands UTF-8 packets.
    pub const CAPUTF8: u32 = 0x0100_0000;
}

/// A command number: a mode and its option flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Command {
    pub mode: Mode,
    pub opts: u32,
}

impl Command {
    pub fn new(mode: Mode, opts: u32) -> Command {
        Command {
            mode,
            opts: opts & !0xff,
        }
    }

    pub fn from_number(number: u32) -> Command {
        Command {
            mode: Mode::from_byte((number & 0xff) as u8),
            opts: number & !0xff,
        }
    }

    pub fn number(self) -> u32 {
        self.opts | u32::from(self.mode.byte())
    }

    pub fn has(self, flag: u32) -> bool {
        self.opts & flag == flag
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}|{:#x}", self.mode, self.opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_the_spec_split_into_mode_and_flags() {
        // ipmsg.h: SENDMSG 0x20 | SENDCHECKOPT 0x100 = 288, what FeiQ sends.
        let c = Command::from_number(288);
        assert_eq!(c.mode, Mode::SendMsg);
        assert!(c.has(opt::SENDCHECK));
        assert_eq!(c.number(), 288);
        // BR_ENTRY | ABSENCEOPT | FILEATTACHOPT | ... as FeiQ announces (6291459 = 0x600003).
        let feiq = Command::from_number(6_291_459);
        assert_eq!(feiq.mode, Mode::AnsEntry);
        assert!(feiq.has(opt::FILEATTACH));
        assert!(feiq.has(opt::ENCRYPT));
        for byte in 0..=255u8 {
            assert_eq!(Mode::from_byte(byte).byte(), byte);
        }
    }
}
