//! ninja's no-op on a `build.ninja` equivalent to the `wide` workload: one edge per input, `in/I` → `out/I`.
//!
//! A fresh ninja build would spawn one process per edge (minutes for 100,000 edges), so the harness writes the
//! outputs and the `.ninja_log` (format v5: the command hash is ninja's MurmurHash64A) itself, then checks with
//! `ninja -n` that ninja agrees there is no work to do before timing `ninja` no-ops.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, UNIX_EPOCH};

/// How to get ninja when it is missing.
pub const INSTALL_HINT: &str =
    "ninja not found on PATH: install it (`apt-get install ninja-build`) to measure ninja's no-op";

/// Whether `ninja` runs.
pub fn available() -> bool {
    Command::new("ninja")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes the ninja build for `inputs` under `dir/ninja` and checks that ninja sees nothing to do: the folder to
/// run ninja in, or `None` when ninja is absent (or disagrees).
pub fn prepare(dir: &Path, inputs: &[PathBuf]) -> io::Result<Option<PathBuf>> {
    if !available() {
        eprintln!("{INSTALL_HINT}");
        return Ok(None);
    }
    let dir = dir.join("ninja");
    fs::create_dir_all(dir.join("out"))?;
    let mut manifest = String::from("rule cp\n  command = cp $in $out\n\n");
    let mut log = String::from("# ninja log v5\n");
    for (i, input) in inputs.iter().enumerate() {
        let output = format!("out/{i}");
        let input = input.display();
        writeln!(manifest, "build {output}: cp {input}").expect("write to String");
        let output_path = dir.join(&output);
        fs::write(&output_path, "")?;
        let mtime = fs::metadata(&output_path)?.modified()?;
        let mtime_ns = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let command = format!("cp {input} {output}");
        writeln!(
            log,
            "0\t1\t{mtime_ns}\t{output}\t{:x}",
            murmur_hash_64a(command.as_bytes())
        )
        .expect("write to String");
    }
    fs::write(dir.join("build.ninja"), manifest)?;
    fs::write(dir.join(".ninja_log"), log)?;

    let check = Command::new("ninja").arg("-C").arg(&dir).arg("-n").output()?;
    let stdout = String::from_utf8_lossy(&check.stdout);
    if !check.status.success() || !stdout.contains("no work to do") {
        eprintln!("ninja does not consider the generated build up to date; skipping it:\n{stdout}");
        return Ok(None);
    }
    Ok(Some(dir))
}

/// The wall time of one `ninja` no-op in a new process, in milliseconds.
pub fn noop_once(dir: &Path) -> io::Result<f64> {
    let start = Instant::now();
    let output = Command::new("ninja").arg("-C").arg(dir).output()?;
    let time = start.elapsed().as_secs_f64() * 1e3;
    if !output.status.success() || !String::from_utf8_lossy(&output.stdout).contains("no work to do") {
        return Err(io::Error::other(format!(
            "ninja's no-op did work or failed: {}",
            String::from_utf8_lossy(&output.stdout)
        )));
    }
    Ok(time)
}

/// ninja's `BuildLog::LogEntry::HashCommand`: MurmurHash64A with ninja's seed.
fn murmur_hash_64a(data: &[u8]) -> u64 {
    const SEED: u64 = 0xDECA_FBAD_DECA_FBAD;
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = SEED ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, byte) in rest.iter().enumerate() {
            h ^= u64::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}
