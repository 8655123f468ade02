//! The editor's logic and rendering, driven by key inputs and drawn on ratatui's `TestBackend`.

use std::fs;
use std::path::Path;

use dev_util::Dir;
use parser_dev::app::{App, Control, HELP};
use parser_dev::disk::OnDisk;
use parser_dev::workspace::{Config, LogTarget, Workspace};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use ratatui_textarea::{Input, Key};

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
        store: Some(dir.join(".pie").join("parser_dev.store")),
    }
}

fn open(dir: &Path) -> App {
    open_config(&config(dir))
}

fn open_config(config: &Config) -> App {
    let (workspace, warning) = Workspace::open(config, LogTarget::Memory(Vec::new()));
    assert_eq!(warning, None);
    App::new(workspace).expect("open the buffers")
}

fn key(key: Key) -> Input {
    Input {
        key,
        ctrl: false,
        alt: false,
        shift: false,
    }
}

fn ctrl(c: char) -> Input {
    Input {
        key: Key::Char(c),
        ctrl: true,
        alt: false,
        shift: false,
    }
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        let input = if c == '\n' { key(Key::Enter) } else { key(Key::Char(c)) };
        assert_eq!(app.handle_input(input), Control::Continue);
    }
}

/// Renders `app` on a `width`×`height` test terminal and returns the screen, one line per row.
fn screen(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|frame| app.render(frame)).expect("draw");
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

fn log_text(app: &App) -> String {
    app.log().join("\n")
}

#[test]
fn rendering_shows_buffers_feedback_log_and_help() {
    let dir = examples();
    let app = open(dir.path());
    let screen = screen(&app, 200, 40);
    let grammar = dir.join("grammar.pest").display().to_string();
    assert!(screen.contains(&format!(" grammar {grammar} ")), "{screen}");
    assert!(screen.contains("program1.txt"), "{screen}");
    assert!(screen.contains("program2.txt"), "{screen}");
    assert!(
        screen.contains("main       =  { SOI ~ statement* ~ EOI }"),
        "the grammar's text: {screen}"
    );
    assert!(screen.contains("let x = 1 + 2;"), "a program's text: {screen}");
    assert!(screen.contains(" feedback "), "{screen}");
    assert!(screen.contains("ok, 14 rules"), "the grammar's feedback: {screen}");
    assert!(screen.contains("- let_stmt"), "a parse tree: {screen}");
    assert!(screen.contains(" build log "), "{screen}");
    assert!(
        screen.contains("build 1: 3 tasks executed (grammar compiled, 2 programs parsed)"),
        "{screen}"
    );
    assert!(screen.contains(HELP), "{screen}");
}

#[test]
fn ctrl_t_cycles_through_the_buffers() {
    let dir = examples();
    let mut app = open(dir.path());
    assert_eq!(app.active(), 0);
    assert_eq!(app.handle_input(ctrl('t')), Control::Continue);
    assert_eq!(app.active(), 1);
    // Typing goes to the active buffer only.
    type_text(&mut app, "z");
    assert!(app.buffers()[1].text().starts_with("zlet x"));
    assert!(app.buffers()[1].is_modified());
    assert!(!app.buffers()[0].is_modified());
    app.handle_input(ctrl('t'));
    assert_eq!(app.active(), 2);
    app.handle_input(ctrl('t'));
    assert_eq!(app.active(), 0);
    assert!(screen(&app, 200, 40).contains("program1.txt [modified]"));
}

#[test]
fn ctrl_s_saves_the_buffer_and_rebuilds_only_what_changed() {
    let dir = examples();
    let mut app = open(dir.path());
    app.handle_input(ctrl('t'));
    type_text(&mut app, "print 7;\n");
    assert_eq!(app.handle_input(ctrl('s')), Control::Continue);

    let saved = dir.read("program1.txt");
    assert_eq!(saved, "print 7;\nlet x = 1 + 2;\nprint x * 3;\n");
    assert!(!app.buffers()[1].is_modified());
    assert!(
        log_text(&app).ends_with("build 2: 1 task executed (1 program parsed)"),
        "{}",
        log_text(&app)
    );
    let Ok(tree) = app.buffers()[1].feedback() else {
        panic!("program1 should parse: {:?}", app.buffers()[1].feedback());
    };
    assert!(tree.contains("number: \"7\""), "{tree}");
    let screen = screen(&app, 200, 40);
    assert!(screen.contains("- number: \"7\""), "the new tree is shown: {screen}");

    // Saving again with nothing modified executes nothing.
    app.handle_input(ctrl('s'));
    assert!(log_text(&app).ends_with("build 3: nothing to do: 0 tasks executed"));
}

