"""Tests for data/prepare.py (CPU, about half a minute): prepares the release from ../shared/data into a temporary
folder once, then checks the counts, the paper's examples pi1/pi2/pi13/pi1209 and pi1' (pi1s), the duplication, the
exact pi1 chat prompt, the label experiments (the paper's random wrong labels on the real DSR-sub), the data
selection (std, lim against the release's values, random), the few-shot demos, ARC from a parquet fixture in the AI2
layout (and the download path against a faked fetch), the CLI and the error messages, a researcher's own examples
and demos (their field names and every bad input's message), and that run.sh and docs/experiments.md list the same
experiments.

The release's files and the prepared data come from conftest.py's `shared_dir` and `data_dir` fixtures.
"""
import hashlib
import importlib.util
import io
import json
import math
import random
import re
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
import reward  # noqa: E402  (the grader perturb_labels uses)

# data/ is a plain folder (no __init__.py): load the file itself, so no installed `data` package can shadow it.
_spec = importlib.util.spec_from_file_location("data_prepare", REPO / "data" / "prepare.py")
prepare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare)

# The paper's examples: (DSR-sub index, problem, label), texts from paper_run.md §10.
PAPER_EXAMPLES = {
    "pi1": (124, "The pressure \\( P \\) exerted by wind on a sail varies jointly as the area \\( A \\) of the "
                 "sail and the cube of the wind's velocity \\( V \\). When the velocity is \\( 8 \\) miles per "
                 "hour, the pressure on a sail of \\( 2 \\) square feet is \\( 4 \\) pounds. Find the wind "
                 "velocity when the pressure on \\( 4 \\) square feet of sail is \\( 32 \\) pounds.", "12.8"),
    "pi2": (267, "How many positive divisors do 9240 and 13860 have in common?", "24"),
    "pi13": (682, "Given that circle $C$ passes through points $P(0,-4)$, $Q(2,0)$, and $R(3,-1)$.  \n$(1)$ "
                  "Find the equation of circle $C$.  \n$(2)$ If the line $l: mx+y-1=0$ intersects circle $C$ at "
                  "points $A$ and $B$, and $|AB|=4$, find the value of $m$.", "\\frac{4}{3}"),
    "pi1209": (789, "Define the derivative of the $(n-1)$th derivative as the $n$th derivative $(n \\in N^{*}, "
                    "n \\geqslant 2)$, that is, $f^{(n)}(x)=[f^{(n-1)}(x)]'$. They are denoted as $f''(x)$, "
                    "$f'''(x)$, $f^{(4)}(x)$, ..., $f^{(n)}(x)$. If $f(x) = xe^{x}$, then the $2023$rd derivative "
                    "of the function $f(x)$ at the point $(0, f^{(2023)}(0))$ has a $y$-intercept on the $x$-axis "
                    "of ______.", "-\\frac{2023}{2024}"),
}

# paper_run.md §1, JSON form: the exact pi1 training prompt under Qwen2.5-Math's chat template (560 chars).
PI1_CHAT = ("<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
            "<|im_start|>user\n" + PAPER_EXAMPLES["pi1"][1]
            + " Let's think step by step and output the final answer within \\boxed{}.<|im_end|>\n"
            "<|im_start|>assistant\n")


