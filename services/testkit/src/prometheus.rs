//! Reads a Prometheus/OpenMetrics text exposition, for tests that assert on scraped values.

use std::collections::BTreeSet;

/// One sample line: `name{label="value",…} number`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// `(family, type)` from the `# TYPE` lines.
    pub families: Vec<(String, String)>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    scrape.families.push((name.to_owned(), kind.to_owned()));
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(sample) = parse_sample(line) {
                scrape.samples.push(sample);
            }
        }
        scrape
    }

    /// Sum of the samples named `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The value of the one sample named `name` with (at least) `labels`, if present.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).map(|s| s.value).next()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// Every series name this exposition can produce, from its `# TYPE` lines: counters as
    /// `<family>_total`, histograms as `_bucket`, `_sum` and `_count`, gauges as themselves.
    pub fn series_names(&self) -> BTreeSet<String> {
        series_names(self.families.iter().map(|(f, k)| (f.as_str(), k.as_str())))
    }
}

/// The series names of metric families given as `(name, type)`: counters as
/// `<family>_total`, histograms as `_bucket`, `_sum` and `_count`, the rest as themselves.
pub fn series_names<'a>(
    families: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (family, kind) in families {
        match kind {
            "counter" => {
                names.insert(format!("{family}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
            _ => {
                names.insert(family.to_owned());
            }
        }
    }
    names
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.trim_matches('"').to_owned()))
        })
        .collect();
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Fetches and parses `url` (optionally with a bearer token).
pub async fn scrape(url: &str) -> Scrape {
    let response = reqwest::get(url).await.expect("cannot scrape metrics");
    assert!(
        response.status().is_success(),
        "scraping {url} answered {}",
        response.status()
    );
    Scrape::parse(&response.text().await.expect("metrics body"))
}

#[cfg(test)]
mod tests {
    use super::Scrape;

    #[test]
    fn samples_and_families_are_read() {
        let text = "# HELP x_total help\n# TYPE x counter\nx_total{a=\"1\",b=\"two\"} 3\n\
                    # TYPE h histogram\nh_count{route=\"/a/{id}\"} 2.5\n# EOF\n";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.value("x_total", &[("b", "two")]), Some(3.0));
        assert_eq!(scrape.sum("h_count", &[("route", "/a/{id}")]), 2.5);
        assert!(scrape.series_names().contains("h_bucket"));
        assert!(scrape.series_names().contains("x_total"));
    }
}
