//! Frames out of a pcap or pcapng stream, with their link type and time.
//!
//! Generic over `Read`: the caller opens the file; nothing here does.

use std::io::Read;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

/// The first four bytes of a pcapng file (a section header block).
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("not a capture file: too short to hold a pcap or pcapng header")]
    TooShort,
    #[error("not a pcap or pcapng capture, or a damaged one: {0}")]
    Format(String),
    #[error("the capture is damaged after frame {after}: {reason}")]
    Damaged { after: u64, reason: String },
    #[error("reading the capture: {0}")]
    Io(#[from] std::io::Error),
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1 for the first frame, as Wireshark numbers them.
    pub number: u64,
    /// Since the Unix epoch.
    pub time: Duration,
    /// The link-layer header type (tcpdump.org's LINKTYPE_ numbers).
    pub link: u32,
    pub data: Vec<u8>,
    /// The frame's length on the wire; more than `data.len()` when the
    /// capture cut it (snaplen).
    pub wire_len: u32,
}

enum Format<R: Read> {
    Pcap(PcapReader<R>),
    PcapNg {
        reader: PcapNgReader<R>,
        /// Per interface: its link type and the length of one timestamp
        /// tick in nanoseconds (from `if_tsresol`, microseconds unless
        /// the interface says otherwise).
        interfaces: Vec<(u32, f64)>,
    },
}

/// Reads frames one at a time, in file order.
pub struct Capture<R: Read> {
    format: Format<std::io::Chain<std::io::Cursor<[u8; 4]>, R>>,
    frames: u64,
    failed: bool,
}

impl<R: Read> std::fmt::Debug for Capture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("frames", &self.frames).finish()
    }
}

impl<R: Read> Capture<R> {
    /// Tells pcap from pcapng by the first four bytes and reads the header.
    pub fn new(mut reader: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            let Some(rest) = magic.get_mut(got..) else { break };
            match reader.read(rest)? {
                0 => return Err(CaptureError::TooShort),
                n => got += n,
            }
        }
        let chained = std::io::Cursor::new(magic).chain(reader);
        let format = if magic == PCAPNG_MAGIC {
            Format::PcapNg {
                reader: PcapNgReader::new(chained).map_err(|e| CaptureError::Format(e.to_string()))?,
                interfaces: Vec::new(),
            }
        } else {
            Format::Pcap(PcapReader::new(chained).map_err(|e| CaptureError::Format(e.to_string()))?)
        };
        Ok(Capture {
            format,
            frames: 0,
            failed: false,
        })
    }

    /// The next frame; `None` at the end. After an error, `None` for ever:
    /// a damaged file cannot be resynchronised.
    pub fn next_frame(&mut self) -> Option<Result<Frame, CaptureError>> {
        if self.failed {
            return None;
        }
        let next = self.read_next();
        match &next {
            Some(Ok(_)) => self.frames += 1,
            Some(Err(_)) => self.failed = true,
            None => {}
        }
        next
    }

    fn read_next(&mut self) -> Option<Result<Frame, CaptureError>> {
        let number = self.frames + 1;
        let damaged = |e: pcap_file::PcapError| CaptureError::Damaged {
            after: number - 1,
            reason: e.to_string(),
        };
        match &mut self.format {
            Format::Pcap(reader) => {
                let link = u32::from(reader.header().datalink);
                let packet = match reader.next_packet()? {
                    Ok(p) => p,
                    Err(e) => return Some(Err(damaged(e))),
                };
                Some(Ok(Frame {
                    number,
                    time: packet.timestamp,
                    link,
                    wire_len: packet.orig_len,
                    data: packet.data.into_owned(),
                }))
            }
            Format::PcapNg { reader, interfaces } => loop {
                let block = match reader.next_block()? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(damaged(e))),
                };
                match block {
                    Block::SectionHeader(_) => interfaces.clear(),
                    Block::InterfaceDescription(idb) => {
                        let tick = idb
                            .options
                            .iter()
                            .find_map(|o| match o {
                                InterfaceDescriptionOption::IfTsResol(r) => Some(tick_nanos(*r)),
                                _ => None,
                            })
                            .unwrap_or(1_000.0);
                        interfaces.push((u32::from(idb.linktype), tick));
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(&(link, tick)) =
                            usize::try_from(epb.interface_id).ok().and_then(|i| interfaces.get(i))
                        else {
                            return Some(Err(CaptureError::Damaged {
                                after: number - 1,
                                reason: format!(
                                    "a packet names interface {}, which is not described",
                                    epb.interface_id
                                ),
                            }));
                        };
                        // The library reads the raw tick count into nanoseconds.
                        let ticks = epb.timestamp.as_nanos() as f64;
                        return Some(Ok(Frame {
                            number,
                            time: Duration::try_from_secs_f64(ticks * tick / 1e9).unwrap_or_default(),
                            link,
                            wire_len: epb.original_len,
                            data: epb.data.into_owned(),
                        }));
                    }
                    Block::SimplePacket(spb) => {
                        let link = interfaces.first().map_or(u32::from(DataLink::ETHERNET), |i| i.0);
                        return Some(Ok(Frame {
                            number,
                            time: Duration::ZERO,
                            link,
                            wire_len: spb.original_len,
                            data: spb.data.into_owned(),
                        }));
                    }
                    _ => {}
                }
            },
        }
    }
}

/// `if_tsresol`: a power of ten below one second, or of two when the top
/// bit is set.
fn tick_nanos(resolution: u8) -> f64 {
    let exponent = i32::from(resolution & 0x7f);
    let seconds = if resolution & 0x80 == 0 {
        10f64.powi(-exponent)
    } else {
        2f64.powi(-exponent)
    };
    seconds * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_default_to_microseconds_and_follow_if_tsresol() {
        assert_eq!(tick_nanos(6), 1_000.0);
        assert_eq!(tick_nanos(9), 1.0);
        assert_eq!(tick_nanos(0x80 | 10), 1e9 / 1024.0);
    }

    #[test]
    fn short_or_foreign_input_is_an_error_not_a_panic() {
        assert!(matches!(Capture::new(&b"ab"[..]), Err(CaptureError::TooShort)));
        assert!(matches!(
            Capture::new(&b"this is not a capture at all"[..]),
            Err(CaptureError::Format(_))
        ));
    }
}
