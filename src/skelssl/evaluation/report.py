"""Gather ``results.json`` files into one markdown table, with the published numbers beside ours.

``skelssl report runs/*`` prints :func:`markdown_table` of :func:`collect`. One row per (method,
encoder, task, protocol, metric, label fraction, pre-training source); results that differ only by
seed are folded into ``mean ± std`` (sample std over seeds). A random-initialisation result (field
``random_init: true``, or a method name or run-folder name ending in ``-random``) goes in the *random init*
column of the matching row rather than a row of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from skelssl.core.conventions import SkeletonFormatError
from skelssl.evaluation.metrics import mean_std
from skelssl.evaluation.published import is_papers_data, method_key, published_for
from skelssl.evaluation.results import RESULTS_FILE, read_results

__all__ = ["collect", "markdown_table", "LEGEND"]

LEGEND = (
    "ours: final-epoch value, best epoch in brackets (both measured on the test split, as the papers' code "
    "selects); mean ± sample std over seeds where there are several. random init / raw input: the same "
    "protocol on the encoder with random weights and on the flattened joint coordinates (kNN for knn rows, "
    "the robust linear probe otherwise; 'robust' marks them where ours is an SGD probe); 'no copies': on the "
    "test samples that are not bit-identical copies of a training sample. published: the method's own number in "
    "bold first; [READ] read from the paper's table or a public page, [RECALL] recalled and unverified, "
    "[2nd-hand] quoted by a third party (docs/protocols.md and the method pages in docs/). A protocol's own reference follows ours in "
    "parentheses (motion prediction: the zero-velocity error; lower is better there)."
)

_COLUMNS = ("method / encoder", "run", "task", "protocol", "metric", "ours", "random init", "raw input", "published")


def collect(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read every result under ``paths``.

    Args:
        paths: run folders (every ``results.json`` below is read) or ``results.json`` files.

    Returns:
        The results, each with ``_path`` (the file) and ``_run`` (its folder relative to the given
        folder's parent, e.g. ``isc-xsub/linear``) added; each file once, in path order.
    """
    out: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for given in paths:
        given = Path(given)
        if given.is_dir():
            files = sorted(given.rglob(RESULTS_FILE))
            base = given.resolve().parent
        elif given.is_file():
            files, base = [given], given.resolve().parent.parent
        else:
            raise SkeletonFormatError(given, "no such results file or run folder")
        for f in files:
            real = f.resolve()
            if real in seen:
                continue
            seen.add(real)
            res = read_results(f)
            res["_path"] = str(f)
            try:
                res["_run"] = real.parent.relative_to(base).as_posix()
            except ValueError:
                res["_run"] = real.parent.name
            out.append(res)
    return out


def _is_random(res: dict[str, Any]) -> bool:
    """Random-init baseline: flagged, or a method name or run-folder component ending in ``-random``."""
    if res.get("random_init") or str(res.get("method", "")).endswith("-random"):
        return True
    return any(part.endswith("-random") for part in str(res.get("_run", "")).split("/"))


def _base_method(res: dict[str, Any]) -> str:
    name = str(res.get("method") or "?")
    return name[: -len("-random")] if name.endswith("-random") else name


def _group_key(res: dict[str, Any]) -> tuple:
    frac = res.get("label_fraction")
    return (
        _base_method(res),
        str(res.get("encoder") or ""),
        res["task"],
        res["protocol"],
        res["metric"],
        None if frac is None else round(float(frac), 6),
        str(res.get("pretrained_on") or ""),
        str(res.get("stream") or "joint"),  # runs on other input streams are not seeds of one another
    )


def _who(name: str, key: tuple) -> str:
    """The row's first cell: method, its encoder where it differs, and the input stream unless joints."""
    method, encoder, stream = key[0], key[1], key[7]
    return name + (f" / {encoder}" if encoder and encoder != method else "") + (f" ({stream})" if stream != "joint" else "")


def _fmt(v: float) -> str:
    """Two decimals (percentages); four significant digits below 1 (errors in metres, e.g. MPJPE)."""
    return f"{v:.4g}" if 0 < abs(v) < 1 else f"{v:.2f}"


def _ours(group: list[dict[str, Any]]) -> str:
    """``final [best b]``, or ``mean ± std [best mean] (n=k)`` over seeds."""
    if len(group) == 1:
        res = group[0]
        text = _fmt(res["final"])
        if res.get("std") is not None:  # an evaluation that already averaged its seeds
            text += f" ± {_fmt(float(res['std']))}"
        if res["best"] is not None:
            text += f" [best {_fmt(res['best']['value'])}]"
        seeds = res.get("seeds")
        if res.get("std") is not None and isinstance(seeds, list) and len(seeds) > 1:
            text += f" (n={len(seeds)})"
        return text
    mean, std = mean_std(r["final"] for r in group)
    text = f"{_fmt(mean)} ± {_fmt(std)}"
    bests = [r["best"]["value"] for r in group if r["best"] is not None]
    if bests:
        text += f" [best {_fmt(mean_std(bests)[0])}]"
    return text + f" (n={len(group)})"


def _baseline_note(res: dict[str, Any]) -> str:
    """A protocol's own reference, e.g. `` (zero-velocity 0.1672)`` for motion prediction; else ``""``."""
    base = res.get("baseline")
    if isinstance(base, (int, float)) and not isinstance(base, bool):
        return f" (baseline {_fmt(float(base))})"
    if isinstance(base, dict) and isinstance(base.get("final"), (int, float)):
        return f" ({base.get('name', 'baseline')} {_fmt(float(base['final']))})"
    return ""


