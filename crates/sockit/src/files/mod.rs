//! The file service (docs/protocol.md §3): the server side, its listings,
//! where partial uploads are kept, and the client.

pub mod client;
pub mod listing;
pub mod object;
pub mod object_service;
pub mod service;
pub mod staging;
pub mod storage;
pub mod store;
pub mod tree;

pub use client::{ClientConfig, FileClient, NoProgress, Progress, Transfer, TreeSummary};
pub use object_service::ObjectFileService;
pub use service::FileService;
pub use storage::Storage;
pub use store::{Access, FileServiceConfig, FileStore, Operation, Refusal};
