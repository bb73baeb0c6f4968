"""Data: everything a model is trained on or asked about, before any model exists.

Owns where things live on disk (`paths`: the data and runs directories settings), the npz dataset
format (`datasets`: validated reading without unpickling, saving, splits), image folders turned into
datasets (`imagefolder`), which datasets exist and loading one by name (`catalog`), the MNIST-style
preprocessing of drawings and uploads (`drawing`), drawn-class drafts (`drawnclasses`) and the
synthetic digits the tests and benchmarks draw with (`synthdigits`).

May import: lib.i18n only (the layer below: `N_` marks class names and titles for translation). No Streamlit; no TensorFlow at module level.
"""
