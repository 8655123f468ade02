//! The editor's state and logic, apart from the terminal: buffers, key handling, builds and rendering.
//!
//! [`App`] owns the [`Workspace`] (and so the one long-lived `Pie`); every Ctrl+S writes the modified buffers and
//! runs one incremental build. The buffers are the workspace's files, open from start to quit (there is no command
//! to open or close one), so the tasks of the open buffers are the builds' roots, and quitting saves a store that
//! forgets the files an earlier run had open and this one does not ([`Workspace::save_store`]). Rendering draws into any ratatui [`Frame`], so tests use `TestBackend`, and
//! the terminal loop in `main.rs` only forwards key presses to [`App::handle_input`] and changes on disk (found by a
//! [`DiskWatcher`](crate::disk::DiskWatcher)) to [`App::disk_changed`].
//!
//! Following the disk: each buffer remembers what its file held when it was last loaded or saved. A change on disk
//! to a buffer without unsaved edits reloads it; with unsaved edits the buffer is marked `[changed on disk]` until
//! the user chooses: Ctrl+L reloads it (dropping the edits), Ctrl+O keeps their version (the next Ctrl+S overwrites
//! the file, knowingly). Either way the build runs again, so the feedback follows the files on disk. Ctrl+S reads a
//! file again before writing it and refuses while it differs from what the buffer last knew (a change whose event
//! has not arrived yet), so an outside change is never overwritten silently.

use std::fs;
use std::io;
use std::path::PathBuf;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;
use ratatui_textarea::{CursorMove, Input, Key, TextArea};

use crate::disk::OnDisk;
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
    /// The lines of the file's version that the edits start from: as last read or written, or (after Ctrl+O) the
    /// version on disk that the user chose to overwrite. Empty (never equal to an editor's lines) when that
    /// version is not text.
    saved: Vec<String>,
    /// What the file held when last read or written, or when the user chose to keep their version over it.
    disk: OnDisk,
    /// The file changed on disk to this while the buffer had unsaved edits, and the user has not chosen yet
    /// between reloading and keeping their version.
    conflict: Option<OnDisk>,
    /// The last build's feedback: `Ok` for success, `Err` for errors.
    feedback: Result<String, String>,
}

