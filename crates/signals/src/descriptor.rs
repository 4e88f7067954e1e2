//! Image descriptors and descriptor list files: L2-normalised vectors from an embedding
//! model (SSCD family), their int8 storage, and the text format lists are written in.
//!
//! # The descriptor list format (version 1)
//!
//! UTF-8 text, one record per line, `\n` or `\r\n` endings; blank lines and lines whose
//! first non-space character is `#` are ignored (a UTF-8 BOM before the first line too).
//!
//! **Header.** The first other line names the model that made every vector of the list:
//!
//! ```text
//! livegate-descriptors 1 model=sscd_distilled dim=512
//! ```
//!
//! `1` is the format version. `model=` is the model tag, 1 to 64 of `[A-Za-z0-9._-]`,
//! chosen by whoever configures the model (livegate's `[descriptor]` section names it);
//! `dim=` is the vector dimension, 1 to 4096. Further `key=value` tokens (no spaces) may
//! follow and are ignored by the reader (e.g. `input=320`, the size the CLI scaled frames
//! to). Two models' vectors are not comparable even at the same dimension (SSCD and its
//! distilled student are not), so a list is only loaded for an expected tag and
//! dimension: a different `model=` or `dim=` is an error naming `file:line` of the header.
//! The header may be repeated further down if it is identical (so `cat a.txt b.txt` of two
//! lists from one model is a valid list); a differing one is an error at its line.
//!
//! **Records.** Every later line is one descriptor with its metadata, comma-separated:
//!
//! ```text
//! VECTOR,SOURCE,PTS,LABEL
//! ```
//!
//! - `VECTOR`: standard base64 (RFC 4648 alphabet `A–Z a–z 0–9 + /`, `=` padding
//!   required) of exactly `dim` bytes, each a signed int8 component in −127..=127 (−128 is
//!   rejected; the range is symmetric), not all zero. For 512 dimensions that is 684
//!   characters. The vector stands for its direction only: cosine similarity ignores the
//!   scale, so none is stored. A float descriptor `x` is written as
//!   `q_j = round(127 · x_j / max_k |x_k|)`.
//! - `SOURCE` (may be empty): where the frame came from, e.g. a file name or stream id.
//! - `PTS` (may be empty): the frame's presentation time in seconds within the source, a
//!   finite decimal ≥ 0 (e.g. `12.500`); empty for a still image.
//! - `LABEL` (may be empty): free text, e.g. a case number.
//!
//! Trailing fields may be omitted (`VECTOR` alone is a valid record). In `SOURCE` and
//! `LABEL`, `%`, `,`, CR and LF are percent-encoded (`%25`, `%2C`, `%0D`, `%0A`) by the
//! writer and decoded by the reader; any other `%XX` (hex) is decoded too, a `%` not
//! followed by two hex digits is an error. Spaces around fields are kept (they may be part
//! of a name) except around `VECTOR` and `PTS`. More than four fields is an error.
//!
//! Duplicated vectors are kept (each is found by a search); records keep their file order
//! and a descriptor's id in a loaded list is its position among the records.
//!
//! **Why int8, not f32.** Four times smaller (684 base64 characters per 512-d record
//! instead of 2732: about 0.75 GB of text per million descriptors), and the file holds
//! exactly what the index holds in memory (512 bytes per descriptor), so reading is
//! bit-exact and the exact search's f32 yardstick scores the very vectors of the file.
//! Quantising to 127 steps of the largest component moves a 512-d unit vector by about
//! 0.01 (cosine to the original ≥ 0.9999), far below the gap between copies (≥ 0.7) and
//! unrelated pictures (0.02 ± 0.055).
//!
//! **Errors and caps.** A bad line is an error `file:line: what was wrong` (the field and
//! the problem). Loading is streaming (one line buffered at a time) under
//! [`DescriptorListLimits`]: the line length, the file size and the number of
//! descriptors are capped, each cap an error naming the file (and line).
//!
//! # API
//!
//! [`Descriptor`] is a model's output (f32, normalised on construction, NaN, infinite and
//! zero vectors rejected), used as a query; [`QuantizedDescriptor`] is the stored int8
//! form. [`DescriptorList::load`] reads a file for an expected [`DescriptorModel`] into
//! the [`DescriptorIndex`] and the entries' metadata (ids are positions);
//! [`DescriptorList::add_unless_near`] learns a descriptor at run time unless the list
//! already holds a near-identical one. [`write_header`] and [`write_record`] write lines
//! (the CLI uses them), [`DescriptorList::write`] a whole list.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use crate::descriptor_index::{CapacityError, DescriptorIndex};

/// Largest dimension a descriptor may have.
pub const MAX_DIM: usize = 4096;
/// Longest model tag.
pub const MAX_TAG_LEN: usize = 64;
/// The first token of a header line.
pub const HEADER_KEYWORD: &str = "livegate-descriptors";
/// The format version this module reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Why a vector is not a descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    #[error("{dim} dimensions, a descriptor has 1 to {MAX_DIM}")]
    BadDimension { dim: usize },
    #[error("component {index} is not finite")]
    NotFinite { index: usize },
    #[error("the zero vector has no direction")]
    Zero,
    #[error("component {index} is -128 (stored components are -127..=127)")]
    OutOfRange { index: usize },
}

/// A model's output: an L2-normalised f32 vector (the query side of a search).
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    values: Box<[f32]>,
}

