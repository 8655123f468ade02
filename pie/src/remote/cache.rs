//! The shared cache of task results: [`RemoteCache`], configured on a [`Pie`] with
//! [`Pie::set_remote_cache`], stores each execution's *constructive trace* over Bazel's HTTP remote-cache protocol
//! and replays it on other machines (see `crate::context::remote` for the replay).
//!
//! # What is stored
//! - The action-cache entry of a task is keyed by the SHA-256 of a format tag, the type fingerprint of the task
//!   and output types (the one the store uses) and the task's value as canonical JSON. Its value is an
//!   `ActionResult` whose first output file, [`TRACE_PATH`], is the trace (JSON, in the content store), followed by
//!   the provided files (`files/PATH`), so that servers that check an entry's blobs (bazel-remote) accept it.
//! - The trace: the dependencies in the order the execution recorded them (a required file with a blake3 digest of
//!   its contents, a directory's listing, or its absence; a required task's value with a digest of its output; a
//!   provided file with the content-store digest of its bytes), and the output.
//!
//! # Portable between folders
//! In every string of a task's value, an output, or a dependency's path, each occurrence of the workspace root
//! followed by `/` or the end of the string is stored as a marker, and read back as the local root, as ccache's
//! `base_dir` does: a checkout in another folder hits.
//!
//! # Never trusted blindly, never fatal
//! A blob whose digest does not match, an entry or trace that does not decode, a task value or output that no
//! longer deserialises: each is a miss. Network failures are the [`HttpCache`]'s (one warning, then local builds).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::remote::{ContentDigest, Recorded, RemoteHook, Replay, ReplayDep};
use crate::dependency::Group;
use crate::path::NormalPath;
use crate::remote::proto::{ActionResult, OutputFile};
use crate::remote::{Digest, HttpCache};
use crate::stamp::{FileStamper, OutputStamper};
use crate::tracker::Tracker;
use crate::{Pie, Task};

/// The path of the trace among an action-cache entry's output files.
pub const TRACE_PATH: &str = "pie-trace.json";

/// The trace format; a trace of another format is a miss.
const FORMAT: u32 = 1;

/// What a path or string below the workspace root starts with in the cache, instead of the root.
const ROOT_MARKER: &str = "\u{1}workspace\u{1}";

/// A shared cache for a [`Pie`]: an [`HttpCache`] (its server, read-only or not) and the workspace root below which
/// paths are stored relative to it.
///
/// ```no_run
/// use pie::remote::{HttpCache, RemoteCache};
/// # #[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
/// # struct Compile(std::path::PathBuf);
/// # impl pie::Task for Compile {
/// #     type Output = String;
/// #     fn execute<C: pie::Context<Self>>(&self, _: &mut C) -> String { String::new() }
/// # }
/// let http = HttpCache::new("http://127.0.0.1:8080/cache")?;
/// let mut pie: pie::Pie<Compile, String> = pie::Pie::default();
/// pie.set_remote_cache(Some(RemoteCache::new(http, "/home/me/project")?));
/// pie.new_session().require(&Compile("/home/me/project/main.c".into()));
/// if let Some(cache) = pie.remote_cache() {
///     eprintln!("{:?}", cache.http().stats());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RemoteCache {
    http: HttpCache,
    root: PathBuf,
    /// `root` as a string (the relativising prefix).
    root_text: String,
    hits: AtomicU64,
    uploads: AtomicU64,
    /// Whether the warning about a task that cannot be keyed was given.
    warned_unkeyable: AtomicBool,
}

