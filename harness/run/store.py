"""The results store: one JSON record per experiment x config x seed, and one summary per run.

results/
  cache/<key>.json        one seed's measurement; key = hash(experiment, config, seed, code, device)
  cache/<key>.lock        present while some process computes that seed (flock held by it)
  runs/<run-id>/run.json  the run: provenance and every claim's verdict (rewritten after each claim)
  runs/<run-id>/.lock     held (flock) by the process writing the run; left behind by a killed run

Every write goes to a temporary file first and is renamed into place, so a killed run never leaves a
half-written record, and a rerun reuses every seed that finished. Each seed record carries a digest
of its content: a record that is truncated, not JSON, of the wrong shape or edited by hand does not
match and is recomputed, never trusted. Nothing read from a store file chooses a path: run ids and
claim ids are checked against strict patterns before they are joined to a folder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path

from harness.atomic import atomic_write_text
from harness.claim.records import run_record_problem
from harness.errors import HarnessError

SCHEMA = 2  # 2: records carry a digest; keys hash each experiment's own code and the thread count
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")  # no '.', '/', '\\': never leaves runs/
CLAIM_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")          # the registry's rule for claim ids
SEED_KEY = re.compile(r"^[0-9a-f]{24}$")
# A run summary's status; "interrupted" is also what a "running" run reads as once its writer died.
STATUSES = ("running", "complete", "interrupted", "aborted")

log = logging.getLogger(__name__)


def check_run_id(run_id: object) -> str:
    """The run id itself, if it is safe to use as a folder name.

    Raises:
        HarnessError: anything but letters, digits, '-' and '_' (so '../x' or '/tmp' never become paths).
    """
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise HarnessError(f"{run_id!r} is not a run id: run ids are letters, digits, '-' and '_' "
                           "(e.g. 20261201-215400)")
    return run_id


def check_claim_id(claim_id: object) -> str:
    """The claim id itself, if it matches the registry's pattern (lower-case words joined by '-')."""
    if not isinstance(claim_id, str) or not CLAIM_ID.match(claim_id):
        raise HarnessError(f"{claim_id!r} is not a claim id: lower-case words joined by '-'")
    return claim_id


def atomic_write_json(path: Path, payload: dict) -> None:
    """Write JSON to a temporary file, fsync it and rename it into place (harness.atomic).

    Raises:
        HarnessError: the folder cannot be written (read-only, a file in the way, disk full).
    """
    try:
        atomic_write_text(path, json.dumps(payload, indent=1, default=str), fsync=True)
    except OSError as e:
        raise HarnessError(f"cannot write {path}: {e.strerror or e}") from None


def record_digest(record: dict) -> str:
    """sha256 of a record's canonical JSON (without its own 'digest' field)."""
    body = {k: v for k, v in record.items() if k != "digest"}
    canonical = json.loads(json.dumps(body, default=str))  # what a reader gets back from the file
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _is_number(x) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float)):
        return True
    return isinstance(x, str) and x in ("nan", "inf", "-inf")  # how Measurement stores non-finite values


def seed_record_problem(record: object) -> str | None:
    """Why a loaded seed record cannot be used (None: it is sound)."""
    if not isinstance(record, dict):
        return f"not an object but {type(record).__name__}"
    if record.get("digest") != record_digest(record):
        return "its digest does not match its content (truncated, or edited by hand)"
    if not isinstance(record.get("wall_time_s"), (int, float)) or isinstance(record.get("wall_time_s"), bool):
        return "wall_time_s is not a number"
    error, m = record.get("error"), record.get("measurement")
    if error is not None and not isinstance(error, str):
        return "error is neither null nor text"
    if error is None:
        if not isinstance(m, dict) or not isinstance(m.get("scalars"), dict):
            return "no measurement scalars"
        bad = [k for k, v in m["scalars"].items() if not _is_number(v)]
        if bad:
            return f"scalar(s) {bad} are not numbers"
        if not isinstance(m.get("curves", {}), dict) or not isinstance(m.get("standard_errors", {}), dict):
            return "curves or standard_errors of the wrong shape"
    return None


