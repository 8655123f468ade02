//! The editor's state and logic, apart from the terminal: buffers, key handling, builds and rendering.
//!
//! [`App`] owns the [`Workspace`] (and so the one long-lived `Pie`); every Ctrl+S writes the modified buffers and
//! runs one incremental build. The buffers are the workspace's files, open from start to quit (there is no command
//! to open or close one), so the tasks of the open buffers are the builds' roots, and quitting saves a store that
//! forgets the files an earlier run had open and this one does not ([`Workspace::save_store`]). Rendering draws into any ratatui [`Frame`], so tests use `TestBackend`, and
//! the terminal loop in `main.rs` only forwards key presses to [`App::handle_input`].

use std::fs;
use std::io;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;
use ratatui_textarea::{Input, Key, TextArea};

use crate::report::{grammar_feedback, program_feedback, summary};
use crate::workspace::{SourceFile, Workspace};

/// The help line's text.
pub const HELP: &str = "Ctrl+S save & build │ Ctrl+T next buffer │ Esc quit";

/// Shorter help lines for narrower terminals, longest first; the quit hint comes first so that it is the last to go.
const SHORT_HELP: [&str; 4] = [
    "Esc quit │ Ctrl+S save │ Ctrl+T next",
    "Esc quit │ ^S save │ ^T next",
    "Esc quit │ ^S save",
    "Esc quit",
];

/// At most this many log lines are kept.
const MAX_LOG_LINES: usize = 2000;

/// What the terminal loop should do after an input.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Quit: the store has been saved (or [`App::store_error`] says why not) and released.
    Quit,
}

/// An edited file: the grammar (buffer 0) or a program.
#[derive(Debug)]
pub struct Buffer {
    file: SourceFile,
    editor: TextArea<'static>,
    /// The lines as last read from or written to disk.
    saved: Vec<String>,
    /// The last build's feedback: `Ok` for success, `Err` for errors.
    feedback: Result<String, String>,
}

impl Buffer {
    fn open(file: SourceFile) -> Result<(Self, Option<String>), String> {
        let (text, note) = match fs::read_to_string(&file.path) {
            Ok(text) => (text, None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (
                String::new(),
                Some(format!("{}: new file, Ctrl+S creates it", file.shown)),
            ),
            Err(_) if file.path.is_dir() => return Err(format!("error: cannot open {}: is a directory", file.shown)),
            Err(e) => return Err(format!("error: cannot open {}: {e}", file.shown)),
        };
        let editor = TextArea::new(text.lines().map(str::to_string).collect());
        let saved = editor.lines().to_vec();
        let buffer = Self {
            file,
            editor,
            saved,
            feedback: Ok(String::new()),
        };
        Ok((buffer, note))
    }

    /// The file shown in this buffer.
    pub fn file(&self) -> &SourceFile {
        &self.file
    }

    /// The text being edited, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.editor.lines().join("\n")
    }

    /// Whether the text differs from the file's as last read or saved.
    pub fn is_modified(&self) -> bool {
        self.editor.lines() != self.saved.as_slice()
    }

    /// The last build's feedback: `Ok` for success, `Err` for errors.
    pub fn feedback(&self) -> &Result<String, String> {
        &self.feedback
    }

    /// Writes the text to the file when modified, with a trailing newline.
    fn save(&mut self) -> Result<bool, String> {
        if !self.is_modified() {
            return Ok(false);
        }
        let mut text = self.text();
        text.push('\n');
        fs::write(&self.file.path, text).map_err(|e| format!("error: cannot save {}: {e}", self.file.shown))?;
        self.saved = self.editor.lines().to_vec();
        Ok(true)
    }
}

/// The editor: one buffer for the grammar and one per program, each with feedback, plus a build log.
#[derive(Debug)]
pub struct App {
    workspace: Workspace,
    buffers: Vec<Buffer>,
    active: usize,
    log: Vec<String>,
    builds: usize,
    /// A quit key (named here) was pressed with unsaved changes; pressing a quit key again quits anyway.
    quit_armed: Option<&'static str>,
    store_error: Option<String>,
}

impl App {
    /// Opens a buffer for the workspace's grammar and each program (a missing file opens empty), then builds.
    ///
    /// The error is a message: a file exists but cannot be read as text.
    pub fn new(workspace: Workspace) -> Result<Self, String> {
        let files = std::iter::once(workspace.grammar().clone()).chain(workspace.programs().iter().cloned());
        let mut buffers = Vec::new();
        let mut log = Vec::new();
        for file in files {
            let (buffer, note) = Buffer::open(file)?;
            buffers.extend([buffer]);
            log.extend(note);
        }
        let mut app = Self {
            workspace,
            buffers,
            active: 0,
            log,
            builds: 0,
            quit_armed: None,
            store_error: None,
        };
        app.refresh_blocks();
        app.build();
        Ok(app)
    }

