"""Turn any drawing or uploaded image into exactly what an MNIST model was trained on.

MNIST digits were size-normalised to fit a 20x20 box (aspect ratio kept, antialiased)
and placed in a 28x28 field with their centre of mass at the centre. A model trained
on them reads canvas drawings well only after the same treatment: one CNN scored 33%
on drawn digits with a plain resize and 89% with MNIST-style preprocessing.
`preprocess_image` is that treatment; `decode_image_upload` turns untrusted upload
bytes into an array it accepts. Plain numpy + scipy + Pillow: no Streamlit, no Keras.
"""

import codecs
import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# Decoded size limit: a small compressed file can expand to gigabytes (decompression bomb).
MAX_UPLOAD_PIXELS = 4096 * 4096
ALLOWED_FORMATS = ("PNG", "JPEG")
MODES = ("digit", "object")

# MNIST geometry: the ink's bounding box fits 20 px of the 28 px field.
MNIST_BOX_FRACTION = 20 / 28
# A peak ink contrast below this is an empty canvas or a blank photo, not a digit.
MIN_INK = 0.1
# Ink fainter than this fraction of the strongest ink is paper grain or JPEG noise.
NOISE_FLOOR = 0.1
# Separate blobs holding less than this fraction of the ink are specks (stray taps, dust).
SPECK_FRACTION = 0.02
# Stroke width is measured and corrected at this multiple of the final box resolution.
WORK_SCALE = 4
# The middle half of MNIST stroke widths (25th..75th percentile of x_test, in px of the 20 px box);
# a thin pen on a big canvas or a fat pen on a small digit is brought into this range.
MNIST_STROKE_WIDTH = (2.2, 3.0)
# Larger photos are first averaged down by an integer factor: the digit ends up 80 px tall anyway.
MAX_INPUT_SIDE = 1024
# ITU-R 601 luma weights, the ones Pillow uses for RGB -> L.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Leading bytes of formats people try to upload, to name them in the error message.
OTHER_FORMAT_SIGNATURES = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


class InvalidImage(ValueError):
    """An image the app cannot use; the message says what is wrong and what to do."""


def preprocess_image(image: np.ndarray, *, mode: str = "digit", size: int = 28) -> np.ndarray | None:
    """Turn any drawing or image into MNIST's convention: float32 (size, size) in [0, 1], light ink on black.

    `image` is an RGBA canvas array (H, W, 4), RGB (H, W, 3) or grayscale (H, W) / (H, W, 1),
    uint8 or float in [0, 1], any size. If the border is mostly transparent, alpha alone is the
    ink (what streamlit-drawable-canvas returns with a transparent background, whatever the
    stroke colour and whatever RGB lies under transparent pixels). Otherwise the background
    level is the median of the border and the ink is whichever of darker or lighter than it
    contrasts more, so dark-on-light and light-on-dark both work.

    mode="digit" (MNIST): the ink's bounding box is scaled, aspect kept and antialiased, to fit
    a 20x20 box (for size 28), stroke width is brought into MNIST's range, and the result is
    placed in the size x size field with its centre of mass at pixel (size/2, size/2), as the
    MNIST creators did. mode="object" (Fashion-MNIST): the bounding box is fitted to the whole
    field and centred. In both, the strongest ink is 1.0; ink fainter than a tenth of it (paper
    grain, JPEG noise) and specks apart from the digit (stray taps, dust) are ignored.

    Returns None for an empty drawing: no ink, all transparent, or a uniform image.
    Raises InvalidImage for arrays that are not images (wrong shape, dtype or value range).
    """
    if mode not in MODES:
        raise ValueError(f"Unknown mode: {mode!r}; expected one of {MODES}")
    ink = _ink_map(image)
    peak = float(ink.max())
    if peak < MIN_INK:
        return None
    floor = NOISE_FLOOR * peak
    crop = _crop_to_ink(ink, floor)
    # Soft floor: background becomes exactly 0 and the strongest ink 1, antialiasing kept.
    crop = np.clip((crop - floor) * (1.0 / (peak - floor)), 0.0, 1.0)
    if mode == "object":
        return _place_centred(_fit(crop, size), size)
    box = round(size * MNIST_BOX_FRACTION)
    work = _fit_without_specks(crop, WORK_SCALE * box)
    lo, hi = (width * WORK_SCALE * box / 20 for width in MNIST_STROKE_WIDTH)
    work = _normalise_stroke_width(work, lo, hi)
    small = _fit(_crop_to_ink(work, NOISE_FLOOR * float(work.max())), box)
    return _place_by_centre_of_mass(small, size)


