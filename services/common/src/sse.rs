//! A Server-Sent Events parser for clients (the CLI, tests): feed it lines, get events, as
//! the EventSource rules say (comments skipped, multi-line data joined with '\n', the event
//! name defaults to "message").

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// Accumulates fields until a blank line dispatches the event.
#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    id: Option<String>,
    data: Vec<String>,
    retry: Option<u64>,
    buffer: String,
}

impl SseParser {
    /// Feeds raw body bytes (any split); returns the events completed by them.
    pub fn feed(&mut self, chunk: &str) -> Vec<SseEvent> {
        self.buffer.push_str(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=end).collect();
            if let Some(event) = self.line(line.trim_end_matches(['\n', '\r'])) {
                events.push(event);
            }
        }
        events
    }

    /// Feeds one line without its terminator.
    pub fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_none() {
                self.id = None;
                self.retry = None;
                return None;
            }
            return Some(SseEvent {
                event: self.event.take().unwrap_or_else(|| "message".into()),
                id: self.id.take(),
                data: std::mem::take(&mut self.data).join("\n"),
                retry: self.retry.take(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "retry" => self.retry = value.parse().ok(),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_arbitrary_chunking_and_comments() {
        let body = ": keep-alive\n\nevent: delta\ndata: {\"a\":1}\nid: 7\nretry: 3000\n\ndata: x\ndata: y\n\n";
        for split in 1..body.len() {
            let mut parser = SseParser::default();
            let mut events = parser.feed(&body[..split]);
            events.extend(parser.feed(&body[split..]));
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0].event, "delta");
            assert_eq!(events[0].id.as_deref(), Some("7"));
            assert_eq!(events[0].retry, Some(3000));
            assert_eq!(events[1].event, "message");
            assert_eq!(events[1].data, "x\ny");
        }
    }
}
