//! Fuzzes the descriptor-list reader: any file content must read or fail with a
//! `file:line` (or cap) error within small caps, never panic; what was read must search
//! exactly like the f32 brute force.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_signals::descriptor::{
    Descriptor, DescriptorList, DescriptorListError, DescriptorListLimits, DescriptorModel,
};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let limits = DescriptorListLimits {
        max_line_bytes: 256,
        max_file_bytes: 1 << 16,
        max_descriptors: 64,
    };
    // 4 dimensions: an 8-character vector field, easy for the fuzzer to hit.
    let Ok(model) = DescriptorModel::new("fuzz", 4) else {
        return;
    };
    // An input starting with 'H' gets a valid header line in place of that byte, so the
    // fuzzer reaches the record parser without having to guess the header first.
    let text = match data.split_first() {
        Some((b'H', rest)) => [b"livegate-descriptors 1 model=fuzz dim=4\n", rest].concat(),
        _ => data.to_vec(),
    };
    let mut list = DescriptorList::new(model);
    let result = list.read(Path::new("fuzz.txt"), text.as_slice(), &limits);
    let lines = text.split(|&b| b == b'\n').count();
    match result {
        Ok(()) | Err(DescriptorListError::Line { .. }) => {}
        Err(DescriptorListError::TooManyDescriptors { line, .. }) => {
            assert!(line as usize <= lines)
        }
        Err(other) => panic!("unexpected error {other}"),
    }
    if let Err(DescriptorListError::Line { line, .. }) = result {
        assert!(line >= 1 && line as usize <= lines);
    }
    assert!(list.len() <= limits.max_descriptors);
    assert_eq!(list.len(), list.metadata().len());
    let Ok(query) = Descriptor::new(vec![0.5, -0.5, 0.25, 1.0]) else {
        return;
    };
    let index = list.index();
    for threshold in [-1.0, 0.0, 0.5, 0.99] {
        assert_eq!(
            index.search(&query, threshold).ok(),
            index.brute_force_search(&query, threshold).ok()
        );
    }
    assert_eq!(index.top_k(&query, 3).ok(), index.brute_force_top_k(&query, 3).ok());
});
