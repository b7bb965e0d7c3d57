//! Assets: the rows that track each upload from queued to ready, their queries, and the
//! per-tenant quotas on what a tenant stores (`quota`).

pub mod quota;
mod repository;
pub mod watch;

pub use repository::{AssetRow, Assets, ListFilter, NewAsset, Stage, Status};
