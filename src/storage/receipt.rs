//! Storage receipts ([`ChunkCommitment`]): defined with the wire types
//! ([`crate::wire::receipt`]), since Storage messages and local mail carry them; re-exported
//! here, where storage code looks for them.

pub use crate::wire::receipt::*;
