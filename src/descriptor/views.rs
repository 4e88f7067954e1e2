//! The views of a picture the descriptor describes.
//!
//! Both sides first trim uniform borders (letterbox, pillarbox, a coloured frame around
//! a picture-in-picture; [`trim_borders`]). A list describes the trimmed picture whole;
//! the live side also describes crops of it, because an edited re-stream shows the
//! listed picture as only a part of its own: picture-in-picture at 75 % fills one 75 %
//! corner (or the centre), a banner covers the bottom, so the top 85 % is the original
//! without it. Crops and zoom of the original are caught by the whole live picture, whose
//! content is most of the original's. Every view is a rectangle of the picture's buffer
//! (no copy).
//!
//! A [`ViewCycle`] spreads the views over keyframes when the CPU budget does not allow
//! all of them on every keyframe: the whole picture every time, the others in turn. A
//! picture-in-picture or banner layout holds for seconds, so a view described every few
//! keyframes still sees it. What each view buys, per edit, is measured in BENCHMARKS.md
//! ("Descriptor"): the top 85 % for the banner, a 75 % corner for picture-in-picture at
//! 75 %, the 50 % views only for picture-in-picture at half size.

use serde::{Deserialize, Serialize};

use crate::media::borders::{ContentBox, crop, find_uniform_border_box};
use livegate_signals::pdq::Image;

/// A rectangle of a picture as fractions of its sides, named for audit records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub name: &'static str,
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

const fn view(name: &'static str, x: f32, y: f32, side: f32) -> View {
    View {
        name,
        x,
        y,
        width: side,
        height: side,
    }
}

/// The whole (trimmed) picture.
pub const WHOLE: View = view("whole", 0.0, 0.0, 1.0);

/// `standard`: the whole picture, 75 % corners and centre, the top 85 %.
const STANDARD: [View; 7] = [
    WHOLE,
    view("top_left_75", 0.0, 0.0, 0.75),
    view("top_right_75", 0.25, 0.0, 0.75),
    view("bottom_left_75", 0.0, 0.25, 0.75),
    view("bottom_right_75", 0.25, 0.25, 0.75),
    view("centre_75", 0.125, 0.125, 0.75),
    View {
        name: "top_85",
        x: 0.0,
        y: 0.0,
        width: 1.0,
        height: 0.85,
    },
];

/// `extended`: `standard` and 50 % corners and centre (picture-in-picture at half size).
const EXTENDED: [View; 12] = [
    STANDARD[0],
    STANDARD[1],
    STANDARD[2],
    STANDARD[3],
    STANDARD[4],
    STANDARD[5],
    STANDARD[6],
    view("top_left_50", 0.0, 0.0, 0.5),
    view("top_right_50", 0.5, 0.0, 0.5),
    view("bottom_left_50", 0.0, 0.5, 0.5),
    view("bottom_right_50", 0.5, 0.5, 0.5),
    view("centre_50", 0.25, 0.25, 0.5),
];

/// `descriptor.views`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ViewSet {
    /// The whole picture only.
    Full,
    /// The whole picture, 75 % corners and centre, the top 85 % (7 views).
    #[default]
    Standard,
    /// `standard` and 50 % corners and centre (12 views).
    Extended,
}

impl ViewSet {
    /// The set's views, the whole picture first.
    pub fn views(self) -> &'static [View] {
        match self {
            ViewSet::Full => std::slice::from_ref(&WHOLE),
            ViewSet::Standard => &STANDARD,
            ViewSet::Extended => &EXTENDED,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ViewSet::Full => "full",
            ViewSet::Standard => "standard",
            ViewSet::Extended => "extended",
        }
    }
}

/// The picture inside uniform borders, or the picture itself when it has none.
pub fn trim_borders<'a>(picture: &Image<'a>) -> Image<'a> {
    find_uniform_border_box(picture)
        .and_then(|content| crop(picture, content))
        .unwrap_or(*picture)
}

/// `view`'s rectangle of a `width`×`height` picture, at least one pixel a side.
pub fn view_box(view: &View, width: usize, height: usize) -> ContentBox {
    let span = |start: f32, size: f32, side: usize| {
        let begin = ((start * side as f32).round() as usize).min(side.saturating_sub(1));
        let end = (((start + size) * side as f32).round() as usize).clamp(begin + 1, side.max(1));
        (begin, end - begin)
    };
    let (x, width) = span(view.x, view.width, width);
    let (y, height) = span(view.y, view.height, height);
    ContentBox {
        x,
        y,
        width,
        height,
    }
}

/// `view` of `picture` (same buffer, same stride); `None` for an empty picture.
pub fn crop_view<'a>(picture: &Image<'a>, view: &View) -> Option<Image<'a>> {
    if picture.width == 0 || picture.height == 0 {
        return None;
    }
    crop(picture, view_box(view, picture.width, picture.height))
}

/// Which views of a stream's keyframes to describe next: all of them, or the whole
/// picture and `per_keyframe - 1` of the others in turn.
#[derive(Debug, Clone)]
pub struct ViewCycle {
    views: &'static [View],
    per_keyframe: usize,
    /// The first of the other views to describe on the next keyframe.
    next: usize,
}

