//! Tests of the store format that need the internals: the format is pinned, and payloads with a valid checksum
//! but an invalid graph are refused without a panic. Behaviour through the public API is tested in
//! `pie/tests/persist*.rs`.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::shape::{self, Shape};
use super::*;
use crate::ids::TaskId;
use crate::path::NormalPath;
use crate::stamp::{FileStamp, FileStamper, OutputStamper};
use crate::Context;

/// Pure tasks (no files are read), except `Probe`, which only asks whether a path exists.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
enum Node {
    Leaf(u32),
    Probe(PathBuf),
    Sum(Vec<Node>),
}

impl Task for Node {
    type Output = u64;
    fn execute<C: Context<Self>>(&self, context: &mut C) -> u64 {
        match self {
            Node::Leaf(n) => u64::from(*n),
            Node::Probe(path) => u64::from(matches!(
                context.require_file_with_stamper(path, FileStamper::Exists),
                Ok(Some(_))
            )),
            Node::Sum(nodes) => {
                let mut sum = 0;
                for (i, node) in nodes.iter().enumerate() {
                    let stamper = if i % 2 == 0 {
                        OutputStamper::Equals
                    } else {
                        OutputStamper::Inconsequential
                    };
                    sum += context.require_task_with_stamper(node, stamper);
                }
                sum
            }
        }
    }
}

fn golden_root() -> Node {
    Node::Sum(vec![
        Node::Leaf(1),
        Node::Probe(PathBuf::from("/nonexistent-pie-golden/x")),
        Node::Leaf(2),
    ])
}

fn built_pie() -> Pie<Node, u64> {
    let mut pie = Pie::default();
    assert_eq!(pie.new_session().require(&golden_root()), 3);
    pie
}

/// Writes `payload` as a store file with a correct header (for `Node` tasks) and loads it.
fn load_payload(payload: &[u8]) -> Result<Pie<Node, u64>, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let header = seal(&type_fingerprint::<Node>(), payload);
    fs::write(&path, [&header[..], payload].concat()).unwrap();
    Pie::load(&path, crate::tracker::NoopTracker)
}

/// Requires every task of `pie` and a few new ones; panics (failing the test) on anything but a clean build.
fn build_everything(pie: &mut Pie<Node, u64>) {
    let tasks: Vec<Node> = (0..pie.task_count() as u32)
        .map(|i| pie.store.task(TaskId::for_test(i)).clone())
        .collect();
    let mut session = pie.new_session();
    for task in &tasks {
        session.require(task);
    }
    session.require(&golden_root());
    drop(session);
    pie.check_invariants();
}

#[test]
fn format_is_pinned() {
    // The bytes of a small store. When this fails, the store format changed: bump `FORMAT_VERSION` (old stores are
    // then refused with `UnsupportedVersion` instead of failing to decode) and update the bytes here.
    let payload = postcard::to_stdvec(&built_pie().store).unwrap();
    let expected = concat!(
        "04",                                                                 // 4 tasks:
        "0203000101192f6e6f6e6578697374656e742d7069652d676f6c64656e2f780002", // Sum([Leaf(1), Probe(..), Leaf(2)])
        "0001",                                                               // Leaf(1)
        "01192f6e6f6e6578697374656e742d7069652d676f6c64656e2f78",             // Probe("/nonexistent-pie-golden/x")
        "0002",                                                               // Leaf(2)
        "04",                                                     // 4 records (output, version, order, root, deps):
        "010304060103020101000102020000020203010003",             // 3, v4, o6, root, 3 task deps (each alone)
        "010101010000",                                           // 1, v1, o1, not a root, none
        "010002030001000000010000",                               // 0, v2, o3, requires file 0 (Exists(false))
        "010203050000",                                           // 2, v3, o5, none
        "01192f6e6f6e6578697374656e742d7069652d676f6c64656e2f78", // 1 file
        "070501",                                                 // next order 7, next version 5, settled
    );
    assert_eq!(hex(&payload), expected);
    assert_eq!(FORMAT_VERSION, 4);
    let header = seal(&[7; 32], &payload);
    assert_eq!(&header[..12], b"PIESTORE\x04\x00\x00\x00");
    assert_eq!(&header[12..44], &[7; 32]);
    assert_eq!(header[44..52], (payload.len() as u64).to_le_bytes());
}

