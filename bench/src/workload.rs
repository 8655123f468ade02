//! The generated workloads: the task type, the input files and the root task of each workload.
//!
//! Inputs live in `DIR/in/I` (small files, a few bytes each). Only [`BenchTask::Read`] touches the file system; the
//! other tasks find their inputs through [`input_path`], which joins the workspace folder set once per process
//! ([`set_workspace`]) — a harness shortcut that keeps tasks small; a real build script would put the path in the
//! task.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pie::stamp::FileStamper;
use pie::{Context, Task};
use serde::{Deserialize, Serialize};

/// A workload shape.
#[derive(Copy, Clone, Eq, PartialEq, Debug, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// N tasks without file I/O, all required by one root: pie's own overhead per executed task.
    Trivial,
    /// Task i requires task i-1; task 0 requires the one input file.
    Chain,
    /// N tasks each reading its own file, one root requiring all.
    Wide,
    /// Layers of width W; each task requires two tasks of the layer below; the bottom layer reads files.
    Lattice,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 4] = [Workload::Trivial, Workload::Chain, Workload::Wide, Workload::Lattice];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Trivial => "trivial",
            Workload::Chain => "chain",
            Workload::Wide => "wide",
            Workload::Lattice => "lattice",
        }
    }
}

/// A stamper choice on the command line.
#[derive(Copy, Clone, Eq, PartialEq, Debug, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StamperArg {
    /// `FileStamper::Modified`: one `stat` per check.
    Modified,
    /// `FileStamper::Hash`: read and hash the file per check.
    Hash,
}

impl StamperArg {
    /// The pie stamper.
    pub fn stamper(self) -> FileStamper {
        match self {
            StamperArg::Modified => FileStamper::Modified,
            StamperArg::Hash => FileStamper::Hash,
        }
    }

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            StamperArg::Modified => "modified",
            StamperArg::Hash => "hash",
        }
    }
}

/// The size of one workload.
#[derive(Copy, Clone, Debug)]
pub struct Shape {
    /// Which graph.
    pub workload: Workload,
    /// Number of tasks (besides the root, and besides the one input reader of `chain`).
    pub n: u32,
    /// Lattice width.
    pub width: u32,
}

impl Shape {
    /// Number of input files.
    pub fn inputs(&self) -> u32 {
        match self.workload {
            Workload::Trivial => 0,
            Workload::Chain => 1,
            Workload::Wide => self.n,
            Workload::Lattice => self.width.min(self.n),
        }
    }

    /// Number of lattice layers (the bottom one reads files).
    fn layers(&self) -> u32 {
        (self.n / self.width.max(1)).max(1)
    }

    /// The task that builds the whole workload.
    pub fn root(&self, stamper: FileStamper) -> BenchTask {
        match self.workload {
            Workload::Trivial => BenchTask::TrivialRoot(self.n),
            Workload::Chain => BenchTask::Chain(self.n.saturating_sub(1), stamper),
            Workload::Wide => BenchTask::WideRoot(self.n, stamper),
            Workload::Lattice => BenchTask::LatticeRoot {
                layers: self.layers(),
                width: self.width.min(self.n),
                stamper,
            },
        }
    }

    /// The root of the workload's lower half, for the garbage-collection figures: its tasks are tasks of the whole
    /// workload, so with both roots observed and then the whole one unobserved, about half the tasks are dead.
    ///
    /// - `trivial`, `wide`: the root of tasks `0..n/2` (the whole root and tasks `n/2..n` die);
    /// - `chain`: link `n/2 - 1` (links `n/2..n` die; the input reader stays live);
    /// - `lattice`: the root of the bottom `layers/2` layers, which are the same tasks (the top `layers - layers/2`
    ///   layers and the whole root die).
    pub fn half_root(&self, stamper: FileStamper) -> BenchTask {
        match self.workload {
            Workload::Trivial => BenchTask::TrivialRoot(self.n / 2),
            Workload::Chain => BenchTask::Chain((self.n / 2).saturating_sub(1), stamper),
            Workload::Wide => BenchTask::WideRoot(self.n / 2, stamper),
            Workload::Lattice => BenchTask::LatticeRoot {
                layers: (self.layers() / 2).max(1),
                width: self.width.min(self.n),
                stamper,
            },
        }
    }

    /// The input file that `touch` and `modify` change: the middle one.
    pub fn changed_input(&self) -> u32 {
        self.inputs() / 2
    }
}

static WORKSPACE: OnceLock<PathBuf> = OnceLock::new();

/// `WORKSPACE/in`, joined once.
static INPUTS: OnceLock<PathBuf> = OnceLock::new();