#[test]
fn a_syntax_error_shows_in_the_programs_feedback() {
    let dir = examples();
    let mut app = open(dir.path());
    app.handle_input(ctrl('t'));
    app.handle_input(ctrl('t'));
    type_text(&mut app, "let = 3;\n");
    app.handle_input(ctrl('s'));
    let program = dir.join("program2.txt").display().to_string();
    let Err(error) = app.buffers()[2].feedback() else {
        panic!("program2 should fail: {:?}", app.buffers()[2].feedback());
    };
    assert!(
        error.starts_with(&format!("{program}:1:5: expected \"ident\"")),
        "{error}"
    );
    assert!(app.buffers()[1].feedback().is_ok());
}

#[test]
fn editing_the_grammar_reparses_every_program_and_reports_errors_once() {
    let dir = examples();
    let mut app = open(dir.path());
    type_text(&mut app, "~");
    app.handle_input(ctrl('s'));
    let Err(error) = app.buffers()[0].feedback() else {
        panic!("the grammar should fail: {:?}", app.buffers()[0].feedback());
    };
    assert!(error.contains("grammar.pest:1:1: expected"), "{error}");
    for program in &app.buffers()[1..] {
        assert_eq!(program.feedback(), &Err("not parsed: the grammar failed".to_string()));
    }
    // The programs' tasks executed, but found the grammar failed: they are not counted as parsed.
    assert!(
        log_text(&app).ends_with("build 2: 3 tasks executed (grammar compiled, 2 programs not parsed)"),
        "{}",
        log_text(&app)
    );
}

#[test]
fn escape_with_unsaved_changes_asks_again_then_quits_and_saves_the_store() {
    let dir = examples();
    let mut app = open(dir.path());
    type_text(&mut app, "x");
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Continue);
    assert!(log_text(&app).contains("unsaved changes"));
    assert!(screen(&app, 200, 40).contains("Esc again quits without saving"));
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Quit);
    assert_eq!(app.store_error(), None);
    assert!(dir.join(".pie/parser_dev.store").is_file());
    // The unsaved edit was not written.
    assert!(dir.read("grammar.pest").starts_with("// A tiny"));
}

#[test]
fn escape_without_changes_quits_at_once() {
    let dir = examples();
    let mut app = open(dir.path());
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Quit);
}

#[test]
fn a_reopened_app_reuses_the_saved_store() {
    let dir = examples();
    let mut app = open(dir.path());
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Quit);
    let app = open(dir.path());
    assert!(
        log_text(&app).ends_with("build 1: nothing to do: 0 tasks executed"),
        "{}",
        log_text(&app)
    );
}

#[test]
fn a_missing_program_opens_empty_and_saving_creates_it() {
    let dir = examples();
    let mut config = config(dir.path());
    config.programs.push(dir.join("new.txt"));
    let (workspace, _) = Workspace::open(&config, LogTarget::Memory(Vec::new()));
    let mut app = App::new(workspace).expect("open the buffers");
    assert!(log_text(&app).contains("new.txt: new file, Ctrl+S creates it"));
    assert!(matches!(app.buffers()[3].feedback(), Err(e) if e.contains("no such file")));
    for _ in 0..3 {
        app.handle_input(ctrl('t'));
    }
    type_text(&mut app, "print 1;");
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("new.txt"), "print 1;\n");
    assert!(app.buffers()[3].feedback().is_ok(), "{:?}", app.buffers()[3].feedback());
}

#[test]
fn small_terminals_do_not_panic() {
    let dir = examples();
    let mut app = open(dir.path());
    for (width, height) in [(20, 5), (1, 1), (0, 0), (5, 40), (200, 2)] {
        screen(&app, width, height);
    }
    // Also with an error, a long line and the cursor far right and down.
    type_text(&mut app, &"x".repeat(300));
    app.handle_input(key(Key::Enter));
    app.handle_input(ctrl('s'));
    app.handle_input(ctrl('t'));
    for _ in 0..50 {
        app.handle_input(key(Key::Enter));
    }
    for (width, height) in [(20, 5), (3, 3), (0, 7)] {
        screen(&app, width, height);
    }
    assert!(
        screen(&app, 20, 5).contains("Esc quit │ ^S save"),
        "the help line survives"
    );
}

