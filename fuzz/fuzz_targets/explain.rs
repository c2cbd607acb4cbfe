//! Any bytes as a capture file, and as a frame of each link type, through
//! the capture reader, the packet decoder, the conversation tracker and
//! every dissector: never a panic, and every event serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit_proto::explain::{Capture, Explainer, Frame};

/// Link types the packet decoder reads, and one it does not.
const LINKS: [u32; 9] = [0, 1, 101, 108, 113, 228, 229, 276, 147];

fn explain(explainer: &mut Explainer, frame: &Frame) {
    let mut events = Vec::new();
    explainer.frame(frame, &mut events);
    for e in &events {
        assert!(serde_json::to_string(e).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    // As a whole file (pcap or pcapng), read to the end or the first error.
    if let Ok(mut capture) = Capture::new(data) {
        let mut explainer = Explainer::new(Vec::new());
        let mut frames = 0;
        while let Some(Ok(frame)) = capture.next_frame() {
            explain(&mut explainer, &frame);
            frames += 1;
            if frames > 10_000 {
                break;
            }
        }
        let _ = explainer.finish();
    }
    // As packets: the first byte picks the link type, the rest is cut into
    // frames at each 0xff, so one input drives a conversation.
    let Some((&pick, rest)) = data.split_first() else { return };
    let link = LINKS[usize::from(pick) % LINKS.len()];
    let mut explainer = Explainer::new(Vec::new());
    for (i, piece) in rest.split(|&b| b == 0xff).enumerate() {
        let frame = Frame {
            number: i as u64 + 1,
            time: std::time::Duration::from_millis(i as u64),
            link,
            data: piece.to_vec(),
            wire_len: piece.len() as u32,
        };
        explain(&mut explainer, &frame);
    }
    let _ = explainer.finish();
});