/// Sets the folder holding `in/`; once per process.
pub fn set_workspace(dir: &Path) {
    WORKSPACE
        .set(dir.to_path_buf())
        .expect("the workspace is set once per process");
    INPUTS
        .set(dir.join("in"))
        .expect("the workspace is set once per process");
}

/// The path of input `i`: `WORKSPACE/in/i`, built with one allocation. The build scripts of the workloads call
/// this once per task they require, so it is kept cheap: with two `Path::join`s and a `to_string` it cost about
/// 1,450 instructions a call, a fifth of a fresh `wide` build's (see BENCHMARKS.md, "Harness: input paths").
pub fn input_path(i: u32) -> PathBuf {
    input_path_in(INPUTS.get().expect("set_workspace before building"), i)
}

/// `inputs/i`, with one allocation of the exact size.
fn input_path_in(inputs: &Path, i: u32) -> PathBuf {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = i;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let name = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
    let mut path = PathBuf::with_capacity(inputs.as_os_str().len() + 1 + name.len());
    path.push(inputs);
    path.push(name);
    path
}

/// The initial contents of input `i`.
fn input_contents(i: u32) -> String {
    format!("input {i}\n")
}

/// Writes the inputs of `shape` and returns their paths.
pub fn generate_inputs(shape: &Shape) -> io::Result<Vec<PathBuf>> {
    let dir = WORKSPACE.get().expect("set_workspace before generating");
    fs::create_dir_all(dir.join("in"))?;
    (0..shape.inputs())
        .map(|i| {
            let path = input_path(i);
            fs::write(&path, input_contents(i))?;
            Ok(path)
        })
        .collect()
}

/// The tasks of every workload. Outputs are small digests, so that a changed input changes its readers' outputs.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum BenchTask {
    /// Reads a file with the stamper and returns a digest of its bytes (0 when it is missing).
    Read(PathBuf, FileStamper),
    /// Requires `Trivial(i)` for every `i` below the number; returns the sum of their outputs.
    TrivialRoot(u32),
    /// No I/O, no dependencies: returns its number.
    Trivial(u32),
    /// Link `i` of the chain: requires `Chain(i - 1)`, or input 0 for `i = 0`; returns what it required.
    Chain(u32, FileStamper),
    /// Requires a `Read` of every input below the number; returns the sum of their outputs.
    WideRoot(u32, FileStamper),
    /// A lattice node above the bottom layer: requires nodes `index` and `index + 1` (wrapping) of the layer below.
    Lattice {
        layer: u32,
        index: u32,
        width: u32,
        stamper: FileStamper,
    },
    /// Requires every node of the top layer.
    LatticeRoot {
        layers: u32,
        width: u32,
        stamper: FileStamper,
    },
    /// About 100 µs of hashing in memory, no I/O: returns the digest (the `cpu` workload of parallel builds).
    Cpu(u32),
    /// Requires `Cpu(i)` for every `i` below the number with one `require_tasks`; returns the sum of the outputs.
    CpuRoot(u32),
    /// Like `WideRoot`, with one `require_tasks` of all the readers.
    WideRootAll(u32, FileStamper),
    /// Reads input `i` (Hash stamps), then does a `Cpu` task's work seeded with what it read: an affected task of
    /// the bottom-up figure of parallel builds.
    CpuRead(u32),
    /// Requires `CpuRead(i)` for every `i` below the number with one `require_tasks`; returns the sum of the outputs.
    CpuReadRoot(u32),
    /// Like `CpuRead`, but returns its index whatever it read: a change of its input is cut off at it.
    CpuReadCut(u32),
    /// Requires `CpuReadCut(i)` for every `i` below the number with one `require_tasks`; returns the sum of the
    /// outputs.
    CpuReadCutRoot(u32),
}

impl BenchTask {
    /// Lattice node `index` of `layer`: a `Read` in the bottom layer.
    fn lattice_node(layer: u32, index: u32, width: u32, stamper: FileStamper) -> BenchTask {
        if layer == 0 {
            BenchTask::Read(input_path(index), stamper)
        } else {
            BenchTask::Lattice {
                layer,
                index,
                width,
                stamper,
            }
        }
    }

    /// Bytes this task owns on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            BenchTask::Read(path, _) => path.capacity(),
            _ => 0,
        }
    }
}

impl Task for BenchTask {
    type Output = u64;

