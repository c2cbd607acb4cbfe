//! README's "A short tour", run as written (with trycmd), against a real
//! server: what a new user types, and what they should see.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use support::{Sandbox, Server, write};

/// The console blocks of README's tour, with what changes from run to run
/// (times, rates, dates) made placeholders, `$ echo $?` turned into
/// trycmd's `? CODE` on the command before it, and the blank line trycmd
/// wants after each output (for the output's own last newline).
fn tour_as_trycmd(server: &str) -> String {
    let mut spaced = String::new();
    let mut in_output = false;
    for line in tour_lines(server).lines() {
        let ends_output = line.starts_with("$ ") || line.starts_with("```");
        if ends_output && in_output {
            spaced.push('\n');
        }
        in_output = !ends_output && !line.starts_with("? ");
        spaced.push_str(line);
        spaced.push('\n');
    }
    spaced
}

fn tour_lines(server: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## A short tour").unwrap();
    let end = start + readme[start..].find("\n## ").unwrap();
    let mut out = String::new();
    let mut lines = readme[start..end].lines();
    while let Some(line) = lines.next() {
        if line == "$ echo $?" {
            let code = lines.next().unwrap();
            // `? N` belongs right after its command's line, before output.
            let at = out.rfind("\n$ ").map_or(0, |i| i + 1);
            let after_command = at + out[at..].find('\n').unwrap() + 1;
            out.insert_str(after_command, &format!("? {code}\n"));
            continue;
        }
        // The tour's server is `localhost` on sockit's port; this one's
        // port is whatever port 0 picked.
        let line = match line.strip_prefix("$ sockit ") {
            Some(_) => line
                .split(' ')
                .map(|word| if word == "localhost" { server } else { word })
                .collect::<Vec<_>>()
                .join(" "),
            None => line.to_owned(),
        };
        out.push_str(&placeholders(&line));
        out.push('\n');
    }
    out
}

/// `in 0.04s (1.0 GiB/s)` and `2026-11-25 23:02` and `"mtime":1795647729`
/// differ each run; sizes, names and words do not.
fn placeholders(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(" in ") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        match tail.find("/s)") {
            Some(j) if tail[4..].starts_with(|c: char| c.is_ascii_digit()) => {
                out.push_str(" in [..]/s)");
                rest = &tail[j + 3..];
            }
            _ => {
                out.push_str(" in ");
                rest = &tail[4..];
            }
        }
    }
    out.push_str(rest);
    let mut text = out;
    // A date and time as ls prints it.
    while let Some(i) = find_datetime(&text) {
        text.replace_range(i..i + 16, "[..]");
    }
    for key in ["\"mtime\":", "\"time\":"] {
        if let Some(i) = text.find(key) {
            let value_start = i + key.len();
            let value_end = value_start + text[value_start..].find([',', '}']).unwrap();
            text.replace_range(value_start..value_end, "[..]");
        }
    }
    text
}

fn find_datetime(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(15)).find(|&i| {
        let s = &bytes[i..i + 16];
        s[..4].iter().all(u8::is_ascii_digit) && s[4] == b'-' && s[7] == b'-' && s[10] == b' ' && s[13] == b':'
    })
}

#[test]
fn the_readme_tour_runs_as_written() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--root", "served"]);
    let dir = sb.path("tour");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tour.md"), tour_as_trycmd(&srv.addr)).unwrap();
    // The files the tour uploads: its cwd is tour.in/.
    let fixtures = dir.join("tour.in");
    write(&fixtures.join("video.mp4"), &vec![7u8; 50_000_000]);
    write(&fixtures.join("photos/a.jpg"), b"ab");
    write(&fixtures.join("photos/2026/b.jpg"), b"cd");
    trycmd::TestCases::new()
        .register_bin("sockit", std::path::Path::new(env!("CARGO_BIN_EXE_sockit")))
        .env("XDG_CONFIG_HOME", sb.path("config").display().to_string())
        .env("HOME", sb.path("home").display().to_string())
        .env("SOCKIT_LOG", "warn")
        .case(dir.join("tour.md"));
}
