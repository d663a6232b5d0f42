"""Analysis notebooks: one per claim of a run, executed (nbclient) and converted to an HTML body (nbconvert).

This module produces each notebook's executed `.ipynb` and its HTML fragment; `harness.report.render` puts
the fragment inside the report's page frame. Each claim gets the template
`harness/report/templates/claim_notebook.py` (cells split at `# %%`),
or its own `<notebooks_dir>/<claim-id>.ipynb` when one exists; either way a cell setting STORE,
RUN_ID and CLAIM_ID is injected after the cell tagged "parameters" (papermill's convention).

nbconvert, nbclient and ipykernel are an optional extra (`pip install claim-harness[notebooks]`),
imported only when notebooks are rendered. A notebook that fails (a cell raises, a cell runs past
the time limit, no kernel) is still written with the outputs it produced and its error, so the
report shows the error beside the claim; it never stops the report.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.atomic import atomic_write_text

log = logging.getLogger(__name__)
_QUIET = logging.getLogger(f"{__name__}.jupyter")  # nbclient/nbconvert chatter (e.g. SVG alt text): errors only
_QUIET.setLevel(logging.ERROR)

TEMPLATE = Path(__file__).resolve().parent / "templates" / "claim_notebook.py"
INSTALL_HINT = "notebooks not rendered: pip install claim-harness[notebooks]"
REQUIRED = ("nbformat", "nbclient", "nbconvert", "ipykernel")
DEFAULT_TIMEOUT_S = 120.0
_CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


@dataclass
class NotebookResult:
    """What happened to one claim's notebook; paths are relative to the report folder.

    `body` is the executed notebook as an HTML fragment, for the page the report writes at `html`
    (None: the notebook was not executed, so there is no page).
    """

    claim: str
    status: str  # "ok" or "error"
    html: str | None = None
    ipynb: str | None = None
    error: str = ""
    seconds: float = 0.0
    source: str = "template"  # "template" or the custom notebook's path
    body: str | None = field(default=None, repr=False)


def missing_modules() -> list[str]:
    """The modules of the notebooks extra that are not importable here (empty: all present)."""
    return [m for m in REQUIRED if importlib.util.find_spec(m) is None]


def template_cells(path: Path = TEMPLATE) -> list[dict]:
    """The template's cells as dicts (markdown, source, metadata): '# %%' starts a code cell, '# %% [markdown]' a
    markdown cell (its lines lose the leading '# '), 'tags=[...]' sets the cell's tags."""
    cells, cur = [], None
    for line in path.read_text().splitlines():
        m = _CELL.match(line)
        if m:
            cur = {"markdown": bool(m.group("md")), "tags": json.loads(m.group("tags") or "[]"), "lines": []}
            cells.append(cur)
        elif cur is not None:
            cur["lines"].append(line[2:] if cur["markdown"] and line.startswith("# ") else
                                "" if cur["markdown"] and line == "#" else line)
    return [{"markdown": c["markdown"], "source": "\n".join(c["lines"]).strip("\n"),
             "metadata": {"tags": c["tags"]} if c["tags"] else {}} for c in cells]


def build_notebook(claim_id: str, run_id: str, store_root: Path, custom: Path | None = None):
    """The claim's notebook (template or custom) with its parameters injected after the cell tagged
    "parameters" (else first), and a `%reset -f` cell in front.

    Raises:
        ValueError: the custom notebook is not a readable notebook file.
    """
    import nbformat

    if custom is not None:
        try:
            nb = nbformat.read(custom, as_version=4)
        except (OSError, ValueError) as e:  # nbformat's read errors subclass ValueError
            raise ValueError(f"cannot read notebook {custom}: {e}") from None
    else:
        v4 = nbformat.v4
        nb = v4.new_notebook(cells=[(v4.new_markdown_cell if c["markdown"] else v4.new_code_cell)(
            c["source"], metadata=c["metadata"]) for c in template_cells()])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        f"# injected by harness report\nSTORE = {str(store_root)!r}\nRUN_ID = {run_id!r}\nCLAIM_ID = {claim_id!r}",
        metadata={"tags": ["injected-parameters"]})
    at = next((i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), 0)
    nb.cells.insert(at, params)
    # the report runs every notebook in one kernel: each starts from an empty namespace
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f", metadata={"tags": ["injected-reset"]}))
    return nb


def _kernel_env() -> dict:
    """The kernel imports this harness even when it is not installed (run from a checkout)."""
    root = str(Path(__file__).resolve().parents[2])  # the folder holding harness/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


class KernelMissing(RuntimeError):
    """The named Jupyter kernel is not installed, or did not start."""


@contextlib.contextmanager
def kernel(name: str, workdir: Path):
    """One kernel for all of a report's notebooks: importing torch once, not once per claim, saves
    seconds per notebook. Each notebook starts with `%reset -f` (see build_notebook), so no
    variable leaks from one claim's notebook into the next; only imported modules are shared.

    Raises:
        KernelMissing: no kernel of that name, or it failed to start.
    """
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    km = AsyncKernelManager(kernel_name=name)  # nbclient's cell time limit needs the async client
    try:
        # the kernel's stderr (start-up chatter) stays out of the run's log; cell errors come back
        # through the notebook itself
        run_sync(km.start_kernel)(env=_kernel_env(), cwd=str(workdir), stderr=subprocess.DEVNULL)
    except NoSuchKernel:
        raise KernelMissing(f"no Jupyter kernel named '{name}' is installed: pip install ipykernel "
                            "(or claim-harness[notebooks]), or pass --notebook-kernel NAME") from None
    except (OSError, RuntimeError) as e:
        raise KernelMissing(f"the Jupyter kernel '{name}' did not start: {e}") from None
    try:
        yield km
    finally:
        run_sync(km.shutdown_kernel)(now=True)