/// The last row of `screen`, without trailing spaces.
fn last_row(screen: &str) -> &str {
    screen.lines().last().unwrap_or_default().trim_end()
}

#[test]
fn the_quit_hint_stays_visible_in_narrow_terminals() {
    let dir = examples();
    let mut app = open(dir.path());
    assert_eq!(last_row(&screen(&app, 200, 40)), HELP);
    for width in [8, 10, 20, 30, 40, 50] {
        let screen = screen(&app, width, 12);
        assert!(last_row(&screen).starts_with("Esc quit"), "{width} columns:\n{screen}");
    }
    assert_eq!(last_row(&screen(&app, 40, 12)), "Esc quit │ Ctrl+S save │ Ctrl+T next");

    // With unsaved changes, after a quit key: what pressing it again does, as far as it fits.
    type_text(&mut app, "x");
    app.handle_input(ctrl('q'));
    assert_eq!(
        last_row(&screen(&app, 200, 40)),
        "unsaved changes: Ctrl+Q again quits without saving │ Ctrl+S save & build"
    );
    for width in [18, 20, 40] {
        let screen = screen(&app, width, 12);
        assert!(
            last_row(&screen).starts_with("Ctrl+Q again quits"),
            "{width} columns:\n{screen}"
        );
    }
}

/// The panes drawn on `screen` that have no room for text inside their borders: the positions of top-left corners
/// with a bottom-left corner right below or a top-right corner right beside them.
fn panes_without_text_room(screen: &str) -> Vec<(usize, usize)> {
    let rows: Vec<Vec<char>> = screen.lines().map(|row| row.chars().collect()).collect();
    let at = |x: usize, y: usize| rows.get(y).and_then(|row| row.get(x)).copied();
    let mut found = Vec::new();
    for (y, row) in rows.iter().enumerate() {
        for (x, c) in row.iter().enumerate() {
            let corner = matches!(c, '┌' | '└');
            let empty_below = *c == '┌' && at(x, y + 1) == Some('└');
            let empty_beside = corner && matches!(at(x + 1, y), Some('┐' | '┘'));
            if empty_below || empty_beside {
                found.push((x, y));
            }
        }
    }
    found
}

#[test]
fn panes_without_room_for_text_are_not_drawn() {
    let dir = examples();
    let mut app = open(dir.path());
    // Two rows: one for the buffers (no room between borders) and the help line.
    let tiny = screen(&app, 200, 2);
    assert_eq!(
        tiny.lines().next().map(str::trim),
        Some(""),
        "nothing but the help line:\n{tiny}"
    );
    assert_eq!(last_row(&tiny), HELP);
    for active in 0..3 {
        for height in 1..=40 {
            for width in [4, 5, 6, 7, 10, 40, 120] {
                let screen = screen(&app, width, height);
                assert_eq!(
                    panes_without_text_room(&screen),
                    vec![],
                    "{width}x{height}, buffer {active} active:\n{screen}"
                );
            }
        }
        app.handle_input(ctrl('t'));
    }
    // Where there is room, every buffer has at least a line of text.
    let screen = screen(&app, 120, 14);
    assert!(
        screen.contains("┌ grammar ") && screen.matches("┌ program ").count() == 2,
        "{screen}"
    );
}

#[test]
fn ctrl_q_and_ctrl_c_quit_like_escape() {
    for (quit, letter) in [("Ctrl+Q", 'q'), ("Ctrl+C", 'c')] {
        let input = || ctrl(letter);
        let dir = examples();
        let mut app = open(dir.path());
        assert_eq!(
            app.handle_input(input()),
            Control::Quit,
            "{quit} without changes quits at once"
        );
        assert!(dir.join(".pie/parser_dev.store").is_file(), "{quit} saves the store");

        let mut app = open(dir.path());
        type_text(&mut app, "x");
        assert_eq!(
            app.handle_input(input()),
            Control::Continue,
            "{quit} with unsaved changes asks first"
        );
        assert!(
            log_text(&app).ends_with(&format!(
                "unsaved changes: press {quit} again to quit without saving them, or Ctrl+S to save"
            )),
            "{}",
            log_text(&app)
        );
        assert!(!app.buffers()[0].text().contains("xq") && !app.buffers()[0].text().contains("xc"));
        assert_eq!(app.handle_input(input()), Control::Quit, "{quit} again quits");
        assert!(
            dir.read("grammar.pest").starts_with("// A tiny"),
            "the unsaved edit was not written"
        );
    }
}

