"""data/prepare.py — the paper's data: DSR-sub, the one-shot examples pi_i, the six benchmarks, and the
historical-variance selection that picks pi_i (Wang et al. 2025, arXiv 2504.20571, §2 and App. C).

Owns everything the trainer and eval read from disk. The repository never holds the data; this script
writes it, from the paper's public release pinned at one commit (RELEASE_COMMIT) or from a local copy
of the same files, after checking every file's git blob hash against the release:

    python data/prepare.py --source ../shared/data   # local copy (layout: ../shared/data/README.md)
    python data/prepare.py                           # download from raw.githubusercontent.com
    python data/prepare.py --show pi1,pi13           # the resolved examples, one JSON line each
    python data/prepare.py --rank-history runs/x/accuracy_history.json --top 10

Outputs (in --out, default this folder; git-ignored):
    dsr_sub.jsonl        {"index", "problem", "answer"}: the 1209 DSR-sub rows in file order
    acc_step_500.json    {dsr_index: [training accuracy each epoch]}, the release's file unchanged
    eval/<name>.jsonl    {"idx", "question", "answer"[, "solution"]} for the six benchmarks

Importable: PROMPT_SUFFIX, chat_prompt, rank_history, load_examples, load_example_file, repeat_to_batch, override_label,
perturb_labels, load_benchmark (no torch). Only prepare() needs pyarrow (the release ships parquet).
"""
import argparse
import hashlib
import json
import math
import random
import re
import sys
import urllib.request
from pathlib import Path

import numpy as np

# Run as `python data/prepare.py`, the repo root is not on sys.path; it holds reward.py (one grader).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reward import extract_answer  # noqa: E402  (after the sys.path line above)

DATA_DIR = Path(__file__).resolve().parent

# The paper's code and data release (github.com/ypwang61/One-Shot-RLVR), pinned.
RELEASE_REPO = "ypwang61/One-Shot-RLVR"
RELEASE_COMMIT = "21ed529ec90002597c92aee957af1dd8166bb66c"
RELEASE_URL = f"https://raw.githubusercontent.com/{RELEASE_REPO}/{RELEASE_COMMIT}/"

# Each source file: path in a local copy (../shared/data layout) -> (path in the release, git blob
# SHA-1 at RELEASE_COMMIT, i.e. `git hash-object`; computed from the release's tree and ../shared/data).
SOURCE_FILES = {
    "one_shot_rlvr/dsr_sub.parquet":
        ("data/train/one_shot_rlvr/dsr_sub.parquet", "8199b69133f275ce4e54e33fe12379615e56cde6"),
    "one_shot_rlvr/pi1_r128.parquet":
        ("data/train/one_shot_rlvr/pi1_r128.parquet", "94e10d72fb6d4c9f01941b0e9cb3e83d6bb5fe69"),
    "one_shot_rlvr/pi2_r128.parquet":
        ("data/train/one_shot_rlvr/pi2_r128.parquet", "63a5a67b1f811d4da6ff23686c5c1e4221bd95e9"),
    "one_shot_rlvr/pi13_r128.parquet":
        ("data/train/one_shot_rlvr/pi13_r128.parquet", "ff4f913fe47a7b6d23ac66917215b8cd6e723943"),
    "one_shot_rlvr/pi1209_r128.parquet":
        ("data/train/one_shot_rlvr/pi1209_r128.parquet", "65155d5cab89ea2f75d0eefaf011e2946851682f"),
    "one_shot_rlvr/merge_pi1_pi13_r128.parquet":
        ("data/train/one_shot_rlvr/merge_pi1_pi13_r128.parquet", "9734b535dd723ed4bb250eb350868f186c7ea12b"),
    "one_shot_rlvr/merge_pi1_pi2_pi13_pi1209_r128.parquet":
        ("data/train/one_shot_rlvr/merge_pi1_pi2_pi13_pi1209_r128.parquet",
         "7bd484333b551b92864392d51bd605a0534812d0"),
    "one_shot_rlvr/acc_step_500.json":
        ("data/acc_step_500.json", "a84b01e4dbc78749bf75a98f314f21e0644f2274"),
    "eval/math500/test.jsonl":
        ("Qwen2.5-Eval/evaluation/data/math500/test.jsonl", "2376b9a194b46c0790e197c91b7249e5f88ac09b"),
    "eval/aime24/test.jsonl":
        ("Qwen2.5-Eval/evaluation/data/aime24/test.jsonl", "bb72e176e8d30c09cd67037e17cfc41e6ff48f70"),
    "eval/aime25/test.jsonl":
        ("Qwen2.5-Eval/evaluation/data/aime25/test.jsonl", "a5f37a44b1106c28ff4391262be1fda65783d120"),
    "eval/amc23/test.jsonl":
        ("Qwen2.5-Eval/evaluation/data/amc23/test.jsonl", "6894ad7c49a0b3a64210af32954f4d049d934ea0"),
    "eval/minerva_math/test.jsonl":
        ("Qwen2.5-Eval/evaluation/data/minerva_math/test.jsonl", "123c5cd351cac2b8ead5413bc084629d7ff651de"),
    "eval/olympiadbench/test.jsonl":
        ("Qwen2.5-Eval/evaluation/data/olympiadbench/test.jsonl", "ec36280b1de8f5bbee92da696c2ae84f5f6e6beb"),
}

