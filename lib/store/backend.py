"""Where runs live: the local runs folder (the default), or an fsspec URL (s3://, gs://, ...).

`MNIST_STUDIO_STORE` names the store. Empty or a local folder: `LocalStore`, the runs folder
itself, nothing copied (exactly as before). Any other URL: `FsspecStore`, the source of truth,
with the runs folder (`MNIST_STUDIO_RUNS_DIR`) as this server's working copy. Every file under
the runs folder has the same relative path on the store, so workspaces, share links, stamps and
uploaded datasets map one to one.

A run is uploaded file by file, then its commit object (`COMMITTED`) last; a listing counts only
runs whose commit object exists, so a save cut off half-way lists nothing. Deleting a run writes
its tombstone, removes the commit object, then the rest: retrying either is safe. Runs missing locally (a restart, a
run made by another server or the CLI) are pulled on listing, at most once per `LIST_TTL_S` per
folder: one listing call, then the files of the runs not here yet (once; kept locally after). The same
listing brings other servers' changes to runs that are here: a run whose meta.json there has another size
or ETag than the one last seen here (`STORED_FILE`) gets it again (a rename: one GET), and a run the store
held committed, lists no more and names in its tombstones (`DELETED`: written by the server that deleted it)
is removed here too. A run the store never held (saved before it was set, or its upload not finished), or
that vanished from the store without a tombstone (a bucket emptied by hand), is never removed.

A pulled run's model file is not downloaded with it: the run folder records its size and ETag
(`REMOTE_FILE`), and the first page that opens the model (`fetch`) downloads it once into a cache
keyed by that content (`MODEL_CACHE`, under the runs folder), hard-linked into the run folder; every
later rerun, page or visitor reads the local file.

A run whose upload did not finish (the store was down, the server stopped half-way) keeps a
`PENDING_FILE` in its folder; every listing that reaches the store sends such runs again, so a
run trained while the store was down lands there once it is back (unless the disk is wiped first).

A store that cannot be reached, refuses the credentials or is full raises `StoreError` with a
message in the user's words; a listing records it in `problem` instead, so pages show it and the
bundled model keeps working. A store that could not be reached is not asked again for
`DOWN_RETRY_S`: calls in that time fail at once with the same message, so a page makes one slow
call while the store is down, not one per listing, quota and share link. A trained run's save
is tried all the same.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from lib.data import datasets, paths
from lib.i18n import N_

STORE_ENV = paths.STORE_ENV
ENDPOINT_ENV = "MNIST_STUDIO_STORE_ENDPOINT"  # an S3-compatible service's URL (MinIO, R2, ...)
COMMIT_FILE = "COMMITTED"
LIST_TTL_S = 5.0  # a listing is pulled from the store at most this often per folder (own writes are local already)
CONNECT_TIMEOUT_S = 5  # an unreachable store answers in seconds, not minutes
RETRIES = 2  # retries of a failed store request (botocore backs off up to 1 s, then 2 s, between them)
DOWN_RETRY_S = 15.0  # after a store could not be reached, calls fail at once for this long, then it is asked again
ATTEMPTS_ENV = "AWS_MAX_ATTEMPTS"  # the standard AWS setting, total attempts per request: overrides RETRIES
UPLOADS = ".datasets"  # lib.data.datasets.UPLOADS_SUBDIR: uploaded and drawn datasets, image-folder caches
META_FILE = "meta.json"  # runs.META_FILE: a run's name and scores (a few kB), what a rename rewrites
RUN_FILES_LAST = (META_FILE,)  # uploaded after the other files of a run, right before the commit object
LAZY_FILES = ("model.keras",)  # runs.MODEL_FILE: pulled on first use, not with the listing (megabytes each)
REMOTE_FILE = ".remote.json"  # in a pulled run folder: {file name: {"size", "etag"}} of its files not here yet
MODEL_CACHE = ".model-cache"  # under the runs folder: <size>-<etag digest> files, hard-linked into run folders
CACHE_KEEP = 16  # cached files no run folder links any more, kept for a run pulled again (newest first)
ETAG_KEYS = ("ETag", "etag", "md5Hash", "crc32c", "checksum")  # what s3fs, gcsfs and others call a content tag
MODIFIED_KEYS = ("LastModified", "updated", "mtime", "last_modified")  # and when an object was written
PENDING_FILE = ".push-pending"  # in a run folder while its upload has not finished: the next listing sends it
# In a run folder the store held committed (pulled, or pushed whole by this server): {"store": its URL, "since":
# when this server knew (epoch s), "meta": meta.json's size and ETag last seen there}. Only such a run is removed
# here when the store no longer lists it; a changed "meta" downloads meta.json again (a rename elsewhere).
STORED_FILE = ".stored.json"
# Beside the runs of a folder on the store: an empty object per run deleted by a server (written before its commit
# object goes). Only a run named here is removed from other servers' folders: a run that merely vanished (a bucket
# emptied by hand, a store restored from a backup) is kept where it still is. Swept after TOMBSTONE_KEEP_S.
DELETED = ".deleted"
TOMBSTONE_KEEP_S = 30 * 24 * 3600.0
JOBS_PREFIX = ".jobs"  # small JSON objects of jobs run elsewhere (lib.execution.raycluster); hidden: never a run


class StoreError(OSError, RuntimeError):
    """The run store failed; the message says what happened and what to do (an OSError: pages that
    report a file that cannot be read report a store that cannot be read the same way)."""


# The store's failures in the user's words: what happened and what to do. English (the CLI, the logs, a
# job's failure), marked for the catalog: pages show them translated (lib.i18n.translate_filled), the
# technical `error` quoted as it is.
CANNOT_USE = N_("The run store {url!r} cannot be used: {error}. Check {setting} (s3://bucket/prefix, gs://bucket/prefix "
                "or a folder).")
NO_BUCKET = N_("The run store {url} does not exist: create the bucket {bucket!r} or fix {setting}.")
NO_SUCH_BUCKET = N_("The run store {url} does not exist ({error}). Create the bucket or fix {setting}.")
SHORT_DOWNLOAD = N_("The run store {url} sent {file} with {size} bytes, not the {listed} it listed; open the page again.")
REFUSED = N_("The run store {url} refused the credentials ({error}). Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
             "(or the GCS credentials) in the app's secrets; the bundled model and Draw still work.")
FULL = N_("The run store {url} is full ({error}). Free space there or raise its quota; runs cannot be saved until then.")
UNREACHABLE = N_("The run store {url} cannot be reached ({error}). Runs cannot be saved to it or listed from it until it "
                 "is back; check {setting}, {endpoint_setting} and the network. The bundled model and Draw still work.")
# A trained run kept here only (lib.store.runs); `problem` is one of the texts above.
NOT_STORED = N_("The run was saved, but not to the run store. {problem} It is kept on this server and sent to the store "
                "by itself once the store answers again; if the app restarts before that, it is lost: download its Run "
                "bundle to be safe.")


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

    def push_datasets(self, files) -> None:
        pass

    def remove(self, path: Path, *, run: bool = False) -> None:
        pass

    def pull(self, folder: Path, *, wait: bool = False) -> None:
        pass

    def pull_file(self, path: Path) -> None:
        pass

    def fetch(self, path: Path) -> Path:
        return Path(path)

    def sync(self, folder: Path, *, force: bool = False) -> None:
        pass

    def stored_bytes(self, folder: Path) -> int:
        return 0

    def expire_listings(self) -> None:
        pass

    def settle(self, timeout_s: float = 30.0) -> None:
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

    def create_json(self, relative: str, value: dict) -> bool:
        """Write the object only if there is none yet (atomically: a hard link fails on an existing name);
        whether this call created it."""
        target = paths.runs_dir() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value))
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

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

    def list_objects(self, prefix: str) -> dict[str, float | None]:
        """{relative path: when it was last written (epoch seconds)} of the files directly under `prefix`."""
        folder = paths.runs_dir() / prefix
        found = {}
        for path in (folder.iterdir() if folder.is_dir() else ()):
            try:
                if path.is_file():
                    found[f"{prefix}/{path.name}"] = path.stat().st_mtime
            except OSError:  # deleted meanwhile
                continue
        return found

    def remove_object(self, relative: str) -> None:
        """A job board object (JSON or a file); gone already is fine."""
        (paths.runs_dir() / relative).unlink(missing_ok=True)

    # Files by path relative to the runs folder (an import's upload on the job board): copied whole.
    def put_file(self, relative: str, source: Path) -> None:
        import shutil

        target = paths.runs_dir() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)

    def get_file(self, relative: str, target: Path) -> None:
        """The object into `target`; FileNotFoundError when there is none."""
        import shutil

        shutil.copyfile(paths.runs_dir() / relative, target)


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
        self._synced: dict[Path, float] = {}
        self._refreshing: dict[Path, threading.Thread] = {}  # folders being pulled in the background
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()  # one model download at a time; listings do not wait for it
        self.requests = 0  # store calls made (listings, reads, writes): what a page costs
        self._down: tuple[float, str] | None = None  # (since when, message) after the store could not be reached
        self._pushing: set[Path] = set()  # run folders being uploaded now
        self._marked: dict[Path, float] = {}  # run folder -> time.monotonic() when this process wrote its STORED_FILE

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            options = {}
            if self.url.startswith(("s3://", "s3a://")):
                attempts = os.environ.get(ATTEMPTS_ENV, "").strip()
                retries = {"total_max_attempts": int(attempts)} if attempts.isdigit() else {"max_attempts": RETRIES}
                options["config_kwargs"] = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": 30,
                                            "retries": retries}
                if os.environ.get(ENDPOINT_ENV):
                    options["endpoint_url"] = os.environ[ENDPOINT_ENV]
            try:
                self._fs, self._base = fsspec.core.url_to_fs(self.url, **options)
            except (ImportError, ValueError) as error:
                raise StoreError(CANNOT_USE.format(url=self.url, error=error, setting=STORE_ENV)) from None
            self._base = self._base.rstrip("/")
        return self._fs

    def _key(self, path: Path) -> str | None:
        """The store path of a local path under the runs folder; None for anything outside it."""
        self.fs  # noqa: B018 - opening the store sets the base path the keys start with
        try:
            relative = Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        return f"{self._base}/{relative.as_posix()}".rstrip("/.") if str(relative) != "." else self._base

    def _call(self, what, *args, try_anyway: bool = False, **kwargs):
        """`what(*args, **kwargs)` on the store, its failure in words (StoreError). `try_anyway`: even
        while the store is remembered as unreachable (a trained run's save is worth the wait)."""
        down = self._down
        if down is not None and not try_anyway and time.monotonic() - down[0] < DOWN_RETRY_S:
            raise StoreError(down[1])  # it was just unreachable: say so now, not after another timeout
        self.requests += 1
        try:
            result = what(*args, **kwargs)
        except (FileNotFoundError, FileExistsError):  # answers, not failures
            self._down = None
            raise
        except Exception as error:  # noqa: BLE001 - every failure of the store becomes one message
            message = describe(self.url, error)
            if is_unreachable(error):
                self._down = (time.monotonic(), message)
            raise StoreError(message) from None
        self._down = None
        return result

    def push_run(self, folder: Path) -> None:
        """Upload a run's files, meta.json last, then its commit object. Until the commit object is
        written the folder holds PENDING_FILE, so a failed or cut-off upload is sent again later."""
        fs, key = self.fs, self._key(folder)
        if key is None:
            return
        folder = Path(folder)
        pending = folder / PENDING_FILE
        with self._lock:
            if folder in self._pushing:
                return  # this server is sending it right now (a save and a listing's retry met)
            self._pushing.add(folder)
        try:
            pending.touch()
            files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                           key=lambda p: (p.name in RUN_FILES_LAST, p.name))
            for path in files:
                self._call(fs.put_file, str(path), f"{key}/{path.name}", try_anyway=True)
            manifest = {p.name: p.stat().st_size for p in files}
            self._call(fs.pipe_file, f"{key}/{COMMIT_FILE}", json.dumps(manifest).encode(), try_anyway=True)
            self._mark_stored(folder, meta_tag=None)  # meta.json's ETag unknown: the next listing reads it once
            pending.unlink(missing_ok=True)
        finally:
            with self._lock:
                self._pushing.discard(folder)

    def _push_pending(self, folder: Path, committed: set[str]) -> None:
        """Send again the runs in `folder` whose upload did not finish (a listing just reached the store)."""
        if not folder.is_dir():
            return
        for run in sorted(folder.iterdir()):
            if run.name.startswith(".") or not (run / PENDING_FILE).is_file():
                continue
            if run.name in committed:  # the upload finished; only the marker's removal was cut off
                (run / PENDING_FILE).unlink(missing_ok=True)
            else:
                self.push_run(run)

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

    def push_datasets(self, files) -> None:
        """Upload a visitor's new datasets (uploaded, drawn, converted). Each keeps a marker beside it
        (`dataset_marker`) until it is on the store: when the store cannot take it now (StoreError, raised),
        the next listing that reaches the store sends it, as for a run."""
        files = [Path(path) for path in files]
        for path in files:
            dataset_marker(path).touch()
        self.push_files(files)
        for path in files:
            dataset_marker(path).unlink(missing_ok=True)

    def _push_pending_datasets(self, folder: Path) -> None:
        """Send the datasets of `folder` whose upload did not happen (a listing just reached the store)."""
        uploads = folder / UPLOADS
        if not uploads.is_dir():
            return
        for marker in sorted(uploads.rglob(f".*{PENDING_FILE}")):
            target = marker.with_name(marker.name[1:-len(PENDING_FILE)])
            if target.exists():
                self.push_files([target])
            marker.unlink(missing_ok=True)

    def remove(self, path: Path, *, run: bool = False) -> None:
        """Delete a run (its tombstone written, then its commit object, then the rest) or a file from the
        store; gone already is fine. The tombstone tells other servers holding the run to drop it."""
        fs, key = self.fs, self._key(path)
        if key is None:
            return
        if run:
            self._call(fs.pipe_file, f"{self._key(Path(path).parent)}/{DELETED}/{Path(path).name}", b"")
        try:
            self._call(fs.rm_file, f"{key}/{COMMIT_FILE}")
        except FileNotFoundError:
            pass
        try:
            self._call(fs.rm, key, recursive=True)
        except FileNotFoundError:
            pass
        self._forget(key)

    def pull(self, folder: Path, *, wait: bool = False) -> None:
        """Bring committed runs and uploaded datasets of `folder` that are missing here from the store.

        At most once per LIST_TTL_S per folder; a failure is kept in `problem`, not raised. The first
        pull of a folder (or with `wait`) happens now; a later one refreshes in the background while
        the page goes on with what is here (this server's own writes are here already), so a page
        render after the first visit never waits for the store.
        """
        folder = Path(folder)
        now = time.monotonic()
        with self._lock:
            if now - self._pulled.get(folder, -LIST_TTL_S) < LIST_TTL_S or folder in self._refreshing:
                return
            background = folder in self._pulled and not wait
            self._pulled[folder] = now
            if background:
                self._refreshing[folder] = threading.Thread(target=self._pull_safely, args=(folder,), daemon=True,
                                                            name=f"store-refresh-{folder.name}")
                self._refreshing[folder].start()
                return
        self._pull_safely(folder)

    def _pull_safely(self, folder: Path) -> None:
        try:
            self._pull(folder)
            self.problem = ""
        except StoreError as error:
            self.problem = str(error)
            with self._lock:
                self._pulled.pop(folder, None)
        finally:
            with self._lock:
                self._refreshing.pop(folder, None)

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait for background refreshes to end (tests and benches count their requests)."""
        with self._lock:
            threads = list(self._refreshing.values())
        for thread in threads:
            thread.join(timeout_s)

    def _pull(self, folder: Path) -> None:
        fs, key = self.fs, self._key(folder)
        if key is None:
            return
        fs.invalidate_cache(key)  # another server (or the CLI) may have written since
        started = (time.time(), time.monotonic())  # a run committed after this may be missing from the listing
        try:
            # One flat listing (s3fs, gcsfs: a paginated list of every object under the prefix, never from
            # the listing cache); with maxdepth it would list each run folder separately, from a stale cache.
            found = self._call(fs.find, key, detail=True)
        except FileNotFoundError:
            found = {}
        if not found:  # find hides refused credentials and a missing bucket: ask the bucket itself
            bucket = self._base.split("/")[0]
            try:
                self._call(fs.ls, bucket)
            except FileNotFoundError:
                raise StoreError(NO_BUCKET.format(url=self.url, bucket=bucket, setting=STORE_ENV)) from None
            self._push_pending(folder, set())  # nothing is removed here: no tombstone says a run was deleted
            self._push_pending_datasets(folder)
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
                    if dataset_marker(target).exists():
                        continue  # changed here while the store was down: this one goes there, not back
                    if not target.is_file() or target.stat().st_size != size:
                        self._download(f"{key}/{parent}/{leaf}", target)
            elif COMMIT_FILE in files and not parent.startswith(".") and not local.exists():
                tags = {leaf: _etag(found[f"{key}/{parent}/{leaf}"]) for leaf in files
                        if leaf in LAZY_FILES or leaf == META_FILE}
                self._download_run(f"{key}/{parent}", local, files, tags)
        committed = {parent for parent, files in by_dir.items() if COMMIT_FILE in files}
        self._sync_runs(folder, key, found, committed, set(by_dir.get(DELETED, {})), started)
        self._sweep_tombstones(key, found)
        self._push_pending_datasets(folder)
        self._push_pending(folder, committed)

    def _sync_runs(self, folder: Path, key: str, found: dict, committed: set[str], deleted: set[str],
                   started: tuple[float, float]) -> None:
        """What other servers did to the runs here, from one successful listing of `folder` (`found`):
        a run whose meta.json there differs from the one last seen here was renamed, so its meta.json is
        downloaded again; a run the store held committed, lists no more and has a tombstone for was deleted
        there, so it goes here too.
        A run the store never held (saved before it was set, or its upload not finished) is never removed."""
        if not folder.is_dir():
            return
        with self._lock:
            pushing = {path.resolve() for path in self._pushing}
        for run in sorted(folder.iterdir()):
            if run.name.startswith(".") or not run.is_dir() or run.resolve() in pushing:
                continue
            if run.name in committed:
                info = found.get(f"{key}/{run.name}/{META_FILE}")
                if info is not None:
                    self._sync_meta(run, f"{key}/{run.name}/{META_FILE}",
                                    _meta_tag(int(info.get("size") or 0), _etag(info)))
            elif run.name in deleted:
                self._drop_deleted(run, started)

    def _sync_meta(self, run: Path, key: str, meta_tag: str) -> None:
        """meta.json from the store when its size or ETag is not the one last seen here (one GET)."""
        record = stored_record(run)
        if record.get("store") == self.url and record.get("meta") == meta_tag:
            return
        try:
            self._download(key, run / META_FILE)
            self._mark_stored(run, meta_tag=meta_tag)
        except FileNotFoundError:
            pass  # deleted since the listing, there or here: the next listing removes it

    def _sweep_tombstones(self, key: str, found: dict) -> None:
        """Delete tombstones older than TOMBSTONE_KEEP_S (a server away that long kept nothing here); a failure
        waits for the next listing."""
        cutoff = time.time() - TOMBSTONE_KEEP_S
        old = [name for name, info in found.items() if name.startswith(f"{key}/{DELETED}/")
               and (_modified(info) or cutoff) < cutoff]
        if old:
            try:
                self._call(self.fs.rm, old)
            except (FileNotFoundError, StoreError):
                pass

    def _drop_deleted(self, run: Path, started: tuple[float, float]) -> None:
        """Remove `run` here, deleted on the store by another server: only if this store held it committed
        before the listing began, and no upload of it is pending or under way. Moved out of sight first
        (atomic), so a page never reads half a folder."""
        import shutil

        record = stored_record(run)
        since = record.get("since")
        if record.get("store") != self.url or not isinstance(since, int | float) or since >= started[0]:
            return  # never held by this store, or committed after the listing began (it may not show yet)
        trash = run.parent / f".trash-{run.name}-{os.getpid()}-{threading.get_ident()}"
        resolved = run.resolve()
        with self._lock:
            if self._marked.get(resolved, -1.0) >= started[1] or (run / PENDING_FILE).exists() \
                    or resolved in {path.resolve() for path in self._pushing}:
                return  # marked here after the listing began (whatever the wall clock says), or being sent
            try:
                os.replace(run, trash)
            except FileNotFoundError:
                return  # deleted here meanwhile
            self._marked.pop(resolved, None)
        shutil.rmtree(trash, ignore_errors=True)

    def _mark_stored(self, run: Path, *, meta_tag: str | None, into: Path | None = None) -> None:
        """Record in `run` (or in `into`, its folder being assembled) that this store holds it committed;
        `meta_tag`: meta.json's size and ETag there (None: not known yet)."""
        record = stored_record(run)
        if record.get("store") != self.url:
            record = {"store": self.url, "since": time.time()}
        record["meta"] = meta_tag
        target = Path(into or run) / STORED_FILE
        tmp = target.with_name(f"{STORED_FILE}.{os.getpid()}-{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, target)
        with self._lock:
            self._marked[run.resolve()] = time.monotonic()

    def _download_run(self, key: str, local: Path, files: dict[str, int], tags: dict[str, str]) -> None:
        """A committed run's small files into a hidden folder, renamed into place once complete; its
        model file is only described (size, ETag) for `fetch`."""
        import shutil

        # A folder of this pull's own: two threads may pull the same run at once (a page's listing and
        # the job layer fetching a run a cluster job just made); the first to finish puts it in place.
        tmp = local.parent / f".pull-{local.name}-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            remote = {}
            for leaf, size in files.items():
                if leaf == COMMIT_FILE or "/" in leaf:
                    continue
                if leaf in LAZY_FILES:
                    remote[leaf] = {"size": size, "etag": tags.get(leaf, "")}
                else:
                    self._call(self.fs.get_file, f"{key}/{leaf}", str(tmp / leaf))
            if remote:
                (tmp / REMOTE_FILE).write_text(json.dumps(remote), encoding="utf-8")
            meta_tag = _meta_tag(files[META_FILE], tags.get(META_FILE, "")) if META_FILE in files else None
            self._mark_stored(local, meta_tag=meta_tag, into=tmp)
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

    def fetch(self, path: Path) -> Path:
        """`path` (a pulled run's model file) on local disk: from the content-keyed cache when it holds
        the same size and ETag, else downloaded into it once; then hard-linked into the run folder.

        Nothing is asked of the store when `path` is here already (every rerun after the first).
        """
        path = Path(path)
        if path.is_file():
            return path
        described = remote_files(path.parent).get(path.name)
        key = self._key(path)
        if described is None or key is None:
            return path  # not a pulled run: the caller reports the missing file as before
        size, etag = int(described.get("size") or 0), str(described.get("etag") or "")
        cache = self.root / MODEL_CACHE
        cache.mkdir(parents=True, exist_ok=True)
        cached = cache / cache_name(size, etag, key)
        with self._fetch_lock:
            if not (cached.is_file() and cached.stat().st_size == size):
                tmp = cache / f".{cached.name}.{os.getpid()}-{threading.get_ident()}.part"
                try:
                    self._call(self.fs.get_file, key, str(tmp))
                    if tmp.stat().st_size != size:
                        raise StoreError(SHORT_DOWNLOAD.format(url=self.url, file=f"{path.parent.name}/{path.name}",
                                                               size=tmp.stat().st_size, listed=size))
                    os.replace(tmp, cached)
                finally:
                    tmp.unlink(missing_ok=True)
            _link(cached, path)
            self._trim_cache(cache)
        return path

    def sync(self, folder: Path, *, force: bool = False) -> None:
        """Make `folder` (plain files: image-folder caches) the same here and on the store: files missing
        or of another size here are downloaded, files missing there uploaded. One listing call, at most
        once per LIST_TTL_S unless `force`; a failure is kept in `problem`, not raised."""
        folder = Path(folder)
        key = self._key(folder)
        now = time.monotonic()
        with self._lock:
            if key is None or (not force and now - self._synced.get(folder, -LIST_TTL_S) < LIST_TTL_S):
                return
            self._synced[folder] = now
        try:
            try:
                found = self._call(self.fs.find, key, detail=True)
            except FileNotFoundError:
                found = {}
            there = {name[len(key):].strip("/"): int(info.get("size") or 0) for name, info in found.items()}
            for relative, size in there.items():
                target = folder / relative
                if not target.is_file() or target.stat().st_size != size:
                    self._download(f"{key}/{relative}", target)
            here = [path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")
                    and path.relative_to(folder).as_posix() not in there] if folder.is_dir() else []
            self.push_files(here)
        except StoreError as error:
            self.problem = str(error)

    def stored_bytes(self, folder: Path) -> int:
        """Bytes of everything under `folder` on the store (one listing call); 0 when it cannot be asked
        (the failure shows as `problem`; quotas then count what is here)."""
        key = self._key(folder)
        if key is None:
            return 0
        try:
            found = self._call(self.fs.find, key, detail=True)
        except FileNotFoundError:
            return 0
        except StoreError as error:
            self.problem = str(error)
            return 0
        return sum(int(info.get("size") or 0) for name, info in found.items()
                   if not name.endswith(f"/{COMMIT_FILE}"))  # as the local count: commit objects are not here

    def _trim_cache(self, cache: Path) -> None:
        """Forget cached files no run folder links any more, beyond the newest CACHE_KEEP."""
        unlinked = []
        for entry in cache.iterdir():
            try:
                status = entry.stat()
            except OSError:
                continue
            if not entry.name.startswith(".") and status.st_nlink <= 1:
                unlinked.append((status.st_mtime, entry))
        for _, entry in sorted(unlinked, reverse=True)[CACHE_KEEP:]:
            entry.unlink(missing_ok=True)

    def expire_listings(self) -> None:
        """The next listing of every folder asks the store again, as once LIST_TTL_S has passed (in the
        background for a folder listed before)."""
        with self._lock:
            for times in (self._pulled, self._synced):
                for folder in times:
                    times[folder] = -LIST_TTL_S

    # Small JSON objects by path relative to the runs folder (the job board); an object store writes
    # each whole, so a reader sees the old or the new one, never half.
    def put_json(self, relative: str, value: dict) -> None:
        self._call(self.fs.pipe_file, f"{self._base}/{relative}", json.dumps(value).encode())

    def create_json(self, relative: str, value: dict) -> bool:
        """Write the object only if there is none yet; whether this call created it. On S3 one conditional
        PUT (If-None-Match: *, s3fs's mode="create"): of servers racing for one name exactly one wins. Other
        fsspec stores fall back to fsspec's check-then-write, which is not atomic."""
        try:
            self._call(self.fs.pipe_file, f"{self._base}/{relative}", json.dumps(value).encode(), mode="create")
        except FileExistsError:
            return False
        return True

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

    def list_objects(self, prefix: str) -> dict[str, float | None]:
        """{relative path: when it was last written (epoch seconds; None if the store does not say)} of the
        objects directly under `prefix` (one listing call)."""
        fs = self.fs  # first: it sets self._base
        key = f"{self._base}/{prefix}"
        fs.invalidate_cache(key)
        try:
            found = self._call(fs.ls, key, detail=True)
        except FileNotFoundError:
            return {}
        return {f"{prefix}/{info['name'].rstrip('/').rsplit('/', 1)[-1]}": _modified(info)
                for info in found if info.get("type") == "file"}

    def remove_object(self, relative: str) -> None:
        """A job board object (JSON or a file); gone already is fine."""
        try:
            self._call(self.fs.rm_file, f"{self._base}/{relative}")
        except FileNotFoundError:
            pass

    # Files by path relative to the runs folder (an import's upload on the job board).
    def put_file(self, relative: str, source: Path) -> None:
        fs = self.fs  # first: it sets self._base
        self._call(fs.put_file, str(source), f"{self._base}/{relative}")

    def get_file(self, relative: str, target: Path) -> None:
        """The object into `target`; FileNotFoundError when there is none."""
        fs = self.fs
        self._call(fs.get_file, f"{self._base}/{relative}", str(target))

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
        by_leaf = {info["name"].rstrip("/").rsplit("/", 1)[-1]: info for info in found if info.get("type") == "file"}
        files = {leaf: int(info.get("size") or 0) for leaf, info in by_leaf.items()}
        tags = {leaf: _etag(info) for leaf, info in by_leaf.items() if leaf in LAZY_FILES or leaf == META_FILE}
        if COMMIT_FILE in files:
            self._download_run(key, folder, files, tags)

    def pull_uploads(self, folder: Path) -> None:
        """The uploaded and drawn datasets of `folder` (a workspace), and nothing else: what a training
        elsewhere (a cluster's job) needs of a workspace."""
        uploads = datasets.uploads_dir(Path(folder))  # UPLOADS
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


def remote_files(folder: Path) -> dict[str, dict]:
    """The files of a pulled run that are on the store only ({name: {"size", "etag"}}); {} for others."""
    try:
        described = json.loads((Path(folder) / REMOTE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: info for name, info in described.items() if isinstance(info, dict)} \
        if isinstance(described, dict) else {}


def dataset_marker(path: Path) -> Path:
    """The hidden file beside an uploaded dataset (or conversion folder) while it is not on the store yet."""
    return Path(path).with_name(f".{Path(path).name}{PENDING_FILE}")


def stored_record(folder: Path) -> dict:
    """A run folder's STORED_FILE ({} when the store never held it committed, as far as this server knows)."""
    try:
        record = json.loads((Path(folder) / STORED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _meta_tag(size: int, etag: str) -> str:
    """A listed meta.json's size and ETag: what tells a rename elsewhere without downloading it."""
    return f"{size}:{etag}"


def declared_bytes(folder: Path) -> int:
    """Bytes of a pulled run's files that are on the store but not here yet (quotas count them too)."""
    return sum(int(info.get("size") or 0) for name, info in remote_files(folder).items()
               if not (Path(folder) / name).is_file())


def cache_name(size: int, etag: str, key: str) -> str:
    """A cached file's name from its content: size and ETag (the store path when a store gives no tag)."""
    import hashlib

    tag = etag.strip('"') or f"path:{key}"
    return f"{size}-{hashlib.sha256(tag.encode()).hexdigest()[:32]}"


def _modified(info: dict) -> float | None:
    """When a listed object was last written, in epoch seconds: s3fs says LastModified (a datetime),
    gcsfs `updated` (ISO text), a local filesystem `mtime`; None when the listing does not say."""
    import datetime

    for name in MODIFIED_KEYS:
        value = info.get(name)
        if isinstance(value, datetime.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)).timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)).timestamp()
    return None


def _etag(info: dict) -> str:
    return next((str(info[name]) for name in ETAG_KEYS if info.get(name)), "")


def _link(cached: Path, target: Path) -> None:
    """`cached` at `target` without copying (a hard link); a copy where links are not possible."""
    import shutil

    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(cached, tmp)
    except OSError:
        shutil.copyfile(cached, tmp)
    os.replace(tmp, target)


# botocore's and aiohttp's names for "nothing answered"; checked before any status code in the message
UNREACHABLE_ERRORS = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                                "ConnectionClosedError", "ClientConnectorError", "ServerDisconnectedError"})