/// What a change on disk did to a buffer.
enum DiskChange {
    /// Nothing: the buffer already knew this version (the echo of its own save, say).
    None,
    /// The buffer was reloaded.
    Reloaded,
    /// The file went back to the version the buffer knew; a pending choice was dropped.
    Reverted,
    /// The buffer has unsaved edits (or the file cannot be read): it is marked, and the user chooses.
    Conflict,
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
        let disk = if note.is_some() {
            OnDisk::Missing
        } else {
            OnDisk::Text(text.clone())
        };
        let editor = TextArea::new(text.lines().map(str::to_string).collect());
        let saved = editor.lines().to_vec();
        let buffer = Self {
            file,
            editor,
            saved,
            disk,
            conflict: None,
            feedback: Ok(String::new()),
        };
        Ok((buffer, note))
    }

    /// Replaces the text with `text` (the file's), keeping the cursor where it was as far as the new text allows.
    fn load(&mut self, text: &str) {
        let ratatui_textarea::DataCursor(row, col) = self.editor.cursor();
        self.editor = TextArea::new(text.lines().map(str::to_string).collect());
        let clamp = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        self.editor.move_cursor(CursorMove::Jump(clamp(row), clamp(col)));
        self.saved = self.editor.lines().to_vec();
    }

    /// Takes in what the file holds now, reported after a change on disk.
    fn disk_changed(&mut self, now: OnDisk) -> DiskChange {
        if Some(&now) == self.conflict.as_ref() || (self.conflict.is_none() && now == self.disk) {
            return DiskChange::None;
        }
        if now == self.disk {
            self.conflict = None;
            return DiskChange::Reverted;
        }
        match &now {
            OnDisk::Text(text) if !self.is_modified() => {
                self.load(text);
                self.disk = now;
                self.conflict = None;
                DiskChange::Reloaded
            }
            OnDisk::Missing if !self.is_modified() => {
                self.load("");
                self.disk = now;
                self.conflict = None;
                DiskChange::Reloaded
            }
            _ => {
                self.conflict = Some(now);
                DiskChange::Conflict
            }
        }
    }

    /// Whether the file changed on disk while the buffer had unsaved edits, and the user has yet to choose.
    pub fn changed_on_disk(&self) -> bool {
        self.conflict.is_some()
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

    /// Writes the text to the file when modified, with a trailing newline, unless the file changed on disk since
    /// the buffer last knew it: then it is marked and not written until the user chooses (Ctrl+L or Ctrl+O).
    ///
    /// The file is read just before it is written, so a change whose event has not arrived yet is caught too; only
    /// a change in the instant between that read and the write could still be lost.
    fn save(&mut self) -> Result<bool, String> {
        if !self.is_modified() {
            return Ok(false);
        }
        let name = &self.file.shown;
        let choose = "Ctrl+L reloads it (dropping your edits), Ctrl+O keeps yours";
        if self.conflict.is_some() {
            return Err(format!("not saved: {name} changed on disk; {choose}"));
        }
        let now = OnDisk::read(&self.file.path);
        if now != self.disk {
            self.conflict = Some(now);
            return Err(format!(
                "not saved: {name} changed on disk since it was loaded; {choose}"
            ));
        }
        let mut text = self.text();
        text.push('\n');
        fs::write(&self.file.path, &text).map_err(|e| format!("error: cannot save {name}: {e}"))?;
        self.saved = self.editor.lines().to_vec();
        self.disk = OnDisk::Text(text);
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

    /// Takes in changes on disk: each path (an open file's absolute path, as in [`SourceFile::path`]) with what
    /// the file holds now. A buffer without unsaved edits is reloaded; one with unsaved edits is marked until the
    /// user chooses (Ctrl+L reload, Ctrl+O keep theirs). When some file changed from what its buffer knew, the build
    /// runs again, so the feedback shows what is on disk without a Ctrl+S. Reports of files whose content is what
    /// the buffer knew (the events of the editor's own saves) change nothing.
    pub fn disk_changed(&mut self, changes: impl IntoIterator<Item = (PathBuf, OnDisk)>) {
        let mut rebuild = false;
        for (path, now) in changes {
            for buffer in self.buffers.iter_mut().filter(|b| b.file.path == path) {
                let change = buffer.disk_changed(now.clone());
                let name = &buffer.file.shown;
                let line = match change {
                    DiskChange::None => continue,
                    DiskChange::Reloaded if now == OnDisk::Missing => {
                        format!("{name} was deleted on disk; its buffer is empty now")
                    }
                    DiskChange::Reloaded => format!("{name} changed on disk and was reloaded"),
                    DiskChange::Reverted => format!("{name} is back on disk to the version your edits start from"),
                    DiskChange::Conflict => match &now {
                        OnDisk::Unreadable(reason) => {
                            format!("{name} changed on disk and cannot be read ({reason}): Ctrl+O keeps your version")
                        }
                        _ => format!(
                            "{name} changed on disk and you have unsaved edits: Ctrl+L reloads it (dropping \
                             them), Ctrl+O keeps yours"
                        ),
                    },
                };
                self.log.push(line);
                rebuild = true;
            }
        }
        if rebuild {
            self.build();
        }
        self.trim_log();
        self.refresh_blocks();
    }

    /// Handles one key press: Ctrl+S saves and builds, Ctrl+T switches buffers, Ctrl+L and Ctrl+O choose for a
    /// buffer that changed on disk with unsaved edits (reload it, or keep the edits), Esc, Ctrl+Q and Ctrl+C quit
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
            Input {
                key: Key::Char(c @ ('l' | 'o')),
                ctrl: true,
                alt: false,
                ..
            } => {
                self.choose(c == 'l');
                Control::Continue
            }
            input => {
                self.buffers[self.active].editor.input(input);
                Control::Continue
            }
        }
    }

    /// The choice for the active buffer after its file changed on disk while it had unsaved edits: reload it from
    /// the version on disk (dropping the edits), or keep the edits (the next Ctrl+S overwrites the file).
    fn choose(&mut self, reload: bool) {
        let buffer = &mut self.buffers[self.active];
        let name = buffer.file.shown.clone();
        let Some(now) = buffer.conflict.take() else {
            let key = if reload { "Ctrl+L" } else { "Ctrl+O" };
            self.push_log(format!(
                "{key}: {name} has not changed on disk; it chooses for a buffer marked [changed on disk]"
            ));
            return;
        };
        let line = match (&now, reload) {
            (OnDisk::Text(text), true) => {
                buffer.load(text);
                buffer.disk = now;
                format!("{name} reloaded from disk; your edits are dropped")
            }
            (OnDisk::Missing, true) => {
                buffer.load("");
                buffer.disk = now;
                format!("{name} was deleted on disk; its buffer is empty now")
            }
            (OnDisk::Unreadable(reason), true) => {
                let line = format!("cannot reload {name}: {reason}; Ctrl+O keeps your version");
                buffer.conflict = Some(now);
                line
            }
            (_, false) => {
                buffer.saved = match &now {
                    OnDisk::Text(text) => TextArea::new(text.lines().map(str::to_string).collect()).into_lines(),
                    OnDisk::Missing => TextArea::default().into_lines(),
                    OnDisk::Unreadable(_) => Vec::new(),
                };
                buffer.disk = now;
                format!("keeping your version of {name}; Ctrl+S overwrites the file on disk")
            }
        };
        self.push_log(line);
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
            let on_disk = if buffer.changed_on_disk() {
                " [changed on disk]"
            } else {
                ""
            };
            let title = format!(" {kind} {}{modified}{on_disk} ", buffer.file.shown);
            let block = Block::bordered().title(title);
            if index == self.active {
                let color = if buffer.changed_on_disk() {
                    Color::Red
                } else {
                    Color::Yellow
                };
                buffer
                    .editor
                    .set_block(block.border_style(Style::new().fg(color).add_modifier(Modifier::BOLD)));
                buffer
                    .editor
                    .set_cursor_style(Style::new().add_modifier(Modifier::REVERSED));
                buffer
                    .editor
                    .set_cursor_line_style(Style::new().add_modifier(Modifier::UNDERLINED));
            } else {
                let color = if buffer.changed_on_disk() {
                    Color::Red
                } else {
                    Color::DarkGray
                };
                buffer.editor.set_block(block.border_style(Style::new().fg(color)));
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
    /// visible (it comes first in the shorter ones). With unsaved changes after a quit key, what that key does now;
    /// otherwise, when a buffer changed on disk with unsaved edits, the keys that choose for it.
    fn help_text(&self, width: u16) -> String {
        let conflict = self.buffers.iter().position(Buffer::changed_on_disk);
        let candidates = match (self.quit_armed, conflict) {
            (Some(key), _) => vec![
                format!("unsaved changes: {key} again quits without saving │ Ctrl+S save & build"),
                format!("{key} again quits without saving │ Ctrl+S save"),
                format!("{key} again quits without saving"),
                format!("{key} again quits"),
            ],
            (None, Some(_)) if self.buffers[self.active].changed_on_disk() => vec![
                format!(
                    "{} changed on disk: Ctrl+L reload (drops your edits) │ Ctrl+O keep yours │ Esc quit",
                    self.buffers[self.active].file.shown
                ),
                "Esc quit │ changed on disk: Ctrl+L reload │ Ctrl+O keep yours".to_string(),
                "Esc quit │ on disk: ^L reload │ ^O keep".to_string(),
                "Esc quit │ ^L reload │ ^O keep".to_string(),
                "Esc quit".to_string(),
            ],
            (None, Some(index)) => vec![
                format!(
                    "{} changed on disk: Ctrl+T to it, then Ctrl+L reload or Ctrl+O keep yours │ Esc quit",
                    self.buffers[index].file.shown
                ),
                format!(
                    "Esc quit │ {} changed on disk: Ctrl+T to it",
                    self.buffers[index].file.shown
                ),
                "Esc quit │ changed on disk: ^T to it".to_string(),
                "Esc quit │ on disk: ^T".to_string(),
                "Esc quit".to_string(),
            ],
            (None, None) => std::iter::once(HELP).chain(SHORT_HELP).map(str::to_string).collect(),
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
