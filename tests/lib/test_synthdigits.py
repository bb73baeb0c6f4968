"""Synthetic drawn digits: deterministic, canvas-shaped, varied, and readable by the preprocessing."""


import numpy as np
import pytest

from lib.data import synthdigits
from lib.data.drawing import preprocess_image
from lib.data.synthdigits import digit_set, draw_digit


@pytest.fixture(scope="module")
def drawn():
    return digit_set(10, seed=3)


def ink_boxes(images) -> np.ndarray:
    """(N, 4) top, bottom, left, right of each image's inked (alpha > 0) pixels."""
    boxes = []
    for alpha in images[..., 3]:
        rows = np.flatnonzero(alpha.max(axis=1))
        cols = np.flatnonzero(alpha.max(axis=0))
        boxes.append((rows[0], rows[-1], cols[0], cols[-1]))
    return np.array(boxes)


def test_same_seed_gives_the_same_set_and_another_seed_another():
    images, labels = digit_set(2, seed=5, canvas=96)
    again, labels_again = digit_set(2, seed=5, canvas=96)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels_again)
    assert not np.array_equal(images, digit_set(2, seed=6, canvas=96)[0])


def test_shapes_dtypes_and_labels(drawn):
    images, labels = drawn
    assert images.shape == (100, 280, 280, 4) and images.dtype == np.uint8
    assert labels.shape == (100,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 10))
    assert digit_set(1, canvas=64)[0].shape == (10, 64, 64, 4)


def test_canvas_background_is_transparent_and_ink_is_black_or_white_in_both_polarities(drawn):
    images, _ = drawn
    alpha, grey = images[..., 3], images[..., 0]
    assert (alpha[:, [0, -1], :] == 0).all() and (alpha[:, :, [0, -1]] == 0).all()
    assert (images[..., :3] == grey[..., None]).all()  # grey: R = G = B
    assert (grey[alpha == 0] == 0).all()
    inked = alpha == 255
    darkest = np.where(inked, grey, 255).min(axis=(1, 2))
    lightest = np.where(inked, grey, 0).max(axis=(1, 2))
    np.testing.assert_array_equal(darkest, lightest)  # one ink colour per drawing
    assert set(darkest.tolist()) == {0, 255}
    assert 0.25 < (darkest == 255).mean() < 0.75


def test_digits_vary_in_size_position_and_pen(drawn):
    images, _ = drawn
    top, bottom, left, right = ink_boxes(images).T
    height = (bottom - top + 1) / 280
    assert height.min() < 0.4 and height.max() > 0.8
    assert ((height > 0.2) & (height < 1.0)).all()
    centre_row, centre_col = (top + bottom) / 2, (left + right) / 2
    assert np.ptp(centre_row) > 100 and np.ptp(centre_col) > 100
    ink_share = (images[..., 3] > 127).sum(axis=(1, 2)) / ((bottom - top + 1) * (right - left + 1))
    assert np.ptp(ink_share) > 0.2  # thin and fat pens


@pytest.mark.parametrize("style", synthdigits.STYLES)
def test_every_digit_draws_in_every_style(style):
    rng = np.random.default_rng(0)
    for digit in range(10):
        image = draw_digit(digit, rng, canvas=140, style=style)
        assert image.shape == (140, 140, 4) and image.dtype == np.uint8
        assert (image[..., 3] == 255).sum() > 50


def test_font_style_works_without_system_fonts(monkeypatch, tmp_path):
    monkeypatch.setattr(synthdigits, "DEJAVU_DIR", tmp_path)
    synthdigits._font_sources.cache_clear()
    try:
        assert synthdigits._font_sources() == (None,)
        image = draw_digit(4, np.random.default_rng(0), style="font")
        assert (image[..., 3] == 255).sum() > 50
    finally:
        synthdigits._font_sources.cache_clear()


def test_bad_digit_or_style_is_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="0..9"):
        draw_digit(10, rng)
    with pytest.raises(ValueError, match="Unknown style: 'brush'"):
        draw_digit(3, rng, style="brush")


def test_every_drawn_digit_preprocesses_to_an_mnist_like_image(drawn):
    images, _ = drawn
    for image in images:
        out = preprocess_image(image)
        assert out is not None and out.shape == (28, 28) and out.max() == pytest.approx(1.0)
