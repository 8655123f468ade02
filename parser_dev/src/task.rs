//! The pie tasks behind both modes: compile a grammar, parse a program with it.
//!
//! Files are required with [`FileStamper::Hash`]: the files are small, and a content digest makes an edit visible
//! even when it lands within the file system's timestamp granularity (an editor saving twice in a millisecond),
//! while a save that rewrites identical bytes re-executes nothing.
//!
//! pest_meta's optimized rules implement neither `Hash` nor serde, so they cannot be a task output stored in pie's
//! store. [`ParserTask::CompileGrammar`] therefore validates the grammar and returns its text together with its
//! sorted rule names ([`CompiledGrammar`]); [`ParserTask::Parse`] rebuilds the `pest_vm::Vm` from that text, which
//! is cheap for grammars of this size. A consequence: an edit to the grammar that changes only comments or layout
//! still changes the compile output, so every program is parsed again.

use std::fmt::{self, Write as _};
use std::io::Read;
use std::path::{Path, PathBuf};

use pest::error::{Error, LineColLocation};
use pest::iterators::Pairs;
use pie::stamp::FileStamper;
use pie::{Context, Task};
use serde::{Deserialize, Serialize};

/// A task of parser_dev. Paths are absolute (see [`crate::workspace::SourceFile`]), so that a store stays sound
/// when the tool runs from another working directory, and are stored as bytes, so that a file name need not be
/// UTF-8.
///
/// `Debug` (which pie's build log shows) abbreviates paths under the working directory to relative ones.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParserTask {
    /// Reads the grammar file and parses, validates and optimizes it with pest_meta.
    CompileGrammar {
        /// The grammar file.
        #[serde(with = "crate::path_bytes")]
        grammar: PathBuf,
    },
    /// Parses the program file with `rule` of the grammar compiled by [`ParserTask::CompileGrammar`].
    Parse {
        /// The grammar file.
        #[serde(with = "crate::path_bytes")]
        grammar: PathBuf,
        /// The rule to start parsing with.
        rule: String,
        /// The program file.
        #[serde(with = "crate::path_bytes")]
        program: PathBuf,
    },
}

/// The output of a [`ParserTask`]: which variant matches which task is fixed.
///
/// `Debug` (which pie's build log shows) summarizes: a rule count instead of the grammar, a line count instead
/// of the parse tree.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The output of [`ParserTask::CompileGrammar`].
    Grammar(Result<CompiledGrammar, GrammarError>),
    /// The output of [`ParserTask::Parse`]: the printable parse tree, or why there is none.
    Program(Result<String, ProgramError>),
}

/// A grammar that pest_meta accepted.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CompiledGrammar {
    /// The grammar's text, from which [`ParserTask::Parse`] rebuilds the parser.
    pub text: String,
    /// The names of the grammar's rules, sorted.
    pub rules: Vec<String>,
}

/// Why a grammar did not compile.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum GrammarError {
    /// The file could not be read; the reason.
    Unreadable(String),
    /// pest_meta rejected the grammar.
    Invalid(Vec<Diagnostic>),
}

/// Why a program has no parse tree.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ProgramError {
    /// The grammar failed; its errors are in the grammar's own outcome, so they are not repeated here.
    GrammarFailed,
    /// The rule is not one of the grammar's rules.
    UnknownRule,
    /// The program file could not be read; the reason.
    Unreadable(String),
    /// The program does not match the rule.
    Syntax(Diagnostic),
}

/// An error at a position in a file. It does not name the file: the task's output only depends on the file's
/// contents, and the caller knows how the user spelled the path (see [`Diagnostic::render`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What went wrong, say "expected number".
    pub message: String,
    /// pest's excerpt of the offending line with a marker under the position.
    pub excerpt: String,
}

impl Diagnostic {
    /// Converts a pest error, keeping pest's excerpt without its position line (which [`render`](Self::render)
    /// replaces) and its message line.
    fn from_pest<R: pest::RuleType>(error: &Error<R>) -> Self {
        let (line, column) = match error.line_col {
            LineColLocation::Pos(position) | LineColLocation::Span(position, _) => position,
        };
        let rendered = error.to_string();
        let excerpt = rendered
            .lines()
            .filter(|l| !l.trim_start().starts_with("-->") && !l.trim_start().starts_with("= "))
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            line,
            column,
            message: error.variant.message().into_owned(),
            excerpt,
        }
    }

    /// `FILE:LINE:COLUMN: MESSAGE`, then the excerpt.
    pub fn render(&self, file: &str) -> String {
        format!(
            "{file}:{}:{}: {}\n{}",
            self.line, self.column, self.message, self.excerpt
        )
    }
}

impl fmt::Debug for ParserTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParserTask::CompileGrammar { grammar } => write!(f, "CompileGrammar({})", short(grammar)),
            ParserTask::Parse { grammar, rule, program } => {
                write!(f, "Parse({}, {rule}, {})", short(grammar), short(program))
            }
        }
    }
}

/// `path` relative to the working directory when it is inside it, for short log lines.
fn short(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Grammar(Ok(compiled)) => write!(f, "Grammar(Ok({} rules))", compiled.rules.len()),
            Outcome::Grammar(Err(GrammarError::Unreadable(reason))) => write!(f, "Grammar(Unreadable({reason:?}))"),
            Outcome::Grammar(Err(GrammarError::Invalid(errors))) => match errors.first() {
                Some(e) => write!(f, "Grammar(Invalid({}:{}: {:?}, ..))", e.line, e.column, e.message),
                None => write!(f, "Grammar(Invalid)"),
            },
            Outcome::Program(Ok(tree)) => write!(f, "Program(Ok(parse tree of {} lines))", tree.lines().count()),
            Outcome::Program(Err(ProgramError::Syntax(e))) => {
                write!(f, "Program(Syntax({}:{}: {:?}))", e.line, e.column, e.message)
            }
            Outcome::Program(Err(error)) => write!(f, "Program({error:?})"),
        }
    }
}

