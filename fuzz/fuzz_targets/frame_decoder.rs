//! Any bytes, split anywhere, through the frame decoder, the request
//! parser and the reply decoder (as the answer to every kind of request):
//! never a panic, and the split never changes the frames.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockit_proto::files::{Reply, ReplyTo, Request};
use sockit_proto::frame::{FrameDecoder, FrameEvent, FrameLimits};

fn decode(chunks: &[&[u8]]) -> (Vec<FrameEvent>, bool) {
    let mut dec = FrameDecoder::new(FrameLimits { max_header_len: 4096 });
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(FrameEvent::Body(b))) => match events.last_mut() {
                    Some(FrameEvent::Body(prev)) => {
                        let mut joined = BytesMut::from(&prev[..]);
                        joined.extend_from_slice(&b);
                        *prev = joined.freeze();
                    }
                    _ => events.push(FrameEvent::Body(b)),
                },
                Ok(Some(ev)) => {
                    if let FrameEvent::Header { header, .. } = &ev {
                        let _ = Request::from_header(header);
                        for to in [
                            ReplyTo::Plain,
                            ReplyTo::Put,
                            ReplyTo::Resume,
                            ReplyTo::Get,
                            ReplyTo::GetTrailer,
                            ReplyTo::Page,
                            ReplyTo::Stat,
                            ReplyTo::Exec,
                        ] {
                            if let Ok(reply) = Reply::from_header(header, to) {
                                // What decodes encodes back to the same reply.
                                assert_eq!(Reply::from_header(&reply.to_header(), to).ok(), Some(reply));
                            }
                        }
                    }
                    events.push(ev);
                }
                Ok(None) => break,
                Err(_) => return (events, true),
            }
        }
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let at = usize::from(cut) % (rest.len() + 1);
    let (a, b) = rest.split_at(at);
    let whole = decode(&[rest]);
    let split = decode(&[a, b]);
    assert_eq!(whole, split);
});
