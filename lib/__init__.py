"""MNIST Studio engine: datasets, model zoo, training, run registry, drawing, CLI.

Everything here works without Streamlit (only the package `lib/ui/` imports
it) and imports TensorFlow lazily (inside functions; `lib/callbacks.py` is imported
only when a training starts), so pages that do not train stay fast to load.
"""

import os

# TensorFlow's C++ start-up chatter (CPU feature notices) means nothing to a user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
