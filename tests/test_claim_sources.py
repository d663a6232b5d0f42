"""Every check of every claim in this repository names where its band comes from, and change logs cite
only what a reader of the repository can open (no tracker numbers, no paths of one machine)."""
import re

import pytest

from harness.claim.registry import all_claims
from harness.run.loader import load_claims

load_claims("claims")
CLAIMS = {cid: c for cid, c in all_claims().items() if c.module.startswith("claims")}
UNOPENABLE = re.compile(r"\b(issue|ticket|PR)\s*#?\d+|/work/|/tmp/|/home/|\.\./shared", re.IGNORECASE)


@pytest.mark.parametrize("cid", sorted(CLAIMS))
def test_claim_sources_every_check_names_its_source(cid):
    claim = CLAIMS[cid]
    missing = [c.metric for c in claim.checks + claim.regime if not c.source.strip()]
    assert not missing, f"{cid}: checks without a source: {missing}"


@pytest.mark.parametrize("cid", sorted(CLAIMS))
def test_claim_sources_change_logs_cite_what_a_reader_can_open(cid):
    bad = [f"{c.date}: {m.group(0)!r}" for c in CLAIMS[cid].changes
           for m in [UNOPENABLE.search(c.what + " " + c.why)] if m]
    assert not bad, f"{cid}: change log cites what a reader cannot open: {bad}"


def test_claim_sources_cover_every_repository_claim():
    assert len(CLAIMS) >= 12
