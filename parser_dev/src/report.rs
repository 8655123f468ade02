//! Turning a [`BuildReport`] into text: batch mode's output and the editor's feedback panes.
//!
//! A grammar's failure (unreadable, invalid, without rules, or lacking the rule) is described once, by
//! [`grammar_feedback`]; the programs it stopped only say that they were not parsed.
//!
//! Batch mode prints as the build goes ([`batch_grammar`], then [`batch_program`] per program, then
//! [`batch_end`]), so a result is on the screen as soon as the build has it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use crate::task::{CompiledGrammar, GrammarError, ProgramError};
use crate::workspace::{BuildReport, ProgramReport, WatchedBuild};

/// The feedback about the grammar's outcome (the [`BuildReport::grammar`] of a build): `Ok` with a one-line summary,
/// or `Err` with the errors.
pub fn grammar_feedback(
    outcome: &Result<CompiledGrammar, GrammarError>,
    grammar: &str,
    rule: &str,
) -> Result<String, String> {
    match outcome {
        Err(GrammarError::Unreadable(reason)) => Err(format!("error: cannot read grammar {grammar}: {reason}")),
        Err(GrammarError::Invalid(diagnostics)) => {
            let mut text = format!("error: invalid grammar {grammar}");
            for diagnostic in diagnostics {
                let _ = write!(text, "\n{}", diagnostic.render(grammar));
            }
            Err(text)
        }
        Ok(compiled) if compiled.rules.is_empty() => Err(format!("error: grammar {grammar} has no rules")),
        Ok(compiled) if !compiled.rules.iter().any(|r| r == rule) => Err(format!(
            "error: rule `{rule}` is not defined in grammar {grammar}; its rules are: {}",
            compiled.rules.join(", ")
        )),
        Ok(compiled) => Ok(format!(
            "grammar {grammar}: ok, {} rules: {}",
            compiled.rules.len(),
            compiled.rules.join(", ")
        )),
    }
}

/// The feedback about one program: `Ok` with its parse tree, or `Err` with why there is none.
pub fn program_feedback(program: &ProgramReport, rule: &str) -> Result<String, String> {
    let name = &program.file.shown;
    match &program.result {
        Ok(tree) => Ok(tree.clone()),
        Err(ProgramError::GrammarFailed) => Err("not parsed: the grammar failed".to_string()),
        Err(ProgramError::UnknownRule) => Err(format!("not parsed: unknown rule `{rule}`")),
        Err(ProgramError::Unreadable(reason)) => Err(format!("error: cannot read program {name}: {reason}")),
        Err(ProgramError::Syntax(diagnostic)) => Err(diagnostic.render(name)),
    }
}

/// One line: how many tasks executed, and which kinds; "nothing to do" when none did. Programs whose task executed
/// but stopped before parsing (the grammar failed, say) are counted as not parsed. Tasks restored from the remote
/// cache did not execute: they are counted apart, as in
/// `1 task executed (1 program parsed), 2 restored from the remote cache (grammar, 1 program)`.
pub fn summary(report: &BuildReport) -> String {
    if report.executed == 0 && report.restored == 0 {
        return "nothing to do: 0 tasks executed".to_string();
    }
    let restored = restored_summary(report);
    if report.executed == 0 {
        return format!("0 tasks executed{restored}");
    }
    format!("{}{restored}", executed_summary(report))
}

/// `, N restored from the remote cache (grammar, M programs)`, or nothing when nothing was restored.
fn restored_summary(report: &BuildReport) -> String {
    if report.restored == 0 {
        return String::new();
    }
    let mut parts = Vec::new();
    if report.grammar_restored {
        parts.push("grammar".to_string());
    }
    match report.programs.iter().filter(|p| p.restored).count() {
        0 => {}
        1 => parts.push("1 program".to_string()),
        n => parts.push(format!("{n} programs")),
    }
    format!(
        ", {} restored from the remote cache ({})",
        report.restored,
        parts.join(", ")
    )
}

