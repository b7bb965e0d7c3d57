//! Assets: the rows that track each upload from queued to ready, and their queries.

mod repository;
pub mod watch;

pub use repository::{AssetRow, Assets, ListFilter, NewAsset, Stage, Status};
