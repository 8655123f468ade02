//! Turning a [`BuildReport`] into text: batch mode's output and the editor's feedback panes.
//!
//! A grammar's failure (unreadable, invalid, or lacking the rule) is described once, by [`grammar_feedback`];
//! the programs it stopped only say that they were not parsed.

use std::fmt::Write as _;

use crate::task::{GrammarError, ProgramError};
use crate::workspace::{BuildReport, ProgramReport};

/// The feedback about the grammar: `Ok` with a one-line summary, or `Err` with the errors.
pub fn grammar_feedback(report: &BuildReport, grammar: &str, rule: &str) -> Result<String, String> {
    match &report.grammar {
        Err(GrammarError::Unreadable(reason)) => Err(format!("error: cannot read grammar {grammar}: {reason}")),
        Err(GrammarError::Invalid(diagnostics)) => {
            let mut text = format!("error: invalid grammar {grammar}");
            for diagnostic in diagnostics {
                let _ = write!(text, "\n{}", diagnostic.render(grammar));
            }
            Err(text)
        }
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

/// One line: how many tasks executed, and which kinds; "nothing to do" when none did.
pub fn summary(report: &BuildReport) -> String {
    if report.executed == 0 {
        return "nothing to do: 0 tasks executed".to_string();
    }
    let mut parts = Vec::new();
    if report.grammar_compiled {
        parts.push("grammar compiled".to_string());
    }
    match report.parsed_count() {
        0 => {}
        1 => parts.push("1 program parsed".to_string()),
        n => parts.push(format!("{n} programs parsed")),
    }
    let tasks = if report.executed == 1 { "task" } else { "tasks" };
    format!("{} {tasks} executed ({})", report.executed, parts.join(", "))
}

/// Batch mode's output: problems with the grammar, then each program's result, then the [`summary`].
///
/// A program's header says whether it was `parsed` in this build or its result was `cached`.
pub fn batch_output(report: &BuildReport, grammar: &str, rule: &str) -> String {
    let mut out = String::new();
    for error in &report.check_errors {
        let _ = writeln!(
            out,
            "warning: a dependency check failed, so its task ran again: {error}"
        );
    }
    if let Err(error) = grammar_feedback(report, grammar, rule) {
        let _ = writeln!(out, "{error}");
    }
    for program in &report.programs {
        let how = if program.parsed { "parsed" } else { "cached" };
        match program_feedback(program, rule) {
            Ok(tree) => {
                let _ = write!(out, "✓ {} ({how})\n{tree}", program.file.shown);
            }
            Err(error) => {
                let _ = writeln!(out, "✗ {} ({how})\n{error}", program.file.shown);
            }
        }
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}