#[test]
fn type_fingerprint_is_pinned() {
    // The fingerprint of `Node` tasks with `u64` outputs, the same in every process and every build. When this
    // fails, the meaning of the fingerprint changed (a new serde-reflection that traces differently?): stores of
    // unchanged types would be refused once. Bump `FORMAT_VERSION` if that is intended, and update the bytes here.
    assert!(matches!(Shape::of::<Node>(), Shape::Traced(_)));
    assert_eq!(
        hex(&type_fingerprint::<Node>()),
        "0b2573ac5efd0f63e2fffedb8dd42870f67f62857e563bae0c616a62b05c22f9"
    );
}

/// Defines, in a module of its own, a task type `Task` with these variants (and `u64` outputs): types with one name
/// whose shapes differ, as a build script's task type before and after an edit.
macro_rules! task_type {
    ($module:ident { $($variants:tt)* }) => {
        mod $module {
            use serde::{Deserialize, Serialize};

            #[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
            pub(super) enum Task {
                $($variants)*
            }

            impl crate::Task for Task {
                type Output = u64;
                fn execute<C: crate::Context<Self>>(&self, _context: &mut C) -> u64 {
                    0
                }
            }
        }
    };
}

task_type!(v1 { Leaf(u32), Sum(Vec<Task>) });
task_type!(v1_elsewhere { Leaf(u32), Sum(Vec<Task>) });
task_type!(v2_new_first_variant { Extra(u32), Leaf(u32), Sum(Vec<Task>) });
task_type!(v2_new_last_variant { Leaf(u32), Sum(Vec<Task>), Extra(u32) });
task_type!(v2_wider_field { Leaf(u64), Sum(Vec<Task>) });
task_type!(v2_renamed_variant { Leaf(u32), Total(Vec<Task>) });
task_type!(v2_struct_variant { Leaf { n: u32 }, Sum(Vec<Task>) });
task_type!(v2_renamed_field_a { Leaf { n: u32 }, Sum(Vec<Task>) });
task_type!(v2_renamed_field_b { Leaf { m: u32 }, Sum(Vec<Task>) });
task_type!(v2_nested_enum { Leaf(u32, super::Mode), Sum(Vec<Task>) });

/// A flag of the nested enum in `v2_nested_enum`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
enum Mode {
    Fast,
    Exact,
}

/// The shape of `T` traced, or a failed test.
fn traced<T: Serialize + DeserializeOwned>() -> Shape {
    let shape = Shape::of::<T>();
    assert!(matches!(shape, Shape::Traced(_)), "{} was not traced", type_name::<T>());
    shape
}

/// Regression (issue 8): the fingerprint hashed type names only, so a store of a build script whose task enum
/// gained a variant before the others (same type name) was loaded and its tasks decoded as the new variant. Types
/// with one name and different shapes cannot live in one test binary, so types of one shape in different modules
/// stand in: their fingerprints must be equal (this failed before, when module paths were hashed) and those of
/// every changed shape must differ. That the difference comes from the shape alone is what the equal pair shows.
#[test]
fn type_fingerprint_covers_the_shape_and_not_the_module_path() {
    let v1 = type_fingerprint::<v1::Task>();
    assert_eq!(
        v1,
        type_fingerprint::<v1_elsewhere::Task>(),
        "one shape, one fingerprint"
    );
    let changed = [
        ("a new first variant", type_fingerprint::<v2_new_first_variant::Task>()),
        ("a new last variant", type_fingerprint::<v2_new_last_variant::Task>()),
        ("a wider field", type_fingerprint::<v2_wider_field::Task>()),
        ("a renamed variant", type_fingerprint::<v2_renamed_variant::Task>()),
        ("a struct variant", type_fingerprint::<v2_struct_variant::Task>()),
        ("a nested enum", type_fingerprint::<v2_nested_enum::Task>()),
    ];
    for (change, fingerprint) in changed {
        assert_ne!(v1, fingerprint, "{change} was not seen");
    }
    assert_ne!(
        type_fingerprint::<v2_renamed_field_a::Task>(),
        type_fingerprint::<v2_renamed_field_b::Task>(),
        "a renamed field was not seen"
    );
    // The output type counts too.
    let task = traced::<v1::Task>();
    assert_ne!(
        fingerprint(&task, &traced::<u64>()),
        fingerprint(&task, &traced::<u32>())
    );
    // A nested enum's variants count, under their indices.
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Mode")]
    enum ModeGrown {
        Fast,
        Exact,
        Careful,
    }
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Mode")]
    enum ModeReordered {
        Exact,
        Fast,
    }
    let output = traced::<u64>();
    let with = |mode: Shape| fingerprint(&mode, &output);
    let mode = with(traced::<Mode>());
    assert_ne!(mode, with(traced::<ModeGrown>()));
    assert_ne!(mode, with(traced::<ModeReordered>()));
}

