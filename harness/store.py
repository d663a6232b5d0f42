"""The results store: one JSON record per experiment x config x seed, and one summary per run.

results/
  cache/<key>.json        one seed's measurement; key = hash(experiment, config, seed, code, device)
  runs/<run-id>/run.json  the run: provenance and every claim's verdict (rewritten after each claim)

Every write goes to a temporary file first and is renamed into place, so a killed run never leaves a
half-written record, and a rerun reuses every seed that finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from harness.errors import HarnessError

SCHEMA = 1


def atomic_write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ResultStore:
    """Seed records and run summaries under one root folder."""

    def __init__(self, root: str | os.PathLike = "results"):
        self.root = Path(root)

    # --- seed records -------------------------------------------------------------------------
    @staticmethod
    def seed_key(experiment: str, config_hash: str, seed: int, code_hash: str, device: str) -> str:
        raw = f"{SCHEMA}|{experiment}|{config_hash}|{seed}|{code_hash}|{device}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def experiment_key(self, experiment: str, config, seed: int, device_type: str,
                       max_steps: int | None) -> str:
        """The key of one seed of an experiment: the one rule the runner and the DDP launcher share."""
        from harness import provenance

        where = device_type if max_steps is None else f"{device_type}-cap{max_steps}"
        return self.seed_key(experiment, provenance.config_hash(config), seed, provenance.code_hash(), where)

    def seed_path(self, key: str) -> Path:
        return self.root / "cache" / f"{key}.json"

    def load_seed(self, key: str) -> dict | None:
        path = self.seed_path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # unreadable record: recompute rather than trust it

    def save_seed(self, key: str, record: dict) -> None:
        atomic_write_json(self.seed_path(key), {"schema": SCHEMA, "key": key, **record})

    # --- runs ---------------------------------------------------------------------------------
    def new_run_id(self) -> str:
        base = time.strftime("%Y%m%d-%H%M%S")
        run_id, n = base, 1
        while (self.root / "runs" / run_id).exists():
            n += 1
            run_id = f"{base}-{n}"
        (self.root / "runs" / run_id).mkdir(parents=True)
        return run_id

    def run_path(self, run_id: str) -> Path:
        return self.root / "runs" / run_id / "run.json"

    def save_run(self, run_id: str, summary: dict) -> None:
        atomic_write_json(self.run_path(run_id), {"schema": SCHEMA, **summary})

    def run_ids(self) -> list[str]:
        runs = self.root / "runs"
        if not runs.is_dir():
            return []
        return sorted(p.parent.name for p in runs.glob("*/run.json"))

    def load_run(self, run_id: str = "latest") -> dict:
        """A run summary by id, or the newest one for 'latest'.

        Raises:
            HarnessError: no such run (listing the ones that exist).
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
        return json.loads(path.read_text())
