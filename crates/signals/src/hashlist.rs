//! Hash list files: parsing lines into hashes plus metadata, with caps and `file:line` errors.
//!
//! A list is text, one hash per line, fields separated by tabs (when the line has one),
//! commas (when it has one), or else spaces, surrounding spaces trimmed. The first field
//! that is 64 hex digits is the hash; the others are kept verbatim as metadata. That one
//! rule reads every format in use: `livegate hash` output (`HASH,QUALITY,FILENAME` and
//! `HASH,QUALITY,FILENAME,PTS`), Meta's `hash,quality,filename`, vPDQ's
//! `frame,quality,hash,timestamp`, python-threatexchange's and HMA's LocalFile
//! (`pdq HASH`; a line of another signal type, `video_md5 …`, is refused naming it) and
//! bare hashes. The
//! second field, when it is not the hash and is an integer 0..=100, is the quality (it is
//! in all of those formats). Blank lines and lines starting with `#` are skipped.
//!
//! Duplicate hashes are merged: the first occurrence's metadata is kept, with a count of
//! the later ones. The stored list is sorted by hash (the index's ids are positions in it).
//!
//! [`parse_line`] is a pure function over one line's bytes; [`HashListBuilder::read`]
//! feeds it from any `BufRead` under the [`ListLimits`].

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crate::hash256::{HEX_LEN, Hash256, HexError};

/// Caps on what loading one list may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    pub max_line_bytes: usize,
    pub max_file_bytes: u64,
    /// Distinct hashes plus duplicates (lines that carry a hash).
    pub max_hashes: usize,
}

impl Default for ListLimits {
    fn default() -> Self {
        ListLimits {
            max_line_bytes: 4096,
            max_file_bytes: 2 << 30,
            max_hashes: DEFAULT_MAX_HASHES,
        }
    }
}

/// Default cap on hashes per list: twice the 10-million target.
pub const DEFAULT_MAX_HASHES: usize = 20_000_000;

/// Why one line was rejected (fields are numbered from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("no field is a 64-hex-digit hash")]
    NoHash,
    #[error("a {0:?} signal (python-threatexchange format): only `pdq` lines can be listed")]
    OtherSignalType(String),
    #[error("field {field}: non-hex character {character:?} at position {position}")]
    NotHex {
        field: usize,
        position: usize,
        character: char,
    },
    #[error("field {field}: {length} hex digits, a hash has 64")]
    WrongLength { field: usize, length: usize },
    #[error("line longer than {max} bytes")]
    TooLong { max: usize },
    #[error("not UTF-8 (invalid byte at column {column})")]
    NotUtf8 { column: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum HashListError {
    #[error("cannot read hash list {}: {source}", path.display())]
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
    #[error("{}:{line}: more than {max} hashes, the list's cap", path.display())]
    TooManyHashes {
        path: PathBuf,
        line: u32,
        max: usize,
    },
    #[error("{}: more than 4 GiB of metadata", path.display())]
    MetadataTooLarge { path: PathBuf },
}

/// One data line: its hash, quality, and the index of the hash among the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub hash: Hash256,
    pub quality: Option<u8>,
    text: &'a str,
    hash_field: usize,
}

impl<'a> ParsedLine<'a> {
    /// The fields other than the hash, in order.
    pub fn metadata_fields(&self) -> impl Iterator<Item = &'a str> + '_ {
        fields(self.text)
            .enumerate()
            .filter(move |(index, _)| *index != self.hash_field)
            .map(|(_, field)| field)
    }
}

/// A line's fields: split at tabs when it has one, else at commas, else at runs of
/// spaces (python-threatexchange's LocalFile, `pdq <hash>`).
fn fields(text: &str) -> impl Iterator<Item = &str> {
    let separator = if text.contains('\t') {
        Some('\t')
    } else if text.contains(',') {
        Some(',')
    } else {
        None
    };
    text.split(move |c: char| separator.map_or(c == ' ', |separator| c == separator))
        .map(str::trim)
        .filter(move |field| separator.is_some() || !field.is_empty())
}