# Appended to every DSR problem when the release built its data (data/deepscaler_dataset.py:43-44).
PROMPT_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."

DSR_SIZE = 1209  # rows of dsr_sub.parquet (paper §2: "DSR-sub", a random 1209-example DeepScaleR subset)
# Problems per benchmark in the release (eval.md §2.1).
BENCHMARK_SIZES = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva_math": 272,
                   "olympiadbench": 675}
# The eval loader's question field: the first of these keys a row has, then .strip() (eval.md §1.1).
QUESTION_KEYS = ("question", "problem", "Question", "input")
# A researcher's own examples (`--example FILE.jsonl`): the field names a user tries first, for the problem text
# and for its label. A row must have exactly one of each.
EXAMPLE_PROBLEM_KEYS = ("problem", "question", "prompt")
EXAMPLE_LABEL_KEYS = ("answer", "label", "ground_truth")

# The release's one-shot training files and the examples each holds, repeated to 128 rows
# (train_batch_size 128, paper_run.md §0-1); prepare() checks them against rank_history.
RELEASE_BATCH_SIZE = 128
RELEASE_ONE_SHOT = {
    "pi1_r128": "pi1", "pi2_r128": "pi2", "pi13_r128": "pi13", "pi1209_r128": "pi1209",
    "merge_pi1_pi13_r128": "pi1,pi13", "merge_pi1_pi2_pi13_pi1209_r128": "pi1,pi2,pi13,pi1209",
}


def _prepare_hint(data_dir):
    out = "" if Path(data_dir).resolve() == DATA_DIR else f" --out {data_dir}"
    return (f"prepare it with `python data/prepare.py --source ../shared/data{out}` (a local copy of the "
            f"release) or `python data/prepare.py{out}` (downloads it)")


# ---------------------------------------------------------------------------------------------------
# Source files: bytes from the release or a local copy, checked against the pinned blob hashes
# ---------------------------------------------------------------------------------------------------

def git_blob_sha1(data):
    """The id git gives a file's bytes (`git hash-object`): sha1 of b"blob <len>\\0" + data."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_source(source, rel):
    """One source file's bytes, from the local folder `source`, or downloaded when source is None."""
    release_path, sha1 = SOURCE_FILES[rel]
    if source is None:
        url = RELEASE_URL + release_path
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        where = url
    else:
        path = Path(source) / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --source must hold the release's files in the "
                                    f"layout of ../shared/data/README.md ({rel})")
        data = path.read_bytes()
        where = str(path)
    if git_blob_sha1(data) != sha1:
        raise ValueError(f"{where}: git blob SHA-1 {git_blob_sha1(data)} does not match {sha1}, the hash "
                         f"of {release_path} at {RELEASE_REPO}@{RELEASE_COMMIT}")
    return data


