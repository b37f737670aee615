"""eval_math.py through `eval.py math`: GSM8K and MATH answers extracted and judged as Qwen2.5-Math's
harness does, cases of its grader's math_equal, a grader that never runs an answer as code, and
the few-shot prompts."""
import pytest

import eval_math as em
import eval_suites as es
from conftest import cli, headline, results, write_jsonl


GSM8K = [  # openai/grade-school-math test.jsonl rows
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips to her "
                 "friends in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
               "in April and May.\n#### 72"},
    {"question": "A shop sells 1,000 pens a day at $1.20 each. How much does it take in a day?",
     "answer": "1000 * 1.2 = <<1000*1.2=1200>>1200\n#### 1200"},
]
MATH = [  # hendrycks/math test rows as JSONL (problem, level, type, solution)
    {"problem": "Simplify $\\sqrt{\\frac{1}{4}}$.", "level": "Level 1", "type": "Algebra",
     "solution": "We have $\\sqrt{\\frac{1}{4}} = \\boxed{\\frac{1}{2}}$."},
    {"problem": "Expand $(x+1)^2$.", "level": "Level 2", "type": "Algebra",
     "solution": "$(x+1)^2 = \\boxed{x^2+2x+1}$."},
    {"problem": "Which is the largest? (A) 1 (B) 2 (C) 3", "level": "Level 1", "type": "Prealgebra",
     "solution": "3 is the largest, so the answer is $\\boxed{\\text{(C)}}$."},
    {"problem": "On what interval is $\\sqrt{x-2}/\\sqrt{5-x}$ defined?", "level": "Level 5", "type": "Algebra",
     "solution": "We need $x \\ge 2$ and $x < 5$: $\\boxed{[2,5)}$."},
    {"problem": "Is 7 prime?", "level": "Level 1", "type": "Number Theory", "solution": "Yes: $\\boxed{\\text{yes}}$."},
]


def test_math_scores_gsm8k_and_math_as_qwen_math_does(tmp_path, capsys):
    gsm = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    samples = write_jsonl(tmp_path / "g.jsonl", [
        {"task_id": "0", "completion": "In May she sold 24, so 48 + 24 = 72. The answer is 72."},
        {"task_id": "0", "completion": "She sold 48 + 48 = 96 clips."},                     # last number, wrong
        {"task_id": "1", "completion": "It takes $\\boxed{\\$1,200.00}$ dollars a day."},  # $, separator, .00
        {"task_id": "1", "completion": "It takes one thousand two hundred dollars. The answer is one thousand two hundred"},
        {"task_id": "1", "completion": "The answer is 1200 apples."}])   # a unit word
    code, out, err = cli(capsys, "math", "--dataset", "gsm8k", "--problems", gsm, "--samples", samples,
                         "--out", tmp_path / "g.json")
    assert code == 0, err
    assert [r["passed"] for r in results(samples)] == [True, False, True, True, True]
    assert headline(out) == {"pass@1": 0.75}

    math_file = write_jsonl(tmp_path / "math.jsonl", MATH)
    samples = write_jsonl(tmp_path / "m.jsonl", [
        {"task_id": "0", "completion": "... so the answer is $\\boxed{0.5}$."},                   # sympy: 1/2 = 0.5
        {"task_id": "0", "completion": "... $\\boxed{\\frac{1}{3}}$."},
        {"task_id": "1", "completion": "$\\boxed{(x+1)(x+1)}$"},                                  # simplify
        {"task_id": "1", "completion": "$\\boxed{x^{9^{9^{9^{9}}}}}$"},                           # runs out of time
        {"task_id": "1", "completion": "$\\boxed{x^2+2x+2}$"},
        {"task_id": "2", "completion": "Comparing them, the answer is (C) 3."},                   # a letter
        {"task_id": "2", "completion": "The answer is \\boxed{B}"},
        {"task_id": "3", "completion": "Final Answer: The final answer is $[2, 5)$. I hope it is correct."},
        {"task_id": "3", "completion": "\\boxed{[2, 6)}"},
        {"task_id": "4", "completion": "\\boxed{\\text{Yes}}"},
        # Python for sympy's parse_expr: the official grader runs it (and so passes this); here it is text.
        {"task_id": "0", "completion": "\\boxed{__import__('sympy').Rational(1,2)}"}])
    code, out, err = cli(capsys, "math", "--dataset", "math", "--problems", math_file, "--samples", samples,
                         "--out", tmp_path / "m.json")
    assert code == 0, err
    assert [r["passed"] for r in results(samples)] == [True, False, True, False, False, True, False, True, False,
                                                        True, False]


