//! Finding the picture inside black bars (letterbox, pillarbox, windowbox), or inside
//! uniform borders of any colour (a picture-in-picture frame, a coloured letterbox).
//!
//! Re-uploaders often shrink footage into a frame with black bars; PDQ of the whole
//! frame then differs from the original's by far more than the match threshold. The
//! live path hashes the picture inside the bars as well, so those copies still match.
//! The descriptor trims uniform borders of any colour, on the list side and the live side
//! alike ([`find_uniform_border_box`]); PDQ keeps the black-only rule it was measured with.

use livegate_signals::pdq::Image;

/// A channel value at or below this is black (swscale maps limited-range black to 0;
/// compression noise near a bar's edge stays well under it).
const DARK_LEVEL: u8 = 40;
/// A bar must be at least this fraction of the frame's side to count (single dark
/// rows at the edge are encoder padding, not a letterbox).
const MIN_BAR_FRACTION: f64 = 0.03;
/// The picture inside the bars must keep at least this fraction of each side.
const MIN_CONTENT_FRACTION: f64 = 0.3;
/// A pixel within this of a border's colour (on every channel) belongs to the border:
/// a flat colour survives encoding within a few levels, while a picture's edge rarely
/// stays this close to one colour along a whole row or column. (16 trimmed a third of a
/// blurry grey microscopy photograph.)
const UNIFORM_TOLERANCE: u8 = 8;

