"""Run notebooks with papermill: one chapter against another backend or scale, or all of them.

``dbcourse run`` executes solution notebooks into an output folder, renders each to HTML and
writes ``index.html``: every notebook with pass/fail, duration and a link to its rendered copy. A
failed notebook never stops the others; the exit status says whether all passed. Parameters are
checked before any cell runs: an unknown name, an unknown scale or a URL where no server answers
stops the run with one message naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import SERVER_NAMES, ServerConfig, get_settings
from .errors import BadParameter
from .workspace import SCALES

URL_PARAMETERS = {f"{name}_url": name for name in SERVER_NAMES}


@dataclass
class RunResult:
    name: str
    source: Path
    output: Path
    html: Path | None
    ok: bool
    seconds: float
    error: str = ""


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its cell tagged ``parameters``), with defaults."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(path)).items()}


def resolve(name_or_path: str) -> Path:
    """A notebook name (``04a_sqlalchemy``) in solutions/, or a path to an .ipynb."""
    path = Path(name_or_path)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    candidate = get_settings().root / "solutions" / f"{name_or_path}.ipynb"
    if candidate.exists():
        return candidate
    names = ", ".join(p.stem for p in sorted(candidate.parent.glob("[0-9]*.ipynb")))
    raise BadParameter(f"no notebook {name_or_path!r}: give a path to an .ipynb or one of {names}")


def check_parameters(path: Path, parameters: dict[str, Any]) -> None:
    """Refuse, with one message naming the parameter, what the notebook could not run with."""
    declared = notebook_parameters(path)
    for name, value in parameters.items():
        if name not in declared:
            raise BadParameter(f"{path.name} has no parameter {name!r}: it takes {', '.join(sorted(declared))}")
        if name == "scale" and value not in SCALES:
            raise BadParameter(f"scale={value!r} is not a data scale: use one of {', '.join(map(repr, SCALES))}")
        if name == "backend" and value not in ("sqlite", "postgres", "mysql"):
            raise BadParameter(f"backend={value!r}: use 'sqlite', 'postgres' or 'mysql'")
        if name in URL_PARAMETERS and value not in (None, ""):
            from .services.probe import probe

            service = URL_PARAMETERS[name]
            try:
                result = probe(ServerConfig(service, str(value), url_overridden=True))
            except Exception as exc:  # malformed URL
                raise BadParameter(f"{name}={value!r} is not a usable URL: {exc}") from None
            if not result.up:
                raise BadParameter(f"{name}: {result.error.reason} ({result.error.url}); "
                                   f"start that server or fix the URL")


def run_one(path: Path, out_dir: Path, parameters: dict[str, Any], *, timeout: int = 1800) -> RunResult:
    """Parameterize with papermill (its injected-parameters cell), then execute with nbclient.

    nbclient honours the ``raises-exception`` tag (a cell that fails on purpose, such as an
    error demonstration), which papermill's own executor does not; any other error fails the run.
    """
    import nbformat
    import papermill
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "".join(f"_{k}-{v}" for k, v in sorted(parameters.items()) if k in ("backend", "scale"))
    output = out_dir / f"{path.stem}{suffix}.ipynb"
    papermill.execute_notebook(str(path), str(output), parameters=parameters, prepare_only=True,
                               kernel_name="python3", progress_bar=False)
    nb = nbformat.read(output, as_version=4)
    env_backup = dict(os.environ)
    os.environ.setdefault("IPYTHONDIR", str(get_settings().root / "tests" / "ipython"))
    os.environ["PLOOMBER_STATS_ENABLED"] = "false"
    start = time.perf_counter()
    error = ""
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        ok = True
    except CellExecutionError as exc:
        ok = False
        error = f"{exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}"
        failed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                  and any(o.get("output_type") == "error" for o in c.get("outputs", []))
                  and "raises-exception" not in c.metadata.get("tags", [])]
        if failed:
            error = f"cell {failed[0]}: {error}"
    except Exception as exc:  # the kernel died, a timeout...
        ok = False
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
        nbformat.write(nb, output)
    seconds = time.perf_counter() - start
    return RunResult(path.stem, path, output, render_html(output), ok, seconds, error)


def render_html(notebook: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def write_index(results: list[RunResult], out_dir: Path, parameters: dict[str, Any]) -> Path:
    rows = []
    for r in results:
        link = f'<a href="{html.escape(r.html.name)}">{html.escape(r.output.name)}</a>' if r.html else "-"
        status = "✅ passed" if r.ok else "❌ failed"
        rows.append(f"<tr class=\"{'ok' if r.ok else 'failed'}\"><td>{html.escape(r.name)}</td><td>{status}</td>"
                    f"<td style='text-align:right'>{r.seconds:.1f} s</td><td>{link}</td>"
                    f"<td>{html.escape(r.error)}</td></tr>")
    passed = sum(r.ok for r in results)
    params = ", ".join(f"{k}={v!r}" for k, v in parameters.items()) or "defaults"
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Notebook run: {passed}/{len(results)} passed</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} tr.failed{{background:#fdd}} tr.ok{{background:#efe}}</style>
</head><body>
<h1>Notebook run: {passed} of {len(results)} passed</h1>
<p>Parameters: {html.escape(params)}. Run at {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.</p>
<table><thead><tr><th>Notebook</th><th>Result</th><th>Duration</th><th>Executed copy</th><th>Error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def run(names: list[str], out_dir: Path, parameters: dict[str, Any] | None = None, *, timeout: int = 1800,
        log=print) -> list[RunResult]:
    """Run notebooks (all solution notebooks when ``names`` is empty); see the module docstring."""
    parameters = dict(parameters or {})
    paths = [resolve(n) for n in names] if names else sorted((get_settings().root / "solutions").glob("[0-9]*.ipynb"))
    for path in paths:  # every parameter problem is reported before anything runs
        check_parameters(path, {k: v for k, v in parameters.items() if k != "namespace"})
    results = []
    for path in paths:
        params = dict(parameters)
        params.setdefault("namespace", f"run_{path.stem}" + "".join(
            f"_{v}" for k, v in sorted(parameters.items()) if k in ("backend", "scale")))
        log(f"running {path.name} ...")
        result = run_one(path, out_dir, params, timeout=timeout)
        log(f"  {'passed' if result.ok else 'FAILED'} in {result.seconds:.1f} s" +
            (f": {result.error}" if result.error else ""))
        results.append(result)
    index = write_index(results, out_dir, parameters)
    log(f"\n{sum(r.ok for r in results)} of {len(results)} passed; summary: {index}")
    return results
