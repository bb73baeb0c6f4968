"""Training: from a config to a trained model and its measurements.

Owns the one config object (`config`: TrainConfig, with no heavy imports), the training loop
(`loop`: tf.data pipeline, schedules, precision, scoring), the Keras callbacks that report progress
(`callbacks`, the only module that imports Keras at its top, loaded once a training starts), the
CPU/thread detection (`hardware`), why a run ended (`reasons`: the stop reasons' templates), the tutorials' recipes and lessons (`presets`) and a config turned
into a runnable Keras script (`codegen`).

May import: lib.i18n, lib.data, lib.models. It saves nothing: storing a run is lib.store's.
"""
