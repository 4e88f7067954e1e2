//! Finding the picture inside black bars (letterbox, pillarbox, windowbox).
//!
//! Re-uploaders often shrink footage into a frame with black bars; PDQ of the whole
//! frame then differs from the original's by far more than the match threshold. The
//! live path hashes the picture inside the bars as well, so those copies still match.

use livegate_signals::pdq::Image;

/// A channel value at or below this is black (swscale maps limited-range black to 0;
/// compression noise near a bar's edge stays well under it).
const DARK_LEVEL: u8 = 40;
/// A bar must be at least this fraction of the frame's side to count (single dark
/// rows at the edge are encoder padding, not a letterbox).
const MIN_BAR_FRACTION: f64 = 0.03;
/// The picture inside the bars must keep at least this fraction of each side.
const MIN_CONTENT_FRACTION: f64 = 0.3;

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
    let (width, height) = (image.width, image.height);
    if width < 16 || height < 16 || image.stride < width * 3 {
        return None;
    }
    let pixel = |x: usize, y: usize| {
        let at = y * image.stride + x * 3;
        image.data.get(at..at + 3)
    };
    let dark = |rgb: Option<&[u8]>| rgb.is_some_and(|rgb| rgb.iter().all(|&c| c <= DARK_LEVEL));
    let row_dark = |y: usize| (0..width).all(|x| dark(pixel(x, y)));
    let column_dark =
        |x: usize, top: usize, bottom: usize| (top..bottom).all(|y| dark(pixel(x, y)));

    let top = (0..height).take_while(|&y| row_dark(y)).count();
    if top == height {
        return None;
    }
    let bottom = height - (0..height).rev().take_while(|&y| row_dark(y)).count();
    let left = (0..width)
        .take_while(|&x| column_dark(x, top, bottom))
        .count();
    let right = width
        - (0..width)
            .rev()
            .take_while(|&x| column_dark(x, top, bottom))
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
