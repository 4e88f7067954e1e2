# Real photographs as 1280x720 frames, and the edits a re-streamer makes to slip past hash
# matching, as PNGs in argv[1] (the descriptor's test in tests/suite/descriptor.rs and
# `livegate-bench descriptor-recall` both run it):
#   source_NN.png       the photo filling the frame (scaled to cover, centred)
#   EDIT_NN.png         the frame after EDIT (see the edits in main)
# Prints one line per photo: "NN name". Edits draw on rocket.jpg as the other footage a
# picture-in-picture is shown over; it is not among the sources.
#
# `descriptor-edits.py DIR --recall` (the benchmark) adds five photographs of Debian's
# lomiri-wallpapers-16.04 (CC BY / CC BY-SA, installed by scripts/install-deps.sh) as
# sources 15-19 and writes a benign corpus nobody tuned on into DIR/benign: pans and zooms
# across the package's other photographs and the scikit-image pictures that are no source,
# scikit-image's lfw_subset faces and the frames of its animated GIF upscaled, and FFmpeg
# lavfi footage (test patterns, fractals, cellular automata, noise) encoded by x264.
import os, subprocess, sys
import numpy as np
import skimage
from PIL import Image, ImageDraw, ImageFont, ImageOps

W, H = 1280, 720
DATA = os.path.join(os.path.dirname(skimage.__file__), "data")
# Photographs only (no charts, text pages or synthetic phantoms); motorcycle_right is a
# near-duplicate of motorcycle_left and rocket is the background footage.
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
          "motorcycle_left.png", "retina.jpg", "camera.png", "coins.png", "moon.png",
          "brick.png", "grass.png", "gravel.png", "cell.png", "clock_motion.png"]
WALLPAPERS = "/usr/share/backgrounds"
# Photographs of lomiri-wallpapers-16.04: five more sources, the others benign.
MORE_PHOTOS = ["Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg",
               "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
               "picosdeeuropa_by_Aitzol_Berasategi.jpg"]
BENIGN_PHOTOS = ["Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg",
                 "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg",
                 "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
                 "life_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
                 "sunset_by_Aitzol_Berasategi.jpg", "umang_by_Abhishek_Mudgal.jpg"]
# scikit-image pictures that are no source (motorcycle_right is a near-duplicate of one).
BENIGN_SKIMAGE = ["rocket.jpg", "page.png", "text.png", "horse.png", "color.png", "logo.png",
                  "microaneurysms.png", "chessboard_RGB.png", "phantom.png"]
# FFmpeg 5.1 lavfi sources (at 5 frames a second, so that frames differ).
LAVFI = ["testsrc2=s=1280x720:r=5", "mandelbrot=s=1280x720:r=5", "life=s=1280x720:r=5:mold=10",
         "cellauto=s=1280x720:r=5:rule=110", "smptehdbars=s=1280x720:r=5",
         "gradients=s=1280x720:r=5:speed=0.05", "sierpinski=s=1280x720:r=5",
         "color=c=gray:s=1280x720:r=5,noise=alls=80:allf=t"]


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


def combined(img, index):
    # Zoom + mirror + banner, then a heavy re-encode (JPEG at quality 15).
    edited = banner(ImageOps.mirror(zoom_corner(img, index)))
    path = f"/tmp/descriptor-edits-{os.getpid()}.jpg"
    edited.save(path, quality=15)
    try:
        return Image.open(path).convert("RGB")
    finally:
        os.remove(path)


def pan_zoom(img, count):
    # `count` 1280x720 windows moving across the picture while zooming in from the
    # whole picture (scaled to cover) to 60 % of it: a camera over a still.
    base = ImageOps.fit(img.convert("RGB"), (W, H), Image.Resampling.LANCZOS)
    frames = []
    for step in range(count):
        t = step / max(count - 1, 1)
        scale = 1.0 - 0.4 * t
        w, h = W * scale, H * scale
        x, y = (W - w) * t, (H - h) * (0.5 + 0.5 * np.sin(2 * np.pi * t))
        frames.append(base.crop((round(x), round(y), round(x + w), round(y + h)))
                      .resize((W, H), Image.Resampling.BILINEAR))
    return frames


def benign(out):
    # Frames as JPEG (quality 90) and lavfi footage as x264, to keep the corpus small.
    os.makedirs(out, exist_ok=True)
    count = 0

    def save(picture, name):
        nonlocal count
        picture.save(os.path.join(out, f"{name}.jpg"), quality=90)
        count += 1

    for name in BENIGN_PHOTOS:
        for step, picture in enumerate(pan_zoom(Image.open(os.path.join(WALLPAPERS, name)), 30)):
            save(picture, f"pan_{name[:-4]}_{step:02}")
    for name in BENIGN_SKIMAGE:
        for step, picture in enumerate(pan_zoom(Image.open(os.path.join(DATA, name)), 10)):
            save(picture, f"pan_{name[:-4]}_{step:02}")
    for index, face in enumerate(skimage.data.lfw_subset()):
        face = Image.fromarray((face * 255).astype(np.uint8)).convert("RGB")
        save(ImageOps.pad(face.resize((720, 720), Image.Resampling.BICUBIC), (W, H)),
             f"face_{index:03}")
    gif = Image.open(os.path.join(DATA, "no_time_for_that_tiny.gif"))
    for index in range(gif.n_frames):
        gif.seek(index)
        save(ImageOps.fit(gif.convert("RGB"), (W, H), Image.Resampling.BICUBIC), f"gif_{index:02}")
    for index, source in enumerate(LAVFI):
        # Every frame a keyframe, as the live path sees keyframes; noise at a low
        # bitrate, the rest at a usual live quality.
        rate = ["-b:v", "1500k"] if "noise" in source else ["-crf", "23"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source,
                        "-frames:v", "60", "-c:v", "libx264", "-g", "1", "-pix_fmt", "yuv420p",
                        *rate, os.path.join(out, f"lavfi_{index}.mp4")], check=True)
        count += 60
    return count


def main():
    out = sys.argv[1]
    recall = sys.argv[2:] == ["--recall"]
    background = frame(os.path.join(DATA, "rocket.jpg"))
    photos = [os.path.join(DATA, name) for name in PHOTOS]
    if recall:
        photos += [os.path.join(WALLPAPERS, name) for name in MORE_PHOTOS]
    for index, path in enumerate(photos):
        img = frame(path)
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
            "combined": combined(img, index),
        }
        for edit, picture in edits.items():
            picture.save(os.path.join(out, f"{edit}_{index:02}.png"), compress_level=1)
        print(f"{index:02} {os.path.basename(path)}")
    if recall:
        print(f"benign {benign(os.path.join(out, 'benign'))}")


main()
