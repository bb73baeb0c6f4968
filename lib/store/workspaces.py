"""Private workspaces: on a shared server each visitor's runs are theirs alone.

In the `public` profile a visitor holds an unguessable workspace key (kept in the
app's URL). Their runs live in `<runs dir>/.workspaces/<sha256 of the key>/`, so a
folder name never reveals a key, and every lookup goes through the workspace: a
run id from someone else's workspace is simply not found. A read-only share link
is a second unguessable token that maps to one (workspace, run id). The bundled
model and an operator's gallery folder are visible to all and changeable by none.
Workspaces nobody used for `idle_days` are deleted by `sweep_expired`, and
`reserve` holds the disk quotas under concurrent saves (one lock around check and
reservation). Opening, touching, reserving and the sweep's last look at a workspace
all take that one lock, so a visitor coming back, or a save in progress, is never
swept away. `Workspace.store` measures what a save really wrote and takes it back
when it passes a quota after all (the quota is first checked against an estimate).

In the `local` profile there is one workspace, the runs directory itself, and
everything behaves as it always did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, TypeVar

from lib.data import catalog, datasets, paths
from lib.i18n import N_
from lib.models import architectures
from lib.store import backend, profile, runs

T = TypeVar("T")

WORKSPACES_SUBDIR = ".workspaces"  # hidden: a local listing of the same runs dir never shows them
SHARES_SUBDIR = ".shares"
LAST_USED_FILE = ".last_used"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
KEY_BYTES = 24  # 32 url-safe characters, 192 random bits
TOUCH_EVERY_S = 600  # a workspace's last-use stamp is rewritten at most this often (expiry counts days)
RUN_OVERHEAD_BYTES = 256 * 1024  # history, meta.json and the .keras container around the weights
BYTES_PER_PARAM = 12  # float32 weights plus the optimizer's two moment slots saved with the model
UNDO_PREFIX = ".undo-"  # a save's hard-linked copies of the datasets it may replace; not counted in any quota


class WorkspaceNotFound(LookupError):
    """A workspace key or share link that is not valid here; the message says what to do."""


# A save that passed a quota once written (its estimate was too small): English, shown translated on a page
# (lib.i18n.translate_filled); `problem` is profile.check_disk's reason.
# A read-only run refused (English for the CLI; shown translated on a page through lib.i18n.translate_filled).
SHARED_READ_ONLY = N_("{name} is read-only: it is shared with every visitor.")
NO_LINK_NEEDED = N_("The bundled and gallery models are visible to everyone already; no link needed.")
NOT_KEPT = N_("It was not kept: on disk it takes {size:,.1f} MB, more than there is room for. {problem}")


class QuotaExceeded(RuntimeError):
    """Saving would pass the workspace's or the server's disk quota; the message says what to do."""


@dataclass(frozen=True)
class Workspace:
    """One visitor's runs: `folder` is where their runs are saved (the runs dir itself in local)."""

    folder: Path
    key: str | None = None  # None in local: the one workspace needs no key
    gallery: Path | None = None  # the operator's read-only runs

    @property
    def uploads_dir(self) -> Path:
        """Where datasets this visitor uploads or draws are kept (counted in the workspace quota)."""
        return datasets.uploads_dir(self.folder)

    def list_runs(self) -> tuple[list[runs.RunInfo], list[runs.DamagedFolder]]:
        """This workspace's runs newest first, then the gallery's and the bundled model (read-only)."""
        own, damaged = runs.list_runs(self.folder, include_bundled=False)
        shared = []
        if self.gallery is not None and self.gallery.is_dir():
            gallery, _ = runs.list_runs(self.gallery, include_bundled=False)
            shared = [replace(run, read_only=True) for run in gallery]
        bundled = runs.bundled_run()
        return [*own, *shared, *([bundled] if bundled else [])], damaged

    def get_run(self, run_id: str) -> runs.RunInfo:
        """A run of this workspace, the gallery or the bundled model; RunNotFound for anyone else's."""
        if run_id == runs.BUNDLED_ID:
            return runs.get_run(run_id)
        try:
            return runs.get_run(run_id, self.folder)
        except runs.RunNotFound:
            if self.gallery is None and self.key is None:
                raise  # local: the message names the runs dir
        try:
            if self.gallery is not None:
                return replace(runs.get_run(run_id, self.gallery), read_only=True)
        except runs.RunNotFound:
            pass
        raise runs.RunNotFound(f"No run {run_id!r} in your workspace.") from None

    def rename_run(self, run_id: str, new_name: str) -> runs.RunInfo:
        self._own(run_id)
        return runs.rename_run(run_id, new_name, self.folder)

    def delete_run(self, run_id: str) -> None:
        self._own(run_id)
        runs.delete_run(run_id, self.folder)

    def store(self, nbytes: int, save: Callable[[Path], T], *, current: profile.Profile | None = None,
              root: Path | None = None) -> T:
        """Run `save(folder)` into this workspace with `nbytes` (an estimate) of the quotas held: every
        way a run or dataset arrives (a finished training, an imported bundle: `bundles.import_bundle(data,
        folder)`, an uploaded, converted or drawn dataset) lands here, in the caller's workspace, never in
        anyone else's. QuotaExceeded before anything is written when the estimate does not fit; and after,
        when what was written passes a quota after all: then it is deleted again (a dataset it replaced
        gets its old file back) and the message says so.

        What was written is read from what `save` returns: a run (`.path`, or `.run_id` in this folder)
        or a dataset (`.path`), alone or first in a tuple, or a path; failing that, whatever is new in
        the folder or its uploads.
        """
        current = current or profile.current()
        root = Path(root) if root else _root_of(self)
        self.folder.mkdir(parents=True, exist_ok=True)
        with reserve(self, nbytes, current=current, root=root) as reservation:
            undo = _Undo(self.folder, backup=current.public)
            try:
                result = save(self.folder)
                written = undo.written(result)
                if current.public:
                    with _LOCK:
                        problem = _over_quota(self, written, reservation, current, root)
                        if problem:
                            undo.roll_back()
                            raise QuotaExceeded(problem)
                # Runs went to the store as they were written; uploaded, drawn and converted datasets go now
                # (or, the store being down, with the next listing that reaches it).
                backend.current().push_datasets([path for path in written if path.parent != self.folder])
                return result
            finally:
                undo.close()

    def usage_bytes(self) -> int:
        return folder_bytes(self.folder)

    def touch(self, now: float | None = None) -> None:
        """Record that the visitor used this workspace (idle expiry counts from here)."""
        if self.key is None:
            return
        with _LOCK:  # the sweep's last look and its removal happen under this lock too
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.folder / LAST_USED_FILE, str(time.time() if now is None else now))
        store = backend.current()
        try:  # a visitor's key must outlive a restart; a store failure here shows on the pages' listing
            store.push_files([self.folder / LAST_USED_FILE])
        except backend.StoreError as error:
            store.problem = str(error)

    def share(self, run_id: str) -> str:
        """A read-only share token for one of this workspace's runs (the same run gets the same token)."""
        run = self.get_run(run_id)
        if run.read_only:
            raise runs.ReadOnlyRun(NO_LINK_NEEDED)
        shares = _root_of(self) / SHARES_SUBDIR
        shares.mkdir(parents=True, exist_ok=True)
        backend.current().sync(shares)  # links made before a restart: the same run keeps its link
        for path in shares.glob("*.json"):
            entry = _read_share(path)
            if entry and entry.get("folder") == self.folder.name and entry.get("run_id") == run_id:
                return entry["token"]
        token = secrets.token_urlsafe(KEY_BYTES)
        _write_atomic(shares / f"{_digest(token)}.json",
                      json.dumps({"token": token, "folder": self.folder.name, "run_id": run_id}))
        backend.current().push_files([shares / f"{_digest(token)}.json"])
        return token

    def _own(self, run_id: str) -> None:
        """Changes only to this workspace's own runs; a gallery or bundled run is read-only."""
        run = self.get_run(run_id)
        if run.read_only:
            raise runs.ReadOnlyRun(SHARED_READ_ONLY.format(name=repr(run.display_name)))


