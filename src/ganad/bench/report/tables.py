"""The report's tables, each described once as a :class:`~ganad.bench.report.doc.Table` and returned
as a :class:`~ganad.bench.report.doc.Page` fragment (heading, table, notes) for both formats."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ganad import diagnostics
from ganad.bench import published, store
from ganad.bench.report.doc import Cell, Page, Table
from ganad.bench.report.sections import CHANCE, Section, machine_name, machine_of, machines_of


def is_best(v: float | None, best: float | None) -> bool:
    return v is not None and best is not None and round(v, 3) == round(best, 3)


def _chance_row(cells: list[str]) -> list[Cell | str]:
    return [Cell(x, css="chance") for x in [CHANCE, *cells]]


def class_table(sec: Section, metric: str) -> Page:
    """The grid's first metric per model and class (mean ± std over seeds), best per column in bold."""
    classes = sec.classes()
    labels = sec.labels()
    cell = {(sec.label(r), r["class"]): r for r in sec.rows}
    means = {lab: mean_over_classes([cell[(lab, c)] for c in classes if (lab, c) in cell], metric) for lab in labels}
    best = {c: max_of([cell[(m, c)][f"{metric}_mean"] for m in labels if (m, c) in cell]) for c in classes}
    partial = sec.partial()
    best_mean = max_of([v[0] for lab, v in means.items() if lab not in partial])
    names = {r["cls"]: (r.get("split") or {}).get("class_name") for r in sec.ok}
    head = ["model", *[class_name(c, names.get(c)) for c in classes], "mean over classes ± std over seeds"]
    table = Table(head, css="classes")
    for lab in labels:
        row: list[Cell | str] = [lab]
        for c in classes:
            r = cell.get((lab, c))
            if r is None:
                row.append("")
                continue
            mean = r[f"{metric}_mean"]
            row.append(Cell(store.fmt_pm(mean, r[f"{metric}_std"]), best=is_best(mean, best[c])))
        mean, std = means[lab]
        txt = "" if mean is None else store.fmt_pm(mean, std) + (" *" if lab in partial else "")
        row.append(Cell(txt, best=lab not in partial and is_best(mean, best_mean)))
        table.rows.append(row)
    chance = [fmt_chance(sec.chance(c).get(metric)) for c in classes] + [fmt_chance(sec.chance().get(metric))]
    table.rows.append(_chance_row(chance))
    page = Page()
    page.heading(3, f"{metric} per class (mean ± std over seeds)")
    page.table(table)
    _partial_note(page, partial)
    return page


def _partial_note(page: Page, partial: set[str]) -> None:
    """The footnote for rows whose mean covers fewer classes than the section has (not ranked)."""
    if not partial:
        return
    one = len(partial) == 1
    page.paragraph(
        f"* {', '.join(sorted(partial))}: finished for fewer classes than the other rows, so "
        + ("its mean over classes is" if one else "their means over classes are")
        + " not comparable and "
        + ("is" if one else "are")
        + " not ranked.",
        css="note",
    )


def class_name(c: Any, name: str | None) -> str:
    if c is None:
        return "—"
    return f"{c} ({name})" if name and name != str(c) else str(c)


def overall_table(sec: Section) -> Page:
    """Every metric per model (over seeds when there is one class, else the mean over classes), with times."""
    one_class = len(sec.classes()) == 1
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sec.rows:
        by_label[sec.label(r)].append(r)
    labels = sec.labels()
    timed = len(machines_of(sec.ok)) <= 1  # several machines: times go to their own table, per machine
    cols = [*sec.metrics, *store.TIMING] if timed else list(sec.metrics)

    def value(rs: list[dict[str, Any]], c: str) -> tuple[float | None, float | None]:
        if one_class:
            return rs[0][f"{c}_mean"], rs[0][f"{c}_std"]
        if c in sec.metrics:
            return mean_over_classes(rs, c)
        return avg([r[f"{c}_mean"] for r in rs]), None

    vals = {lab: {c: value(by_label[lab], c) for c in cols} for lab in labels}
    partial = sec.partial()
    best = {c: max_of([vals[lab][c][0] for lab in labels if lab not in partial]) for c in sec.metrics}
    table = Table(["model", "trials", *sec.metrics] + (["train time (s)", "scoring (ms / sample)"] if timed else []))
    for lab in labels:
        rs = by_label[lab]
        n = str(sum(r["seeds"] for r in rs)) + (
            f" (+{sum(r['failed'] for r in rs)} failed)" if any(r["failed"] for r in rs) else ""
        )
        row: list[Cell | str] = [lab, n]
        for c in cols:
            mean, std = vals[lab][c]
            txt = store.fmt_pm(mean, std) if c in sec.metrics else fmt_time(mean, std)
            if lab in partial and c in sec.metrics and mean is not None:
                txt += " *"
            row.append(Cell(txt, best=c in best and lab not in partial and is_best(mean, best[c])))
        table.rows.append(row)
    levels = sec.chance()
    table.rows.append(_chance_row(["—", *[fmt_chance(levels.get(c)) if c in sec.metrics else "–" for c in cols]]))
    if one_class:
        head = "All metrics (mean ± std over seeds)" + (", training time and scoring time" if timed else "")
    else:
        head = "All metrics, mean over classes ± std over seeds" + (", with times" if timed else "")
    page = Page()
    page.heading(3, head)
    page.table(table)
    _partial_note(page, partial)
    return page


