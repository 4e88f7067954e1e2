//! AMF0 decoding for RTMP commands and data messages, bounded in nesting depth and in
//! the number of values one message may hold.
//!
//! Strings borrow nothing: they are decoded into owned `String`s (invalid UTF-8 is
//! replaced, as the values are only read, never re-encoded). AMF3 values (marker 0x11)
//! are reported as unsupported: publishers send AMF0 inside AMF3-typed messages.

/// Deepest nesting of objects/arrays accepted.
pub const MAX_DEPTH: usize = 16;
/// Most values (scalars and containers, recursively) decoded from one message.
pub const MAX_VALUES: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    Reference(u16),
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    Date(f64),
    Unsupported,
    XmlDocument(String),
    TypedObject {
        class: String,
        properties: Vec<(String, Amf0Value)>,
    },
}

impl Amf0Value {
    /// The name of the value's AMF0 type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Amf0Value::Number(_) => "number",
            Amf0Value::Boolean(_) => "boolean",
            Amf0Value::String(_) => "string",
            Amf0Value::Object(_) => "object",
            Amf0Value::Null => "null",
            Amf0Value::Undefined => "undefined",
            Amf0Value::Reference(_) => "reference",
            Amf0Value::EcmaArray(_) => "ECMA array",
            Amf0Value::StrictArray(_) => "strict array",
            Amf0Value::Date(_) => "date",
            Amf0Value::Unsupported => "unsupported",
            Amf0Value::XmlDocument(_) => "XML document",
            Amf0Value::TypedObject { .. } => "typed object",
        }
    }

    /// The properties of an object-like value (object, ECMA array, typed object).
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            Amf0Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The property called `name` of an object-like value; the last one if repeated,
    /// as nginx-rtmp reads it (each occurrence overwrites the previous).
    pub fn property(&self, name: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Amf0Error {
    #[error("AMF0 {what} at message offset {offset} truncated")]
    Truncated { what: &'static str, offset: usize },
    #[error(
        "AMF0 {what} of {length} bytes at message offset {offset} runs past the end of the message ({remaining} bytes left)"
    )]
    LengthOverrun {
        what: &'static str,
        length: u64,
        offset: usize,
        remaining: usize,
    },
    #[error("AMF0 type marker {marker:#04x} at message offset {offset} is not supported")]
    UnsupportedMarker { marker: u8, offset: usize },
    #[error("AMF0 object end marker at message offset {offset} outside an object")]
    UnexpectedObjectEnd { offset: usize },
    #[error("AMF0 nesting deeper than {max} levels at message offset {offset}")]
    TooDeep { max: usize, offset: usize },
    #[error("more than {max} AMF0 values in one message (at message offset {offset})")]
    TooManyValues { max: usize, offset: usize },
}

const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_REFERENCE: u8 = 0x07;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0A;
const MARKER_DATE: u8 = 0x0B;
const MARKER_LONG_STRING: u8 = 0x0C;
const MARKER_UNSUPPORTED: u8 = 0x0D;
const MARKER_XML_DOCUMENT: u8 = 0x0F;
const MARKER_TYPED_OBJECT: u8 = 0x10;

/// A cursor over one message body. Offsets in errors are relative to `data`'s start
/// plus `base_offset` (the bytes the caller skipped, e.g. the AMF3 command prefix).
pub struct Amf0Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    base_offset: usize,
    values: usize,
}