# (prediction, gold, verdict) as Qwen2.5-Math's evaluation/grader.py math_equal gives it after
# parser.py strip_string; several are the grader's own examples (its _test_math_equal).
MATH_EQUAL_CASES = [
    ("\\frac{1}{2}", "0.5", True), ("0.5", "\\dfrac12", True), ("1/2", "\\frac{1}{2}", True),
    ("0.0833333333333333", "\\frac{1}{12}", True), ("\\frac{100}{3}", "33.3", False), ("0.7", "0.75", False),
    ("5", "5\\text{ cm}", True), ("5\\text{ dollars}", "5", True), ("12 cm", "12", True), ("5\\text{ cm}^2", "5", False),
    ("50\\%", "0.5", True), ("10", "1000", True), ("10%", "0.2", False),        # the gold also as x/100, x*100
    ("1,000", "1000", True), ("\\$1,000.00", "1000", True), ("1,000", "10", True), ("1,000", "100", False),
    ("[2,5)", "[2, 5)", True), ("(0.6,2.6667]", "(\\frac{3}{5},\\frac{8}{3}]", True), ("(1,4.5)", "(1,\\frac{9}{2})", True),
    ("(2,5)", "[2,5]", True),  # the grader compares interval ends part by part, not the brackets
    ("(1,2)", "(2,1)", False), ("\\{1,2\\}", "\\{2,1\\}", True),
    ("x^2+2x+1", "(x+1)^2", True), ("x^2+2x+2", "(x+1)^2", False), ("\\frac{x}{7}+\\frac{2}{7}", "\\frac{x+2}{7}", True),
    ("3\\sqrt{2}", "\\sqrt{18}", True), ("\\frac{\\sqrt{2}}{2}", "0.7071", True), ("\\frac{1+\\sqrt{5}}{2}", "2", False),
    ("x+1", "x+2n+1", False), ("2\\pi", "6.2832", False), ("63\\pi", "63 \\pi", True),
    ("-34x-45y+20z-100=0", "34x+45y-20z+100=0", True), ("y = 3+2x", "2x+3", True), ("x = y", "x = z", False),
    ("\\begin{pmatrix}0.5\\\\2\\end{pmatrix}", "\\begin{pmatrix}\\frac{1}{2}\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&5\\end{bmatrix}", False),
    ("seven", "7", True), ("twenty five", "25", True), ("C", "\\text{(C)}", True), ("B", "\\text{(C)}", False),
    ("\\sec^2(y)", "\\tan^2(y)+1", False),  # "sec" is a unit word to parser.py (seconds): \^2(y) is left
    ("(+5)(b+2)", "(a+5)(b+2)", True),      # and so is "a": both sides lose it
    ("\\frac{1}{3}", "\\frac{1}{2}", False), ("72", "96", False), ("", "0", False),
]


@pytest.mark.parametrize("pred, gold, verdict", MATH_EQUAL_CASES)
def test_math_equal_as_the_official_grader(pred, gold, verdict):
    assert em.math_equal(em.strip_string(pred), em.strip_string(gold)) is verdict


def test_math_equal_branches_strip_string_would_hide():
    assert em.math_equal("x = 0.5", "\\frac{1}{2}") and em.math_equal("\\frac{1}{2}", "k = 0.5")  # x = v vs v
    assert em.math_equal("2x+3y=6", "6=3y+2x") and not em.math_equal("2x+3y=6", "6=3y+2x+1")      # equations
    assert em.math_equal("A", "(A)") and em.math_equal("the choice (D)", "D") and not em.math_equal("(B)", "D")


def test_math_sympy_never_runs_an_answer():
    import sympy
    assert em._parse_expr("sqrt(2)/2 + x**2") == sympy.sqrt(2) / 2 + sympy.Symbol("x") ** 2
    for text in ("__import__('os')", "x.func", "(x).evalf()", "ｘ.＿＿class＿＿", "S('1')"):
        with pytest.raises(ValueError):
            em._parse_expr(text)
    names = em._namespace()  # what parse_expr may call: no route to eval, files or printing
    assert names["__builtins__"] == {} and "sqrt" in names and "Rational" in names
    assert not {"sympify", "S", "parse_expr", "lambdify", "preview", "var", "latex", "open", "eval", "chr"} & set(names)
    assert em._parse_expr("open(x)") == sympy.Function("open")(sympy.Symbol("x"))  # a name, not the builtin
    assert not em._symbolic_equal("__import__('sympy').Rational(1,2)", "\\frac{1}{2}")  # N() would sympify it


