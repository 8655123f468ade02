//! The soundness checks, made where dependencies are made and when recorded reads are re-checked: a file has one
//! live provider (overlap), a reader depends on the provider through what it required before reading (hidden
//! dependency), and a task does not require itself (cycle). A violation panics with a message that names the file
//! and the tasks; it is marked as one (`LaneState::violation`) so that the failure it causes is never assumed
//! to repeat (see `Store::fail_execution`). Liveness is asked only after a conflict is found: a dead task gives up
//! its claims instead.

use crate::context::top_down::TopDownContext;
use crate::ids::{FileId, TaskId};
use crate::liveness;
use crate::tracker::Tracker;
use crate::Task;

impl<T: Task, A: Tracker<T>> TopDownContext<'_, T, T::Output, A> {
    /// The require side: `current` may read `file` only if it depends on the file's live provider (if any) through
    /// what it required so far.
    #[track_caller]
    pub(super) fn check_require(&mut self, current: TaskId, file: FileId) {
        if let Some(provider) = self.store.provider(file) {
            let prefix = self.store.dep_count(current);
            if !self.store.depends_on_before(current, prefix, provider) && !self.release_if_dead(provider) {
                self.hidden_read(current, file, provider);
            }
        }
    }

    /// The provide side, before `current` claims `file`: no other live provider, no earlier read by `current`
    /// itself (an in-place edit), and every live reader depends on `current` through what it required before its
    /// first read of the file.
    #[track_caller]
    pub(super) fn check_provide(&mut self, current: TaskId, file: FileId) {
        if let Some(provider) = self.store.provider(file) {
            if provider == current {
                let message = format!(
                    "Overlapping provided file: file '{}' is provided twice by task {:?} in one execution",
                    self.store.file_path(file).display(),
                    self.store.task(current)
                );
                self.violation(message)
            }
        }
        if let Some(provider) = self.store.provider(file).filter(|p| !self.release_if_dead(*p)) {
            let message = format!(
                "Overlapping provided file: file '{}' is provided by task {:?} and by task {:?}; a file may have \
                 only one providing task",
                self.store.file_path(file).display(),
                self.store.task(provider),
                self.store.task(current)
            );
            self.violation(message)
        }
        let requirers: Vec<TaskId> = self.store.requirers(file).collect();
        for requirer in requirers {
            if requirer == current {
                let message = format!(
                    "Hidden dependency: task {:?} requires file '{}' and afterwards provides it; an in-place edit \
                     cannot be incremental, write the result to another file",
                    self.store.task(current),
                    self.store.file_path(file).display()
                );
                self.violation(message)
            }
            // Only what the requirer required before its first read of the file counts: requiring the provider
            // after reading is too late.
            let read = self.store.first_require_of(requirer, file).unwrap_or(0);
            if !self.store.depends_on_before(requirer, read, current) && !self.release_if_dead(requirer) {
                let message = format!(
                    "Hidden dependency: task {:?} provides file '{}', which is required by task {:?} without \
                     (transitively) requiring the providing task first",
                    self.store.task(current),
                    self.store.file_path(file).display(),
                    self.store.task(requirer)
                );
                self.violation(message)
            }
        }
    }

    /// Whether task `id`, whose dependency `index` reads `file`, still depends on the file's live provider (if
    /// any) through the dependencies it made before that read. A re-executed task further down may have dropped
    /// the require that connected them while this task's own dependencies stayed consistent; then the read is
    /// inconsistent, and executing the task again decides whether it is a hidden dependency, as in a clean build.
    /// A dead provider loses its claim on the file.
    pub(super) fn reads_after_provider(&mut self, id: TaskId, index: usize, file: FileId) -> bool {
        if !self.store.any_provider() {
            return true;
        }
        match self.store.provider(file) {
            Some(provider) if !self.store.depends_on_before(id, index, provider) => self.release_if_dead(provider),
            _ => true,
        }
    }

    /// Whether `id` is live (see `crate::liveness`). Called only on a conflict, never on the no-op path.
    fn is_live(&self, id: TaskId) -> bool {
        liveness::is_live(&self.store, &self.marks, id)
    }

    /// When `id` is dead, makes it give up its claims on files (its last execution is forgotten) and returns
    /// `true`; a live task keeps them (`false`). Dead tasks count neither as providers nor as requirers.
    fn release_if_dead(&mut self, id: TaskId) -> bool {
        if self.is_live(id) {
            return false;
        }
        self.store.invalidate(id);
        // It must execute when next required; in a bottom-up build, a task that requires it may be trusted (it was
        // live when the session started) and would not look: scheduled, it is found below such a task.
        if self.state.bottom_up.is_some() {
            self.schedule(id);
        }
        true
    }

    #[track_caller]
    fn hidden_read(&mut self, reader: TaskId, file: FileId, provider: TaskId) -> ! {
        let message = format!(
            "Hidden dependency: task {:?} requires file '{}', which is provided by task {:?}, without \
             (transitively) requiring that task first; require the providing task before reading the file",
            self.store.task(reader),
            self.store.file_path(file).display(),
            self.store.task(provider)
        );
        self.violation(message)
    }

    /// Panics with a soundness violation, noting that the panic may not repeat (see `Store::fail_execution`).
    #[track_caller]
    fn violation(&mut self, message: String) -> ! {
        self.lane.violation = true;
        panic!("{message}")
    }

    /// A cycle through tasks in progress on several lanes (see `crate::context::parallel`): `cycle` lists them from
    /// the task required round to it again.
    pub(super) fn cycle_across_lanes(&mut self, cycle: &[TaskId]) -> ! {
        let names: Vec<String> = cycle.iter().map(|id| format!("{:?}", self.store.task(*id))).collect();
        let message = format!(
            "Cyclic task dependency: task {} requires itself through {} (on several threads)",
            names.last().map_or("?", String::as_str),
            names.join(" → ")
        );
        self.violation(message)
    }

    #[track_caller]
    pub(super) fn cycle(&mut self, id: TaskId) -> ! {
        let start = self.lane.stack.iter().position(|f| f.id == id).unwrap_or(0);
        let cycle: Vec<String> = self.lane.stack[start..]
            .iter()
            .map(|f| f.id)
            .chain(std::iter::once(id))
            .map(|s| format!("{:?}", self.store.task(s)))
            .collect();
        let message = format!(
            "Cyclic task dependency: task {:?} requires itself through {}",
            self.store.task(id),
            cycle.join(" → ")
        );
        self.violation(message)
    }
}