/// Parses one line (without its line ending); `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &[u8]) -> Result<Option<ParsedLine<'_>>, LineProblem> {
    let text = std::str::from_utf8(line).map_err(|error| LineProblem::NotUtf8 {
        column: error.valid_up_to() + 1,
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut problem = None;
    for (index, field) in fields(trimmed).enumerate() {
        match Hash256::from_hex(field) {
            Ok(hash) => {
                let quality = fields(trimmed)
                    .nth(1)
                    .filter(|_| index != 1)
                    .and_then(|field| field.parse::<u8>().ok())
                    .filter(|quality| *quality <= 100);
                return Ok(Some(ParsedLine {
                    hash,
                    quality,
                    text: trimmed,
                    hash_field: index,
                }));
            }
            Err(error) => {
                if problem.is_none() {
                    problem = attempted_hash_problem(index + 1, field, error);
                }
            }
        }
    }
    if let Some(signal_type) = other_signal_type(trimmed) {
        return Err(LineProblem::OtherSignalType(signal_type.to_string()));
    }
    Err(problem.unwrap_or(LineProblem::NoHash))
}

/// The signal type of a python-threatexchange line of another type than PDQ
/// (`video_md5 <hash>`): one of its type names, a space, then the signal.
fn other_signal_type(line: &str) -> Option<&str> {
    /// python-threatexchange's signal type names other than `pdq`.
    const OTHER_TYPES: [&str; 9] = [
        "video_md5",
        "vpdq",
        "photo_md5",
        "url",
        "url_md5",
        "raw_text",
        "trend_query",
        "pdq_ocr",
        "video_tmk_pdqf",
    ];
    let (name, signal) = line.split_once(' ')?;
    (OTHER_TYPES.contains(&name) && !signal.trim().is_empty()).then_some(name)
}

/// A field that was evidently meant as a hash: 64 characters with a non-hex one, or a long
/// run of hex digits of the wrong length (short numbers such as frame counts are not).
fn attempted_hash_problem(field: usize, text: &str, error: HexError) -> Option<LineProblem> {
    match error {
        HexError::NotHex {
            position,
            character,
        } => Some(LineProblem::NotHex {
            field,
            position: position + 1,
            character,
        }),
        HexError::WrongLength(length)
            if length >= HEX_LEN / 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(LineProblem::WrongLength { field, length })
        }
        HexError::WrongLength(_) => None,
    }
}

/// Metadata of every hash of a list, stored column-wise (about 13 bytes plus the text).
#[derive(Debug, Default, Clone)]
pub struct ListMetadata {
    quality: Vec<u8>,
    line: Vec<u32>,
    duplicates: Vec<u32>,
    /// `text[text_ends[i - 1]..text_ends[i]]` are entry `i`'s fields, comma-joined.
    text_ends: Vec<u32>,
    text: String,
}

const NO_QUALITY: u8 = u8::MAX;

/// One hash's metadata, borrowed from the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMetadata<'a> {
    pub quality: Option<u8>,
    /// Line of the first occurrence in the list file; `None` for hashes added at run time.
    pub line: Option<u32>,
    /// How many later lines carried the same hash (merged into this entry).
    pub duplicates: u32,
    /// The line's other fields, comma-joined.
    pub fields: &'a str,
}

