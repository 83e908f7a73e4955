//! Event type → subscriptions, compiled once per config into one glob matcher.
//!
//! Every `events` pattern of every subscription goes into a single `GlobSet`, so routing an event costs one
//! match however many subscriptions there are; `exclude` patterns are checked only for the candidates.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Compiles one pattern the way the spec defines them: `*` matches any run of characters, including `.`
/// and `:`; `?` one character; `{a,b}` alternatives.
pub fn compile_pattern(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(false).backslash_escape(true).build()
}

/// A subscription's patterns, ready to be combined into a [`Router`].
pub struct RouteSpec {
    pub name: String,
    pub events: Vec<Glob>,
    pub exclude: Vec<Glob>,
}

#[derive(Debug, Default)]
pub struct Router {
    names: Vec<String>,
    includes: GlobSet,
    /// For each pattern of `includes`, the index of its subscription.
    include_owner: Vec<usize>,
    excludes: Vec<GlobSet>,
}

impl Router {
    pub fn new(specs: Vec<RouteSpec>) -> Result<Router, globset::Error> {
        let mut includes = GlobSetBuilder::new();
        let mut include_owner = Vec::new();
        let mut excludes = Vec::with_capacity(specs.len());
        let mut names = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            for glob in spec.events {
                includes.add(glob);
                include_owner.push(index);
            }
            let mut exclude = GlobSetBuilder::new();
            for glob in spec.exclude {
                exclude.add(glob);
            }
            excludes.push(exclude.build()?);
            names.push(spec.name);
        }
        Ok(Router { names, includes: includes.build()?, include_owner, excludes })
    }

    /// Names of the subscriptions `event_type` goes to, in config order, each once.
    pub fn route(&self, event_type: &str) -> Vec<&str> {
        let mut matched: Vec<usize> = self
            .includes
            .matches(event_type)
            .into_iter()
            .map(|pattern| self.include_owner[pattern])
            .filter(|&owner| !self.excludes[owner].is_match(event_type))
            .collect();
        matched.sort_unstable();
        matched.dedup();
        matched.into_iter().map(|owner| self.names[owner].as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, events: &[&str], exclude: &[&str]) -> RouteSpec {
        RouteSpec {
            name: name.to_owned(),
            events: events.iter().map(|p| compile_pattern(p).unwrap()).collect(),
            exclude: exclude.iter().map(|p| compile_pattern(p).unwrap()).collect(),
        }
    }

    #[test]
    fn star_crosses_dots_and_colons() {
        let router = Router::new(vec![spec("all", &["*"], &[]), spec("orders", &["order*"], &[])]).unwrap();
        assert_eq!(router.route("order:shipped"), vec!["all", "orders"]);
        assert_eq!(router.route("a.b.c"), vec!["all"]);
    }

    #[test]
    fn exclude_wins_over_events_and_names_come_once() {
        let router = Router::new(vec![spec(
            "vetigen",
            &["appointment.*", "appointment.created", "lab.completed"],
            &["appointment.updated"],
        )])
        .unwrap();
        assert_eq!(router.route("appointment.created"), vec!["vetigen"]);
        assert!(router.route("appointment.updated").is_empty());
        assert!(router.route("soap.signed").is_empty());
    }

    #[test]
    fn question_mark_and_alternatives() {
        let router = Router::new(vec![spec("s", &["lab.{completed,cancelled}", "v?.x"], &[])]).unwrap();
        assert_eq!(router.route("lab.cancelled"), vec!["s"]);
        assert_eq!(router.route("v2.x"), vec!["s"]);
        assert!(router.route("v22.x").is_empty());
        assert!(router.route("lab.created").is_empty());
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(compile_pattern("appointment.{created").is_err());
        assert!(compile_pattern("[a-").is_err());
    }
}
