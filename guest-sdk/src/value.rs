//! Conversions and accessors for profile attribute values.

use std::fmt::Write as _;

use crate::{Scalar, Value};

impl Value {
    /// The text, when this value is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The boolean, when this value is a JSON `true` / `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, when this value is a JSON integer in the signed 64-bit range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, when this value is any JSON number (an integer is widened).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            // Widening is what a JSON reader does too; precision loss above 2^53 is accepted.
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The items, when this value is an array of scalars.
    pub fn as_array(&self) -> Option<&[Scalar]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this value is JSON `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A value sent to Okta as the given JSON text, verbatim.
    ///
    /// The host rejects the whole answer if `text` is not valid JSON.
    pub fn json(text: impl Into<String>) -> Self {
        Value::Json(text.into())
    }

    /// Renders this value as compact JSON text.
    ///
    /// Deterministic, so it can be hashed: strings are escaped the way
    /// `serde_json` does, floats use Rust's shortest round-trip form (non-finite
    /// floats, which JSON cannot carry, render as `null`), and a `json` value
    /// is its text as is.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Integer(i) => push_display(out, i),
            Value::Float(f) => write_float(out, *f),
            Value::Text(text) => write_json_string(out, text),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Json(text) => out.push_str(text),
        }
    }
}

impl Scalar {
    /// The text, when this scalar is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }

    /// Renders this scalar as compact JSON text (see [`Value::to_json`]).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Scalar::Null => out.push_str("null"),
            Scalar::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            Scalar::Integer(i) => push_display(out, i),
            Scalar::Float(f) => write_float(out, *f),
            Scalar::Text(text) => write_json_string(out, text),
        }
    }
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    // Writing into a String cannot fail.
    let _ = write!(out, "{value}");
}

fn write_float(out: &mut String, f: f64) {
    if f.is_finite() {
        push_display(out, f);
    } else {
        out.push_str("null");
    }
}

/// Writes `text` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(text.clone())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Integer(i.into())
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Integer(i.into())
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<Vec<Scalar>> for Value {
    fn from(items: Vec<Scalar>) -> Self {
        Value::Array(items)
    }
}

impl From<Scalar> for Value {
    fn from(scalar: Scalar) -> Self {
        match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Boolean(b),
            Scalar::Integer(i) => Value::Integer(i),
            Scalar::Float(f) => Value::Float(f),
            Scalar::Text(text) => Value::Text(text),
        }
    }
}

/// `None` becomes JSON `null`, which is how Okta clears an attribute.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl From<&str> for Scalar {
    fn from(text: &str) -> Self {
        Scalar::Text(text.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(text: String) -> Self {
        Scalar::Text(text)
    }
}

impl From<bool> for Scalar {
    fn from(b: bool) -> Self {
        Scalar::Boolean(b)
    }
}

impl From<i64> for Scalar {
    fn from(i: i64) -> Self {
        Scalar::Integer(i)
    }
}

impl From<f64> for Scalar {
    fn from(f: f64) -> Self {
        Scalar::Float(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Value::from("a@b.c"), Value::Text("a@b.c".into()));
        assert_eq!(Value::from(String::from("x")), Value::Text("x".into()));
        assert_eq!(Value::from(true), Value::Boolean(true));
        assert_eq!(Value::from(-3_i64), Value::Integer(-3));
        assert_eq!(Value::from(7_i32), Value::Integer(7));
        assert_eq!(Value::from(1.5), Value::Float(1.5));
        assert_eq!(Value::from(None::<&str>), Value::Null);
        assert_eq!(Value::from(Some("y")), Value::Text("y".into()));
        assert_eq!(
            Value::from(vec![Scalar::from("a"), Scalar::from(1_i64)]),
            Value::Array(vec![Scalar::Text("a".into()), Scalar::Integer(1)])
        );
        assert_eq!(Value::json("{}"), Value::Json("{}".into()));
    }

    #[test]
    fn accessors() {
        assert_eq!(Value::from("t").as_str(), Some("t"));
        assert_eq!(Value::Null.as_str(), None);
        assert_eq!(Value::Integer(1).as_str(), None);
        assert_eq!(Value::Integer(2).as_f64(), Some(2.0));
        assert_eq!(Value::Boolean(false).as_bool(), Some(false));
        assert!(Value::Null.is_null());
        assert_eq!(Value::Array(vec![]).as_array(), Some(&[][..]));
    }

    #[test]
    fn json_rendering() {
        let value = Value::Array(vec![
            Scalar::Null,
            Scalar::Boolean(true),
            Scalar::Integer(-1),
            Scalar::Float(0.5),
            Scalar::Float(f64::NAN),
            Scalar::Text("a\"b\\c\n\u{1}é".into()),
        ]);
        assert_eq!(
            value.to_json(),
            r#"[null,true,-1,0.5,null,"a\"b\\c\n\u0001é"]"#
        );
        assert_eq!(Value::json(r#"{"a":1}"#).to_json(), r#"{"a":1}"#);
        assert_eq!(Value::Float(1.0).to_json(), "1");
    }
}
