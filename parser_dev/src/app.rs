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
    /// Esc was pressed with unsaved changes; a second Esc quits anyway.
    quit_armed: bool,
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
            quit_armed: false,
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

    /// Handles one key press: Ctrl+S saves and builds, Ctrl+T switches buffers, Esc quits (asking again when
    /// there are unsaved changes), anything else edits the active buffer.
    pub fn handle_input(&mut self, input: Input) -> Control {
        let escape = input.key == Key::Esc;
        let control = match input {
            Input { key: Key::Esc, .. } => {
                if self.quit_armed || !self.buffers.iter().any(Buffer::is_modified) {
                    self.quit();
                    return Control::Quit;
                }
                self.push_log("unsaved changes: press Esc again to quit without saving them, or Ctrl+S to save");
                Control::Continue
            }
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
        };
        self.quit_armed = escape;
        self.refresh_blocks();
        control
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

        // Every buffer gets a row, the active one taller; when there is no room for each to show a line of text
        // between its borders, only the active buffer is shown.
        let cramped = usize::from(buffers.height) < 3 * self.buffers.len();
        let rows = Layout::vertical((0..self.buffers.len()).map(|i| match (i == self.active, cramped) {
            (true, _) => Constraint::Fill(3),
            (false, false) => Constraint::Fill(1),
            (false, true) => Constraint::Length(0),
        }))
        .split(buffers);
        for (buffer, row) in self.buffers.iter().zip(rows.iter()) {
            let [editor, feedback] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(*row);
            frame.render_widget(&buffer.editor, editor);
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

        frame.render_widget(self.log_pane(log), log);
        let help_text = if self.quit_armed {
            "unsaved changes: Esc again quits without saving │ Ctrl+S save & build"
        } else {
            HELP
        };
        frame.render_widget(
            Paragraph::new(help_text).style(Style::new().add_modifier(Modifier::REVERSED)),
            help,
        );
    }

    /// The last log lines that fit in `area`.
    fn log_pane(&self, area: Rect) -> Paragraph<'_> {
        let visible = usize::from(area.height.saturating_sub(2));
        let start = self.log.len().saturating_sub(visible);
        let text = self.log[start..].join("\n");
        Paragraph::new(text).block(Block::bordered().title(" build log "))
    }
}