    fn execute<C: Context<Self>>(&self, context: &mut C) -> u64 {
        match self {
            BenchTask::Read(path, stamper) => match context.require_file_with_stamper(path, *stamper) {
                Ok(Some(file)) => digest(file),
                _ => 0,
            },
            BenchTask::TrivialRoot(n) => (0..*n).fold(0u64, |sum, i| {
                sum.wrapping_add(context.require_task(&BenchTask::Trivial(i)))
            }),
            BenchTask::Trivial(i) => u64::from(*i),
            BenchTask::Chain(0, stamper) => context.require_task(&BenchTask::Read(input_path(0), *stamper)),
            BenchTask::Chain(i, stamper) => context.require_task(&BenchTask::Chain(i - 1, *stamper)),
            BenchTask::WideRoot(n, stamper) => (0..*n).fold(0u64, |sum, i| {
                sum.wrapping_add(context.require_task(&BenchTask::Read(input_path(i), *stamper)))
            }),
            BenchTask::Lattice {
                layer,
                index,
                width,
                stamper,
            } => {
                let left = context.require_task(&Self::lattice_node(layer - 1, *index, *width, *stamper));
                let right = context.require_task(&Self::lattice_node(layer - 1, (index + 1) % width, *width, *stamper));
                left.rotate_left(1) ^ right
            }
            BenchTask::LatticeRoot { layers, width, stamper } => (0..*width).fold(0u64, |sum, index| {
                sum.wrapping_add(context.require_task(&Self::lattice_node(layers - 1, index, *width, *stamper)))
            }),
            BenchTask::Cpu(i) => cpu_work(*i),
            BenchTask::CpuRoot(n) => {
                let tasks: Vec<BenchTask> = (0..*n).map(BenchTask::Cpu).collect();
                context.require_tasks(&tasks).into_iter().fold(0u64, u64::wrapping_add)
            }
            BenchTask::CpuRead(i) => cpu_read(context, *i),
            BenchTask::CpuReadRoot(n) => {
                let tasks: Vec<BenchTask> = (0..*n).map(BenchTask::CpuRead).collect();
                context.require_tasks(&tasks).into_iter().fold(0u64, u64::wrapping_add)
            }
            BenchTask::CpuReadCut(i) => {
                cpu_read(context, *i);
                u64::from(*i)
            }
            BenchTask::CpuReadCutRoot(n) => {
                let tasks: Vec<BenchTask> = (0..*n).map(BenchTask::CpuReadCut).collect();
                context.require_tasks(&tasks).into_iter().fold(0u64, u64::wrapping_add)
            }
            BenchTask::WideRootAll(n, stamper) => {
                let tasks = wide_readers(*n, *stamper);
                context.require_tasks(&tasks).into_iter().fold(0u64, u64::wrapping_add)
            }
        }
    }
}

/// The readers that `BenchTask::WideRootAll(n, stamper)` requires: its own code before its `require_tasks`.
pub fn wide_readers(n: u32, stamper: FileStamper) -> Vec<BenchTask> {
    (0..n).map(|i| BenchTask::Read(input_path(i), stamper)).collect()
}

/// The work of `BenchTask::CpuRead(i)`: reads input `i` (Hash stamps), then does a `Cpu` task's work seeded with it.
fn cpu_read<C: Context<BenchTask>>(context: &mut C, i: u32) -> u64 {
    let read = match context.require_file_with_stamper(input_path(i), FileStamper::Hash) {
        Ok(Some(file)) => digest(file),
        _ => 0,
    };
    cpu_work(i ^ read as u32)
}

/// The work of `BenchTask::Cpu(seed)`: an FNV-1a digest over 96 KiB of generated bytes, about 100 µs on this
/// project's reference machine.
#[inline(never)]
pub fn cpu_work(seed: u32) -> u64 {
    let mut digest = 0xcbf2_9ce4_8422_2325_u64 ^ u64::from(seed);
    for i in 0..96 * 1024u64 {
        digest = (digest ^ (i & 0xff)).wrapping_mul(0x100_0000_01b3);
    }
    std::hint::black_box(digest)
}

/// An FNV-1a digest of the file's bytes. Not inlined: its buffer would otherwise sit in the stack frame of every
/// task's `execute`, which recurses once per level of a deep graph.
#[inline(never)]
pub fn digest(mut file: fs::File) -> u64 {
    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    let mut buffer = [0u8; 256];
    loop {
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => return digest,
            Ok(read) => {
                for byte in &buffer[..read] {
                    digest = (digest ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_path_is_the_joined_path_in_one_allocation() {
        for inputs in [
            Path::new("/tmp/work/in"),
            Path::new("/tmp/work/in/"),
            Path::new("relative"),
        ] {
            for i in [0, 1, 9, 10, 99, 100, 12_345, 99_999, 100_000, u32::MAX] {
                let path = input_path_in(inputs, i);
                assert_eq!(path, inputs.join(i.to_string()), "input {i} in {inputs:?}");
                assert_eq!(path.as_os_str().len(), inputs.join(i.to_string()).as_os_str().len());
                assert!(
                    path.capacity() <= path.as_os_str().len() + 1,
                    "input {i}: {}",
                    path.capacity()
                );
            }
        }
    }
}
