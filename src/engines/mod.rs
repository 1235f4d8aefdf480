//! Engines every node runs besides the Router, the Transport and the Identity Store.

pub mod ping;