#[test]
fn any_quit_key_confirms_and_another_key_disarms() {
    let dir = examples();
    let mut app = open(dir.path());
    type_text(&mut app, "x");
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Continue);
    // Typing in between takes the question back.
    type_text(&mut app, "y");
    assert_eq!(app.handle_input(ctrl('c')), Control::Continue);
    assert_eq!(app.handle_input(ctrl('q')), Control::Quit);
}

#[test]
fn an_empty_grammar_says_it_has_no_rules() {
    let dir = examples();
    dir.write("grammar.pest", "");
    let app = open(dir.path());
    let grammar = dir.join("grammar.pest").display().to_string();
    assert_eq!(
        app.buffers()[0].feedback(),
        &Err(format!("error: grammar {grammar} has no rules"))
    );
}

#[test]
fn a_directory_given_as_a_file_is_reported_as_a_directory() {
    let dir = examples();
    fs::create_dir(dir.join("folder")).unwrap();
    let mut config = config(dir.path());
    config.programs.push(dir.join("folder"));
    let (workspace, _) = Workspace::open(&config, LogTarget::Memory(Vec::new()));
    let error = App::new(workspace).expect_err("a directory cannot be edited");
    assert!(error.contains("folder") && error.contains("is a directory"), "{error}");
    assert!(!error.contains("no such file"), "{error}");
}

#[test]
fn a_cramped_terminal_shows_only_the_active_buffer() {
    let dir = examples();
    let mut app = open(dir.path());
    let small = screen(&app, 40, 8);
    assert!(small.contains("┌ grammar "), "{small}");
    assert!(!small.contains("┌ program "), "{small}");
    assert!(!small.contains("build log"), "{small}");
    app.handle_input(ctrl('t'));
    let small = screen(&app, 40, 8);
    assert!(!small.contains("┌ grammar "), "{small}");
    assert!(small.contains("let x = 1 + 2;"), "{small}");
}

#[test]
fn files_no_longer_open_are_forgotten_when_the_store_is_saved() {
    let dir = examples();
    let store = dir.join(".pie/parser_dev.store");
    let text: String = (0..2000).map(|i| format!("let v{i} = {i} * ({i} + 1);\n")).collect();
    let large = dir.create("large.txt", text);
    let mut with_large = config(dir.path());
    with_large.programs.push(large);

    let mut app = open_config(&with_large);
    assert!(log_text(&app).ends_with("build 1: 4 tasks executed (grammar compiled, 3 programs parsed)"));
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Quit);
    let size_with_large = fs::metadata(&store).unwrap().len();

    // Opened on the two example programs only: nothing to build, and quitting saves a store without large.txt.
    let mut app = open(dir.path());
    assert!(
        log_text(&app).ends_with("build 1: nothing to do: 0 tasks executed"),
        "{}",
        log_text(&app)
    );
    assert_eq!(app.handle_input(key(Key::Esc)), Control::Quit);
    let size_without = fs::metadata(&store).unwrap().len();
    assert!(
        size_without < size_with_large / 4,
        "the store shrinks: {size_with_large} -> {size_without} bytes"
    );

    // Opening large.txt again parses it again, and only it.
    let app = open_config(&with_large);
    assert!(
        log_text(&app).ends_with("build 1: 1 task executed (1 program parsed)"),
        "{}",
        log_text(&app)
    );
}

/// Tells `app` what `name` in `dir` holds now, as the terminal loop does after a change on disk.
fn tell_disk(app: &mut App, dir: &Dir, name: &str) {
    let path = dir.join(name);
    let now = OnDisk::read(&path);
    app.disk_changed([(path, now)]);
}