def times_table(sec: Section) -> Page:
    """Training and scoring time per model and machine, as medians over trials.

    Trials of one section may come from machines that differ several-fold in
    speed (a grid resumed on another host); a mean over all of them would
    describe neither, so each machine gets its own columns. The median keeps
    one trial slowed by a busy core from moving the figure.
    """
    machines = machines_of(sec.ok)
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in sec.ok:
        by[(sec.label(r), machine_of(r))].append(r)
    head = ["model"]
    for i in range(len(machines)):
        n = machine_name(i)
        head += [f"{n}: trials", f"{n}: train time (s)", f"{n}: scoring (ms / sample)"]
    table = Table(head)
    for lab in sec.labels():
        row: list[Cell | str] = [lab]
        for m in machines:
            rs = by.get((lab, m), [])
            row.append(str(len(rs)))
            for c in store.TIMING:
                vals = store.finite_values(rs, c)
                row.append(fmt_time(float(np.median(vals)) if vals else None, None))
        table.rows.append(row)
    page = Page()
    page.heading(3, "Training and scoring time per machine (median over trials; machines as named in the set-up)")
    page.table(table)
    return page


def diagnostics_table(sec: Section) -> Page:
    """Collapse diagnostics per model (:mod:`ganad.diagnostics`), the warnings they raised, and which trials lack them.

    A table of AUROCs cannot show that a score is ‖x‖₁ or that a generator
    makes one kind of sample; this table and its warnings can, for every
    detector, baselines included.
    """
    page = Page()
    page.heading(3, "Collapse diagnostics")
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sec.ok:
        by_label[sec.label(r)].append(r)
    image = any("ink" in ((r.get("diagnostics") or {}).get("correlation") or {}) for r in sec.ok)
    stats = [k for k in diagnostics.STATISTICS if k != "ink" or image]
    table = Table(
        [
            "model",
            "trials with diagnostics",
            "spread ratio",
            "mode coverage",
            *[f"ρ with {diagnostics.STATISTICS[k][0]}" for k in stats],
            "warnings",
        ]
    )
    items = []
    missing = 0
    for lab in sec.labels():
        rs = by_label.get(lab, [])
        diags = [r["diagnostics"] for r in rs if r.get("diagnostics") and not r["diagnostics"].get("error")]
        missing += sum(1 for r in rs if not r.get("diagnostics"))
        spread = avg([(d.get("spread") or {}).get("ratio") for d in diags])
        cov = avg([(d.get("coverage") or {}).get("share") for d in diags])
        rhos = [avg([(d.get("correlation") or {}).get(k) for d in diags]) for k in stats]
        kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            for kind, _ in diagnostics.flags(r.get("diagnostics")):
                kinds[kind].append(r)
        table.add(
            lab,
            f"{len(diags)} of {len(rs)}",
            diagnostics.fmt(spread),
            diagnostics.fmt(cov),
            *[diagnostics.fmt(v) for v in rhos],
            ", ".join(f"{k} {len(v)}/{len(rs)}" for k, v in kinds.items()) or ("none" if diags else "–"),
        )
        for kind, recs in kinds.items():
            text = dict(diagnostics.flags(recs[0].get("diagnostics")))[kind]
            classes = sorted({r["cls"] for r in recs}, key=str) if len(sec.classes()) > 1 else []
            where = f", classes {', '.join(map(str, classes))}" if classes else ""
            items.append(f"{lab}: {len(recs)} of {len(rs)} trials{where}. {text} (first: {recs[0]['trial']})")
    if missing == len(sec.ok):
        page.note(
            f"No collapse diagnostics: the {missing} trial(s) of this section were stored before ganad computed "
            "them. Re-run the grid to get them, or print them for one trial with `ganad evaluate TRIAL_FOLDER`."
        )
        return page
    legend = (
        f"Means over trials. Spread ratio: per-feature std of x̂ over the std of x on test samples (median over "
        f"features; 1 = x̂ varies as x does, below {diagnostics.MIN_SPREAD:g} = collapsed; – = no reconstruction). "
        f"Mode coverage: share of the training modes (classes, else k-means clusters) that are the nearest mode "
        f"of some generated sample (below {diagnostics.MIN_COVERAGE:g}, or a mode of "
        f"{100 * diagnostics.MAJOR_MODE_SHARE:g} % of the training data missing = mode collapse). ρ: Spearman rank "
        f"correlation of the test score with a trivial statistic of the input (|ρ| above "
        f"{diagnostics.TRIVIAL_RHO:g} = the score is that statistic)."
    )
    if missing:
        legend += (
            f" {missing} trial(s) have no diagnostics: they were stored before ganad computed them "
            "(re-run them, or print them for one trial with `ganad evaluate TRIAL_FOLDER`)."
        )
    page.table(table)
    page.note(legend)
    if items:
        page.bullets(items, title="Warnings", css="warnings")
    return page