def is_unreachable(error: BaseException) -> bool:
    """Nothing answered (refused, timed out, cut off), as opposed to an answer that said no."""
    return isinstance(error, (ConnectionError, TimeoutError)) or type(error).__name__ in UNREACHABLE_ERRORS


def describe(url: str, error: BaseException) -> str:
    """A store failure in the user's words: what happened and what to do."""
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    if is_unreachable(error):
        return _unreachable(url, text)  # its message names the URL, whose run ids may hold any digits
    if isinstance(error, PermissionError) or re.search(r"\b403\b", lowered) or any(word in lowered for word in (
            "accessdenied", "access denied", "invalidaccesskeyid", "signaturedoesnotmatch", "forbidden",
            "credentials")):
        return REFUSED.format(url=url, error=_short(text))
    if getattr(error, "errno", None) == 28 or any(word in lowered for word in ("quotaexceeded", "no space",
                                                                               "entitytoolarge", "storage full")):
        return FULL.format(url=url, error=_short(text))
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered:
        return NO_SUCH_BUCKET.format(url=url, error=_short(text), setting=STORE_ENV)
    return _unreachable(url, text)


def _unreachable(url: str, text: str) -> str:
    return UNREACHABLE.format(url=url, error=_short(text), setting=STORE_ENV, endpoint_setting=ENDPOINT_ENV)


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
