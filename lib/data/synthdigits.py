"""Synthetic hand-drawn digits, as a drawing canvas returns them, to test the pipeline end to end.

MNIST's test set says how a model does on MNIST; these say how it does on digits drawn in
the app: RGBA canvases with a transparent background, black or white ink, any size,
position, slant and pen width. "stroke" digits are pen strokes following how people write
each digit (several variants per digit); "font" digits are TrueType glyphs, distorted.
Everything is drawn from one seeded numpy Generator, so a seed always gives the same set.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

STYLES = ("stroke", "font")
# Share of "stroke" digits in digit_set; the rest are font glyphs.
STROKE_SHARE = 0.8
# Pen width range in px on a 280 px canvas (scaled with the canvas).
STROKE_WIDTH_PX = (8, 30)
REFERENCE_CANVAS = 280
# Digit height as a fraction of the canvas.
HEIGHT_FRACTION = (0.25, 0.9)
# Pen width relative to digit height: beyond 1/4 loops fill in and a digit stops being readable.
WIDTH_TO_HEIGHT = (0.04, 0.25)
MAX_SLANT_DEG = 20
MAX_ROTATION_DEG = 10
# Strokes are drawn at this multiple of the canvas size and averaged down (antialiasing).
SUPERSAMPLE = 2
# Natural width / height of each digit in handwriting, before jitter.
DIGIT_ASPECT = (0.75, 0.4, 0.65, 0.6, 0.7, 0.62, 0.62, 0.65, 0.62, 0.62)
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
# Glyph shapes close to handwriting; the math, mono and extra-light faces are left out.
DEJAVU_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSansCondensed-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerifCondensed.ttf",
)


def draw_digit(digit: int, rng: np.random.Generator, *, canvas: int = 280, style: str = "stroke") -> np.ndarray:
    """One drawn digit as a canvas returns it: uint8 RGBA (canvas, canvas, 4).

    Transparent background (RGBA 0, 0, 0, 0); black or white ink at random, alpha 255 where
    inked and antialiased at the edges. The digit's height is 25%-90% of the canvas, slant
    up to about 20 degrees, rotation up to 10 degrees, placed anywhere it fits.
    """
    if digit not in range(10):
        raise ValueError(f"digit must be 0..9, got {digit!r}")
    if style not in STYLES:
        raise ValueError(f"Unknown style: {style!r}; expected one of {STYLES}")
    if style == "stroke":
        alpha = _draw_strokes(digit, rng, canvas)
    else:
        alpha = _draw_glyph(digit, rng, canvas)
    ink = 255 if rng.random() < 0.5 else 0
    rgba = np.zeros((canvas, canvas, 4), dtype=np.uint8)
    # Like a browser canvas: ink colour where there is ink, (0, 0, 0, 0) elsewhere.
    rgba[..., :3] = np.where(alpha[..., None] > 0, np.uint8(ink), np.uint8(0))
    rgba[..., 3] = alpha
    return rgba


def digit_set(n_per_class: int, seed: int = 0, canvas: int = 280) -> tuple[np.ndarray, np.ndarray]:
    """`n_per_class` drawn digits of each class: images (N, canvas, canvas, 4) uint8, labels (N,) int64.

    Classes cycle 0, 1, ..., 9, 0, 1, ...; about 80% are pen strokes, the rest font glyphs.
    The same seed always gives the same set.
    """
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10, dtype=np.int64), n_per_class)
    images = np.empty((labels.size, canvas, canvas, 4), dtype=np.uint8)
    for index, digit in enumerate(labels):
        style = "stroke" if rng.random() < STROKE_SHARE else "font"
        images[index] = draw_digit(int(digit), rng, canvas=canvas, style=style)
    return images, labels


def draw_shape(shape: str, rng: np.random.Generator, *, canvas: int = 280) -> np.ndarray:
    """One hand-drawn shape (circle, square, triangle, cross) as a canvas returns it: uint8 RGBA.

    Random size, position, pen width, slant and wobble, as `draw_digit`; white ink on a
    transparent background, what the app's canvas gives.
    """
    if shape not in SHAPE_TEMPLATES:
        raise ValueError(f"Unknown shape: {shape!r}; expected one of {tuple(SHAPE_TEMPLATES)}")
    strokes = SHAPE_TEMPLATES[shape](_Jitter(rng))
    alpha = _render_strokes(strokes, 1.0, rng, canvas)
    rgba = np.zeros((canvas, canvas, 4), dtype=np.uint8)
    rgba[..., :3] = np.where(alpha[..., None] > 0, np.uint8(255), np.uint8(0))
    rgba[..., 3] = alpha
    return rgba


def shape_set(shapes, n_per_class: int, seed: int = 0, canvas: int = 280) -> tuple[np.ndarray, np.ndarray]:
    """`n_per_class` drawings of each shape: RGBA images (N, canvas, canvas, 4) and labels (index in `shapes`)."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(shapes), dtype=np.int64), n_per_class)
    images = np.stack([draw_shape(shapes[label], rng, canvas=canvas) for label in labels])
    return images, labels