# -- number formats ------------------------------------------------------------------------
def fmt_chance(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def fmt_time(mean: float | None, std: float | None) -> str:
    """Seconds or ms to 3 significant digits: a fast scorer's 0.002 ms/sample must not print as 0.00."""

    def sig(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

    if mean is None:
        return "–"
    return sig(mean) + (f" ± {sig(std)}" if std is not None else "")


def max_of(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def mean_over_classes(rows: list[dict[str, Any]], metric: str) -> tuple[float | None, float | None]:
    """:func:`ganad.bench.store.class_mean` over the classes that have a value: the tables' one mean."""
    return store.class_mean([r for r in rows if r[f"{metric}_mean"] is not None], metric)


def avg(v: list[float | None]) -> float | None:
    v = [x for x in v if x is not None]
    return float(np.mean(v)) if v else None


def published_table(sec: Section, pub: dict[str, Any]) -> Page:
    """Each published value on the line of our row for the same detector and class, then our other rows."""
    metric = pub["metric"]
    facts = [
        ("paper", pub["paper"]),
        ("table", pub["table"]),
        ("link", pub.get("link", "")),
        ("data set", pub.get("dataset", "")),
        ("protocol", pub["protocol"]),
        ("split (ganad protocol)", pub.get("split", "")),
        ("metric", metric),
        ("paper's model selection", pub["selection"]),
    ]
    ours_sel = sorted({str((r.get("selection") or {}).get("select_on")) for r in sec.ok})
    table = Table(
        ["paper's model", "class", f"published {metric}", "our row", f"ours {metric} (mean ± std)", "seeds"], css="pub"
    )
    used: set[str] = set()
    for v in pub.get("values") or []:
        mine = [r for r in sec.rows if published.matches(v, r["model"], r.get("params") or {}, r["class"])]
        cls = "—" if v.get("class") is None else str(v["class"])
        for r in mine or [None]:
            ours = "not run" if r is None else store.fmt_pm(r.get(f"{metric}_mean"), r.get(f"{metric}_std"))
            lab = "" if r is None else sec.label(r)
            if r is not None:
                used.add(lab)
            table.add(
                v.get("name", v["model"]),
                cls,
                f"{v['value']:.4f}" + ("" if v.get("std") is None else f" ± {v['std']:.4f}"),
                lab,
                ours,
                "" if r is None else str(r["seeds"]),
            )
    for r in sec.rows:
        lab = sec.label(r)
        if lab in used and pub.get("values"):
            continue
        cls = "—" if r["class"] is None else str(r["class"])
        table.add(
            "(none published)",
            cls,
            "",
            lab,
            store.fmt_pm(r.get(f"{metric}_mean"), r.get(f"{metric}_std")),
            str(r["seeds"]),
        )
    page = Page()
    page.heading(3, "Published numbers beside ours")
    page.facts(facts, markdown_table=False)
    if pub.get("note"):
        page.note(pub["note"], css="")
    if pub.get("values"):  # nothing to set beside ours: the caveat and a table of our rows alone are noise
        page.paragraph(
            f"Ours: budget '{sec.budget}', selection {', '.join(ours_sel) or '?'}, "
            f"{len({r['seed'] for r in sec.ok})} seed(s). Only a run at the paper's budget, protocol and selection "
            "rule is comparable; smaller budgets are smoke runs of the same pipeline.",
            css="caveat",
        )
        page.table(table)
    return page