def parquet_rows(data, name):
    """A parquet file's rows as plain dicts. The only use of pyarrow in the project."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError("reading the release's parquet files needs pyarrow: `pip install pyarrow` "
                          "(only data/prepare.py needs it)") from e
    table = pq.read_table(pa.BufferReader(data))
    if table.num_rows == 0:
        raise ValueError(f"{name}: no rows")
    return table.to_pylist()


def dsr_examples(rows, name):
    """DSR-sub parquet rows -> {"index", "problem", "answer"}: the problem is the one user turn without
    PROMPT_SUFFIX, the answer reward_model.ground_truth, the index extra_info.index (= row position)."""
    examples = []
    for pos, row in enumerate(rows):
        turns = row["prompt"]
        if len(turns) != 1 or turns[0]["role"] != "user":
            raise ValueError(f"{name} row {pos}: prompt is not exactly one user turn")
        content = turns[0]["content"]
        if not content.endswith(PROMPT_SUFFIX):
            raise ValueError(f"{name} row {pos}: the user turn does not end with {PROMPT_SUFFIX!r}")
        if row["extra_info"]["index"] != pos:
            raise ValueError(f"{name} row {pos}: extra_info.index is {row['extra_info']['index']}, "
                             f"not the row position")
        examples.append({"index": pos, "problem": content[:-len(PROMPT_SUFFIX)],
                         "answer": row["reward_model"]["ground_truth"]})
    return examples


def benchmark_gold(name, row, where):
    """The gold answer string the paper's eval parses first (eval.md §2.1, parser.py:586-647)."""
    if name in ("math500", "minerva_math"):  # last \boxed{} of the reference solution
        gold = extract_answer(row["solution"])
        if gold is None:
            raise ValueError(f"{where}: no \\boxed{{}} in the solution")
        if name == "math500" and gold != row["answer"]:
            raise ValueError(f"{where}: last box of the solution {gold!r} != answer {row['answer']!r}")
        return gold
    if name in ("aime24", "aime25"):
        return str(row["answer"])  # kept as written: "025" stays "025", the grader normalises it
    if name == "amc23":  # a JSON float: 27.0 -> "27"; a non-integer keeps its exact shortest repr
        value = float(row["answer"])
        return str(int(value)) if value.is_integer() else repr(value)
    if name == "olympiadbench":  # one string per row, usually "$...$"
        return row["final_answer"][0].strip("$")
    raise ValueError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARK_SIZES)}")


def benchmark_examples(name, data):
    """A release test.jsonl -> {"idx", "question", "answer"[, "solution"]} sorted by idx, as the eval
    loader does (data_loader.py:91-97: idx = line number when the file has none)."""
    examples = []
    for pos, line in enumerate(data.decode("utf-8").splitlines()):
        row = json.loads(line)
        where = f"eval/{name}/test.jsonl line {pos + 1}"
        question = next((row[key] for key in QUESTION_KEYS if key in row), None)
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{where}: no question")
        example = {"idx": row.get("idx", pos), "question": question.strip(),
                   "answer": benchmark_gold(name, row, where)}
        if "solution" in row:  # olympiadbench has a list of solutions: joined by blank lines
            solution = row["solution"]
            example["solution"] = solution if isinstance(solution, str) else "\n\n".join(solution)
        examples.append(example)
    examples.sort(key=lambda example: example["idx"])
    if len(examples) != BENCHMARK_SIZES[name] or len({e["idx"] for e in examples}) != len(examples):
        raise ValueError(f"eval/{name}/test.jsonl: {len(examples)} rows with "
                         f"{len({e['idx'] for e in examples})} distinct idx, expected {BENCHMARK_SIZES[name]}")
    return examples


