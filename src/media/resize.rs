//! Sampling an RGB24 picture at fractional positions, to resize it to a model's input
//! (the classifier's and the descriptor's preprocessing).

use livegate_signals::pdq::Image;

/// The picture's colour at a fractional position (pixel centres at integers), edges
/// clamped, as OpenCV's `INTER_LINEAR` samples.
pub fn bilinear(picture: &Image<'_>, x: f32, y: f32) -> [f32; 3] {
    let max_x = picture.width.saturating_sub(1);
    let max_y = picture.height.saturating_sub(1);
    let (x, y) = (x.max(0.0), y.max(0.0));
    let (x0, y0) = ((x as usize).min(max_x), (y as usize).min(max_y));
    let (x1, y1) = ((x0 + 1).min(max_x), (y0 + 1).min(max_y));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let pixel = |px: usize, py: usize, c: usize| {
        f32::from(
            picture
                .data
                .get(py * picture.stride + px * 3 + c)
                .copied()
                .unwrap_or(0),
        )
    };
    std::array::from_fn(|c| {
        let top = pixel(x0, y0, c) * (1.0 - fx) + pixel(x1, y0, c) * fx;
        let bottom = pixel(x0, y1, c) * (1.0 - fx) + pixel(x1, y1, c) * fx;
        top * (1.0 - fy) + bottom * fy
    })
}
