//! A context that executes every required task, every time, and records nothing.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::path::NormalPath;
use crate::stamp::{FileStamper, OutputStamper};
use crate::{open_if_file, Context, Task};

/// Executes every required task, every time: no caching, no dependency tracking, no soundness checks.
///
/// Useful as the reference in tests: an incremental build must produce what this produces. Paths are normalised
/// exactly as the incremental contexts normalise them (lexically: `dir/missing/../f` is `dir/f`, and so is
/// `dir/f/`), so both read the same file.
///
/// ```
/// use pie::context::non_incremental::NonIncrementalContext;
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug)] struct Two;
/// # impl pie::Task for Two { type Output = u32; fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> u32 { 2 } }
/// assert_eq!(NonIncrementalContext.require(&Two), 2);
/// ```
#[derive(Copy, Clone, Default, Debug)]
pub struct NonIncrementalContext;

impl NonIncrementalContext {
    /// Executes `task` (and, through it, everything it requires).
    pub fn require<T: Task>(&mut self, task: &T) -> T::Output {
        task.execute(self)
    }
}

impl<T: Task> Context<T> for NonIncrementalContext {
    fn require_file<P: AsRef<Path>>(&mut self, path: P) -> io::Result<Option<File>> {
        open_normalised(path.as_ref())
    }
    fn require_file_with_stamper<P: AsRef<Path>>(
        &mut self,
        path: P,
        _stamper: FileStamper,
    ) -> io::Result<Option<File>> {
        open_normalised(path.as_ref())
    }
    fn provide_file<P: AsRef<Path>>(&mut self, _path: P) -> io::Result<()> {
        Ok(())
    }
    fn provide_file_with_stamper<P: AsRef<Path>>(&mut self, _path: P, _stamper: FileStamper) -> io::Result<()> {
        Ok(())
    }
    fn require_task(&mut self, task: &T) -> T::Output {
        task.execute(self)
    }
    fn require_task_with_stamper(&mut self, task: &T, _stamper: OutputStamper) -> T::Output {
        task.execute(self)
    }
}

/// Opens the file at the normalised form of `path`, as the top-down context does.
fn open_normalised(path: &Path) -> io::Result<Option<File>> {
    let normal = NormalPath::new(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot make path '{}' absolute: {e}", path.display())))?;
    open_if_file(normal.as_path())
}
