"""The evaluation report: one self-contained HTML page (inline SVG, inline JS), JSON, Markdown."""

from __future__ import annotations

import json
import math
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from chatbot.evaluation import metrics, plots

WORST_PER_BACKEND = 5


def report_data(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON form of the report: the run, its per-backend summary, break-even, worst answers."""
    summary = run.get("summary") or {}
    names = list(run["backends"])
    return {
        "run": {k: run.get(k) for k in ("id", "status", "created_at", "finished_at", "error")},
        "source": run.get("source") or {},
        "params": run.get("params") or {},
        "backends": names,
        "summary": summary.get("backends", {}),
        "breakeven": summary.get("breakeven", []),
        "worst": {
            n: metrics.worst([r for r in rows if r["backend_name"] == n], WORST_PER_BACKEND)
            for n in names
        },
    }


def _worst_rows(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return metrics.worst([r for r in rows if r["backend_name"] == name], WORST_PER_BACKEND)


# formatting ------------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * scale:,.{digits}f}{unit}"


def fmt_ci(stat: dict[str, Any] | None, digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
    """``0.82 [0.78–0.86]``; a dash when there is nothing to show."""
    if not stat or stat.get("value") is None:
        return "–"
    main = _num(stat["value"], digits, scale, unit)
    if stat.get("lo") is None or stat["lo"] == stat["hi"]:
        return main
    lo, hi = _num(stat["lo"], digits, scale), _num(stat["hi"], digits, scale)
    return f"{main} <span class=ci>[{lo}–{hi}]</span>"


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value >= 0.1 or value <= 0:
        return f"${value:,.2f}"
    digits = max(2, 1 - math.floor(math.log10(value)))  # two significant digits, no exponent
    return f"${value:.{digits}f}"


def costs_for_plot(data: dict[str, Any]) -> tuple[dict[str, float], str]:
    """Cost per 1,000 answers per backend, and the axis label: measured when any answer had a
    price above zero, else the same tokens at the reference model's price."""
    summary, names = data["summary"], data["backends"]
    measured = {n: summary[n]["metrics"]["cost_per_1000"]["value"] for n in names if n in summary}
    if any(v for v in measured.values()):
        return {n: v for n, v in measured.items() if v is not None}, "measured"
    model = data["params"].get("price_model") or "the reference model"
    at_price = {n: summary[n].get("cost_per_1000_at_price_model") for n in names if n in summary}
    return {n: v for n, v in at_price.items() if v is not None}, f"tokens priced as {model}"


# HTML ------------------------------------------------------------------------------------------
_COLUMNS = (
    ("similarity", "Quality<br><small>similarity to reference</small>", 2, 1.0, ""),
    ("key_facts", "Key facts<br><small>share found</small>", 0, 100.0, "%"),
    ("right_entry", "Right entry<br><small>retrieval</small>", 0, 100.0, "%"),
    ("judge", "Judge<br><small>0–1</small>", 2, 1.0, ""),
    ("handoff_in_scope", "Hand-over<br><small>in scope ↓</small>", 0, 100.0, "%"),
    ("handoff_out_of_scope", "Hand-over<br><small>out of scope ↑</small>", 0, 100.0, "%"),
    ("ttft_p50", "TTFT p50<br><small>ms</small>", 0, 1.0, ""),
    ("ttft_p95", "TTFT p95<br><small>ms</small>", 0, 1.0, ""),
    ("latency_p50", "Total p50<br><small>ms</small>", 0, 1.0, ""),
    ("latency_p95", "Total p95<br><small>ms</small>", 0, 1.0, ""),
    ("input_tokens", "Prompt<br><small>tokens/answer</small>", 0, 1.0, ""),
    ("output_tokens", "Completion<br><small>tokens/answer</small>", 0, 1.0, ""),
)


def _table(data: dict[str, Any]) -> str:
    head = "".join(f"<th>{label}</th>" for _, label, *_ in _COLUMNS)
    rows = []
    for index, name in enumerate(data["backends"]):
        entry = data["summary"].get(name)
        if entry is None:
            continue
        m = entry["metrics"]
        cells = "".join(
            f"<td>{fmt_ci(m.get(key), digits, scale, unit)}</td>"
            for key, _label, digits, scale, unit in _COLUMNS
        )
        cost = fmt_ci(m["cost_per_1000"], 4, 1.0) if m["priced_answers"] else "unpriced"
        at = entry.get("cost_per_1000_at_price_model")
        faults = f"{m['errors']} / {m['fallbacks']}"
        rows.append(
            f"<tr><th scope=row><span class=dot style='background:{plots.colour(index)}'></span>"
            f"{escape(name)}<br><small>{escape(str(entry.get('kind') or ''))} · "
            f"{m['answers']} answers</small></th>{cells}<td>{cost}</td><td>{_usd(at)}</td>"
            f"<td>{faults}</td></tr>"
        )
    price_model = escape(str(data["params"].get("price_model") or "–"))
    return (
        f"<table class=metrics><thead><tr><th>Backend</th>{head}<th>USD / 1,000<br><small>measured"
        f"</small></th><th>USD / 1,000<br><small>as {price_model}</small></th>"
        f"<th>Errors / fallbacks</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _cards(data: dict[str, Any]) -> str:
    """ "At a glance": the best backend on each axis."""
    summary = data["summary"]
    names = [n for n in data["backends"] if n in summary]

    def best(key: str, lowest: bool = False, stat: str = "value") -> tuple[str, float] | None:
        found = [(n, summary[n]["metrics"][key][stat]) for n in names
                 if summary[n]["metrics"][key][stat] is not None]  # fmt: skip
        if not found:
            return None
        return (min if lowest else max)(found, key=lambda p: p[1])

    cards = []
    for title, pick, show in (
        ("Best quality", best("similarity"), lambda v: f"{v:.2f} similarity"),
        ("Fastest (p50)", best("latency_p50", lowest=True), lambda v: f"{v:,.0f} ms"),
        ("Fewest in-scope hand-overs", best("handoff_in_scope", lowest=True), lambda v: f"{v:.0%}"),
        ("Most out-of-scope hand-overs", best("handoff_out_of_scope"), lambda v: f"{v:.0%}"),
        ("Fewest prompt tokens", best("input_tokens", lowest=True), lambda v: f"{v:,.0f} / answer"),
    ):
        if pick is not None:
            cards.append(
                f"<div class=card><div class=label>{title}</div><div class=big>{escape(pick[0])}"
                f"</div><div class=sub>{show(pick[1])}</div></div>"
            )
    return "<div class=cards>" + "".join(cards) + "</div>"


def _break_even(data: dict[str, Any]) -> tuple[str, str]:
    """The break-even section (with its volume control) and the data its script reads."""
    pairs = data["breakeven"]
    if not pairs:
        return (
            "<p class=note>No fine-tuned backend in this run, so there is no break-even to show. "
            "Register one (<code>afina finetune</code>, or <code>afina backends add NAME --kind "
            "finetuned</code>) and run the evaluation with it and the few-shot backend.</p>",
            "[]",
        )
    parts = []
    for index, pair in enumerate(pairs):
        curve = ""
        if (
            pair["fewshot_usd_per_answer"] is not None
            and pair["finetuned_usd_per_answer"] is not None
            and pair["training_usd"] is not None
        ):
            curve = f"<figure>{plots.strip_size(plots.break_even_curve(pair))}</figure>"
        saved = pair["usd_saved_per_answer"]
        tokens = pair["prompt_tokens_saved"]
        verdict = (
            f"pays for itself after <b>{pair['answers_to_break_even']:,.0f}</b> answers "
            f"(<b>{pair['monthly_volume_for_a_year']:,.0f}</b> a month to pay off within a year)"
            if pair["answers_to_break_even"]
            else "never pays off at these prices (it saves nothing per answer)"
            if saved is not None and saved <= 0
            else "cannot be worked out: the training cost or the prices are unknown"
        )
        parts.append(
            f"<div class=pair><h3>{escape(pair['finetuned'])} vs {escape(pair['fewshot'])}</h3>"
            f"<ul><li>Training cost: <b>{_usd(pair['training_usd'])}</b> "
            f"<small>({escape(pair['training_basis'])})</small></li>"
            f"<li>Saving per answer: <b>{_num(tokens, 0)}</b> prompt tokens, "
            f"<b>{_usd(saved)}</b> <small>({escape(pair['price_basis'])})</small></li>"
            f"<li>The fine-tune {verdict}.</li>"
            f"<li class=live>At <b class=vol></b> answers a month: <b id=months-{index}></b>"
            f"</li></ul>{curve}</div>"
        )
    volume = int(data["params"].get("monthly_volume") or 10_000)
    control = (
        f"<label class=volume>Answers per month <input id=volume type=number min=1 "
        f"step=100 value={volume}><input id=volume-range type=range min=2 max=7 step=0.01 "
        f"value={math.log10(volume):.2f} aria-label='answers per month (log scale)'></label>"
    )
    script_data = json.dumps(
        [{k: p[k] for k in ("training_usd", "usd_saved_per_answer")} for p in pairs]
    )
    return control + "".join(parts), script_data


def _worst(data: dict[str, Any]) -> str:
    blocks = []
    for name in data["backends"]:
        rows = data["worst"].get(name) or []
        if not rows:
            continue
        items = "".join(_worst_row(r) for r in rows)
        blocks.append(
            f"<details open><summary>{escape(name)}</summary><div class=scroll><table class=worst>"
            "<thead><tr><th>Question</th><th>Reference</th><th>Answer</th><th>Sim.</th>"
            f"<th>Facts</th></tr></thead><tbody>{items}</tbody></table></div></details>"
        )
    return "".join(blocks) or "<p class=note>No scored answers.</p>"


def _worst_row(r: dict[str, Any]) -> str:
    answer = escape(r.get("answer") or r.get("error") or "")
    return (
        f"<tr><td data-label=Question>{escape(r['question'])}</td>"
        f"<td data-label=Reference>{escape(r.get('reference') or '–')}</td>"
        f"<td data-label=Answer class={'err' if r.get('error') else 'ok'}>{answer}</td>"
        f"<td data-label=Similarity>{_num(r.get('similarity'))}</td>"
        f"<td data-label='Key facts'>{_num(r.get('key_facts'), 0, 100, '%')}</td></tr>"
    )


def _provenance(data: dict[str, Any]) -> str:
    rows = []
    for name in data["backends"]:
        prov = (data["summary"].get(name) or {}).get("provenance") or {}
        cells = "".join(
            f"<td><code>{escape(', '.join(prov.get(k) or []) or '–')}</code></td>"
            for k in ("model", "backend_config_hash", "index_version", "example_set")
        )
        rows.append(f"<tr><th scope=row>{escape(name)}</th>{cells}</tr>")
    return (
        "<div class=scroll><table class=prov><thead><tr><th>Backend</th><th>Model</th>"
        "<th>Config hash</th><th>Index version</th><th>Example set</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def figures(data: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, str]:
    """The report's plots as SVG strings, by name (scatter, handovers, latency, tokens)."""
    names = [n for n in data["backends"] if n in data["summary"]]
    by_backend = {n: [r for r in rows if r["backend_name"] == n] for n in names}
    costs, _label = costs_for_plot(data)
    return {
        "scatter": plots.quality_vs_cost(names, data["summary"], costs),
        "handovers": plots.handovers(names, data["summary"]),
        "latency": plots.latency(names, by_backend),
        "tokens": plots.tokens(names, data["summary"]),
    }


def render_html(data: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The whole report as one HTML page that opens offline."""
    _costs, cost_label = costs_for_plot(data)
    drawn = figures(data, rows)
    breakeven_html, breakeven_json = _break_even(data)
    run, source, params = data["run"], data["source"], data["params"]
    what = (
        ", ".join(source.get("questions") or [])
        or f"export {source.get('export_id')} ({source.get('split')} split)"
    )
    judge = params.get("judge")
    template = Template(resources.files("chatbot.evaluation").joinpath("report.html").read_text())
    return template.substitute(
        title=f"Afina evaluation #{run['id']}",
        status=escape(str(run["status"])),
        created=escape(str(run.get("created_at") or "")[:19].replace("T", " ")),
        source=escape(what),
        items=source.get("items", "?"),
        digest=escape(str(source.get("digest", ""))),
        subset=_subset(source),
        error=(f"<p class=warn>{escape(str(run['error']))}</p>" if run.get("error") else ""),
        cards=_cards(data),
        table=_table(data),
        scatter=plots.strip_size(drawn["scatter"]),
        cost_label=escape(cost_label),
        handovers=plots.strip_size(drawn["handovers"]),
        latency=plots.strip_size(drawn["latency"]),
        tokens=plots.strip_size(drawn["tokens"]),
        breakeven=breakeven_html,
        breakeven_json=breakeven_json.replace("</", "<\\/"),
        worst=_worst(data),
        provenance=_provenance(data),
        resamples=params.get("resamples", "?"),
        seed=params.get("seed", "?"),
        judge=_judge(judge),
    )  # fmt: skip


def _subset(source: dict[str, Any]) -> str:
    if not source.get("limit"):
        return ""
    return f" (seeded subset of {source['limit']}, seed {source.get('seed')})"


def _judge(judge: dict[str, Any] | None) -> str:
    if not judge:
        return "No LLM judge (<code>--judge NAME</code> adds one)."
    return (
        f"LLM judge: <code>{escape(judge['backend'])}</code>, prompt: "
        f"<pre>{escape(judge['prompt'])}</pre>"
    )


def render_markdown(data: dict[str, Any]) -> str:
    """A short Markdown summary: the table and the break-even in words."""
    lines = [
        f"# Afina evaluation #{data['run']['id']} ({data['run']['status']})",
        "",
        "| backend | quality | key facts | hand-over in / out of scope | total p50 / p95 ms "
        "| prompt / completion tokens | USD per 1,000 (measured / as "
        f"{data['params'].get('price_model') or '-'}) | errors / fallbacks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in data["backends"]:
        entry = data["summary"].get(name)
        if entry is None:
            continue
        m = entry["metrics"]
        cost = m["cost_per_1000"]["value"]
        lines.append(
            f"| {name} | {_plain(m['similarity'])} | {_plain(m['key_facts'], 0, 100, '%')} "
            f"| {_plain(m['handoff_in_scope'], 0, 100, '%')} / "
            f"{_plain(m['handoff_out_of_scope'], 0, 100, '%')} "
            f"| {_num(m['latency_p50']['value'], 0)} / {_num(m['latency_p95']['value'], 0)} "
            f"| {_num(m['input_tokens']['value'], 0)} / {_num(m['output_tokens']['value'], 0)} "
            f"| {_usd(cost)} / {_usd(entry.get('cost_per_1000_at_price_model'))} "
            f"| {m['errors']} / {m['fallbacks']} |"
        )
    lines.append("")
    for pair in data["breakeven"]:
        n = pair["answers_to_break_even"]
        lines.append(
            f"- **{pair['finetuned']}** vs **{pair['fewshot']}**: training "
            f"{_usd(pair['training_usd'])} ({pair['training_basis']}); saves "
            f"{_num(pair['prompt_tokens_saved'], 0)} prompt tokens"
            f" = {_usd(pair['usd_saved_per_answer'])} per answer ({pair['price_basis']}); "
            + (f"break-even after {n:,.0f} answers." if n else "no break-even.")
        )
    lines.append("Quality is mean cosine similarity to the reference answer; [95% bootstrap CI].")
    return "\n".join(lines) + "\n"


def _plain(stat: dict[str, Any], digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
    if stat.get("value") is None:
        return "–"
    if stat.get("lo") is None:
        return _num(stat["value"], digits, scale, unit)
    return (f"{_num(stat['value'], digits, scale, unit)} [{_num(stat['lo'], digits, scale)}–"
            f"{_num(stat['hi'], digits, scale)}]")  # fmt: skip


def write_report(data: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write ``out`` (HTML) and its ``.json`` and ``.md`` siblings; return the three paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    html_path = out if out.suffix else out.with_suffix(".html")
    json_path, md_path = html_path.with_suffix(".json"), html_path.with_suffix(".md")
    html_path.write_text(render_html(data, rows), encoding="utf-8")
    json_path.write_text(
        json.dumps(data, indent=2, default=str, ensure_ascii=False), encoding="utf-8"
    )
    md_path.write_text(render_markdown(data), encoding="utf-8")
    return [html_path, json_path, md_path]


def write_plots(data: dict[str, Any], rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Each plot as its own SVG file in ``folder`` (for a README or a slide)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    drawn = figures(data, rows)
    for pair in data["breakeven"]:
        costs = ("fewshot_usd_per_answer", "finetuned_usd_per_answer", "training_usd")
        if all(pair[k] is not None for k in costs):
            drawn[f"breakeven-{pair['finetuned']}"] = plots.break_even_curve(pair)
    for name, svg in drawn.items():
        path = folder / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        paths.append(path)
    return paths
