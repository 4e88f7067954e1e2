"""Generates the PDQ conformance corpus and Meta's reference hashes for it.

Usage: corpus.py OUT_DIR

Writes images (PNG, plus one JPEG) into OUT_DIR and OUT_DIR/expected.jsonl, one JSON object
per image: {"file", "hash", "quality", "dihedral": [8 hashes], "width", "height"}. Hashes
come from PyPI `pdqhash` (Meta's C++ pdqHash256FromFloatLuma / the dihedral variant) on the
image's 8-bit RGB pixels as Pillow decodes them (`convert("RGB")`), printed in the hex form
of Meta's Hash256::format (word 15 first): the 256-element bit vector pdqhash returns is
most-significant bit first, so packing it big-endian gives that hex.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image, ImageDraw


def to_hex(bits):
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def gradient(width, height, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    fx, fy, phase = rng.uniform(0.5, 6.0), rng.uniform(0.5, 6.0), rng.uniform(0, 6.28)
    base = np.stack(
        [
            127.5 + 127.5 * np.sin(fx * x / max(width, 1) * 6.28 + phase),
            255.0 * y / max(height - 1, 1),
            127.5 + 127.5 * np.cos(fy * (x + y) / max(width + height, 1) * 6.28),
        ],
        axis=-1,
    )
    return np.clip(base, 0, 255).astype(np.uint8)


def noise(width, height, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def mixed(width, height, seed):
    """Gradient with noise blocks: structure at several scales, still compressible."""
    image = gradient(width, height, seed).astype(np.int32)
    rng = np.random.default_rng(seed + 1)
    block = max(1, min(width, height) // 8)
    for _ in range(6):
        x0 = int(rng.integers(0, max(1, width - block)))
        y0 = int(rng.integers(0, max(1, height - block)))
        image[y0 : y0 + block, x0 : x0 + block] += rng.integers(
            -60, 60, size=image[y0 : y0 + block, x0 : x0 + block].shape
        )
    return np.clip(image, 0, 255).astype(np.uint8)


def text_image(width, height):
    image = Image.new("RGB", (width, height), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(["livegate PDQ", "conformance 0123456789", "The quick brown fox"]):
        draw.text((10, 10 + 40 * row), line, fill=(20, 30, 120))
    draw.rectangle((width // 2, height // 2, width - 20, height - 20), outline=(200, 0, 0), width=5)
    draw.ellipse((20, height // 2, width // 3, height - 10), fill=(0, 160, 60))
    return image


def corpus():
    """(name, PIL image) pairs."""
    items = []
    sizes = [
        (1, 7), (9, 1), (4, 4), (5, 5), (6, 5), (63, 64), (64, 63), (64, 64), (65, 65),
        (127, 128), (200, 120), (511, 511), (512, 512), (513, 513), (640, 480),
        (1920, 1080), (1080, 1920),
    ]
    for i, (w, h) in enumerate(sizes):
        items.append((f"mixed-{w}x{h}.png", Image.fromarray(mixed(w, h, i))))
    items.append(("mixed-4000x3000.png", Image.fromarray(mixed(4000, 3000, 99))))
    for i, (w, h) in enumerate([(64, 64), (100, 80), (333, 257)]):
        items.append((f"noise-{w}x{h}.png", Image.fromarray(noise(w, h, 100 + i))))
        items.append((f"gradient-{w}x{h}.png", Image.fromarray(gradient(w, h, 200 + i))))
    for value, (w, h) in [(0, (64, 64)), (128, (100, 80)), (255, (300, 200))]:
        flat = np.full((h, w, 3), value, dtype=np.uint8)
        items.append((f"flat{value}-{w}x{h}.png", Image.fromarray(flat)))
    items.append(("text-400x300.png", text_image(400, 300)))
    items.append(("text-64x64.png", text_image(400, 300).resize((64, 64))))
    gray = Image.fromarray(mixed(300, 200, 7)).convert("L")
    items.append(("gray-300x200.png", gray))
    rgba = Image.fromarray(mixed(250, 190, 8)).convert("RGBA")
    rgba.putalpha(Image.fromarray(noise(250, 190, 9)[:, :, 0]))
    items.append(("rgba-250x190.png", rgba))
    items.append(("palette-200x150.png", text_image(200, 150).convert("P")))
    return items


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, image in corpus():
        image.save(out / name, compress_level=1)
        files.append(name)
    text_image(320, 240).save(out / "text-320x240.jpg", quality=90)
    files.append("text-320x240.jpg")
    with open(out / "expected.jsonl", "w") as expected:
        for name in files:
            rgb = np.asarray(Image.open(out / name).convert("RGB"))
            bits, quality = pdqhash.compute(rgb)
            variants, dihedral_quality = pdqhash.compute_dihedral(rgb)
            record = {
                "file": name,
                "width": rgb.shape[1],
                "height": rgb.shape[0],
                "hash": to_hex(bits),
                "quality": int(quality),
                "dihedral": [to_hex(v) for v in variants],
                "dihedral_quality": int(dihedral_quality),
            }
            expected.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
