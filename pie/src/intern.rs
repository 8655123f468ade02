//! Interning: a dense `u32` id for each distinct value, found with one hash lookup, the value stored once.
//!
//! The store names tasks and files by these ids. [`Interner`] keeps values in a `Vec` (the id is the index) and a
//! hash table of ids, hashing each value once per lookup and never storing its hash (a value is re-hashed only
//! when the table grows). [`PathInterner`] does the same for file paths but keeps their bytes in one buffer, so
//! a file costs its path's bytes plus 4, instead of a `PathBuf` and a heap allocation.
//!
//! Invariants: ids are `0..len()` in insertion order and never change; a value is present at most once. Both
//! serialise as the sequence of their values (the same form as an `indexmap::IndexSet`); deserialising keeps
//! the first of duplicates, as `IndexSet` does, so that the store's validation sees tables of different lengths
//! and refuses the file.

use std::ffi::OsStr;
use std::fmt::{self, Debug};
use std::hash::{BuildHasher, Hash};
use std::path::Path;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Values with dense ids.
#[derive(Clone)]
pub(crate) struct Interner<T> {
    values: Vec<T>,
    table: HashTable<u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            table: HashTable::new(),
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// An empty interner with room for `capacity` values (used when loading or collecting a store).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            values: Vec::with_capacity(capacity),
            table: HashTable::with_capacity(capacity),
        }
    }

    /// Number of values.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The value with id `id`.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&T> {
        self.values.get(id as usize)
    }

    /// The id of `value`, adding a clone of it when it is new; whether it was added. When it is new and the storage
    /// is full, makes room for `room` values at once (at least doubling, as one more value would), so that a caller
    /// about to add many values re-hashes the table once, not at every doubling.
    #[inline]
    pub(crate) fn intern_cloned(&mut self, value: &T, room: usize) -> (u32, bool)
    where
        T: Clone,
    {
        let hash = FxBuildHasher.hash_one(value);
        if let Some(id) = self.table.find(hash, |id| self.values[*id as usize] == *value) {
            return (*id, false);
        }
        if self.table.len() == self.table.capacity() || self.values.len() == self.values.capacity() {
            self.grow(room);
        }
        (self.insert_new(hash, value.clone()), true)
    }

    /// Makes room for `room` more values (the storage is full).
    #[cold]
    #[inline(never)]
    fn grow(&mut self, room: usize) {
        let values = &self.values;
        self.table
            .reserve(room, |id| FxBuildHasher.hash_one(&values[*id as usize]));
        self.values.reserve(room);
    }

    /// The id of `value`, if it was interned.
    #[inline]
    pub(crate) fn find(&self, value: &T) -> Option<u32> {
        let hash = FxBuildHasher.hash_one(value);
        self.table.find(hash, |id| self.values[*id as usize] == *value).copied()
    }

    /// The values in id order, consuming the interner.
    pub(crate) fn into_values(self) -> Vec<T> {
        self.values
    }

    /// The id of `value`, adding it when it is new; whether it was added.
    pub(crate) fn intern(&mut self, value: T) -> (u32, bool) {
        let hash = FxBuildHasher.hash_one(&value);
        if let Some(id) = self.table.find(hash, |id| self.values[*id as usize] == value) {
            return (*id, false);
        }
        (self.insert_new(hash, value), true)
    }

    fn insert_new(&mut self, hash: u64, value: T) -> u32 {
        let id = u32::try_from(self.values.len())
            .ok()
            .filter(|id| *id < u32::MAX)
            .expect("BUG: more than u32::MAX interned values");
        let values = &self.values;
        self.table
            .insert_unique(hash, id, |id| FxBuildHasher.hash_one(&values[*id as usize]));
        self.values.push(value);
        id
    }
}

impl<T: Debug> Debug for Interner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.values).finish()
    }
}

/// File paths in a list, their bytes kept in one buffer: a path costs its bytes plus 4, not a `PathBuf`.
#[derive(Clone, Default)]
pub(crate) struct PathList {
    /// The encoded bytes of every path, one after the other.
    bytes: Vec<u8>,
    /// `ends[i]`: where path `i` ends in `bytes` (it starts where the previous one ends).
    ends: Vec<u32>,
}