def run_cli(*args):
    return subprocess.run([sys.executable, "data/prepare.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------------
# Prepared files
# ---------------------------------------------------------------------------------------------------

def test_counts_and_files(data_dir, shared_dir):
    lines = (data_dir / "dsr_sub.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1209
    assert [json.loads(line)["index"] for line in lines] == list(range(1209))
    assert (data_dir / "acc_step_500.json").read_bytes() == (shared_dir / "one_shot_rlvr" / "acc_step_500.json").read_bytes()
    sizes = {name: len(prepare.load_benchmark(name, data_dir)) for name in prepare.BENCHMARK_SIZES}
    assert sizes == {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva_math": 272, "olympiadbench": 675}
    assert [len(prepare.load_demos(spec, data_dir)) for spec in ("qwen4", "qwen1", "pi1")] == [4, 1, 1]
    assert not (data_dir / "eval" / "arc_e.jsonl").exists()  # ARC is a separate step (--arc / --arc-source)


@pytest.mark.parametrize("name", sorted(PAPER_EXAMPLES))
def test_paper_examples(data_dir, name):
    index, problem, label = PAPER_EXAMPLES[name]
    assert prepare.load_examples(name, data_dir) == [{"name": name, "index": index, "problem": problem, "answer": label}]


def test_dsr_sub_spec(data_dir):
    examples = prepare.load_examples("dsr_sub", data_dir)
    assert [e["index"] for e in examples] == list(range(1209))
    assert examples[124]["problem"] == PAPER_EXAMPLES["pi1"][1]
    assert examples[265]["answer"] == ""  # the release's one empty label, kept as released
    combined = prepare.load_examples(" pi13 , pi1 ", data_dir)
    assert [(e["name"], e["index"]) for e in combined] == [("pi13", 682), ("pi1", 124)]


def test_benchmark_golds(data_dir):
    amc = prepare.load_benchmark("amc23", data_dir)
    assert amc[0]["answer"] == "27" and all("." not in e["answer"] for e in amc)
    assert amc[30]["question"] == amc[30]["question"].strip()  # the one question with a trailing space
    aime24 = prepare.load_benchmark("aime24", data_dir)
    assert aime24[7]["answer"] == "025"
    assert prepare.load_benchmark("aime25", data_dir)[0]["answer"] == "70"
    math500 = prepare.load_benchmark("math500", data_dir)
    assert math500[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)" and "solution" in math500[0]
    assert prepare.load_benchmark("minerva_math", data_dir)[0]["answer"] == "1.6"
    olympiad = prepare.load_benchmark("olympiadbench", data_dir)
    assert olympiad[1]["answer"] == "\\frac{1}{2 n+2}"  # "$\frac{1}{2 n+2}$" with the $ stripped
    assert [e["idx"] for e in olympiad] == list(range(675))


# ---------------------------------------------------------------------------------------------------
# Duplication and the chat prompt
# ---------------------------------------------------------------------------------------------------

def test_repeat_to_batch(data_dir):
    one = prepare.repeat_to_batch(prepare.load_examples("pi1", data_dir), 128)
    assert len(one) == 128 and {e["index"] for e in one} == {124}
    two = prepare.repeat_to_batch(prepare.load_examples("pi1,pi13", data_dir), 128)
    assert [e["index"] for e in two] == [124] * 64 + [682] * 64  # as merge_pi1_pi13_r128.parquet
    four = prepare.repeat_to_batch(prepare.load_examples("pi1,pi2,pi13,pi1209", data_dir), 128)
    assert [e["index"] for e in four] == [124] * 32 + [267] * 32 + [682] * 32 + [789] * 32
    full = prepare.load_examples("dsr_sub", data_dir)
    assert prepare.repeat_to_batch(full, 128) == full  # more examples than the batch: the trainer samples
    with pytest.raises(ValueError, match="multiple of 3"):
        prepare.repeat_to_batch(prepare.load_examples("pi1,pi2,pi13", data_dir), 128)
    one[0]["answer"] = "changed"
    assert one[1]["answer"] == "12.8"  # each row is its own dict


def test_chat_prompt_pi1(data_dir):
    from model import tiny_tokenizer  # Qwen2.5-Math's chat template on a byte-level tokenizer

    prompt = prepare.chat_prompt(tiny_tokenizer(), prepare.load_examples("pi1", data_dir)[0]["problem"])
    assert len(PI1_CHAT) == 560
    assert prompt == PI1_CHAT


def test_pi1_simplified(data_dir, tmp_path):
    """pi1' (Table 18) resolves like pi1: by name, in a comma list, in --show and in training (rlvr.py)."""
    pi1s = {"name": "pi1s", "index": 1209, "problem": "Calculate $\\sqrt[3]{2048}$", "answer": "12.8"}
    assert prepare.load_examples("pi1s", tmp_path / "no-prepared-data") == [pi1s]  # needs no prepared data
    assert [e["name"] for e in prepare.load_examples("pi1,pi1s", data_dir)] == ["pi1", "pi1s"]
    result = run_cli("--show", "pi1s", "--data-dir", tmp_path / "nowhere")
    assert result.returncode == 0 and json.loads(result.stdout) == pi1s
    from model import tiny_tokenizer
    assert prepare.chat_prompt(tiny_tokenizer(), pi1s["problem"]).endswith(
        "<|im_start|>user\nCalculate $\\sqrt[3]{2048}$ Let's think step by step and output the final answer within "
        "\\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    import rlvr
    examples = rlvr.training_examples(rlvr.parse_config(["--example", "pi1s", "--data-dir", str(tmp_path)]))
    assert examples == [pi1s]
    relabelled = rlvr.training_examples(rlvr.parse_config(["--example", "pi1s", "--label", "12.7"]))
    assert relabelled == [dict(pi1s, answer="12.7")]  # the exact value, one flag away


# ---------------------------------------------------------------------------------------------------
# Label experiments
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["12.7", "4", "9292725"])  # paper Table 5 rows 11-13
def test_override_label(data_dir, label):
    examples = prepare.load_examples("pi1,pi13", data_dir)
    changed = prepare.override_label(examples, "pi1", label)
    assert [e["answer"] for e in changed] == [label, "\\frac{4}{3}"]
    assert [e["answer"] for e in examples] == ["12.8", "\\frac{4}{3}"]  # inputs untouched
    with pytest.raises(ValueError, match="no example named 'pi2'"):
        prepare.override_label(examples, "pi2", label)


def _shift_ok(delta):
    """delta is an integer d with 1 <= |d| <= 10: "add or subtract numbers within 10" (App. C.2.4)."""
    return delta == delta.to_integral_value() and 1 <= abs(delta) <= 10


def _check_wrong_label(old, new, labels):
    """The rule of perturb_labels for one changed label, checked from the two strings (parsed here, not by
    prepare): returns the kind. Numbers: new = ±(old ± d); fractions: numerator and denominator each ± d."""
    kind, value = prepare.label_kind(old)
    if kind == "number":
        x = Decimal(new)
        assert _shift_ok(x - value) or _shift_ok(-x - value), (old, new)
        assert x != value
    elif kind == "fraction":
        sign, numerator, denominator, command = value
        pattern = r"(-?)\\([dt]?frac)\{(\d+)\}\{(\d+)\}" if command else r"(-?)()(\d+)/(\d+)"
        m = re.fullmatch(pattern, new)
        assert m and (m.group(2) or None) == command, (old, new)
        top = (-1 if m.group(1) else 1) * int(m.group(3)) * sign  # the new numerator before the sign moved out
        assert _shift_ok(Decimal(top - numerator)) and _shift_ok(Decimal(int(m.group(4)) - denominator)), (old, new)
        assert Fraction(sign * top, int(m.group(4))) != Fraction(sign * numerator, denominator)
    elif kind == "expression":  # exactly one number differs, by d, and stays >= 0; the text around it is unchanged
        split = lambda t: re.split(r"(\d+(?:\.\d+)?)", t)  # noqa: E731
        a, b = split(old), split(new)
        assert len(a) == len(b) and a[0::2] == b[0::2], (old, new)
        changed = [(Decimal(x), Decimal(y)) for x, y in zip(a[1::2], b[1::2]) if x != y]
        assert len(changed) == 1 and _shift_ok(changed[0][1] - changed[0][0]) and changed[0][1] >= 0, (old, new)
    else:
        assert new in labels and new.strip(), (old, new)  # another example's label
    assert not reward.is_equiv(old, new), (old, new)  # the grader gives the true answer no reward
    return kind


def test_perturb_labels_paper_procedure(data_dir):
    """App. C.2.4 on the real DSR-sub: exactly round(0.6 * 1209) = 725 labels change, each by the paper's rule for
    its kind, none keeps its value, and the same seed gives the same labels."""
    examples = prepare.load_examples("dsr_sub", data_dir)
    before = [dict(e) for e in examples]
    labels = [e["answer"] for e in examples]
    kinds = [prepare.label_kind(label)[0] for label in labels]
    assert {k: kinds.count(k) for k in set(kinds)} == {"number": 730, "fraction": 216, "expression": 255, "other": 8}
    perturbed = prepare.perturb_labels(examples, 0.6, seed=0)
    changed = [i for i in range(len(examples)) if perturbed[i]["answer"] != labels[i]]
    assert len(changed) == 725
    changed_kinds = [_check_wrong_label(labels[i], perturbed[i]["answer"], labels) for i in changed]
    assert {k: changed_kinds.count(k) for k in set(changed_kinds)} == {"number": 440, "fraction": 124,
                                                                      "expression": 156, "other": 5}
    keys = lambda rows: [(e["name"], e["index"], e["problem"]) for e in rows]  # noqa: E731
    assert keys(perturbed) == keys(examples)
    assert examples == before  # inputs untouched
    assert prepare.perturb_labels(examples, 0.6, seed=0) == perturbed  # same seed, same labels
    assert prepare.perturb_labels(examples, 0.6, seed=1) != perturbed
    assert labels[265] == "" and perturbed[265]["answer"] == "\\frac{3}{2}"  # row 265's empty label: another's
    for fraction, expected in [(0.9, 1088), (0.0, 0), (1.0, 1209)]:  # round(fraction * 1209)
        out = prepare.perturb_labels(examples, fraction, seed=0)
        assert sum(a["answer"] != b["answer"] for a, b in zip(examples, out)) == expected
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        prepare.perturb_labels(examples, 1.5, seed=0)


@pytest.mark.parametrize("label, kind, value", [
    ("12.8", "number", Decimal("12.8")), ("-8", "number", Decimal("-8")), ("$12$", "number", Decimal("12")),
    ("154,320,000", "number", Decimal("154320000")), ("\\$23{,}000", "expression", None),
    ("\\frac{4}{3}", "fraction", (1, 4, 3, "frac")), ("-\\frac{2023}{2024}", "fraction", (-1, 2023, 2024, "frac")),
    ("-\\tfrac32", "fraction", (-1, 3, 2, "tfrac")), ("\\frac1{72}", "fraction", (1, 1, 72, "frac")),
    ("\\dfrac {13}{128}", "fraction", (1, 13, 128, "dfrac")), ("$\\frac{40}{9}$", "fraction", (1, 40, 9, "frac")),
    ("280/83", "fraction", (1, 280, 83, None)), ("\\frac{1}{0}", "expression", None),
    ("\\frac{3\\sqrt{2}}{2}", "expression", None), ("(16,17)", "expression", None), ("1,2", "expression", None),
    ("\\pi", "other", None), ("\\text{odd}", "other", None), ("", "other", None),
])
def test_label_kind(label, kind, value):
    assert prepare.label_kind(label) == (kind, value)


def test_perturb_labels_small():
    # Every kind on a hand-made set; a fixed seed gives fixed labels, each following its rule.
    labels = ["5", "0", "\\frac{1}{2}", "2\\sqrt{3}", "\\pi", "-1/3"]
    examples = [{"name": f"e{i}", "index": i, "problem": f"p{i}", "answer": a} for i, a in enumerate(labels)]
    for seed in range(30):
        out = prepare.perturb_labels(examples, 1.0, seed)
        for old, row in zip(labels, out):
            _check_wrong_label(old, row["answer"], labels)
    assert [e["answer"] for e in prepare.perturb_labels(examples, 1.0, 0)] == \
        [e["answer"] for e in prepare.perturb_labels(examples, 1.0, 0)]
    same = [{"name": f"e{i}", "index": i, "problem": "p", "answer": "\\pi"} for i in range(3)]
    with pytest.raises(ValueError, match=r"cannot perturb the label '\\\\pi' of example e0"):
        prepare.perturb_labels(same, 1.0, seed=0)  # no other label to take


# ---------------------------------------------------------------------------------------------------
# Historical-variance ranking
# ---------------------------------------------------------------------------------------------------

def test_rank_history_release(data_dir):
    ranked = prepare.rank_history(json.loads((data_dir / "acc_step_500.json").read_text()))
    assert len(ranked) == 1209
    # paper_run.md §10: population std of each example's accuracies
    assert ranked[0] == (124, pytest.approx(0.406756, abs=1e-6))
    assert ranked[1] == (267, pytest.approx(0.396074, abs=1e-6))
    assert ranked[12] == (682, pytest.approx(0.272608, abs=1e-6))
    assert ranked[1208] == (789, 0.0)  # last of the 104 zero-variance examples: ties keep file order
    assert sum(score == 0.0 for _, score in ranked) == 104


def test_rank_history_own_format():
    # rlvr.py's accuracy_history.json: {str(dsr_index): [accuracy each time trained on]}
    history = {"5": [0.0, 1.0, 0.0, 1.0], "3": [0.5, 0.5], "9": [], "1": [1, 0], "2": [0.25] * 3, "7": [], "4": [0.75]}
    ranked = prepare.rank_history(history)
    assert [index for index, _ in ranked] == [5, 1, 3, 2, 4, 9, 7]  # ties keep order; empty lists last
    assert [score for _, score in ranked[:5]] == [0.5, 0.5, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("history, message", [
    ([[0.5]], "must be a JSON object"),
    ({"abc": [0.5]}, "'abc' is not a DSR-sub index"),
    ({"07": [0.5]}, "'07' is not a DSR-sub index"),
    ({"3": 0.5}, r"\['3'\] must be a list"),
    ({"3": [0.5, 1.5]}, r"\['3'\]\[1\] = 1.5 is not an accuracy"),
    ({"3": [True]}, r"\['3'\]\[0\] = True is not an accuracy"),
])
def test_rank_history_errors(history, message):
    for method in prepare.SELECTION_METHODS:
        with pytest.raises(ValueError, match=message):
            prepare.rank_history(history, method)
    with pytest.raises(ValueError, match="unknown selection method 'variance'; valid: std, lim, random"):
        prepare.rank_history({"1": [0.5]}, "variance")


def test_lim_by_hand():
    # K = 2 (the shortest non-empty history); epoch means a = (0.5, 0.5) over the three non-empty lists;
    # denominator (1 - 0.5)^2 + (1 - 0.5)^2 = 0.5. LIM_0 = 1 - (0.25 + 0) / 0.5 = 0.5, LIM_1 = 1 - 0.5 / 0.5 = 0,
    # LIM_2 = 1 - (0 + 0.25) / 0.5 = 0.5 (its third epoch is past K); the empty list ranks last.
    history = {"0": [0.0, 0.5], "1": [1.0, 1.0], "2": [0.5, 0.0, 1.0], "3": []}
    ranked = prepare.rank_history(history, "lim")
    assert [index for index, _ in ranked] == [0, 2, 1, 3]  # the tie 0 / 2 keeps file order
    assert [score for _, score in ranked[:3]] == [0.5, 0.5, 0.0] and math.isnan(ranked[3][1])
    with pytest.raises(ValueError, match="LIM is undefined: every accuracy in the first 2 epochs is 1"):
        prepare.rank_history({"0": [1.0, 1.0], "1": [1, 1, 0]}, "lim")


# The release's lim() (data/data_selection.py:10-42 at 21ed529) run on acc_step_500.json: its first 12 entries.
RELEASE_LIM_TOP = [(416, 0.940891524701513), (964, 0.9394939308419621), (569, 0.9388014521484415),
                   (317, 0.9370475097641225), (369, 0.9368225805534534), (256, 0.9365605843567564),
                   (430, 0.9359759368953168), (139, 0.934254006908022), (883, 0.9328185036309425),
                   (572, 0.9311041555271533), (337, 0.928788311331912), (334, 0.928119420720409)]


def test_lim_release_order(data_dir):
    history = json.loads((data_dir / "acc_step_500.json").read_text())
    ranked = prepare.rank_history(history, "lim")
    assert ranked[:12] == RELEASE_LIM_TOP  # the release's floats exactly, in its order
    # LIMR's formula again, independently (numpy, arrays), for every example
    accs = np.array([v[:44] for v in history.values()])  # 44 = the shortest history in the file
    assert min(len(v) for v in history.values()) == 44
    means = accs.mean(axis=0)
    lim = 1 - ((accs - means) ** 2).sum(axis=1) / ((1 - means) ** 2).sum()
    expected = dict(zip(map(int, history), lim))
    assert all(abs(score - expected[index]) < 1e-12 for index, score in ranked)
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    keys = [int(k) for k in history]
    for (a, sa), (b, sb) in zip(ranked, ranked[1:]):
        assert sa != sb or keys.index(a) < keys.index(b)  # ties keep the file's order, as the release's sort
    assert sum(score == ranked[-1][1] for score in scores) == 8 and ranked[-1][1] == 0.0  # always right: LIM 0


def test_random_selection_is_seeded():
    history = {"5": [0.0, 1.0], "3": [], "9": [0.5]}
    draws = random.Random(7)
    expected = sorted(zip([5, 3, 9], [draws.random() for _ in range(3)]), key=lambda item: -item[1])
    assert prepare.rank_history(history, "random", seed=7) == expected  # one draw per example, in file order
    assert prepare.rank_history(history, "random", seed=7) == prepare.rank_history(history, "random", seed=7)
    assert prepare.rank_history(history, "random", seed=8) != prepare.rank_history(history, "random", seed=7)


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------

def test_cli_show(data_dir):
    result = run_cli("--show", "pi1,pi13", "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["name"], r["index"], r["answer"]) for r in rows] == [("pi1", 124, "12.8"), ("pi13", 682, "\\frac{4}{3}")]
    assert rows[0]["problem"] == PAPER_EXAMPLES["pi1"][1]


def test_cli_rank_history(data_dir, tmp_path):
    result = run_cli("--rank-history", data_dir / "acc_step_500.json", "--top", 2)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["rank\tindex\tstd\tepochs", "1\t124\t0.406756\t53", "2\t267\t0.396074\t51"]
    own = tmp_path / "accuracy_history.json"
    own.write_text(json.dumps({"8": [0.125, 0.875], "2": [0.5, 0.5], "6": [0.0, 1.0]}))
    result = run_cli("--rank-history", own, "--top", 5)
    assert result.stdout.splitlines()[1:] == ["1\t6\t0.500000\t2", "2\t8\t0.375000\t2", "3\t2\t0.000000\t2"]


def test_cli_rank_history_methods(data_dir):
    path = data_dir / "acc_step_500.json"
    out = {"lim": run_cli("--rank-history", path, "--method", "lim", "--top", 3),
           "random": run_cli("--rank-history", path, "--method", "random", "--seed", 0, "--top", 3)}
    assert out["lim"].stdout.splitlines() == ["rank\tindex\tlim\tepochs", "1\t416\t0.940892\t50",
                                              "2\t964\t0.939494\t55", "3\t569\t0.938801\t56"]
    ranked = prepare.rank_history(json.loads(path.read_text()), "random", seed=0)
    history = json.loads(path.read_text())
    assert out["random"].stdout.splitlines() == ["rank\tindex\trandom\tepochs"] + [
        f"{r}\t{i}\t{score:.6f}\t{len(history[str(i)])}" for r, (i, score) in enumerate(ranked[:3], start=1)]
    result = run_cli("--show", "pi1", "--method", "lim", "--data-dir", data_dir)
    assert result.returncode == 2 and "--method and --seed go with --rank-history" in result.stderr


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ["--source", "--out", "--show", "--data-dir", "--rank-history", "--top", "--method", "--seed", "--arc",
                 "--arc-source"]:
        assert flag in result.stdout


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["pi0", "pi1210", "p1", "dsr", "pi1,", "pi1,foo"])
def test_unknown_name(data_dir, spec):
    with pytest.raises(ValueError, match=r"valid names are pi1 \.\.\. pi1209.*dsr_sub.*comma list"):
        prepare.load_examples(spec, data_dir)


def test_malformed_rows(tmp_path):
    good = {"index": 0, "problem": "1+1?", "answer": "2"}
    cases = {  # line 2 is broken in each
        "'answer' is missing": {"index": 1, "problem": "2+2?"},
        "'problem' is missing": {"index": 1, "answer": "4"},
        "'problem' is empty": {"index": 1, "problem": "  ", "answer": "4"},
        "'index' is missing or not a int": {"index": "1", "problem": "2+2?", "answer": "4"},
        "not valid JSON": None,
    }
    for message, row in cases.items():
        line = "{not json" if row is None else json.dumps(row)
        (tmp_path / "dsr_sub.jsonl").write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(ValueError, match=f"dsr_sub.jsonl line 2: .*{message}"):
            prepare.load_examples("dsr_sub", tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "aime24.jsonl").write_text(json.dumps({"idx": 0, "question": "q", "answer": ""}) + "\n")
    with pytest.raises(ValueError, match=r"aime24.jsonl line 1: field 'answer' is empty"):
        prepare.load_benchmark("aime24", tmp_path)


def test_missing_prepared_data(tmp_path):
    hint = "python data/prepare.py --source ../shared/data"
    with pytest.raises(FileNotFoundError, match=f"dsr_sub.jsonl not found: .*{hint}"):
        prepare.load_examples("pi1", tmp_path)
    (tmp_path / "dsr_sub.jsonl").write_text(json.dumps({"index": 0, "problem": "p", "answer": "a"}) + "\n")
    with pytest.raises(FileNotFoundError, match=f"acc_step_500.json not found: .*{hint}"):
        prepare.load_examples("pi1", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"math500.jsonl not found: .*{hint}"):
        prepare.load_benchmark("math500", tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark 'gsm8k'"):
        prepare.load_benchmark("gsm8k", tmp_path)
    with pytest.raises(FileNotFoundError, match=f"fewshot_qwen4.jsonl not found: .*{hint}"):
        prepare.load_demos("qwen4", tmp_path)
    arc_hint = r"arc_c.jsonl not found: ARC is a separate step: .*--arc .*--arc-source"
    with pytest.raises(FileNotFoundError, match=arc_hint):
        prepare.load_benchmark("arc_c", tmp_path)
    result = run_cli("--show", "pi1", "--data-dir", tmp_path / "nowhere")
    assert result.returncode == 1 and hint in result.stderr


def test_source_hash_mismatch(tmp_path, shared_dir):
    source = tmp_path / "source"
    shutil.copytree(shared_dir, source)
    target = source / "eval" / "aime25" / "test.jsonl"
    target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(ValueError, match=r"aime25/test.jsonl: git blob SHA-1 \w+ does not match a5f37a44"):
        prepare.prepare(source, tmp_path / "out")
    (source / "one_shot_rlvr" / "pi2_r128.parquet").unlink()
    result = run_cli("--source", source, "--out", tmp_path / "out")
    assert result.returncode == 1 and "pi2_r128.parquet not found" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written when a source file is bad


def test_download_path(tmp_path, monkeypatch, data_dir, shared_dir):
    # No internet here: serve the pinned release URLs from the local copy, to check the URLs and that the
    # download path writes exactly what --source writes.
    by_url = {prepare.RELEASE_URL + release_path: rel for rel, (release_path, _) in prepare.SOURCE_FILES.items()}
    assert prepare.RELEASE_URL == ("https://raw.githubusercontent.com/ypwang61/One-Shot-RLVR/"
                                   "21ed529ec90002597c92aee957af1dd8166bb66c/")

    class Response(io.BytesIO):
        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(prepare.urllib.request, "urlopen", lambda url, timeout: Response((shared_dir / by_url[url]).read_bytes()))
    prepare.prepare(None, tmp_path)
    for rel in ["dsr_sub.jsonl", "acc_step_500.json", "fewshot_qwen4.jsonl", "fewshot_pi1.jsonl"] + \
            [f"eval/{name}.jsonl" for name in prepare.BENCHMARK_SIZES]:
        assert (tmp_path / rel).read_bytes() == (data_dir / rel).read_bytes()


def test_release_cross_check(shared_dir):
    files = {rel: (shared_dir / rel).read_bytes() for rel in prepare.SOURCE_FILES}
    dsr_rows = prepare.parquet_rows(files["one_shot_rlvr/dsr_sub.parquet"], "dsr_sub")
    history = json.loads(files["one_shot_rlvr/acc_step_500.json"])
    prepare.check_release_one_shot(files, dsr_rows, history)  # the release as is: passes
    files["one_shot_rlvr/pi2_r128.parquet"] = files["one_shot_rlvr/pi1_r128.parquet"]
    with pytest.raises(ValueError, match=r"pi2_r128.parquet: DSR-sub indices \[124\]"):
        prepare.check_release_one_shot(files, dsr_rows, history)


def test_pyarrow_only_where_needed(monkeypatch):
    code = ("import sys; sys.path.insert(0, 'data'); import prepare; "
            "assert 'pyarrow' not in sys.modules and 'torch' not in sys.modules, 'imported at module level'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install pyarrow.*only data/prepare.py needs it"):
        prepare.parquet_rows(b"", "dsr_sub.parquet")


def test_git_blob_sha1():
    assert prepare.git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # `git hash-object /dev/null`
    assert prepare.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


# ---------------------------------------------------------------------------------------------------
# Your own examples: --example FILE.jsonl
# ---------------------------------------------------------------------------------------------------

def test_own_examples_file(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"problem": "What is 2 + 3?", "answer": "5"}) + "\n\n"  # a blank line is skipped
                    + json.dumps({"question": "Half of 9?", "label": 4.5}) + "\n"
                    + json.dumps({"prompt": "Solve 2x = 1.", "ground_truth": "\\frac{1}{2}", "source": "me"}) + "\n")
    examples = prepare.load_examples(str(path), tmp_path / "no-prepared-data")  # needs no prepared data
    assert examples == [{"name": "mine.jsonl[0]", "index": 0, "problem": "What is 2 + 3?", "answer": "5"},
                        {"name": "mine.jsonl[1]", "index": 1, "problem": "Half of 9?", "answer": "4.5"},
                        {"name": "mine.jsonl[2]", "index": 2, "problem": "Solve 2x = 1.", "answer": "\\frac{1}{2}"}]
    assert [e["index"] for e in prepare.repeat_to_batch(examples, 6)] == [0, 0, 1, 1, 2, 2]  # the paper's way


BAD_EXAMPLE_LINES = [  # (line 2 of the file, what the error must say after "FILE line 2: ")
    ("{oops", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"answer": "4"}),
     "field problem/question/prompt: need exactly one field holding the problem text; it has none"),
    (json.dumps({"problem": "2+2?"}),
     "field answer/label/ground_truth: need exactly one field holding the label; it has none"),
    (json.dumps({"problem": "2+2?", "question": "3+3?", "answer": "4"}),
     "field problem/question/prompt: .* it has 'problem' and 'question'"),
    (json.dumps({"problem": "  ", "answer": "4"}), "field 'problem' must be a non-empty string"),
    (json.dumps({"problem": "2+2?", "answer": ""}), "field 'answer' must be a non-empty string or number"),
    (json.dumps({"problem": "2+2?", "label": True}), "field 'label' must be a non-empty string or number"),
    (json.dumps({"question": ["a chat"], "answer": "4"}), "field 'question' must be a non-empty string"),
]


@pytest.mark.parametrize("line, message", BAD_EXAMPLE_LINES)
def test_own_examples_errors_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} line 2: ") + message):
        prepare.load_examples(str(path))


def test_own_examples_empty_missing_or_in_a_list(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n \n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: no examples (the file is empty")):
        prepare.load_examples(str(path))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: file not found")):
        prepare.load_examples(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="unknown example 'mine.jsonl' in 'pi1,mine.jsonl'.*FILE.jsonl, on its own"):
        prepare.load_examples("pi1,mine.jsonl")


def test_rlvr_checks_the_example_before_building_anything(tmp_path):
    """rlvr.py --engine vllm with a model folder that does not exist: the error must be the example's (file, line,
    field), so nothing was loaded, and no run folder is created. An unknown name fails the same way."""
    sys.path.insert(0, str(REPO))
    import rlvr
    from model import UserError
    with pytest.raises(UserError, match="--example pi0: unknown example 'pi0'"):
        rlvr.training_examples(rlvr.parse_config(["--example", "pi0"]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "2+2?", "answer": "4"}) + "\n" + json.dumps({"problem": "3+3?"}) + "\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "rlvr.py", "--engine", "vllm", "--model", str(tmp_path / "no-model"),
                           "--example", str(bad), "--out", str(tmp_path / "run")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().endswith(f"--example {bad}: {bad} line 2: field answer/label/ground_truth: need "
                                        "exactly one field holding the label; it has none"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
    assert time.perf_counter() - start < 60  # imports only (~10 s); vLLM and the model would take far longer


# ---------------------------------------------------------------------------------------------------
# Few-shot demos: eval.py --fewshot qwen4 | qwen1 | pi1 | FILE.jsonl (Table 16)
# ---------------------------------------------------------------------------------------------------

def test_demos_from_the_release(data_dir, shared_dir):
    qwen4 = prepare.load_demos("qwen4", data_dir)
    assert [d["question"][:40] for d in qwen4] == [
        "Kevin Kangaroo begins hopping on a numbe", "What is the area of the region defined b",
        "If $x^2+y^2=1$, what is the largest poss", "If $f(x)=\\frac{ax+b}{cx+d}, abcd\\not=0$ "]
    assert qwen4[0]["response"].startswith("Let's think step by step\nKevin hops $1/3$")
    assert qwen4[3]["response"].endswith("and therefore $-d=a$ and $a+d=\\boxed{0}$.\nThe answer is 0")
    assert prepare.load_demos("qwen1", data_dir) == qwen4[:1]
    [pi1] = prepare.load_demos("pi1", data_dir)
    assert pi1["question"] == PAPER_EXAMPLES["pi1"][1] + prepare.PROMPT_SUFFIX
    assert pi1["response"].startswith("We start by writing the mathematical relationship for the pressure \\( P \\):")
    assert pi1["response"].endswith("Thus, the wind velocity is \\( \\boxed{12.8} \\) miles per hour.")
    # Parsed with ast, never executed: a file that would fail on import still parses, and a non-literal fails
    source = (shared_dir / "qwen25_eval" / "examples.py").read_text()
    poisoned = "raise SystemExit('examples.py was executed')\n" + source
    assert prepare.qwen_demos(poisoned.encode(), "x.py", PAPER_EXAMPLES["pi1"][1]) == {"qwen4": qwen4, "pi1": [pi1]}
    with pytest.raises(ValueError, match=r"x.py line \d+: examples\['math'\] is not a literal"):
        prepare.qwen_demos(source.replace('examples["math"] = [', 'examples["math"] = LIST + [', 1).encode(), "x.py",
                           PAPER_EXAMPLES["pi1"][1])
    with pytest.raises(ValueError, match=r"x.py: examples\['math500'\]\[0\] is not pi_1's problem"):
        prepare.qwen_demos(source.encode(), "x.py", "another problem")
    with pytest.raises(ValueError, match="unknown few-shot demos 'qwen8': valid are qwen4, qwen1, pi1 or your own"):
        prepare.load_demos("qwen8", data_dir)


def test_own_demos_file(tmp_path):
    path = tmp_path / "demos.jsonl"
    rows = [{"question": "What is 2 + 3?", "response": "2 + 3 = 5. The answer is \\boxed{5}."}, {},  # {}: a blank line
            {"problem": "Half of 9?", "solution": "  9 / 2 = 4.5\n", "answer": "4.5"},
            {"prompt": "1+1?", "completion": "2"}, {"question": "q", "output": "o"}]
    path.write_text("".join((json.dumps(row) if row else "") + "\n" for row in rows))
    assert prepare.load_demos(str(path), tmp_path / "no-prepared-data") == [
        {"question": "What is 2 + 3?", "response": "2 + 3 = 5. The answer is \\boxed{5}."},
        {"question": "Half of 9?", "response": "  9 / 2 = 4.5\n"},  # kept verbatim; "answer" is not a response field
        {"question": "1+1?", "response": "2"}, {"question": "q", "response": "o"}]


BAD_DEMO_LINES = [  # (line 2 of the file, what the error must say after "FILE line 2: ")
    ("{oops", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"response": "r"}),
     "field question/problem/prompt: need exactly one field holding the question; it has none"),
    (json.dumps({"question": "q", "answer": "4"}),
     "field response/solution/completion/output: need exactly one field holding the response; it has none"),
    (json.dumps({"question": "q", "response": "r", "solution": "s"}),
     "field response/solution/completion/output: .* it has 'response' and 'solution'"),
    (json.dumps({"question": " ", "response": "r"}), "field 'question' must be a non-empty string"),
    (json.dumps({"question": "q", "response": 5}), "field 'response' must be a non-empty string"),
]


@pytest.mark.parametrize("line, message", BAD_DEMO_LINES)
def test_own_demos_errors_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "demos.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "response": "2"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} line 2: ") + message):
        prepare.load_demos(str(path))


