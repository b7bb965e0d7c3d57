//! Generated hostile input beyond the document parsers of `hostile_input_props.rs`: Markdown,
//! PDF tool output, metadata filters and page tokens.

mod filters;
mod markdown;
mod pdf;
mod wire;
