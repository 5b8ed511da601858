"""Tests for eval.py (CPU, about half a minute): the exact prompt strings, the per-benchmark protocol and avg@k,
grading of saved responses (function and --score-only), the repetition and self-reflection detectors,
`evaluate` on a scripted engine, an end-to-end CLI run of a tiny random model on all six benchmarks, the same
run data-parallel over 2 ranks (torchrun, gloo), and the gold-answer report.

The release's files and the prepared data come from conftest.py's `shared_dir` and `data_dir` fixtures.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import eval as ev
import reward
from rollout import Sample

REPO = Path(__file__).resolve().parent
SIX = ("math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25")


def run_cli(*args, torchrun=False, timeout=300):
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(prefix + [*map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)


# ---------------------------------------------------------------------------------------------------
# Prompts and protocol
# ---------------------------------------------------------------------------------------------------

QUESTION = "  Let $f(x)=\\frac{1}{x}$ and $S=\\{1,2\\}$. Find $f(2)^{2}$.\n"
Q = QUESTION.strip()

# Copied from ../shared/spec/eval.md §1.1-§1.3 (`\n` written as a newline escape), {input} replaced by Q.
EXPECTED_PROMPTS = {
    "qwen25-math-cot": "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}."
                       "<|im_end|>\n<|im_start|>user\n" + Q + "<|im_end|>\n<|im_start|>assistant\n",
    "llama": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
             "Today Date: 17 Apr 2025\n\n <|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" + Q
             + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "deepseek-distill": "<｜begin▁of▁sentence｜><｜User｜>" + Q + "<｜Assistant｜><think>\n",
}


@pytest.mark.parametrize("template", sorted(EXPECTED_PROMPTS))
def test_prompt_strings(template):
    assert ev.build_prompt(QUESTION, template) == EXPECTED_PROMPTS[template]
    assert "\\{1,2\\}" in ev.build_prompt(QUESTION, template)  # the question's braces are not format fields


def test_prompt_details():
    assert "\uff5c" in EXPECTED_PROMPTS["deepseek-distill"] and "|" not in EXPECTED_PROMPTS["deepseek-distill"]
    assert "Today Date: 17 Apr 2025\n\n <|eot_id|>" in ev.build_prompt("q", "llama")  # the single space
    # Stripped of spaces only (utils.py:281): the newline that ends each template stays.
    assert ev.build_prompt(" \n q \n ", "qwen25-math-cot").endswith("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="unknown template"):
        ev.build_prompt("q", "qwen-chat")


def test_protocol():
    assert {b: ev.protocol(b) for b in SIX} == {
        "math500": (1, 0.0), "minerva_math": (1, 0.0), "olympiadbench": (1, 0.0),
        "aime24": (8, 0.6), "aime25": (8, 0.6), "amc23": (8, 0.6)}
    assert ev.protocol("aime24", temperature=0) == (1, 0.0)  # greedy draws one sample
    assert ev.protocol("math500", samples=16, temperature=0.6) == (16, 0.6)
    with pytest.raises(ValueError, match="greedy needs samples = 1"):
        ev.protocol("math500", samples=8)
    assert ev.protocol("arc_e") == ev.protocol("arc_c") == (1, 0.0)  # ours: greedy, as the paper's greedy sets
    with pytest.raises(ValueError, match="unknown benchmark"):
        ev.protocol("gsm8k")


def test_average_and_table():
    paper = [0.767, 0.208, 0.513, 0.233, 0.354, 0.197]  # the release README's R1-Distill row -> Avg 37.9
    results = {b: {"paper_accuracy": acc, "accuracy": acc - 0.1, "n_problems": 10, "n_samples": 10,
                   "temperature": 0.0} for b, acc in zip(SIX, paper)}
    avg, label = ev.average(results, "paper_accuracy")
    assert label == "Avg" and avg == pytest.approx(0.37867, abs=1e-5)  # the README's row -> 37.9 (eval.md §2.4)
    assert ev.average(results)[0] == pytest.approx(0.27867, abs=1e-5)  # our grader's column by default
    text = ev.table(results)
    assert "| benchmark | problems | samples | T | acc % (paper's grader) | acc % (our grader) |" in text
    assert "| **Avg** |  |  |  | 37.9 | 27.9 |" in text and "| MATH500 | 10 | 1 | 0.0 | 76.7 | 66.7 | - | - |" in text
    assert text.endswith(ev.GRADER_NOTE) and "beside the paper's tables" in ev.GRADER_NOTE
    results["arc_c"] = {"paper_accuracy": 0.9, "accuracy": 0.9, "n_problems": 10, "n_samples": 10}
    assert ev.average(results, "paper_accuracy")[1] == "Avg"  # ARC is not part of the math average
    assert "| ARC-C | 10 | 1 |" in ev.table(results)
    del results["aime25"]
    assert ev.average(results)[1] == "mean of 5"


def test_pass_at_k_closed_form():
    """The unbiased estimator 1 - C(n-c, k)/C(n, k) (Chen et al. 2021) on hand-made rows."""
    assert ev.pass_at_k(8, 8, 1) == ev.pass_at_k(8, 8, 8) == 1.0  # all correct
    assert ev.pass_at_k(8, 0, 1) == ev.pass_at_k(8, 0, 8) == 0.0  # none correct
    assert ev.pass_at_k(8, 1, 8) == 1.0 and ev.pass_at_k(8, 3, 1) == pytest.approx(3 / 8)  # k = n; k = 1 is c/n
    assert ev.pass_at_k(8, 2, 2) == pytest.approx(1 - 15 / 28)  # 1 - C(6,2)/C(8,2)
    assert ev.pass_at_k(4, 1, 3) == pytest.approx(1 - 1 / 4)  # 1 - C(3,3)/C(4,3)
    with pytest.raises(ValueError):
        ev.pass_at_k(4, 5, 1)
    rows = [{"problem": p, "correct": float(i < c)} for p, c in enumerate([8, 4, 1, 0]) for i in range(8)]
    got = ev.pass_at_ks(rows)
    assert list(got) == ["1", "2", "4", "8"]
    assert got["1"] == pytest.approx(13 / 32) and got["8"] == pytest.approx(3 / 4)
    assert got["2"] == pytest.approx((1 + (1 - 6 / 28) + (1 - 21 / 28) + 0) / 4)
    assert ev.pass_at_ks([{"problem": p, "correct": 1.0} for p in range(3) for _ in range(6)]) == {
        "1": 1.0, "2": 1.0, "4": 1.0, "6": 1.0}  # k = 1, 2, 4 and n = 6
    assert ev.pass_at_ks([{"problem": 0, "correct": 1.0}]) is None  # greedy: one sample, no pass@k


def test_choice_letter():
    """Our grader on multiple-choice answers (ARC): a box, "answer is", else the last line; capitals only."""
    assert ev.choice_letter("The answer is (B).") == "B" and ev.choice_letter("so \\boxed{C}") == "C"
    assert ev.choice_letter("\\boxed{\\text{(D) a lever}}") == "D" and ev.choice_letter("A dog.\nB") == "B"
    assert ev.choice_letter("I think a rock is right") is None  # the article "a" is not an answer
    assert ev.choice_letter("") is None


# ---------------------------------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------------------------------

def test_reflection_words():
    text = "Let me recheck. Rechecking gives 5; re-check: RETHINK it. I rethought and recalculated; recalculation ok."
    assert ev.count_reflection(text) == 7
    assert ev.count_reflection("prechecking, therethink, check again, recap, reconsider, verify") == 0


def test_repetition_detector():
    loop = "So the answer is 5. Wait, let me see. "  # 38 characters
    prose = "We expand the product and collect terms carefully, one power at a time. "
    assert ev.ends_in_repetition(prose + loop * 8, "length")
    assert not ev.ends_in_repetition(prose + loop * 8, "stop")  # only responses cut by the length limit
    assert ev.ends_in_repetition(prose + loop * 8 + loop[:11], "length")  # last copy cut mid-way
    assert not ev.ends_in_repetition(prose + loop * 4, "length")  # 152 repeating characters < 200
    paragraph = "".join(f"Step {k}: multiply both sides by {k + 1} and simplify. " for k in range(8))  # ~400 chars
    assert ev.ends_in_repetition(prose + paragraph * 3, "length")  # 3 copies of a long unit
    assert not ev.ends_in_repetition(prose + paragraph * 2, "length")  # 2 copies are not a loop
    assert ev.ends_in_repetition("x" + "0" * 250, "length") and not ev.ends_in_repetition("x" + "0" * 150, "length")
    counter = " ".join(str(k) for k in range(400))
    assert not ev.ends_in_repetition(counter, "length")  # documented limit: copies must be identical
    assert not ev.ends_in_repetition("", "length")


# ---------------------------------------------------------------------------------------------------
# Grading saved responses: the function and --score-only
# ---------------------------------------------------------------------------------------------------

SAVED = [
    {"benchmark": "math500", "response": "So $x = \\boxed{\\frac{1}{2}}$.", "gold": "0.5", "tokens": 10,
     "finish_reason": "stop"},
    {"benchmark": "math500", "response": "The answer is 0.5", "gold": "0.5", "tokens": 30,  # no box: 0
     "finish_reason": "length"},
    {"benchmark": "math500", "response": "\\boxed{3}. Let me recheck: it is \\boxed{4}", "gold": "4", "tokens": 20,
     "finish_reason": "stop", "paper_stop_response": "\\boxed{3}"},
    {"benchmark": "math500", "response": "Hmm. " + "I am stuck here. " * 20, "gold": "4", "tokens": 100,
     "finish_reason": "length"},
    {"benchmark": "amc23", "problem": 0, "response": "\\boxed{27}", "gold": "27"},
    {"benchmark": "amc23", "problem": 0, "response": "\\boxed{27.0}", "gold": "27"},
    {"benchmark": "amc23", "problem": 1, "response": "\\boxed{2700}", "gold": "27"},  # no percentage rescaling
    {"benchmark": "amc23", "problem": 1, "response": "", "gold": "27"},
]


def test_score_only(tmp_path):
    """Both graders on saved rows. The paper's grader reads "The answer is 0.5" (no box), grades the response cut at
    its stop list (row 3: `\\boxed{3}`, wrong) and rescales 2700 to 27 (its percentage rule); ours does none."""
    path = tmp_path / "saved.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SAVED))
    results = ev.score_files([path])
    assert results["math500"] == {
        "benchmark": "math500", "accuracy": 0.5, "paper_accuracy": 0.5, "pass_at_k": None, "paper_pass_at_k": None,
        "n_problems": 4, "n_samples": 4, "boxed": 0.5, "mean_tokens": 40.0, "truncated": 0.5, "reflection": 0.25,
        "repetition": 0.25, "paper_stop": None, "paper_stop_accuracy": None}
    amc = results["amc23"]
    assert (amc["accuracy"], amc["paper_accuracy"], amc["n_problems"]) == (0.5, 0.75, 2)
    assert amc["pass_at_k"] == {"1": 0.5, "2": 0.5} and amc["paper_pass_at_k"] == {"1": 0.75, "2": 1.0}
    assert amc["mean_tokens"] is None and amc["truncated"] is None
    rows = ev.grade_rows([dict(r) for r in SAVED])
    assert [r["paper_correct"] for r in rows] == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert [r["correct"] for r in rows] == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert [r["paper_answer"] for r in rows[:3]] == ["\\frac{1}{2}", "0.5", "3"] and rows[7]["paper_answer"] is None

    result = run_cli("eval.py", "--score-only", path)
    assert result.returncode == 0, result.stderr
    assert "| MATH500 | 4 | 1 | - | 50.0 | 50.0 | - | - | 50.0 | 40 | 50.0 | 25.0 | 25.0 | - | - |" in result.stdout
    assert "| AMC23 | 2 | 2 | - | 75.0 | 50.0 | 100.0 | 50.0 | 75.0 | - | - | 0.0 | - | - | - |" in result.stdout
    assert "| **mean of 2** |  |  |  | 62.5 | 50.0 |" in result.stdout and ev.GRADER_NOTE in result.stdout


def test_score_only_bad_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"response": "\\boxed{1}"}) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        ev.score_files([path])
    path.write_text(json.dumps({"response": "\\boxed{1}", "gold": "1"}) + "\n")  # no benchmark, file name "bad"
    with pytest.raises(ValueError, match="line 1: unknown benchmark 'bad'"):
        ev.score_files([path])


# ---------------------------------------------------------------------------------------------------
# evaluate() on a scripted engine: exact avg@8 arithmetic, the protocol it asks for, the paper-stop figures
# ---------------------------------------------------------------------------------------------------

class ScriptedEngine:
    """Answers problem p's sample i with script(p, i) -> (text, finish_reason); records each generate() call."""

    def __init__(self, tokenizer, questions, script):
        self.tokenizer, self.questions, self.script, self.calls = tokenizer, questions, script, []

    def generate(self, prompt_token_ids, n, temperature, top_p=1.0, max_tokens=3072, seed=0):
        self.calls.append(dict(prompts=prompt_token_ids, n=n, temperature=temperature, top_p=top_p,
                               max_tokens=max_tokens, seed=seed))
        out = []
        for ids in prompt_token_ids:
            question = self.tokenizer.decode(ids).split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
            p = self.questions.index(question)
            group = []
            for i in range(n):
                text, finish = self.script(p, i)
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                group.append(Sample(tokens + ([self.tokenizer.eos_token_id] if finish == "stop" else []), finish))
            out.append(group)
        return out