#[test]
fn a_buffer_without_edits_is_reloaded_and_its_results_update_without_ctrl_s() {
    let dir = examples();
    let mut app = open(dir.path());
    // Edited outside the editor: a syntax error.
    dir.write("program1.txt", "print 7;\nlet = 2;\n");
    tell_disk(&mut app, &dir, "program1.txt");

    assert_eq!(app.buffers()[1].text(), "print 7;\nlet = 2;");
    assert!(!app.buffers()[1].is_modified());
    assert!(!app.buffers()[1].changed_on_disk());
    let log = log_text(&app);
    assert!(log.contains("program1.txt changed on disk and was reloaded"), "{log}");
    assert!(log.ends_with("build 2: 1 task executed (1 program parsed)"), "{log}");
    assert!(
        matches!(app.buffers()[1].feedback(), Err(e) if e.contains("program1.txt:2:")),
        "{:?}",
        app.buffers()[1].feedback()
    );
    let screen = screen(&app, 200, 40);
    assert!(screen.contains("let = 2;"), "the new text is shown: {screen}");
    assert!(!screen.contains("[changed on disk]"), "{screen}");

    // The same version reported again (more events of the same save) changes nothing.
    tell_disk(&mut app, &dir, "program1.txt");
    assert_eq!(log_text(&app), log);
}

#[test]
fn the_events_of_the_editors_own_save_change_nothing() {
    let dir = examples();
    let mut app = open(dir.path());
    app.handle_input(ctrl('t'));
    type_text(&mut app, "print 7;\n");
    app.handle_input(ctrl('s'));
    type_text(&mut app, "print 8;\n");
    let log = log_text(&app);
    tell_disk(&mut app, &dir, "program1.txt");
    assert_eq!(log_text(&app), log, "no reload, no mark, no build");
    assert!(!app.buffers()[1].changed_on_disk());
    assert!(app.buffers()[1].text().starts_with("print 7;\nprint 8;\n"));
}

#[test]
fn a_deleted_file_empties_a_buffer_without_edits() {
    let dir = examples();
    let mut app = open(dir.path());
    dir.remove("program2.txt");
    tell_disk(&mut app, &dir, "program2.txt");
    assert_eq!(app.buffers()[2].text(), "");
    assert!(!app.buffers()[2].changed_on_disk());
    assert!(log_text(&app).contains("program2.txt was deleted on disk"));
    assert!(matches!(app.buffers()[2].feedback(), Err(e) if e.contains("no such file")));
}

/// An app whose program1 buffer (active) has the unsaved edit `mine ` while the file was changed outside to
/// `print 9;`, and the app was told.
fn conflicted(dir: &Dir) -> App {
    let mut app = open(dir.path());
    app.handle_input(ctrl('t'));
    type_text(&mut app, "mine ");
    dir.write("program1.txt", "print 9;\n");
    tell_disk(&mut app, dir, "program1.txt");
    app
}

#[test]
fn a_buffer_with_unsaved_edits_is_marked_and_keeps_them() {
    let dir = examples();
    let app = conflicted(&dir);
    let buffer = &app.buffers()[1];
    assert!(buffer.changed_on_disk());
    assert!(
        buffer.text().starts_with("mine let x"),
        "the edits stay: {}",
        buffer.text()
    );
    let log = log_text(&app);
    assert!(
        log.contains("program1.txt changed on disk and you have unsaved edits"),
        "{log}"
    );
    // The results follow the disk all the same.
    assert!(log.ends_with("build 2: 1 task executed (1 program parsed)"), "{log}");
    assert!(matches!(buffer.feedback(), Ok(tree) if tree.contains("number: \"9\"")));

    let screen = screen(&app, 200, 40);
    assert!(screen.contains("program1.txt [modified] [changed on disk]"), "{screen}");
    assert!(
        last_row(&screen)
            .ends_with("program1.txt changed on disk: Ctrl+L reload (drops your edits) │ Ctrl+O keep yours │ Esc quit"),
        "{screen}"
    );
}

#[test]
fn ctrl_l_reloads_the_version_on_disk_dropping_the_edits() {
    let dir = examples();
    let mut app = conflicted(&dir);
    app.handle_input(ctrl('l'));
    assert_eq!(app.buffers()[1].text(), "print 9;");
    assert!(!app.buffers()[1].is_modified());
    assert!(!app.buffers()[1].changed_on_disk());
    assert!(log_text(&app).contains("program1.txt reloaded from disk; your edits are dropped"));
    let screen = screen(&app, 200, 40);
    assert!(
        !screen.contains("[changed on disk]") && !screen.contains("[modified]"),
        "{screen}"
    );
    assert_eq!(last_row(&screen), HELP);
    // Nothing to save now: the file stays as it was changed outside.
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("program1.txt"), "print 9;\n");
}