/// The same change end to end: a store saved for `v1::Task` is used by a `Pie` of the same shape elsewhere and
/// refused by one whose task type gained a first variant, with an error naming the file.
#[test]
fn store_of_a_changed_task_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut pie: Pie<v1::Task, u64> = Pie::default();
    pie.new_session().require(&v1::Task::Sum(vec![v1::Task::Leaf(5)]));
    pie.save(&path).unwrap();

    let same: Pie<v1_elsewhere::Task, u64> = Pie::load(&path, crate::tracker::NoopTracker).unwrap();
    assert_eq!(same.task_count(), 1);
    let error = Pie::<v2_new_first_variant::Task, u64>::load(&path, crate::tracker::NoopTracker)
        .map(|pie| pie.task_count())
        .expect_err("a store of another shape was loaded");
    assert!(matches!(error, LoadError::TypeMismatch { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("variants or fields changed"), "{message}");
}

#[test]
fn types_that_cannot_be_traced_fall_back_to_their_names() {
    /// Tracing would pick the first variant forever.
    #[derive(Serialize, Deserialize)]
    enum FirstVariantRecurses {
        More(Box<FirstVariantRecurses>),
        End,
    }
    /// Refuses the zero that tracing makes up.
    #[derive(Serialize)]
    struct NonZero(u32);
    impl<'de> Deserialize<'de> for NonZero {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            match u32::deserialize(deserializer)? {
                0 => Err(serde::de::Error::custom("zero")),
                n => Ok(NonZero(n)),
            }
        }
    }
    /// Two containers named `Result`.
    type TwoResults = (Result<u8, String>, Result<String, u8>);
    /// Panics in its `Deserialize`.
    #[derive(Serialize)]
    struct Panics;
    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: serde::Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
            panic!("a Deserialize impl that panics")
        }
    }
    assert_eq!(
        Shape::of::<FirstVariantRecurses>(),
        Shape::Named(type_name::<FirstVariantRecurses>())
    );
    assert_eq!(Shape::of::<NonZero>(), Shape::Named(type_name::<NonZero>()));
    assert_eq!(Shape::of::<TwoResults>(), Shape::Named(type_name::<TwoResults>()));
    assert_eq!(Shape::of::<Panics>(), Shape::Named(type_name::<Panics>()));
    // A name and a traced shape never give one fingerprint.
    let output = traced::<u64>();
    assert_ne!(
        fingerprint(&Shape::Named("u64"), &output),
        fingerprint(&Shape::Traced(b"u64".to_vec()), &output)
    );
}