def new_key() -> str:
    """A fresh, unguessable workspace key."""
    return secrets.token_urlsafe(KEY_BYTES)


def valid_key(key: str | None) -> bool:
    return bool(key) and bool(KEY_PATTERN.match(key))


def open_workspace(key: str | None, *, current: profile.Profile | None = None, root: Path | None = None) -> Workspace:
    """The caller's workspace: the runs dir in local; in public the one its key names (created on first use)."""
    current = current or profile.current()
    root = Path(root) if root else paths.runs_dir()
    gallery = Path(current.limits.gallery_dir).expanduser() if current.limits.gallery_dir else None
    if not current.public:
        return Workspace(root, None, gallery)
    if not valid_key(key):
        raise WorkspaceNotFound(
            "This workspace link is not valid (it may be cut short). Open the app without it to get a new workspace."
        )
    workspace = Workspace(root / WORKSPACES_SUBDIR / _digest(key), key, gallery)
    if _stale(workspace.folder):  # not on every call: pages open the workspace several times per rerun
        with _LOCK:  # looked at again under the sweep's lock: it either sees this visit or was done before it
            if _stale(workspace.folder):
                workspace.touch()
    return workspace


def _stale(folder: Path) -> bool:
    """Whether a workspace's last-use stamp is due to be renewed (or it does not exist yet)."""
    try:
        return not folder.is_dir() or time.time() - last_used(folder) > TOUCH_EVERY_S
    except OSError:  # swept away between the two looks
        return True


