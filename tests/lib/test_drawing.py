"""Drawing preprocessing and upload decoding: any drawing in, MNIST's convention out."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lib.data.drawing import MAX_UPLOAD_BYTES, InvalidImage, decode_image_upload, load_image_file, preprocess_image
from lib.data.paths import data_dir

CANVAS = 280
# MNIST puts the centre of mass at pixel 14.0 (+- 0.5 from its integer shift).
MNIST_CENTRE = 14.0


def stroke_mask(points, width=18, size=(CANVAS, CANVAS)) -> np.ndarray:
    """uint8 (H, W) mask of a round-pen polyline, 255 where inked, antialiased."""
    image = Image.new("L", (size[0] * 2, size[1] * 2), 0)
    draw = ImageDraw.Draw(image)
    scaled = [(2 * x, 2 * y) for x, y in points]
    draw.line(scaled, fill=255, width=2 * width, joint="curve")
    for x, y in (scaled[0], scaled[-1]):
        draw.ellipse((x - width, y - width, x + width, y + width), fill=255)
    return np.asarray(image.reduce(2))


def blob_mask(centre, radius, size=(CANVAS, CANVAS)) -> np.ndarray:
    image = Image.new("L", size, 0)
    x, y = centre
    ImageDraw.Draw(image).ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(image)


def rgba(mask, ink=0, under=0) -> np.ndarray:
    """A canvas with a transparent background: `ink` grey where drawn, `under` grey beneath transparent pixels."""
    image = np.empty((*mask.shape, 4), dtype=np.uint8)
    image[..., :3] = np.where(mask[..., None] > 0, ink, under)
    image[..., 3] = mask
    return image


def centre_of_mass(image) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    return np.array([(rows * image).sum(), (cols * image).sum()]) / image.sum()


def ink_box(image, threshold=0.1) -> tuple[int, int]:
    """(height, width) of the bounding box of pixels above `threshold`."""
    rows = np.flatnonzero(image.max(axis=1) > threshold)
    cols = np.flatnonzero(image.max(axis=0) > threshold)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def assert_mnist_like(out):
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
    np.testing.assert_allclose(centre_of_mass(out), MNIST_CENTRE, atol=1.0)
    assert max(ink_box(out)) in (19, 20, 21)


SEVEN = [(60, 50), (200, 55), (120, 230)]


@pytest.mark.parametrize(
    "name, mask",
    [
        ("off-centre", stroke_mask([(10, 10), (70, 12), (30, 90)], width=8)),
        ("tiny 10 px blob", blob_mask((250, 30), 5)),
        ("huge, touching the edges", stroke_mask([(0, 0), (279, 5), (100, 279)], width=30)),
        ("centred seven", stroke_mask(SEVEN)),
    ],
)
def test_ink_is_scaled_to_20px_and_centred_by_mass(name, mask):
    assert_mnist_like(preprocess_image(rgba(mask)))


def test_every_encoding_of_the_same_drawing_gives_the_same_digit():
    """Polarity and alpha are detected: white-on-black, black-on-white, RGBA whatever lies under transparency."""
    mask = stroke_mask(SEVEN)
    expected = preprocess_image(mask)  # white ink on black, grayscale uint8
    assert_mnist_like(expected)
    white_paper = np.repeat(255 - mask[..., None], 3, axis=2)
    variants = {
        "RGB white on black": np.repeat(mask[..., None], 3, axis=2),
        "RGB black on white": white_paper,
        "RGBA black ink, black under transparent": rgba(mask, ink=0, under=0),
        "RGBA black ink, white under transparent": rgba(mask, ink=0, under=255),
        "RGBA white ink, black under transparent": rgba(mask, ink=255, under=0),
        "RGBA white ink, white under transparent": rgba(mask, ink=255, under=255),
        "RGBA opaque black on white": np.dstack([white_paper, np.full(mask.shape, 255, np.uint8)]),
        "gray float black on white": 1.0 - mask / 255.0,
        "gray (H, W, 1) uint8": mask[..., None],
        "non-square 200 x 400 canvas": np.pad(mask[40:240], ((0, 0), (50, 70))),
    }
    for name, image in variants.items():
        np.testing.assert_allclose(preprocess_image(image), expected, atol=1e-4, err_msg=name)


def test_large_photo_is_handled():
    mask = stroke_mask([(p[0] * 10, p[1] * 10) for p in SEVEN], width=150, size=(3000, 2400))
    photo = np.repeat((235 - mask * (200 / 255)).astype(np.uint8)[..., None], 3, axis=2)  # grey ink on grey paper
    assert_mnist_like(preprocess_image(photo))


def test_aspect_ratio_is_kept():
    tall = preprocess_image(stroke_mask([(140, 30), (140, 250)], width=20))
    height, width = ink_box(tall)
    assert height == 20 and width <= 5
    wide = preprocess_image(stroke_mask([(20, 140), (260, 140)], width=20))
    height, width = ink_box(wide)
    assert width == 20 and height <= 5
    # A 2:1 ellipse stays 2:1.
    ellipse = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(ellipse).ellipse((90, 40, 190, 240), outline=255, width=16)
    height, width = ink_box(preprocess_image(np.asarray(ellipse)))
    assert height == 20 and width in (10, 11)


def test_object_mode_fills_the_field_and_centres_the_box():
    shirt = np.zeros((300, 200), dtype=np.uint8)
    shirt[40:260, 30:140] = 200  # light object on dark background, off-centre
    out = preprocess_image(shirt, mode="object")
    assert out.shape == (28, 28) and out.dtype == np.float32 and out.max() == pytest.approx(1.0)
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    cols = np.flatnonzero(out.max(axis=0) > 0.5)
    assert len(rows) == 28 and 13 <= len(cols) <= 15  # 220 x 110 fitted to 28 x 14
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 0.5
    assert preprocess_image(shirt, mode="object", size=56).shape == (56, 56)


@pytest.mark.parametrize(
    "name, image",
    [
        ("all zeros RGBA", np.zeros((CANVAS, CANVAS, 4), np.uint8)),
        ("all transparent over white", rgba(np.zeros((CANVAS, CANVAS), np.uint8), under=255)),
        ("uniform grey RGB", np.full((100, 150, 3), 128, np.uint8)),
        ("uniform white grayscale", np.full((50, 50), 255, np.uint8)),
        ("black float", np.zeros((28, 28), np.float32)),
        ("faint paper grain only", np.random.default_rng(0).integers(240, 256, (200, 200)).astype(np.uint8)),
    ],
)
def test_empty_drawing_gives_none(name, image):
    assert preprocess_image(image) is None


def test_faint_noise_and_stray_specks_are_ignored():
    mask = stroke_mask(SEVEN)
    clean = preprocess_image(mask)
    noisy = 255 - mask.astype(np.int16) - np.random.default_rng(1).integers(0, 16, mask.shape)
    assert_mnist_like(preprocess_image(np.clip(noisy, 0, 255).astype(np.uint8)))
    speck = np.maximum(mask, blob_mask((270, 270), 3))
    np.testing.assert_allclose(preprocess_image(rgba(speck)), clean, atol=1e-4)


def test_thin_and_fat_pens_are_brought_to_mnist_stroke_width():
    ink_per_pen = {pen: preprocess_image(stroke_mask(SEVEN, width=pen)).sum() for pen in (4, 18, 45)}
    # Untreated, a 4 px pen would leave a fifth of the 18 px pen's ink and a 45 px pen 2.5 times as much.
    assert 0.75 < ink_per_pen[4] / ink_per_pen[18] < 1.33
    assert 0.75 < ink_per_pen[45] / ink_per_pen[18] < 1.33


def test_mnist_digits_pass_through_nearly_unchanged():
    """Proof that the pipeline matches MNIST's own convention: its digits come out as they went in."""
    path = data_dir() / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found; set MNIST_STUDIO_DATA_DIR to the folder holding mnist.npz")
    with np.load(path) as data:
        digits = data["x_test"][:500]
    originals = digits.astype(np.float32) / 255
    outputs = np.stack([preprocess_image(digit) for digit in digits])
    assert all(max(ink_box(output)) == 20 for output in outputs)
    for output, original in zip(outputs, originals):
        np.testing.assert_allclose(centre_of_mass(output), centre_of_mass(original), atol=1.0)
    # Most come out as they were; strokes outside the middle half of MNIST widths are brought into it.
    correlation = np.array([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(outputs, originals)])
    assert np.median(correlation) > 0.98 and correlation.mean() > 0.95
    assert np.abs(outputs - originals).mean() < 0.03


