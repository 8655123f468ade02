//! The few messages of the Remote Execution API v2 that the HTTP cache protocol stores, in protobuf's wire format.
//!
//! Written by hand with `prost`'s derive from the published field numbers of
//! `build/bazel/remote/execution/v2/remote_execution.proto` (bazelbuild/remote-apis), keeping only the fields pie
//! uses. Decoding skips fields it does not know, so an entry written by another client with more fields (stdout,
//! output directories, execution metadata) still decodes; encoding writes only these fields, so what pie writes is
//! a valid `ActionResult` for any server that checks its entries (bazel-remote does by default).
//!
//! Decoding never panics: malformed input is a [`prost::DecodeError`]. A message that decodes may still name a
//! digest that is not one (a hash of the wrong length); [`Digest::to_digest`] and [`OutputFile::content_digest`]
//! check that.
//!
//! ```
//! use pie::remote::proto::{ActionResult, Message, OutputFile};
//! use pie::remote::Digest;
//!
//! let file = Digest::of(b"contents");
//! let result = ActionResult { output_files: vec![OutputFile::new("out/a.txt", &file, false)], exit_code: 0 };
//! let bytes = result.encode_to_vec();
//! let decoded = ActionResult::decode(&bytes[..]).unwrap();
//! assert_eq!(decoded, result);
//! assert_eq!(decoded.output_files[0].content_digest(), Some(file));
//! ```

/// prost's trait of every message: `encode_to_vec`, `decode` and the rest, re-exported so that users of these
/// messages need no dependency of their own on prost.
pub use prost::Message;

use super::digest;

/// `build.bazel.remote.execution.v2.Digest`: a content digest as the protocol spells it (hexadecimal hash and
/// size). Use [`Digest::to_digest`] to check it and get a [`digest::Digest`].
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Digest {
    /// The hash in lower-case hexadecimal.
    #[prost(string, tag = "1")]
    pub hash: String,
    /// The size of the blob in bytes.
    #[prost(int64, tag = "2")]
    pub size_bytes: i64,
}

impl Digest {
    /// The checked digest: `None` unless `hash` is 64 hexadecimal digits and `size_bytes` is not negative.
    pub fn to_digest(&self) -> Option<digest::Digest> {
        digest::Digest::from_hex(&self.hash, u64::try_from(self.size_bytes).ok()?)
    }
}

impl From<&digest::Digest> for Digest {
    fn from(digest: &digest::Digest) -> Self {
        // A size above `i64::MAX` bytes (8 EiB) cannot occur; saturating keeps the conversion total.
        Self {
            hash: digest.hex(),
            size_bytes: i64::try_from(digest.size_bytes()).unwrap_or(i64::MAX),
        }
    }
}

/// `build.bazel.remote.execution.v2.OutputFile`: a file an action produced, by path and content digest.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct OutputFile {
    /// The path of the file, relative to the action's working directory, with `/` as the separator.
    #[prost(string, tag = "1")]
    pub path: String,
    /// The digest of the file's contents in the content store.
    #[prost(message, optional, tag = "2")]
    pub digest: Option<Digest>,
    /// Whether the file is executable.
    #[prost(bool, tag = "4")]
    pub is_executable: bool,
}

impl OutputFile {
    /// An output file at `path` whose contents have digest `digest`.
    pub fn new(path: impl Into<String>, digest: &digest::Digest, is_executable: bool) -> Self {
        Self {
            path: path.into(),
            digest: Some(digest.into()),
            is_executable,
        }
    }

    /// The checked digest of the file's contents: `None` when it is missing or malformed.
    pub fn content_digest(&self) -> Option<digest::Digest> {
        self.digest.as_ref()?.to_digest()
    }
}