#[test]
fn enums_nested_in_later_variants_are_traced_completely() {
    #[derive(Serialize, Deserialize)]
    enum Outer {
        Plain(u8),
        Flagged { mode: Mode, other: Option<Mode> },
        Moded(Mode, Vec<Outer>),
    }
    /// `Outer` with the nested enum's variants swapped.
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Outer")]
    enum Reordered {
        Plain(u8),
        Flagged {
            mode: ModeSwapped,
            other: Option<ModeSwapped>,
        },
        Moded(ModeSwapped, Vec<Reordered>),
    }
    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Mode")]
    enum ModeSwapped {
        Exact,
        Fast,
    }
    let (_, registry) = shape::trace::<Outer>().unwrap();
    assert_eq!(registry.len(), 2, "{registry:?}");
    assert_ne!(traced::<Outer>(), traced::<Reordered>());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn saved_store_round_trips_to_identical_bytes() {
    let pie = built_pie();
    let payload = postcard::to_stdvec(&pie.store).unwrap();
    let loaded = load_payload(&payload).unwrap();
    loaded.check_invariants();
    assert_eq!(postcard::to_stdvec(&loaded.store).unwrap(), payload);
}

// A mirror of the payload's serialised layout, to write payloads that `save` never would.

#[derive(Serialize, Clone, Debug)]
struct StoreImage {
    tasks: Vec<Node>,
    task_data: Vec<TaskImage>,
    files: Vec<PathImage>,
    next_order: u64,
    next_version: u64,
    settled: bool,
}

#[derive(Serialize, Clone, Debug)]
struct TaskImage {
    output: Option<u64>,
    version: u64,
    order: u64,
    root: bool,
    deps: Vec<DepImage>,
}

#[derive(Serialize, Clone, Debug)]
enum DepImage {
    RequireFile(FileDepImage),
    ProvideFile(FileDepImage),
    RequireTask(TaskDepImage),
}

#[derive(Serialize, Clone, Debug)]
struct FileDepImage {
    file: u32,
    stamper: FileStamper,
    stamp: Option<FileStamp>,
}

#[derive(Serialize, Clone, Debug)]
struct TaskDepImage {
    task: u32,
    stamper: OutputStamper,
    /// `Group::Alone`.
    group: u8,
    version: u64,
}

#[derive(Clone, Debug)]
struct PathImage(Vec<u8>);

impl Serialize for PathImage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

fn file_dep(file: u32) -> FileDepImage {
    FileDepImage {
        file,
        stamper: FileStamper::Exists,
        stamp: Some(FileStamp::Exists(false)),
    }
}

fn task_dep(task: u32) -> TaskDepImage {
    TaskDepImage {
        task,
        stamper: OutputStamper::Equals,
        group: 0,
        version: 1,
    }
}

/// Three leaves and a sum requiring them, one leaf reading and one providing a file.
fn valid_image() -> StoreImage {
    let leaf = |order, deps| TaskImage {
        output: Some(1),
        version: 1,
        order,
        root: false,
        deps,
    };
    StoreImage {
        tasks: vec![Node::Leaf(0), Node::Leaf(1), Node::Leaf(2), Node::Sum(vec![])],
        task_data: vec![
            leaf(0, vec![DepImage::RequireFile(file_dep(0))]),
            leaf(1, vec![DepImage::ProvideFile(file_dep(1))]),
            leaf(2, vec![]),
            leaf(
                3,
                vec![
                    DepImage::RequireTask(task_dep(0)),
                    DepImage::RequireTask(task_dep(1)),
                    DepImage::RequireTask(task_dep(2)),
                ],
            ),
        ],
        files: vec![
            PathImage(b"/nonexistent-pie-test/a".to_vec()),
            PathImage(b"/nonexistent-pie-test/b".to_vec()),
        ],
        next_order: 4,
        next_version: 2,
        settled: true,
    }
}

fn load_image(image: &StoreImage) -> Result<Pie<Node, u64>, LoadError> {
    load_payload(&postcard::to_stdvec(image).unwrap())
}

#[test]
fn mirror_image_matches_the_format() {
    let mut pie = load_image(&valid_image()).unwrap();
    assert_eq!(pie.task_count(), 4);
    // The provided file still counts: a second provider is refused.
    let file = pie
        .store
        .get_or_create_file(NormalPath::new(Path::new("/nonexistent-pie-test/b")).unwrap());
    let provider = pie.store.provider(file).map(|id| pie.store.task(id).clone());
    assert_eq!(provider, Some(Node::Leaf(1)));
    build_everything(&mut pie);
}

#[test]
fn invalid_graphs_are_refused_with_a_reason() {
    type Edit = fn(&mut StoreImage);
    let cases: Vec<(&str, Edit)> = vec![
        ("task dependency out of range", |i| {
            i.task_data[3].deps.push(DepImage::RequireTask(task_dep(9)))
        }),
        ("file dependency out of range", |i| {
            i.task_data[0].deps.push(DepImage::RequireFile(file_dep(9)))
        }),
        ("self-dependency", |i| {
            i.task_data[3].deps.push(DepImage::RequireTask(task_dep(3)))
        }),
        ("dependency ordered after its dependent", |i| {
            i.task_data[0].deps.push(DepImage::RequireTask(task_dep(3)))
        }),
        ("cycle between two tasks", |i| {
            i.task_data[1].deps.push(DepImage::RequireTask(task_dep(2)));
            i.task_data[2].deps.push(DepImage::RequireTask(task_dep(1)));
        }),
        ("two tasks share an order", |i| i.task_data[2].order = 1),
        ("order beyond the counter", |i| i.task_data[2].order = 4),
        ("version beyond the counter", |i| i.task_data[2].version = 2),
        ("recorded version beyond the counter", |i| {
            i.task_data[3].deps.push(DepImage::RequireTask(TaskDepImage {
                version: 5,
                ..task_dep(0)
            }))
        }),
        ("duplicate task", |i| i.tasks[2] = Node::Leaf(0)),
        ("more records than tasks", |i| i.tasks.pop().map(drop).unwrap_or(())),
        ("duplicate file", |i| i.files[1] = i.files[0].clone()),
        ("relative path", |i| i.files[0] = PathImage(b"relative/a".to_vec())),
        ("path with ..", |i| i.files[0] = PathImage(b"/x/../a".to_vec())),
        ("two providers of a file", |i| {
            i.task_data[2].deps.push(DepImage::ProvideFile(file_dep(1)))
        }),
        ("a file provided twice by one task", |i| {
            i.task_data[1].deps.push(DepImage::ProvideFile(file_dep(1)))
        }),
        ("stamp of another stamper", |i| {
            i.task_data[0].deps.push(DepImage::RequireFile(FileDepImage {
                stamper: FileStamper::Hash,
                ..file_dep(0)
            }))
        }),
    ];
    for (name, edit) in cases {
        let mut image = valid_image();
        edit(&mut image);
        match load_image(&image) {
            Err(LoadError::InvalidGraph { reason, .. }) => assert!(!reason.is_empty()),
            Err(e) => panic!("{name}: expected an invalid graph, got {e}"),
            Ok(_) => panic!("{name}: an invalid graph was loaded"),
        }
    }
}

#[test]
fn payload_of_another_layout_is_refused() {
    // A store of other types sealed with `Node`'s fingerprint: what a changed field layout under the same type name
    // looks like.
    #[derive(Serialize)]
    struct Other {
        names: Vec<String>,
        weight: f64,
    }
    let payload = postcard::to_stdvec(&Other {
        names: vec!["a".into(), "bb".into()],
        weight: 0.5,
    })
    .unwrap();
    let error = load_payload(&payload).expect_err("a foreign payload was loaded");
    assert!(
        matches!(
            error,
            LoadError::CorruptPayload { .. } | LoadError::InvalidGraph { .. } | LoadError::TrailingBytes { .. }
        ),
        "{error}"
    );
}

#[test]
fn payload_with_leftover_bytes_is_refused() {
    let mut payload = postcard::to_stdvec(&built_pie().store).unwrap();
    payload.push(0);
    assert!(matches!(
        load_payload(&payload),
        Err(LoadError::TrailingBytes { count: 1, .. })
    ));
}

fn file_path(file: u32) -> PathImage {
    PathImage(format!("/nonexistent-pie-test/{file}").into_bytes())
}

/// Rarely true: for the invalid cases among mostly valid images.
fn rarely() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.03)
}