/// `N tasks executed (grammar compiled, M programs parsed, K programs not parsed)`.
fn executed_summary(report: &BuildReport) -> String {
    let mut parts = Vec::new();
    if report.grammar_compiled {
        parts.push("grammar compiled".to_string());
    }
    match report.parsed_count() {
        0 => {}
        1 => parts.push("1 program parsed".to_string()),
        n => parts.push(format!("{n} programs parsed")),
    }
    match report.not_parsed_count() {
        0 => {}
        1 => parts.push("1 program not parsed".to_string()),
        n => parts.push(format!("{n} programs not parsed")),
    }
    let tasks = if report.executed == 1 { "task" } else { "tasks" };
    format!("{} {tasks} executed ({})", report.executed, parts.join(", "))
}

/// Batch mode's output about the grammar, once it is known: its errors (see [`grammar_feedback`]), or nothing.
pub fn batch_grammar(outcome: &Result<CompiledGrammar, GrammarError>, grammar: &str, rule: &str) -> String {
    match grammar_feedback(outcome, grammar, rule) {
        Ok(_) => String::new(),
        Err(error) => format!("{error}\n"),
    }
}

/// Batch mode's output about one program, once it is known: `✓` and its parse tree, or `✗` and why there is none.
///
/// The header says whether the program was `parsed` in this build, its result `restored` from the remote cache, or
/// its stored result was still valid (`cached`); a program that was not parsed at all (the grammar failed or lacks
/// the rule, or the file could not be read) has no mark.
pub fn batch_program(program: &ProgramReport, rule: &str) -> String {
    let name = &program.file.shown;
    let how = match (program.has_parse(), program.executed, program.restored) {
        (false, _, _) => "",
        (true, true, _) => " (parsed)",
        (true, false, true) => " (restored)",
        (true, false, false) => " (cached)",
    };
    match program_feedback(program, rule) {
        Ok(tree) => format!("✓ {name}{how}\n{tree}"),
        Err(error) => format!("✗ {name}{how}\n{error}\n"),
    }
}

/// Batch mode's output once the build is over: the dependency checks that failed, then the [`summary`].
pub fn batch_end(report: &BuildReport) -> String {
    let mut out = String::new();
    for error in &report.check_errors {
        let _ = writeln!(
            out,
            "warning: a dependency check failed, so its task ran again: {error}"
        );
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}

/// Batch mode's `--explain` section, after the summary: a header, then one indented line per executed task (as
/// [`Workspace::explanations`](crate::workspace::Workspace::explanations) words them), or that nothing executed.
pub fn explanations(lines: &[String]) -> String {
    if lines.is_empty() {
        return "why: nothing executed, everything was up to date\n".to_string();
    }
    let mut out = String::from("why each task executed:\n");
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// Watch mode's header line before each build's results: when (UTC), which build and why, what changed (paths
/// relative to `cwd` where they lie below it), and how many tasks executed in how long. For example
/// `── 12:34:56 UTC · build 2 (changes) · changed: program1.txt · 1 task executed in 3.1 ms ──`.
pub fn watch_header(build: &WatchedBuild<'_>, cwd: &Path, now: SystemTime) -> String {
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 86_400);
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = format!(
        "── {hours:02}:{minutes:02}:{seconds:02} UTC · build {} ({})",
        build.number, build.cause
    );
    if !build.changed.is_empty() {
        let changed: Vec<String> = build
            .changed
            .iter()
            .map(|path| path.strip_prefix(cwd).unwrap_or(path).display().to_string())
            .collect();
        let _ = write!(out, " · changed: {}", changed.join(", "));
    }
    let tasks = if build.report.executed == 1 { "task" } else { "tasks" };
    let restored = match build.report.restored {
        0 => String::new(),
        n => format!(", {n} restored"),
    };
    let _ = writeln!(
        out,
        " · {} {tasks} executed{restored} in {:.1} ms ──",
        build.report.executed,
        build.duration.as_secs_f64() * 1e3
    );
    out
}