/// Which pixels a border is made of.
#[derive(Clone, Copy)]
enum Border {
    /// Black (see [`DARK_LEVEL`]).
    Dark,
    /// The colour of the border's outermost corner pixel; any dark pixel when that is
    /// dark (encoding noise in black bars exceeds the tolerance).
    Uniform,
}

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentBox {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// The picture inside dark bars of an RGB8 image, or `None` when there are no bars
/// (or the frame is dark all over, which is a dark scene, not bars).
pub fn find_content_box(image: &Image<'_>) -> Option<ContentBox> {
    find_box(image, Border::Dark)
}

/// The picture inside uniform borders of any colour (each side's colour is its corner
/// pixel's), black bars included, or `None` as for [`find_content_box`].
pub fn find_uniform_border_box(image: &Image<'_>) -> Option<ContentBox> {
    find_box(image, Border::Uniform)
}

fn find_box(image: &Image<'_>, border: Border) -> Option<ContentBox> {
    let (width, height) = (image.width, image.height);
    if width < 16 || height < 16 || image.stride < width * 3 {
        return None;
    }
    let pixel = |x: usize, y: usize| {
        let at = y * image.stride + x * 3;
        image.data.get(at..at + 3)
    };
    // `reference`: the side's corner pixel, the colour a uniform border has.
    let in_border = |reference: Option<&[u8]>, rgb: Option<&[u8]>| {
        let Some(rgb) = rgb else { return false };
        let dark = rgb.iter().all(|&c| c <= DARK_LEVEL);
        match (border, reference) {
            (Border::Dark, _) | (Border::Uniform, None) => dark,
            (Border::Uniform, Some(reference)) => {
                let dark_border = reference.iter().all(|&c| c <= DARK_LEVEL);
                (dark_border && dark)
                    || rgb
                        .iter()
                        .zip(reference)
                        .all(|(c, r)| c.abs_diff(*r) <= UNIFORM_TOLERANCE)
            }
        }
    };
    let row_border =
        |y: usize, corner_y: usize| (0..width).all(|x| in_border(pixel(0, corner_y), pixel(x, y)));
    let column_border = |x: usize, corner_x: usize, top: usize, bottom: usize| {
        (top..bottom).all(|y| in_border(pixel(corner_x, top), pixel(x, y)))
    };

    let top = (0..height).take_while(|&y| row_border(y, 0)).count();
    if top == height {
        return None;
    }
    let bottom = height
        - (0..height)
            .rev()
            .take_while(|&y| row_border(y, height - 1))
            .count();
    let left = (0..width)
        .take_while(|&x| column_border(x, 0, top, bottom))
        .count();
    let right = width
        - (0..width)
            .rev()
            .take_while(|&x| column_border(x, width - 1, top, bottom))
            .count();

    let bar = |size: usize, side: usize| size as f64 >= side as f64 * MIN_BAR_FRACTION;
    let has_bars = bar(top, height)
        || bar(height - bottom, height)
        || bar(left, width)
        || bar(width - right, width);
    let content = ContentBox {
        x: left,
        y: top,
        width: right.saturating_sub(left),
        height: bottom.saturating_sub(top),
    };
    let big_enough = content.width as f64 >= width as f64 * MIN_CONTENT_FRACTION
        && content.height as f64 >= height as f64 * MIN_CONTENT_FRACTION;
    (has_bars && big_enough).then_some(content)
}

/// The part of an RGB8 image inside `content` (no copy: same buffer, same stride).
pub fn crop<'a>(image: &Image<'a>, content: ContentBox) -> Option<Image<'a>> {
    let start = content.y * image.stride + content.x * 3;
    let data = image.data.get(start..)?;
    Some(Image {
        data,
        width: content.width,
        height: content.height,
        stride: image.stride,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width`×`height` RGB image, black outside `content`, textured inside.
    fn framed(width: usize, height: usize, content: ContentBox) -> Vec<u8> {
        let mut data = vec![0u8; width * height * 3];
        for y in content.y..content.y + content.height {
            for x in content.x..content.x + content.width {
                let at = (y * width + x) * 3;
                data[at..at + 3].copy_from_slice(&[
                    (x * 7 % 200 + 50) as u8,
                    (y * 3 % 200 + 50) as u8,
                    90,
                ]);
            }
        }
        data
    }

    fn image(data: &[u8], width: usize, height: usize) -> Image<'_> {
        Image {
            data,
            width,
            height,
            stride: width * 3,
        }
    }

    #[test]
    fn finds_letterbox_pillarbox_and_windowbox() {
        let cases = [
            ContentBox {
                x: 0,
                y: 90,
                width: 1280,
                height: 540,
            },
            ContentBox {
                x: 160,
                y: 0,
                width: 960,
                height: 720,
            },
            ContentBox {
                x: 160,
                y: 90,
                width: 960,
                height: 540,
            },
        ];
        for content in cases {
            let data = framed(1280, 720, content);
            assert_eq!(find_content_box(&image(&data, 1280, 720)), Some(content));
        }
    }

    #[test]
    fn no_bars_no_box() {
        let full = ContentBox {
            x: 0,
            y: 0,
            width: 320,
            height: 180,
        };
        let data = framed(320, 180, full);
        assert_eq!(find_content_box(&image(&data, 320, 180)), None);
        // A dark line or two at the edge is not a bar.
        let data = framed(
            320,
            180,
            ContentBox {
                x: 0,
                y: 2,
                width: 320,
                height: 178,
            },
        );
        assert_eq!(find_content_box(&image(&data, 320, 180)), None);
    }

    #[test]
    fn dark_scenes_and_tiny_content_are_not_boxes() {
        let data = vec![5u8; 320 * 180 * 3];
        assert_eq!(find_content_box(&image(&data, 320, 180)), None);
        let data = framed(
            320,
            180,
            ContentBox {
                x: 150,
                y: 80,
                width: 20,
                height: 20,
            },
        );
        assert_eq!(find_content_box(&image(&data, 320, 180)), None);
    }

    #[test]
    fn uniform_borders_of_any_colour_are_trimmed_black_ones_too() {
        let content = ContentBox {
            x: 100,
            y: 40,
            width: 200,
            height: 120,
        };
        let mut data = framed(400, 200, content);
        // A grey frame around the picture, with a little encoding noise.
        for y in 0..200 {
            for x in 0..400 {
                let inside = (content.x..content.x + content.width).contains(&x)
                    && (content.y..content.y + content.height).contains(&y);
                if !inside {
                    let at = (y * 400 + x) * 3;
                    let noise = ((x * 31 + y * 17) % 5) as u8;
                    data[at..at + 3].copy_from_slice(&[120 + noise, 124, 128 - noise]);
                }
            }
        }
        let grey = image(&data, 400, 200);
        assert_eq!(find_content_box(&grey), None, "PDQ's rule trims black only");
        assert_eq!(find_uniform_border_box(&grey), Some(content));

        let black = framed(400, 200, content);
        assert_eq!(
            find_uniform_border_box(&image(&black, 400, 200)),
            Some(content)
        );
        // A flat picture is a flat scene, not a border.
        let flat = vec![200u8; 400 * 200 * 3];
        assert_eq!(find_uniform_border_box(&image(&flat, 400, 200)), None);
    }

    #[test]
    fn crop_views_the_same_buffer() {
        let content = ContentBox {
            x: 160,
            y: 90,
            width: 960,
            height: 540,
        };
        let data = framed(1280, 720, content);
        let whole = image(&data, 1280, 720);
        let cropped = crop(&whole, content).expect("inside the buffer");
        assert_eq!(
            (cropped.width, cropped.height, cropped.stride),
            (960, 540, 1280 * 3)
        );
        assert_eq!(&cropped.data[..3], &data[(90 * 1280 + 160) * 3..][..3]);
    }
}