def decode_image_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Validate untrusted upload bytes and decode them to a uint8 RGBA, RGB or L (grayscale) array.

    Checks, in order: the byte size, the real format (sniffed from the content, not the
    file name; only PNG and JPEG), the pixel count (decompression-bomb guard) and a full
    decode (damaged or truncated files). JPEG EXIF rotation is applied. Images with
    transparency come back RGBA, grayscale ones (H, W), others RGB. Pillow only parses the
    data; nothing in it is executed. Any problem raises InvalidImage with a message for the user.
    """
    if len(data) == 0:
        raise InvalidImage("The file is empty. Please upload a PNG or JPEG picture of a digit.")
    if len(data) > max_bytes:
        raise InvalidImage(_too_large_message(len(data), max_bytes))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage(_unreadable_message(bytes(data[:1024]))) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            "The image has far too many pixels to be a photo or drawing of a digit "
            "(it may be a decompression bomb). Please upload an ordinary PNG or JPEG."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InvalidImage(_damaged_message(_format_name(bytes(data[:8])), exc)) from exc
    width, height = image.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise InvalidImage(
            f"The image is {width} x {height} pixels; the limit is "
            f"{MAX_UPLOAD_PIXELS / 1e6:.1f} megapixels. Please scale it down or crop it to the digit."
        )
    try:
        image.load()
        # Phone photos store their rotation in EXIF instead of rotating the pixels.
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InvalidImage(_damaged_message(image.format, exc)) from exc
    return _to_uint8_array(image)


def load_image_file(path) -> np.ndarray:
    """Read an image file from disk and decode it like an upload (for the command line)."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            # Read one byte past the limit: enough to know it is too big without reading it all.
            data = file.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                raise InvalidImage(_too_large_message(path.stat().st_size, MAX_UPLOAD_BYTES))
    except OSError as exc:
        raise InvalidImage(f"Cannot read {path}: {exc.strerror or exc}. Check the path and try again.") from exc
    return decode_image_upload(data)


def _ink_map(image: np.ndarray) -> np.ndarray:
    """Float32 (H, W) ink strength: 0 where there is background, larger where there is more ink."""
    pixels = _shrink_large(_as_channels_last(image))
    channels = pixels.shape[2]
    if channels == 1:
        luminance = _to_unit_float(pixels[..., 0])
    else:
        luminance = None
        if channels == 4:
            alpha = _to_unit_float(pixels[..., 3])
            if alpha.min() < 1.0:
                if np.median(_border(alpha)) < 0.5:
                    return alpha
                # Opaque image with some see-through pixels: show them as the background.
                luminance = _luminance(pixels[..., :3])
                background = np.float32(np.median(_border(luminance)))
                luminance = background + alpha * (luminance - background)
        if luminance is None:
            luminance = _luminance(pixels[..., :3])
    background = np.float32(np.median(_border(luminance)))
    darker = background - luminance.min()
    lighter = luminance.max() - background
    if darker >= lighter:
        return np.maximum(background - luminance, 0.0)
    return np.maximum(luminance - background, 0.0)


def _as_channels_last(image: np.ndarray) -> np.ndarray:
    """The image as (H, W, C) with C in 1, 3, 4; InvalidImage for anything else."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4) or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise InvalidImage(
            f"Expected a grayscale (H, W), RGB (H, W, 3) or RGBA (H, W, 4) image, got an array of shape "
            f"{pixels.shape}."
        )
    return pixels


def _shrink_large(pixels: np.ndarray) -> np.ndarray:
    """Average uint8 images with a side over MAX_INPUT_SIDE down by an integer factor (16 MP photo: 0.8 s -> 0.16 s)."""
    factor = -(-max(pixels.shape[:2]) // MAX_INPUT_SIDE)
    if factor <= 1 or pixels.dtype != np.uint8:
        return pixels
    channels = pixels.shape[2]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else np.ascontiguousarray(pixels))
    reduced = np.asarray(image.reduce(factor))
    return reduced[..., None] if channels == 1 else reduced


def _to_unit_float(values: np.ndarray) -> np.ndarray:
    """uint8, uint16, bool or float-in-[0, 1] values as float32 in [0, 1]."""
    if values.dtype == np.uint8:
        return values.astype(np.float32) * np.float32(1 / 255)
    if values.dtype == np.uint16:
        return values.astype(np.float32) * np.float32(1 / 65535)
    if values.dtype == np.bool_:
        return values.astype(np.float32)
    if np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float32, copy=False)
        low, high = values.min(), values.max()
        if not (low >= -1e-3 and high <= 1 + 1e-3):  # also catches NaN
            raise InvalidImage(
                f"Float images must have values in [0, 1], got values from {low:g} to {high:g}. "
                "Divide 0-255 images by 255 first."
            )
        return np.clip(values, 0.0, 1.0)
    raise InvalidImage(f"Unsupported pixel type {values.dtype}; use uint8 or float values in [0, 1].")


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Float32 (H, W) brightness in [0, 1] of an RGB array."""
    if rgb.dtype == np.uint8:
        return rgb @ (LUMA_WEIGHTS * np.float32(1 / 255))
    return _to_unit_float(rgb) @ LUMA_WEIGHTS


