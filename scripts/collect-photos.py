#!/usr/bin/env python3
"""Collects the natural photographs shipped in the allowed Debian packages (docs/ndbench.md).

Called by scripts/fetch-photos.sh as

    collect-photos.py OUT_DIR MIN_SIDE PACKAGE=ROOT [PACKAGE=ROOT ...]

where ROOT is the folder the package's files live under ("/" for an installed package, or the
folder a downloaded .deb was extracted to). Only the Python standard library is used: image
sizes come from the PNG / JPEG headers, and the few images shipped as raw arrays are written
as PNG with zlib.

For every package a fixed set of folders is walked; a file is kept when it passes, in order:
  1. extension .jpg / .jpeg / .png;
  2. an explicit per-package exclusion (synthetic pictures, logos, masks, renders and drawings,
     documents, processed copies, and all but one image of a series or pair of the same scene;
     each with its reason, see PACKAGES below) -- or, for OpenCV's HTML tutorial figures, an
     explicit allow-list, since most of those are diagrams, screenshots, plots or processed
     versions of the sample photos;
  3. a readable header with the shorter side >= MIN_SIDE pixels;
  4. not a palette PNG (icons, diagrams);
  5. at least 0.03 bytes of compressed file per pixel (flat synthetic graphics compress below);
  6. not a byte-identical copy (sha256) of a photo kept before.
Kept photos are copied to OUT_DIR/PACKAGE/NAME; OUT_DIR/manifest.tsv lists them (path, package,
width, height, bytes, sha256, origin) and OUT_DIR/rejected.tsv every rejected file with its
reason.
"""

import bz2
import hashlib
import os
import pickle
import re
import shutil
import struct
import sys
import zipfile
import zlib

# --- what each package contributes -------------------------------------------------------------
# roots: folders (relative to the package root) walked recursively.
# exclude: (regex on the path relative to the package root, reason); first match wins.
# allow_only: (folder, set of basenames): inside that folder only these files are candidates.
# arrays: images shipped as raw arrays, converted to PNG: (path, decoder name, output name).

SERIES = "series or pair of the same scene: one kept"
SYNTHETIC = "synthetic picture, diagram or pattern"
LOGO = "logo, icon or sprite"
MASK = "mask, matte or ground truth"
DRAWING = "drawing or 3-D render, not a photograph"
DOCUMENT = "document or text page"
DERIVED = "processed or edited copy of another image"
TESTS = "test fixture (transformed copies)"

# Tutorial figures that are plain photographs: no annotation, window frame or status bar, not a
# processed version or a copy of another kept photo. Everything else under html/ is left out.
OPENCV_HTML_ALLOW = {
    "227943776_1.jpg", "230501201_1.jpg", "4_barcodes.jpg", "astra_color.jpg",
    "Background_Subtraction_Tutorial_frame.jpg", "clahe_2.jpg", "coins.jpg", "fusion.png",
    "fusion_mertens.jpg", "Histogram_Calculation_Original_Image.jpg",
    "Hough_Lines_Tutorial_Original_Image.jpg", "Morphology_1_Tutorial_Original_Image.jpg",
    "newspaper.jpg", "pexels_double_decker_bus.jpg", "retina_TreeHdr_small.jpg",
    "space_shuttle.jpg", "studentsSample_input.jpg", "Template_Matching_Original_Image.jpg",
}

