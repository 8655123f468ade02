//! parser_dev: develop a [pest](https://pest.rs) grammar against example programs, incrementally, with pie.
//!
//! Two pie tasks ([`task::ParserTask`]) do the work: one compiles the grammar file at run time (pest_meta), one
//! parses a program file with a rule of the compiled grammar (pest_vm). A [`workspace::Workspace`] holds the
//! long-lived `Pie` and its store file, so a run with nothing changed executes no task and an edit re-executes
//! only what it affects — across runs, too. Batch mode prints a [`report`]; the interactive mode
//! ([`app::App`]) rebuilds on every save and follows the files on disk. Batch and watch mode can share results
//! with other folders and machines through pie's remote cache (`--cache URL`).
//!
//! Modules: [`task`] (the tasks and their outputs), [`workspace`] (the `Pie`, its tracker and store, one build),
//! [`report`] (build results as text), [`app`] (the editor's state, keys and rendering, without the terminal),
//! [`disk`] (the editor following its files on disk).

#![warn(missing_docs)]

pub mod app;
pub mod disk;
mod path_bytes;
pub mod report;
pub mod task;
pub mod workspace;
