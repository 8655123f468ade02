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

    // The second build finds program1 up to date and hands it over before it looks at program2: an edit made to
    // program2 at that moment is seen by this very build.
    let mut seen = Vec::new();
    let report = workspace.build_with(|reached| {
        let description = describe(reached);
        if description == "program1.txt cached" {
            dir.write("program2.txt", "print 42;\n");
        }
        seen.push(description);
    });
    assert_eq!(seen, ["grammar", "program1.txt cached", "program2.txt parsed"]);
    let tree = report.programs[1].result.as_ref().expect("program2 parses");
    assert!(tree.contains("number: \"42\""), "{tree}");
    assert_eq!((report.executed, report.parsed_count()), (1, 1));
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