def check_release_one_shot(files, dsr_rows, history):
    """The release's pi*_r128 / merge_*_r128 files must be exactly our ranking's examples, duplicated as
    repeat_to_batch does: otherwise `--example pi1` would not mean the paper's pi_1."""
    ranked = [index for index, _ in rank_history(history)]
    for stem, spec in RELEASE_ONE_SHOT.items():
        rel = f"one_shot_rlvr/{stem}.parquet"
        chosen = [{"index": ranked[int(name[2:]) - 1]} for name in spec.split(",")]
        expected = [e["index"] for e in repeat_to_batch(chosen, RELEASE_BATCH_SIZE)]
        rows = parquet_rows(files[rel], rel)
        got = [row["extra_info"]["index"] for row in rows]
        if got != expected:
            raise ValueError(f"{rel}: DSR-sub indices {sorted(set(got))} (x{len(got)}) differ from the "
                             f"ranking's {spec} = {sorted(set(expected))} (x{len(expected)})")
        for pos, row in enumerate(rows):
            row.pop("source_file", None)  # the 4-example merge file records which file each row came from
            if row != dsr_rows[row["extra_info"]["index"]]:
                raise ValueError(f"{rel} row {pos}: differs from DSR-sub row {row['extra_info']['index']}")


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepare(source=None, out=DATA_DIR):
    """Read and verify every source file, cross-check the one-shot files, write the outputs to `out`."""
    files = {rel: read_source(source, rel) for rel in SOURCE_FILES}
    dsr_name = "one_shot_rlvr/dsr_sub.parquet"
    dsr_rows = parquet_rows(files[dsr_name], dsr_name)
    dsr = dsr_examples(dsr_rows, dsr_name)
    history = json.loads(files["one_shot_rlvr/acc_step_500.json"])
    if len(dsr) != DSR_SIZE or sorted(int(k) for k in history) != list(range(DSR_SIZE)):
        raise ValueError(f"expected {DSR_SIZE} DSR-sub rows and a history for each; got {len(dsr)} rows "
                         f"and {len(history)} histories")
    check_release_one_shot(files, dsr_rows, history)
    benchmarks = {name: benchmark_examples(name, files[f"eval/{name}/test.jsonl"]) for name in BENCHMARK_SIZES}

    out = Path(out)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "dsr_sub.jsonl", dsr)
    (out / "acc_step_500.json").write_bytes(files["one_shot_rlvr/acc_step_500.json"])
    for name, examples in benchmarks.items():
        write_jsonl(out / "eval" / f"{name}.jsonl", examples)

    origin = source if source is not None else f"{RELEASE_REPO}@{RELEASE_COMMIT}"
    print(f"verified {len(files)} files from {origin} (git blob SHA-1s of {RELEASE_COMMIT[:7]})")
    print(f"checked the release's one-shot files against the ranking: {', '.join(RELEASE_ONE_SHOT)}")
    print(f"wrote {out / 'dsr_sub.jsonl'} ({len(dsr)} rows) and {out / 'acc_step_500.json'}")
    empty = [e["index"] for e in dsr if not e["answer"].strip()]
    if empty:  # row 265 of the release: kept, as the paper trained on it (its reward can never be 1)
        print(f"note: DSR-sub rows {empty} have an empty label in the release; kept as released")
    for name, examples in benchmarks.items():
        print(f"wrote {out / 'eval' / (name + '.jsonl')} ({len(examples)} problems)")


# ---------------------------------------------------------------------------------------------------
# Reading prepared data
# ---------------------------------------------------------------------------------------------------

