//! `sockit explain CAPTURE`: a capture as a ladder of conversations.

use std::process::ExitCode;

use anyhow::Context as _;
use sockit_proto::explain::apps::TftpMeaning;
use sockit_proto::explain::{Capture, Event, Explainer, Line, Meaning, Side, Start, Summary};

use crate::cli::ExplainArgs;
use crate::output::{Lines, human_bytes};

/// Read-ahead for the capture file: large reads keep a 1 GiB file moving.
const READ_BUFFER: usize = 1 << 20;

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let path = args.capture.clone();
    // The whole file is read and printed on a blocking thread: a capture
    // can take seconds, and nothing here awaits.
    tokio::task::spawn_blocking(move || explain(&args))
        .await
        .context("the explain thread failed")?
        .with_context(|| format!("explaining {}", path.display()))
}

fn explain(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    // Checked before opening: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(&args.capture).context("cannot read the capture")?;
    if !meta.is_file() {
        anyhow::bail!("not a regular file");
    }
    let file = std::fs::File::open(&args.capture).context("cannot open the capture")?;
    let mut capture = Capture::new(std::io::BufReader::with_capacity(READ_BUFFER, file))?;
    let mut explainer = Explainer::new(args.decode.clone());
    let mut out = Lines::default();
    let mut events = Vec::new();
    let mut skipped = 0u64;
    let mut damaged = None;
    while let Some(frame) = capture.next_frame() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                damaged = Some(e);
                break;
            }
        };
        explainer.frame(&frame, &mut events);
        for event in events.drain(..) {
            skipped += u64::from(matches!(event, Event::Skipped { .. }));
            if args.json {
                out.json(serde_json::to_value(&event)?)?;
            } else {
                print_event(&mut out, &event)?;
            }
        }
    }
    let summaries = explainer.finish();
    if args.json {
        for s in &summaries {
            out.json(crate::output::named("totals", serde_json::to_value(s)?))?;
        }
    } else {
        print_summaries(&mut out, &summaries, skipped)?;
    }
    out.flush()?;
    match damaged {
        Some(e) => Err(e.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn print_event(out: &mut Lines, event: &Event) -> std::io::Result<()> {
    match event {
        Event::Conversation(start) => print_start(out, start),
        Event::Packet(line) => print_line(out, line),
        Event::Skipped { number, reason } => out.line(format_args!("  #{number:<6} skipped: {reason}")),
    }
}

fn print_start(out: &mut Lines, s: &Start) -> std::io::Result<()> {
    let joined = if s.mid_stream {
        " (joined mid-stream: which side is the client is a guess)"
    } else {
        ""
    };
    let app = if s.app == sockit_proto::explain::App::Unknown {
        ""
    } else {
        s.app_name
    };
    let text = format!(
        "\n[{}] {} client {}  server {}  {app}{joined}",
        s.conversation, s.transport, s.client, s.server
    );
    out.line(format_args!("{}", text.trim_end()))
}

/// The arrow's width: wide enough for `[FIN,PSH,ACK] 65483 B`.
const ARROW: usize = 30;

fn print_line(out: &mut Lines, l: &Line) -> std::io::Result<()> {
    let label = match &l.tcp {
        Some(t) if l.len > 0 => format!("[{}] {} B", t.flags.join(","), l.len),
        Some(t) => format!("[{}]", t.flags.join(",")),
        None => format!("{} B", l.len),
    };
    let fill = ARROW.saturating_sub(label.chars().count() + 4);
    let arrow = match l.from {
        Side::Client => format!("──{label}{}─▶", "─".repeat(fill)),
        Side::Server => format!("◀─{}{label}──", "─".repeat(fill)),
    };
    let numbers = match &l.tcp {
        Some(t) if t.flags.contains(&"ACK") => format!("seq={} ack={} win={}", t.seq, t.ack, t.window),
        Some(t) => format!("seq={} win={}", t.seq, t.window),
        None => String::new(),
    };
    let text = format!(
        "  #{:<6} {:>10.6}  [{}] {arrow} {numbers:<28} {}",
        l.number,
        l.seconds,
        l.conversation,
        meaning(&l.meaning)
    );
    out.line(format_args!("{}", text.trim_end()))
}

/// What a packet means, in words; several meanings joined by "; ".
fn meaning(all: &[Meaning]) -> String {
    let mut parts: Vec<String> = all.iter().map(one_meaning).collect();
    // Frames this segment touches: each header starts one, and a body
    // piece before any header ends one begun earlier.
    let headers = all.iter().filter(|m| matches!(m, Meaning::FrameHeader { .. })).count();
    let continued = all
        .iter()
        .find(|m| matches!(m, Meaning::FrameHeader { .. } | Meaning::FrameBody { .. }))
        .is_some_and(|m| matches!(m, Meaning::FrameBody { .. }));
    let frames = headers + usize::from(continued);
    if frames >= 2 {
        parts.push(format!("({frames} frames in one segment: the sticky-packet effect)"));
    }
    parts.join("; ")
}

fn one_meaning(m: &Meaning) -> String {
    match m {
        Meaning::Handshake { step } => format!("handshake {step}/3"),
        Meaning::Close { steps, side } => {
            let steps: Vec<String> = steps.iter().map(u8::to_string).collect();
            let what = match steps.last().map(String::as_str) {
                Some("1") => format!("{} is done sending (FIN)", name(*side)),
                Some("2") => format!("{} acknowledges the FIN", name(*side)),
                Some("3") => format!("{} is done sending too (FIN)", name(*side)),
                _ => format!("{} acknowledges; closed", name(*side)),
            };
            format!("close {}/4: {what}", steps.join("+"))
        }
        Meaning::Reset { side } => format!("reset by the {}", name(*side)),
        Meaning::Retransmission { bytes } => format!("retransmission ({bytes} B sent before)"),
        Meaning::Gap { missing } => {
            format!("{missing} B missing from the capture: the stream cannot be cut after this")
        }
        Meaning::AuthChallenge { bytes } => format!("auth challenge ({bytes} random bytes)"),
        Meaning::AuthAnswer { bytes } => format!("auth answer (HMAC, {bytes} B)"),
        Meaning::FrameHeader {
            header_len,
            header,
            body_len,
        } => {
            let header = sockit_proto::display::escape(header, false);
            if *body_len == 0 {
                format!("frame: header {header_len} B {header}, no body")
            } else {
                format!("frame: header {header_len} B {header}, body of {body_len} B follows")
            }
        }
        Meaning::FrameBody { bytes, done, of } if done == of => format!("body {bytes} B (complete, {of} B)"),
        Meaning::FrameBody { bytes, done, of } => format!("body {bytes} B ({done} of {of})"),
        Meaning::FramePart { what, have, need } => {
            format!("frame {what} continues in the next segment ({have} of {need} B here)")
        }
        Meaning::FrameError { reason } => format!("not a valid frame: {reason}"),
        Meaning::Tftp(t) => tftp(t),
        Meaning::Ipmsg(i) => {
            let options = if i.options.is_empty() {
                String::new()
            } else {
                format!("|{}", i.options.join("|"))
            };
            let text = sockit_proto::display::escape(&i.text, false);
            let (user, host) = (
                sockit_proto::display::escape(&i.user, false),
                sockit_proto::display::escape(&i.host, false),
            );
            format!("{}{options} #{} from {user}@{host}: {text:?}", i.mode, i.packet_no)
        }
        Meaning::Echo { bytes } => format!("echo, {bytes} B"),
        Meaning::Time { since_1900, utc } => format!("time: {since_1900} s since 1900 = {utc}"),
        Meaning::Text { text } => format!("{text:?}"),
        Meaning::Data { bytes } => format!("{bytes} B of data"),
        Meaning::Undecodable { reason } => reason.clone(),
    }
}

fn tftp(t: &TftpMeaning) -> String {
    let options: Vec<String> = t.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let options = options.join(" ");
    match t.name {
        "RRQ" | "WRQ" => format!(
            "TFTP {} {:?} {} {options}",
            t.name,
            t.file.as_deref().unwrap_or_default(),
            t.mode.unwrap_or_default()
        ),
        "OACK" => format!("TFTP OACK {options}"),
        "DATA" => {
            let window = t
                .window
                .map(|(slot, size)| format!(", window {slot}/{size}"))
                .unwrap_or_default();
            let last = if t.last { ", the last" } else { "" };
            format!(
                "TFTP DATA block {}, {} B{window}{last}",
                t.block.unwrap_or(0),
                t.data_len.unwrap_or(0)
            )
        }
        "ACK" => format!("TFTP ACK block {}", t.block.unwrap_or(0)),
        _ => format!(
            "TFTP ERROR {}: {}",
            t.error_code.unwrap_or(0),
            sockit_proto::display::escape(t.message.as_deref().unwrap_or_default(), false)
        ),
    }
}

fn name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

fn print_summaries(out: &mut Lines, summaries: &[Summary], skipped: u64) -> std::io::Result<()> {
    let noun = if summaries.len() == 1 {
        "conversation"
    } else {
        "conversations"
    };
    out.line(format_args!("\n{} {noun}:", summaries.len()))?;
    for s in summaries {
        let frames = s
            .frames
            .map(|(to_server, to_client)| format!(", frames {to_server} and {to_client}"))
            .unwrap_or_default();
        let ending = s.ending.map(|e| format!(", {e}")).unwrap_or_default();
        out.line(format_args!(
            "  [{}] {} {} -> {}  {}: {} packets, client sent {}, server sent {}{frames}{ending}",
            s.conversation,
            s.transport,
            s.client,
            s.server,
            s.app.name(),
            s.packets,
            human_bytes(s.client_bytes),
            human_bytes(s.server_bytes),
        ))?;
    }
    if skipped > 0 {
        out.line(format_args!("  {skipped} frames were not TCP or UDP, or not followed"))?;
    }
    Ok(())
}