def test_math_grader_without_its_dependencies_says_what_to_install(tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"  # a worker whose sympy cannot parse LaTeX (no ANTLR 4.11 runtime)
    worker.write_text("print('ImportError: LaTeX parsing requires the antlr4 Python package')\n")
    monkeypatch.setattr(em, "__file__", str(worker))
    with pytest.raises(ValueError, match=r"antlr4.*pip install -r requirements.txt"):
        em.Grader().equal("1", "1")


def test_math_answer_extraction():
    assert em.extract_answer("so $x = \\boxed{\\dfrac{\\sqrt{3}}{2}}$.") == "\\frac{\\sqrt{3}}{2}"
    assert em.extract_answer("first \\boxed{1}, then \\boxed{\\{1, \\{2\\}\\}}") == "{1,{2}}"  # the last, nested
    assert em.extract_answer("thus \\boxed 5$ apples") == "5"
    assert em.extract_answer("Final Answer: The final answer is $\\frac12$. I hope it is correct.") == "\\frac{1}{2}"
    assert em.extract_answer("We get 3.\nThe answer is: 1,234.") == "1,234"
    assert em.extract_answer("We have 2,500 and then 48 + 24 = 72 clips") == "72"
    assert em.extract_answer("答案是 7\n\n其余") == "7" and em.extract_answer("no number here") == ""
    assert em.prediction("The answer is (C) 3", "C") == "C"   # a letter gold re-reads the completion
    assert em.prediction("\\boxed{3}", "ACD") == ""           # several letters: only letters count


def test_math_word_numbers_as_word2number():
    from word2number import w2n

    def official(text):  # parser.py convert_word_number
        try:
            return str(w2n.word_to_num(text))
        except Exception:
            return text

    for text in ("seven", "Twenty-Five", "one hundred and five", "two million three thousand", "point five",
                 "one point two five", "one point twenty", "point", "five thousand", "thousand five",
                 "two thousand million", "nine hundred ninety nine thousand nine hundred ninety nine", "05",
                 "x", "1/2", "-5", "²", "one and a half", "a billion and one", "ten point zero"):
        assert em.word_number(text) == official(text), text


def test_math_loader_and_prompts(tmp_path, capsys):
    problems = em.load_math(write_jsonl(tmp_path / "math.jsonl", MATH), "math")
    assert [p["gold"] for p in problems.values()] == ["\\frac{1}{2}", "x^2+2x+1", "(C)", "[2,5)", "yes"]
    assert problems["4"]["question"] == "Is 7 prime? (Yes or No)"  # parse_question's hint for a yes/no gold
    assert em.load_math(write_jsonl(tmp_path / "g.jsonl", GSM8K), "gsm8k")["1"]["gold"] == "1200"
    with pytest.raises(ValueError, match="no single '#### N'"):
        em.load_math(write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "42"}]), "gsm8k")

    # utils.py construct_prompt, "cot": exemplars joined by two blank lines, no space after the last "Answer:"
    assert em.base_prompt("What is 1+1?", "gsm8k", 0) == "Question: What is 1+1?\nAnswer:"
    prompt = em.base_prompt("What is 1+1?", "math", 4)
    blocks = prompt.split("\n\n\nQuestion: ")
    assert len(blocks) == 5 and blocks[0].startswith("Question: Kevin Kangaroo") and blocks[-1].endswith("\nAnswer:")
    assert blocks[3].endswith("The answer is 0") and "Expand $(2z^2" not in prompt
    assert em.base_prompt("q", "gsm8k", 8).count("The answer is") == 8
    assert es.truncate("2 + 2 = 4. The answer is 4.\n\nQuestion: What", em.BASE_STOPS) == "2 + 2 = 4. The answer is 4."
    code, _, err = cli(capsys, "math", "--dataset", "math", "--problems", tmp_path / "math.jsonl",
                       "--model", tmp_path / "none", "--shots", 6, "--out", tmp_path / "x.json")
    assert code == 1 and "--shots 6" in err and "Traceback" not in err
