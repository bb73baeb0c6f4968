"""Execution: where and when trainings run.

Owns the path from a config to a saved run (`pipeline.train_and_save`: load the dataset, train,
store) and the process-wide job manager (`jobs`: queue, workers, per-visitor caps, a child process
per training on a shared server, progress and stop), and exports made on request outside the page run
(`exporting`: one child process at a time, under the visitor's quota).

May import: lib.data, lib.models, lib.training, lib.store.
"""
