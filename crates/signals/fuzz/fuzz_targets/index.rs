//! Fuzzes the hash index against brute force: for arbitrary stored hashes, slot width,
//! query and radius, the planned search and the forced multi-index probe must both return
//! exactly the linear scan's neighbours, in the same order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_signals::hash256::Hash256;
use livegate_signals::index::HashIndex;

fuzz_target!(|input: &[u8]| {
    // Two header bytes: slot width and radius; then the query and the stored hashes,
    // 32 bytes each. Inputs of near-duplicates exercise the small radii a real list sees.
    let ([slot_bits, radius], data) = match input {
        [b, r, rest @ ..] => ([*b, *r], rest),
        _ => return,
    };
    let mut hashes = data.chunks_exact(32).map(|chunk| {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(chunk);
        Hash256::from_bytes(bytes)
    });
    let Some(query) = hashes.next() else {
        return;
    };
    let stored: Vec<Hash256> = hashes.collect();
    // Slots of 8 to 16 bits: wider ones only add 64 MiB offset tables, not new code paths.
    let Ok(index) = HashIndex::with_slot_bits(stored, 8 + u32::from(slot_bits % 9)) else {
        return;
    };
    let radius = u32::from(radius);
    let mut expected = Vec::new();
    index.linear_search_into(&query, radius, &mut expected);
    assert_eq!(index.search(&query, radius), expected);
    let mut probed = Vec::new();
    index.multi_index_search_into(&query, radius, &mut probed);
    assert_eq!(probed, expected);
});
