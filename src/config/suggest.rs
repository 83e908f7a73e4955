//! "Did you mean ...?": the known name closest to a misspelt one (`event` for `events`), by edit distance,
//! offered only when it is close enough to be what was meant.

/// The optimal string alignment distance between `a` and `b`, in characters: the fewest insertions,
/// deletions, substitutions and swaps of two neighbouring characters that turn one into the other (the
/// Damerau–Levenshtein distance, with no substring edited twice).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: i - 2, i - 1 and i.
    let mut before = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidate closest to `typed`, if it is close: at most one edit for names of up to 5 characters, two
/// for longer ones (a third of the length, never more than two), case ignored (`Timeout` → `timeout`).
/// Ties go to the candidate first in alphabetical order, so the answer never depends on the list's order.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    let allowed = (typed.chars().count() / 3).clamp(1, 2);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != typed)
        .map(|candidate| (distance(&typed_lower, &candidate.to_lowercase()), candidate))
        .filter(|(distance, _)| *distance <= allowed)
        .min()
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_swaps_of_neighbours_as_one() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("events", "events"), 0);
        assert_eq!(distance("event", "events"), 1);
        assert_eq!(distance("timout", "timeout"), 1);
        assert_eq!(distance("nmae", "name"), 1, "a swap is one edit");
        assert_eq!(distance("kitten", "sitting"), 3);
        // Optimal string alignment: a swapped pair is not edited again (full Damerau–Levenshtein says 2).
        assert_eq!(distance("ca", "abc"), 3);
        assert_eq!(distance("é", "e"), 1, "characters, not bytes");
    }

    #[test]
    fn distance_is_symmetric() {
        for (a, b) in [("event", "events"), ("nmae", "name"), ("colour", "source"), ("", "x")] {
            assert_eq!(distance(a, b), distance(b, a), "{a} / {b}");
        }
    }

    const SUBSCRIPTION_KEYS: &[&str] =
        &["name", "url", "events", "exclude", "secret", "headers", "enabled", "timeout", "retry", "signature"];

    #[test]
    fn a_close_name_is_suggested() {
        let keys = SUBSCRIPTION_KEYS.iter().copied();
        assert_eq!(closest("event", keys.clone()), Some("events"));
        assert_eq!(closest("nmae", keys.clone()), Some("name"));
        assert_eq!(closest("timout", keys.clone()), Some("timeout"));
        assert_eq!(closest("secrets", keys.clone()), Some("secret"));
        assert_eq!(closest("Timeout", keys.clone()), Some("timeout"), "case is ignored");
        assert_eq!(closest("stat_dir", ["state_dir", "source", "retention"]), Some("state_dir"));
        let sections = ["delivery", "ingest", "log", "relay", "subscription"];
        assert_eq!(closest("subscriptions", sections), Some("subscription"));
    }

    #[test]
    fn a_distant_name_gets_no_suggestion() {
        let relay = ["state_dir", "source", "retention", "max_pending", "encryption_key"];
        assert_eq!(closest("colour", relay), None);
        assert_eq!(closest("bogus_key", SUBSCRIPTION_KEYS.iter().copied()), None);
        // Short names allow one edit only: `id` is not `url`.
        assert_eq!(closest("id", SUBSCRIPTION_KEYS.iter().copied()), None);
        assert_eq!(closest("retires", SUBSCRIPTION_KEYS.iter().copied()), None);
        assert_eq!(closest("x", std::iter::empty()), None);
    }

    #[test]
    fn ties_go_to_the_first_in_alphabetical_order() {
        assert_eq!(closest("cat", ["cut", "bat"]), Some("bat"));
        assert_eq!(closest("cat", ["bat", "cut"]), Some("bat"));
    }

    #[test]
    fn the_name_itself_is_never_suggested() {
        assert_eq!(closest("events", ["events"]), None);
        assert_eq!(closest("events", ["events", "event"]), Some("event"));
    }
}
