"""MNIST Studio engine, one package per concern; each layer imports only the layers below it:

    ui, cli      the Streamlit side (lib/ui/, the only package importing Streamlit) and `python -m lib`
    viz          Plotly figure builders
    execution    the job manager and the config -> saved run pipeline
    store        runs, bundles, workspaces, the deployment profile
    training     TrainConfig, the training loop, callbacks, presets, code generation
    models       the zoo and builder, safe model files, inference, inside a network
    data         paths, datasets (npz, image folders, catalog), drawing preprocessing

tests/lib/test_house_rules.py checks the order, the absence of import cycles, and that TensorFlow
is imported lazily (inside functions), so pages that do not train stay fast to load.
"""

import os

# TensorFlow's C++ start-up chatter (CPU feature notices) means nothing to a user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
