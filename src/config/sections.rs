//! Reads the TOML document section by section, so that one broken section or subscription does not hide
//! the problems of the others, and reports every unknown key at its own position.
//!
//! Structs are deserialized with serde from each table separately; unknown keys are found by comparing the
//! table's keys with the field names serde knows for the struct (see [`field_names`]), which keeps the
//! list of accepted keys in one place: the struct definition.

use std::ops::Range;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use toml_edit::{Document, Item};

use super::diagnostic::Reporter;
use super::{mistyped, suggest};

/// A section that was read, with the span of its header (for problems about the section as a whole).
pub struct Section<T> {
    pub value: T,
    pub span: Option<Range<usize>>,
}

/// Parses the text as TOML, reporting a syntax error at its position.
pub fn parse_document(reporter: &mut Reporter<'_>, text: &str) -> Option<Document<String>> {
    match Document::parse(text.to_owned()) {
        Ok(document) => Some(document),
        Err(error) => {
            reporter.error(error.span(), format!("invalid TOML: {}", error.message().trim_end()));
            None
        }
    }
}

/// Reads `item` as the struct `T`, reporting unknown keys too. Returns `None` after reporting when it cannot.
pub fn read_section<T: DeserializeOwned>(reporter: &mut Reporter<'_>, what: &str, item: &Item) -> Option<Section<T>> {
    report_unknown_keys(reporter, what, item, &[field_names::<T>()]);
    read_table(reporter, what, item)
}

/// Reads `item` as the struct `T`; keys `T` does not know are ignored here (see [`report_unknown_keys`]).
/// A value of the wrong type is reported at the value, in the words of its key (see [`mistyped`]); the
/// table is then read again without that key, so that one run reports every such value. A table with any
/// of them yields `None`.
pub fn read_table<T: DeserializeOwned>(reporter: &mut Reporter<'_>, what: &str, item: &Item) -> Option<Section<T>> {
    let span = item.span();
    let Some(table) = item.as_table_like() else {
        reporter.error(span, format!("{what} must be a table"));
        return None;
    };
    let mut remaining = item.clone();
    let mut failed = false;
    // Each failed round removes a key, so there are at most as many rounds as keys, and one more.
    for _ in 0..=table.len() {
        let value = remaining.clone().into_value().ok()?;
        let error = match T::deserialize(value.into_deserializer()) {
            Ok(value) => return (!failed).then_some(Section { value, span }),
            Err(error) => error,
        };
        failed = true;
        let problem = mistyped::describe(what, &remaining, &error);
        reporter.error(problem.span.or_else(|| span.clone()), problem.message);
        let key = problem.key?;
        remaining.as_table_like_mut()?.remove(&key)?;
    }
    None
}

/// Reports each key of the table `item` that is in none of the `allowed` field lists, at the key itself,
/// with the known key it is likely a misspelling of, or else the list of known keys.
pub fn report_unknown_keys(reporter: &mut Reporter<'_>, what: &str, item: &Item, allowed: &[&[&str]]) {
    let Some(table) = item.as_table_like() else {
        return;
    };
    let allowed = || allowed.iter().copied().flatten().copied();
    for (name, _) in table.iter() {
        if allowed().any(|known| known == name) {
            continue;
        }
        let key_span = table.get_key_value(name).and_then(|(key, _)| key.span());
        reporter.error(key_span, unknown_key(name, what, allowed()));
    }
}

/// The message for the unknown key `name`: the known key it is likely a misspelling of (`did you mean
/// `events`?`), or else every known key.
pub fn unknown_key<'a>(name: &str, what: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    match suggest::closest(name, known.clone()) {
        Some(meant) => format!("unknown key `{name}` in {what}; did you mean `{meant}`?"),
        None => {
            let mut expected: Vec<&str> = known.collect();
            expected.sort_unstable();
            expected.dedup();
            format!("unknown key `{name}` in {what}; expected one of: {}", expected.join(", "))
        }
    }
}

/// The field names serde's derive knows for `T`, read by asking `T` to deserialize itself from a
/// deserializer that only records the list it is handed.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNameRecorder(&mut fields));
    fields
}

struct FieldNameRecorder<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNameRecorder<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names recorded"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Example {
        alpha: u32,
        beta: Option<String>,
    }

    #[test]
    fn field_names_come_from_the_struct_definition() {
        assert_eq!(field_names::<Example>(), &["alpha", "beta"]);
    }
}
