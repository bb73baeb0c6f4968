"""Where runs live: the local runs folder (the default), or an fsspec URL (s3://, gs://, ...).

`MNIST_STUDIO_STORE` names the store. Empty or a local folder: `LocalStore`, the runs folder
itself, nothing copied (exactly as before). Any other URL: `FsspecStore`, the source of truth,
with the runs folder (`MNIST_STUDIO_RUNS_DIR`) as this server's working copy. Every file under
the runs folder has the same relative path on the store, so workspaces, share links, stamps and
uploaded datasets map one to one.

A run is uploaded file by file, then its commit object (`COMMITTED`) last; a listing counts only
runs whose commit object exists, so a save cut off half-way lists nothing. Deleting removes the
commit object first, then the rest: retrying either is safe. Runs missing locally (a restart, a
run made by another server or the CLI) are pulled on listing, at most once per `LIST_TTL_S` per
folder: one listing call, then the files of the runs not here yet (once; kept locally after).

A store that cannot be reached, refuses the credentials or is full raises `StoreError` with a
message in the user's words; a listing records it in `problem` instead, so pages show it and the
bundled model keeps working.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from lib.data import datasets, paths

STORE_ENV = paths.STORE_ENV
ENDPOINT_ENV = "MNIST_STUDIO_STORE_ENDPOINT"  # an S3-compatible service's URL (MinIO, R2, ...)
COMMIT_FILE = "COMMITTED"
LIST_TTL_S = 5.0  # a listing is pulled from the store at most this often per folder (own writes are local already)
CONNECT_TIMEOUT_S = 5  # an unreachable store answers in seconds, not minutes
UPLOADS = "uploads"  # lib.data.datasets.UPLOADS_SUBDIR: uploaded and drawn datasets of a workspace
RUN_FILES_LAST = ("meta.json",)  # uploaded after the other files of a run, right before the commit object
JOBS_PREFIX = ".jobs"  # small JSON objects of jobs run elsewhere (lib.execution.raycluster); hidden: never a run


class StoreError(RuntimeError):
    """The run store failed; the message says what happened and what to do."""


def store_url() -> str:
    return (os.environ.get(STORE_ENV) or "").strip()


def is_remote(url: str) -> bool:
    """Whether `url` names an fsspec store rather than a local folder (file:// is local)."""
    return "://" in url and not url.startswith("file://")


class LocalStore:
    """The runs folder is the store: nothing to copy, nothing to pull."""

    remote = False
    problem = ""
    url = ""

    def push_run(self, folder: Path) -> None:
        pass

    def push_files(self, files) -> None:
        pass

    def remove(self, path: Path) -> None:
        pass

    def pull(self, folder: Path) -> None:
        pass

    def pull_file(self, path: Path) -> None:
        pass

    def pull_run(self, folder: Path) -> None:
        pass

    def pull_uploads(self, folder: Path) -> None:
        pass

    # Small JSON objects by path relative to the runs folder (the job board): written whole, atomically.
    def put_json(self, relative: str, value: dict) -> None:
        target = paths.runs_dir() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, target)

    def get_json(self, relative: str) -> dict | None:
        """The object, or None when there is none (or it is not JSON: a half-written one never is)."""
        try:
            return json.loads((paths.runs_dir() / relative).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def list_json(self, prefix: str) -> list[str]:
        """Relative paths of the .json objects directly under `prefix`."""
        folder = paths.runs_dir() / prefix
        return sorted(f"{prefix}/{p.name}" for p in folder.glob("*.json")) if folder.is_dir() else []

    def remove_json(self, relative: str) -> None:
        (paths.runs_dir() / relative).unlink(missing_ok=True)


class FsspecStore:
    """An fsspec URL as the source of truth, `root` (the runs folder) as the working copy."""

    remote = True

    def __init__(self, url: str, root: Path):
        self.url = url.rstrip("/")
        self.root = Path(root)
        self.problem = ""  # the last listing's failure, in words ("" when it worked)
        self._fs = None
        self._base = ""
        self._pulled: dict[Path, float] = {}
        self._lock = threading.Lock()
        self.requests = 0  # store calls made (listings, reads, writes): what a page costs

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            options = {}
            if self.url.startswith(("s3://", "s3a://")):
                options["config_kwargs"] = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": 30,
                                            "retries": {"max_attempts": 2}}
                if os.environ.get(ENDPOINT_ENV):
                    options["endpoint_url"] = os.environ[ENDPOINT_ENV]
            try:
                self._fs, self._base = fsspec.core.url_to_fs(self.url, **options)
            except (ImportError, ValueError) as error:
                raise StoreError(f"The run store {self.url!r} cannot be used: {error}. "
                                 f"Check {STORE_ENV} (s3://bucket/prefix, gs://bucket/prefix or a folder).") from None
            self._base = self._base.rstrip("/")
        return self._fs

    def _key(self, path: Path) -> str | None:
        """The store path of a local path under the runs folder; None for anything outside it."""
        try:
            relative = Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        return f"{self._base}/{relative.as_posix()}".rstrip("/.") if str(relative) != "." else self._base

    def _call(self, what, *args, **kwargs):
        self.requests += 1
        try:
            return what(*args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure of the store becomes one message
            raise StoreError(describe(self.url, error)) from None

    def push_run(self, folder: Path) -> None:
        """Upload a run's files, meta.json last, then its commit object."""
        fs, key = self.fs, self._key(folder)
        if key is None:
            return
        files = sorted((p for p in Path(folder).iterdir() if p.is_file()),
                       key=lambda p: (p.name in RUN_FILES_LAST, p.name))
        for path in files:
            self._call(fs.put_file, str(path), f"{key}/{path.name}")
        manifest = {p.name: p.stat().st_size for p in files}
        self._call(fs.pipe_file, f"{key}/{COMMIT_FILE}", json.dumps(manifest).encode())

    def push_files(self, files) -> None:
        """Upload single files (a renamed run's meta.json, a share link, a stamp, a dataset)."""
        fs = self.fs
        for path in files:
            key = self._key(path)
            if key is None:
                continue
            if Path(path).is_dir():
                for inner in sorted(Path(path).rglob("*")):
                    if inner.is_file() and not inner.name.startswith("."):
                        self._call(fs.put_file, str(inner), self._key(inner))
            elif Path(path).is_file():
                self._call(fs.put_file, str(path), key)

    def remove(self, path: Path) -> None:
        """Delete a run (its commit object first) or a file from the store; gone already is fine."""
        fs, key = self.fs, self._key(path)
        if key is None:
            return
        try:
            self._call(fs.rm_file, f"{key}/{COMMIT_FILE}")
        except FileNotFoundError:
            pass
        try:
            self._call(fs.rm, key, recursive=True)
        except FileNotFoundError:
            pass
        self._forget(key)

    def pull(self, folder: Path) -> None:
        """Bring committed runs and uploaded datasets of `folder` that are missing here from the store.

        At most once per LIST_TTL_S per folder; a failure is kept in `problem`, not raised.
        """
        folder = Path(folder)
        now = time.monotonic()
        with self._lock:
            if now - self._pulled.get(folder, -LIST_TTL_S) < LIST_TTL_S:
                return
            self._pulled[folder] = now
        try:
            self._pull(folder)
            self.problem = ""
        except StoreError as error:
            self.problem = str(error)
            with self._lock:
                self._pulled.pop(folder, None)

    def _pull(self, folder: Path) -> None:
        fs, key = self.fs, self._key(folder)
        if key is None:
            return
        fs.invalidate_cache(key)  # another server (or the CLI) may have written since
        try:
            found = self._call(fs.find, key, maxdepth=2, detail=True)  # one listing call
        except FileNotFoundError:
            found = {}
        if not found:  # find hides refused credentials and a missing bucket: ask the bucket itself
            bucket = self._base.split("/")[0]
            try:
                self._call(fs.ls, bucket)
            except FileNotFoundError:
                raise StoreError(f"The run store {self.url} does not exist: create the bucket {bucket!r} "
                                 f"or fix {STORE_ENV}.") from None
            return
        by_dir: dict[str, dict[str, int]] = {}
        for name, info in found.items():
            relative = name[len(key):].strip("/")
            if "/" in relative:
                parent, leaf = relative.split("/", 1)
                by_dir.setdefault(parent, {})[leaf] = int(info.get("size") or 0)
        for parent, files in by_dir.items():
            local = folder / parent
            if parent == UPLOADS:
                for leaf, size in files.items():
                    target = local / leaf
                    if not target.is_file() or target.stat().st_size != size:
                        self._download(f"{key}/{parent}/{leaf}", target)
            elif COMMIT_FILE in files and not parent.startswith(".") and not local.exists():
                self._download_run(f"{key}/{parent}", local, files)

    def _download_run(self, key: str, local: Path, files: dict[str, int]) -> None:
        """A committed run into a hidden folder, renamed into place once complete."""
        import shutil

        # A folder of this pull's own: two threads may pull the same run at once (a page's listing and
        # the job layer fetching a run a cluster job just made); the first to finish puts it in place.
        tmp = local.parent / f".pull-{local.name}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for leaf in files:
                if leaf != COMMIT_FILE and "/" not in leaf:
                    self._call(self.fs.get_file, f"{key}/{leaf}", str(tmp / leaf))
            try:
                os.replace(tmp, local)
            except OSError:
                if not local.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # the other pull was first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _download(self, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.pull")
        self._call(self.fs.get_file, key, str(tmp))
        os.replace(tmp, target)

    def pull_file(self, path: Path) -> None:
        """One small file (a share link) from the store when it is not here; missing there too is fine."""
        path = Path(path)
        key = self._key(path)
        if key is None or path.is_file():
            return
        try:
            self._download(key, path)
        except FileNotFoundError:
            pass

    # Small JSON objects by path relative to the runs folder (the job board); an object store writes
    # each whole, so a reader sees the old or the new one, never half.
    def put_json(self, relative: str, value: dict) -> None:
        self._call(self.fs.pipe_file, f"{self._base}/{relative}", json.dumps(value).encode())

    def get_json(self, relative: str) -> dict | None:
        """The object, or None when there is none."""
        try:
            return json.loads(self._call(self.fs.cat_file, f"{self._base}/{relative}"))
        except FileNotFoundError:
            return None
        except ValueError:
            return None

    def list_json(self, prefix: str) -> list[str]:
        """Relative paths of the .json objects directly under `prefix` (one listing call)."""
        fs = self.fs  # first: it sets self._base
        key = f"{self._base}/{prefix}"
        fs.invalidate_cache(key)  # other servers and the cluster's jobs write here
        try:
            names = self._call(self.fs.ls, key, detail=False)
        except FileNotFoundError:
            return []
        return sorted(f"{prefix}/{name.rstrip('/').rsplit('/', 1)[-1]}" for name in names if name.endswith(".json"))

    def remove_json(self, relative: str) -> None:
        try:
            self._call(self.fs.rm_file, f"{self._base}/{relative}")
        except FileNotFoundError:
            pass

    def pull_run(self, folder: Path) -> None:
        """One committed run (made elsewhere: a cluster's job) into `folder` now, whatever LIST_TTL_S says."""
        folder = Path(folder)
        key = self._key(folder)
        if key is None or folder.exists():
            return
        self.fs.invalidate_cache(key)
        try:
            found = self._call(self.fs.ls, key, detail=True)
        except FileNotFoundError:
            return
        files = {info["name"].rstrip("/").rsplit("/", 1)[-1]: int(info.get("size") or 0) for info in found
                 if info.get("type") == "file"}
        if COMMIT_FILE in files:
            self._download_run(key, folder, files)

    def pull_uploads(self, folder: Path) -> None:
        """The uploaded and drawn datasets of `folder` (a workspace), and nothing else: what a training
        elsewhere (a cluster's job) needs of a workspace."""
        uploads = datasets.uploads_dir(Path(folder))  # ".datasets" (the folder name UPLOADS above misses)
        fs, key = self.fs, self._key(uploads)
        if key is None:
            return
        fs.invalidate_cache(key)
        try:
            found = self._call(fs.find, key, detail=True)
        except FileNotFoundError:
            return
        for name, info in found.items():
            target = uploads / name[len(key):].strip("/")
            if not target.is_file() or target.stat().st_size != int(info.get("size") or 0):
                self._download(name, target)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._pulled.clear()


def describe(url: str, error: BaseException) -> str:
    """A store failure in the user's words: what happened and what to do."""
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    if isinstance(error, PermissionError) or any(word in lowered for word in (
            "accessdenied", "access denied", "invalidaccesskeyid", "signaturedoesnotmatch", "forbidden",
            "credentials", "403")):
        return (f"The run store {url} refused the credentials ({_short(text)}). Check AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY (or the GCS credentials) in the app's secrets; the bundled model and "
                f"Draw still work.")
    if getattr(error, "errno", None) == 28 or any(word in lowered for word in ("quotaexceeded", "no space",
                                                                               "entitytoolarge", "storage full")):
        return (f"The run store {url} is full ({_short(text)}). Free space there or raise its quota; runs "
                f"cannot be saved until then.")
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered:
        return f"The run store {url} does not exist ({_short(text)}). Create the bucket or fix {STORE_ENV}."
    return (f"The run store {url} cannot be reached ({_short(text)}). Runs cannot be saved to it or listed from "
            f"it until it is back; check {STORE_ENV}, {ENDPOINT_ENV} and the network. The bundled model and "
            f"Draw still work.")


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 200 else line[:197] + "..."


_STORES: dict[tuple[str, str], object] = {}
_STORES_LOCK = threading.Lock()


def current() -> LocalStore | FsspecStore:
    """The store for the current setting and runs folder (one per pair, kept: it holds the connection)."""
    url = store_url()
    if not is_remote(url):
        return LocalStore()
    root = paths.runs_dir()
    with _STORES_LOCK:
        key = (url, str(root))
        if key not in _STORES:
            _STORES[key] = FsspecStore(url, root)
        return _STORES[key]