def execute(nb, timeout_s: float, km) -> str:
    """Run every cell in place on a started kernel; returns "" on success, else a one-line error
    (the outputs produced so far stay in the notebook). A timed-out or dead kernel is restarted."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, km=km, timeout=max(1, math.ceil(timeout_s)), startup_timeout=60,
                            log=_QUIET)  # nbclient counts whole seconds
    error = ""
    try:
        client.execute()
    except CellTimeoutError:
        error = f"a cell ran longer than the {timeout_s:g} s limit (--notebook-timeout)"
    except DeadKernelError as e:
        error = f"the kernel died: {e}"
    except CellExecutionError as e:
        error = f"a cell raised {e.ename}: {_strip_ansi(e.evalue)}"
    except (RuntimeError, TimeoutError) as e:  # e.g. the kernel did not answer within startup_timeout
        error = f"the kernel did not respond: {e}"
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    if error and not error.startswith("a cell raised"):
        from jupyter_core.utils import run_sync

        run_sync(km.restart_kernel)(now=True)  # a busy or dead kernel would stall the next notebook
    return error


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", str(text))


def to_html_body(nb) -> str:
    """The notebook as an HTML fragment: nbconvert's 'basic' template (no scripts, no CDN links), with
    anything active or remote that an output carried as raw HTML removed (see `defang`)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="basic", log=_QUIET).from_notebook_node(nb)
    return defang(body)


_ACTIVE = ("script", "iframe", "object", "embed", "link", "base", "meta", "form")
_REMOTE = re.compile(r"^\s*(javascript:|(https?:)?//)", re.I)


def defang(html: str) -> str:
    """Drop script-like elements, on* handlers and remote or javascript: URLs from raw HTML outputs.

    nbconvert's own sanitizer escapes <tbody>, which breaks every pandas table, hence this.
    """
    from bs4 import BeautifulSoup  # a dependency of nbconvert

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_ACTIVE):
        tag.decompose()
    for tag in soup.find_all(True):
        for attr in [a for a in tag.attrs if a.lower().startswith("on") or
                     (a.lower() in ("src", "href", "data", "action", "formaction", "xlink:href")
                      and _REMOTE.match(str(tag.attrs[a])))]:
            del tag.attrs[attr]
    return str(soup)


def render_notebooks(store, run: dict, report_dir: Path, notebooks_dir: Path | None = None,
                     timeout_s: float = DEFAULT_TIMEOUT_S, kernel_name: str = "python3") -> dict[str, NotebookResult]:
    """Execute one notebook per claim of a run; write each executed .ipynb into report_dir/notebooks/.

    Args:
        store: the results store (its root is passed to the notebooks as STORE).
        run: the run summary.
        report_dir: the run's report folder (holding index.html).
        notebooks_dir: where custom `<claim-id>.ipynb` notebooks live (None: template only).
        timeout_s: time limit per cell.
        kernel_name: Jupyter kernel name.
    Returns:
        claim id -> NotebookResult, with the HTML body of each executed notebook (the caller writes its
        page at `html`). Empty when the notebooks extra is missing (see missing_modules).
    """
    if missing_modules() or not run.get("claims"):
        return {}
    out_dir = Path(report_dir) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with kernel(kernel_name, out_dir) as km:
            return {c["id"]: _one(store, run, c["id"], out_dir, notebooks_dir, timeout_s, km)
                    for c in run["claims"]}
    except KernelMissing as e:
        log.warning("notebooks not executed: %s", e)
        return {c["id"]: NotebookResult(c["id"], "error", error=str(e)) for c in run["claims"]}


def _one(store, run: dict, cid: str, out_dir: Path, notebooks_dir: Path | None, timeout_s: float,
         km) -> NotebookResult:
    import nbformat

    start = time.perf_counter()
    custom = Path(notebooks_dir) / f"{cid}.ipynb" if notebooks_dir else None
    custom = custom if custom is not None and custom.is_file() else None
    res = NotebookResult(cid, "ok", source=str(custom) if custom else "template")
    try:
        nb = build_notebook(cid, run["run_id"], Path(store.root).resolve(), custom)
    except ValueError as e:
        res.status, res.error = "error", str(e)
        return res
    res.error = execute(nb, timeout_s, km)
    res.seconds = time.perf_counter() - start
    atomic_write_text(out_dir / f"{cid}.ipynb", nbformat.writes(nb) + "\n")  # never a half-written notebook
    res.ipynb = f"notebooks/{cid}.ipynb"
    try:
        body = to_html_body(nb)
    except Exception as e:  # noqa: BLE001 -- a conversion bug must not cost the other notebooks
        res.error = res.error or f"nbconvert failed: {type(e).__name__}: {e}"
        body = ""
    res.status = "error" if res.error else "ok"
    res.body, res.html = body, f"notebooks/{cid}.html"
    log.info("notebook %s: %s in %.1f s%s", cid, res.status, res.seconds, f" ({res.error})" if res.error else "")
    return res
