//! `sockit completions SHELL` and `sockit man`: generated from the clap
//! definitions, so they never drift from the real arguments.

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::UsageError;
use crate::cli::{Cli, ManArgs};

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sockit", &mut script);
    crate::output::write_str(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    let root = Cli::command();
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
        let written = write_pages(&root, "sockit", dir)?;
        eprintln!("sockit: wrote {written} pages to {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut cmd = root;
    let mut name = "sockit".to_owned();
    for part in &args.path {
        let sub = cmd
            .find_subcommand(part)
            .cloned()
            .ok_or_else(|| UsageError(format!("`{name}` has no subcommand {part:?}")))?;
        name = format!("{name}-{part}");
        cmd = sub;
    }
    let mut page = Vec::new();
    page_of(cmd, &name).render(&mut page)?;
    crate::output::write_str(&String::from_utf8_lossy(&page))?;
    Ok(ExitCode::SUCCESS)
}

/// A subcommand's page is named as git's are: `sockit-tftp-get(1)`.
fn page_of(cmd: clap::Command, name: &str) -> clap_mangen::Man {
    let cmd = cmd.name(name.to_owned()).bin_name(name.replace('-', " "));
    clap_mangen::Man::new(cmd)
}

/// Writes NAME.1 and, recursively, one page per subcommand; returns how many.
fn write_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<usize> {
    let mut page = Vec::new();
    page_of(cmd.clone(), name).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