def test_bad_arrays_and_modes_are_rejected():
    with pytest.raises(InvalidImage, match="shape"):
        preprocess_image(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(InvalidImage, match=r"\[0, 1\]"):
        preprocess_image(np.full((10, 10), 200.0))
    with pytest.raises(ValueError, match="Unknown mode: 'fashion'"):
        preprocess_image(np.zeros((10, 10), np.uint8), mode="fashion")


def encode(array, format_name, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format_name, **options)
    return buffer.getvalue()


def test_png_and_jpeg_uploads_decode():
    canvas = rgba(stroke_mask(SEVEN), ink=255)
    decoded = decode_image_upload(encode(canvas, "PNG"))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, canvas)
    np.testing.assert_array_equal(preprocess_image(decoded), preprocess_image(canvas))
    gray = 255 - stroke_mask(SEVEN)
    np.testing.assert_array_equal(decode_image_upload(encode(gray, "PNG")), gray)
    photo = decode_image_upload(encode(np.repeat(gray[..., None], 3, axis=2), "JPEG", quality=90))
    assert photo.shape == (CANVAS, CANVAS, 3) and photo.dtype == np.uint8
    assert np.abs(photo[..., 0].astype(int) - gray).mean() < 3
    assert_mnist_like(preprocess_image(photo))