PACKAGES = {
    "opencv-doc": {
        "roots": ["usr/share/doc/opencv-doc/examples", "usr/share/doc/opencv-doc/opencv4/html"],
        "allow_only": ("usr/share/doc/opencv-doc/opencv4/html", OPENCV_HTML_ALLOW),
        "exclude": [
            (r"/alphamat/(output_mattes|trimaps)/", MASK),
            (r"/data/(aloeGT|chessboard|detect_blob|digits|ellipses|gradient|pca_test1|pic\d|ml"
             r"|cards|imageText[NR])\.", SYNTHETIC),
            (r"/data/(LinuxLogo|WindowsLogo|opencv-logo|HappyFish)\.", LOGO),
            (r"/data/(Blender_Suzanne\d|blox)\.", DRAWING),
            (r"/data/(left|right)\d\d\.jpg$", "calibration series (a chessboard held in one room)"),
            (r"/data/(aero3|aloeR|basketball2|rubberwhale2|graf3|leuvenB|right|box)\.", SERIES),
            (r"/data/ela_modified\.", DERIVED),
            (r"/data/text_(defocus|motion)\.", DOCUMENT),
            (r"/fuzzy/input\.", DRAWING),
            (r"/fuzzy/mask\d", MASK),
            (r"/text/scenetext_segmented_word\d+(_mask)?\.", "word crop or mask of a scene text"),
            (r"/ximgproc/", SYNTHETIC + " or map screenshot"),
            (r"/shape/", SYNTHETIC),
        ],
    },
    "scratch": {
        "roots": ["usr/share/scratch/Media"],
        "exclude": [
            (r"/Backgrounds/Indoors/(chalkboard|party-room|room[123]|spotlight-stage)\.", DRAWING),
            (r"/Backgrounds/(Nature/woods-and-bench|Outdoors/brick-wall1|Outdoors/school2"
             r"|Sports/basketball-court2)\.", DRAWING),
            (r"/Backgrounds/Sports/basketball-court1-b\.", SERIES),
            (r"/Costumes/", LOGO),
        ],
    },
    "python3-skimage": {
        "roots": ["usr/lib/python3/dist-packages/skimage"],
        "exclude": [
            (r"/tests/", TESTS),
            (r"/data/(chessboard_RGB|chessboard_GRAY|color|phantom|horse|bw_text|checker_bilevel"
             r"|block|palette_color|palette_gray|green_palette|foo3x5x4indexed|microaneurysms)\.",
             SYNTHETIC),
            (r"/data/logo\.", LOGO),
            (r"/data/(text|page)\.", DOCUMENT),
            (r"/data/motorcycle_right\.", SERIES),
            (r"/data/truncated\.", "deliberately truncated file"),
        ],
    },
    "python3-sklearn": {"roots": ["usr/lib/python3/dist-packages/sklearn/datasets/images"]},
    "python3-scipy": {
        "roots": ["usr/lib/python3/dist-packages/scipy"],
        "exclude": [(r"/tests/", TESTS)],
        "arrays": [
            ("usr/lib/python3/dist-packages/scipy/misc/face.dat", "scipy_face", "face.png"),
            ("usr/lib/python3/dist-packages/scipy/misc/ascent.dat", "scipy_ascent", "ascent.png"),
        ],
    },
    # pywt's ascent and camera are the same pictures as scipy's ascent and skimage's camera.
    "python3-pywt": {
        "roots": [],
        "arrays": [("usr/lib/python3/dist-packages/pywt/data/aero.npz", "npz_u8", "aero.png")],
    },
    "python-matplotlib-data": {
        "roots": ["usr/share/matplotlib/mpl-data"],
        "exclude": [(r"/mpl-data/images/", LOGO), (r"/sample_data/(logo2|Minduka)", LOGO)],
    },
    "libdlib19.1": {
        "roots": ["usr/share/doc/libdlib19.1/examples"],
        "exclude": [(r"/video_frames/frame_(?!000100\.)", "video frames: frame_000100 kept")],
    },
}

MIN_BYTES_PER_PIXEL = 0.03


# --- headers -------------------------------------------------------------------------------------

def image_info(path):
    """(width, height, kind) from the header; kind is 'png-<colour type>' or 'jpeg'; None if
    unreadable."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return w, h, "png-%d" % data[25]
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                          0xCF) and i + 9 <= len(data):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h, "jpeg"
            i += 2 + length
    return None


# --- raw arrays ----------------------------------------------------------------------------------

class _NoGlobals(pickle.Unpickler):
    """Plain lists and ints only: refuses every class or function reference."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("refusing %s.%s" % (module, name))


def decode_array(path, how):
    """(width, height, channels, bytes) of 8-bit pixels."""
    if how == "scipy_face":  # bz2 of 768 x 1024 x 3 bytes
        raw = bz2.decompress(open(path, "rb").read())
        if len(raw) != 768 * 1024 * 3:
            raise ValueError("unexpected size")
        return 1024, 768, 3, raw
    if how == "scipy_ascent":  # pickled 512 x 512 list of ints 0..255
        rows = _NoGlobals(open(path, "rb")).load()
        h, w = len(rows), len(rows[0])
        return w, h, 1, bytes(v for row in rows for v in row)
    if how == "npz_u8":  # a .npz holding one C-order uint8 2-D array
        with zipfile.ZipFile(path) as z:
            blob = z.read(z.namelist()[0])
        if blob[:6] != b"\x93NUMPY":
            raise ValueError("not an .npy array")
        hlen = struct.unpack("<H", blob[8:10])[0]
        header = blob[10:10 + hlen].decode("latin1")
        m = re.search(r"'shape':\s*\((\d+),\s*(\d+)\)", header)
        if "'|u1'" not in header or "'fortran_order': False" not in header or not m:
            raise ValueError("unexpected array header " + header)
        h, w = int(m.group(1)), int(m.group(2))
        return w, h, 1, blob[10 + hlen:10 + hlen + w * h]
    raise ValueError(how)