#[test]
fn ctrl_o_keeps_the_edits_and_ctrl_s_then_overwrites_the_file() {
    let dir = examples();
    let mut app = conflicted(&dir);
    app.handle_input(ctrl('o'));
    assert!(!app.buffers()[1].changed_on_disk());
    assert!(app.buffers()[1].is_modified());
    let log = log_text(&app);
    assert!(log.contains("keeping your version of "), "{log}");
    assert!(
        log.contains("program1.txt; Ctrl+S overwrites the file on disk"),
        "{log}"
    );
    assert_eq!(
        dir.read("program1.txt"),
        "print 9;\n",
        "nothing is written before Ctrl+S"
    );
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("program1.txt"), "mine let x = 1 + 2;\nprint x * 3;\n");
    assert!(!app.buffers()[1].is_modified());
}

#[test]
fn ctrl_s_refuses_to_overwrite_an_outside_change_until_the_user_chooses() {
    let dir = examples();
    let mut app = conflicted(&dir);
    // A program without a conflict is saved all the same.
    app.handle_input(ctrl('t'));
    type_text(&mut app, "print 2;\n");
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("program1.txt"), "print 9;\n");
    assert!(dir.read("program2.txt").starts_with("print 2;\n"));
    let log = log_text(&app);
    assert!(log.contains("not saved: "), "{log}");
    assert!(log.contains("program1.txt changed on disk; Ctrl+L reloads it"), "{log}");
    assert!(app.buffers()[1].changed_on_disk() && app.buffers()[1].is_modified());
}

#[test]
fn ctrl_s_refuses_an_outside_change_it_was_not_told_about() {
    let dir = examples();
    let mut app = open(dir.path());
    app.handle_input(ctrl('t'));
    type_text(&mut app, "mine ");
    // Changed outside, and Ctrl+S comes before the change's event.
    dir.write("program1.txt", "print 9;\n");
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("program1.txt"), "print 9;\n", "not overwritten");
    assert!(app.buffers()[1].changed_on_disk());
    assert!(
        log_text(&app).contains("program1.txt changed on disk since it was loaded"),
        "{}",
        log_text(&app)
    );
    assert!(screen(&app, 200, 40).contains("[changed on disk]"));
    // Its event, when it comes, changes nothing more; keeping the edits then lets Ctrl+S write them.
    tell_disk(&mut app, &dir, "program1.txt");
    app.handle_input(ctrl('o'));
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("program1.txt"), "mine let x = 1 + 2;\nprint x * 3;\n");
}

#[test]
fn a_change_reverted_on_disk_drops_the_mark() {
    let dir = examples();
    let mut app = conflicted(&dir);
    dir.write("program1.txt", "let x = 1 + 2;\nprint x * 3;\n");
    tell_disk(&mut app, &dir, "program1.txt");
    assert!(!app.buffers()[1].changed_on_disk());
    assert!(app.buffers()[1].text().starts_with("mine "));
    app.handle_input(ctrl('s'));
    assert_eq!(dir.read("program1.txt"), "mine let x = 1 + 2;\nprint x * 3;\n");
}

#[test]
fn the_choice_keys_are_shown_and_the_quit_hint_stays_in_narrow_terminals() {
    let dir = examples();
    let mut app = conflicted(&dir);
    for width in [8, 20, 30, 40, 70] {
        let screen = screen(&app, width, 12);
        assert!(last_row(&screen).starts_with("Esc quit"), "{width} columns:\n{screen}");
    }
    assert_eq!(
        last_row(&screen(&app, 70, 12)),
        "Esc quit │ changed on disk: Ctrl+L reload │ Ctrl+O keep yours"
    );
    // From another buffer: where the choice is to be made.
    app.handle_input(ctrl('t'));
    let screen_200 = screen(&app, 200, 40);
    assert!(
        last_row(&screen_200).ends_with(
            "program1.txt changed on disk: Ctrl+T to it, then Ctrl+L reload or Ctrl+O keep yours │ Esc quit"
        ),
        "{screen_200}"
    );
    assert!(last_row(&screen(&app, 30, 12)).starts_with("Esc quit"));
    // The choice keys act on the active buffer only.
    app.handle_input(ctrl('l'));
    assert!(app.buffers()[1].changed_on_disk());
    assert!(log_text(&app).contains("program2.txt has not changed on disk"));
}