impl Descriptor {
    /// Normalises `values` to unit length (the norm computed in f64, so tiny or huge
    /// finite vectors are fine); NaN, infinite and all-zero vectors are rejected.
    pub fn new(mut values: Vec<f32>) -> Result<Descriptor, DescriptorError> {
        check_dimension(values.len())?;
        if let Some(index) = values.iter().position(|value| !value.is_finite()) {
            return Err(DescriptorError::NotFinite { index });
        }
        let norm = values
            .iter()
            .map(|&value| f64::from(value) * f64::from(value))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(DescriptorError::Zero);
        }
        for value in &mut values {
            *value = (f64::from(*value) / norm) as f32;
        }
        Ok(Descriptor {
            values: values.into_boxed_slice(),
        })
    }

    pub fn dim(&self) -> usize {
        self.values.len()
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Cosine similarity (both are unit vectors; summed in f64).
    pub fn cosine(&self, other: &Descriptor) -> f32 {
        self.values
            .iter()
            .zip(other.values.iter())
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum::<f64>() as f32
    }

    /// The stored form: `round(127 · x / max |x|)` per component.
    pub fn quantize(&self) -> QuantizedDescriptor {
        let largest = self
            .values
            .iter()
            .fold(0f32, |largest, value| largest.max(value.abs()));
        let scale = 127.0 / f64::from(largest);
        let components = self
            .values
            .iter()
            .map(|&value| (f64::from(value) * scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        // The largest component maps to ±127, so the vector is never zero.
        QuantizedDescriptor { components }
    }
}

fn check_dimension(dim: usize) -> Result<(), DescriptorError> {
    if dim == 0 || dim > MAX_DIM {
        return Err(DescriptorError::BadDimension { dim });
    }
    Ok(())
}

/// A stored descriptor: int8 components in -127..=127, not all zero; it stands for its
/// direction (cosines ignore the scale).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuantizedDescriptor {
    components: Box<[i8]>,
}

impl QuantizedDescriptor {
    pub fn new(components: Vec<i8>) -> Result<QuantizedDescriptor, DescriptorError> {
        check_dimension(components.len())?;
        check_components(&components)?;
        Ok(QuantizedDescriptor {
            components: components.into_boxed_slice(),
        })
    }

    pub fn dim(&self) -> usize {
        self.components.len()
    }

    pub fn components(&self) -> &[i8] {
        &self.components
    }

    /// The unit vector this stands for.
    pub fn to_descriptor(&self) -> Descriptor {
        // Not all zero by construction, so the norm is positive.
        let norm = self
            .components
            .iter()
            .map(|&c| f64::from(c) * f64::from(c))
            .sum::<f64>()
            .sqrt();
        let values = self.components.iter();
        Descriptor {
            values: values.map(|&c| (f64::from(c) / norm) as f32).collect(),
        }
    }
}

/// -127..=127 and not all zero: what the index's error bound and cosines assume.
pub(crate) fn check_components(components: &[i8]) -> Result<(), DescriptorError> {
    if let Some(index) = components.iter().position(|&c| c == i8::MIN) {
        return Err(DescriptorError::OutOfRange { index });
    }
    if components.iter().all(|&c| c == 0) {
        return Err(DescriptorError::Zero);
    }
    Ok(())
}

/// What made a list's vectors: the model tag and the dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DescriptorModel {
    tag: String,
    dim: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model tag {tag:?}: 1 to {MAX_TAG_LEN} of A-Z a-z 0-9 . _ -")]
    BadTag { tag: String },
    #[error(transparent)]
    BadDimension(#[from] DescriptorError),
}

impl DescriptorModel {
    pub fn new(tag: &str, dim: usize) -> Result<DescriptorModel, ModelError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || !tag.chars().all(valid) {
            return Err(ModelError::BadTag {
                tag: tag.to_owned(),
            });
        }
        check_dimension(dim)?;
        Ok(DescriptorModel {
            tag: tag.to_owned(),
            dim,
        })
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl std::fmt::Display for DescriptorModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model={} dim={}", self.tag, self.dim)
    }
}

/// Caps on what loading one list may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorListLimits {
    pub max_line_bytes: usize,
    pub max_file_bytes: u64,
    pub max_descriptors: usize,
}

/// Default cap on descriptors per list: 2 million, about 1 GiB of 512-d vectors.
pub const DEFAULT_MAX_DESCRIPTORS: usize = 2_000_000;

impl Default for DescriptorListLimits {
    fn default() -> Self {
        DescriptorListLimits {
            // A 4096-d vector is 5464 base64 characters; the rest is metadata.
            max_line_bytes: 16 * 1024,
            max_file_bytes: 4 << 30,
            max_descriptors: DEFAULT_MAX_DESCRIPTORS,
        }
    }
}

/// Why one line was rejected (columns and fields are numbered from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("line longer than {max} bytes")]
    TooLong { max: usize },
    #[error("not UTF-8 (invalid byte at column {column})")]
    NotUtf8 { column: usize },
    #[error(
        "a record before the header line (`{HEADER_KEYWORD} {FORMAT_VERSION} model=TAG dim=N`)"
    )]
    NoHeader,
    #[error("header: format version {found:?}, this reader reads {FORMAT_VERSION}")]
    Version { found: String },
    #[error("header: {token:?} is not key=value")]
    HeaderToken { token: String },
    #[error("header: {key}= given twice")]
    HeaderRepeatedKey { key: String },
    #[error("header: no {key}=")]
    HeaderMissingKey { key: &'static str },
    #[error("header: {key}={value:?}: {problem}")]
    HeaderValue {
        key: &'static str,
        value: String,
        problem: ModelError,
    },
    #[error("header: {key}={value:?} is not a number")]
    HeaderNumber { key: &'static str, value: String },
    #[error("list made by {found}, expected {expected}")]
    ModelMismatch {
        found: DescriptorModel,
        expected: DescriptorModel,
    },
    #[error("header differs from the one on line {first_line}")]
    HeaderChanged { first_line: u32 },
    #[error("field 1 (vector): {found} base64 characters, {expected} encode {dim} components")]
    VectorLength {
        found: usize,
        expected: usize,
        dim: usize,
    },
    #[error("field 1 (vector): invalid base64 character {character:?} at position {position}")]
    Base64 { position: usize, character: char },
    #[error("field 1 (vector): {problem}")]
    Vector { problem: DescriptorError },
    #[error("field 3 (pts): {text:?} is not a finite number of seconds >= 0")]
    Pts { text: String },
    #[error("field {field}: '%' at position {position} is not followed by two hex digits")]
    Percent { field: usize, position: usize },
    #[error("field {field}: percent-decoded text is not UTF-8")]
    DecodedNotUtf8 { field: usize },
    #[error("more than 4 fields (VECTOR,SOURCE,PTS,LABEL; encode ',' as %2C)")]
    TooManyFields,
}

#[derive(Debug, thiserror::Error)]
pub enum DescriptorListError {
    #[error("cannot read descriptor list {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: u32,
        problem: LineProblem,
    },
    #[error("{}: larger than the {max}-byte cap", path.display())]
    FileTooLarge { path: PathBuf, max: u64 },
    #[error("{}:{line}: more than {max} descriptors, the list's cap", path.display())]
    TooManyDescriptors {
        path: PathBuf,
        line: u32,
        max: usize,
    },
    #[error("{}: more than 4 GiB of metadata", path.display())]
    MetadataTooLarge { path: PathBuf },
}