def _border(values: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels, where a drawing's or photo's background shows."""
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def _crop_to_ink(ink: np.ndarray, threshold: float) -> np.ndarray:
    """The smallest rectangle holding every pixel above `threshold`."""
    rows = np.flatnonzero(ink.max(axis=1) > threshold)
    cols = np.flatnonzero(ink.max(axis=0) > threshold)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit(ink: np.ndarray, longest: int) -> np.ndarray:
    """Resize so the longer side is `longest` px, aspect ratio kept, antialiased."""
    height, width = ink.shape
    scale = longest / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size == (width, height):
        return ink
    # BOX averages the covered area (true antialiasing, and fast); LANCZOS keeps upscaled edges smooth.
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.LANCZOS
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32)).resize(new_size, resample))
    return np.clip(resized, 0.0, 1.0)


def _fit_without_specks(crop: np.ndarray, longest: int) -> np.ndarray:
    """`_fit` after removing specks; when specks widened the crop, the digit is cropped again at full resolution."""
    work = _fit(crop, longest)
    kept = _drop_specks(work)
    if kept is work:
        return work
    return _drop_specks(_fit(_crop_around(crop, kept), longest))


def _drop_specks(ink: np.ndarray) -> np.ndarray:
    """Remove separate blobs too small to be part of the digit (stray taps, dust)."""
    labels, count = ndimage.label(ink > NOISE_FLOOR, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return ink
    mass = np.bincount(labels.ravel(), weights=ink.ravel())
    keep = mass >= SPECK_FRACTION * mass[1:].sum()
    keep[0] = False
    return ink * keep[labels]


def _crop_around(crop: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The part of `crop` under the ink left in `kept` (a resized copy of it), cropped to its ink."""
    scale_rows = crop.shape[0] / kept.shape[0]
    scale_cols = crop.shape[1] / kept.shape[1]
    rows = np.flatnonzero(kept.max(axis=1) > 0)
    cols = np.flatnonzero(kept.max(axis=0) > 0)
    # One source pixel of margin: resizing spreads ink by up to a pixel.
    top, bottom = max(int(rows[0] * scale_rows) - 1, 0), int(np.ceil((rows[-1] + 1) * scale_rows)) + 1
    left, right = max(int(cols[0] * scale_cols) - 1, 0), int(np.ceil((cols[-1] + 1) * scale_cols)) + 1
    return _crop_to_ink(crop[top:bottom, left:right], 0.0)


def _normalise_stroke_width(ink: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Dilate strokes thinner than `lo` px, erode strokes thicker than `hi` px (at this resolution).

    The width is twice the ink area over the boundary length, exact for long strokes.
    """
    mask = np.pad(ink > 0.5 * ink.max(), 1)
    inner = mask[1:-1, 1:-1]
    interior = inner & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area = int(inner.sum())
    boundary = area - int(interior.sum())
    width = 2.0 * area / max(boundary, 1)
    if lo <= width <= hi:
        return ink
    target = min(max(width, lo), hi)
    # Dilating by r grows the box by 2r, and fitting it back into the box thins strokes again
    # (eroding: the reverse); this radius lands on the target after that refit.
    longest = max(ink.shape)
    radius = longest * abs(target - width) / (2 * (longest - target))
    if width < lo:
        return ndimage.grey_dilation(ink, footprint=_disk(radius))
    eroded = ndimage.grey_erosion(ink, footprint=_disk(radius))
    return eroded if eroded.max() > 0.5 else ink


def _disk(radius: float) -> np.ndarray:
    """Boolean disk footprint of the given radius in px (at least the centre pixel)."""
    reach = int(np.ceil(radius))
    y, x = np.ogrid[-reach : reach + 1, -reach : reach + 1]
    return x * x + y * y <= radius * radius + 0.25


def _place_by_centre_of_mass(ink: np.ndarray, size: int) -> np.ndarray:
    """Paste into a size x size field with the centre of mass at pixel (size/2, size/2).

    Integer shift, as MNIST did (its centres of mass sit at 14.0 +- 0.29, rounding's spread).
    The shift is clamped so no ink falls off the field.
    """
    ink = ink * (1.0 / ink.max())
    height, width = ink.shape
    total = ink.sum()
    centre_row = ink.sum(axis=1) @ np.arange(height, dtype=np.float32) / total
    centre_col = ink.sum(axis=0) @ np.arange(width, dtype=np.float32) / total
    top = min(max(round(size / 2 - centre_row), 0), size - height)
    left = min(max(round(size / 2 - centre_col), 0), size - width)
    field = np.zeros((size, size), dtype=np.float32)
    field[top : top + height, left : left + width] = ink
    return field


def _place_centred(ink: np.ndarray, size: int) -> np.ndarray:
    """Paste into a size x size field with the bounding box centred (Fashion-MNIST's convention)."""
    ink = ink * (1.0 / ink.max())
    height, width = ink.shape
    top, left = (size - height) // 2, (size - width) // 2
    field = np.zeros((size, size), dtype=np.float32)
    field[top : top + height, left : left + width] = ink
    return field


def _to_uint8_array(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image as uint8: RGBA if it has transparency, (H, W) if grayscale, else RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I") and "transparency" not in image.info:
        # 16-bit grayscale PNG: scale 0..65535 down to 0..255 (Pillow's convert would clip).
        wide = np.asarray(image).astype(np.float64)
        return np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        target = "RGBA"
    elif image.mode in ("1", "L"):
        target = "L"
    else:
        target = "RGB"
    if image.mode != target:
        image = image.convert(target)
    return np.array(image, dtype=np.uint8)


def _format_name(head: bytes) -> str:
    """PNG or JPEG from the leading bytes (for messages about damaged files); '' otherwise."""
    if head.startswith(PNG_SIGNATURE):
        return "PNG"
    if head.startswith(JPEG_SIGNATURE):
        return "JPEG"
    return ""


def _unreadable_message(head: bytes) -> str:
    """Why Pillow could not open the bytes as PNG or JPEG, in words for the user."""
    allowed = _format_name(head)
    if allowed:
        return _damaged_message(allowed, None)
    other = _other_format_name(head)
    if other:
        return (
            f"This file is in {other} format, but only PNG and JPEG images are accepted. "
            "Please save or export it as PNG or JPEG and upload it again."
        )
    if _looks_like_text(head):
        return (
            "This file is not a PNG or JPEG image; it contains text. "
            "Please upload a .png or .jpg picture of a handwritten digit."
        )
    return (
        "This file is not a PNG or JPEG image (its content is no picture format we can read). "
        "Please upload a .png or .jpg picture of a handwritten digit."
    )


def _other_format_name(head: bytes) -> str:
    """The name of a common non-PNG/JPEG image format the leading bytes announce; '' if none."""
    if b"<svg" in head.lower():
        return "SVG"
    if _looks_like_text(head):  # before the short binary signatures: "BM" also starts "BMW, Audi"
        return ""
    for signature, name in OTHER_FORMAT_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return "HEIC/AVIF"
    return ""


def _looks_like_text(head: bytes) -> bool:
    """True if the leading bytes are UTF-8 text (a character cut at the end is fine)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _damaged_message(format_name: str | None, error: Exception | None) -> str:
    """The message for a PNG/JPEG whose data is broken or cut short."""
    detail = f" ({error})" if error else ""
    return (
        f"The {format_name or 'image'} file is damaged or incomplete{detail}; it may have been cut off "
        "while saving or uploading. Please export the image again and upload the new file."
    )


def _too_large_message(num_bytes: int, max_bytes: int) -> str:
    """The message for an upload over the size limit, sizes in MB."""
    return (
        f"The image is {num_bytes / 2**20:.1f} MB; the limit is {max_bytes / 2**20:g} MB. "
        "Please upload a smaller PNG or JPEG, for example a crop of just the digit."
    )