impl<'a> Amf0Decoder<'a> {
    pub fn new(data: &'a [u8], base_offset: usize) -> Self {
        Amf0Decoder {
            data,
            pos: 0,
            base_offset,
            values: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Decodes the next value.
    pub fn next_value(&mut self) -> Result<Amf0Value, Amf0Error> {
        self.value(0)
    }

    /// Decodes a string without its type marker, as a shared-object message names its
    /// object.
    pub fn typeless_string(&mut self) -> Result<String, Amf0Error> {
        self.string_body(2, "shared object name")
    }

    /// Decodes every remaining value.
    pub fn remaining_values(&mut self) -> Result<Vec<Amf0Value>, Amf0Error> {
        let mut values = Vec::new();
        while !self.is_empty() {
            values.push(self.next_value()?);
        }
        Ok(values)
    }

    fn offset(&self) -> usize {
        self.base_offset + self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Amf0Error> {
        let remaining = self.data.len() - self.pos;
        if n > remaining {
            return Err(Amf0Error::Truncated {
                what,
                offset: self.offset(),
            });
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Amf0Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.take_array(what)?))
    }

    /// A string body whose length prefix is `prefix_len` bytes (2 or 4).
    fn string_body(&mut self, prefix_len: usize, what: &'static str) -> Result<String, Amf0Error> {
        let start = self.offset();
        let length = match prefix_len {
            2 => u64::from(u16::from_be_bytes(self.take_array(what)?)),
            _ => u64::from(u32::from_be_bytes(self.take_array(what)?)),
        };
        let remaining = self.data.len() - self.pos;
        let Some(length_usize) = usize::try_from(length).ok().filter(|&l| l <= remaining) else {
            return Err(Amf0Error::LengthOverrun {
                what,
                length,
                offset: start,
                remaining,
            });
        };
        let bytes = self.take(length_usize, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn count_value(&mut self) -> Result<(), Amf0Error> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooManyValues {
                max: MAX_VALUES,
                offset: self.offset(),
            });
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        self.count_value()?;
        let marker_offset = self.offset();
        let [marker] = self.take_array::<1>("type marker")?;
        Ok(match marker {
            MARKER_NUMBER => Amf0Value::Number(self.f64("number")?),
            MARKER_BOOLEAN => Amf0Value::Boolean(self.take_array::<1>("boolean")?[0] != 0),
            MARKER_STRING => Amf0Value::String(self.string_body(2, "string")?),
            MARKER_LONG_STRING => Amf0Value::String(self.string_body(4, "long string")?),
            MARKER_XML_DOCUMENT => Amf0Value::XmlDocument(self.string_body(4, "XML document")?),
            MARKER_NULL => Amf0Value::Null,
            MARKER_UNDEFINED => Amf0Value::Undefined,
            MARKER_UNSUPPORTED => Amf0Value::Unsupported,
            MARKER_REFERENCE => {
                Amf0Value::Reference(u16::from_be_bytes(self.take_array("reference")?))
            }
            MARKER_DATE => {
                let millis = self.f64("date")?;
                self.take(2, "date time zone")?;
                Amf0Value::Date(millis)
            }
            MARKER_OBJECT => Amf0Value::Object(self.properties_until_end(depth + 1)?),
            MARKER_TYPED_OBJECT => {
                let class = self.string_body(2, "typed object class name")?;
                Amf0Value::TypedObject {
                    class,
                    properties: self.properties_until_end(depth + 1)?,
                }
            }
            MARKER_ECMA_ARRAY => {
                // The count is only a hint (encoders get it wrong); the end marker rules.
                self.take(4, "ECMA array count")?;
                Amf0Value::EcmaArray(self.properties_until_end(depth + 1)?)
            }
            MARKER_STRICT_ARRAY => {
                let count = u32::from_be_bytes(self.take_array("strict array count")?);
                self.check_depth(depth + 1)?;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            MARKER_OBJECT_END => {
                return Err(Amf0Error::UnexpectedObjectEnd {
                    offset: marker_offset,
                });
            }
            _ => {
                return Err(Amf0Error::UnsupportedMarker {
                    marker,
                    offset: marker_offset,
                });
            }
        })
    }

    fn check_depth(&self, depth: usize) -> Result<(), Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep {
                max: MAX_DEPTH,
                offset: self.offset(),
            });
        }
        Ok(())
    }

    /// Name/value pairs up to the empty name followed by the object end marker.
    fn properties_until_end(
        &mut self,
        depth: usize,
    ) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        self.check_depth(depth)?;
        let mut properties = Vec::new();
        loop {
            let name = self.string_body(2, "property name")?;
            if name.is_empty() && self.data.get(self.pos) == Some(&MARKER_OBJECT_END) {
                self.pos += 1;
                return Ok(properties);
            }
            let value = self.value(depth)?;
            properties.push((name, value));
        }
    }
}

#[cfg(test)]
pub(crate) mod encode {
    //! A minimal AMF0 encoder for building test messages.
    use super::Amf0Value;