/// Why a descriptor could not be added to a list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddError {
    #[error(transparent)]
    Full(#[from] CapacityError),
    #[error("{found} dimensions, the list's model has {expected}")]
    Dimension { found: usize, expected: usize },
    #[error("more than 4 GiB of metadata")]
    MetadataTooLarge,
    #[error("pts {pts} is not a finite number of seconds >= 0")]
    Pts { pts: f64 },
}

/// A record's metadata (borrowed): what [`write_record`] writes and a list returns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecordFields<'a> {
    pub source: &'a str,
    /// Seconds within the source; `None` for a still image.
    pub pts: Option<f64>,
    pub label: &'a str,
}

/// One entry's metadata in a loaded list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryMetadata<'a> {
    pub fields: RecordFields<'a>,
    /// Line in the list file; `None` for descriptors added at run time.
    pub line: Option<u32>,
}

/// Metadata of every descriptor of a list, column-wise (20 bytes plus the text each).
#[derive(Debug, Default, Clone)]
pub struct DescriptorMetadata {
    /// Per entry: the end of its source, then the end of its label, in `text`.
    ends: Vec<[u32; 2]>,
    /// NaN for none.
    pts: Vec<f64>,
    /// 0 for entries added at run time.
    line: Vec<u32>,
    text: String,
}

impl DescriptorMetadata {
    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    pub fn get(&self, id: usize) -> Option<EntryMetadata<'_>> {
        let [source_end, label_end] = *self.ends.get(id)?;
        let start = id
            .checked_sub(1)
            .map_or(0, |previous| self.ends[previous][1]);
        Some(EntryMetadata {
            fields: RecordFields {
                source: &self.text[start as usize..source_end as usize],
                pts: Some(self.pts[id]).filter(|pts| !pts.is_nan()),
                label: &self.text[source_end as usize..label_end as usize],
            },
            line: Some(self.line[id]).filter(|&line| line != 0),
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.ends.capacity() * size_of::<[u32; 2]>()
            + self.pts.capacity() * size_of::<f64>()
            + self.line.capacity() * size_of::<u32>()
            + self.text.capacity()
    }

    fn push(&mut self, fields: &RecordFields<'_>, line: u32) -> Result<(), AddError> {
        let length = self.text.len();
        self.text.push_str(fields.source);
        let source_end = u32::try_from(self.text.len());
        self.text.push_str(fields.label);
        let (Ok(source_end), Ok(label_end)) = (source_end, u32::try_from(self.text.len())) else {
            self.text.truncate(length);
            return Err(AddError::MetadataTooLarge);
        };
        self.ends.push([source_end, label_end]);
        self.pts.push(fields.pts.unwrap_or(f64::NAN));
        self.line.push(line);
        Ok(())
    }

    fn shrink_to_fit(&mut self) {
        self.ends.shrink_to_fit();
        self.pts.shrink_to_fit();
        self.line.shrink_to_fit();
        self.text.shrink_to_fit();
    }
}

/// A loaded list: its model, the index over its vectors and their metadata (same ids).
#[derive(Debug, Clone)]
pub struct DescriptorList {
    model: DescriptorModel,
    index: DescriptorIndex,
    metadata: DescriptorMetadata,
}

/// A header line's content.
struct Header {
    model: DescriptorModel,
}

impl DescriptorList {
    /// An empty list for `model`.
    pub fn new(model: DescriptorModel) -> DescriptorList {
        DescriptorList {
            index: DescriptorIndex::new(model.dim),
            model,
            metadata: DescriptorMetadata::default(),
        }
    }

    /// Reads a list file whose header must name `model`.
    pub fn load(
        path: &Path,
        model: &DescriptorModel,
        limits: &DescriptorListLimits,
    ) -> Result<DescriptorList, DescriptorListError> {
        let io_error = |source| DescriptorListError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        if size > limits.max_file_bytes {
            return Err(DescriptorListError::FileTooLarge {
                path: path.to_path_buf(),
                max: limits.max_file_bytes,
            });
        }
        let mut list = DescriptorList::new(model.clone());
        // Every record line holds at least its vector and a line ending: reserving for
        // that many avoids the doubling (and the copies) of growing 500 MB arrays.
        let record_bytes = model.dim.div_ceil(3) * 4 + 1;
        let most_records = usize::try_from(size).unwrap_or(usize::MAX) / record_bytes;
        list.index.reserve(most_records.min(limits.max_descriptors));
        list.read(
            path,
            std::io::BufReader::with_capacity(1 << 16, file),
            limits,
        )?;
        list.shrink_to_fit();
        Ok(list)
    }

