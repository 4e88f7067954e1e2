"""Times the same ONNX model in Python's onnxruntime for `livegate-bench classifier`.

Usage: classifier_reference.py MODEL TENSOR SECONDS — TENSOR is the raw little-endian
float32 input livegate fed the model ([1, 3, 320, 320]). Runs it single-threaded (like
livegate's classifier worker) for about SECONDS and prints one JSON object:
{"run_ms", "top_score"}.
"""

import json
import sys
import time

import numpy as np
import onnxruntime


def main():
    model, tensor_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    tensor = np.fromfile(tensor_path, dtype="<f4").reshape(1, 3, 320, 320)
    feed = {session.get_inputs()[0].name: tensor}
    output = session.run(None, feed)[0]  # warm-up
    calls, start = 0, time.perf_counter()
    while True:
        session.run(None, feed)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            break
    print(json.dumps({
        "run_ms": elapsed * 1000.0 / calls,
        "top_score": float(output[0, 4:, :].max()),
    }))


if __name__ == "__main__":
    main()