impl PathList {
    /// An empty list with room for `capacity` paths.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::new(),
            ends: Vec::with_capacity(capacity),
        }
    }

    /// Number of paths.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    #[inline]
    fn encoded(&self, index: u32) -> Option<&[u8]> {
        let end = *self.ends.get(index as usize)? as usize;
        let start = match index {
            0 => 0,
            _ => self.ends[index as usize - 1] as usize,
        };
        Some(&self.bytes[start..end])
    }

    /// The path at `index`.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Path> {
        // SAFETY: the bytes between two ends are exactly the `as_encoded_bytes` of one `OsStr` that was pushed.
        self.encoded(index)
            .map(|bytes| Path::new(unsafe { OsStr::from_encoded_bytes_unchecked(bytes) }))
    }

    /// Appends `path`; its index is the length before.
    ///
    /// # Panics
    /// When the list would hold more than 4 GiB of paths.
    pub(crate) fn push(&mut self, path: &Path) {
        let key = path.as_os_str().as_encoded_bytes();
        let end = u32::try_from(self.bytes.len() + key.len()).expect("more than 4 GiB of file paths in one store");
        self.bytes.extend_from_slice(key);
        self.ends.push(end);
    }
}

/// How the table of a [`PathInterner`] hashes an id again when it grows: by the path's bytes in `list`.
fn rehash(list: &PathList) -> impl Fn(&u32) -> u64 + '_ {
    |id| FxBuildHasher.hash_one(list.encoded(*id).unwrap_or_default())
}

/// Normalised file paths with dense ids, their bytes kept in one buffer.
#[derive(Clone, Default)]
pub(crate) struct PathInterner {
    /// The paths, in id order.
    list: PathList,
    table: HashTable<u32>,
}

impl PathInterner {
    /// An empty interner with room for `capacity` paths (used when loading or collecting a store).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            list: PathList::with_capacity(capacity),
            table: HashTable::with_capacity(capacity),
        }
    }

    /// Number of paths.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The path with id `id`.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&Path> {
        self.list.get(id)
    }

    /// The paths in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Path> + '_ {
        (0..self.len() as u32).filter_map(|id| self.get(id))
    }

    /// Makes room for `count` more paths at once (bytes as many as the paths so far average, or 64 each), so that
    /// adding them re-hashes and moves nothing.
    pub(crate) fn reserve(&mut self, count: usize) {
        let Self { list, table } = self;
        let average = list.bytes.len().checked_div(list.len()).unwrap_or(64).max(1);
        list.ends.reserve(count);
        list.bytes.reserve(count.saturating_mul(average));
        table.reserve(count, rehash(list));
    }

    /// The id of `path`, if it was interned.
    pub(crate) fn find(&self, path: &Path) -> Option<u32> {
        let key = path.as_os_str().as_encoded_bytes();
        let hash = FxBuildHasher.hash_one(key);
        self.table.find(hash, |id| self.list.encoded(*id) == Some(key)).copied()
    }

    /// The id of `path`, adding it when it is new; whether it was added.
    pub(crate) fn intern(&mut self, path: &Path) -> (u32, bool) {
        let key = path.as_os_str().as_encoded_bytes();
        let hash = FxBuildHasher.hash_one(key);
        if let Some(id) = self.table.find(hash, |id| self.list.encoded(*id) == Some(key)) {
            return (*id, false);
        }
        let id = u32::try_from(self.list.len())
            .ok()
            .filter(|id| *id < u32::MAX)
            .expect("BUG: more than u32::MAX files");
        let Self { list, table } = self;
        list.push(path);
        table.insert_unique(hash, id, rehash(list));
        (id, true)
    }
}