def _figure_key(res: dict[str, Any]) -> str:
    return "knn_top1" if res["task"] == "knn" else "probe_top1"


def _baseline_cell(group: list[dict[str, Any]], which: str) -> str:
    """The ``random_init`` / ``raw_input`` figure the results carry, over seeds; ``""`` when absent."""
    values, clean = [], []
    for res in group:
        base = (res.get("baselines") or {}).get(which)
        if not isinstance(base, dict) or _figure_key(res) not in base:
            return ""
        values.append(float(base[_figure_key(res)]))
        nc = base.get("not_copies")
        if isinstance(nc, dict):
            clean.append(float(nc[_figure_key(res)]))
    if len(values) == 1:
        text = _fmt(values[0])
    else:
        mean, std = mean_std(values)
        text = f"{_fmt(mean)} ± {_fmt(std)} (n={len(values)})"
    if len(clean) == len(values):
        text += f"; no copies {_fmt(mean_std(clean)[0] if len(clean) > 1 else clean[0])}"
    if group[0]["task"] == "linear" and group[0].get("probe") == "sgd":
        text += " (robust)"
    return text


def _no_copies_note(group: list[dict[str, Any]]) -> str:
    """``; no copies 64.10`` when the results give the figure on the test samples that are not copies."""
    if group[0]["task"] not in ("knn", "linear"):
        return ""
    clean = []
    for res in group:
        nc = (res.get("frozen") or {}).get("not_copies")
        if not isinstance(nc, dict):
            return ""
        key = _figure_key(res) if not (res["task"] == "linear" and res.get("probe") == "sgd") else None
        if key is None:
            return ""
        clean.append(float(nc[key]))
    return f"; no copies {_fmt(mean_std(clean)[0] if len(clean) > 1 else clean[0])}"


def _task_label(res: dict[str, Any]) -> str:
    task = res["task"]
    if res.get("label_fraction") is not None:
        task += f" {float(res['label_fraction']) * 100:g}%"
    if res.get("pretrained_on"):
        task += f" (from {res['pretrained_on']})"
    return task


def _published(res: dict[str, Any]) -> str:
    if res["metric"] not in ("top1", "acc", "accuracy"):
        return ""  # every published number here is top-1 accuracy
    if (res.get("stream") or "joint") != "joint":
        return ""  # the single-stream numbers the papers give are of the joints
    if not is_papers_data(res["protocol"], res.get("store_dataset"), res.get("store_classes"), res.get("store_source_format")):
        return ""  # never a paper's number beside a user's store (or the store's own split)
    rows = published_for(
        res["task"],
        res["protocol"],
        label_fraction=None if res.get("label_fraction") is None else float(res["label_fraction"]),
        pretrained_on=res.get("pretrained_on"),
    )
    mine = method_key(_base_method(res))
    rows = sorted(rows, key=lambda r: method_key(r["method"]) != mine)  # stable: the method's own first
    cells = []
    for r in rows:
        name = r["method"] + (f" ({r['variant']})" if r.get("variant") else "")
        value = f"{r['value']:.1f}"
        own = method_key(r["method"]) == mine
        cells.append(f"**{name} {value}** [{r['source']}]" if own else f"{name} {value} [{r['source']}]")
    return "; ".join(cells)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run_label(group: list[dict[str, Any]]) -> str:
    runs = [str(r.get("_run") or Path(str(r.get("_path", "?"))).parent.name) for r in group]
    return runs[0] if len(runs) == 1 else f"{runs[0]} (+{len(runs) - 1})"


def markdown_table(results: list[dict[str, Any]], legend: bool = True) -> str:
    """One markdown table of ``results`` (as returned by :func:`collect`), with the published numbers.

    Args:
        results: result dicts (the required keys of :mod:`skelssl.evaluation.results`; ``method``,
            ``encoder``, ``label_fraction``, ``pretrained_on``, ``random_init``, ``std``, ``seeds``,
            ``baseline`` are used when present).
        legend: add a short paragraph under the table saying how to read the cells.

    Returns:
        The markdown text (ending with a newline).
    """
    if not results:
        return "_no results found_\n"
    groups: dict[tuple, list[dict[str, Any]]] = {}
    random_groups: dict[tuple, list[dict[str, Any]]] = {}
    for res in results:
        (random_groups if _is_random(res) else groups).setdefault(_group_key(res), []).append(res)

    rows: list[tuple[tuple, list[str]]] = []
    for key, group in groups.items():
        res = group[0]
        baseline = random_groups.pop(key, None)
        who = _who(key[0], key)
        cells = [who, _run_label(group), _task_label(res), res["protocol"], res["metric"],
                 _ours(group) + _no_copies_note(group) + _baseline_note(res),
                 _ours(baseline) if baseline else _baseline_cell(group, "random_init"),
                 _baseline_cell(group, "raw_input"), _published(res)]
        rows.append((key, cells))
    for key, group in random_groups.items():  # random-init results with no pre-trained partner
        res = group[0]
        who = _who(f"{key[0]}-random", key)
        cells = [who, _run_label(group), _task_label(res), res["protocol"], res["metric"], "", _ours(group),
                 _baseline_cell(group, "raw_input"), _published(res)]
        rows.append((key, cells))
    rows.sort(key=lambda kc: (kc[0][3], kc[0][2], kc[0][5] or 0.0, kc[0][6], kc[0][0], kc[0][1]))

    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join("---" for _ in _COLUMNS) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in cells) + " |" for _, cells in rows]
    text = "\n".join(lines) + "\n"
    if legend:
        text += "\n" + LEGEND + "\n"
    return text
