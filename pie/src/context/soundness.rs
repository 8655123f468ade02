//! The soundness checks, made where dependencies are made and when recorded reads are re-checked: a file has one
//! live provider (overlap), a reader depends on the provider through what it required before reading (hidden
//! dependency), and a task does not require itself (cycle). A violation panics with a message that names the file
//! and the tasks; it is marked as one (`LaneState::violation`) so that the failure it causes is never assumed
//! to repeat (see `Store::fail_execution`). Liveness is asked only after a conflict is found: a dead task gives up
//! its claims instead.

use crate::context::marks::Mark;
use crate::context::state::{Deferred, Payload, Position};
use crate::context::top_down::TopDownContext;
use crate::ids::{FileId, TaskId};
use crate::liveness;
use crate::stamp::OutputStamper;
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
                if let Some(at) = self.runs_later(provider) {
                    // On one thread this read comes first, and the provider meets it when it provides the file.
                    let message = self.hidden_provide_message(provider, file, current);
                    if !self.state.written.contains(&file) {
                        return self.defer_violation(provider, message, file, true, at);
                    }
                    // The provider wrote the file in this session: this task would read what one thread has not
                    // written yet, and go on from there. It fails too, with the same violation (stricter than one
                    // thread, which the violation names).
                    self.defer_violation(provider, message.clone(), file, true, at);
                    self.violation(message)
                }
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
            if let Some(at) = self.runs_later(provider) {
                // On one thread this task provides the file first, and the other one meets the overlap.
                let message = self.overlap_message(file, current, provider);
                self.defer_violation(provider, message, file, true, at);
            } else {
                let message = self.overlap_message(file, provider, current);
                self.violation(message)
            }
        }
        let requirers: Vec<TaskId> = self.store.requirers(file).collect();
        let mut hidden = None;
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
                if let Some(at) = self.runs_later(requirer) {
                    // On one thread the read comes after this provide, and the reader meets the violation.
                    let message = self.hidden_read_message(requirer, file, current);
                    self.defer_violation(requirer, message, file, false, at);
                    continue;
                }
                let message = self.hidden_provide_message(current, file, requirer);
                if self.state.bottom_up.is_none() {
                    self.violation(message)
                }
                self.fail_reader_bottom_up(requirer, &message);
                hidden.get_or_insert(message);
            }
        }
        if let Some(message) = hidden {
            self.violation(message)
        }
        // Claimed: in a parallel build, a task of an earlier branch that reads it now reads this write.
        if self.par.is_some() {
            self.state.written.insert(file);
        }
    }

    /// In a bottom-up build, the provider of a file that live task `reader` read without requiring the provider
    /// first meets the hidden dependency while `reader` is not yet brought up to date (were it in progress, the
    /// violation would unwind through it). The provider executed before `reader` looked at the file, so its write
    /// may change what `reader` reads and decides, and `reader` executing again would go on as if nothing happened.
    /// In a clean build `reader` reads the file before the provider writes it, requires the provider afterwards
    /// (when it or a task above it still does, the clean build refuses it), or the provider is required by another
    /// task (which meets the violation); so `reader` fails with the violation in this session (stricter at most,
    /// never accepting what the clean build refuses): its last execution is forgotten, requiring it meets the
    /// violation again (see `SessionState::violations`), and the tasks that require it are scheduled, so that the
    /// violation reaches the roots above it.
    #[cold]
    fn fail_reader_bottom_up(&mut self, reader: TaskId, message: &str) {
        if !matches!(self.marks.get(reader), Mark::Unseen | Mark::Scheduled) {
            return;
        }
        self.store.invalidate(reader);
        self.marks.set(reader, Mark::Failed);
        self.state.violations.insert(reader, message.to_string());
        let dependents: Vec<TaskId> = self.store.live_dependents(reader).collect();
        for dependent in dependents {
            self.schedule(dependent);
        }
    }

    /// Whether task `id`, whose dependency `index` reads `file`, still depends on the file's live provider (if
    /// any) through the dependencies it made before that read. A re-executed task further down may have dropped
    /// the require that connected them while this task's own dependencies stayed consistent; then the read is
    /// inconsistent, and executing the task again decides whether it is a hidden dependency, as in a clean build.
    /// A dead provider loses its claim on the file.
    #[inline]
    pub(super) fn reads_after_provider(&mut self, id: TaskId, index: usize, file: FileId) -> bool {
        !self.store.any_provider() || self.reads_after_provider_of(id, index, file)
    }

    /// [`reads_after_provider`](Self::reads_after_provider) once some task provided a file.
    #[inline(never)]
    fn reads_after_provider_of(&mut self, id: TaskId, index: usize, file: FileId) -> bool {
        match self.store.provider(file) {
            Some(provider) if !self.store.depends_on_before(id, index, provider) => {
                self.release_if_dead(provider) || {
                    // On one thread this check comes before the provider provides the file, and meets nothing;
                    // the provider meets the violation then.
                    let later = self.runs_later(provider);
                    if let Some(at) = later {
                        let message = self.hidden_provide_message(provider, file, id);
                        self.defer_violation(provider, message, file, true, at);
                    }
                    later.is_some()
                }
            }
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
        let message = self.hidden_read_message(reader, file, provider);
        self.violation(message)
    }

    fn hidden_read_message(&self, reader: TaskId, file: FileId, provider: TaskId) -> String {
        format!(
            "Hidden dependency: task {:?} requires file '{}', which is provided by task {:?}, without \
             (transitively) requiring that task first; require the providing task before reading the file",
            self.store.task(reader),
            self.store.file_path(file).display(),
            self.store.task(provider)
        )
    }

    fn hidden_provide_message(&self, provider: TaskId, file: FileId, reader: TaskId) -> String {
        format!(
            "Hidden dependency: task {:?} provides file '{}', which is required by task {:?} without \
             (transitively) requiring the providing task first",
            self.store.task(provider),
            self.store.file_path(file).display(),
            self.store.task(reader)
        )
    }

    /// `first` provides `file`, then `second` does too.
    fn overlap_message(&self, file: FileId, first: TaskId, second: TaskId) -> String {
        format!(
            "Overlapping provided file: file '{}' is provided by task {:?} and by task {:?}; a file may have only \
             one providing task",
            self.store.file_path(file).display(),
            self.store.task(first),
            self.store.task(second)
        )
    }

    /// In a parallel build: the fork where the branch of task `other` (entered in this parallel build) and this
    /// lane's branch part, and the index of `other`'s branch there, when `other`'s branch is the later one, so
    /// that on one thread everything `other` did comes after what this lane does now.
    fn runs_later(&self, other: TaskId) -> Option<(u32, u32)> {
        let (fork, _, theirs) = self.parting(other).filter(|(_, mine, theirs)| theirs > mine)?;
        Some((fork, theirs))
    }

    /// In a parallel build: the fork where the branch of task `other` (entered in this parallel build) and this
    /// lane's branch part, with the index of this lane's branch and of `other`'s there.
    fn parting(&self, other: TaskId) -> Option<(u32, u32, u32)> {
        self.par?;
        let mine = self.lane.branches.last()?.position;
        let theirs = self.state.positions.get(other.index()).copied()?;
        theirs.get()?;
        let mut chain = Vec::new();
        let mut position = mine;
        while let Some((fork, branch)) = position.get() {
            chain.push((fork, branch));
            position = self.state.lineage[fork as usize];
        }
        let mut position = theirs;
        while let Some((fork, branch)) = position.get() {
            if let Some(&(_, my_branch)) = chain.iter().find(|(f, _)| *f == fork) {
                return Some((fork, my_branch, branch));
            }
            position = self.state.lineage[fork as usize];
        }
        None
    }

    /// The require side of a read recorded late in a parallel build (see `TopDownContext::apply_pending_reads`):
    /// `current` read `file` while no file had a provider, so a provider found now provided it after the read, and
    /// its own check did not see the read. The violation, if any, is what that check gives a reader recorded at
    /// once (see `check_provide`), deferred to the task that comes later on one thread (see `defer_violation`): the
    /// provider, which meets it at its next step in the engine, or this task, which meets it at its own (on one
    /// thread it meets it at the read; its branch runs again when the fork joins). It does not panic: it runs when a
    /// lane takes the engine, where a violation could not reach the task.
    pub(super) fn check_late_require(&mut self, current: TaskId, file: FileId) {
        let Some(provider) = self.store.provider(file) else {
            return;
        };
        let read = self.store.dep_count(current);
        if self.store.depends_on_before(current, read, provider) || self.release_if_dead(current) {
            return;
        }
        let parting = self.parting(provider);
        if let Some((fork, _, theirs)) = parting.filter(|(_, mine, theirs)| theirs > mine) {
            let message = self.hidden_provide_message(provider, file, current);
            return self.defer_violation(provider, message, file, true, (fork, theirs));
        }
        // Tasks running at the same time are in different branches of a fork (a lane runs one branch at a time), so
        // this task's branch is the later one where they part.
        let at = parting
            .map(|(fork, mine, _)| (fork, mine))
            .or_else(|| self.lane.branches.last().and_then(|b| b.position.get()))
            .expect("BUG: a read recorded late outside every branch");
        let message = self.hidden_read_message(current, file, provider);
        self.defer_violation(current, message, file, false, at);
    }

    /// Notes where task `id` is entered in a parallel build (see `Position`).
    pub(super) fn note_position(&mut self, id: TaskId) {
        let position = self.lane.branches.last().map_or(Position::NONE, |b| b.position);
        let state = &mut *self.state;
        if id.index() >= state.positions.len() {
            if position == Position::NONE {
                return;
            }
            state.positions.resize(id.index() + 1, Position::NONE);
            state.entries.resize(id.index() + 1, 0);
        }
        state.positions[id.index()] = position;
        let entry = self.clock_tick();
        self.state.entries[id.index()] = entry;
    }

    /// Counts one more entered task (see `SessionState::entries`) and returns the new count.
    fn clock_tick(&mut self) -> u32 {
        match self.parallel() {
            Some(par) => par.tick(),
            None => {
                self.state.clock += 1;
                self.state.clock
            }
        }
    }

    /// The count of tasks entered in the session so far (see `SessionState::entries`).
    fn clock(&self) -> u32 {
        self.parallel().map_or(self.state.clock, |par| par.clock())
    }

    /// In a parallel build, a violation between this lane's executing task and task `other`, which on one thread would
    /// come later (in branch `at.1` of fork `at.0`) and meet it at its dependency on `file`: the violation is
    /// `other`'s, whose execution fails with `message` as on one thread. With `release`, its claim on `file` goes (on
    /// one thread it never made it). When `other` is in progress, it fails at its next call of the `Context` or when
    /// its execution ends, whichever comes first; otherwise its execution is forgotten now (it executes again if
    /// required again). Either way it may have entered tasks that one thread would not have entered (past the point
    /// where it meets the violation there), and the tasks above it in its branch saw its output instead of its panic:
    /// when the fork joins, all of them are forgotten and their branches run again (see `meet_deferred`).
    fn defer_violation(&mut self, other: TaskId, message: String, file: FileId, release: bool, at: (u32, u32)) {
        let mut wrote_past = false;
        if self.marks.get(other) == Mark::InProgress {
            if release {
                self.store.release_claim(other, file);
            }
        } else {
            wrote_past = self.store.provides_after(other, file);
            self.store.invalidate(other);
            self.marks.set(other, Mark::Failed);
            self.state.violations.insert(other, message.clone());
        }
        let from = self.state.entries.get(other.index()).copied().unwrap_or(0);
        let to = self.clock();
        self.state.deferred.push(Deferred {
            task: other,
            message,
            fork: at.0,
            branch: at.1,
            from,
            to,
            ended: false,
            file,
            wrote_past,
        });
    }

    /// Whether a violation was deferred to task `id` in progress, which has not met it yet.
    pub(super) fn is_deferred(&self, id: TaskId) -> bool {
        self.pending_deferral(id).is_some()
    }

    /// The index in `SessionState::deferred` of the violation deferred to task `id` in progress that it has not
    /// met yet, if any.
    fn pending_deferral(&self, id: TaskId) -> Option<usize> {
        self.state.deferred.iter().position(|d| d.task == id && !d.ended)
    }

    /// The message of the violation deferred to task `id` in progress that it has not met yet, if any.
    pub(super) fn pending_message(&self, id: TaskId) -> Option<String> {
        self.pending_deferral(id)
            .map(|at| self.state.deferred[at].message.clone())
    }

    /// At the end of an execution of `id` in a parallel build: the violation deferred to it, if any (see
    /// `defer_violation`), which its execution then fails with. The deferral stays until its fork joins.
    pub(super) fn take_deferred(&mut self, id: TaskId) -> Option<String> {
        let clock = self.clock();
        let at = self.pending_deferral(id)?;
        let wrote_past = self.store.provides_after(id, self.state.deferred[at].file);
        let deferred = &mut self.state.deferred[at];
        deferred.ended = true;
        deferred.to = clock;
        deferred.wrote_past = wrote_past;
        Some(deferred.message.clone())
    }

    /// At a call of the `Context` by the executing task in a parallel build: the violation deferred to it
    /// meanwhile, if any, which it meets now (on one thread it never went this far).
    #[track_caller]
    #[inline(always)]
    pub(super) fn meet_own_deferred(&mut self) {
        if !self.state.deferred.is_empty() {
            self.meet_own_deferred_slow();
        }
    }

    #[track_caller]
    #[cold]
    fn meet_own_deferred_slow(&mut self) {
        let Some(current) = self.lane.current else {
            return;
        };
        if let Some(message) = self.pending_message(current) {
            self.violation(message)
        }
    }

    /// When fork `number` (of `tasks`, whose ids are `ids`, made consistent as `check` and `stamper` say) joins: the
    /// violations deferred to tasks of its branches. Each such task fails with its violation (requiring it again in
    /// the session meets it), and so does its branch, as on one thread, where the task meets the violation when it
    /// executes and its panic goes up through the tasks that required it.
    ///
    /// The build went on meanwhile as one thread would not have: the task may have entered tasks past the point where
    /// it meets the violation on one thread, and tasks saw those tasks' outputs and the task's output instead of its
    /// panic (which one of them may have caught), in any branch of the fork. So they execute again, on this lane: the
    /// tasks entered in the task's branch from its entry on are forgotten, and so is every task that depends on one of
    /// them or on the failed task, and the branches whose task is one of those are made consistent again, in argument
    /// order, each at its position (`redo_branch`). Only when every task that saw them was entered in the fork, and
    /// neither the failed task past its violation nor a forgotten task provided a file (its contents stay on disk,
    /// where one thread may never write them, and a task executed again could read them without a provider, accepting
    /// what one thread refuses). Otherwise what stands stands: a task that ended with its violation failed in its
    /// branch as on one thread; the branch of one that had finished (with an output or a panic of its own, met past
    /// where one thread stops) fails with the violation, which is stricter than one thread when a task in it would have
    /// caught the panic. A branch executed again defers violations only to later ones, and a task failed here is never
    /// forgotten, so this ends.
    pub(super) fn meet_deferred(
        &mut self,
        number: u32,
        tasks: &[T],
        ids: &[TaskId],
        check: bool,
        stamper: OutputStamper,
        results: &mut [Result<(), (Payload, bool)>],
    ) {
        let mut met: rustc_hash::FxHashSet<TaskId> = rustc_hash::FxHashSet::default();
        loop {
            let first = self
                .state
                .deferred
                .iter()
                .filter(|d| d.fork == number)
                .map(|d| d.branch)
                .min();
            let Some(branch) = first else {
                return;
            };
            let mut failed = Vec::new();
            let mut windows = Vec::new();
            let mut message = None;
            let mut wrote_past = false;
            let mut all_ended = true;
            let mut index = 0;
            while index < self.state.deferred.len() {
                let deferred = &self.state.deferred[index];
                if deferred.fork != number || deferred.branch != branch {
                    index += 1;
                    continue;
                }
                let deferred = self.state.deferred.swap_remove(index);
                if self.store.output(deferred.task).is_some() {
                    self.store.invalidate(deferred.task);
                }
                self.marks.set(deferred.task, Mark::Failed);
                self.state.violations.insert(deferred.task, deferred.message.clone());
                failed.push(deferred.task);
                met.insert(deferred.task);
                windows.push((deferred.from, deferred.to));
                wrote_past |= deferred.wrote_past;
                all_ended &= deferred.ended;
                message.get_or_insert(deferred.message);
            }
            // A fork of scheduled tasks (`fork_scheduled_group`, a check in a bottom-up build) just fails.
            // Files written where one thread stops: executing again what was forgotten could read them without a
            // provider, accepting what one thread never sees.
            let forgotten = (!wrote_past && (!check || self.state.bottom_up.is_none()))
                .then(|| self.seen_past(&failed, &windows, number, branch, &met))
                .flatten();
            let Some(forgotten) = forgotten else {
                // A task that ended with its violation failed in its branch as on one thread; one that finished
                // before was seen finished, and its branch fails with it, also when it failed otherwise: what it
                // met past the dependency of the violation (a cycle through the tasks it went on to require, say)
                // one thread never meets.
                if all_ended {
                    continue;
                }
                if let Some(result) = results.get_mut(branch as usize) {
                    let message = message.expect("BUG: a deferred violation without a message");
                    *result = Err((Box::new(message), true));
                }
                continue;
            };
            for &id in &forgotten {
                self.store.invalidate(id);
                self.marks.set(id, Mark::Unseen);
                self.state.violations.remove(&id);
                self.lane.failures.take(id);
            }
            let again: rustc_hash::FxHashSet<TaskId> = forgotten.into_iter().chain(failed).collect();
            for (index, (task, &id)) in tasks.iter().zip(ids).enumerate() {
                if again.contains(&id) {
                    results[index] = self.redo_branch(number, index as u32, id, task, check, stamper);
                }
            }
        }
    }

    /// The tasks to forget when tasks `failed` of branch `branch` of fork `number` fail with violations deferred
    /// to them (see `meet_deferred`): the tasks entered in that branch within `windows` (entry numbers, one per
    /// failed task), and the tasks that depend on one of those or on a failed task, all but the failed ones and
    /// those in `met`. `None` when one of the tasks that depend on them was entered outside the fork (a task in
    /// progress on this lane is still to look), or when a task entered within the windows provided a file (one
    /// thread may never write it there, and what executes again could read it without its provider).
    fn seen_past(
        &self,
        failed: &[TaskId],
        windows: &[(u32, u32)],
        number: u32,
        branch: u32,
        met: &rustc_hash::FxHashSet<TaskId>,
    ) -> Option<Vec<TaskId>> {
        let mut seen: rustc_hash::FxHashSet<TaskId> = failed.iter().copied().collect();
        let mut found: Vec<TaskId> = failed.to_vec();
        for (index, &entry) in self.state.entries.iter().enumerate() {
            let id = TaskId(index as u32);
            if windows.iter().any(|&(from, to)| from < entry && entry <= to)
                && !seen.contains(&id)
                && !met.contains(&id)
                && self.entered_within(id, number, Some(branch))
            {
                if self.store.provides_any(id) {
                    return None;
                }
                seen.insert(id);
                found.push(id);
            }
        }
        let mut index = 0;
        while index < found.len() {
            let id = found[index];
            index += 1;
            for dependent in self.store.live_dependents(id) {
                if seen.contains(&dependent) || met.contains(&dependent) {
                    continue;
                }
                match self.marks.get(dependent) {
                    Mark::Unseen | Mark::Scheduled => {}
                    Mark::InProgress if self.lane.stack.iter().any(|f| f.id == dependent) => {}
                    Mark::Done | Mark::Failed if self.entered_within(dependent, number, None) => {
                        seen.insert(dependent);
                        found.push(dependent);
                    }
                    _ => return None,
                }
            }
        }
        Some(found.split_off(failed.len()))
    }

    /// Whether task `id` was entered in branch `branch` of fork `number` (in any branch when `None`), or in a fork
    /// opened below it.
    fn entered_within(&self, id: TaskId, number: u32, branch: Option<u32>) -> bool {
        let Some(mut position) = self.state.positions.get(id.index()).copied() else {
            return false;
        };
        while let Some((fork, at)) = position.get() {
            if fork == number {
                return branch.is_none_or(|branch| at == branch);
            }
            position = self.state.lineage[fork as usize];
        }
        false
    }

    /// Whether `payload` is the panic of a soundness violation that a task failed with in this session (see
    /// `SessionState::violations`): one that came out of a require, through the code of the tasks in between.
    #[cold]
    pub(super) fn is_violation_of_session(&self, payload: &Payload) -> bool {
        if self.state.violations.is_empty() {
            return false;
        }
        let Some(message) = payload_message(payload) else {
            return false;
        };
        self.state.violations.values().any(|violation| violation == message)
    }

    /// Notes that the execution of `id` failed with the soundness violation `payload`: requiring it again in this
    /// session meets the same violation (see `SessionState::violations`).
    #[cold]
    pub(super) fn note_violation(&mut self, id: TaskId, payload: &Payload) {
        if let Some(message) = payload_message(payload) {
            self.state.violations.insert(id, message.to_string());
        }
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

/// The message of a panic's payload, when it is one (`panic!` with a message, or with a string literal).
fn payload_message(payload: &Payload) -> Option<&str> {
    match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(message), _) => Some(message),
        (None, Some(message)) => Some(message),
        (None, None) => None,
    }
}
