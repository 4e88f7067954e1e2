//! Sampling an RGB24 picture at fractional positions, to resize it to a model's input
//! (the classifier's and the descriptor's preprocessing).

use livegate_signals::pdq::Image;

/// The two pixels around a fractional position along one side, and the second's weight.
#[derive(Debug, Clone, Copy)]
struct Tap {
    first: usize,
    second: usize,
    weight: f32,
}

/// Pixel centres at integers, edges clamped, as OpenCV's `INTER_LINEAR` samples.
fn tap(position: f32, side: usize) -> Tap {
    let last = side.saturating_sub(1);
    let position = position.max(0.0);
    let first = (position as usize).min(last);
    Tap {
        first,
        second: (first + 1).min(last),
        weight: position - first as f32,
    }
}

/// The two rows of a vertical tap (empty past the buffer's end: black).
fn rows<'a>(picture: &Image<'a>, y: Tap) -> (&'a [u8], &'a [u8]) {
    let row = |py: usize| picture.data.get(py * picture.stride..).unwrap_or_default();
    (row(y.first), row(y.second))
}

/// The colour between the four pixels of a column tap `x` on two rows, the second
/// weighing `y_weight`.
#[inline]
fn sample(top: &[u8], bottom: &[u8], x: Tap, y_weight: f32) -> [f32; 3] {
    let pixel = |row: &[u8], px: usize| -> [f32; 3] {
        row.get(px * 3..px * 3 + 3)
            .map_or([0.0; 3], |rgb| [rgb[0], rgb[1], rgb[2]].map(f32::from))
    };
    let (a, b) = (pixel(top, x.first), pixel(top, x.second));
    let (c, d) = (pixel(bottom, x.first), pixel(bottom, x.second));
    std::array::from_fn(|i| {
        let upper = a[i] + (b[i] - a[i]) * x.weight;
        let lower = c[i] + (d[i] - c[i]) * x.weight;
        upper + (lower - upper) * y_weight
    })
}

/// The picture's colour at a fractional position (pixel centres at integers), edges
/// clamped, as OpenCV's `INTER_LINEAR` samples.
pub fn bilinear(picture: &Image<'_>, x: f32, y: f32) -> [f32; 3] {
    let y = tap(y, picture.height);
    let (top, bottom) = rows(picture, y);
    sample(top, bottom, tap(x, picture.width), y.weight)
}

/// Calls `put(x, y, rgb)` for every pixel of `picture` stretched to `width`×`height`,
/// sampled as [`bilinear`] samples (the column taps computed once, not per pixel).
pub fn stretch(
    picture: &Image<'_>,
    width: usize,
    height: usize,
    mut put: impl FnMut(usize, usize, [f32; 3]),
) {
    let step_x = picture.width.max(1) as f32 / width.max(1) as f32;
    let step_y = picture.height.max(1) as f32 / height.max(1) as f32;
    let columns: Vec<Tap> = (0..width)
        .map(|x| tap((x as f32 + 0.5) * step_x - 0.5, picture.width))
        .collect();
    for y in 0..height {
        let row = tap((y as f32 + 0.5) * step_y - 0.5, picture.height);
        let (top, bottom) = rows(picture, row);
        for (x, column) in columns.iter().enumerate() {
            put(x, y, sample(top, bottom, *column, row.weight));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretching_samples_as_bilinear_does() {
        let pixels: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let picture = Image {
            data: &pixels,
            width: 5,
            height: 3,
            stride: 15,
        };
        let (width, height) = (7, 2);
        let mut count = 0;
        stretch(&picture, width, height, |x, y, rgb| {
            let (step_x, step_y) = (5.0f32 / 7.0, 3.0f32 / 2.0);
            let expected = bilinear(
                &picture,
                (x as f32 + 0.5) * step_x - 0.5,
                (y as f32 + 0.5) * step_y - 0.5,
            );
            assert_eq!(rgb, expected, "({x}, {y})");
            count += 1;
        });
        assert_eq!(count, width * height);
        // A pixel centre is the pixel itself.
        assert_eq!(
            bilinear(&picture, 1.0, 2.0),
            [pixels[33], pixels[34], pixels[35]].map(f32::from)
        );
    }
}
