//! Ingestion: accepting assets, the durable job queue, and the runner that turns stored bytes
//! into searchable chunks.

pub mod accept;
pub mod chunker;
pub mod objects;
pub mod parse;
pub mod queue;
pub mod runner;
pub mod sniff;
pub mod spool;
