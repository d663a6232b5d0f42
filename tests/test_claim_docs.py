"""Every claim of the library has its page under docs/claims/ and a row in the README's claims table."""
from pathlib import Path

from harness.claim.registry import all_claims
from harness.run.loader import load_all

ROOT = Path(__file__).resolve().parents[1]


def _library_claims() -> list[str]:
    load_all([])
    return sorted(cid for cid, c in all_claims().items() if c.module.startswith("claims."))


def test_claim_docs_every_claim_has_a_page_and_a_readme_row():
    readme = (ROOT / "README.md").read_text()
    claims = _library_claims()
    assert claims, "no library claims found"
    for cid in claims:
        page = ROOT / "docs" / "claims" / f"{cid}.md"
        assert page.is_file(), f"{cid}: no docs/claims/{cid}.md"
        assert cid in page.read_text().splitlines()[0]
        assert f"| [{cid}](docs/claims/{cid}.md) |" in readme, f"{cid}: no row in the README's claims table"


def test_claim_docs_no_page_without_a_claim():
    pages = {p.stem for p in (ROOT / "docs" / "claims").glob("*.md")}
    assert pages <= set(_library_claims())
