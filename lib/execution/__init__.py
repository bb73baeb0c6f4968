"""Execution: where and when trainings and imports run.

Owns the path from a config to a saved run (`pipeline.train_and_save`: load the dataset, train,
store), the process-wide job manager (`jobs`: queue, workers, per-visitor caps, progress and
stop), the child processes that trainings on a shared server and every model import run in
(`process`: the server's side, limits, ending a child that hangs; `worker`: the child's side),
model import as a job (`imports`), exports made on request outside the page run (`exporting`:
one child process at a time, under the visitor's quota), and trainings and imports as jobs on a Ray cluster
(`raycluster`: the job manager's interface over the Jobs API and the store's job board;
`clusterjob`: the job's entry point on the cluster), chosen by MNIST_STUDIO_RAY_ADDRESS (`managers`).

May import: lib.i18n, lib.data, lib.models, lib.training, lib.store.
"""