@pytest.fixture(scope="module")
def tokenizer():
    from model import tiny_tokenizer
    return tiny_tokenizer()


def test_evaluate_avg_at_8(data_dir, tokenizer, tmp_path):
    items = ev.prepare.load_benchmark("amc23", data_dir)[:3]
    golds = [item["answer"] for item in items]
    right = [8, 4, 1]  # correct samples of problems 0, 1, 2 -> avg@8 = 13/24

    def script(p, i):
        if p == 2 and i == 7:  # right before <|im_end|>, wrong after it: only the paper's stop list grades it right
            return f"\\boxed{{{golds[p]}}}<|im_end|>\n<|im_start|>user\nAgain: \\boxed{{0}}", "stop"
        return (f"Recheck: \\boxed{{{golds[p]}}}" if i < right[p] else "\\boxed{-1}"), "stop" if i % 2 else "length"

    engine = ScriptedEngine(tokenizer, [item["question"] for item in items], script)
    result = ev.evaluate(engine, tokenizer, "amc23", data_dir=data_dir, limit=3, max_tokens=64, seed=5,
                         out_dir=tmp_path)
    assert result["accuracy"] == pytest.approx(13 / 24)
    assert result["paper_accuracy"] == pytest.approx(14 / 24)  # the paper's grader sees the response cut at <|im_end|>
    assert result["pass_at_k"] == pytest.approx({"1": 13 / 24, "2": (1 + 22 / 28 + 7 / 28) / 3, "4": (
        1 + (1 - 1 / 70) + (1 - 35 / 70)) / 3, "8": 1.0})  # 1 - C(n-c, k)/C(n, k), per problem, averaged
    assert result["paper_pass_at_k"]["2"] == pytest.approx((1 + 22 / 28 + 13 / 28) / 3)
    assert (result["n_problems"], result["n_samples"], result["samples"], result["temperature"]) == (3, 24, 8, 0.6)
    assert result["paper_stop"] == pytest.approx(1 / 24) and result["paper_stop_accuracy"] == pytest.approx(14 / 24)
    assert result["reflection"] == pytest.approx(13 / 24) and result["boxed"] == 1.0
    assert result["truncated"] == 0.5 and result["repetition"] == 0.0
    [call] = engine.calls
    assert (call["n"], call["temperature"], call["top_p"], call["max_tokens"], call["seed"]) == (8, 0.6, 1.0, 64, 5)
    expected_ids = tokenizer(ev.build_prompt(items[0]["question"]), add_special_tokens=False)["input_ids"]
    assert call["prompts"][0] == expected_ids and tokenizer.decode(expected_ids) == ev.build_prompt(items[0]["question"])
    rows = [json.loads(line) for line in (tmp_path / "amc23.jsonl").read_text().splitlines()]
    assert rows == result["rows"]
    assert [(r["problem"], r["sample"]) for r in rows] == [(p, i) for p in range(3) for i in range(8)]
    last = rows[-1]
    assert last["response"].endswith("Again: \\boxed{0}") and "<|im_end|>" not in last["response"]  # specials skipped
    assert (last["answer"], last["correct"], last["paper_stop_response"], last["paper_stop_correct"]) == (
        "0", 0.0, f"\\boxed{{{golds[2]}}}", 1.0)

    greedy = ScriptedEngine(tokenizer, [i["question"] for i in ev.prepare.load_benchmark("math500", data_dir)[:2]],
                            lambda p, i: ("", "length"))
    assert ev.evaluate(greedy, tokenizer, "math500", data_dir=data_dir, limit=2)["accuracy"] == 0.0
    assert (greedy.calls[0]["n"], greedy.calls[0]["temperature"], greedy.calls[0]["max_tokens"]) == (1, 0.0, 3072)


