//! Dense ids of the nodes of the dependency graph: tasks and files are interned (see `crate::intern`) and named by
//! their index everywhere else, so that recorded dependencies, reverse edges, marks and queues are a few bytes each.
//! In a module of their own so that the records of dependencies (`crate::dependency`) and the graph that holds them
//! (`crate::store`) can both name nodes without importing each other.

/// Dense id of a task node.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct TaskId(pub(crate) u32);

/// Dense id of a file node.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct FileId(pub(crate) u32);

impl TaskId {
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }

    /// The id as a bare integer (for compact keys).
    #[inline]
    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    /// The id of a bare integer from [`raw`](Self::raw).
    #[inline]
    pub(crate) fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    #[cfg(test)]
    pub(crate) fn for_test(index: u32) -> Self {
        Self(index)
    }
}
