"""MNIST Studio engine: datasets, model zoo, training, run registry, drawing, CLI.

Everything here works without Streamlit (only `lib/ui.py` imports it) and
imports TensorFlow lazily, so pages that do not train stay fast to load.
"""
