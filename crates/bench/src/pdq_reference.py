"""Times Meta's C++ PDQ (PyPI pdqhash) on raw RGB buffers for `livegate-bench pdq`.

Usage: pdq_reference.py DIR SECONDS — reads DIR/manifest.json ([{"file", "width",
"height"}]), hashes each buffer repeatedly for about SECONDS and prints one JSON object:
{"file": {"hash", "quality", "compute_ms", "luma_ms"}}. compute_ms times pdqhash.compute
(numpy luma + C++); luma_ms times the same numpy luma expression alone, so
compute_ms - luma_ms estimates the C++ part.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pdqhash


def per_call_ms(function, budget):
    function()  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget and calls >= 3:
            return elapsed * 1000.0 / calls


def main():
    directory, budget = Path(sys.argv[1]), float(sys.argv[2])
    results = {}
    for entry in json.loads((directory / "manifest.json").read_text()):
        raw = np.fromfile(directory / entry["file"], dtype=np.uint8)
        image = raw.reshape(entry["height"], entry["width"], 3)
        bits, quality = pdqhash.compute(image)

        def luma():
            return (
                image[:, :, 0] * 0.299 + image[:, :, 1] * 0.587 + image[:, :, 2] * 0.114
            ).astype("float32")

        results[entry["file"]] = {
            "hash": np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(),
            "quality": int(quality),
            "compute_ms": per_call_ms(lambda: pdqhash.compute(image), budget),
            "luma_ms": per_call_ms(luma, budget),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
