//! The workspace's builds, through the library: what a build reports, and when.

use std::path::Path;

use dev_util::Dir;
use parser_dev::workspace::{Config, LogTarget, Reached, Workspace};

/// A temporary folder with the example grammar and two programs.
fn examples() -> Dir {
    let dir = Dir::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    dir.copy_from(source, &["grammar.pest", "program1.txt", "program2.txt"]);
    dir
}

fn config(dir: &Path) -> Config {
    Config {
        grammar: dir.join("grammar.pest"),
        rule: "main".to_string(),
        programs: vec![dir.join("program1.txt"), dir.join("program2.txt")],
        store: Some(dir.join("parser_dev.store")),
    }
}

/// What a callback of `build_with` saw: `grammar`, or a program's name with `parsed`, `cached` or `not parsed`.
fn describe(reached: Reached<'_>) -> String {
    match reached {
        Reached::Grammar(_) => "grammar".to_string(),
        Reached::Program(program) => {
            let how = match (program.has_parse(), program.executed) {
                (false, _) => "not parsed",
                (true, true) => "parsed",
                (true, false) => "cached",
            };
            let name = program.file.path.file_name().unwrap_or_default().to_string_lossy();
            format!("{name} {how}")
        }
    }
}

#[test]
fn each_outcome_is_handed_over_in_order_as_the_build_reaches_it() {
    let dir = examples();
    let (mut workspace, _) = Workspace::open(&config(dir.path()), LogTarget::Off);
    let mut seen = Vec::new();
    let report = workspace.build_with(|reached| seen.push(describe(reached)));
    assert_eq!(seen, ["grammar", "program1.txt parsed", "program2.txt parsed"]);
    assert_eq!(report.parsed_count(), 2);

    // Nothing changed: both are handed over as cached, in order (the programs are checked in parallel).
    let mut seen = Vec::new();
    workspace.build_with(|reached| seen.push(describe(reached)));
    assert_eq!(seen, ["grammar", "program1.txt cached", "program2.txt cached"]);

    // An edit of program2 made while the build hands over program1 is seen by this build or the next one, never
    // lost.
    let mut seen = Vec::new();
    dir.write("program1.txt", "print 1;\n");
    let report = workspace.build_with(|reached| {
        let description = describe(reached);
        if description == "program1.txt parsed" {
            dir.write("program2.txt", "print 42;\n");
        }
        seen.push(description);
    });
    assert_eq!(seen[..2], ["grammar", "program1.txt parsed"]);
    if !report.programs[1]
        .result
        .as_ref()
        .expect("program2 parses")
        .contains("number: \"42\"")
    {
        let report = workspace.build();
        let tree = report.programs[1].result.as_ref().expect("program2 parses");
        assert!(tree.contains("number: \"42\""), "{tree}");
        assert_eq!(report.executed, 1);
    }
}

#[test]
fn programs_stopped_by_the_grammar_are_not_counted_as_parsed() {
    let dir = examples();
    dir.write("grammar.pest", "main = { \"x\" ~ }\n");
    let (mut workspace, _) = Workspace::open(&config(dir.path()), LogTarget::Off);
    let mut seen = Vec::new();
    let report = workspace.build_with(|reached| seen.push(describe(reached)));
    assert_eq!(seen, ["grammar", "program1.txt not parsed", "program2.txt not parsed"]);
    assert_eq!(report.executed, 3, "the programs' tasks did execute");
    assert_eq!((report.parsed_count(), report.not_parsed_count()), (0, 2));
    assert!(report.programs.iter().all(|p| p.executed && !p.parsed()));
}

#[test]
fn the_remote_cache_root_is_the_deepest_folder_holding_the_grammar_and_every_program() {
    let dir = Dir::new();
    let grammar = dir.create("grammars/g.pest", "main = { \"x\" }");
    let near = dir.create("grammars/p.txt", "x");
    let far = dir.create("tests/deep/q.txt", "x");
    let root_of = |programs: Vec<std::path::PathBuf>| {
        let config = Config {
            grammar: grammar.clone(),
            rule: "main".to_string(),
            programs,
            store: Some(dir.join("parser_dev.store")),
        };
        let (workspace, _) = Workspace::open(&config, LogTarget::Off);
        workspace.remote_cache_root()
    };
    assert_eq!(root_of(vec![near.clone()]), dir.join("grammars"));
    assert_eq!(root_of(vec![near, far.clone()]), dir.path());
    // `..` is resolved lexically, as pie resolves the paths of dependencies.
    assert_eq!(root_of(vec![dir.join("grammars/../tests/deep/q.txt")]), dir.path());
}