    /// Adds a line to the build log, for messages from outside (say, a store warning).
    pub fn push_log(&mut self, line: impl Into<String>) {
        self.log.push(line.into());
        self.trim_log();
    }

    /// The buffers: the grammar first, then the programs in the order given.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }

    /// The index of the buffer being edited.
    pub fn active(&self) -> usize {
        self.active
    }

    /// The build log's lines.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Why the store could not be saved when quitting, if it could not.
    pub fn store_error(&self) -> Option<&str> {
        self.store_error.as_deref()
    }

    /// Handles one key press: Ctrl+S saves and builds, Ctrl+T switches buffers, Esc, Ctrl+Q and Ctrl+C quit
    /// (asking again when there are unsaved changes: a second quit key quits), anything else edits the active
    /// buffer.
    pub fn handle_input(&mut self, input: Input) -> Control {
        let quit_key = quit_key(&input);
        let control = match (quit_key, input) {
            (Some(name), _) => {
                if self.quit_armed.is_some() || !self.buffers.iter().any(Buffer::is_modified) {
                    self.quit();
                    return Control::Quit;
                }
                self.push_log(format!(
                    "unsaved changes: press {name} again to quit without saving them, or Ctrl+S to save"
                ));
                Control::Continue
            }
            (None, input) => self.handle_other(input),
        };
        self.quit_armed = quit_key;
        self.refresh_blocks();
        control
    }

    /// Handles a key that does not quit.
    fn handle_other(&mut self, input: Input) -> Control {
        match input {
            Input {
                key: Key::Char('s'),
                ctrl: true,
                alt: false,
                ..
            } => {
                self.save_and_build();
                Control::Continue
            }
            Input {
                key: Key::Char('t'),
                ctrl: true,
                alt: false,
                ..
            } => {
                self.active = (self.active + 1) % self.buffers.len();
                Control::Continue
            }
            input => {
                self.buffers[self.active].editor.input(input);
                Control::Continue
            }
        }
    }

    /// Writes every modified buffer to its file, then builds incrementally.
    pub fn save_and_build(&mut self) {
        let mut errors = Vec::new();
        for buffer in &mut self.buffers {
            if let Err(e) = buffer.save() {
                errors.push(e);
            }
        }
        for error in errors {
            self.push_log(error);
        }
        self.build();
    }

    fn build(&mut self) {
        let report = self.workspace.build();
        self.builds += 1;
        let log = self.workspace.take_log();
        self.log.extend(log.lines().map(str::to_string));
        for error in &report.check_errors {
            self.log.push(format!("warning: a dependency check failed: {error}"));
        }
        self.log.push(format!("build {}: {}", self.builds, summary(&report)));
        self.trim_log();

        let grammar = self.workspace.grammar().shown.clone();
        let rule = self.workspace.rule().to_string();
        self.buffers[0].feedback = grammar_feedback(&report.grammar, &grammar, &rule);
        for (buffer, program) in self.buffers[1..].iter_mut().zip(&report.programs) {
            buffer.feedback = program_feedback(program, &rule);
        }
    }

    fn quit(&mut self) {
        // Released at once: another parser_dev waiting for the store need not wait for this process to end.
        self.store_error = self.workspace.close_store().err();
    }

    fn trim_log(&mut self) {
        let excess = self.log.len().saturating_sub(MAX_LOG_LINES);
        self.log.drain(..excess);
    }