    /// Appends the records read from `reader`, which `path` names in errors. On an error
    /// the list keeps the records before the bad line.
    pub fn read(
        &mut self,
        path: &Path,
        reader: impl BufRead,
        limits: &DescriptorListLimits,
    ) -> Result<(), DescriptorListError> {
        let max_line = limits.max_line_bytes;
        let mut reader = reader.take(limits.max_file_bytes.saturating_add(1));
        let mut buffer = Vec::with_capacity(max_line.min(1 << 16) + 1);
        let mut vector = Vec::with_capacity(self.model.dim);
        let mut scratch = TextScratch::default();
        let mut header_line: Option<(u32, Vec<u8>)> = None;
        let mut line_number = 0u32;
        loop {
            buffer.clear();
            line_number = line_number.saturating_add(1);
            let read = (&mut reader)
                .take(max_line as u64 + 2)
                .read_until(b'\n', &mut buffer)
                .map_err(|source| DescriptorListError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            if read == 0 {
                return Ok(());
            }
            if reader.limit() == 0 {
                return Err(DescriptorListError::FileTooLarge {
                    path: path.to_path_buf(),
                    max: limits.max_file_bytes,
                });
            }
            let mut line = buffer.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line_number == 1 {
                line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
            }
            let line_error = |problem| DescriptorListError::Line {
                path: path.to_path_buf(),
                line: line_number,
                problem,
            };
            if line.len() > max_line {
                return Err(line_error(LineProblem::TooLong { max: max_line }));
            }
            let text = std::str::from_utf8(line).map_err(|error| {
                line_error(LineProblem::NotUtf8 {
                    column: error.valid_up_to() + 1,
                })
            })?;
            // Trailing spaces are part of the last field (a label may end in one).
            let record = text.trim_start();
            let text = record.trim_end();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if is_header(text) {
                match &header_line {
                    Some((first_line, first)) if first.as_slice() != text.as_bytes() => {
                        return Err(line_error(LineProblem::HeaderChanged {
                            first_line: *first_line,
                        }));
                    }
                    Some(_) => {}
                    None => {
                        let header = parse_header(text).map_err(line_error)?;
                        if header.model != self.model {
                            return Err(line_error(LineProblem::ModelMismatch {
                                found: header.model,
                                expected: self.model.clone(),
                            }));
                        }
                        header_line = Some((line_number, text.as_bytes().to_vec()));
                    }
                }
                continue;
            }
            if header_line.is_none() {
                return Err(line_error(LineProblem::NoHeader));
            }
            let fields = parse_record(record, self.model.dim, &mut vector, &mut scratch)
                .map_err(line_error)?;
            if self.len() >= limits.max_descriptors {
                return Err(DescriptorListError::TooManyDescriptors {
                    path: path.to_path_buf(),
                    line: line_number,
                    max: limits.max_descriptors,
                });
            }
            self.push_checked(&vector, &fields, line_number)
                .map_err(|error| match error {
                    AddError::Full(CapacityError { max }) => {
                        DescriptorListError::TooManyDescriptors {
                            path: path.to_path_buf(),
                            line: line_number,
                            max,
                        }
                    }
                    _ => DescriptorListError::MetadataTooLarge {
                        path: path.to_path_buf(),
                    },
                })?;
        }
    }

    /// Adds one descriptor (`line` 0 for one learned at run time); returns its id.
    pub fn push(
        &mut self,
        vector: &QuantizedDescriptor,
        fields: &RecordFields<'_>,
        line: u32,
    ) -> Result<u32, AddError> {
        if vector.dim() != self.model.dim {
            return Err(AddError::Dimension {
                found: vector.dim(),
                expected: self.model.dim,
            });
        }
        if let Some(pts) = fields.pts.filter(|pts| !valid_pts(*pts)) {
            return Err(AddError::Pts { pts });
        }
        self.push_checked(vector.components(), fields, line)
    }

    /// Adds `descriptor` unless the list already holds one with a cosine of at least
    /// `min_cosine` to it (e.g. 0.999: the same frame learned twice); returns the new id,
    /// or `None` when it was a near-duplicate.
    pub fn add_unless_near(
        &mut self,
        descriptor: &Descriptor,
        fields: &RecordFields<'_>,
        min_cosine: f32,
        max_descriptors: usize,
    ) -> Result<Option<u32>, AddError> {
        let near = self
            .index
            .search(descriptor, min_cosine)
            .map_err(|_| AddError::Dimension {
                found: descriptor.dim(),
                expected: self.model.dim,
            })?;
        if !near.is_empty() {
            return Ok(None);
        }
        if self.len() >= max_descriptors {
            return Err(AddError::Full(CapacityError {
                max: max_descriptors,
            }));
        }
        self.push(&descriptor.quantize(), fields, 0).map(Some)
    }

    fn push_checked(
        &mut self,
        components: &[i8],
        fields: &RecordFields<'_>,
        line: u32,
    ) -> Result<u32, AddError> {
        self.metadata.push(fields, line)?;
        self.index.push_components(components).map_err(|error| {
            // Keep the two columns aligned: drop the metadata just pushed.
            self.metadata.pop();
            AddError::Full(error)
        })
    }

    /// Releases spare capacity (loading does this at the end).
    pub fn shrink_to_fit(&mut self) {
        self.index.shrink_to_fit();
        self.metadata.shrink_to_fit();
    }

    pub fn model(&self) -> &DescriptorModel {
        &self.model
    }

    pub fn index(&self) -> &DescriptorIndex {
        &self.index
    }

    pub fn metadata(&self) -> &DescriptorMetadata {
        &self.metadata
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The model, the index and the metadata, for callers that keep them apart.
    pub fn into_parts(self) -> (DescriptorModel, DescriptorIndex, DescriptorMetadata) {
        (self.model, self.index, self.metadata)
    }

    /// Bytes held: vectors, norms and metadata.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.metadata.memory_bytes()
    }

    /// Writes the whole list (header, then every record in id order).
    pub fn write(&self, mut out: impl Write) -> std::io::Result<()> {
        write_header(&mut out, &self.model)?;
        for id in 0..self.len() {
            if let (Some(vector), Some(entry)) = (self.index.vector(id), self.metadata.get(id)) {
                write_components(&mut out, &vector, &entry.fields)?;
            }
        }
        Ok(())
    }
}

impl DescriptorMetadata {
    fn pop(&mut self) {
        self.ends.pop();
        self.pts.pop();
        self.line.pop();
        let end = self.ends.last().map_or(0, |ends| ends[1]);
        self.text.truncate(end as usize);
    }
}

fn valid_pts(pts: f64) -> bool {
    pts.is_finite() && pts >= 0.0
}

fn is_header(text: &str) -> bool {
    text.split_ascii_whitespace().next() == Some(HEADER_KEYWORD)
}

fn parse_header(text: &str) -> Result<Header, LineProblem> {
    let mut tokens = text.split_ascii_whitespace().skip(1);
    let version = tokens.next().unwrap_or("");
    if version != FORMAT_VERSION.to_string() {
        return Err(LineProblem::Version {
            found: version.to_owned(),
        });
    }
    let (mut tag, mut dim) = (None, None);
    for token in tokens {
        let Some((key, value)) = token.split_once('=') else {
            return Err(LineProblem::HeaderToken {
                token: token.to_owned(),
            });
        };
        let slot = match key {
            "model" => &mut tag,
            "dim" => &mut dim,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(LineProblem::HeaderRepeatedKey {
                key: key.to_owned(),
            });
        }
    }
    let tag = tag.ok_or(LineProblem::HeaderMissingKey { key: "model" })?;
    let dim_text = dim.ok_or(LineProblem::HeaderMissingKey { key: "dim" })?;
    let value_error = |key, value: &str, problem| LineProblem::HeaderValue {
        key,
        value: value.to_owned(),
        problem,
    };
    let dim = dim_text
        .parse::<usize>()
        .map_err(|_| LineProblem::HeaderNumber {
            key: "dim",
            value: dim_text.to_owned(),
        })?;
    let model = DescriptorModel::new(tag, dim).map_err(|problem| match problem {
        ModelError::BadTag { .. } => value_error("model", tag, problem),
        ModelError::BadDimension(_) => value_error("dim", dim_text, problem),
    })?;
    Ok(Header { model })
}

/// Decoded text fields, reused from record to record.
#[derive(Default)]
struct TextScratch {
    source: String,
    label: String,
}

/// Parses a record line (without leading spaces, not a header or comment) for `dim` components into
/// `vector`; the fields borrow the decoded text from `scratch`.
fn parse_record<'s>(
    text: &str,
    dim: usize,
    vector: &mut Vec<i8>,
    scratch: &'s mut TextScratch,
) -> Result<RecordFields<'s>, LineProblem> {
    let mut fields = text.split(',');
    decode_vector(fields.next().unwrap_or("").trim(), dim, vector)?;
    check_components(vector).map_err(|problem| LineProblem::Vector { problem })?;
    let source = fields.next().unwrap_or("");
    let pts = fields.next().unwrap_or("").trim();
    let label = fields.next().unwrap_or("");
    if fields.next().is_some() {
        return Err(LineProblem::TooManyFields);
    }
    percent_decode(source, 2, &mut scratch.source)?;
    percent_decode(label, 4, &mut scratch.label)?;
    let pts = match pts {
        "" => None,
        text => Some(
            text.parse::<f64>()
                .ok()
                .filter(|pts| valid_pts(*pts))
                .ok_or_else(|| LineProblem::Pts {
                    text: text.to_owned(),
                })?,
        ),
    };
    Ok(RecordFields {
        source: &scratch.source,
        pts,
        label: &scratch.label,
    })
}