impl ListMetadata {
    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    pub fn get(&self, id: usize) -> Option<EntryMetadata<'_>> {
        let line = *self.line.get(id)?;
        let start = if id == 0 { 0 } else { self.text_ends[id - 1] };
        Some(EntryMetadata {
            quality: Some(self.quality[id]).filter(|&quality| quality != NO_QUALITY),
            line: Some(line).filter(|&line| line != 0),
            duplicates: self.duplicates[id],
            fields: &self.text[start as usize..self.text_ends[id] as usize],
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.quality.capacity()
            + (self.line.capacity() + self.duplicates.capacity() + self.text_ends.capacity()) * 4
            + self.text.capacity()
    }

    fn shrink_to_fit(&mut self) {
        self.quality.shrink_to_fit();
        self.line.shrink_to_fit();
        self.duplicates.shrink_to_fit();
        self.text_ends.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    fn push(&mut self, quality: Option<u8>, line: u32, duplicates: u32, fields: &str) -> bool {
        self.text.push_str(fields);
        let Ok(end) = u32::try_from(self.text.len()) else {
            return false;
        };
        self.quality.push(quality.unwrap_or(NO_QUALITY));
        self.line.push(line);
        self.duplicates.push(duplicates);
        self.text_ends.push(end);
        true
    }
}

/// A loaded list: distinct hashes sorted ascending, and their metadata (same order).
#[derive(Debug, Default, Clone)]
pub struct HashList {
    pub hashes: Vec<Hash256>,
    pub metadata: ListMetadata,
    /// Entries (lines) carrying a hash that was already in the list, merged away.
    pub duplicates_merged: usize,
}

impl HashList {
    /// Reads and parses a list file.
    pub fn load(path: &Path, limits: &ListLimits) -> Result<HashList, HashListError> {
        let mut builder = HashListBuilder::new(path, *limits);
        builder.read_file()?;
        builder.finish()
    }
}

/// Collects entries (from a file and/or at run time), then sorts and merges duplicates.
pub struct HashListBuilder {
    path: PathBuf,
    limits: ListLimits,
    /// (hash, insertion order) for the sort.
    keys: Vec<(Hash256, u32)>,
    entries: ListMetadata,
}

impl HashListBuilder {
    /// `path` names the list in errors (and is what [`HashListBuilder::read_file`] opens).
    pub fn new(path: &Path, limits: ListLimits) -> HashListBuilder {
        HashListBuilder {
            path: path.to_path_buf(),
            limits,
            keys: Vec::new(),
            entries: ListMetadata::default(),
        }
    }

    /// Entries pushed so far (duplicates included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Opens the builder's path and reads it.
    pub fn read_file(&mut self) -> Result<(), HashListError> {
        let io_error = |source| HashListError::Io {
            path: self.path.clone(),
            source,
        };
        let file = std::fs::File::open(&self.path).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        if size > self.limits.max_file_bytes {
            return Err(HashListError::FileTooLarge {
                path: self.path.clone(),
                max: self.limits.max_file_bytes,
            });
        }
        self.read(std::io::BufReader::with_capacity(1 << 16, file))
    }

    /// Reads list lines from `reader`, which stands for the builder's path in errors.
    pub fn read(&mut self, reader: impl BufRead) -> Result<(), HashListError> {
        let max_line = self.limits.max_line_bytes;
        let max_file = self.limits.max_file_bytes;
        let mut reader = reader.take(max_file.saturating_add(1));
        let mut buffer = Vec::with_capacity(max_line.min(1 << 16) + 1);
        let mut joined = String::new();
        let mut line_number = 0u32;
        loop {
            buffer.clear();
            line_number = line_number.saturating_add(1);
            let read = (&mut reader)
                .take(max_line as u64 + 2)
                .read_until(b'\n', &mut buffer)
                .map_err(|source| HashListError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(());
            }
            if reader.limit() == 0 {
                return Err(HashListError::FileTooLarge {
                    path: self.path.clone(),
                    max: max_file,
                });
            }
            let mut line = buffer.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line_number == 1 {
                line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
            }
            let line_error = |problem| HashListError::Line {
                path: self.path.clone(),
                line: line_number,
                problem,
            };
            if line.len() > max_line {
                return Err(line_error(LineProblem::TooLong { max: max_line }));
            }
            if let Some(parsed) = parse_line(line).map_err(line_error)? {
                self.push_parsed(&parsed, line_number, &mut joined)?;
            }
        }
    }

    /// Adds a parsed line; `joined` is a reusable buffer for its comma-joined fields.
    fn push_parsed(
        &mut self,
        parsed: &ParsedLine<'_>,
        line: u32,
        joined: &mut String,
    ) -> Result<(), HashListError> {
        joined.clear();
        for (index, field) in parsed.metadata_fields().enumerate() {
            if index > 0 {
                joined.push(',');
            }
            joined.push_str(field);
        }
        self.push(parsed.hash, parsed.quality, line, joined)
    }

    /// Adds one entry; `line` 0 marks a hash added at run time.
    pub fn push(
        &mut self,
        hash: Hash256,
        quality: Option<u8>,
        line: u32,
        fields: &str,
    ) -> Result<(), HashListError> {
        let entry = EntryMetadata {
            quality,
            line: Some(line).filter(|&line| line != 0),
            duplicates: 0,
            fields,
        };
        self.push_entry(hash, &entry)
    }

    /// Adds every entry of a built list (its duplicate counts carry over): `hashes` and
    /// `metadata` in the same order, as in a [`HashList`].
    pub fn extend_from(
        &mut self,
        hashes: &[Hash256],
        metadata: &ListMetadata,
    ) -> Result<(), HashListError> {
        for (id, &hash) in hashes.iter().enumerate() {
            if let Some(entry) = metadata.get(id) {
                self.push_entry(hash, &entry)?;
            }
        }
        Ok(())
    }

    fn push_entry(
        &mut self,
        hash: Hash256,
        entry: &EntryMetadata<'_>,
    ) -> Result<(), HashListError> {
        let line = entry.line.unwrap_or(0);
        if self.keys.len() >= self.limits.max_hashes {
            return Err(HashListError::TooManyHashes {
                path: self.path.clone(),
                line,
                max: self.limits.max_hashes,
            });
        }
        let order = self.keys.len() as u32;
        if !self
            .entries
            .push(entry.quality, line, entry.duplicates, entry.fields)
        {
            return Err(HashListError::MetadataTooLarge {
                path: self.path.clone(),
            });
        }
        self.keys.push((hash, order));
        Ok(())
    }

    /// Sorts by hash and merges duplicates (the first occurrence's metadata is kept).
    pub fn finish(mut self) -> Result<HashList, HashListError> {
        self.keys.sort_unstable();
        let mut hashes: Vec<Hash256> = Vec::with_capacity(self.keys.len());
        let mut metadata = ListMetadata::default();
        for &(hash, order) in &self.keys {
            let Some(entry) = self.entries.get(order as usize) else {
                continue;
            };
            if hashes.last() == Some(&hash) {
                if let Some(count) = metadata.duplicates.last_mut() {
                    *count += 1 + entry.duplicates;
                }
                continue;
            }
            hashes.push(hash);
            let line = entry.line.unwrap_or(0);
            if !metadata.push(entry.quality, line, entry.duplicates, entry.fields) {
                return Err(HashListError::MetadataTooLarge { path: self.path });
            }
        }
        hashes.shrink_to_fit();
        metadata.shrink_to_fit();
        let duplicates_merged = metadata
            .duplicates
            .iter()
            .map(|&count| count as usize)
            .sum();
        Ok(HashList {
            hashes,
            metadata,
            duplicates_merged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    const B: &str = "0000f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    fn parse_text(text: &str) -> Result<HashList, HashListError> {
        parse_with(text.as_bytes(), ListLimits::default())
    }

    fn parse_with(bytes: &[u8], limits: ListLimits) -> Result<HashList, HashListError> {
        let mut builder = HashListBuilder::new(Path::new("lists/test.csv"), limits);
        builder.read(bytes)?;
        builder.finish()
    }

    fn error_text(text: &[u8]) -> String {
        match parse_with(text, ListLimits::default()) {
            Ok(list) => panic!("accepted: {list:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn every_supported_format_is_read() {
        let text = format!(
            "# livegate hash, image and video lines\n\
             {A},100,cat.jpg\n\
             \n\
             {B},87,clip.mp4,12.5\n\
             # vPDQ: frame,quality,hash,timestamp\n\
             17,64,{},0.567\n\
             # plain, tab-separated, uppercase, CRLF\n\
             {}\r\n\
             label-x\t{}\t42\n",
            A.replace("f8", "11"),
            A.replace("f8", "22").to_uppercase(),
            A.replace("f8", "33"),
        );
        let list = parse_text(&text).unwrap();
        assert_eq!(list.hashes.len(), 5);
        assert!(list.hashes.windows(2).all(|pair| pair[0] < pair[1]));
        let find = |hex: &str| {
            let hash = Hash256::from_hex(hex).unwrap();
            let id = list.hashes.binary_search(&hash).unwrap();
            list.metadata.get(id).unwrap()
        };
        let cat = find(A);
        assert_eq!(
            (cat.quality, cat.line, cat.fields),
            (Some(100), Some(2), "100,cat.jpg")
        );
        let clip = find(B);
        assert_eq!(
            (clip.quality, clip.line, clip.fields),
            (Some(87), Some(4), "87,clip.mp4,12.5")
        );
        let frame = find(&A.replace("f8", "11"));
        assert_eq!(
            (frame.quality, frame.line, frame.fields),
            (Some(64), Some(6), "17,64,0.567")
        );
        let plain = find(&A.replace("f8", "22"));
        assert_eq!(
            (plain.quality, plain.line, plain.fields),
            (None, Some(8), "")
        );
        let tabbed = find(&A.replace("f8", "33"));
        assert_eq!(
            (tabbed.quality, tabbed.line, tabbed.fields),
            (None, Some(9), "label-x,42")
        );
    }

    #[test]
    fn threatexchange_local_files_are_read_and_other_signal_types_named() {
        let list = parse_text(&format!("pdq {A}\npdq  {B}\n")).unwrap();
        assert_eq!(list.hashes.len(), 2);
        let id = list
            .hashes
            .binary_search(&Hash256::from_hex(A).unwrap())
            .unwrap();
        assert_eq!(list.metadata.get(id).unwrap().fields, "pdq");
        let refused = error_text(b"video_md5 d41d8cd98f00b204e9800998ecf8427e\n");
        assert!(
            refused.contains("\"video_md5\" signal") && refused.contains(":1:"),
            "{refused}"
        );
    }

    #[test]
    fn livegate_hash_output_round_trips() {
        let hash = Hash256::from_hex(A).unwrap();
        let line = format!("{},73,frames/a b.png,3.000", hash.to_hex());
        let parsed = parse_line(line.as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.hash, hash);
        assert_eq!(parsed.quality, Some(73));
        let fields: Vec<&str> = parsed.metadata_fields().collect();
        assert_eq!(fields, ["73", "frames/a b.png", "3.000"]);
    }

    #[test]
    fn duplicates_keep_the_first_metadata_and_a_count() {
        let text = format!("{A},90,first.jpg\n{B},10,other\n{A},50,second.jpg\n{A}\n");
        let list = parse_text(&text).unwrap();
        assert_eq!(list.hashes.len(), 2);
        assert_eq!(list.duplicates_merged, 2);
        let id = list
            .hashes
            .binary_search(&Hash256::from_hex(A).unwrap())
            .unwrap();
        let entry = list.metadata.get(id).unwrap();
        assert_eq!(entry.fields, "90,first.jpg");
        assert_eq!(entry.duplicates, 2);
        assert_eq!(entry.line, Some(1));
    }

    #[test]
    fn bad_lines_are_named_by_file_and_line() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                format!("{A}\nhello,world\n").into_bytes(),
                "lists/test.csv:2: no field is a 64-hex-digit hash",
            ),
            (
                format!("# c\n\n{}x,1\n", &A[..63]).into_bytes(),
                "lists/test.csv:3: field 1: non-hex character 'x' at position 64",
            ),
            (
                format!("{},100,a.jpg\n", &A[..62]).into_bytes(),
                "lists/test.csv:1: field 1: 62 hex digits, a hash has 64",
            ),
            (
                format!("{A}\n{}\n", "7".repeat(5000)).into_bytes(),
                "lists/test.csv:2: line longer than 4096 bytes",
            ),
            (
                [A.as_bytes(), b",caf\xe9\n"].concat(),
                "lists/test.csv:1: not UTF-8 (invalid byte at column 69)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(error_text(&text), expected);
        }
    }

    #[test]
    fn caps_on_hashes_and_file_size_hold() {
        let text = format!("{A}\n{B}\n{A}\n");
        let limits = ListLimits {
            max_hashes: 2,
            ..ListLimits::default()
        };
        let error = parse_with(text.as_bytes(), limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/test.csv:3: more than 2 hashes, the list's cap"
        );
        let limits = ListLimits {
            max_file_bytes: 100,
            ..ListLimits::default()
        };
        let error = parse_with(text.as_bytes(), limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "lists/test.csv: larger than the 100-byte cap"
        );
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes (biased towards list-like text) never panic; an error names a
        /// line that exists, and a success holds at most one hash per line.
        #[test]
        fn arbitrary_input_is_rejected_or_read(
            lines in proptest::collection::vec(
                prop_oneof![
                    proptest::string::string_regex("[0-9a-fA-F]{60,66}(,[0-9]{1,3})?(,[a-z. ]{0,8})?")
                        .unwrap()
                        .prop_map(String::into_bytes),
                    proptest::collection::vec(any::<u8>(), 0..80),
                    Just(b"# comment".to_vec()),
                ],
                0..20,
            )
        ) {
            let text = lines.join(&b'\n');
            let limits = ListLimits { max_line_bytes: 70, ..ListLimits::default() };
            let line_count = text.split(|&b| b == b'\n').count() as u32;
            match parse_with(&text, limits) {
                Ok(list) => prop_assert!(list.hashes.len() as u32 <= line_count),
                Err(HashListError::Line { line, .. }) => {
                    prop_assert!(line >= 1 && line <= line_count)
                }
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
    }

    #[test]
    fn files_are_read_from_disk_with_their_path_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.csv");
        std::fs::write(&path, format!("\u{feff}{A},99,x\n")).unwrap();
        let list = HashList::load(&path, &ListLimits::default()).unwrap();
        assert_eq!(list.hashes, [Hash256::from_hex(A).unwrap()]);
        let missing = dir.path().join("missing.csv");
        let error = HashList::load(&missing, &ListLimits::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read hash list {}:", missing.display()))
        );
    }
}