impl Task for ParserTask {
    type Output = Outcome;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> Outcome {
        match self {
            ParserTask::CompileGrammar { grammar } => Outcome::Grammar(compile_grammar(context, grammar)),
            ParserTask::Parse { grammar, rule, program } => {
                Outcome::Program(parse_program(context, grammar, rule, program))
            }
        }
    }
}

fn compile_grammar<C: Context<ParserTask>>(context: &mut C, grammar: &Path) -> Result<CompiledGrammar, GrammarError> {
    let text = read_text(context, grammar).map_err(GrammarError::Unreadable)?;
    let rules = compile(&text)?;
    let mut rules: Vec<String> = rules.into_iter().map(|rule| rule.name).collect();
    rules.sort();
    Ok(CompiledGrammar { text, rules })
}

/// pest_meta's parse, validation and optimization of a grammar.
fn compile(text: &str) -> Result<Vec<pest_meta::optimizer::OptimizedRule>, GrammarError> {
    match pest_meta::parse_and_optimize(text) {
        Ok((_builtins, rules)) => Ok(rules),
        Err(errors) => Err(GrammarError::Invalid(
            errors
                .into_iter()
                .map(|e| Diagnostic::from_pest(&e.renamed_rules(pest_meta::parser::rename_meta_rule)))
                .collect(),
        )),
    }
}

fn parse_program<C: Context<ParserTask>>(
    context: &mut C,
    grammar: &Path,
    rule: &str,
    program: &Path,
) -> Result<String, ProgramError> {
    let compiled = match context.require_task(&ParserTask::CompileGrammar {
        grammar: grammar.to_path_buf(),
    }) {
        Outcome::Grammar(Ok(compiled)) => compiled,
        Outcome::Grammar(Err(_)) => return Err(ProgramError::GrammarFailed),
        Outcome::Program(_) => panic!("BUG: CompileGrammar task returned a program outcome"),
    };
    // pest_vm panics on an undefined start rule, so check first.
    if !compiled.rules.iter().any(|r| r == rule) {
        return Err(ProgramError::UnknownRule);
    }
    let text = read_text(context, program).map_err(ProgramError::Unreadable)?;
    // The text compiled a moment ago in CompileGrammar, and compiling is deterministic.
    let rules = compile(&compiled.text).map_err(|_| ProgramError::GrammarFailed)?;
    let vm = pest_vm::Vm::new(rules);
    match vm.parse(rule, &text) {
        Ok(pairs) => Ok(format_tree(pairs)),
        Err(error) => Err(ProgramError::Syntax(Diagnostic::from_pest(&error))),
    }
}

/// Requires and reads the file at `path`; the error is the reason, for a message that names the file.
fn read_text<C: Context<ParserTask>>(context: &mut C, path: &Path) -> Result<String, String> {
    match context.require_file_with_stamper(path, FileStamper::Hash) {
        Ok(Some(mut file)) => {
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(|e| e.to_string())?;
            Ok(text)
        }
        Ok(None) => Err(not_a_file_reason(path).to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why `path`, for which `require_file` found no regular file, cannot be read: nothing is there, a directory is, or
/// something else (a FIFO, a socket, a device).
///
/// The output depends on which it is, and the recorded dependency sees the difference: the `Hash` stamp of a
/// missing file, of a directory and of anything else differ (see [`FileStamper::Hash`]), so a missing file replaced
/// by a directory (or the reverse) executes the task again.
fn not_a_file_reason(path: &Path) -> &'static str {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => "is a directory",
        Ok(_) => "is not a regular file",
        Err(_) => "no such file",
    }
}

/// One line per pair, indented by depth: `- rule` for a pair with children, `- rule: "text"` for a leaf.
fn format_tree(pairs: Pairs<'_, &str>) -> String {
    fn go(pairs: Pairs<'_, &str>, depth: usize, out: &mut String) {
        for pair in pairs {
            let indent = depth * 2;
            let rule = pair.as_rule();
            let mut inner = pair.clone().into_inner().peekable();
            if inner.peek().is_some() {
                let _ = writeln!(out, "{:indent$}- {rule}", "");
                go(pair.into_inner(), depth + 1, out);
            } else {
                let _ = writeln!(out, "{:indent$}- {rule}: {:?}", "", pair.as_str());
            }
        }
    }
    let mut out = String::new();
    go(pairs, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_grammar_reports_line_and_column() {
        let Err(GrammarError::Invalid(errors)) = compile("a = { \"x\" }\nb = { a ~ }\n") else {
            panic!("the grammar should be invalid");
        };
        assert_eq!((errors[0].line, errors[0].column), (2, 11));
        assert!(errors[0].render("g.pest").starts_with("g.pest:2:11: expected"));
    }

    #[test]
    fn tree_lists_rules_and_leaf_text() {
        let vm = pest_vm::Vm::new(compile("list = { num ~ (\",\" ~ num)* }\nnum = { ASCII_DIGIT+ }").unwrap());
        let tree = format_tree(vm.parse("list", "1,23").unwrap());
        assert_eq!(tree, "- list\n  - num: \"1\"\n  - num: \"23\"\n");
    }
}