def _json_object(path, lineno, line, expected=""):
    """One jsonl line as a dict; bad JSON or a non-object is an error naming the file and the line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} line {lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise ValueError(f"{path} line {lineno}: not a JSON object{expected}")
    return row


def read_jsonl(path, fields, nonempty, data_dir):
    """Rows of a prepared jsonl file. `fields` maps each required field to its type; the `nonempty`
    ones must hold some text. Errors name the file, the line and the field; a missing file says how to
    prepare it (into `data_dir`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {_prepare_hint(data_dir)}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            row = _json_object(path, lineno, line)
            for field, kind in fields.items():
                value = row.get(field)
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise ValueError(f"{path} line {lineno}: field {field!r} is missing or not a "
                                     f"{kind.__name__} (got {value!r})")
                if field in nonempty and not value.strip():
                    raise ValueError(f"{path} line {lineno}: field {field!r} is empty")
            rows.append(row)
    return rows


def read_history(path):
    """An accuracy-history JSON file ({dsr_index: [accuracy, ...]}) as a dict, with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def rank_history(history):
    """Historical-variance selection (paper §2; data/data_selection.py:52-71 of the release).

    history: {str(dsr_index): [training accuracy each time the example was trained on, in order]}, the
    format of the release's acc_step_500.json and of the accuracy_history.json rlvr.py records.
    Score = population std (ddof 0, numpy's default, as the release) of each list: the square root of
    the paper's variance, so the same ranking. Sorted descending by a stable sort, so ties keep the
    dict's (file's) order; examples with an empty list rank last (score nan). pi_k is rank k-1.
    Returns [(dsr_index, score), ...], best first.
    """
    if not isinstance(history, dict):
        raise ValueError(f"accuracy history must be a JSON object {{dsr_index: [accuracy, ...]}}, "
                         f"got {type(history).__name__}")
    scored, seen = [], set()
    for key, accs in history.items():
        if not isinstance(key, str) or not re.fullmatch(r"0|[1-9]\d*", key):
            raise ValueError(f"accuracy history key {key!r} is not a DSR-sub index written as str(int)")
        if int(key) in seen:
            raise ValueError(f"accuracy history has DSR-sub index {int(key)} twice")
        seen.add(int(key))
        if not isinstance(accs, list):
            raise ValueError(f"accuracy history [{key!r}] must be a list of accuracies, got {type(accs).__name__}")
        for pos, acc in enumerate(accs):
            ok = isinstance(acc, (int, float)) and not isinstance(acc, bool) and 0.0 <= acc <= 1.0
            if not ok:
                raise ValueError(f"accuracy history [{key!r}][{pos}] = {acc!r} is not an accuracy in [0, 1]")
        scored.append((int(key), float(np.std(accs)) if accs else math.nan))
    return sorted(scored, key=lambda item: math.inf if math.isnan(item[1]) else -item[1])


def _read_dsr(data_dir):
    # An empty label is allowed: the release's DSR-sub row 265 has one, and the paper trained on it.
    rows = read_jsonl(Path(data_dir) / "dsr_sub.jsonl", {"index": int, "problem": str, "answer": str},
                      nonempty=("problem",), data_dir=data_dir)
    by_index = {}
    for lineno, row in enumerate(rows, start=1):
        if row["index"] in by_index:
            raise ValueError(f"{Path(data_dir) / 'dsr_sub.jsonl'} line {lineno}: index {row['index']} repeats")
        by_index[row["index"]] = row
    return rows, by_index


def _example_field(path, lineno, row, keys, what):
    present = [key for key in keys if key in row]
    if len(present) != 1:
        found = f"it has {' and '.join(map(repr, present))}" if present else "it has none"
        raise ValueError(f"{path} line {lineno}: field {'/'.join(keys)}: need exactly one field holding the "
                         f"{what}; {found}")
    value = row[present[0]]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and what == "label":
        value = str(value)  # {"answer": 12.8} means the label "12.8"
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{path} line {lineno}: field {present[0]!r} must be a non-empty "
                         f"{'string or number' if what == 'label' else 'string'} (got {value!r})")
    return value


def load_example_file(path):
    """A researcher's own examples: one JSON object per line with the problem text (field problem, question or
    prompt) and its label (answer, label or ground_truth; a string or a number). Blank lines are skipped.
    -> [{"name": "FILE[i]", "index": i, "problem", "answer"}], i = the row's 0-based position, which is also
    its key in the accuracy_history.json a run writes. Every error names the file, the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    examples = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = _json_object(path, lineno, line, f" with fields {'/'.join(EXAMPLE_PROBLEM_KEYS)} and "
                                                   f"{'/'.join(EXAMPLE_LABEL_KEYS)}")
            problem = _example_field(path, lineno, row, EXAMPLE_PROBLEM_KEYS, "problem text")
            answer = _example_field(path, lineno, row, EXAMPLE_LABEL_KEYS, "label")
            index = len(examples)
            examples.append({"name": f"{path.name}[{index}]", "index": index, "problem": problem, "answer": answer})
    if not examples:
        raise ValueError(f"{path}: no examples (the file is empty; one JSON object per line expected)")
    return examples


