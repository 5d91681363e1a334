#!/usr/bin/python3
"""Writes the NumPy-made .npy/.npz fixtures under tests/fixtures/npz (run with Debian's python3-numpy).

Contents follow closed formulas so the C++ tests can check every value:
  f32 = arange(12, float32).reshape(3, 4) / 4     f64 = -arange(6.0).reshape(2, 3) * 1.5
  i32 = arange(-3, 3, int32)                      i64 = arange(5, int64) * 10**12
  u8  = arange(250, 256, uint8)                   b   = [True, False, True]
  fortran = asfortranarray(arange(24.0).reshape(2, 3, 4))   scalar = float64(3.25)   empty = zeros((0, 3), float32)
  meta = array(['{"env": "spread"}', 'ünïcode'])  big = arange(4, dtype='>f4')
Malformed files: a truncated archive, one with a flipped byte inside compressed data, a .npy whose header is
garbage, a .npy whose data is shorter than its shape, and a .npy with an unsupported dtype (complex64).
"""
import io
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "npz")


def arrays():
    return {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(4),
        "f64": -np.arange(6.0).reshape(2, 3) * 1.5,
        "i32": np.arange(-3, 3, dtype=np.int32),
        "i64": np.arange(5, dtype=np.int64) * 10**12,
        "u8": np.arange(250, 256, dtype=np.uint8),
        "b": np.array([True, False, True]),
        "fortran": np.asfortranarray(np.arange(24.0).reshape(2, 3, 4)),
        "scalar": np.float64(3.25),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "meta": np.array(['{"env": "spread"}', "ünïcode"]),
        "big": np.arange(4, dtype=">f4"),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    a = arrays()
    np.savez(os.path.join(OUT, "numpy_savez.npz"), **a)
    np.savez_compressed(os.path.join(OUT, "numpy_savez_compressed.npz"), **a)
    np.save(os.path.join(OUT, "numpy_f64.npy"), a["f64"])
    np.save(os.path.join(OUT, "numpy_fortran.npy"), a["fortran"])

    with open(os.path.join(OUT, "numpy_savez_compressed.npz"), "rb") as f:
        good = f.read()
    with open(os.path.join(OUT, "bad_truncated.npz"), "wb") as f:
        f.write(good[: len(good) // 2])
    corrupt = bytearray(good)
    corrupt[100] ^= 0xFF  # inside f32.npy's deflate stream (data starts at byte 57)
    with open(os.path.join(OUT, "bad_corrupt_data.npz"), "wb") as f:
        f.write(bytes(corrupt))

    buf = io.BytesIO()
    np.save(buf, np.arange(10, dtype=np.float32))
    raw = buf.getvalue()
    with open(os.path.join(OUT, "bad_short_data.npy"), "wb") as f:
        f.write(raw[:-8])
    with open(os.path.join(OUT, "bad_header.npy"), "wb") as f:
        f.write(raw[:10] + b"{'descr': <f4, 'shape': [oops" + raw[10 + 30:])
    buf = io.BytesIO()
    np.save(buf, np.zeros(3, dtype=np.complex64))
    with open(os.path.join(OUT, "bad_dtype.npy"), "wb") as f:
        f.write(buf.getvalue())
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()
