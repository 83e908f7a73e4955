//! `HashMap<String, V>` entries by `&str`. `map.entry(key.to_owned())` allocates a String on every call
//! even when the key is there; on hot paths (every delivery queued, every record scanned at start) the
//! key is nearly always there.

use std::collections::HashMap;

/// `map[key]`, inserted as `V::default()` first if missing; allocates the key only then.
pub fn entry<'a, V: Default>(map: &'a mut HashMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}
