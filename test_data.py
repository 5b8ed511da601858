"""Tests for data/prepare.py (CPU, a few seconds): prepares the release from ../shared/data into a temporary
folder once, then checks the counts, the paper's examples pi1/pi2/pi13/pi1209, the duplication, the exact
pi1 chat prompt, the label experiments, historical-variance ranking, the CLI and the error messages, and a
researcher's own examples (--example FILE.jsonl): their field names and every bad input's message.

The release's files and the prepared data come from conftest.py's `shared_dir` and `data_dir` fixtures.
"""
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent

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


def test_perturb_labels(data_dir):
    examples = prepare.load_examples("dsr_sub", data_dir)
    before = [dict(e) for e in examples]
    labels = {e["answer"] for e in examples}
    for fraction, expected in [(0.6, 725), (0.9, 1088), (0.0, 0), (1.0, 1209)]:  # round(fraction * 1209)
        perturbed = prepare.perturb_labels(examples, fraction, seed=0)
        changed = [i for i, (a, b) in enumerate(zip(examples, perturbed)) if a["answer"] != b["answer"]]
        assert len(changed) == expected
        assert all(perturbed[i]["answer"] in labels for i in changed)  # another example's real label
        assert [(e["name"], e["index"], e["problem"]) for e in perturbed] == \
            [(e["name"], e["index"], e["problem"]) for e in examples]
    assert examples == before
    assert prepare.perturb_labels(examples, 0.6, seed=1) == prepare.perturb_labels(examples, 0.6, seed=1)
    assert prepare.perturb_labels(examples, 0.6, seed=1) != prepare.perturb_labels(examples, 0.6, seed=2)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        prepare.perturb_labels(examples, 1.5, seed=0)


def test_perturb_labels_small():
    examples = [{"name": f"e{i}", "index": i, "problem": f"p{i}", "answer": a} for i, a in enumerate("aabc")]
    for seed in range(20):
        out = prepare.perturb_labels(examples, 0.5, seed)
        wrong = [i for i in range(4) if out[i]["answer"] != examples[i]["answer"]]
        assert len(wrong) == 2  # never "perturbed" to the same label
    with pytest.raises(ValueError, match="share one label"):
        prepare.perturb_labels(examples[:2], 1.0, seed=0)


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
    with pytest.raises(ValueError, match=message):
        prepare.rank_history(history)


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


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ["--source", "--out", "--show", "--data-dir", "--rank-history", "--top"]:
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
    for rel in ["dsr_sub.jsonl", "acc_step_500.json"] + [f"eval/{name}.jsonl" for name in prepare.BENCHMARK_SIZES]:
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
    with pytest.raises(SystemExit, match="--example pi0: unknown example 'pi0'"):
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