/// `build.bazel.remote.execution.v2.ActionResult`: the value of an action-cache entry (only its output files and
/// exit code).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct ActionResult {
    /// The files the action produced.
    #[prost(message, repeated, tag = "2")]
    pub output_files: Vec<OutputFile>,
    /// The exit code of the action (0 for success).
    #[prost(int32, tag = "4")]
    pub exit_code: i32,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> ActionResult {
        ActionResult {
            output_files: vec![
                OutputFile::new("out/a.txt", &digest::Digest::of(b"a"), false),
                OutputFile::new("bin/tool", &digest::Digest::of(b"tool"), true),
            ],
            exit_code: 3,
        }
    }

    #[test]
    fn action_result_round_trips() {
        let result = sample();
        assert_eq!(ActionResult::decode(result.encode_to_vec().as_slice()).unwrap(), result);
        assert_eq!(
            result.output_files[1].content_digest(),
            Some(digest::Digest::of(b"tool"))
        );
    }

    /// The bytes are spelled out from the field numbers of remote_execution.proto, independently of the derive.
    #[test]
    fn encoding_uses_the_published_field_numbers() {
        let digest = Digest {
            hash: "ab".into(),
            size_bytes: 3,
        };
        // Field 1 (hash), length-delimited; field 2 (size_bytes), varint.
        let digest_bytes = [0x0a, 2, b'a', b'b', 0x10, 3];
        assert_eq!(digest.encode_to_vec(), digest_bytes);

        let file = OutputFile {
            path: "p".into(),
            digest: Some(digest),
            is_executable: true,
        };
        // Field 1 (path); field 2 (digest), a message; field 4 (is_executable), varint.
        let mut file_bytes = vec![0x0a, 1, b'p', 0x12, digest_bytes.len() as u8];
        file_bytes.extend(digest_bytes);
        file_bytes.extend([0x20, 1]);
        assert_eq!(file.encode_to_vec(), file_bytes);

        let result = ActionResult {
            output_files: vec![file],
            exit_code: 1,
        };
        // Field 2 (output_files), a message; field 4 (exit_code), varint.
        let mut result_bytes = vec![0x12, file_bytes.len() as u8];
        result_bytes.extend(&file_bytes);
        result_bytes.extend([0x20, 1]);
        assert_eq!(result.encode_to_vec(), result_bytes);
    }

    #[test]
    fn unknown_fields_of_other_clients_are_skipped() {
        let mut bytes = sample().encode_to_vec();
        // Field 5 (stdout_raw), length-delimited, which this module does not declare.
        bytes.extend([0x2a, 3, b'o', b'u', b't']);
        assert_eq!(ActionResult::decode(bytes.as_slice()).unwrap(), sample());
    }

    #[test]
    fn garbage_is_a_decode_error() {
        // Wire type 7 does not exist.
        assert!(ActionResult::decode(&[0xff, 0xff, 0xff][..]).is_err());
        // A length that runs past the end.
        assert!(ActionResult::decode(&[0x12, 100, 0x0a][..]).is_err());
        // A truncated valid message.
        let bytes = sample().encode_to_vec();
        assert!(ActionResult::decode(&bytes[..bytes.len() - 3]).is_err());
        // A hash that is not UTF-8.
        assert!(Digest::decode(&[0x0a, 2, 0xc3, 0x28][..]).is_err());
    }

    #[test]
    fn malformed_digests_are_refused() {
        let hex = digest::Digest::of(b"x").hex();
        assert_eq!(
            Digest {
                hash: hex.clone(),
                size_bytes: -1
            }
            .to_digest(),
            None
        );
        assert_eq!(
            Digest {
                hash: hex[1..].into(),
                size_bytes: 1
            }
            .to_digest(),
            None
        );
        assert_eq!(
            OutputFile {
                path: "p".into(),
                digest: None,
                is_executable: false
            }
            .content_digest(),
            None
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(result) = ActionResult::decode(bytes.as_slice()) {
                for file in &result.output_files {
                    let _ = file.content_digest();
                }
            }
        }

        #[test]
        fn corrupting_an_encoding_never_panics(index in 0usize..1000, byte in any::<u8>()) {
            let mut bytes = sample().encode_to_vec();
            let index = index % bytes.len();
            bytes[index] = byte;
            let _ = ActionResult::decode(bytes.as_slice());
        }
    }
}