def test_own_demos_empty_or_missing(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'empty.jsonl'}: no demos (the file is empty")):
        prepare.load_demos(str(tmp_path / "empty.jsonl"))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: file not found")):
        prepare.load_demos(str(tmp_path / "nope.jsonl"))


# ---------------------------------------------------------------------------------------------------
# ARC-Easy / ARC-Challenge: a parquet fixture in the AI2 layout
# ---------------------------------------------------------------------------------------------------

ARC_FIXTURE = {  # subset -> test rows in the dataset's fields; letters and digit labels, 3 to 5 choices
    "ARC-Easy": [
        {"id": "Mercury_7001", "question": "Which of these is a gas at room temperature? ",
         "choices": {"text": ["ice", " steam ", "rock"], "label": ["A", "B", "C"]}, "answerKey": "B"},
        {"id": "NYSEDREGENTS_2", "question": "How many legs does an insect have?",
         "choices": {"text": ["2", "4", "6", "8"], "label": ["1", "2", "3", "4"]}, "answerKey": "3"},
        {"id": "MCAS_2000_8_3", "question": "Which planet is largest?",
         "choices": {"text": ["Mercury", "Venus", "Earth", "Mars", "Jupiter"], "label": ["A", "B", "C", "D", "E"]},
         "answerKey": "E"}],
    "ARC-Challenge": [
        {"id": "Mercury_SC_4", "question": "Which force pulls objects toward Earth?",
         "choices": {"text": ["friction", "gravity", "magnetism", "tension"], "label": ["A", "B", "C", "D"]},
         "answerKey": "B"},
        {"id": "NYSEDREGENTS_5", "question": "What is H2O?",
         "choices": {"text": ["salt", "sugar", "air", "water"], "label": ["1", "2", "3", "4"]}, "answerKey": "4"}],
}


def write_arc_fixture(root, fixture=ARC_FIXTURE):
    """The AI2 ARC layout under `root`: <subset>/test-00000-of-00001.parquet (plus a train split that must be
    ignored). Returns {subset: test file bytes}."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    written = {}
    for subset, rows in fixture.items():
        (root / subset).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / subset / "test-00000-of-00001.parquet")
        pq.write_table(pa.Table.from_pylist(rows[:1]), root / subset / "train-00000-of-00001.parquet")
        written[subset] = (root / subset / "test-00000-of-00001.parquet").read_bytes()
    return written


def test_arc_from_source(tmp_path):
    write_arc_fixture(tmp_path / "arc")
    result = run_cli("--arc-source", tmp_path / "arc", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "arc_e: 3 questions; the AI2 test split has 2376" in result.stderr  # a local copy: a warning only
    easy = prepare.load_benchmark("arc_e", tmp_path / "out")
    assert easy[0] == {"idx": 0, "question": "Which of these is a gas at room temperature?\nAnswer Choices: (A) ice "
                                             "(B) steam (C) rock", "answer": "B", "choices": ["ice", "steam", "rock"],
                       "labels": ["A", "B", "C"], "answer_label": "B", "id": "Mercury_7001"}
    assert easy[1]["question"] == "How many legs does an insect have?\nAnswer Choices: (A) 2 (B) 4 (C) 6 (D) 8"
    assert (easy[1]["answer"], easy[1]["answer_label"], easy[1]["labels"]) == ("C", "3", ["1", "2", "3", "4"])
    assert easy[2]["question"].endswith("(D) Mars (E) Jupiter") and easy[2]["answer"] == "E"
    challenge = prepare.load_benchmark("arc_c", tmp_path / "out")
    assert [(e["idx"], e["answer"], e["id"]) for e in challenge] == [(0, "B", "Mercury_SC_4"),
                                                                    (1, "D", "NYSEDREGENTS_5")]
    assert not (tmp_path / "out" / "dsr_sub.jsonl").exists()  # only ARC: the release's prepare() is separate


def _bad(field_changes):
    row = json.loads(json.dumps(ARC_FIXTURE["ARC-Challenge"][1]))
    for key, value in field_changes.items():
        if key.startswith("choices."):
            row["choices"][key[8:]] = value
        elif value is None:
            del row[key]
        else:
            row[key] = value
    return row


@pytest.mark.parametrize("row, message", [
    (_bad({"answerKey": None}), "field 'answerKey' is missing or not a non-empty string"),
    (_bad({"answerKey": "E"}), r"field 'answerKey' 'E' is not one of the labels \['1', '2', '3', '4'\]"),
    (_bad({"question": "  "}), "field 'question' is missing or not a non-empty string"),
    (_bad({"choices.label": ["1", "2", "3"]}), "field 'choices': need 2-5 texts with as many distinct labels"),
    (_bad({"choices.text": list("abcdef"), "choices.label": list("123456")}), "field 'choices': need 2-5"),
    (_bad({"choices.label": ["1", "1", "2", "3"]}), "field 'choices': need 2-5 texts with as many distinct labels"),
    (_bad({"choices.text": ["salt", "", "air", "water"]}), "field 'choices.text' is missing or not a list of"),
])
def test_arc_malformed_rows(tmp_path, row, message):
    fixture = {"ARC-Easy": ARC_FIXTURE["ARC-Easy"], "ARC-Challenge": [ARC_FIXTURE["ARC-Challenge"][0], row]}
    write_arc_fixture(tmp_path / "arc", fixture)
    path = tmp_path / "arc" / "ARC-Challenge" / "test-00000-of-00001.parquet"
    with pytest.raises(ValueError, match=re.escape(f"{path} row 1: ") + message):
        prepare.prepare_arc(tmp_path / "arc", tmp_path / "out")
    assert not (tmp_path / "out" / "eval" / "arc_e.jsonl").exists()  # nothing written when a split is bad
    with pytest.raises(FileNotFoundError, match="ARC-Easy/test-\\*.parquet not found: --arc-source must hold"):
        prepare.prepare_arc(tmp_path / "elsewhere", tmp_path / "out")


def test_arc_download_path(tmp_path, monkeypatch):
    # No internet here: serve the pinned hub URLs from the fixture, with the fixture's hashes and counts pinned in
    # their place, to check the URLs, the hash check, and that a download writes what --arc-source writes.
    assert prepare.ARC_URL == ("https://huggingface.co/datasets/allenai/ai2_arc/resolve/"
                               "16644173ab25fa007c815e3204a8b59a4034ba1b/")
    assert {k: (v[0], v[1], v[3]) for k, v in prepare.ARC_FILES.items()} == {
        "arc_e": ("ARC-Easy", "test-00000-of-00001.parquet", 2376),
        "arc_c": ("ARC-Challenge", "test-00000-of-00001.parquet", 1172)}
    files = write_arc_fixture(tmp_path / "arc")
    by_url = {prepare.ARC_URL + f"{subset}/test-00000-of-00001.parquet": data for subset, data in files.items()}

    class Response(io.BytesIO):
        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(prepare.urllib.request, "urlopen", lambda url, timeout: Response(by_url[url]))
    with pytest.raises(ValueError, match=r"ARC-Easy/test-00000-of-00001.parquet: sha256 \w+ does not match 4160597d"):
        prepare.prepare_arc(None, tmp_path / "down")
    pinned = {name: (subset, filename, hashlib.sha256(files[subset]).hexdigest(), len(ARC_FIXTURE[subset]))
              for name, (subset, filename, _, _) in prepare.ARC_FILES.items()}
    monkeypatch.setattr(prepare, "ARC_FILES", pinned)
    prepare.prepare_arc(None, tmp_path / "down")
    prepare.prepare_arc(tmp_path / "arc", tmp_path / "local")
    for name in ("arc_e", "arc_c"):
        assert (tmp_path / "down" / "eval" / f"{name}.jsonl").read_bytes() == \
            (tmp_path / "local" / "eval" / f"{name}.jsonl").read_bytes()
    monkeypatch.setitem(prepare.ARC_FILES, "arc_c", pinned["arc_c"][:3] + (1172,))
    with pytest.raises(ValueError, match=r"arc_c: 2 questions; the AI2 test split has 1172"):  # a download: an error
        prepare.prepare_arc(None, tmp_path / "down2")


# ---------------------------------------------------------------------------------------------------
# run.sh and its table in the docs
# ---------------------------------------------------------------------------------------------------

EXPERIMENTS_DOC = REPO / "docs" / "experiments.md"  # the table of every run.sh row (the README may take it over)
RUN_ROW = re.compile(r"^(\$[RE] .*?)\s+# (Table \d+[^:]*): (.+)$")


def run_sh_rows():
    """(command, paper table and row, the paper's number) of every experiment line of run.sh, in order. A line
    that runs something ($R or $E) without that comment is an error."""
    rows = []
    for lineno, line in enumerate((REPO / "run.sh").read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("$"):
            match = RUN_ROW.match(line)
            assert match, f"run.sh line {lineno}: an experiment line must end in '# Table N, <row>: <number>'"
            rows.append(match.groups())
    return rows


def doc_rows():
    rows = []
    for line in EXPERIMENTS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| Table "):
            ref, command, number = [cell.strip() for cell in line.strip("|").split(" | ")]
            assert command.startswith("`") and command.endswith("`"), line
            rows.append((command[1:-1], ref, number))
    return rows


def test_run_sh_rows_match_the_docs_table():
    rows = run_sh_rows()
    assert len(rows) > 50  # every table of the paper (67 lines when this was written)
    assert doc_rows() == rows  # same experiments, commands and numbers, in the same order
    outs = [re.search(r"--out (\S+)", command).group(1) for command, _, _ in rows]
    assert len(outs) == len(set(outs)), "two experiments write the same folder"
    refs = {ref: number for _, ref, number in rows}
    # the rows, checked against the paper's text (docs/experiments.md, "Where each number comes from")
    assert refs["Table 4, PPO {π1}"] == "72.4 / 33.8" and refs["Table 4, PPO DSR-sub"] == "72.8 / 35.4"
    assert refs["Table 17, GRPO DSR-sub 60%"] == "71.8 / 34.6" and refs["Table 17, GRPO DSR-sub 90%"] == "67.8 / 31.2"
    assert refs["Table 17, PPO DSR-sub 60%"] == "71.6 / 34.6" and refs["Table 17, PPO DSR-sub 90%"] == "68.2 / 32.9"
    assert refs["Table 6, +Entropy Loss, 20 steps (= Table 5 row 10)"] == "63.4 / 25.0"
    assert refs["Table 18, simplified {π1′}"] == "65.4 / 30.0"
    assert refs["Table 16, Qwen2.5-Math-1.5B {π1} in-context"] == "59.0 / 25.5"
    assert refs["Table 16, Qwen2.5-Math-1.5B Qwen official 4 examples"] == "49.8 / 18.0"
    assert refs["Table 15, step 20"] == "MATH500 53.8" and refs["Table 15, step 60"] == "MATH500 69.8"


def test_run_sh_syntax():
    result = subprocess.run(["bash", "-n", "run.sh"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
