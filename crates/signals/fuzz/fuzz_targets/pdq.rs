//! Fuzzes PDQ hashing on arbitrary pixel buffers: any size, stride and layout must hash
//! or fail with an error, never panic, and the plain and dihedral hashes must agree on
//! whether the buffer is usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_signals::pdq::{Image, LumaFormula, PdqHasher, PixelLayout};

fuzz_target!(|input: &[u8]| {
    // Four header bytes choose the geometry and the layout (sizes up to 255 keep runs
    // fast and still cover tiny, odd, 64×64 and decimated images); the rest are pixels.
    let ([width, height, padding, layout], data) = match input {
        [w, h, p, l, rest @ ..] => ([*w, *h, *p, *l], rest),
        _ => return,
    };
    let layout = match layout % 3 {
        0 => PixelLayout::Gray8,
        1 => PixelLayout::Rgb8(LumaFormula::Float64Rounded),
        _ => PixelLayout::Rgb8(LumaFormula::Float32),
    };
    let bytes_per_pixel = if layout == PixelLayout::Gray8 { 1 } else { 3 };
    let width = usize::from(width);
    // A padding byte above 127 makes the stride too short: that error path is fuzzed too.
    let stride = (width * bytes_per_pixel + usize::from(padding % 128))
        .saturating_sub(usize::from(padding / 128));
    let image = Image {
        data,
        width,
        height: usize::from(height),
        stride,
    };
    let mut hasher = PdqHasher::new();
    let plain = hasher.hash(image, layout);
    let dihedral = hasher.hash_dihedral(image, layout);
    assert_eq!(plain.is_ok(), dihedral.is_ok(), "{plain:?} / {dihedral:?}");
    if let (Ok(plain), Ok(dihedral)) = (plain, dihedral) {
        assert!(plain.quality <= 100 && dihedral.quality <= 100);
    }
});