def run_summary_problem(run: object, run_id: str) -> str | None:
    """Why a loaded run summary cannot be used (None: it is sound)."""
    if not isinstance(run, dict):
        return f"not an object but {type(run).__name__}"
    if run.get("run_id") != run_id:
        return f"its run_id {run.get('run_id')!r} is not its folder's name {run_id!r}"
    if run.get("status") not in STATUSES:
        return f"unknown status {run.get('status')!r}"
    claims = run.get("claims")
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        return "'claims' is not a list of objects"
    if typed := run_record_problem(run):  # every field of its declared type, as seed records are checked
        return typed
    for c in claims:
        if not isinstance(c.get("id"), str) or not CLAIM_ID.match(c["id"]):
            return f"claim id {c.get('id')!r} is not a claim id"
        for k in (c.get("checks") or []) + (c.get("reported") or []):
            if not isinstance(k, dict):
                return f"claim {c['id']}: a check is not an object"
            est = k.get("estimate")
            if est is not None and (not isinstance(est, dict) or not all(
                    _is_number(est.get(f)) for f in ("value", "lo", "hi"))):
                return f"claim {c['id']}: estimate of {k.get('metric')!r} holds text where a number belongs"
        for s in c.get("seeds") or []:
            if not isinstance(s, dict) or (s.get("key") is not None and not SEED_KEY.match(str(s["key"]))):
                return f"claim {c['id']}: a seed entry has a malformed key"
    return None


def _read_json(path: Path):
    """Parsed JSON, or raises ValueError for anything unreadable (binary, truncated, not UTF-8)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"not valid JSON ({type(e).__name__})") from None


def _lock_is_free(path: Path) -> bool | None:
    """True when nobody holds the flock on path, False when a live process does, None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # absent (FileNotFoundError) or unreadable
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        return None
    finally:
        os.close(fd)  # closing drops any lock we took
    return True


class SeedLock:
    """An flock on cache/<key>.lock, held while this process computes the seed."""

    def __init__(self, path: Path, fd: int, stale: bool):
        self.path, self.fd, self.stale = path, fd, stale

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # unlink while holding: a waiter re-checks the inode and the record
        os.close(self.fd)


