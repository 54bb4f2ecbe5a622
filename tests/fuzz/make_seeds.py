#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: one small file per format variant vislint decodes, plus a few
real PNGs from Debian's openclipart-png.

Small images (a few KB) keep libFuzzer's executions fast; every variant takes its own decoder path
(progressive and CMYK JPEG, 16-bit and palette PNG, animated GIF, ASCII and binary PNM, ...), so
the mutations start from each of them. Deterministic: the same files on every run.

Usage: make_seeds.py OUT_DIR [--clipart N]
"""
import argparse
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image

CLIPART_DIR = "/usr/share/openclipart/png"


def pattern(w, h, channels, seed, depth=8):
    """A gradient with noise and a few edges: something for stats, hashes and JPEG's DCT to chew."""
    rng = np.random.default_rng(seed)
    top = 65535 if depth == 16 else 255
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        p = (x * (c + 1) * 7 + y * (3 - c % 3) * 5) % 256 / 255.0
        p = p * 0.7 + rng.random((h, w)) * 0.3
        p[(x // 8 + y // 8) % 2 == 0] *= 0.5
        planes.append(p)
    a = np.stack(planes, axis=-1) * top
    a = a.astype(np.uint16 if depth == 16 else np.uint8)
    return a[:, :, 0] if channels == 1 else a


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(arr, color_type):
    """PNG writer for what Pillow cannot write (16-bit RGB / RGBA)."""
    h, w = arr.shape[:2]
    depth = 16 if arr.dtype == np.uint16 else 8
    be = arr.astype(">u2") if depth == 16 else arr
    rows = b"".join(b"\x00" + be[r].tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))


def pnm_ascii(arr, magic, maxval=255):
    h, w = arr.shape[:2]
    body = "\n".join(" ".join(str(v) for v in row.reshape(-1)) for row in arr)
    return f"{magic}\n# vislint fuzz seed\n{w} {h}\n{maxval}\n{body}\n".encode()


def pnm_binary(arr, magic, maxval=255):
    h, w = arr.shape[:2]
    data = arr.astype(">u2").tobytes() if maxval > 255 else arr.tobytes()
    return f"{magic}\n{w} {h}\n{maxval}\n".encode() + data


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def exif_orientation(value):
    ex = Image.Exif()
    ex[0x0112] = value
    return ex


def seeds():
    rgb = Image.fromarray(pattern(48, 32, 3, 1))
    gray = Image.fromarray(pattern(40, 24, 1, 2))
    rgba = Image.fromarray(pattern(32, 32, 4, 3))
    la = Image.fromarray(pattern(24, 24, 3, 4)).convert("LA")
    pal = rgb.quantize(16)
    g16 = pattern(24, 16, 1, 5, depth=16)
    rgb16 = pattern(20, 12, 3, 6, depth=16)
    rgba16 = pattern(16, 16, 4, 7, depth=16)
    cmyk = rgb.convert("CMYK")
    one_bit = gray.point(lambda v: 255 if v > 128 else 0).convert("1")
    frames = [Image.fromarray(pattern(32, 24, 3, 10 + i)).quantize(32) for i in range(3)]

    yield "jpeg_baseline.jpg", save(rgb, "JPEG", quality=85)
    yield "jpeg_progressive.jpg", save(rgb, "JPEG", quality=80, progressive=True)
    yield "jpeg_cmyk.jpg", save(cmyk, "JPEG", quality=85)
    yield "jpeg_gray.jpg", save(gray, "JPEG", quality=85)
    yield "jpeg_444_q100.jpg", save(rgb, "JPEG", quality=100, subsampling=0)
    yield "jpeg_exif_rot6.jpg", save(rgb, "JPEG", quality=75, exif=exif_orientation(6))
    yield "png_rgb8.png", save(rgb, "PNG")
    yield "png_gray8.png", save(gray, "PNG")
    yield "png_gray16.png", raw_png(g16, 0)
    yield "png_rgb16.png", raw_png(rgb16, 2)
    yield "png_rgba16.png", raw_png(rgba16, 6)
    yield "png_rgba8.png", save(rgba, "PNG")
    yield "png_gray_alpha.png", save(la, "PNG")
    yield "png_palette.png", save(pal, "PNG")
    yield "png_palette_trns.png", save(pal, "PNG", transparency=0)
    yield "png_1bit.png", save(one_bit, "PNG")
    yield "bmp_rgb24.bmp", save(rgb, "BMP")
    yield "bmp_palette8.bmp", save(pal, "BMP")
    yield "bmp_gray8.bmp", save(gray, "BMP")
    yield "bmp_1bit.bmp", save(one_bit, "BMP")
    yield "tiff_rgb_raw.tif", save(rgb, "TIFF")
    yield "tiff_rgb_lzw.tiff", save(rgb, "TIFF", compression="tiff_lzw")
    yield "tiff_gray_deflate.tif", save(gray, "TIFF", compression="tiff_adobe_deflate")
    yield "tiff_rgba_packbits.tif", save(rgba, "TIFF", compression="packbits")
    yield "tiff_gray16.tif", save(Image.fromarray(g16), "TIFF")
    yield "webp_lossy.webp", save(rgb, "WEBP", quality=70)
    yield "webp_lossless.webp", save(rgb, "WEBP", lossless=True)
    yield "webp_alpha.webp", save(rgba, "WEBP", quality=70)
    yield "gif_static.gif", save(pal, "GIF")
    yield "gif_animated.gif", save(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                   duration=100, loop=0)
    yield "gif_transparent.gif", save(pal, "GIF", transparency=3)
    g = pattern(12, 8, 1, 20)
    c = pattern(10, 6, 3, 21)
    yield "pnm_p2.pgm", pnm_ascii(g, "P2")
    yield "pnm_p3.ppm", pnm_ascii(c, "P3")
    yield "pnm_p5.pgm", pnm_binary(g, "P5")
    yield "pnm_p6.ppm", pnm_binary(c, "P6")
    yield "pnm_p5_16bit.pgm", pnm_binary(pattern(12, 8, 1, 22, depth=16), "P5", 65535)
    yield "pnm_p6_16bit.ppm", pnm_binary(pattern(10, 6, 3, 23, depth=16), "P6", 65535)


def clipart(n, max_bytes=24_000):
    """The first n openclipart PNGs (in dpkg's listing order) small enough to keep runs fast."""
    try:
        listing = subprocess.run(["dpkg", "-L", "openclipart-png"], capture_output=True,
                                 text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        sys.exit("make_seeds.py: openclipart-png is not installed (run `make apt`)")
    picked = []
    for p in listing:
        if p.endswith(".png") and os.path.isfile(p) and os.path.getsize(p) <= max_bytes:
            picked.append(p)
            if len(picked) == n:
                break
    return picked


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--clipart", type=int, default=4, help="openclipart PNGs to add")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    n = 0
    for name, data in seeds():
        with open(os.path.join(args.out_dir, name), "wb") as f:
            f.write(data)
        n += 1
    for p in clipart(args.clipart):
        with open(p, "rb") as src, open(os.path.join(args.out_dir, "clipart_" + os.path.basename(p)), "wb") as f:
            f.write(src.read())
        n += 1
    print(f"make_seeds.py: {n} seed files in {args.out_dir}")


if __name__ == "__main__":
    main()