/// A stamper with a stamp it makes; rarely a stamp of another stamper, or none.
fn arb_stamp() -> impl Strategy<Value = (FileStamper, Option<FileStamp>)> {
    prop_oneof![
        10 => any::<bool>().prop_map(|exists| (FileStamper::Exists, Some(FileStamp::Exists(exists)))),
        10 => Just((FileStamper::Modified, Some(FileStamp::Modified(None)))),
        10 => Just((FileStamper::Hash, Some(FileStamp::Hash(None)))),
        1 => Just((FileStamper::Hash, None)),
        1 => Just((FileStamper::Modified, Some(FileStamp::Exists(true)))),
    ]
}

/// A dependency of task `index` of `tasks` over `files` files: mostly on a task ordered before it (rarely on any id,
/// even out of range) or on a file.
fn arb_dep(index: u32, tasks: u32, files: u32) -> impl Strategy<Value = DepImage> {
    let earlier = if index == 0 { 0..tasks + 2 } else { 0..index };
    let task = prop_oneof![39 => earlier, 1 => 0..tasks + 2];
    let task_dep = (
        task,
        prop_oneof![Just(OutputStamper::Equals), Just(OutputStamper::Inconsequential)],
        // `Group::Alone`, `First` or `Member`, in any order (a check takes what it finds as a group).
        0u8..3,
        0u64..12,
    )
        .prop_map(|(task, stamper, group, version)| TaskDepImage {
            task,
            stamper,
            group,
            version,
        });
    let task_weight = if index == 0 { 1 } else { 10 };
    prop_oneof![
        task_weight => task_dep.prop_map(DepImage::RequireTask),
        10 => arb_file_dep(files).prop_map(DepImage::RequireFile),
        10 => arb_file_dep(files).prop_map(DepImage::ProvideFile),
    ]
}

