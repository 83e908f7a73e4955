//! What a reload changes: subscriptions added, removed or changed (by name), and the settings that only
//! take effect at start.

use std::collections::HashMap;

use crate::config::Config;

/// Subscription names, as the reload's log line reports them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SubscriptionChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl SubscriptionChanges {
    pub fn between(old: &Config, new: &Config) -> SubscriptionChanges {
        let before: HashMap<&str, _> = old.subscriptions.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut changes = SubscriptionChanges::default();
        for subscription in &new.subscriptions {
            match before.get(subscription.name.as_str()) {
                None => changes.added.push(subscription.name.clone()),
                Some(previous) if **previous != *subscription => changes.changed.push(subscription.name.clone()),
                Some(_) => {}
            }
        }
        changes.removed =
            old.subscriptions.iter().filter(|s| new.subscription(&s.name).is_none()).map(|s| s.name.clone()).collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Puts the running values back into `new` for the settings a running relay cannot change (the database
/// and the listeners are opened once; the log subscriber is installed once), and names those that differ.
pub fn keep_start_only_settings(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut differing = Vec::new();
    let mut note = |name: &'static str, differs: bool| {
        if differs {
            differing.push(name);
        }
    };
    note("relay.state_dir", old.relay.state_dir != new.relay.state_dir);
    // The store opened with its keys; opening records under other keys means opening it again.
    note("relay.encryption_key", old.relay.keyring.ids() != new.relay.keyring.ids());
    note("ingest.unix_socket", old.ingest.unix_socket != new.ingest.unix_socket);
    note("ingest.socket_mode", old.ingest.socket_mode != new.ingest.socket_mode);
    note("ingest.http", old.ingest.http != new.ingest.http);
    note("log.format", old.log.format != new.log.format);
    note("log.level", old.log.level != new.log.level);
    new.relay.state_dir = old.relay.state_dir.clone();
    new.relay.keyring = old.relay.keyring.clone();
    new.ingest.unix_socket = old.ingest.unix_socket.clone();
    new.ingest.socket_mode = old.ingest.socket_mode;
    new.ingest.http = old.ingest.http;
    new.log = old.log.clone();
    differing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    const BASE: &str = "[relay]\nstate_dir = \"/var/lib/hookrelay\"\n[ingest]\nhttp = \"127.0.0.1:8787\"\n";

    fn subscription(name: &str, url: &str) -> String {
        format!("[[subscription]]\nname = \"{name}\"\nurl = \"{url}\"\nevents = [\"*\"]\nsignature = \"none\"\n")
    }

    #[test]
    fn subscriptions_are_compared_by_name_and_content() {
        let old = config(&format!(
            "{BASE}{}{}{}",
            subscription("kept", "https://a.example/"),
            subscription("moved", "https://b.example/"),
            subscription("gone", "https://c.example/")
        ));
        let new = config(&format!(
            "{BASE}{}{}{}",
            subscription("kept", "https://a.example/"),
            subscription("moved", "https://b2.example/"),
            subscription("fresh", "https://d.example/")
        ));
        let changes = SubscriptionChanges::between(&old, &new);
        assert_eq!(changes.added, ["fresh"]);
        assert_eq!(changes.removed, ["gone"]);
        assert_eq!(changes.changed, ["moved"]);
        assert!(SubscriptionChanges::between(&new, &new).is_empty());
    }

    #[test]
    fn start_only_settings_keep_their_running_values() {
        let old = config(BASE);
        let mut new = config(
            "[relay]\nstate_dir = \"/srv/other\"\nmax_pending = 5\n\
             encryption_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
             [ingest]\nhttp = \"127.0.0.1:9999\"\n[log]\nlevel = \"debug\"\n",
        );
        let differing = keep_start_only_settings(&old, &mut new);
        assert_eq!(differing, ["relay.state_dir", "relay.encryption_key", "ingest.http", "log.level"]);
        assert_eq!(new.relay.keyring.ids(), [], "the running store's keys stay");
        assert_eq!(new.relay.state_dir, old.relay.state_dir);
        assert_eq!(new.ingest.http, old.ingest.http);
        assert_eq!(new.log.level, old.log.level);
        assert_eq!(new.relay.max_pending, 5, "settings that can change live do");
    }
}