impl Debug for PathInterner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use std::fmt;
    use std::hash::Hash;
    use std::marker::PhantomData;

    use serde::de::{SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Interner, PathInterner};
    use crate::path::NormalPath;

    /// Room for the announced number of values, but no more than a million up front: the announcement comes from
    /// a file, which may be corrupt.
    fn capacity_hint(hint: Option<usize>) -> usize {
        hint.unwrap_or(0).min(1 << 20)
    }

    impl<T: Serialize> Serialize for Interner<T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(&self.values)
        }
    }

    impl<'de, T: Deserialize<'de> + Hash + Eq> Deserialize<'de> for Interner<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Values<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de> + Hash + Eq> Visitor<'de> for Values<T> {
                type Value = Interner<T>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a sequence of distinct values")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut interner = Interner::with_capacity(capacity_hint(seq.size_hint()));
                    while let Some(value) = seq.next_element()? {
                        interner.intern(value);
                    }
                    Ok(interner)
                }
            }
            deserializer.deserialize_seq(Values(PhantomData))
        }
    }

    impl Serialize for PathInterner {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.len()))?;
            for path in self.iter() {
                seq.serialize_element(&crate::path::SerializePath(path))?;
            }
            seq.end()
        }
    }

    impl<'de> Deserialize<'de> for PathInterner {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Paths;
            impl<'de> Visitor<'de> for Paths {
                type Value = PathInterner;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a sequence of distinct paths")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut interner = PathInterner::with_capacity(capacity_hint(seq.size_hint()));
                    while let Some(path) = seq.next_element::<NormalPath>()? {
                        interner.intern(path.as_path());
                    }
                    Ok(interner)
                }
            }
            deserializer.deserialize_seq(Paths)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_stable() {
        let mut interner = Interner::default();
        assert_eq!(interner.intern_cloned(&"a", 1), (0, true));
        assert_eq!(interner.intern("b"), (1, true));
        assert_eq!(interner.intern_cloned(&"a", 1), (0, false));
        for i in 0..1000u32 {
            let value: &'static str = Box::leak(i.to_string().into_boxed_str());
            assert_eq!(interner.intern(value), (i + 2, true));
        }
        assert_eq!(interner.intern("b"), (1, false));
        assert_eq!(interner.get(2), Some(&"0"));
        assert_eq!(interner.len(), 1002);
    }

    #[test]
    fn paths_share_one_buffer_and_come_back_whole() {
        let mut paths = PathInterner::default();
        let names: Vec<String> = (0..1000).map(|i| format!("/dir/{i}/file")).collect();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(paths.intern(Path::new(name)), (i as u32, true));
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(paths.intern(Path::new(name)), (i as u32, false));
            assert_eq!(paths.get(i as u32), Some(Path::new(name)));
        }
        assert_eq!(paths.intern(Path::new("")), (1000, true));
        assert_eq!(paths.get(1000), Some(Path::new("")));
        assert_eq!(paths.get(1001), None);
        assert_eq!(paths.iter().count(), 1001);
    }

    /// A value that counts how often it is hashed.
    #[derive(Clone, PartialEq, Eq)]
    struct Counted(u32);

    thread_local! {
        static HASHES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    impl Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            HASHES.with(|h| h.set(h.get() + 1));
            self.0.hash(state);
        }
    }

    /// Hashes while interning `count` new values, each with room for the values still to come (or with room for
    /// one, as a single `intern_cloned` makes).
    fn hashes_interning(count: u32, with_room: bool) -> usize {
        let mut interner = Interner::default();
        HASHES.with(|h| h.set(0));
        for i in 0..count {
            let room = if with_room { (count - i) as usize } else { 1 };
            assert_eq!(interner.intern_cloned(&Counted(i), room), (i, true));
        }
        for i in 0..count {
            assert_eq!(interner.find(&Counted(i)), Some(i));
        }
        HASHES.with(|h| h.get()) - count as usize
    }

    #[test]
    fn room_for_the_rest_rehashes_the_table_once() {
        let count = 10_000;
        // One hash per value (and none re-hashing: the table grows once, while empty).
        assert_eq!(hashes_interning(count, true), count as usize);
        // A doubling at a time re-hashes the values already in the table at each growth.
        assert!(hashes_interning(count, false) > 3 * count as usize / 2);
    }

    #[test]
    fn an_existing_value_makes_no_room() {
        let mut interner = Interner::with_capacity(4);
        for i in 0..4 {
            interner.intern_cloned(&Counted(i), 1);
        }
        let capacity = interner.values.capacity();
        assert_eq!(interner.intern_cloned(&Counted(2), 1_000_000), (2, false));
        assert_eq!(interner.values.capacity(), capacity);
        assert_eq!(interner.intern_cloned(&Counted(4), 1_000), (4, true));
        assert!(interner.values.capacity() >= 1_004);
    }
}
