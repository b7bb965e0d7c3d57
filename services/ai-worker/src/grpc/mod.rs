//! The tonic adapter: takes requests apart, calls the domain, converts results.

mod chat;
mod convert;
mod embeddings;
mod search_convert;
mod service;
mod uploads;

pub use service::AiWorkerService;
