//! Completions and manual pages, as a user installs and reads them.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{Sandbox, peer_available};

#[test]
fn bash_loads_the_completion_script() {
    let sb = Sandbox::new();
    let script = sb.assert_cmd().args(["completions", "bash"]).assert().success();
    let script = script.get_output().stdout.clone();
    std::fs::write(sb.path("sockit.bash"), &script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; complete -p sockit",
            sb.path("sockit.bash").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-F _sockit sockit"));
    // The script knows the subcommands and their options.
    let text = String::from_utf8(script).unwrap();
    assert!(text.contains("tftp") && text.contains("--windowsize"), "{text}");
    for shell in ["zsh", "fish", "powershell"] {
        let out = sb.assert_cmd().args(["completions", shell]).assert().success();
        assert!(out.get_output().stdout.len() > 1000, "{shell}");
    }
    sb.assert_cmd().args(["completions", "tcsh"]).assert().code(2);
}

/// `man -l FILE`, rendered as plain text.
fn render(page: &std::path::Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_renders_the_tool_and_every_subcommand() {
    if !peer_available("man", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let page = sb
        .assert_cmd()
        .arg("man")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    std::fs::write(sb.path("sockit.1"), page).unwrap();
    let text = render(&sb.path("sockit.1"));
    assert!(text.contains("NAME") && text.contains("tftp"), "{text}");

    let page = sb
        .assert_cmd()
        .args(["man", "tftp", "get"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    std::fs::write(sb.path("get.1"), page).unwrap();
    let text = render(&sb.path("get.1"));
    assert!(text.contains("sockit tftp get") && text.contains("--blksize"), "{text}");
    sb.assert_cmd().args(["man", "tftp", "nope"]).assert().code(2);

    sb.assert_cmd().args(["man", "--out-dir", "pages"]).assert().success();
    let pages: Vec<_> = std::fs::read_dir(sb.path("work/pages"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(pages.len() > 30, "{pages:?}");
    let text = render(&sb.path("work/pages/sockit-chat-join.1"));
    assert!(text.contains("--nick"), "{text}");
}