    pub fn string_body(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn properties(out: &mut Vec<u8>, props: &[(String, Amf0Value)]) {
        for (name, value) in props {
            string_body(out, name);
            write(out, value);
        }
        out.extend_from_slice(&[0, 0, 0x09]);
    }

    pub fn write(out: &mut Vec<u8>, value: &Amf0Value) {
        match value {
            Amf0Value::Number(n) => {
                out.push(0x00);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf0Value::Boolean(b) => out.extend_from_slice(&[0x01, u8::from(*b)]),
            Amf0Value::String(s) => {
                out.push(0x02);
                string_body(out, s);
            }
            Amf0Value::Object(p) => {
                out.push(0x03);
                properties(out, p);
            }
            Amf0Value::Null => out.push(0x05),
            Amf0Value::Undefined => out.push(0x06),
            Amf0Value::Reference(r) => {
                out.push(0x07);
                out.extend_from_slice(&r.to_be_bytes());
            }
            Amf0Value::EcmaArray(p) => {
                out.push(0x08);
                out.extend_from_slice(&(p.len() as u32).to_be_bytes());
                properties(out, p);
            }
            Amf0Value::StrictArray(items) => {
                out.push(0x0A);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for item in items {
                    write(out, item);
                }
            }
            Amf0Value::Date(d) => {
                out.push(0x0B);
                out.extend_from_slice(&d.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Amf0Value::Unsupported => out.push(0x0D),
            Amf0Value::XmlDocument(s) => {
                out.push(0x0F);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Amf0Value::TypedObject {
                class,
                properties: p,
            } => {
                out.push(0x10);
                string_body(out, class);
                properties(out, p);
            }
        }
    }

    pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for value in values {
            write(&mut out, value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::encode::encode_all;
    use super::*;

    fn decode(data: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
        Amf0Decoder::new(data, 0).remaining_values()
    }

    #[test]
    fn round_trips_every_type() {
        let values = vec![
            Amf0Value::Number(1.5),
            Amf0Value::Boolean(true),
            Amf0Value::String("héllo".into()),
            Amf0Value::Object(vec![
                ("a".into(), Amf0Value::Null),
                ("".into(), Amf0Value::Undefined),
            ]),
            Amf0Value::Reference(7),
            Amf0Value::EcmaArray(vec![("w".into(), Amf0Value::Number(160.0))]),
            Amf0Value::StrictArray(vec![Amf0Value::String("hvc1".into())]),
            Amf0Value::Date(1e12),
            Amf0Value::Unsupported,
            Amf0Value::XmlDocument("<x/>".into()),
            Amf0Value::TypedObject {
                class: "C".into(),
                properties: vec![("k".into(), Amf0Value::Boolean(false))],
            },
        ];
        assert_eq!(decode(&encode_all(&values)).unwrap(), values);
    }

    #[test]
    fn long_string_decodes() {
        let mut data = vec![0x0C, 0, 0, 0, 3];
        data.extend_from_slice(b"abc");
        assert_eq!(
            decode(&data).unwrap(),
            vec![Amf0Value::String("abc".into())]
        );
    }

    #[test]
    fn truncated_string_names_its_offset() {
        // name "connect" then a number cut after 3 of its 8 bytes
        let mut data = encode_all(&[Amf0Value::String("connect".into())]);
        data.extend_from_slice(&[0x00, 1, 2, 3]);
        assert_eq!(
            decode(&data).unwrap_err(),
            Amf0Error::Truncated {
                what: "number",
                offset: 11
            }
        );
        let err = decode(&[0x02, 0x00]).unwrap_err();
        assert_eq!(err.to_string(), "AMF0 string at message offset 1 truncated");
    }

    #[test]
    fn absurd_long_string_length_is_rejected_without_allocating() {
        let err = decode(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']).unwrap_err();
        assert_eq!(
            err,
            Amf0Error::LengthOverrun {
                what: "long string",
                length: 0xFFFF_FFFF,
                offset: 1,
                remaining: 1
            }
        );
    }

    #[test]
    fn absurd_strict_array_count_is_bounded_by_the_data() {
        let err = decode(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05, 0x05]).unwrap_err();
        assert_eq!(
            err,
            Amf0Error::Truncated {
                what: "type marker",
                offset: 7
            }
        );
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let mut data = Vec::new();
        for _ in 0..=MAX_DEPTH {
            data.push(0x03);
            data.extend_from_slice(&[0, 1, b'x']);
        }
        data.push(0x05);
        let err = decode(&data).unwrap_err();
        assert!(
            matches!(err, Amf0Error::TooDeep { max: MAX_DEPTH, .. }),
            "{err}"
        );
        let arrays: Vec<u8> = std::iter::repeat_n([0x0A, 0, 0, 0, 1], MAX_DEPTH + 1)
            .flatten()
            .collect();
        assert!(matches!(
            decode(&arrays).unwrap_err(),
            Amf0Error::TooDeep { .. }
        ));
    }

    #[test]
    fn too_many_values_are_rejected() {
        let data = vec![0x05; MAX_VALUES + 1];
        assert_eq!(
            decode(&data).unwrap_err(),
            Amf0Error::TooManyValues {
                max: MAX_VALUES,
                offset: MAX_VALUES
            }
        );
    }

    #[test]
    fn unknown_markers_and_stray_object_end_are_rejected() {
        assert_eq!(
            decode(&[0x05, 0x11, 0x00]).unwrap_err(),
            Amf0Error::UnsupportedMarker {
                marker: 0x11,
                offset: 1
            }
        );
        assert_eq!(
            decode(&[0x09]).unwrap_err(),
            Amf0Error::UnexpectedObjectEnd { offset: 0 }
        );
    }

    #[test]
    fn object_without_end_marker_is_truncated() {
        let data = [0x03, 0, 1, b'a', 0x05];
        assert_eq!(
            decode(&data).unwrap_err(),
            Amf0Error::Truncated {
                what: "property name",
                offset: 5
            }
        );
    }
}