def load_examples(spec, data_dir=DATA_DIR):
    """Training examples by name -> [{"name", "index", "problem", "answer"}], in the order named.

    spec: "pi1" ... "pi1209" (rank k-1 of rank_history on acc_step_500.json, the paper's pi_k),
    "dsr_sub" (all 1209 DSR-sub rows in file order), or a comma list of these ("pi1,pi13"); or a path ending
    in .jsonl, on its own: your own problems and labels (load_example_file; no prepared data needed).
    """
    if spec.strip().endswith(".jsonl") and ("," not in spec or Path(spec.strip()).is_file()):
        return load_example_file(spec.strip())
    names = [name.strip() for name in spec.split(",")]
    valid = ("pi1 ... pi1209 (the paper's pi_k), dsr_sub (all of DSR-sub), or a comma list such as pi1,pi13; "
             "or a file of your own problems, FILE.jsonl, on its own")
    for name in names:
        if name != "dsr_sub" and not re.fullmatch(r"pi[1-9]\d*", name):
            raise ValueError(f"unknown example {name!r} in {spec!r}: valid names are {valid}")
    rows, by_index = _read_dsr(data_dir)
    ranked = []
    if any(name != "dsr_sub" for name in names):
        history_path = Path(data_dir) / "acc_step_500.json"
        if not history_path.is_file():
            raise FileNotFoundError(f"{history_path} not found: {_prepare_hint(data_dir)}")
        ranked = rank_history(read_history(history_path))
    examples = []
    for name in names:
        if name == "dsr_sub":
            picked = [(f"dsr_sub[{row['index']}]", row) for row in rows]
        else:
            k = int(name[2:])
            if k > len(ranked):
                raise ValueError(f"unknown example {name!r}: only pi1 ... pi{len(ranked)} exist; valid names are {valid}")
            if ranked[k - 1][0] not in by_index:
                raise ValueError(f"{name} is DSR-sub index {ranked[k - 1][0]}, which dsr_sub.jsonl lacks: "
                                 f"{_prepare_hint(data_dir)}")
            picked = [(name, by_index[ranked[k - 1][0]])]
        examples += [{"name": label, "index": row["index"], "problem": row["problem"], "answer": row["answer"]}
                     for label, row in picked]
    return examples


def load_benchmark(name, data_dir=DATA_DIR):
    """A prepared benchmark -> [{"idx", "question", "answer"[, "solution"]}] (eval.md §2.1 golds)."""
    if name not in BENCHMARK_SIZES:
        raise ValueError(f"unknown benchmark {name!r}: valid names are {', '.join(BENCHMARK_SIZES)}")
    return read_jsonl(Path(data_dir) / "eval" / f"{name}.jsonl", {"idx": int, "question": str, "answer": str},
                      nonempty=("question", "answer"), data_dir=data_dir)


# ---------------------------------------------------------------------------------------------------
# Batches, prompts, and the label experiments
# ---------------------------------------------------------------------------------------------------