def test_palette_png_with_transparency_decodes_to_rgba():
    palette = Image.fromarray(rgba(stroke_mask(SEVEN))).convert("P")
    palette.info["transparency"] = 0
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=0)
    assert decode_image_upload(buffer.getvalue()).shape == (CANVAS, CANVAS, 4)


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    wide = np.array([[0, 32896, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(decode_image_upload(encode(wide, "PNG")), [[0, 128, 255]])


def test_jpeg_exif_rotation_is_applied():
    tall = np.zeros((60, 20, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    assert decode_image_upload(encode(tall, "JPEG", exif=exif)).shape == (20, 60, 3)


NOISE_64 = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)  # incompressible: many PNG bytes


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("text file", b"digit,label\n1,2\n" * 20, r"not a PNG or JPEG image; it contains text"),
        ("GIF", encode(np.zeros((8, 8), np.uint8), "GIF"), r"GIF format, but only PNG and JPEG"),
        ("random bytes", bytes(range(256)) * 4, r"not a PNG or JPEG image \(its content"),
        ("PNG cut inside the pixel data", encode(NOISE_64, "PNG")[:2000], r"PNG file is damaged or incomplete"),
        ("PNG cut inside the header", encode(NOISE_64, "PNG")[:20], r"PNG file is damaged or incomplete"),
        ("empty file", b"", r"The file is empty"),
        ("oversize payload", b"\x89PNG" + bytes(int(7.2 * 2**20)), r"The image is 7\.2 MB; the limit is 5 MB"),
        ("decompression bomb", encode(np.zeros((5000, 5000), np.uint8), "PNG"), r"5000 x 5000 pixels; the limit"),
    ],
)
def test_bad_uploads_raise_invalid_image_with_their_own_message(name, data, message):
    with pytest.raises(InvalidImage, match=message):
        decode_image_upload(data)


def test_load_image_file_reads_and_validates(tmp_path):
    path = tmp_path / "seven.png"
    gray = stroke_mask(SEVEN)
    path.write_bytes(encode(gray, "PNG"))
    np.testing.assert_array_equal(load_image_file(path), gray)
    big = tmp_path / "big.png"
    big.write_bytes(bytes(MAX_UPLOAD_BYTES + 10))
    with pytest.raises(InvalidImage, match="the limit is 5 MB"):
        load_image_file(big)
    with pytest.raises(InvalidImage, match="Cannot read .*missing.png"):
        load_image_file(tmp_path / "missing.png")