/// Writes a header line for `model`.
pub fn write_header(mut out: impl Write, model: &DescriptorModel) -> std::io::Result<()> {
    writeln!(out, "{HEADER_KEYWORD} {FORMAT_VERSION} {model}")
}

/// Writes one record line; a pts that is not a finite number ≥ 0 is an `InvalidInput`
/// error.
pub fn write_record(
    out: impl Write,
    vector: &QuantizedDescriptor,
    fields: &RecordFields<'_>,
) -> std::io::Result<()> {
    write_components(out, vector.components(), fields)
}

fn write_components(
    mut out: impl Write,
    components: &[i8],
    fields: &RecordFields<'_>,
) -> std::io::Result<()> {
    let mut line = String::with_capacity(components.len().div_ceil(3) * 4 + 64);
    base64_encode(components, &mut line);
    line.push(',');
    percent_encode(fields.source, &mut line);
    line.push(',');
    if let Some(pts) = fields.pts {
        if !valid_pts(pts) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("pts {pts} is not a finite number of seconds >= 0"),
            ));
        }
        // `{}` prints the shortest text that parses back to the same f64.
        use std::fmt::Write as _;
        let _ = write!(line, "{pts}");
    }
    line.push(',');
    percent_encode(fields.label, &mut line);
    line.push('\n');
    out.write_all(line.as_bytes())
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(components: &[i8], out: &mut String) {
    for chunk in components.chunks(3) {
        let bytes = [0, 1, 2].map(|i| chunk.get(i).map_or(0, |&c| c as u8));
        let word = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for position in 0..4 {
            if position <= chunk.len() {
                let sextet = (word >> (18 - 6 * position)) & 63;
                out.push(char::from(BASE64_ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

fn base64_value(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Decodes exactly `dim` bytes of padded base64 into `out` (cleared first).
fn decode_vector(text: &str, dim: usize, out: &mut Vec<i8>) -> Result<(), LineProblem> {
    let expected = dim.div_ceil(3) * 4;
    if text.len() != expected {
        return Err(LineProblem::VectorLength {
            found: text.chars().count(),
            expected,
            dim,
        });
    }
    let padding = (3 - dim % 3) % 3;
    out.clear();
    for (chunk_index, chunk) in text.as_bytes().chunks_exact(4).enumerate() {
        let data_chars = if out.len() + 3 > dim { 4 - padding } else { 4 };
        let mut word = 0u32;
        for (offset, &byte) in chunk.iter().enumerate() {
            let value = if offset < data_chars {
                base64_value(byte)
            } else {
                (byte == b'=').then_some(0)
            };
            let Some(value) = value else {
                let position = chunk_index * 4 + offset;
                return Err(LineProblem::Base64 {
                    position: position + 1,
                    character: text[position..].chars().next().unwrap_or('?'),
                });
            };
            word = word << 6 | value;
        }
        for shift in [16, 8, 0].into_iter().take(data_chars - 1) {
            out.push((word >> shift) as u8 as i8);
        }
    }
    Ok(())
}

fn percent_encode(text: &str, out: &mut String) {
    for character in text.chars() {
        match character {
            '%' => out.push_str("%25"),
            ',' => out.push_str("%2C"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            other => out.push(other),
        }
    }
}

/// Decodes `%XX` escapes of field number `field` into `out` (cleared first).
fn percent_decode(text: &str, field: usize, out: &mut String) -> Result<(), LineProblem> {
    out.clear();
    if !text.contains('%') {
        out.push_str(text);
        return Ok(());
    }
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'%' {
            bytes.push(byte);
            rest = tail;
            continue;
        }
        let hex = tail
            .get(..2)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 16).ok())
            .filter(|_| tail[..2].iter().all(u8::is_ascii_hexdigit));
        let Some(value) = hex else {
            return Err(LineProblem::Percent {
                field,
                position: text.len() - rest.len() + 1,
            });
        };
        bytes.push(value);
        rest = &tail[2..];
    }
    let decoded = String::from_utf8(bytes).map_err(|_| LineProblem::DecodedNotUtf8 { field })?;
    out.push_str(&decoded);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "livegate-descriptors 1 model=sscd_distilled dim=4";

    fn model() -> DescriptorModel {
        DescriptorModel::new("sscd_distilled", 4).unwrap()
    }

    fn read_with(
        bytes: &[u8],
        model: &DescriptorModel,
        limits: DescriptorListLimits,
    ) -> Result<DescriptorList, DescriptorListError> {
        let mut list = DescriptorList::new(model.clone());
        list.read(Path::new("lists/d.txt"), bytes, &limits)?;
        Ok(list)
    }

    fn read_text(text: &str) -> Result<DescriptorList, DescriptorListError> {
        read_with(text.as_bytes(), &model(), DescriptorListLimits::default())
    }

    fn error_text(text: &str) -> String {
        match read_text(text) {
            Ok(list) => panic!("accepted: {list:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn record(components: &[i8], fields: &RecordFields<'_>) -> String {
        let mut line = Vec::new();
        let vector = QuantizedDescriptor::new(components.to_vec()).unwrap();
        write_record(&mut line, &vector, fields).unwrap();
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn a_written_list_reads_back_exactly() {
        let mut text = String::new();
        text.push_str("\u{feff}# made by a test\n\n");
        text.push_str(HEADER);
        text.push_str(" input=320\r\n");
        let tricky = RecordFields {
            source: "clips/a, b%20 100%\nx.mp4",
            pts: Some(12.5),
            label: " case 7,  ",
        };
        text.push_str(&record(&[127, -127, 0, 5], &tricky));
        text.push_str(&record(&[1, 0, 0, 0], &RecordFields::default()));
        // Trailing fields may be omitted; the vector field may be space-padded.
        text.push_str("  AQIDBA== \n");
        let list = read_text(&text).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.index().vector(0), Some(vec![127, -127, 0, 5]));
        assert_eq!(list.index().vector(2), Some(vec![1, 2, 3, 4]));
        let first = list.metadata().get(0).unwrap();
        assert_eq!(first.fields, tricky);
        assert_eq!(first.line, Some(4));
        let second = list.metadata().get(1).unwrap();
        assert_eq!(
            (second.fields, second.line),
            (RecordFields::default(), Some(5))
        );
        // Writing the loaded list gives the same records again.
        let mut rewritten = Vec::new();
        list.write(&mut rewritten).unwrap();
        let again = read_with(&rewritten, &model(), DescriptorListLimits::default()).unwrap();
        for id in 0..3 {
            assert_eq!(again.index().vector(id), list.index().vector(id));
            assert_eq!(
                again.metadata().get(id).unwrap().fields,
                list.metadata().get(id).unwrap().fields
            );
        }
    }

    #[test]
    fn every_dimension_round_trips_through_base64() {
        for dim in 1..=40 {
            let components: Vec<i8> = (0..dim)
                .map(|i| (i as i8).wrapping_mul(37).max(-127) | 1)
                .collect();
            let model = DescriptorModel::new("m", dim).unwrap();
            let mut text = Vec::new();
            write_header(&mut text, &model).unwrap();
            write_record(
                &mut text,
                &QuantizedDescriptor::new(components.clone()).unwrap(),
                &RecordFields::default(),
            )
            .unwrap();
            let list = read_with(&text, &model, DescriptorListLimits::default()).unwrap();
            assert_eq!(list.index().vector(0), Some(components), "dim {dim}");
        }
    }

    #[test]
    fn a_list_of_another_model_is_refused_at_its_header() {
        let text = "# x\nlivegate-descriptors 1 model=sscd dim=4\nAQIDBA==\n";
        assert_eq!(
            error_text(text),
            "lists/d.txt:2: list made by model=sscd dim=4, expected model=sscd_distilled dim=4"
        );
        let text = "livegate-descriptors 1 model=sscd_distilled dim=512\n";
        assert_eq!(
            error_text(text),
            "lists/d.txt:1: list made by model=sscd_distilled dim=512, expected model=sscd_distilled dim=4"
        );
    }

    #[test]
    fn bad_lines_are_named_by_file_and_line() {
        let cases = [
            (
                "AQIDBA==\n",
                "lists/d.txt:1: a record before the header line (`livegate-descriptors 1 model=TAG dim=N`)",
            ),
            (
                "livegate-descriptors 2 model=a dim=4\n",
                "lists/d.txt:1: header: format version \"2\", this reader reads 1",
            ),
            (
                "livegate-descriptors 1 model=a\n",
                "lists/d.txt:1: header: no dim=",
            ),
            (
                "livegate-descriptors 1 model=a dim=4 model=b\n",
                "lists/d.txt:1: header: model= given twice",
            ),
            (
                "livegate-descriptors 1 model=a dim=4 junk\n",
                "lists/d.txt:1: header: \"junk\" is not key=value",
            ),
            (
                "livegate-descriptors 1 model=a/b dim=4\n",
                "lists/d.txt:1: header: model=\"a/b\": model tag \"a/b\": 1 to 64 of A-Z a-z 0-9 . _ -",
            ),
            (
                "livegate-descriptors 1 model=a dim=0\n",
                "lists/d.txt:1: header: dim=\"0\": 0 dimensions, a descriptor has 1 to 4096",
            ),
            (
                "livegate-descriptors 1 model=a dim=x\n",
                "lists/d.txt:1: header: dim=\"x\" is not a number",
            ),
            (
                &format!(
                    "{HEADER}\nAQIDBA==\n{HEADER} \nlivegate-descriptors 1 model=sscd_distilled dim=4 x=1\n"
                ),
                "lists/d.txt:4: header differs from the one on line 1",
            ),
            (
                &format!("{HEADER}\nAQIDBA\n"),
                "lists/d.txt:2: field 1 (vector): 6 base64 characters, 8 encode 4 components",
            ),
            (
                &format!("{HEADER}\nAQI*BA==\n"),
                "lists/d.txt:2: field 1 (vector): invalid base64 character '*' at position 4",
            ),
            (
                &format!("{HEADER}\nAQIDBAA=\n"),
                "lists/d.txt:2: field 1 (vector): invalid base64 character 'A' at position 7",
            ),
            (
                &format!("{HEADER}\nAAAAAA==\n"),
                "lists/d.txt:2: field 1 (vector): the zero vector has no direction",
            ),
            (
                &format!("{HEADER}\nAIAAAA==\n"),
                "lists/d.txt:2: field 1 (vector): component 1 is -128 (stored components are -127..=127)",
            ),
            (
                &format!("{HEADER}\nAQIDBA==,a,-1\n"),
                "lists/d.txt:2: field 3 (pts): \"-1\" is not a finite number of seconds >= 0",
            ),
            (
                &format!("{HEADER}\nAQIDBA==,a,NaN\n"),
                "lists/d.txt:2: field 3 (pts): \"NaN\" is not a finite number of seconds >= 0",
            ),
            (
                &format!("{HEADER}\nAQIDBA==,a%2,1\n"),
                "lists/d.txt:2: field 2: '%' at position 2 is not followed by two hex digits",
            ),
            (
                &format!("{HEADER}\nAQIDBA==,a,1,%FF\n"),
                "lists/d.txt:2: field 4: percent-decoded text is not UTF-8",
            ),
            (
                &format!("{HEADER}\nAQIDBA==,a,1,b,c\n"),
                "lists/d.txt:2: more than 4 fields (VECTOR,SOURCE,PTS,LABEL; encode ',' as %2C)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(error_text(text), expected, "{text:?}");
        }
        let not_utf8 = [HEADER.as_bytes(), b"\nAQIDBA==,caf\xe9\n"].concat();
        let error = read_with(&not_utf8, &model(), DescriptorListLimits::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/d.txt:2: not UTF-8 (invalid byte at column 13)"
        );
    }

    #[test]
    fn caps_hold() {
        let text = format!("{HEADER}\nAQIDBA==\nAQIDBA==\nAQIDBA==\n");
        let limits = DescriptorListLimits {
            max_descriptors: 2,
            ..Default::default()
        };
        let error = read_with(text.as_bytes(), &model(), limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/d.txt:4: more than 2 descriptors, the list's cap"
        );
        let limits = DescriptorListLimits {
            max_file_bytes: 40,
            ..Default::default()
        };
        let error = read_with(text.as_bytes(), &model(), limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/d.txt: larger than the 40-byte cap"
        );
        let limits = DescriptorListLimits {
            max_line_bytes: 20,
            ..Default::default()
        };
        let error = read_with(text.as_bytes(), &model(), limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/d.txt:1: line longer than 20 bytes"
        );
    }

    /// Every prefix of a valid list either reads (a record cut inside its metadata is
    /// still a record) or fails at the last line, never earlier and never with a panic.
    #[test]
    fn truncated_lists_fail_at_the_cut_line() {
        let mut text = format!("{HEADER}\n");
        for i in 0..5 {
            let pts = Some(f64::from(i) * 1.5);
            text.push_str(&record(
                &[1, 2, -3, i as i8 + 1],
                &RecordFields {
                    source: "a.mp4",
                    pts,
                    label: "l",
                },
            ));
        }
        for cut in 0..text.len() {
            let prefix = &text[..cut];
            let lines = prefix.split('\n').count() as u32;
            match read_text(prefix) {
                Ok(list) => assert!(list.len() < lines as usize),
                Err(DescriptorListError::Line { line, .. }) => {
                    assert_eq!(line, lines, "{prefix:?}")
                }
                Err(other) => panic!("{other}"),
            }
        }
    }

    #[test]
    fn descriptors_are_normalised_and_checked() {
        let descriptor = Descriptor::new(vec![3.0, 4.0]).unwrap();
        assert_eq!(descriptor.values(), [0.6, 0.8]);
        assert_eq!(Descriptor::new(vec![0.0; 3]), Err(DescriptorError::Zero));
        assert_eq!(
            Descriptor::new(vec![1.0, f32::NAN]),
            Err(DescriptorError::NotFinite { index: 1 })
        );
        assert_eq!(
            Descriptor::new(vec![f32::INFINITY]),
            Err(DescriptorError::NotFinite { index: 0 })
        );
        assert_eq!(
            Descriptor::new(vec![]),
            Err(DescriptorError::BadDimension { dim: 0 })
        );
        assert_eq!(
            Descriptor::new(vec![1.0; MAX_DIM + 1]),
            Err(DescriptorError::BadDimension { dim: MAX_DIM + 1 })
        );
        // Tiny finite components still have a direction.
        assert!(Descriptor::new(vec![1e-40, 0.0]).is_ok());
        assert_eq!(descriptor.quantize().components(), [95, 127]);
    }

    #[test]
    fn learning_skips_near_identical_descriptors() {
        let model = DescriptorModel::new("m", 8).unwrap();
        let mut list = DescriptorList::new(model);
        let a = Descriptor::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
        let a_again = Descriptor::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.01]).unwrap();
        let b = Descriptor::new(vec![8.0, -7.0, 6.0, -5.0, 4.0, -3.0, 2.0, -1.0]).unwrap();
        let fields = RecordFields {
            source: "live/key",
            pts: Some(3.0),
            label: "",
        };
        assert_eq!(list.add_unless_near(&a, &fields, 0.999, 10), Ok(Some(0)));
        assert_eq!(list.add_unless_near(&a_again, &fields, 0.999, 10), Ok(None));
        assert_eq!(
            list.add_unless_near(&b, &fields, 0.999, 1),
            Err(AddError::Full(CapacityError { max: 1 }))
        );
        assert_eq!(list.add_unless_near(&b, &fields, 0.999, 10), Ok(Some(1)));
        assert_eq!(list.metadata().get(1).unwrap().line, None);
        let short = Descriptor::new(vec![1.0; 4]).unwrap();
        assert_eq!(
            list.add_unless_near(&short, &fields, 0.999, 10),
            Err(AddError::Dimension {
                found: 4,
                expected: 8
            })
        );
        let bad_pts = RecordFields {
            pts: Some(f64::INFINITY),
            ..fields
        };
        assert!(matches!(
            list.push(&b.quantize(), &bad_pts, 0),
            Err(AddError::Pts { .. })
        ));
        assert_eq!(list.len(), 2);
        assert_eq!(list.metadata().len(), 2);
    }

    #[test]
    fn files_are_loaded_with_their_path_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.txt");
        std::fs::write(&path, format!("{HEADER}\nAQIDBA==,x.jpg\n")).unwrap();
        let list = DescriptorList::load(&path, &model(), &DescriptorListLimits::default()).unwrap();
        assert_eq!(list.metadata().get(0).unwrap().fields.source, "x.jpg");
        let missing = dir.path().join("missing.txt");
        let error =
            DescriptorList::load(&missing, &model(), &DescriptorListLimits::default()).unwrap_err();
        assert!(error.to_string().starts_with(&format!(
            "cannot read descriptor list {}:",
            missing.display()
        )));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary records written and read back are identical.
        #[test]
        fn records_round_trip(
            records in proptest::collection::vec(
                (
                    proptest::collection::vec(-127i8..=127, 6),
                    "\\PC{0,12}",
                    proptest::option::of(0.0f64..1e7),
                    "[ -~\\n\\r%,é]{0,12}",
                ),
                0..12,
            )
        ) {
            let model = DescriptorModel::new("m", 6).unwrap();
            let mut text = Vec::new();
            write_header(&mut text, &model).unwrap();
            let mut kept = Vec::new();
            for (components, source, pts, label) in &records {
                let Ok(vector) = QuantizedDescriptor::new(components.clone()) else { continue };
                let fields = RecordFields { source, pts: *pts, label };
                write_record(&mut text, &vector, &fields).unwrap();
                kept.push((components, fields));
            }
            let list = read_with(&text, &model, DescriptorListLimits::default()).unwrap();
            prop_assert_eq!(list.len(), kept.len());
            for (id, (components, fields)) in kept.iter().enumerate() {
                prop_assert_eq!(list.index().vector(id), Some(components.to_vec()));
                let read = list.metadata().get(id).unwrap().fields;
                prop_assert_eq!(read.pts, fields.pts);
                prop_assert_eq!(read.label, fields.label);
                prop_assert_eq!(read.source, fields.source);
            }
        }

        /// Arbitrary bytes never panic; an error names a line that exists.
        #[test]
        fn arbitrary_input_is_rejected_or_read(
            lines in proptest::collection::vec(
                prop_oneof![
                    proptest::string::string_regex("[A-Za-z0-9+/=]{6,10}(,[a-z%. ]{0,6})?(,[0-9.e-]{0,4})?").unwrap().prop_map(String::into_bytes),
                    Just(HEADER.as_bytes().to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..40),
                    Just(b"# comment".to_vec()),
                ],
                0..16,
            )
        ) {
            let text = lines.join(&b'\n');
            let line_count = text.split(|&b| b == b'\n').count() as u32;
            let limits = DescriptorListLimits { max_line_bytes: 30, max_descriptors: 8, ..Default::default() };
            match read_with(&text, &model(), limits) {
                Ok(list) => prop_assert!(list.len() <= 8 && list.len() as u32 <= line_count),
                Err(DescriptorListError::Line { line, .. } | DescriptorListError::TooManyDescriptors { line, .. }) => {
                    prop_assert!(line >= 1 && line <= line_count)
                }
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
    }
}