def test_fewshot_demos_come_in_order_before_the_question(data_dir, tokenizer):
    """--fewshot qwen4 (Table 16): the prompt read back from the engine holds the 4 demos, in order, then the question,
    built as the Qwen evaluation's construct_prompt builds it for qwen25-math-cot (one user turn)."""
    demos = ev.prepare.load_demos("qwen4", data_dir)
    item = ev.prepare.load_benchmark("math500", data_dir)[0]
    engine = ScriptedEngine(tokenizer, [], None)
    engine.generate = lambda prompts, **kw: engine.calls.append(prompts) or [[Sample([], "length")] for _ in prompts]
    result = ev.evaluate(engine, tokenizer, "math500", data_dir=data_dir, limit=1, demos=demos)
    prompt = tokenizer.decode(engine.calls[0][0])
    turn = "\n\n".join(d["question"] + "\n" + d["response"] for d in demos) + "\n\n" + item["question"]
    assert prompt == ev.build_prompt(turn) == ev.TEMPLATES["qwen25-math-cot"].format(input=turn)
    where = [prompt.index(d["question"]) for d in demos] + [prompt.rindex(item["question"])]
    assert where == sorted(where) and prompt.count("<|im_start|>user") == 1
    assert result["n_samples"] == 1
    llama = ev.build_prompt("Q?", "llama", demos=demos[:2])  # other templates: one templated turn per demo
    assert llama.count("<|start_header_id|>user") == 3 and llama.index(demos[1]["response"]) < llama.index("Q?")


