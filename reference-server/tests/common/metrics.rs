//! Metric values a test can trust while other tests run in the same process.
//!
//! The server records through the `metrics` facade, whose global recorder the whole test
//! process shares: a name on `/metrics` can come from any test. [`isolated`] runs a test
//! on a thread and runtime of its own with a fresh Prometheus recorder installed for that
//! thread only, so every value the test reads from [`Recorder::scrape`] was recorded by
//! that test. [`Scrape`] also reads a `/metrics` body, for the exposition tests (which use
//! label values no other test produces, and compare values before and after).

use std::future::Future;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The recorder of one [`isolated`] test.
#[derive(Clone)]
pub struct Recorder(PrometheusHandle);

impl Recorder {
    /// Everything recorded so far by this test, in the Prometheus text format.
    pub fn scrape(&self) -> Scrape {
        Scrape::parse(&self.0.render())
    }
}

/// Runs `test` on a thread of its own (a current-thread runtime, so every task it spawns
/// runs there too) with a fresh recorder, and returns what it returns. Panics of the test
/// are passed on.
pub async fn isolated<T, Fut>(test: impl FnOnce(Recorder) -> Fut + Send + 'static) -> T
where
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let thread = std::thread::spawn(move || {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = Recorder(recorder.handle());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test");
        metrics::with_local_recorder(&recorder, || runtime.block_on(test(handle)))
    });
    match tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("joining the test thread")
    {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// One sample of a scrape: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Parses the text format (`name{k="v",..} value` lines; comments skipped).
    #[track_caller]
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample: {l:?}")))
            .collect();
        Self(samples)
    }

    /// The sum of the samples named `name` whose labels include all of `labels`; 0 when
    /// there is none (a counter that was never incremented is not rendered).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether a sample named `name` with all of `labels` is rendered at all.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }
}

/// `name{k="v",...} value` or `name value`; label values may hold `{`, `}`, `,` and
/// escaped quotes.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        escaped => value.push(escaped),
                    },
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            rest = &after[end..];
        }
    }
    let value = rest.trim().split(' ').next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}