/// A dependency on an existing file (rarely one past the last).
fn arb_file_dep(files: u32) -> impl Strategy<Value = FileDepImage> {
    let file = prop_oneof![39 => 0..files, 1 => 0..files + 1];
    (file, arb_stamp()).prop_map(|(file, (stamper, stamp))| FileDepImage { file, stamper, stamp })
}

/// A task's record: mostly with an output, ordered by its index (rarely anywhere below `tasks`).
fn arb_task(index: u32, tasks: u32, files: u32) -> impl Strategy<Value = (bool, TaskImage)> {
    (
        any::<bool>(),
        prop::option::weighted(0.8, 0u64..100),
        0u64..12,
        prop_oneof![49 => Just(u64::from(index)), 1 => 0..u64::from(tasks)],
        any::<bool>(),
        prop::collection::vec(arb_dep(index, tasks, files), 0..4),
    )
        .prop_map(|(probe, output, version, order, root, deps)| {
            (
                probe,
                TaskImage {
                    output,
                    version,
                    order,
                    root,
                    deps,
                },
            )
        })
}

/// A counter: mostly the one a store of `tasks` tasks would have, rarely any value up to `u64::MAX`.
fn arb_counter(usual: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        40 => Just(usual),
        1 => 0..usual,
        // Builds move a counter a few steps: stay below the limit that `Store::validate` checks in memory too.
        1 => (0u64..3).prop_map(|below| u64::MAX / 2 - 1000 - below),
        1 => (0u64..3).prop_map(|above| u64::MAX / 2 + 1 + above),
        1 => (0u64..3).prop_map(|below| u64::MAX - below),
    ]
}

/// A mostly valid image of 1 to 11 tasks over 1 to 4 files. Tasks are leaves or probes of one of the files (a
/// probe requires its file, so that builds run the soundness checks against the image's dependencies); a file
/// has at most one provider unless rarely so. The invalid cases are rare, so that most images load and build.
fn arb_image() -> impl Strategy<Value = StoreImage> {
    (1u32..12, 1u32..5)
        .prop_flat_map(|(tasks, files)| {
            (
                (0..tasks)
                    .map(|index| arb_task(index, tasks, files))
                    .collect::<Vec<_>>(),
                Just(files),
                (0u64..3).prop_map(move |extra| u64::from(tasks) + extra),
                arb_counter(12),
                rarely(),
            )
        })
        .prop_flat_map(|(records, files, next_order, next_version, shared_providers)| {
            (
                Just(records),
                Just(files),
                arb_counter(next_order),
                Just(next_version),
                Just(shared_providers),
            )
        })
        .prop_map(|(records, files, next_order, next_version, shared_providers)| {
            let mut provided = vec![false; files as usize + 1];
            let mut probed = vec![false; files as usize];
            let mut image = StoreImage {
                tasks: Vec::new(),
                task_data: Vec::new(),
                files: (0..files).map(file_path).collect(),
                next_order,
                next_version,
                settled: shared_providers,
            };
            for (index, (probe, mut record)) in records.into_iter().enumerate() {
                let file = index % files as usize;
                let task = if probe && !probed[file] {
                    probed[file] = true;
                    Node::Probe(PathBuf::from(format!("/nonexistent-pie-test/{file}")))
                } else {
                    Node::Leaf(index as u32)
                };
                record.deps.retain(|dep| match dep {
                    DepImage::ProvideFile(d) => {
                        !std::mem::replace(&mut provided[d.file as usize], true) || shared_providers
                    }
                    _ => true,
                });
                image.tasks.push(task);
                image.task_data.push(record);
            }
            image
        })
}

