"""Image files and bytes -> gray levels 0..255: any common format decoded (PNG, JPEG, BMP, WebP,
TIFF; gray, RGB, RGBA, palette, 16-bit), a phone photo turned by its EXIF, images above a pixel
limit refused before they are decoded, large ones reduced as they are, and transparency laid
over a background that contrasts with the strokes (a drawing canvas's export)."""

from __future__ import annotations

import io
import math
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_paddle.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (a 40 MP photo is fine)
WORK_PIXELS = 1_000_000  # larger images are reduced to about this many pixels as they are decoded


def read_gray(path: str | Path) -> np.ndarray:
    """The image at `path` as (H, W) float32 gray levels 0..255; a `UserError` if unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder") from None
    return decode_gray(data, str(path))


def decode_gray(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes as (H, W) float32 gray levels 0..255; `name` is used in errors."""
    if not data:
        raise NotAnImage(f"{name}: empty file")
    try:
        with _open(data) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise NotAnImage(
                    f"{name}: image is {width}x{height} pixels, more than the limit of "
                    f"{max_pixels:,}"
                )
            factor = _reduction(width, height)
            if factor > 1 and image.format == "JPEG":
                image.draft(image.mode, (width // factor, height // factor))  # decode it smaller
            image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
            gray = _to_gray(image)
    except UserError:
        raise
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: not an image (or an unsupported format)") from None
    except Image.DecompressionBombError as e:  # over Pillow's own limit (179 MP): no size given
        found = re.search(r"\((\d+) pixels\)", str(e))  # "Image size (N pixels) exceeds ..."
        size = f"{int(found[1]):,} pixels" if found else "larger than Pillow opens"
        limit = f"more than the limit of {max_pixels:,}"
        raise NotAnImage(f"{name}: image is {size}, {limit}") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise NotAnImage(f"{name}: damaged image ({e})") from None
    return _reduce(gray)


def _reduce(gray: np.ndarray) -> np.ndarray:
    """`gray` with about WORK_PIXELS at most: every factor x factor block becomes its darkest
    pixel on a light page (its lightest on a dark one), so a thin stroke keeps its contrast."""
    factor = _reduction(gray.shape[1], gray.shape[0])
    if factor == 1:
        return gray
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink_side = cv2.erode if np.median(border) > 127 else cv2.dilate
    return ink_side(gray, np.ones((factor, factor), np.uint8))[::factor, ::factor]


def _reduction(width: int, height: int) -> int:
    """The whole factor that brings width x height to at most about WORK_PIXELS."""
    return max(1, math.ceil(math.sqrt(width * height / WORK_PIXELS)))


def _open(data: bytes) -> Image.Image:
    """`Image.open` of encoded bytes: reads the header only. Pillow's own guard, process-wide
    (Image.MAX_IMAGE_PIXELS), warns above 89 MP and refuses above 179 MP; this project checks its
    own limit from the header after opening, so the warning is hidden for this call only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def image_pixels(data: bytes) -> int:
    """Width x height from an encoded image's header (0 if it cannot be read), without decoding."""
    try:
        with _open(data) as image:
            return image.size[0] * image.size[1]
    except Exception:  # any unreadable header: decoding it will say what is wrong
        return 0


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (or 32-bit int) gray
        pixels = np.asarray(image, dtype=np.float32)
        return pixels * (255.0 / 65535.0) if pixels.max() > 255 else pixels
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        return pixels * 255.0 if pixels.max() <= 1.0 else pixels
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return np.asarray(image.convert("L"), dtype=np.float32)
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    gray = cv2.cvtColor(rgba[:, :, :3], cv2.COLOR_RGB2GRAY)
    alpha = rgba[:, :, 3] / 255.0
    strokes = gray[alpha > 0.5]
    # A canvas export is transparent around its strokes: show them on a contrasting background.
    paper = 0.0 if strokes.size and strokes.mean() > 127 else 255.0
    return gray * alpha + paper * (1.0 - alpha)


class NotAnImage(UserError):
    """The bytes are not a usable image: empty, unknown format, damaged, too large."""
