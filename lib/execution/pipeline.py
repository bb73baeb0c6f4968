"""From a config to a saved run: load and split the dataset, train, save. Every front end
(the job manager's workers, the CLI, benchmarks) trains through `train_and_save`.
"""

from __future__ import annotations

from lib.data import catalog, datasets
from lib.store import runs
from lib.training import loop
from lib.training.config import TrainConfig


def train_and_save(
    config: TrainConfig,
    *,
    data_dir=None,
    runs_dir=None,
    on_progress: loop.ProgressFn | None = None,
    should_stop: loop.StopFn | None = None,
):
    """Load and split the dataset, train, and save the run: the path every front end uses.

    Returns (RunInfo, TrainResult). A failed (NaN) run is saved too, with its
    status, so the user can see what happened.
    """
    loop.report_phase(on_progress, loop.LOADING_DATA)
    # A dataset the user uploaded or drew lives beside their runs (their workspace on a shared server).
    dataset = catalog.load_dataset(config.dataset, data_dir, datasets.uploads_dir(runs_dir))
    data = datasets.prepare(
        dataset, validation_split=config.validation_split, limit=config.limit, seed=config.seed
    )
    result = loop.train(config, data, on_progress, should_stop)
    run = runs.save_run(result, config, data.info, runs_dir)
    return run, result