/// Whether a panic's message is one of the soundness violations that pie reports by panicking. A store whose
/// graph is valid can still claim that a task provides a file that another reads without requiring it: pie cannot
/// tell such a claim from a true one, and builds after it as after the build that made it.
fn is_soundness_violation(message: &str) -> bool {
    [
        "Overlapping provided file",
        "Hidden dependency",
        "Cyclic task dependency",
    ]
    .iter()
    .any(|prefix| message.starts_with(prefix))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Loads `payload` with a valid header; when it loads, building every task must work without any panic but a
/// soundness violation (probes read files that the image may say another task provides), after which the `Pie` must
/// still hold a valid store.
fn load_and_build(payload: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(mut pie) = load_payload(payload) {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| build_everything(&mut pie))) {
            let message = panic_message(&*payload);
            prop_assert!(
                is_soundness_violation(&message),
                "a loaded store made the build panic: {}",
                message
            );
            pie.check_invariants();
        }
    }
    Ok(())
}

#[test]
fn counters_without_headroom_are_refused() {
    for (next_order, next_version) in [(u64::MAX, 2), (4, u64::MAX), (u64::MAX / 2 + 1, 2), (4, 0)] {
        let image = StoreImage {
            next_order,
            next_version,
            ..valid_image()
        };
        match load_image(&image) {
            Err(LoadError::InvalidGraph { reason, .. }) => assert!(reason.contains("counters"), "{reason}"),
            Err(e) => panic!("counters {next_order}, {next_version}: expected an invalid graph, got {e}"),
            Ok(_) => panic!("counters {next_order}, {next_version}: loaded"),
        }
    }
    // Just below the limit, a store loads, and builds that create tasks and outputs do not overflow.
    let mut image = valid_image();
    image.next_order = u64::MAX / 2 - 100;
    image.next_version = u64::MAX / 2 - 100;
    image.task_data[3].order = u64::MAX / 2 - 101;
    let mut pie = load_image(&image).unwrap();
    build_everything(&mut pie);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_with_valid_checksums_never_panic(image in arb_image()) {
        load_and_build(&postcard::to_stdvec(&image).unwrap())?;
    }

    #[test]
    fn mutated_payloads_with_valid_checksums_never_panic(
        image in arb_image(),
        edits in prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop_oneof![
                    any::<u8>().prop_map(Edit::Replace),
                    any::<u8>().prop_map(Edit::Insert),
                    Just(Edit::Remove),
                ],
            ),
            1..4,
        ),
    ) {
        let mut payload = postcard::to_stdvec(&image).unwrap();
        for (index, edit) in edits {
            match edit {
                Edit::Replace(byte) => {
                    let i = index.index(payload.len());
                    payload[i] = byte;
                }
                Edit::Insert(byte) => payload.insert(index.index(payload.len() + 1), byte),
                Edit::Remove => {
                    if payload.len() > 1 {
                        payload.remove(index.index(payload.len()));
                    }
                }
            }
        }
        load_and_build(&payload)?;
    }
}

/// An edit of one byte of a payload.
#[derive(Clone, Debug)]
enum Edit {
    Replace(u8),
    Insert(u8),
    Remove,
}