def open_share(token: str | None, *, root: Path | None = None) -> runs.RunInfo:
    """The one run a share token points at, read-only."""
    root = Path(root) if root else paths.runs_dir()
    if valid_key(token):  # a link made before a restart, or on another server
        backend.current().pull_file(root / SHARES_SUBDIR / f"{_digest(token)}.json")
    entry = _read_share(root / SHARES_SUBDIR / f"{_digest(token)}.json") if valid_key(token) else None
    if not entry or not secrets.compare_digest(entry.get("token", ""), token):
        raise WorkspaceNotFound("This share link is not valid, or its run was deleted or has expired.")
    folder = root / WORKSPACES_SUBDIR / entry["folder"]
    if not (folder / entry["run_id"]).is_dir():
        backend.current().pull(folder, wait=True)
    if not folder.is_dir():  # a local share: the runs dir itself
        folder = root if entry["folder"] == root.name else folder
    try:
        return replace(runs.get_run(entry["run_id"], folder), read_only=True)
    except runs.RunNotFound:
        raise WorkspaceNotFound("This share link's run was deleted or has expired.") from None


def sweep_expired(idle_days: float, *, root: Path | None = None, now: float | None = None,
                  keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Delete workspaces unused for `idle_days` (and their share links); returns the folder names removed.

    `keep` holds folder names that must stay however old their stamp: the caller passes the
    workspaces with a training queued or running (the job manager knows them; store may not
    ask it). A workspace with a save in progress (a reservation) stays too. Each candidate
    is looked at again under the lock that opening, touching and reserving take, and moved
    out of sight under it: a visitor who came back in between keeps their workspace.
    """
    root = Path(root) if root else paths.runs_dir()
    base = root / WORKSPACES_SUBDIR
    idle_s = idle_days * 86_400
    removed = []
    if not base.is_dir():
        return removed
    for folder in sorted(base.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or folder.name in keep:
            continue
        if not _idle(folder, idle_s, now):  # a first look without the lock: most workspaces are in use
            continue
        with _LOCK:
            if not _idle(folder, idle_s, now) or _reserved(folder):
                continue
            trash = base / f".trash-{folder.name}-{secrets.token_hex(3)}"
            os.replace(folder, trash)  # gone from sight in one step, then deleted
        shutil.rmtree(trash, ignore_errors=True)
        _remove_from_store(folder)
        removed.append(folder.name)
    shares = root / SHARES_SUBDIR
    if removed and shares.is_dir():
        for path in shares.glob("*.json"):
            entry = _read_share(path)
            if entry is None or entry.get("folder") in removed:
                path.unlink(missing_ok=True)
                _remove_from_store(path)
    return removed


def _remove_from_store(path: Path) -> None:
    """The sweep's deletions on the store too; a failure is retried by the next sweep's listing."""
    store = backend.current()
    try:
        store.remove(path)
    except backend.StoreError as error:
        store.problem = str(error)


def _idle(folder: Path, idle_s: float, now: float | None) -> bool:
    try:
        return (time.time() if now is None else now) - last_used(folder) > idle_s
    except OSError:  # gone already
        return False


def _reserved(folder: Path) -> bool:
    """Whether a save into this workspace is in progress; called under the lock."""
    target = folder.resolve()
    return any(Path(held).resolve() == target for held, _ in _RESERVED.values())


def last_used(folder: Path) -> float:
    """When a workspace was last used; its folder's mtime if the stamp is missing or damaged."""
    try:
        return float((folder / LAST_USED_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return folder.stat().st_mtime


def quota_guarded(trainer, *, current: profile.Profile | None = None):
    """A job-manager trainer that checks the training limits and holds the quotas for the run it
    will save while it trains.

    The run's size is estimated from the model's parameter count before training
    starts, so an over-quota run is refused with its message instead of failing at the end.
    """

    def guarded(config, on_progress, should_stop, data_dir, runs_dir):
        workspace = Workspace(Path(runs_dir) if runs_dir else paths.runs_dir())
        info = catalog.get_info(config.dataset, data_dir, workspace.uploads_dir)
        problem = profile.check_config(current or profile.current(), config, info)
        if problem:  # the page checked already; this holds for any caller
            raise ValueError(problem)
        return workspace.store(estimate_training_bytes(config, info),
                               lambda folder: trainer(config, on_progress, should_stop, data_dir, folder),
                               current=current)

    return guarded


def estimate_run_bytes(params: int) -> int:
    """Roughly what a run of a model with `params` parameters takes on disk."""
    return params * BYTES_PER_PARAM + RUN_OVERHEAD_BYTES


def estimate_training_bytes(config, info) -> int:
    """Roughly what the run of a TrainConfig on a dataset (a lib.data.datasets.DatasetInfo) takes on disk."""
    params = sum(row.params for row in architectures.summarize(config.layer_specs, info.input_shape, info.num_classes))
    return estimate_run_bytes(params)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (a file: its size), counting a pulled run's files that are still
    on the store only (the same on every store); a save's undo copies and the model cache (hard links
    to files counted in their run folders) are not counted."""
    if Path(folder).is_file():
        return os.lstat(folder).st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [name for name in dirnames if not name.startswith(UNDO_PREFIX) and name != backend.MODEL_CACHE]
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
        if backend.REMOTE_FILE in filenames:
            total += backend.declared_bytes(Path(dirpath))
    return total


# One lock for workspaces' lives: reservations, last-use stamps, the sweep's last look (re-entrant:
# opening a workspace touches it under the lock it already holds).
_LOCK = threading.RLock()
_RESERVED: dict[int, tuple[Path, int]] = {}  # reservation id -> (workspace folder, bytes) of saves in flight
_RESERVATION_IDS = iter(range(1, 2**62))


@contextlib.contextmanager
def reserve(workspace: Workspace, nbytes: int, *, current: profile.Profile | None = None, root: Path | None = None):
    """Hold `nbytes` of the quotas while saving; QuotaExceeded (with its message) if they would be passed.

    Check and reservation happen under one lock, and saves in flight count as used,
    so two visitors saving at once cannot both squeeze under the same limit. Yields the
    reservation's id (None in local, where nothing is held).
    """
    current = current or profile.current()
    if not current.public:
        yield None
        return
    root = Path(root) if root else paths.runs_dir()
    stored = _stored_bytes(workspace, root)
    with _LOCK:
        message = _quota_message(workspace, nbytes, current, root, stored)
        if message:
            raise QuotaExceeded(message)
        reservation = next(_RESERVATION_IDS)
        _RESERVED[reservation] = (workspace.folder, nbytes)
    try:
        yield reservation
    finally:
        with _LOCK:
            _RESERVED.pop(reservation, None)


def quota_problem(workspace: Workspace, nbytes: int, *, current: profile.Profile | None = None,
                  root: Path | None = None) -> str:
    """Why `nbytes` more in `workspace` would pass a quota now ("" if they fit, or in local): the check
    `reserve` makes, holding nothing. For a run saved by someone else (a cluster's job), checked when
    it is submitted."""
    current = current or profile.current()
    if not current.public:
        return ""
    root = Path(root) if root else _root_of(workspace)
    stored = _stored_bytes(workspace, root)
    with _LOCK:
        return _quota_message(workspace, nbytes, current, root, stored)


def _stored_bytes(workspace: Workspace, root: Path) -> tuple[int, int]:
    """(the workspace's, everyone's) bytes on a remote store: the quotas count what is there too (workspaces
    this server has not pulled since it started). One listing call each, asked before the lock, never while
    other visitors wait for it."""
    store = backend.current()
    return store.stored_bytes(workspace.folder), store.stored_bytes(root)


def _quota_message(workspace: Workspace, nbytes: int, current: profile.Profile, root: Path,
                   stored: tuple[int, int]) -> str:
    """Called under the lock: profile.check_disk on what is here or stored, plus the saves in flight."""
    stored_mine, stored_all = stored
    pending_mine = sum(size for folder, size in _RESERVED.values() if folder == workspace.folder)
    pending_all = sum(size for _, size in _RESERVED.values())
    return profile.check_disk(
        current,
        workspace_bytes=max(workspace.usage_bytes(), stored_mine) + pending_mine,
        total_bytes=max(folder_bytes(root), stored_all) + pending_all,
        adding_bytes=nbytes,
    )


def _over_quota(workspace: Workspace, written: list[Path], reservation: int, current: profile.Profile,
                root: Path) -> str:
    """Called under the lock after a save: why what it wrote may not stay ("" if it may).

    The same rule as `reserve`, with the bytes on disk for the estimate: other saves in flight still count.
    """
    added = sum(folder_bytes(path) for path in written if path.exists())
    others = [(folder, size) for held, (folder, size) in _RESERVED.items() if held != reservation]
    message = profile.check_disk(
        current,
        workspace_bytes=workspace.usage_bytes() - added + sum(size for folder, size in others
                                                              if folder == workspace.folder),
        total_bytes=folder_bytes(root) - added + sum(size for _, size in others),
        adding_bytes=added,
    )
    if not message:
        return ""
    return NOT_KEPT.format(size=added / profile.MB, problem=message)


class _Undo:
    """What one save into a workspace wrote, and how to take it back.

    Datasets are replaced by name, so before the save each file in the uploads folder gets
    a hard link in a hidden folder (no bytes copied): a replaced dataset can come back.
    """

    def __init__(self, folder: Path, *, backup: bool = True):
        self.folder = folder
        self.uploads = datasets.uploads_dir(folder)
        self.before = _entries(folder) | _entries(self.uploads)
        self.backup = folder / f"{UNDO_PREFIX}{secrets.token_hex(4)}"
        self.saved: dict[Path, Path] = {}  # a dataset file -> its hard link
        for path in sorted(self.uploads.glob("*")) if self.uploads.is_dir() and backup else []:
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):  # no hard links here: that dataset cannot come back
                    self.backup.mkdir(exist_ok=True)
                    link = self.backup / path.name
                    os.link(path, link)
                    self.saved[path.resolve()] = link
        self.paths: list[Path] = []

    def written(self, result) -> list[Path]:
        """The paths the save wrote, from its result (see Workspace.store) or from what is new."""
        first = result[0] if isinstance(result, tuple) and result else result
        if isinstance(first, Path):
            found = [first]
        elif isinstance(getattr(first, "path", None), Path):
            found = [first.path]
        elif isinstance(getattr(first, "run_id", None), str):
            found = [self.folder / first.run_id]
        else:
            found = sorted((_entries(self.folder) | _entries(self.uploads)) - self.before)
        inside = self.folder.resolve()
        self.paths = [path for path in found if path.resolve() != inside and path.resolve().is_relative_to(inside)]
        return self.paths

    def roll_back(self) -> None:
        """Delete what the save wrote; a dataset file it replaced gets its old content back."""
        for path in self.paths:
            if path.resolve() in self.saved:
                os.replace(self.saved.pop(path.resolve()), path)
            elif path.is_dir() and not path.is_symlink():
                backend.current().remove(path)  # a run already on the store: its commit object goes first
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.backup, ignore_errors=True)


def _entries(folder: Path) -> set[Path]:
    """The visible entries right inside `folder` (none if it does not exist)."""
    if not folder.is_dir():
        return set()
    return {path for path in folder.iterdir() if not path.name.startswith(".")}


def _root_of(workspace: Workspace) -> Path:
    """The runs dir a workspace belongs to (the workspace itself in local)."""
    folder = workspace.folder
    return folder.parent.parent if folder.parent.name == WORKSPACES_SUBDIR else folder


def _digest(secret: str) -> str:
    """A folder or file name for a secret that does not reveal it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:32]


def _read_share(path: Path) -> dict | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and {"token", "folder", "run_id"} <= entry.keys() else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
