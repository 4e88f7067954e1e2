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
