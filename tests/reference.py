"""Numbers from the tutorials, as ../shared/REFERENCE.md (beside this repository) states them."""

# Parameter counts of the zoo's tutorial architectures for (28, 28, 1) input and 10 classes.
REFERENCE_PARAMS = {
    "softmax": 7_850,
    "mlp-500x2": 648_010,
    "mlp-128": 101_770,
    "mlp-512": 407_050,
    "mlp-1024": 814_090,
    "mlp-512-256": 535_818,
    "cnn-lenet-ish": 206_922,
    "cnn-tf-tutorial": 93_322,
    "cnn-gap-small": 19_466,
    "cnn-gap-deep": 409_162,
}
