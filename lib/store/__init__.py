"""Store: what users make and keep, and who may see it.

Owns trained runs on disk (`runs`: one folder per run, written atomically, listed, renamed,
deleted), run bundles in and out (`bundles`), private workspaces, share links, quotas and the idle
sweep of the public profile (`workspaces`), and the deployment profile with its limits (`profile`).

May import: lib.i18n, lib.data, lib.models, lib.training (a run stores its TrainConfig).
"""
