# Real photographs (scikit-image's data, public domain or CC0) as 1280x720 frames, and the
# edits a re-streamer makes to slip past hash matching, as PNGs in argv[1]:
#   source_NN.png       the photo filling the frame (scaled to cover, centred)
#   EDIT_NN.png         the frame after EDIT (see EDITS below)
# Prints one line per photo: "NN name". Edits draw on rocket.jpg as the other footage a
# picture-in-picture is shown over; it is not among the sources.
import os, sys
import skimage
from PIL import Image, ImageDraw, ImageFont, ImageOps

W, H = 1280, 720
DATA = os.path.join(os.path.dirname(skimage.__file__), "data")
# Photographs only (no charts, text pages or synthetic phantoms); motorcycle_right is a
# near-duplicate of motorcycle_left and rocket is the background footage.
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
          "motorcycle_left.png", "retina.jpg", "camera.png", "coins.png", "moon.png",
          "brick.png", "grass.png", "gravel.png", "cell.png", "clock_motion.png"]


def frame(path):
    return ImageOps.fit(Image.open(path).convert("RGB"), (W, H), Image.Resampling.LANCZOS)


def crop(img, fraction):
    # Centre crop keeping `1 - fraction` of each side, scaled back to the frame.
    dx, dy = round(W * fraction / 2), round(H * fraction / 2)
    return img.crop((dx, dy, W - dx, H - dy)).resize((W, H), Image.Resampling.BILINEAR)


def zoom_corner(img, index):
    # 10 % zoom anchored at one corner (turning with the photo's index).
    w, h = round(W / 1.1), round(H / 1.1)
    x = 0 if index % 2 == 0 else W - w
    y = 0 if index // 2 % 2 == 0 else H - h
    return img.crop((x, y, x + w, y + h)).resize((W, H), Image.Resampling.BILINEAR)


def banner(img):
    out = img.copy()
    draw = ImageDraw.Draw(out)
    top = round(H * 0.85)
    draw.rectangle((0, top, W, H), fill=(180, 20, 30))
    draw.rectangle((24, top + 14, W - 24, H - 14), outline=(255, 255, 255), width=3)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", 44)
    except OSError:
        font = ImageFont.load_default()
    draw.text((48, top + 24), "LIVE  -  WATCH THE FULL STREAM NOW", fill=(255, 255, 255), font=font)
    return out


def pip(img, background, scale, index):
    # The frame shrunk to `scale`, 3 % from one corner (turning with the index).
    out = background.copy()
    w, h = round(W * scale), round(H * scale)
    margin_x, margin_y = round(W * 0.03), round(H * 0.03)
    x = margin_x if index % 2 == 0 else W - w - margin_x
    y = margin_y if index // 2 % 2 == 0 else H - h - margin_y
    out.paste(img.resize((w, h), Image.Resampling.BILINEAR), (x, y))
    return out


def rotate(img, degrees):
    # As ffmpeg's rotate filter does by default: same size, black corners.
    return img.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))


def letterbox(img):
    # Shown in a 4:3 frame with black bars, then scaled to the frame again.
    boxed = Image.new("RGB", (960, 720))
    boxed.paste(img.resize((960, 540), Image.Resampling.BILINEAR), (0, 90))
    return boxed.resize((W, H), Image.Resampling.BILINEAR)


def main():
    out = sys.argv[1]
    background = frame(os.path.join(DATA, "rocket.jpg"))
    for index, name in enumerate(PHOTOS):
        img = frame(os.path.join(DATA, name))
        edits = {
            "source": img,
            "crop8": crop(img, 0.08),
            "crop16": crop(img, 0.16),
            "zoom10": zoom_corner(img, index),
            "banner": banner(img),
            "pip75": pip(img, background, 0.75, index),
            "pip50": pip(img, background, 0.50, index),
            "rotate3": rotate(img, 3),
            "mirror": ImageOps.mirror(img),
            "letterbox": letterbox(img),
        }
        for edit, picture in edits.items():
            picture.save(os.path.join(out, f"{edit}_{index:02}.png"), compress_level=1)
        print(f"{index:02} {name}")


main()