def png_bytes(w, h, channels, pixels):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    stride = w * channels
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(h))
    colour = {1: 0, 3: 2}[channels]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# --- collection ----------------------------------------------------------------------------------

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out_dir, min_side = sys.argv[1], int(sys.argv[2])
    pairs = [a.split("=", 1) for a in sys.argv[3:]]
    os.makedirs(out_dir, exist_ok=True)
    kept, rejected, seen = [], [], {}

    def keep(pkg, origin, name, data, w, h):
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            rejected.append((pkg, origin, "byte-identical to " + seen[digest]))
            return
        os.makedirs(os.path.join(out_dir, pkg), exist_ok=True)
        stem, ext = os.path.splitext(name)
        rel, n = "%s/%s" % (pkg, name), 2
        while any(k[0] == rel for k in kept):
            rel, n = "%s/%s-%d%s" % (pkg, stem, n, ext), n + 1
        with open(os.path.join(out_dir, rel), "wb") as f:
            f.write(data)
        seen[digest] = rel
        kept.append((rel, pkg, w, h, len(data), digest, origin))

    for pkg, root in pairs:
        spec = PACKAGES[pkg]
        shutil.rmtree(os.path.join(out_dir, pkg), ignore_errors=True)  # a previous run's copies
        allow_dir, allow = spec.get("allow_only", (None, None))
        candidates = []
        for sub in spec.get("roots", []):
            top = os.path.join(root, sub)
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                for fn in sorted(filenames):
                    if fn.lower().endswith((".jpg", ".jpeg", ".png")):
                        candidates.append(os.path.relpath(os.path.join(dirpath, fn), root))
        for rel in candidates:
            origin = "/" + rel
            if allow_dir and rel.startswith(allow_dir + "/"):
                if os.path.basename(rel) not in allow:
                    rejected.append((pkg, origin, "tutorial figure not on the allow-list"))
                    continue
            reason = next((r for pat, r in spec.get("exclude", []) if re.search(pat, origin)),
                          None)
            if reason:
                rejected.append((pkg, origin, reason))
                continue
            path = os.path.join(root, rel)
            info = image_info(path)
            if info is None:
                rejected.append((pkg, origin, "unreadable header"))
                continue
            w, h, kind = info
            size = os.path.getsize(path)
            if min(w, h) < min_side:
                rejected.append((pkg, origin, "smaller than %d px (%dx%d)" % (min_side, w, h)))
            elif kind == "png-3":
                rejected.append((pkg, origin, "palette PNG"))
            elif size < MIN_BYTES_PER_PIXEL * w * h:
                rejected.append((pkg, origin, "%.3f bytes per pixel" % (size / (w * h))))
            else:
                with open(path, "rb") as f:
                    keep(pkg, origin, os.path.basename(rel), f.read(), w, h)
        for rel, how, name in spec.get("arrays", []):
            path = os.path.join(root, rel)
            if not os.path.exists(path):
                rejected.append((pkg, "/" + rel, "missing"))
                continue
            w, h, c, pixels = decode_array(path, how)
            keep(pkg, "/" + rel, name, png_bytes(w, h, c, pixels), w, h)

    with open(os.path.join(out_dir, "manifest.tsv"), "w") as f:
        f.write("path\tpackage\twidth\theight\tbytes\tsha256\torigin\n")
        for row in kept:
            f.write("\t".join(str(v) for v in row) + "\n")
    with open(os.path.join(out_dir, "rejected.tsv"), "w") as f:
        f.write("package\torigin\treason\n")
        for row in rejected:
            f.write("\t".join(row) + "\n")
    for pkg, _ in pairs:
        n = sum(1 for k in kept if k[1] == pkg)
        r = sum(1 for k in rejected if k[0] == pkg)
        print("%-24s %4d photos kept, %4d files rejected" % (pkg, n, r))
    print("%-24s %4d photos in %s (manifest.tsv, rejected.tsv)" % ("total", len(kept), out_dir))


if __name__ == "__main__":
    main()