def repeat_to_batch(examples, batch_size):
    """The paper's duplication: k examples fill a batch of batch_size rows, each repeated batch_size/k
    times in the order given (pi1 -> 128 rows; pi1,pi13 -> 64 of pi1 then 64 of pi13, as the release's
    merge_pi1_pi13_r128.parquet). More examples than batch_size (the full set) -> returned unchanged,
    for the trainer to sample batches from."""
    k = len(examples)
    if k == 0 or batch_size <= 0:
        raise ValueError(f"need at least one example and a positive batch size (got {k} and {batch_size})")
    if k > batch_size:
        return list(examples)
    if batch_size % k:
        raise ValueError(f"{k} examples cannot fill a batch of {batch_size} equally: the paper repeats each "
                         f"example batch_size/k times, so use a batch size that is a multiple of {k}")
    return [dict(example) for example in examples for _ in range(batch_size // k)]


def chat_prompt(tokenizer, problem):
    """The training prompt: the tokenizer's chat template on one user turn, problem + PROMPT_SUFFIX, with
    the generation prompt (paper_run.md §1; the release's rl_dataset.py:140). Qwen2.5-Math's template
    adds its default system turn, giving the 560-character pi1 prompt of paper_run.md §1."""
    chat = [{"role": "user", "content": problem + PROMPT_SUFFIX}]
    return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def override_label(examples, name, label):
    """New example dicts with the label of example `name` replaced (paper Table 5 rows 11-13: pi1 trained
    with the wrong labels 12.7, 4 and 9292725 instead of 12.8). Inputs are not modified."""
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"label must be a non-empty string, got {label!r}")
    if not any(example["name"] == name for example in examples):
        raise ValueError(f"no example named {name!r} (have {sorted({e['name'] for e in examples})[:10]})")
    return [dict(example, answer=label) if example["name"] == name else dict(example) for example in examples]


def perturb_labels(examples, fraction, seed):
    """New example dicts in which round(fraction * n) examples, chosen uniformly at random, carry a wrong
    label (paper App. C.2.4, Table 15: RLVR on DSR-sub with random wrong labels; the first author: "even
    90% labels are randomly flipped, model can still get some improvement", One-Shot-RLVR issue #19).

    ASSUMPTION: we could not read App. C.2.4's text, and the release at RELEASE_COMMIT has no code for
    it, so how a wrong label is drawn is our reading: the label of another example, drawn uniformly from
    the set and redrawn until it differs (as a string) from the example's own label, so every perturbed
    label is a real answer and a wrong one. Deterministic in `seed` (random.Random).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    labels = [example["answer"] for example in examples]
    n_wrong = math.floor(fraction * len(examples) + 0.5)
    if n_wrong and len(set(labels)) < 2:
        raise ValueError("cannot perturb labels: all examples share one label")
    rng = random.Random(seed)
    perturbed = [dict(example) for example in examples]
    for i in sorted(rng.sample(range(len(examples)), n_wrong)):
        new = labels[rng.randrange(len(labels))]
        while new == labels[i]:
            new = labels[rng.randrange(len(labels))]
        perturbed[i]["answer"] = new
    return perturbed


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Prepare the paper's data (default), show resolved examples, or rank an accuracy history.")
    parser.add_argument("--source", help="local folder with the release's files (layout of ../shared/data); "
                        f"default: download {RELEASE_REPO}@{RELEASE_COMMIT}")
    parser.add_argument("--out", default=str(DATA_DIR), help="where prepared data is written (default: data/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--show", metavar="SPEC", help="print the examples SPEC names (pi1, pi1,pi13, dsr_sub) "
                      "as JSON lines: name, DSR-sub index, problem, label (answer)")
    mode.add_argument("--rank-history", metavar="FILE", help="rank an accuracy history ({dsr_index: "
                      "[accuracy, ...]}, e.g. data/acc_step_500.json or a run's accuracy_history.json)")
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="prepared data read by --show (default: data/)")
    parser.add_argument("--top", type=int, default=10, help="how many ranks --rank-history prints (default 10)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    try:
        if args.show:
            for example in load_examples(args.show, args.data_dir):
                print(json.dumps(example, ensure_ascii=False))
        elif args.rank_history:
            history = read_history(args.rank_history)
            try:
                ranked = rank_history(history)
            except ValueError as e:
                raise ValueError(f"{args.rank_history}: {e}") from e
            print("rank\tindex\tstd\tepochs")
            for rank, (index, score) in enumerate(ranked[:args.top], start=1):
                print(f"{rank}\t{index}\t{score:.6f}\t{len(history[str(index)])}")
        else:
            prepare(args.source, args.out)
    except (ValueError, FileNotFoundError, ImportError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