impl RemoteCache {
    /// A cache on `http` for a workspace at `workspace_root` (made absolute and normalised lexically).
    ///
    /// # Errors
    /// When the root cannot be made absolute, or is not valid UTF-8 (paths are stored as strings).
    pub fn new(http: HttpCache, workspace_root: impl AsRef<Path>) -> io::Result<Self> {
        let root = NormalPath::new(workspace_root.as_ref())?.as_path().to_path_buf();
        let root_text = root
            .to_str()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the workspace root '{}' is not valid UTF-8", root.display()),
                )
            })?
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            http,
            root,
            root_text,
            hits: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            warned_unkeyable: AtomicBool::new(false),
        })
    }

    /// The HTTP client (its [`stats`](HttpCache::stats) count requests, hits and misses of entries and blobs).
    pub fn http(&self) -> &HttpCache {
        &self.http
    }

    /// The workspace root.
    pub fn workspace_root(&self) -> &Path {
        &self.root
    }

    /// How many executions were replaced by a replayed trace so far.
    pub fn tasks_restored(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many traces were uploaded so far.
    pub fn traces_uploaded(&self) -> u64 {
        self.uploads.load(Ordering::Relaxed)
    }

    /// `text` with every occurrence of the workspace root that names it or a path below it (followed by `/` or the
    /// end of the text) replaced by the marker; `None` when there is none. A text may hold several paths (a
    /// command line, a list).
    fn relative(&self, text: &str) -> Option<String> {
        let root = self.root_text.as_str();
        if root.is_empty() || !text.contains(root) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        while let Some(at) = rest.find(root) {
            let after = &rest[at + root.len()..];
            out.push_str(&rest[..at]);
            if after.is_empty() || after.starts_with('/') {
                out.push_str(ROOT_MARKER);
                changed = true;
            } else {
                out.push_str(root);
            }
            rest = after;
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    /// `text` with every marker replaced by the local workspace root; `None` when there is none.
    fn absolute(&self, text: &str) -> Option<String> {
        text.contains(ROOT_MARKER)
            .then(|| text.replace(ROOT_MARKER, &self.root_text))
    }

    fn relativise(&self, value: &mut Value) {
        self.rewrite(value, &|cache, text| cache.relative(text));
    }

    fn absolutise(&self, value: &mut Value) {
        self.rewrite(value, &|cache, text| cache.absolute(text));
    }

    fn rewrite(&self, value: &mut Value, f: &dyn Fn(&Self, &str) -> Option<String>) {
        match value {
            Value::String(text) => {
                if let Some(new) = f(self, text) {
                    *text = new;
                }
            }
            Value::Array(values) => values.iter_mut().for_each(|v| self.rewrite(v, f)),
            Value::Object(map) => {
                // Keys are strings too (a map keyed by paths).
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.rewrite(&mut v, f);
                    map.insert(f(self, &key).unwrap_or(key), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A value as portable JSON; `None` when it cannot be serialised as JSON.
    fn portable<V: Serialize>(&self, value: &V) -> Option<Value> {
        let mut json = serde_json::to_value(value).ok()?;
        self.relativise(&mut json);
        Some(json)
    }

    /// A value read back from portable JSON; `None` when it does not deserialise.
    fn local<V: DeserializeOwned>(&self, mut json: Value) -> Option<V> {
        self.absolutise(&mut json);
        serde_json::from_value(json).ok()
    }

    fn portable_path(&self, path: &Path) -> Option<String> {
        let text = path.to_str()?;
        Some(self.relative(text).unwrap_or_else(|| text.to_string()))
    }

    fn local_path(&self, text: &str) -> PathBuf {
        PathBuf::from(self.absolute(text).unwrap_or_else(|| text.to_string()))
    }
}

/// The trace of one execution, as stored in the content store.
#[derive(Serialize, Deserialize)]
struct Trace {
    format: u32,
    deps: Vec<TraceDep>,
    output: Value,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TraceDep {
    RequireFile {
        path: String,
        stamper: FileStamper,
        content: String,
    },
    RequireTask {
        task: Value,
        stamper: OutputStamper,
        /// 0: required alone; 1: the first of a `require_tasks` group; 2: a later task of the group.
        #[serde(default)]
        group: u8,
        output: String,
    },
    ProvideFile {
        path: String,
        stamper: FileStamper,
        /// The bytes' digest in the content store; `None` when the task left nothing at the path.
        blob: Option<Blob>,
    },
}

#[derive(Serialize, Deserialize)]
struct Blob {
    hash: String,
    size: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<ContentDigest> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The digest of what is at `path`: nothing, a directory (its sorted entry names), or a file (its bytes).
fn content_digest(path: &Path) -> Option<ContentDigest> {
    let mut hasher = blake3::Hasher::new();
    match fs::metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            hasher.update(b"missing");
        }
        Err(_) => return None,
        Ok(metadata) if metadata.is_dir() => {
            let mut names: Vec<_> = fs::read_dir(path)
                .ok()?
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .ok()?;
            names.sort();
            hasher.update(b"dir");
            for name in names {
                hasher.update(b"\0");
                hasher.update(name.as_encoded_bytes());
            }
        }
        Ok(_) => {
            hasher.update(b"file\0");
            hasher.update_reader(fs::File::open(path).ok()?).ok()?;
        }
    }
    Some(*hasher.finalize().as_bytes())
}

/// Writes `bytes` to `path` atomically (a sibling temporary file renamed over it), creating its folder if needed;
/// leaves a file that already holds `bytes` alone.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = parent.join(format!(
        ".{name}.pie-restore.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::write(&temporary, bytes).and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// The engine's view of a [`RemoteCache`] for serialisable task and output types.
struct SerdeHook<T: Task> {
    cache: RemoteCache,
    fingerprint: [u8; 32],
    /// Lookups made ahead of the requires that need them (see [`RemoteHook::prefetch`]), by action key: `None` for
    /// a miss. Each is taken by the first lookup of its task.
    prefetched: Mutex<HashMap<Digest, Option<Replay<T, T::Output>>>>,
}

/// How many lookups a prefetch runs at once.
const PREFETCH_CONCURRENCY: usize = 16;

/// How many prefetched lookups are kept at most (a replay that misses early leaves the rest unused).
const PREFETCH_LIMIT: usize = 100_000;

impl<T: Task> fmt::Debug for SerdeHook<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cache.fmt(f)
    }
}

impl<T> SerdeHook<T>
where
    T: Task + Serialize + DeserializeOwned,
    T::Output: Serialize + DeserializeOwned,
{
    /// The action-cache key of `task`; `None` (with one warning per cache) when it cannot be serialised as JSON.
    fn key(&self, task: &T) -> Option<Digest> {
        let Some(json) = self.cache.portable(task) else {
            if !self.cache.warned_unkeyable.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "pie: task {task:?} cannot be serialised as JSON for the remote cache; such tasks build locally"
                );
            }
            return None;
        };
        let mut bytes = b"pie remote cache 1\0".to_vec();
        bytes.extend_from_slice(&self.fingerprint);
        bytes.extend(serde_json::to_vec(&json).ok()?);
        Some(Digest::of(&bytes))
    }

    fn trace_deps(&self, deps: Vec<Recorded<T, T::Output>>, files: &mut Vec<OutputFile>) -> Option<Vec<TraceDep>> {
        let http = &self.cache.http;
        let mut trace = Vec::with_capacity(deps.len());
        for dep in deps {
            trace.push(match dep {
                Recorded::RequireFile { path, stamper, stamp } => {
                    // Changed since the task read it: what the task saw is unknown.
                    if stamper.stamp(&path).ok() != Some(stamp?) {
                        return None;
                    }
                    TraceDep::RequireFile {
                        path: self.cache.portable_path(&path)?,
                        stamper,
                        content: hex(&content_digest(&path)?),
                    }
                }
                Recorded::RequireTask {
                    task,
                    stamper,
                    group,
                    output,
                } => TraceDep::RequireTask {
                    task: self.cache.portable(&task)?,
                    stamper,
                    group: match group {
                        Group::Alone => 0,
                        Group::First => 1,
                        Group::Member => 2,
                    },
                    output: hex(&self.output_digest(&output?)?),
                },
                Recorded::ProvideFile { path, stamper, stamp } => {
                    if stamper.stamp(&path).ok() != Some(stamp?) {
                        return None;
                    }
                    let portable = self.cache.portable_path(&path)?;
                    let blob = match fs::read(&path) {
                        Ok(bytes) => {
                            let digest = http.put_blob(&bytes);
                            files.push(OutputFile::new(format!("files/{portable}"), &digest, false));
                            Some(Blob {
                                hash: digest.hex(),
                                size: digest.size_bytes(),
                            })
                        }
                        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                        // A directory, say: not restorable.
                        Err(_) => return None,
                    };
                    TraceDep::ProvideFile {
                        path: portable,
                        stamper,
                        blob,
                    }
                }
            });
        }
        Some(trace)
    }

    fn lock_prefetched(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Option<Replay<T, T::Output>>>> {
        self.prefetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn try_lookup(&self, key: &Digest) -> Option<Replay<T, T::Output>> {
        let http = &self.cache.http;
        let entry = http.get_action(key)?;
        let trace = entry.output_files.iter().find(|file| file.path == TRACE_PATH)?;
        let trace: Trace = serde_json::from_slice(&http.get_blob(&trace.content_digest()?)?).ok()?;
        if trace.format != FORMAT {
            return None;
        }
        let mut deps = Vec::with_capacity(trace.deps.len());
        let mut files = Vec::new();
        for dep in trace.deps {
            deps.push(match dep {
                TraceDep::RequireFile { path, stamper, content } => ReplayDep::RequireFile {
                    path: self.cache.local_path(&path),
                    stamper,
                    content: unhex32(&content)?,
                },
                TraceDep::RequireTask {
                    task,
                    stamper,
                    group,
                    output,
                } => ReplayDep::RequireTask {
                    task: self.cache.local(task)?,
                    stamper,
                    group: match group {
                        0 => Group::Alone,
                        1 => Group::First,
                        2 => Group::Member,
                        _ => return None,
                    },
                    output: unhex32(&output)?,
                },
                TraceDep::ProvideFile { path, stamper, blob } => {
                    let path = self.cache.local_path(&path);
                    let bytes = match blob {
                        Some(blob) => Some(http.get_blob(&Digest::from_hex(&blob.hash, blob.size)?)?),
                        None => None,
                    };
                    files.push((path.clone(), bytes));
                    ReplayDep::ProvideFile { path, stamper }
                }
            });
        }
        let output = self.cache.local(trace.output)?;
        Some(Replay { deps, output, files })
    }
}

impl<T> RemoteHook<T, T::Output> for SerdeHook<T>
where
    T: Task + Serialize + DeserializeOwned,
    T::Output: Serialize + DeserializeOwned,
{
    fn lookup(&self, task: &T) -> Option<Replay<T, T::Output>> {
        let key = self.key(task)?;
        if let Some(prefetched) = self.lock_prefetched().remove(&key) {
            return prefetched;
        }
        self.try_lookup(&key)
    }

    fn prefetch(&self, tasks: &[&T]) {
        let keys: Vec<Digest> = {
            let prefetched = self.lock_prefetched();
            if prefetched.len() >= PREFETCH_LIMIT {
                return;
            }
            let mut seen = HashSet::new();
            tasks
                .iter()
                .filter(|task| task.remote_cacheable())
                .filter_map(|task| self.key(task))
                .filter(|key| !prefetched.contains_key(key) && seen.insert(*key))
                .collect()
        };
        if keys.len() < 2 || self.cache.http.unavailable().is_some() {
            return;
        }
        // Independent reads, no side effects: the replay still requires the tasks one by one, in order.
        let next = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..PREFETCH_CONCURRENCY.min(keys.len()) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(key) = keys.get(index) else { break };
                    let replay = self.try_lookup(key);
                    self.lock_prefetched().insert(*key, replay);
                });
            }
        });
    }

    fn uploads(&self, task: &T) -> bool {
        let http = &self.cache.http;
        task.remote_cacheable() && !http.is_read_only() && http.unavailable().is_none()
    }

    fn looks_up(&self, task: &T) -> bool {
        task.remote_cacheable() && self.cache.http.unavailable().is_none()
    }

    fn content_digest(&self, path: &Path) -> Option<ContentDigest> {
        content_digest(path)
    }

    fn output_digest(&self, output: &T::Output) -> Option<ContentDigest> {
        let json = self.cache.portable(output)?;
        Some(*blake3::hash(&serde_json::to_vec(&json).ok()?).as_bytes())
    }

    fn restore_file(&self, path: &Path, contents: Option<&[u8]>) -> bool {
        match contents {
            Some(bytes) => write_atomically(path, bytes).is_ok(),
            None => match fs::remove_file(path) {
                Ok(()) => true,
                Err(error) => error.kind() == io::ErrorKind::NotFound,
            },
        }
    }

    fn restored(&self) {
        self.cache.hits.fetch_add(1, Ordering::Relaxed);
    }

    fn upload(&self, task: &T, deps: Vec<Recorded<T, T::Output>>, output: &T::Output) {
        let http = &self.cache.http;
        let Some(key) = self.key(task) else { return };
        let mut files = Vec::new();
        let Some(deps) = self.trace_deps(deps, &mut files) else {
            return;
        };
        let Some(output) = self.cache.portable(output) else {
            return;
        };
        let trace = Trace {
            format: FORMAT,
            deps,
            output,
        };
        let Ok(bytes) = serde_json::to_vec(&trace) else {
            return;
        };
        let digest = http.put_blob(&bytes);
        files.insert(0, OutputFile::new(TRACE_PATH, &digest, false));
        http.put_action(
            &key,
            &ActionResult {
                output_files: files,
                exit_code: 0,
            },
        );
        if http.unavailable().is_none() {
            self.cache.uploads.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn cache(&self) -> &RemoteCache {
        &self.cache
    }
}

impl<T, A> Pie<T, T::Output, A>
where
    T: Task + Serialize + DeserializeOwned,
    T::Output: Serialize + DeserializeOwned,
    A: Tracker<T>,
{
    /// Shares results through `cache` (or stops, with `None`): before a task executes, its trace is looked up and,
    /// when every dependency it recorded matches, replayed instead (its provided files restored, its dependencies
    /// recorded, its output returned); after a task executes, its trace is uploaded unless the cache is read-only.
    /// Tasks opt out with [`Task::remote_cacheable`]. See the [module documentation](crate::remote) for what is
    /// stored.
    ///
    /// Soundness checks apply to a replay as to an execution. Nothing the server sends can make a build panic or
    /// fail: a bad entry is a miss, and an unreachable server gives one warning, after which tasks build locally.
    pub fn set_remote_cache(&mut self, cache: Option<RemoteCache>) {
        self.remote = cache.map(|cache| {
            std::sync::Arc::new(SerdeHook::<T> {
                cache,
                fingerprint: crate::persist::type_fingerprint::<T>(),
                prefetched: Mutex::new(HashMap::new()),
            }) as std::sync::Arc<dyn RemoteHook<T, T::Output>>
        });
    }

    /// The shared cache set with [`set_remote_cache`](Self::set_remote_cache), if any.
    pub fn remote_cache(&self) -> Option<&RemoteCache> {
        self.remote.as_deref().map(|hook| hook.cache())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_at(root: &str) -> RemoteCache {
        RemoteCache::new(HttpCache::new("http://127.0.0.1:9/").unwrap(), root).unwrap()
    }

    #[test]
    fn paths_below_the_root_are_stored_relative_to_it_wherever_they_are_in_a_string() {
        let cache = cache_at("/work/p");
        let relative = |text: &str| cache.relative(text);
        assert_eq!(relative("/work/p"), Some(ROOT_MARKER.to_string()));
        assert_eq!(relative("/work/p/a.c"), Some(format!("{ROOT_MARKER}/a.c")));
        assert_eq!(
            relative("cc /work/p/a.c -o /work/p/a.o"),
            Some(format!("cc {ROOT_MARKER}/a.c -o {ROOT_MARKER}/a.o"))
        );
        // Another folder that starts with the same characters is not below the root.
        assert_eq!(relative("/work/pie/a.c"), None);
        assert_eq!(
            relative("/work/pie/a.c /work/p/b.c"),
            Some(format!("/work/pie/a.c {ROOT_MARKER}/b.c"))
        );
        assert_eq!(relative("elsewhere"), None);

        let other = cache_at("/home/me/checkout/");
        let text = relative("cc /work/p/a.c -o /work/p/a.o").unwrap();
        assert_eq!(
            other.absolute(&text).as_deref(),
            Some("cc /home/me/checkout/a.c -o /home/me/checkout/a.o")
        );
    }

    #[test]
    fn json_values_are_rewritten_in_strings_and_keys() {
        let cache = cache_at("/w");
        let mut value = serde_json::json!({"/w/k": ["/w/a", 1, {"x": "/w"}], "n": null});
        cache.relativise(&mut value);
        let text = value.to_string();
        assert!(!text.contains("/w/"), "{text}");
        cache.absolutise(&mut value);
        assert_eq!(value, serde_json::json!({"/w/k": ["/w/a", 1, {"x": "/w"}], "n": null}));
    }

    #[test]
    fn digests_tell_a_missing_file_an_empty_file_and_a_folder_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let missing = content_digest(&path).unwrap();
        fs::write(&path, "").unwrap();
        let empty = content_digest(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let folder = content_digest(&path).unwrap();
        assert!(missing != empty && empty != folder && missing != folder);
        assert_eq!(unhex32(&hex(&empty)), Some(empty));
        assert_eq!(unhex32("zz"), None);
    }

    #[test]
    fn restoring_writes_atomically_and_leaves_identical_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomically(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_atomically(&path, b"one").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified, "left alone");
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.txt"], "no temporary file left");
    }
}