def _draw_strokes(digit: int, rng: np.random.Generator, canvas: int) -> np.ndarray:
    """Alpha mask (canvas, canvas) uint8 of a digit written with a round pen."""
    strokes = STROKE_TEMPLATES[digit](_Jitter(rng))
    return _render_strokes(strokes, DIGIT_ASPECT[digit], rng, canvas)


def _render_strokes(strokes: list, natural_aspect: float, rng: np.random.Generator, canvas: int) -> np.ndarray:
    """Alpha mask (canvas, canvas) uint8 of unit-box strokes drawn with a round pen, wobbled, slanted, placed."""
    height = rng.uniform(*HEIGHT_FRACTION) * canvas
    low, high = WIDTH_TO_HEIGHT
    pen_min, pen_max = (px * canvas / REFERENCE_CANVAS for px in STROKE_WIDTH_PX)
    pen = rng.uniform(max(pen_min, low * height), max(pen_min, min(pen_max, high * height)))
    aspect = natural_aspect * np.exp(rng.normal(0, 0.15))
    strokes = [_wobble(stroke, rng) * (aspect, 1.0) for stroke in strokes]
    matrix = _slant_rotate(rng)
    strokes = [stroke @ matrix.T for stroke in strokes]
    points = np.concatenate(strokes)
    low_corner, high_corner = points.min(axis=0), points.max(axis=0)
    # Scale to the chosen height, shrunk if slant and rotation made it wider than the canvas.
    room = canvas - pen - 2
    scale = min(height / (high_corner[1] - low_corner[1]), room / (high_corner - low_corner).max())
    extent = (high_corner - low_corner) * scale
    offset = pen / 2 + 1 + rng.uniform(0, 1, 2) * (canvas - pen - 2 - extent)
    factor = SUPERSAMPLE
    image = Image.new("L", (canvas * factor, canvas * factor), 0)
    draw = ImageDraw.Draw(image)
    radius = pen * factor / 2
    for stroke in strokes:
        xy = ((stroke - low_corner) * scale + offset) * factor
        draw.line([tuple(p) for p in xy], fill=255, width=max(1, round(pen * factor)), joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen ends
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(image.reduce(factor))


def _draw_glyph(digit: int, rng: np.random.Generator, canvas: int) -> np.ndarray:
    """Alpha mask (canvas, canvas) uint8 of a font's digit, slanted, rotated and placed at random."""
    height = rng.uniform(*HEIGHT_FRACTION) * canvas
    fonts = _font_sources()
    source = fonts[rng.integers(len(fonts))]
    # Digits are about 0.73 of the font size; refined below from the real glyph box.
    font = _font(source, max(8, round(height / 0.73)))
    left, top, right, bottom = font.getbbox(str(digit))
    font = _font(source, max(8, round(font.size * height / max(bottom - top, 1))))
    outline = round(rng.uniform(0, 0.06) * height)
    left, top, right, bottom = font.getbbox(str(digit), stroke_width=outline)
    pad = round(0.5 * height) + outline
    glyph = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(glyph).text(
        (pad - left, pad - top), str(digit), fill=255, font=font, stroke_width=outline, stroke_fill=255
    )
    aspect = np.exp(rng.normal(0, 0.1))
    matrix = _slant_rotate(rng) * (aspect, 1.0)
    # Pillow's AFFINE maps output to input pixels: pass the inverse, about the image centre.
    inverse = np.linalg.inv(matrix)
    centre = np.array(glyph.size) / 2
    shift = centre - inverse @ centre
    glyph = glyph.transform(
        glyph.size, Image.Transform.AFFINE, (*inverse[0], shift[0], *inverse[1], shift[1]), Image.Resampling.BICUBIC
    )
    glyph = glyph.crop(glyph.getbbox())
    if max(glyph.size) > canvas - 2:
        fit = (canvas - 2) / max(glyph.size)
        new_size = (max(1, round(glyph.width * fit)), max(1, round(glyph.height * fit)))
        glyph = glyph.resize(new_size, Image.Resampling.LANCZOS)
    x, y = (rng.integers(0, canvas - side + 1) for side in glyph.size)
    image = Image.new("L", (canvas, canvas), 0)
    image.paste(glyph, (int(x), int(y)))
    return np.asarray(image)


def _slant_rotate(rng: np.random.Generator) -> np.ndarray:
    """2x2 matrix (x, y screen coordinates) of a random slant (shear) followed by a small rotation."""
    # Handwriting leans right more often than left.
    slant = np.radians(np.clip(rng.normal(5, 9), -MAX_SLANT_DEG, MAX_SLANT_DEG))
    turn = np.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    shear = np.array([[1.0, -np.tan(slant)], [0.0, 1.0]])  # y grows downwards: the top moves right
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return rotation @ shear


def _wobble(stroke: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bend a stroke with a smooth random displacement, as an unsteady hand does."""
    displaced = stroke.copy()
    for axis in range(2):
        for _ in range(2):
            frequency = rng.uniform(0.5, 1.5, 2)
            phase = rng.uniform(0, 2 * np.pi)
            displaced[:, axis] += rng.normal(0, 0.02) * np.sin(2 * np.pi * stroke @ frequency + phase)
    return displaced


@lru_cache(maxsize=1)
def _font_sources() -> tuple:
    """Fonts to draw glyphs with: DejaVu faces if the system has them, and Pillow's bundled font."""
    return (None, *(str(DEJAVU_DIR / name) for name in DEJAVU_FONTS if (DEJAVU_DIR / name).is_file()))


@lru_cache(maxsize=512)
def _font(source: str | None, size: int) -> ImageFont.FreeTypeFont:
    """A font at a size; None is Pillow's bundled default font."""
    if source is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(source, size)


class _Jitter:
    """Template helper: points and curves in the unit box (x right, y down), each control point jittered."""

    def __init__(self, rng: np.random.Generator, spread: float = 0.04):
        self.rng = rng
        self.spread = spread

    def choice(self, probability: float) -> bool:
        return bool(self.rng.random() < probability)

    def value(self, mean: float, spread: float | None = None) -> float:
        return mean + self.rng.normal(0, self.spread if spread is None else spread)

    def point(self, x: float, y: float) -> np.ndarray:
        return np.array([self.value(x), self.value(y)])

    def line(self, *points) -> np.ndarray:
        """Polyline through jittered points, subdivided so wobble can bend it."""
        corners = [self.point(*p) for p in points]
        pieces = [np.linspace(a, b, 12, endpoint=False) for a, b in zip(corners, corners[1:])]
        return np.concatenate([*pieces, corners[-1][None]])

    def curve(self, *points, start: np.ndarray | None = None) -> np.ndarray:
        """Bezier curve through jittered control points (starting exactly at `start` if given)."""
        controls = [self.point(*p) for p in points]
        if start is not None:
            controls[0] = start
        t = np.linspace(0, 1, 32)[:, None]
        degree = len(controls) - 1
        binomial = [1, degree] + ([3, 1] if degree == 3 else [1])
        return sum(binomial[k] * t**k * (1 - t) ** (degree - k) * c for k, c in enumerate(controls))

    def arc(self, cx, cy, rx, ry, start_deg, end_deg) -> np.ndarray:
        """Elliptic arc; angles in degrees on screen: 0 right, 90 down, 180 left, 270 up."""
        cx, cy, rx, ry = self.value(cx), self.value(cy), self.value(rx, 0.02), self.value(ry, 0.02)
        angle = np.radians(np.linspace(start_deg, end_deg, max(8, int(abs(end_deg - start_deg) / 8))))
        return np.stack([cx + rx * np.cos(angle), cy + ry * np.sin(angle)], axis=1)


def _join(*pieces: np.ndarray) -> np.ndarray:
    """One continuous stroke from pieces, each starting where the previous one ends."""
    parts = [pieces[0]]
    for piece in pieces[1:]:
        parts.append(piece - piece[0] + parts[-1][-1])
    return np.concatenate(parts)


def _zero(j: _Jitter) -> list:
    start = j.value(260, 20)
    if j.choice(0.3):  # egg: narrower at the top
        left = j.arc(0.5, 0.55, 0.42, 0.45, 90, 180)
        top = j.curve((0.08, 0.55), (0.1, 0.1), (0.35, 0.0), (0.55, 0.0), start=left[-1])
        right = j.curve((0.55, 0.0), (0.85, 0.0), (0.95, 0.4), (0.92, 0.55), start=top[-1])
        bottom = j.arc(0.5, 0.55, 0.42, 0.45, 0, j.value(110, 15))
        return [np.concatenate([left, top, right, bottom - bottom[0] + right[-1]])]
    return [j.arc(0.5, 0.5, 0.45, 0.5, start, start + j.value(365, 15))]


def _one(j: _Jitter) -> list:
    if j.choice(0.55):
        return [j.curve((0.5, 0.0), (0.5, 0.3), (0.5, 0.7), (0.5, 1.0))]
    flag = j.value(0.25, 0.08)
    flagged = [j.line((0.5 - flag, flag), (0.5, 0.0), (0.5, 1.0))]
    if j.choice(0.25):
        flagged.append(j.line((0.2, 1.0), (0.8, 1.0)))
    return flagged


def _two(j: _Jitter) -> list:
    if j.choice(0.2):  # angular, Z-like
        return [j.line((0.08, 0.15), (0.4, 0.0), (0.85, 0.1), (0.85, 0.35), (0.05, 1.0), (0.95, 0.98))]
    top = j.curve((0.08, 0.3), (0.1, -0.05), (0.95, -0.1), (0.88, 0.32))
    neck = j.curve((0.88, 0.32), (0.8, 0.55), (0.35, 0.75), (0.03, 1.0), start=top[-1])
    if j.choice(0.3):  # a small loop where the neck meets the base
        loop = j.curve((0.03, 1.0), (0.45, 0.7), (0.3, 1.05), (0.15, 0.97), start=neck[-1])
        return [np.concatenate([top, neck, loop, j.line((0.15, 0.97), (0.97, 0.98))])]
    return [np.concatenate([top, neck, j.line((0.03, 1.0), (0.97, 0.98))])]


def _three(j: _Jitter) -> list:
    if j.choice(0.25):  # flat-topped 3
        upper = j.line((0.1, 0.02), (0.88, 0.02), (0.4, 0.42))
    else:
        upper = np.concatenate([
            j.curve((0.1, 0.14), (0.35, -0.08), (0.95, -0.02), (0.82, 0.26)),
            j.curve((0.82, 0.26), (0.72, 0.45), (0.5, 0.47), (0.38, 0.47)),
        ])
    lower = j.curve((0.38, 0.47), (0.85, 0.42), (1.05, 0.62), (0.92, 0.8), start=upper[-1])
    tail = j.curve((0.92, 0.8), (0.8, 1.05), (0.3, 1.05), (0.05, 0.86), start=lower[-1])
    return [np.concatenate([upper, lower, tail])]


def _four(j: _Jitter) -> list:
    bar = j.value(0.66)
    if j.choice(0.45):  # closed: the diagonal meets the top of the stem
        return [j.line((0.68, 0.0), (0.03, bar), (0.97, bar)), j.line((0.68, 0.0), (0.68, 1.0))]
    if j.choice(0.3):  # open, drawn in one stroke: down, across, then the stem from the top
        return [j.line((0.15, 0.0), (0.08, bar), (0.9, bar), (0.72, 0.05), (0.72, 1.0))]
    return [j.line((0.18, 0.0), (0.1, bar), (0.95, bar)), j.line((0.7, 0.12), (0.7, 1.0))]


def _five(j: _Jitter) -> list:
    stem = j.line((0.18, 0.02), (0.13, 0.45))
    bowl = j.curve((0.13, 0.45), (0.5, 0.28), (1.05, 0.42), (0.9, 0.72), start=stem[-1])
    tail = j.curve((0.9, 0.72), (0.8, 1.05), (0.3, 1.05), (0.05, 0.87), start=bowl[-1])
    if j.choice(0.5):  # flag drawn first, in one stroke with the body
        return [np.concatenate([j.line((0.9, 0.0), (0.18, 0.02))[:-1], stem, bowl, tail])]
    return [np.concatenate([stem, bowl, tail]), j.line((0.2, 0.02), (0.9, 0.0))]


def _six(j: _Jitter) -> list:
    # The loop stays in the lower half: a taller one turns the 6 into a 0.
    loop_height = j.value(0.26, 0.03)
    stem = j.curve((0.8, 0.0), (0.35, 0.1), (0.08, 0.42), (0.1, 1 - loop_height))
    loop = j.arc(0.5, 1 - loop_height, 0.4, loop_height, 180, 180 - j.value(345, 15))
    return [np.concatenate([stem, loop - loop[0] + stem[-1]])]


def _seven(j: _Jitter) -> list:
    if j.choice(0.3):  # top bar bowed upwards
        top = j.curve((0.05, 0.08), (0.35, -0.05), (0.7, 0.0), (0.95, 0.02))
    else:
        top = j.line((0.05, 0.02), (0.95, 0.02))
    if j.choice(0.2):  # a small downward tick where the pen lands
        top = np.concatenate([j.line((0.05, 0.18), (0.05, 0.02)), top])
    stem = j.curve((0.95, 0.02), (0.75, 0.35), (0.5, 0.7), (0.4, 1.0), start=top[-1])
    strokes = [np.concatenate([top, stem])]
    if j.choice(0.3):  # continental crossbar
        strokes.append(j.line((0.45, 0.52), (0.92, 0.5)))
    return strokes


def _eight(j: _Jitter) -> list:
    if j.choice(0.3):  # two stacked loops
        return [j.arc(0.5, 0.24, 0.32, 0.24, 0, 370), j.arc(0.5, 0.73, 0.4, 0.27, 270, 640)]
    # One stroke crossing in the middle: x = sin(2t) swings the pen across between the loops.
    t = np.linspace(0, 2 * np.pi + 0.3, 90)
    top_width, bottom_width, waist = j.value(0.32), j.value(0.42), j.value(0.45)
    width = np.where(np.cos(t) > 0, top_width, bottom_width)
    y = np.where(np.cos(t) > 0, waist * (1 - np.cos(t)), waist - (1 - waist) * np.cos(t))
    return [np.stack([0.5 + width * np.sin(2 * t), y], axis=1)]


def _nine(j: _Jitter) -> list:
    loop = j.arc(0.45, 0.27, j.value(0.4, 0.06), j.value(0.27, 0.05), 0, -j.value(360, 12))
    if j.choice(0.6):  # straight tail
        tail = j.line((0.87, 0.27), (0.82, 1.0))
    else:
        tail = j.curve((0.87, 0.27), (0.92, 0.7), (0.75, 1.0), (0.3, 0.97))
    return [_join(loop, tail)]


# Digit -> template: a function of a _Jitter returning the strokes, each an (n, 2) array in
# the unit box; each picks among the ways people write that digit.
STROKE_TEMPLATES = (_zero, _one, _two, _three, _four, _five, _six, _seven, _eight, _nine)


def _circle(j: _Jitter) -> list:
    start = j.value(0, 60)
    return [j.arc(0.5, 0.5, 0.5, 0.5, start, start + j.value(370, 12))]


def _square(j: _Jitter) -> list:
    return [j.line((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0))]


def _triangle(j: _Jitter) -> list:
    return [j.line((0.5, 0.0), (1.0, 1.0), (0.0, 1.0), (0.5, 0.0))]


def _cross(j: _Jitter) -> list:
    return [j.line((0.0, 0.0), (1.0, 1.0)), j.line((1.0, 0.0), (0.0, 1.0))]


# Shape -> template, as STROKE_TEMPLATES: what "draw your own classes" is tested and measured with.
SHAPE_TEMPLATES = {"circle": _circle, "square": _square, "triangle": _triangle, "cross": _cross}