impl ViewCycle {
    /// `per_keyframe`: `descriptor.views_per_keyframe` (`None`: all views every time).
    pub fn new(set: ViewSet, per_keyframe: Option<usize>) -> Self {
        let views = set.views();
        ViewCycle {
            views,
            per_keyframe: per_keyframe.unwrap_or(views.len()).clamp(1, views.len()),
            next: 0,
        }
    }

    /// The views of the next keyframe, the whole picture first.
    pub fn next_views(&mut self) -> Vec<View> {
        let Some((whole, others)) = self.views.split_first() else {
            return Vec::new();
        };
        let take = (self.per_keyframe - 1).min(others.len());
        let mut chosen = Vec::with_capacity(take + 1);
        chosen.push(*whole);
        chosen.extend((0..take).map(|i| others[(self.next + i) % others.len()]));
        if !others.is_empty() {
            self.next = (self.next + take) % others.len();
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A `width`×`height` RGB picture whose pixel at (x, y) encodes its position.
    fn positions(width: usize, height: usize) -> Vec<u8> {
        (0..height)
            .flat_map(|y| (0..width).flat_map(move |x| [x as u8, y as u8, 77]))
            .collect()
    }

    fn picture(data: &[u8], width: usize, height: usize) -> Image<'_> {
        Image {
            data,
            width,
            height,
            stride: width * 3,
        }
    }

    fn origin(view: &Image<'_>) -> (u8, u8) {
        (view.data[0], view.data[1])
    }

    #[test]
    fn crops_are_the_documented_rectangles_of_the_same_buffer() {
        let data = positions(200, 100);
        let whole = picture(&data, 200, 100);
        let crop = |name: &str| {
            let view = ViewSet::Extended
                .views()
                .iter()
                .find(|view| view.name == name)
                .expect("named view");
            crop_view(&whole, view).expect("crop")
        };
        let bottom_right = crop("bottom_right_75");
        assert_eq!((bottom_right.width, bottom_right.height), (150, 75));
        assert_eq!(origin(&bottom_right), (50, 25));
        assert_eq!(bottom_right.stride, whole.stride, "no copy");
        assert!(std::ptr::eq(
            bottom_right.data.as_ptr(),
            data[(25 * 200 + 50) * 3..].as_ptr()
        ));
        let centre = crop("centre_75");
        assert_eq!(
            (centre.width, centre.height, origin(&centre)),
            (150, 75, (25, 13))
        );
        let top = crop("top_85");
        assert_eq!((top.width, top.height, origin(&top)), (200, 85, (0, 0)));
        let half = crop("bottom_right_50");
        assert_eq!(
            (half.width, half.height, origin(&half)),
            (100, 50, (100, 50))
        );
        // The last row and column of a bottom-right crop are the picture's.
        let last = (bottom_right.height - 1) * bottom_right.stride + (bottom_right.width - 1) * 3;
        assert_eq!(
            (bottom_right.data[last], bottom_right.data[last + 1]),
            (199, 99)
        );
    }

    #[test]
    fn tiny_pictures_still_give_one_pixel_views() {
        let data = positions(1, 1);
        let tiny = picture(&data, 1, 1);
        for view in ViewSet::Extended.views() {
            let crop = crop_view(&tiny, view).expect("crop");
            assert_eq!((crop.width, crop.height), (1, 1), "{}", view.name);
        }
        assert!(crop_view(&picture(&[], 0, 0), &WHOLE).is_none());
    }

    #[test]
    fn borders_are_trimmed_before_the_views() {
        // A 60x40 picture in a 100x80 frame of flat blue.
        let (width, height) = (100, 80);
        let mut data: Vec<u8> = [20, 40, 200].repeat(width * height);
        for y in 20..60 {
            for x in 20..80 {
                let at = (y * width + x) * 3;
                data[at..at + 3].copy_from_slice(&[(x * 4) as u8, (y * 5) as u8, 10]);
            }
        }
        let framed = picture(&data, width, height);
        let trimmed = trim_borders(&framed);
        assert_eq!((trimmed.width, trimmed.height), (60, 40));
        assert_eq!(origin(&trimmed), (80, 100));
        let corner = crop_view(&trimmed, &ViewSet::Standard.views()[4]).expect("crop");
        assert_eq!((corner.width, corner.height), (45, 30));
        assert_eq!(
            origin(&corner),
            (((20 + 15) * 4) as u8, ((20 + 10) * 5) as u8)
        );

        let plain = positions(100, 80);
        let untouched = trim_borders(&picture(&plain, 100, 80));
        assert_eq!((untouched.width, untouched.height), (100, 80));
    }

    #[test]
    fn a_cycle_describes_the_whole_picture_every_time_and_every_view_in_turn() {
        let mut all = ViewCycle::new(ViewSet::Standard, None);
        assert_eq!(all.next_views().len(), 7);
        assert_eq!(all.next_views().len(), 7);

        let mut cycle = ViewCycle::new(ViewSet::Extended, Some(4));
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            let views = cycle.next_views();
            assert_eq!(views.len(), 4);
            assert_eq!(views[0].name, "whole");
            seen.extend(views.iter().map(|view| view.name));
        }
        assert_eq!(seen.len(), 12, "every view within 4 keyframes: {seen:?}");

        let mut full = ViewCycle::new(ViewSet::Full, Some(1));
        assert_eq!(full.next_views(), vec![WHOLE]);
    }
}
