//! Property tests for the two parsers that read input the relay does not control (issue #5): the event
//! validator behind `POST /v1/events`, and the config loader. Neither may panic on any input; what they
//! accept must be what was meant; what they refuse must be refused with a message that points at it.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};

use hookrelay::config::{Config, Diagnostics};
use hookrelay::event::{parse_submission, MAX_DATA_DEPTH};
use hookrelay::json;

const EXAMPLE_CONFIG: &str = include_str!("../relay.example.toml");

/// Any JSON value, nested a few levels, with every kind of scalar (and awkward strings).
fn json_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[\\\\\"{}\\[\\] \t\n\u{7f}\u{1F600}]{0,12}".prop_map(Value::from),
    ];
    scalar.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn event_type() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,128}"
}

fn event_id() -> impl Strategy<Value = String> {
    "[!-~]{1,128}"
}

/// Loads config `text` from a file in a temp dir.
fn load(text: &str) -> Result<Config, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path)
}

/// Every diagnostic points inside the file (or, for whole-file problems, at no position).
fn assert_positions_inside(text: &str, diagnostics: &Diagnostics) {
    let lines: Vec<&str> = text.split('\n').collect();
    for diagnostic in &diagnostics.0 {
        assert!(!diagnostic.message.is_empty());
        if diagnostic.line == 0 {
            continue;
        }
        assert!(diagnostic.line <= lines.len(), "{diagnostic} is past the last line");
        let width = lines[diagnostic.line - 1].chars().count();
        assert!((1..=width + 1).contains(&diagnostic.column), "{diagnostic} is past the end of its line");
        assert!(diagnostic.file.ends_with(Path::new("relay.toml")));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_event_validator_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        match parse_submission(&body) {
            Ok(submission) => {
                for event in submission.events {
                    serde_json::from_str::<Value>(&event.data).expect("accepted data is valid JSON");
                }
            }
            // A short message that names the problem, never the body echoed back.
            Err(refused) => prop_assert!((1..300).contains(&refused.message.len()), "{}", refused.message),
        }
    }

    #[test]
    fn the_event_validator_never_panics_on_json_shaped_text(
        body in r#"[\[\]{}",:0-9a-z\\ ]{0,40}|\{"type":"[a-z.]{1,8}","data":[\[\]{}",:0-9a-z\\ ]{0,40}\}"#
    ) {
        if let Ok(submission) = parse_submission(body.as_bytes()) {
            for event in submission.events {
                serde_json::from_str::<Value>(&event.data).expect("accepted data is valid JSON");
            }
        }
    }

    #[test]
    fn a_valid_event_is_accepted_with_its_fields_and_compact_data(
        event_type in event_type(), id in event_id(), data in json_value(), pretty in any::<bool>()
    ) {
        let event = json!({ "type": event_type, "id": id, "data": data });
        let body = if pretty { serde_json::to_string_pretty(&event) } else { serde_json::to_string(&event) }.unwrap();
        let submission = parse_submission(body.as_bytes()).unwrap();
        prop_assert!(!submission.is_batch);
        let accepted = &submission.events[0];
        prop_assert_eq!(&accepted.event_type, &event_type);
        prop_assert_eq!(accepted.id.as_deref(), Some(id.as_str()));
        prop_assert_eq!(&accepted.data, &serde_json::to_string(&data).unwrap());
        // Whitespace is not part of the event: the same event written either way is the same event.
        let other_way = parse_submission(serde_json::to_string_pretty(&event).unwrap().as_bytes()).unwrap();
        prop_assert_eq!(&other_way.events[0].fingerprint, &accepted.fingerprint);
    }

    #[test]
    fn a_batch_is_accepted_whole_in_order(events in prop::collection::vec((event_type(), json_value()), 1..20)) {
        let body: Vec<Value> = events.iter().map(|(t, data)| json!({ "type": t, "data": data })).collect();
        let submission = parse_submission(serde_json::to_string(&body).unwrap().as_bytes()).unwrap();
        prop_assert!(submission.is_batch);
        let types: Vec<&str> = submission.events.iter().map(|e| e.event_type.as_str()).collect();
        let expected: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        prop_assert_eq!(types, expected);
    }

    #[test]
    fn one_bad_event_refuses_the_batch_and_names_its_index(
        events in prop::collection::vec(event_type(), 2..20), bad in any::<prop::sample::Index>()
    ) {
        let bad = bad.index(events.len());
        let body: Vec<Value> = events
            .iter()
            .enumerate()
            .map(|(i, t)| if i == bad { json!({ "type": t }) } else { json!({ "type": t, "data": i }) })
            .collect();
        let refused = parse_submission(serde_json::to_string(&body).unwrap().as_bytes()).unwrap_err();
        prop_assert_eq!(refused.message, format!("`[{bad}].data` is required"));
    }

    #[test]
    fn a_type_with_a_character_outside_the_set_is_refused_naming_type(
        prefix in "[a-z]{0,10}", foreign in "[^A-Za-z0-9._:-]", suffix in "[a-z]{0,10}"
    ) {
        let body = json!({ "type": format!("{prefix}{foreign}{suffix}"), "data": 1 }).to_string();
        let refused = parse_submission(body.as_bytes()).unwrap_err();
        prop_assert!(refused.message.starts_with("`type`"), "{}", refused.message);
    }

    #[test]
    fn data_is_accepted_up_to_the_depth_limit_and_refused_past_it(depth in 0..(2 * MAX_DATA_DEPTH)) {
        let data = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body = format!(r#"{{"type":"a","data":{}}}"#, if depth == 0 { "0" } else { &data });
        let parsed = parse_submission(body.as_bytes());
        prop_assert_eq!(parsed.is_ok(), depth <= MAX_DATA_DEPTH, "depth {}", depth);
        if let Ok(submission) = parsed {
            prop_assert_eq!(json::compact(&submission.events[0].data).depth, depth);
        }
    }
}

proptest! {
    // Each case writes a file and compiles a whole config: fewer, still enough to find panics.
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_config_loader_never_panics_on_any_text_and_points_inside_it(text in "(?s).{0,300}") {
        if let Err(diagnostics) = load(&text) {
            assert_positions_inside(&text, &diagnostics);
        }
    }

    #[test]
    fn the_config_loader_never_panics_on_a_damaged_example_and_points_inside_it(
        cut in any::<prop::sample::Index>(),
        length in 0usize..40,
        insert in r##"[\[\]{}="#,.:a-z0-9 \n]{0,12}"##,
    ) {
        let chars: Vec<char> = EXAMPLE_CONFIG.chars().collect();
        let start = cut.index(chars.len());
        let end = (start + length).min(chars.len());
        let text: String = chars[..start].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(&chars[end..]).collect();
        if let Err(diagnostics) = load(&text) {
            assert_positions_inside(&text, &diagnostics);
        }
    }

    #[test]
    fn an_unknown_key_in_any_table_is_reported_at_its_line(table in any::<prop::sample::Index>()) {
        let lines: Vec<&str> = EXAMPLE_CONFIG.lines().collect();
        let headers: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with('[')).collect();
        let header = headers[table.index(headers.len())];
        let mut edited: Vec<&str> = lines.clone();
        edited.insert(header + 1, "bogus_key = 1");
        let text = edited.join("\n");
        let diagnostics = load(&text).unwrap_err();
        prop_assert_eq!(diagnostics.0.len(), 1, "{}", diagnostics);
        prop_assert_eq!(diagnostics.0[0].line, header + 2, "{}", diagnostics);
        prop_assert!(diagnostics.0[0].message.contains("bogus_key"), "{}", diagnostics);
    }

    #[test]
    fn generated_subscriptions_load_in_order_and_route_their_events(
        names in prop::collection::btree_set("[a-z0-9_-]{1,16}", 1..6), event_type in event_type()
    ) {
        let mut text = String::from("[relay]\nstate_dir = \"state\"\n[ingest]\nunix_socket = \"relay.sock\"\n");
        for name in &names {
            text.push_str(&format!(
                "[[subscription]]\nname = \"{name}\"\nurl = \"https://{name}.example/hook\"\nevents = [\"{event_type}\"]\nsignature = \"none\"\n"
            ));
        }
        let config = load(&text).map_err(|d| TestCaseError::fail(d.to_string()))?;
        let loaded: Vec<&str> = config.subscriptions.iter().map(|s| s.name.as_str()).collect();
        let expected: Vec<&str> = names.iter().map(String::as_str).collect();
        prop_assert_eq!(&loaded, &expected);
        let mut routed = config.router.route(&event_type);
        routed.sort();
        prop_assert_eq!(routed, expected);
    }
}
