//! The named conformance checks. Each takes a fresh, empty store and panics on a violation.
//!
//! One module per area; each check's one `///` line names the guarantee or trait method it
//! pins. [`conformance_suite!`](crate::conformance_suite) runs them all, and a test below
//! keeps its list in step with the checks defined here.

mod conflicts;
mod directory;
mod events;
mod idempotency;
mod inbox;
mod lists;
mod outbound;
mod outbox;
mod payment_events;
mod payments;
mod races;
mod racing;
mod requests;
mod schedules;
mod search;
mod status;
mod support;

pub use conflicts::*;
pub use directory::*;
pub use events::*;
pub use idempotency::*;
pub use inbox::*;
pub use lists::*;
pub use outbound::*;
pub use outbox::*;
pub use payment_events::*;
pub use payments::*;
pub use races::*;
pub use requests::*;
pub use schedules::*;
pub use search::*;
pub use status::*;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every `pub async fn` in `src/testing/checks/*.rs`, with the number of `///` lines
    /// right above it.
    fn defined_checks() -> Vec<(String, String, usize)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testing/checks");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("read the checks directory") {
            let path = entry.expect("directory entry").path();
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).expect("read a checks module");
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line.strip_prefix("pub async fn ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let docs = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| l.starts_with("///"))
                    .count();
                found.push((file.clone(), name, docs));
            }
        }
        found
    }

    #[test]
    fn the_suite_runs_every_check_and_only_checks() {
        let defined: BTreeSet<String> = defined_checks().into_iter().map(|(_, n, _)| n).collect();
        let listed: BTreeSet<String> = super::super::CHECK_NAMES
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            listed.len(),
            super::super::CHECK_NAMES.len(),
            "a check is listed twice in conformance_suite!"
        );
        let missing: Vec<_> = defined.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&defined).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "conformance_suite! (testing/mod.rs) misses {missing:?}; lists unknown {unknown:?}"
        );
    }

    #[test]
    fn every_check_has_one_doc_line() {
        let wrong: Vec<_> = defined_checks()
            .into_iter()
            .filter(|(_, _, docs)| *docs != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "each check needs exactly one `///` line naming what it pins: {wrong:#?}"
        );
    }
}