    /// Gives the active buffer a highlighted border and a visible cursor, the others neither.
    fn refresh_blocks(&mut self) {
        for (index, buffer) in self.buffers.iter_mut().enumerate() {
            let kind = if index == 0 { "grammar" } else { "program" };
            let modified = if buffer.is_modified() { " [modified]" } else { "" };
            let title = format!(" {kind} {}{modified} ", buffer.file.shown);
            let block = Block::bordered().title(title);
            if index == self.active {
                buffer
                    .editor
                    .set_block(block.border_style(Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)));
                buffer
                    .editor
                    .set_cursor_style(Style::new().add_modifier(Modifier::REVERSED));
                buffer
                    .editor
                    .set_cursor_line_style(Style::new().add_modifier(Modifier::UNDERLINED));
            } else {
                buffer
                    .editor
                    .set_block(block.border_style(Style::new().fg(Color::DarkGray)));
                buffer.editor.set_cursor_style(Style::new());
                buffer.editor.set_cursor_line_style(Style::new());
            }
        }
    }

    /// Draws the buffers with their feedback (the active one taller), the build log and the help line.
    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        // A log pane needs its borders and a few lines to be of use; a small terminal gives its rows to the buffers.
        let log_height = if area.height >= 16 {
            (area.height / 4).min(10)
        } else {
            0
        };
        let [buffers, log, help] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);

        // Every buffer gets a row with at least one line of text between its borders, the active one taller (about
        // three times as tall as the others); when there is no room for that, only the active buffer is shown.
        let rows =
            Layout::vertical(row_heights(buffers.height, self.buffers.len(), self.active).map(Constraint::Length))
                .split(buffers);
        for (buffer, row) in self.buffers.iter().zip(rows.iter()) {
            let [editor, feedback] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(*row);
            // A pane with no room for text inside its borders is not drawn: it would only be a stray border.
            if has_text_room(editor) {
                frame.render_widget(&buffer.editor, editor);
            }
            if has_text_room(feedback) {
                let (text, color) = match &buffer.feedback {
                    Ok(text) => (text.as_str(), Color::Green),
                    Err(text) => (text.as_str(), Color::Red),
                };
                let pane = Paragraph::new(text)
                    .style(Style::new().fg(color))
                    .wrap(Wrap { trim: false })
                    .block(Block::bordered().title(" feedback "));
                frame.render_widget(pane, feedback);
            }
        }

        if has_text_room(log) {
            frame.render_widget(self.log_pane(log), log);
        }
        frame.render_widget(
            Paragraph::new(self.help_text(help.width)).style(Style::new().add_modifier(Modifier::REVERSED)),
            help,
        );
    }

    /// The help line for a terminal `width` columns wide: the longest that fits, so that the quit hint stays
    /// visible (it comes first in the shorter ones). With unsaved changes after a quit key, what that key does now.
    fn help_text(&self, width: u16) -> String {
        let candidates = match self.quit_armed {
            Some(key) => vec![
                format!("unsaved changes: {key} again quits without saving │ Ctrl+S save & build"),
                format!("{key} again quits without saving │ Ctrl+S save"),
                format!("{key} again quits without saving"),
                format!("{key} again quits"),
            ],
            None => std::iter::once(HELP).chain(SHORT_HELP).map(str::to_string).collect(),
        };
        let fits = |text: &&String| text.chars().count() <= usize::from(width);
        let shortest = candidates.last().cloned().unwrap_or_default();
        candidates.iter().find(fits).cloned().unwrap_or(shortest)
    }

    /// The last log lines that fit in `area`.
    fn log_pane(&self, area: Rect) -> Paragraph<'_> {
        let visible = usize::from(area.height.saturating_sub(2));
        let start = self.log.len().saturating_sub(visible);
        let text = self.log[start..].join("\n");
        Paragraph::new(text).block(Block::bordered().title(" build log "))
    }
}

/// The name of the quit key that `input` is, if it is one: Esc, Ctrl+Q or Ctrl+C (in the raw-mode terminal, Ctrl+C
/// is a key press like any other, not a signal).
fn quit_key(input: &Input) -> Option<&'static str> {
    match input {
        Input { key: Key::Esc, .. } => Some("Esc"),
        Input {
            key: Key::Char('q'),
            ctrl: true,
            alt: false,
            ..
        } => Some("Ctrl+Q"),
        Input {
            key: Key::Char('c'),
            ctrl: true,
            alt: false,
            ..
        } => Some("Ctrl+C"),
        _ => None,
    }
}

/// Whether a bordered pane drawn in `area` has at least one row and one column for text inside its borders.
fn has_text_room(area: Rect) -> bool {
    area.height > 2 && area.width > 2
}

/// The heights of the rows of `count` buffers sharing `height` rows, `active` being the one edited: each gets at
/// least three rows (its borders and a line of text), the others about a third of the active one's; when that does
/// not fit, the active buffer gets every row and the others none.
fn row_heights(height: u16, count: usize, active: usize) -> impl Iterator<Item = u16> {
    let fits = usize::from(height) >= 3 * count;
    let others = match u16::try_from(count) {
        // `count + 2` shares: three for the active buffer, one for each other.
        Ok(count) if fits => (height / count.saturating_add(2)).max(3),
        _ => 0,
    };
    let rest = u16::try_from(count.saturating_sub(1)).unwrap_or(u16::MAX);
    let active_height = height.saturating_sub(others.saturating_mul(rest));
    (0..count).map(move |i| if i == active { active_height } else { others })
}