# ---------------------------------------------------------------------------------------------------
# End to end: a tiny random model through the CLI, 1 rank and 2 ranks
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from model import tiny_model, tiny_tokenizer
    path = tmp_path_factory.mktemp("tiny_model")
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cli_run(data_dir, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_out")
    result = run_cli("eval.py", "--model", tiny_model_dir, "--engine", "torch", "--limit", 3, "--max-tokens", 16,
                     "--data-dir", data_dir, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def read_rows(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_cli_end_to_end(cli_run):
    out, stdout = cli_run
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["benchmarks"]) == list(SIX) and summary["avg_label"] == "Avg"
    for name in SIX:
        rows = read_rows(out / f"{name}.jsonl")
        greedy = name in ("math500", "minerva_math", "olympiadbench")
        assert len(rows) == (3 if greedy else 24)
        assert {r["problem"] for r in rows} == {0, 1, 2} and all(r["tokens"] <= 16 for r in rows)
        assert all(set(r) >= {"question", "response", "answer", "gold", "correct", "tokens", "finish_reason", "sample"}
                   for r in rows)
        figures = summary["benchmarks"][name]
        assert (figures["n_samples"], figures["samples"], figures["temperature"]) == (
            len(rows), 1 if greedy else 8, 0.0 if greedy else 0.6)
        assert figures["accuracy"] == sum(r["correct"] for r in rows) / len(rows)
        assert figures["paper_accuracy"] == sum(r["paper_correct"] for r in rows) / len(rows)
        assert (figures["pass_at_k"] is None) == greedy and (greedy or list(figures["paper_pass_at_k"]) == [
            "1", "2", "4", "8"])
        assert f"| {ev.NAMES[name]} | 3 | {1 if greedy else 8} |" in stdout
    assert (out / "table.md").read_text().strip() in stdout and "| **Avg** |" in stdout


def test_cli_data_parallel(cli_run, data_dir, tiny_model_dir, tmp_path):
    """torchrun, 2 ranks over gloo: the greedy rows equal the 1-rank run's; every rank gets the same result."""
    script = tmp_path / "dp.py"
    script.write_text(
        "import json, sys, torch.distributed as dist\n"
        "import eval as ev\n"
        "results = ev.run(ev.parse_args(sys.argv[2:]))\n"
        "json.dump(results, open(f'{sys.argv[1]}/rank{dist.get_rank()}.json', 'w'))\n"
        "dist.destroy_process_group()\n")
    out = tmp_path / "out"
    result = run_cli(script, tmp_path, "--model", tiny_model_dir, "--engine", "torch", "--benchmarks",
                     "math500,amc23", "--limit", 3, "--max-tokens", 16, "--data-dir", data_dir, "--out", out,
                     torchrun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0 == rank1 and rank0["math500"]["n_samples"] == 3 and rank0["amc23"]["n_samples"] == 24
    one_rank_out, _ = cli_run
    assert read_rows(out / "math500.jsonl") == read_rows(one_rank_out / "math500.jsonl")  # greedy: identical
    two, one = read_rows(out / "amc23.jsonl"), read_rows(one_rank_out / "amc23.jsonl")
    key = lambda r: (r["problem"], r["sample"], r["question"], r["gold"])  # noqa: E731
    assert [key(r) for r in two] == [key(r) for r in one]  # sampled: same problems, other draws


def test_cli_arc_fewshot_file_and_the_base_row_check(data_dir, tiny_model_dir, tmp_path):
    """One CLI run of a tiny model saved under a base model's name: ARC prepared from an AI2-layout fixture
    (`prepare.py --arc-source`), your own few-shot demos file, MATH500; both graders in every row, the paper's base
    row printed beside ours and written to results.json."""
    from test_data import write_arc_fixture
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    write_arc_fixture(tmp_path / "arc")
    assert run_cli("data/prepare.py", "--arc-source", tmp_path / "arc", "--out", data).returncode == 0
    model = tmp_path / "Qwen2.5-Math-1.5B"  # named like the paper's base model
    shutil.copytree(tiny_model_dir, model)
    demos = tmp_path / "demos.jsonl"
    demos.write_text(json.dumps({"question": "What is 1+1?", "response": "So it is \\boxed{2}."}) + "\n")
    out = tmp_path / "out"
    result = run_cli("eval.py", "--model", model, "--engine", "torch", "--benchmarks", "math500,arc_e,arc_c",
                     "--limit", 2, "--max-tokens", 8, "--data-dir", data, "--fewshot", demos, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["benchmarks"]) == ["math500", "arc_e", "arc_c"] and summary["config"]["fewshot"] == str(demos)
    assert summary["avg_label"] == "mean of 1"  # ARC is not part of the math average
    assert summary["paper_base_row"]["model"] == "qwen2.5-math-1.5b"
    assert summary["paper_base_row"]["rows"][0]["math500"] == 36.0 and summary["paper_base_row"]["rows"][0]["avg"] == 17.6
    assert "setup check: qwen2.5-math-1.5b is one of the paper's base models" in result.stdout
    assert "| MATH500 | 36.0 |" in result.stdout and "| Avg | 17.6 | - | - |" in result.stdout
    for name in ("arc_e", "arc_c"):
        rows = read_rows(out / f"{name}.jsonl")
        assert len(rows) == 2 and all({"paper_correct", "paper_answer", "correct", "answer"} <= set(r) for r in rows)
        assert rows[0]["question"].startswith(ev.prepare.load_benchmark(name, data)[0]["question"])
    assert "| ARC-E | 2 | 1 |" in result.stdout and "| ARC-C | 2 | 1 |" in result.stdout
    qwen4 = run_cli("eval.py", "--model", model, "--engine", "torch", "--benchmarks", "math500", "--limit", 1,
                    "--max-tokens", 4, "--data-dir", data, "--fewshot", "qwen4", "--out", tmp_path / "qwen4")
    assert qwen4.returncode == 0, qwen4.stderr[-3000:]
    assert json.loads((tmp_path / "qwen4" / "results.json").read_text())["config"]["fewshot"] == "qwen4"
    # not a base model: a trained checkpoint's folder name
    assert ev.base_model_name(tiny_model_dir) is None and ev.base_model_name("Qwen/Qwen2.5-Math-7B") == "qwen2.5-math-7b"


def test_arc_grading_both_graders():
    """A letter, a boxed letter, a digit-labelled item (lettered by position at preparation) and a wrong letter."""
    rows = [{"benchmark": "arc_e", "response": "The answer is (B).", "gold": "B"},
            {"benchmark": "arc_e", "response": "Steam is a gas, so \\boxed{B}", "gold": "B"},
            {"benchmark": "arc_e", "response": "Insects have 6 legs.\nThe answer is C", "gold": "C"},  # label "3"
            {"benchmark": "arc_c", "response": "The answer is (A).", "gold": "D"}]
    graded = ev.grade_rows(rows)
    assert [r["correct"] for r in graded] == [1.0, 1.0, 1.0, 0.0]
    assert [r["paper_correct"] for r in graded] == [1.0, 1.0, 1.0, 0.0]
    assert [r["answer"] for r in graded] == ["B", "B", "C", "A"]


def test_cli_errors():
    result = run_cli("eval.py", "--model", "m", "--benchmarks", "math500,arc_x")
    assert result.returncode == 1 and result.stderr.strip() == (
        "error: --benchmarks: unknown benchmark 'arc_x'; choose from " + ", ".join(ev.PROTOCOL))
    result = run_cli("eval.py")
    assert result.returncode == 1 and "--model is required" in result.stderr
    result = run_cli("eval.py", "--model", "m", "--benchmarks", "arc_e", "--data-dir", "/nonexistent")
    assert result.returncode == 1 and "ARC is a separate step: `python data/prepare.py --arc" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------------
# Gold report
# ---------------------------------------------------------------------------------------------------

def test_gold_report(data_dir):
    text, failures, verdicts = ev.gold_report(data_dir)
    assert failures == 0, text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:8]}
    assert rows["math500"] == ["500", "500/500", "499/500", "500", "500", "500/500"]  # paper: #383 is unsolvable
    assert rows["aime24"] == ["30", "30/30", "30/30", "30", "29", "29/29"]  # one AIME24 solution has no box
    assert rows["minerva_math"] == ["272", "272/272", "271/272", "272", "272", "272/272"]  # paper: #139 unsolvable
    assert rows["olympiadbench"] == ["675", "675/675", "675/675", "675", "0", "0/0"]  # solutions never box
    # The paper's pipeline cannot score these (eval.md §2.2, §7); ours grades them as a person would.
    ours = {(name, position, answer): verdict for name, position, answer, verdict, _, _ in verdicts}
    paper = {(name, position, answer): verdict for name, position, answer, _, verdict, _ in verdicts}
    assert ours[("math500", 383, "[-2,7]")] and not ours[("math500", 383, "(-2,7)")]
    assert ours[("math500", 97, "East")] and not ours[("math500", 97, "west")]
    assert ours[("math500", 257, "864")] and ours[("math500", 467, "15")]
    assert ours[("minerva_math", 139, "\\lambda_{\\text {red}} / \\sqrt{2}")]
    assert all(verdict == right for *_, verdict, _, right in verdicts)
    # ... and the paper's grader reproduces the release's verdicts on them, wrong ones included (eval.md §2.2, §7)
    assert not paper[("math500", 383, "[-2,7]")] and not paper[("math500", 383, "x \\in [-2,7]")]
    assert paper[("math500", 97, "west")] and not paper[("math500", 97, "East")]
    assert paper[("math500", 257, "864^2")] and not paper[("math500", 257, "864")]
    assert not paper[("minerva_math", 139, "\\lambda_{\\text {red}} / \\sqrt{2}")]
    assert paper[("olympiadbench", 19, "\\frac{3}{2}-1")] and not paper[("olympiadbench", 19, "\\frac{3m}{2}-1")]
    assert sum(theirs != right for *_, theirs, right in verdicts) == 14
    assert reward.grade("no box: east", "\\text{east}") == 0.0  # an unboxed response never scores (paper: #97 does)
    assert "summary: 0 gold failures, 0 wrong verdicts of ours and 14 of the paper's" in text
    # the CLI (`python eval.py --gold-report`, exit status 0 without failures) runs as a README command: test_readme.py
