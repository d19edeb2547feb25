//! The offline queue: requests that must survive a cut link and a crash.
//!
//! - `store`: the SQLite file (WAL, `synchronous = FULL`), zstd payloads, the bound and its
//!   overflow policy, the integrity check at open.
//!
//! Built so far: the store. The sync loop, the `/v1/queue` API, the MCP tools and the router's
//! deferral are the rest of the offline-first issue; until they land nothing in the gateway
//! writes to the queue, and `[offline]` is reported as inactive at start-up.

mod store;

pub use store::{Depth, Entry, Overflow, Pending, Store, StoreError};
