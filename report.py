"""The run report: what every stage of a speedrun did, as one Markdown page with pictures.

Reads what the stages left in OUT (metrics.jsonl of each training stage, meta.json of the
prepared data, the JSON reports of eval.py) and writes OUT/report.md with SVG charts beside
it: loss curves, throughput, the data summary, example completions of the trained models,
the evaluation table next to the report's numbers, and the needle heatmap.

    python report.py --out out
"""
import argparse
import json
import os
import statistics
from xml.sax.saxutils import escape

from corpus import read_jsonl
from eval_suites import REPORTED

STAGES = [  # (directory under OUT, title, report section)
    ("pretrain", "Stage 1: file-level pretraining", "§3.2.1"),
    ("repo_pretrain", "Stage 2: repo-level pretraining", "§3.2.2"),
    ("sft/coarse", "SFT, coarse phase", "§4.2"),
    ("sft", "SFT, fine phase", "§4.2"),
    ("dpo", "DPO", "§4.2"),
]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- charts

def line_chart(series, title, ylabel, width=640, height=300):
    """A self-contained SVG line chart. series: {name: [(x, y), ...]} (no plotting library needed)."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return None
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    left, right, top, bottom = 60, 20, 30, 40
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for i in range(5):  # horizontal grid lines with their values
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    out.append(f'<text x="{left}" y="{height - 10}">step {x0:g}</text>'
               f'<text x="{width - right}" y="{height - 10}" text-anchor="end">step {x1:g}</text>'
               f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
               f'{escape(ylabel)}</text>')
    for k, (name, s) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        if len(s) == 1:
            out.append(f'<circle cx="{sx(s[0][0]):.1f}" cy="{sy(s[0][1]):.1f}" r="3" fill="{color}"/>')
        else:
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        out.append(f'<text x="{width - right - 4}" y="{top + 14 * (k + 1)}" text-anchor="end" fill="{color}">'
                   f'{escape(name)}</text>')
    return "\n".join(out + ["</svg>"])


def smooth(values, window=10):
    """Trailing mean, so the curve shows the trend of a noisy per-step loss."""
    out, acc = [], []
    for v in values:
        acc = (acc + [v])[-window:]
        out.append(sum(acc) / len(acc))
    return out


# ----------------------------------------------------------------------------- sections

def stage_section(out, rows, charts):
    lines = ["## Training stages", "",
             "| stage | paper | steps | first loss | last loss | val loss | tokens/s (median) |",
             "|---|---|---|---|---|---|---|"]
    for sub, title, section in STAGES:
        path = os.path.join(out, sub, "metrics.jsonl")
        if not os.path.exists(path):
            continue
        recs = [r for _, r in read_jsonl(path, "a metrics record (a JSON object)")]
        if not recs:
            continue
        losses = [r["loss"] for r in recs]
        val = [r for r in recs if "val_loss" in r]
        tps = statistics.median(r["tokens_per_s"] for r in recs)
        last_val = f"{val[-1]['val_loss']:.3f}" if val else "–"
        lines.append(f"| {title} | {section} | {recs[-1]['step']} | {losses[0]:.3f} | {losses[-1]:.3f} | {last_val} | "
                     f"{tps:,.0f} |")
        series = {"train loss (smoothed)": list(zip([r["step"] for r in recs], smooth(losses)))}
        if val:
            series["validation loss"] = [(r["step"], r["val_loss"]) for r in val]
        name = "loss_" + sub.replace("/", "_") + ".svg"
        charts[name] = line_chart(series, f"{title}: loss", "loss (nats/token)")
        rows.append(f"![{title}]({name})")
        if "rewards/margins" in recs[0]:
            dpo = {k: [(r["step"], r[k]) for r in recs] for k in ("rewards/margins", "rewards/accuracies")}
            charts["dpo_rewards.svg"] = line_chart(dpo, "DPO: reward margin and accuracy", "value")
            rows.append("![DPO rewards](dpo_rewards.svg)")
    return lines + [""] + rows


def _cell(text, n=80):
    return "`" + " ".join(text.split()).replace("|", "\\|").replace("`", "'")[:n] + "`"


def data_section(out):
    """The corpus (§3.1): sources, languages, what each cleaning step removed, with examples; then
    the prepared data (§3.2) per level."""
    lines = ["## Data", "", "| corpus | level | repos | files | MB | train tokens | val tokens | skipped | decontaminated |",
             "|---|---|---|---|---|---|---|---|---|"]
    meta = None
    for level in ("file", "repo"):
        m = read_json(os.path.join(out, f"data-{level}", "meta.json"))
        if not m:
            continue
        meta = m
        c, s = m["corpus"], m["splits"]
        skipped = ", ".join(f"{k} {v}" for k, v in m["skipped"].items() if v) or "none"
        lines.append(f"| data-{level} | {m['level']} | {c['repos']} | {c['files']} | {c['bytes'] / 1e6:.1f} | "
                     f"{s['train']['tokens']:,} | {s['val']['tokens']:,} | {skipped} | {len(m['decontaminated'])} |")
    if meta is None:
        return []
    lines += ["", "Held-out repositories (validation, repo-level evaluation): "
              + ", ".join(f"`{r}`" for r in meta["val_repos"][:20]) + (" ..." if len(meta["val_repos"]) > 20 else "")]
    if meta.get("sources"):  # a corpus clean.py made (report §3.1): where the code came from
        lines += ["", "### The corpus: sources and languages (MB kept)", "", "| source | repos | files | MB | languages |",
                  "|---|---|---|---|---|"]
        for name, src in meta["sources"].items():
            langs = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in list(src["languages"].items())[:6])
            lines.append(f"| {name} | {src['repos']} | {src['files']} | {src['bytes'] / 1e6:.1f} | {langs} |")
    lid, q, nd = meta.get("language_id") or {}, meta.get("quality") or {}, meta.get("near_dedup") or {}
    if lid.get("heldout_files"):
        lines += ["", f"**Language ID** (hashed byte n-grams, linear): {lid['heldout_accuracy']:.1%} of "
                  f"{lid['heldout_files']} held-out files; on {lid.get('shebang_files', 0)} scripts whose `#!` line "
                  f"names the language, {lid.get('shebang_classifier_accuracy', 0):.1%} against the extension's "
                  f"{lid.get('shebang_extension_accuracy', 0):.1%}. Decided by: "
                  + ", ".join(f"{k} {v}" for k, v in lid.get("by", {}).items()) + "."]
    if q.get("rounds"):
        lines += ["", f"**Quality rounds** (Fig. 1) over {', '.join(q['languages'])}: "
                  + "; ".join(f"round {r['round']} removed {r['removed']} of {r['pool']} sample files" for r in q["rounds"])
                  + f". In the corpus: {sum(q['removed'].values())} files removed. The lowest scored:", "",
                  "| file | language | score | first lines |", "|---|---|---|---|"]
        lines += [f"| `{e['path']}` | {e['language']} | {e['score']:.3f} | {_cell(e['head'])} |"
                  for e in q["removed_examples"]]
    if nd:
        lines += ["", f"**Duplicates**: {nd['exact']} exact, {nd['near']} near (MinHash, Jaccard >= 0.7). Near ones:", "",
                  "| removed | kept | similarity |", "|---|---|---|"]
        lines += [f"| `{e['path']}` | `{e['kept']}` | {e['similarity']:.2f} |" for e in nd["examples"][:5]]
    if meta.get("decontamination"):
        lines += ["", "**Decontamination** (§5, 10-grams): " + ", ".join(
            f"{k} ({v['problems']} problems) {v['files']} files" for k, v in meta["decontamination"].items())]
        lines += [f"- `{d['repo']}/{d['path']}` ~ {d['problem']}: {_cell(d['ngram'], 60)}" for d in meta["decontaminated"][:5]]
    return lines


def eval_section(out):
    ev = os.path.join(out, "eval")
    if not os.path.isdir(ev):
        return []
    lines = ["## Evaluation", "", "| benchmark | model | ours | the report, for context |", "|---|---|---|---|"]
    for name in sorted(os.listdir(ev)):
        if not name.endswith(".json"):
            continue
        r = read_json(os.path.join(ev, name))
        key = name[:-5]
        if not isinstance(r, dict) or "headline" not in r:
            continue
        figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["headline"].items())
        paper = reported(key.removesuffix("_base"), r.get("settings", {}).get("instruct", False))
        lines.append(f"| {key} | `{os.path.relpath(r['model'] or '-', out) if r.get('model') else '-'}` | {figures} | {paper} |")
    fim = read_json(os.path.join(ev, "fim.json"))
    if isinstance(fim, dict) and fim.get("per_task"):  # what the fim figures are made of
        lines += ["", "### HumanEval-FIM: the first lines the base model filled", "",
                  "| task | the masked line | the model's line | valid line | file parses |", "|---|---|---|---|---|"]
        cell = lambda text: "`" + text.replace("|", "\\|").replace("`", "'")[:70] + "`" if text.strip() else "(empty)"
        yes = lambda v: "–" if v is None else "yes" if v else "no"  # "–": a fim.json from before valid_line
        for t in fim["per_task"][:8]:
            lines.append(f"| {t['task_id']} | {cell(t['target'])} | {cell(t['fill'])} | "
                         f"{yes(t.get('valid_line'))} | {yes(t['parses'])} |")
    svg = os.path.join(ev, "needle.svg")
    if os.path.exists(svg):
        lines += ["", "### Needle in the code (report Fig. 6)", "", "![needle heatmap](eval/needle.svg)"]
    return lines


def reported(name, instruct):
    """The report's figures for the smallest official checkpoint of the kind evaluated (base or
    instruct), for context: not a target for a tiny model. (humaneval_base: the speedrun's base run.)"""
    names, where, figures = REPORTED.get(name, ((), (), {}))
    size = next((k for k in figures if k.endswith("-Instruct") == instruct), None)
    if size is None:
        return "–"
    return (f"Qwen2.5-Coder-{size}: " + ", ".join(f"{n} {v}%" for n, v in zip(names, figures[size]))
            + f" ({where[instruct]})")


def examples_section(out):
    """Completions of the trained models on fixed prompts: what the numbers look like as code."""
    import torch
    from data_fim import fim_prompt, format_repo
    from model import Transformer
    from tokenizer import FIM_STOPS, Tokenizer
    lines = ["## Examples (greedy)", ""]
    base = os.path.join(out, "repo_pretrain")
    if os.path.exists(os.path.join(base, "model.safetensors")):
        model, tok = Transformer.from_pretrained(base), Tokenizer.from_pretrained(base)
        stops = [tok.special[t] for t in FIM_STOPS]
        fim = fim_prompt("def is_even(n):\n    \"\"\"Return True if n is even.\"\"\"\n    return ",
                         "\n\n\nprint(is_even(4))\n")
        repo = format_repo("demo", [("util.py", "def parse_header(line):\n    key, _, value = line.partition(':')\n"
                                                "    return key.strip().lower(), value.strip()\n"),
                                    ("main.py", "from util import ")])
        repo = repo.rsplit("\n", 1)[0] if repo.endswith("\n") else repo
        for title, prompt in (("File-level FIM (Fig. 3)", fim), ("Repo-level completion (Fig. 4)", repo)):
            ids = torch.tensor([tok.encode(prompt, allowed_special="all")])
            new = model.generate(ids, 48, stop_ids=stops)[0, ids.shape[1]:].tolist()
            text = tok.decode([t for t in new if t not in stops])
            lines += [f"**{title}** — the prompt, then the model's text after `>>>`:", "", "```",
                      prompt + " >>>" + text, "```", ""]
    return lines


def main(out, examples=True):
    charts, rows = {}, []
    sections = [["# Qwen2.5-Coder from scratch: run report", "",
                 f"Everything below was produced by the stages in `{out}`; the report's numbers are for "
                 "models 100x larger trained on 5.5T tokens, shown for context only.", ""]]
    sections.append(data_section(out))
    sections.append(stage_section(out, rows, charts))
    if examples:
        sections.append(examples_section(out))
    sections.append(eval_section(out))
    for name, svg in charts.items():
        if svg:
            with open(os.path.join(out, name), "w") as f:
                f.write(svg)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(line for s in sections for line in s + [""]))
    print(f"wrote {path} and {len(charts)} chart(s)")
    return path


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out", help="the speedrun's output directory")
    p.add_argument("--no-examples", action="store_true", help="skip generating example completions")
    a = p.parse_args()
    main(a.out, examples=not a.no_examples)