class ResultStore:
    """Seed records and run summaries under one root folder."""

    def __init__(self, root: str | os.PathLike = "results"):
        if str(root).strip() == "":
            raise HarnessError("--results must name a folder, got an empty string")
        self.root = Path(root)

    def check_writable(self) -> None:
        """Fail with one line, before any compute, when the store cannot be written.

        Raises:
            HarnessError: the root, its cache/ or runs/ is a file or a folder this process cannot write.
        """
        check_folder_writable(self.root, "--results")
        for sub in ("cache", "runs"):  # a partly read-only store fails now too, naming the folder
            check_folder_writable(self.root / sub, "--results")

    # --- seed records -------------------------------------------------------------------------
    @staticmethod
    def seed_key(experiment: str, config_hash: str, seed: int, code_hash: str, device: str) -> str:
        raw = f"{SCHEMA}|{experiment}|{config_hash}|{seed}|{code_hash}|{device}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def experiment_key(self, experiment: str, config, seed: int, device_type: str,
                       max_steps: int | None, threads: int | None = None) -> str:
        """The key of one seed of an experiment: the one rule the runner and the DDP launcher share.

        The code part hashes only the experiment's own module and the harness modules it imports
        (provenance.experiment_code_hash), so adding another experiment keeps this key. The CPU
        thread count is part of it because it changes the order of floating-point reductions.
        """
        from harness.run import provenance
        if threads is None:
            threads = provenance.SEED_THREADS if device_type == "cpu" else 0
        where = device_type if max_steps is None else f"{device_type}-cap{max_steps}"
        where += f"-t{threads}" if threads else ""
        return self.seed_key(experiment, provenance.config_hash(config), seed,
                             provenance.experiment_code_hash(experiment), where)

    def seed_path(self, key: str) -> Path:
        if not isinstance(key, str) or not SEED_KEY.match(key):
            raise HarnessError(f"{key!r} is not a seed key")
        return self.root / "cache" / f"{key}.json"

    def load_seed(self, key: str) -> dict | None:
        """The stored record of a seed, or None when there is none or it cannot be trusted."""
        path = self.seed_path(key)
        if not path.exists():
            return None
        try:
            record = _read_json(path)
        except (OSError, ValueError) as e:
            log.warning("seed record %s is unreadable (%s): recomputing it", path, e)
            return None
        problem = seed_record_problem(record)
        if problem is None and record.get("key") != key:
            problem = f"it is stored under {key} but says it is {record.get('key')!r}"
        if problem:
            log.warning("seed record %s is not trusted (%s): recomputing it", path, problem)
            return None
        return record

    def save_seed(self, key: str, record: dict) -> None:
        payload = {"schema": SCHEMA, "key": key, **record}
        payload.pop("digest", None)
        payload["digest"] = record_digest(payload)
        atomic_write_json(self.seed_path(key), payload)

    def lock_seed(self, key: str, on_wait=None, *, wait: bool = True) -> SeedLock | None:
        """Mark a seed as being computed by this process (waits while another live process computes it).

        Callers check for the stored record again after this returns: the other process may have
        finished it while this one waited.

        Args:
            key: the seed key.
            on_wait: called once if another process holds the seed (e.g. to log that we wait).
            wait: False: do not wait for another live holder; return None instead.
        Returns:
            SeedLock; `.stale` is True when a previous holder died while computing this seed. None when
            `wait` is False and another live process holds the seed.
        """
        path = self.root / "cache" / f"{self.seed_path(key).stem}.lock"
        _make_folder(path.parent)
        while True:
            fd = _open_lock(path)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not wait:
                        os.close(fd)
                        return None
                    if on_wait is not None:
                        on_wait()
                        on_wait = None
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if not same:  # the holder finished and unlinked the file we waited on: start again
                os.close(fd)
                continue
            stale = os.fstat(fd).st_size > 0
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return SeedLock(path, fd, stale)

    def seed_died_computing(self, key: str) -> bool:
        """True when a process started this seed and died before finishing it (a stale lock file)."""
        return _lock_is_free(self.root / "cache" / f"{self.seed_path(key).stem}.lock") is True

    # --- runs ---------------------------------------------------------------------------------
    def new_run_id(self) -> str:
        base = time.strftime("%Y%m%d-%H%M%S")
        run_id, n = base, 1
        while True:
            try:
                (self.root / "runs" / run_id).mkdir(parents=True)
                return run_id
            except FileExistsError:  # another run started this second: take the next suffix
                n += 1
                run_id = f"{base}-{n}"
            except OSError as e:
                raise HarnessError(f"cannot create {self.root / 'runs' / run_id}: {e.strerror or e}") from None

    def run_path(self, run_id: str) -> Path:
        return self.root / "runs" / check_run_id(run_id) / "run.json"

    def save_run(self, run_id: str, summary: dict) -> None:
        atomic_write_json(self.run_path(run_id), {"schema": SCHEMA, **summary})

    @contextlib.contextmanager
    def hold_run(self, run_id: str):
        """Hold runs/<id>/.lock while the run is written; a run whose lock is free but whose status
        is still 'running' was killed, and reads as 'interrupted'."""
        path = self.run_path(run_id).parent / ".lock"
        _make_folder(path.parent)
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)

    def run_ids(self) -> list[str]:
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        return sorted(p.parent.name for p in runs.glob("*/run.json") if RUN_ID.match(p.parent.name))

    def load_run(self, run_id: str = "latest") -> dict:
        """A run summary by id, or the newest one for 'latest'.

        A run still marked 'running' whose writer is gone (its lock file is free) reads as
        'interrupted' with the reason.

        Raises:
            HarnessError: a malformed run id, no such run (listing the ones that exist), or a
                run.json that is unreadable or of the wrong shape.
        """
        ids = self.run_ids()
        if run_id == "latest":
            if not ids:
                raise HarnessError(f"no runs recorded under {self.root}/runs; run `harness run` first")
            run_id = ids[-1]
        path = self.run_path(run_id)
        if not path.exists():
            shown = ", ".join(ids[-5:]) or "none"
            raise HarnessError(f"no run '{run_id}' under {self.root}/runs (latest: {shown})")
        try:
            run = _read_json(path)
        except (OSError, ValueError) as e:
            raise HarnessError(f"run {run_id}: {path} is unreadable ({e}); it was left as is") from None
        problem = run_summary_problem(run, run_id)
        if problem:
            raise HarnessError(f"run {run_id}: {path} is damaged ({problem}); it was left as is")
        if run["status"] == "running" and _lock_is_free(path.parent / ".lock"):
            run["status"] = "interrupted"
            run["status_reason"] = "the process writing it died before the run finished"
        return run


def _make_folder(folder: Path) -> None:
    """mkdir -p, or one line naming the folder (a file in the way, read-only, disk full)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"cannot create the folder {folder}: {e.strerror or e}") from None


def _open_lock(path: Path) -> int:
    """The lock file's descriptor, or one line naming it (a folder of that name, a read-only folder)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        kind = "it is a folder" if path.is_dir() else e.strerror or str(e)
        raise HarnessError(f"cannot open the lock file {path}: {kind}; remove or fix it") from None


def check_folder_writable(folder: Path, option: str) -> None:
    """Raise a one-line HarnessError when `folder` is a file or cannot be created or written."""
    folder = Path(folder)
    if str(folder).strip() == "":
        raise HarnessError(f"{option} must name a folder, got an empty string")
    probe = folder
    while not probe.exists():  # the nearest existing ancestor decides whether we can create it
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise HarnessError(f"{option} {folder} is not a folder ({probe} is a file)")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise HarnessError(f"{option} {folder} is not writable ({probe} is read-only)")

