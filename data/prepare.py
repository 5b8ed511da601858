"""data/prepare.py — the paper's data: DSR-sub, the one-shot examples pi_i, the six benchmarks, the few-shot demos,
ARC, and the data selection that picks pi_i (Wang et al. 2025, arXiv 2504.20571, §2 and App. B-C).

Owns everything the trainer and eval read from disk. The repository never holds the data; this script
writes it, from the paper's public release pinned at one commit (RELEASE_COMMIT) or from a local copy
of the same files, after checking every file's git blob hash against the release:

    python data/prepare.py --source ../shared/data   # local copy (layout: ../shared/data/README.md)
    python data/prepare.py                           # download from raw.githubusercontent.com
    python data/prepare.py --show pi1,pi13           # the resolved examples, one JSON line each
    python data/prepare.py --rank-history runs/x/accuracy_history.json --top 10 [--method std|lim|random --seed S]
    python data/prepare.py --arc                     # ARC-Easy/Challenge test splits from the Hugging Face hub
    python data/prepare.py --arc-source DIR          # ... or from a local copy in the dataset's own layout

Outputs (in --out, default this folder; git-ignored):
    dsr_sub.jsonl        {"index", "problem", "answer"}: the 1209 DSR-sub rows in file order
    acc_step_500.json    {dsr_index: [training accuracy each epoch]}, the release's file unchanged
    eval/<name>.jsonl    {"idx", "question", "answer"[, "solution"]} for the six benchmarks
    fewshot_qwen4.jsonl  {"question", "response"}: the Qwen evaluation's 4 MATH demos (Table 16)
    fewshot_pi1.jsonl    {"question", "response"}: the release's pi1 demo with the model's own response (Table 16)
    eval/arc_e.jsonl, eval/arc_c.jsonl   (--arc / --arc-source only) {"idx", "question", "answer", "choices", ...}

Importable: PROMPT_SUFFIX, chat_prompt, rank_history, load_examples, load_example_file, load_demos, repeat_to_batch,
override_label, perturb_labels, load_benchmark (no torch). Only the parquet steps need pyarrow.
"""
import argparse
import ast
import hashlib
import json
import math
import random
import re
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

import numpy as np

# Run as `python data/prepare.py`, the repo root is not on sys.path; it holds reward.py (one grader).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reward import extract_answer, is_equiv  # noqa: E402  (after the sys.path line above)

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
    # The Qwen evaluation's few-shot demos: data to read with ast (qwen_demos), never imported or executed.
    "qwen25_eval/examples.py":
        ("Qwen2.5-Eval/evaluation/examples.py", "2801aefe3ca3f553e1bac09bf9ec2d44f70950ef"),
}

# Appended to every DSR problem when the release built its data (data/deepscaler_dataset.py:43-44).
PROMPT_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."

DSR_SIZE = 1209  # rows of dsr_sub.parquet (paper §2: "DSR-sub", a random 1209-example DeepScaleR subset)

# pi_1' (paper App. C.2.5, Table 18): pi_1 cut down to the one step the base model gets wrong, "Calculate ∛2048".
# Wording: Table 18 quotes the prompt as "Calculate ∛2048" (typeset, so its LaTeX source is not in the paper); we
# write the cube root in the $...$ delimiters most DSR-sub problems use and add nothing else, so the training prompt
# is this + PROMPT_SUFFIX like every DSR-sub problem's. Label: the paper gives none for pi_1'; we keep pi_1's label
# 12.8, since the paper changes only the prompt ("we use this step itself as a problem") and compares the two under
# the same outcome reward; the exact value (2048^(1/3) = 12.699...) is one flag away: --example pi1s --label 12.7.
# Index: not a DSR-sub row, so the first index after DSR-sub: its accuracy history never merges with a real row's.
PI1_SIMPLIFIED = {"name": "pi1s", "index": DSR_SIZE, "problem": "Calculate $\\sqrt[3]{2048}$", "answer": "12.8"}

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


def qwen_demos(data, name, pi1_problem):
    """The few-shot demos of the Qwen evaluation's examples.py, read with ast (the file is never imported or
    executed): {"qwen4": examples["math"][:4], "pi1": examples["math500"][:1]}, each [{"question", "response"}].

    examples["math"][:4] are Table 16's "Qwen official 4 examples": the evaluation takes EXAMPLES[data][:num_shots]
    (utils.py:77). examples["math500"] is the release's pi_1 demo (what load_prompt gives math500, utils.py:55-77):
    pi_1 with the model's own correct response, the one Fig. 3 shows at step 500; Table 16's "{pi_1} In-Context".
    Its question must be pi_1's problem + PROMPT_SUFFIX (`pi1_problem`), or the file is not the release's."""
    tree = ast.parse(data.decode("utf-8"), filename=name)
    found = {}
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                and target.value.id == "examples" and isinstance(target.slice, ast.Constant)
                and target.slice.value in ("math", "math500")):
            continue
        try:
            pairs = ast.literal_eval(node.value)
        except ValueError as e:
            raise ValueError(f"{name} line {node.lineno}: examples[{target.slice.value!r}] is not a literal") from e
        if not (isinstance(pairs, list) and pairs and all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) and x.strip() for x in p)
                for p in pairs)):
            raise ValueError(f"{name} line {node.lineno}: examples[{target.slice.value!r}] is not a list of "
                             f"(question, response) string pairs")
        found[target.slice.value] = [{"question": q, "response": r} for q, r in pairs]
    if "math" not in found or len(found["math"]) < 4 or "math500" not in found:
        raise ValueError(f"{name}: no examples['math'] with 4 demos and examples['math500'] (found {sorted(found)})")
    if found["math500"][0]["question"] != pi1_problem + PROMPT_SUFFIX:
        raise ValueError(f"{name}: examples['math500'][0] is not pi_1's problem + PROMPT_SUFFIX")
    return {"qwen4": found["math"][:4], "pi1": found["math500"][:1]}


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
    pi1 = dsr[rank_history(history)[0][0]]
    demos = qwen_demos(files["qwen25_eval/examples.py"], "qwen25_eval/examples.py", pi1["problem"])

    out = Path(out)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "dsr_sub.jsonl", dsr)
    (out / "acc_step_500.json").write_bytes(files["one_shot_rlvr/acc_step_500.json"])
    for name, examples in benchmarks.items():
        write_jsonl(out / "eval" / f"{name}.jsonl", examples)
    for spec, rows in demos.items():
        write_jsonl(out / f"fewshot_{spec}.jsonl", rows)

    origin = source if source is not None else f"{RELEASE_REPO}@{RELEASE_COMMIT}"
    print(f"verified {len(files)} files from {origin} (git blob SHA-1s of {RELEASE_COMMIT[:7]})")
    print(f"checked the release's one-shot files against the ranking: {', '.join(RELEASE_ONE_SHOT)}")
    print(f"wrote {out / 'dsr_sub.jsonl'} ({len(dsr)} rows) and {out / 'acc_step_500.json'}")
    empty = [e["index"] for e in dsr if not e["answer"].strip()]
    if empty:  # row 265 of the release: kept, as the paper trained on it (its reward can never be 1)
        print(f"note: DSR-sub rows {empty} have an empty label in the release; kept as released")
    for name, examples in benchmarks.items():
        print(f"wrote {out / 'eval' / (name + '.jsonl')} ({len(examples)} problems)")
    for spec, rows in demos.items():
        print(f"wrote {out / f'fewshot_{spec}.jsonl'} ({len(rows)} few-shot demos, --fewshot {spec})")


# ---------------------------------------------------------------------------------------------------
# ARC-Easy / ARC-Challenge (paper Table 1, App. B.3). Not in the release: this step is ours, and optional.
# ---------------------------------------------------------------------------------------------------

# The AI2 ARC test splits as the Hugging Face hub's parquet files of allenai/ai2_arc, pinned to the commit that
# converted the dataset to parquet ("Convert dataset to Parquet (#4)", merged into main as 1664417). A download is
# checked against the file's Git LFS sha256 at that commit and its question count against App. B.3 (2.38k, 1.17k).
ARC_REPO = "allenai/ai2_arc"
ARC_REVISION = "16644173ab25fa007c815e3204a8b59a4034ba1b"
ARC_URL = f"https://huggingface.co/datasets/{ARC_REPO}/resolve/{ARC_REVISION}/"
ARC_FILES = {  # benchmark -> (the dataset's subset folder, its test file at ARC_REVISION, the file's sha256, questions)
    "arc_e": ("ARC-Easy", "test-00000-of-00001.parquet",
              "4160597d618ae851c7eb04e281574f3f654776216ac6b6641588d64527b47177", 2376),
    "arc_c": ("ARC-Challenge", "test-00000-of-00001.parquet",
              "62f03257e737aed263f55c6abf87c7bb0028a44a6bdd2a26eb1279eb42c1d1e9", 1172),
}
# Choice letters go by position, as the Qwen evaluation letters its multiple-choice sets (parser.py:684-691,
# mmlu_stem: zip("ABCD", options)); its answer extraction knows A-E only (parser.py:390), hence at most 5 choices.
ARC_LETTERS = "ABCDE"


def arc_examples(rows, where, first_idx=0):
    """AI2 ARC rows (id, question, choices {text, label}, answerKey) -> {"idx", "question", "answer", "choices",
    "labels", "answer_label", "id"}. question: the question, then "\\nAnswer Choices: (A) ... (B) ...", the Qwen
    evaluation's multiple-choice form (parser.py:691); answer: the gold letter. Letters go by position, so the digit
    labels some ARC questions use ("1"-"4") become A-D; the original labels stay in labels and answer_label.
    Errors name the file, the row and the field."""
    out = []
    for pos, row in enumerate(rows):
        at = f"{where} row {pos}"
        for field in ("id", "question", "answerKey"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise ValueError(f"{at}: field {field!r} is missing or not a non-empty string (got {row.get(field)!r})")
        choices = row.get("choices")
        texts, labels = (choices.get("text"), choices.get("label")) if isinstance(choices, dict) else (None, None)
        for field, values in (("choices.text", texts), ("choices.label", labels)):
            if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
                raise ValueError(f"{at}: field {field!r} is missing or not a list of non-empty strings "
                                 f"(got {values!r})")
        if not 2 <= len(texts) <= len(ARC_LETTERS) or len(labels) != len(texts) or len(set(labels)) != len(labels):
            raise ValueError(f"{at}: field 'choices': need 2-{len(ARC_LETTERS)} texts with as many distinct labels "
                             f"(got {len(texts)} texts, labels {labels})")
        if row["answerKey"] not in labels:
            raise ValueError(f"{at}: field 'answerKey' {row['answerKey']!r} is not one of the labels {labels}")
        letters = ARC_LETTERS[:len(texts)]
        options = " ".join(f"({letter}) {text.strip()}" for letter, text in zip(letters, texts))
        out.append({"idx": first_idx + pos, "question": f"{row['question'].strip()}\nAnswer Choices: {options}",
                    "answer": letters[labels.index(row["answerKey"])], "choices": [t.strip() for t in texts],
                    "labels": labels, "answer_label": row["answerKey"], "id": row["id"]})
    return out


def arc_files(name, arc_source=None):
    """[(where, bytes)] of one ARC test split: the shards ARC_SOURCE/<subset>/test-*.parquet in name order, or
    (arc_source None) the pinned hub file, downloaded and checked against its sha256."""
    subset, filename, sha256, _ = ARC_FILES[name]
    if arc_source is not None:
        paths = sorted((Path(arc_source) / subset).glob("test-*.parquet"))
        if not paths:
            raise FileNotFoundError(f"{Path(arc_source) / subset}/test-*.parquet not found: --arc-source must hold "
                                    f"the AI2 ARC test splits in the dataset's own layout (ARC-Easy/test-*.parquet, "
                                    f"ARC-Challenge/test-*.parquet)")
        return [(str(path), path.read_bytes()) for path in paths]
    url = f"{ARC_URL}{subset}/{filename}"
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{url}: sha256 {hashlib.sha256(data).hexdigest()} does not match {sha256}, the Git LFS hash "
                         f"of {subset}/{filename} at {ARC_REPO}@{ARC_REVISION}")
    return [(url, data)]


def prepare_arc(arc_source=None, out=DATA_DIR):
    """ARC-Easy and ARC-Challenge test splits -> out/eval/arc_e.jsonl and arc_c.jsonl (arc_examples). Separate
    from prepare(): optional, and not the release's. A download must hold the paper's counts; a local copy may
    differ (with a warning), since it is the researcher's own. Nothing is written unless both splits read cleanly."""
    prepared = {}
    for name, (subset, filename, sha256, expected) in ARC_FILES.items():
        examples, origin = [], []
        for where, data in arc_files(name, arc_source):
            examples += arc_examples(parquet_rows(data, where), where, first_idx=len(examples))
            origin.append("the pinned hub file" if hashlib.sha256(data).hexdigest() == sha256 else where)
        if len(examples) != expected:
            message = f"{name}: {len(examples)} questions; the AI2 test split has {expected} (paper App. B.3)"
            if arc_source is None:
                raise ValueError(message)
            print(f"warning: {message}", file=sys.stderr)
        prepared[name] = (examples, origin)
    out = Path(out)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for name, (examples, origin) in prepared.items():
        write_jsonl(out / "eval" / f"{name}.jsonl", examples)
        digits = sum(e["answer_label"].isdigit() for e in examples)
        print(f"wrote {out / 'eval' / (name + '.jsonl')} ({len(examples)} questions, {digits} of them with digit "
              f"labels, lettered by position; from {', '.join(origin)})")


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


def read_jsonl(path, fields, nonempty, data_dir, hint=None):
    """Rows of a prepared jsonl file. `fields` maps each required field to its type; the `nonempty`
    ones must hold some text. Errors name the file, the line and the field; a missing file says how to
    prepare it (into `data_dir`; `hint` for files prepare() does not write)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {hint or _prepare_hint(data_dir)}")
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


SELECTION_METHODS = ("std", "lim", "random")  # the release's data_selection.py --method (data_selection.py:52-71)


def _check_history(history):
    """[(dsr_index, [accuracy, ...])] of an accuracy history, in the dict's order; a malformed one is an error
    naming the key and the position."""
    if not isinstance(history, dict):
        raise ValueError(f"accuracy history must be a JSON object {{dsr_index: [accuracy, ...]}}, "
                         f"got {type(history).__name__}")
    checked, seen = [], set()
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
        checked.append((int(key), accs))
    return checked


def lim_scores(checked):
    """LIMR's learning-impact measurement, as the release computes it (data_selection.py:10-42): with K the
    shortest non-empty history, a_e the mean over examples of epoch e's accuracy (e < K), and s_i,e example i's,
        LIM_i = 1 - sum_e (s_i,e - a_e)^2 / sum_e (1 - a_e)^2,
    i.e. 1 minus how far i's first K epochs lie from the average learning curve, relative to the distance from that
    curve to perfect accuracy. Plain Python sums in the release's order, so the floats (and ties) are the release's.
    Two deviations, both where the release fails: an empty history scores nan (the release's loop raises and
    lim() returns {}), and the epoch means are over the non-empty histories; a history of all 1s in every epoch of
    every example (the denominator 0) is an error. The release also starts K at 1000; histories that long differ."""
    lists = [accs for _, accs in checked if accs]
    if not lists:
        raise ValueError("LIM needs at least one non-empty accuracy list")
    epochs = min(len(accs) for accs in lists)
    sums = [0.0] * epochs
    for accs in lists:
        for e in range(epochs):
            sums[e] += accs[e]
    means = [total / len(lists) for total in sums]
    denominator = 0.0
    for e in range(epochs):
        denominator += (1 - means[e]) * (1 - means[e])
    if denominator == 0.0:
        raise ValueError(f"LIM is undefined: every accuracy in the first {epochs} epochs is 1")
    scores = []
    for _, accs in checked:
        if not accs:
            scores.append(math.nan)
            continue
        distance = 0.0
        for e in range(epochs):
            distance += (accs[e] - means[e]) * (accs[e] - means[e])
        scores.append(1 - distance / denominator)
    return scores


def rank_history(history, method="std", seed=0):
    """Data selection from an accuracy history (paper §2; the release's data/data_selection.py --method).

    history: {str(dsr_index): [training accuracy each time the example was trained on, in order]}, the
    format of the release's acc_step_500.json and of the accuracy_history.json rlvr.py records.
    method "std" (the paper's historical variance): population std (ddof 0, numpy's default, as the release) of
    each list, the square root of the paper's variance, so the same ranking; "lim": lim_scores; "random": a
    uniform draw per example from random.Random(seed), in the dict's order (the release draws random.random()
    unseeded, data_selection.py:61-63). Sorted descending by a stable sort, so ties keep the dict's (file's)
    order; examples with an empty list rank last (score nan) under std and lim. pi_k is rank k-1 under std.
    Returns [(dsr_index, score), ...], best first.
    """
    if method not in SELECTION_METHODS:
        raise ValueError(f"unknown selection method {method!r}; valid: {', '.join(SELECTION_METHODS)}")
    checked = _check_history(history)
    if method == "std":
        scores = [float(np.std(accs)) if accs else math.nan for _, accs in checked]
    elif method == "lim":
        scores = lim_scores(checked)
    else:
        rng = random.Random(seed)
        scores = [rng.random() for _ in checked]
    scored = [(index, score) for (index, _), score in zip(checked, scores)]
    return sorted(scored, key=lambda item: math.inf if math.isnan(item[1]) else -item[1])


def ranking_lines(history, method="std", seed=0, top=10):
    """The --rank-history table, one printing path for every method: a header, then rank, DSR-sub index, score
    (column named after the method) and the number of accuracies in the example's history."""
    lines = [f"rank\tindex\t{method}\tepochs"]
    for rank, (index, score) in enumerate(rank_history(history, method, seed)[:top], start=1):
        lines.append(f"{rank}\t{index}\t{score:.6f}\t{len(history[str(index)])}")
    return lines


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


def _own_rows(path, fields, what):
    """A researcher's own jsonl file -> [{field: value}]: one JSON object per line holding exactly one of the keys
    `fields[field]` names for each field (blank lines skipped). `what` names the rows in the empty-file message.
    Every error names the file, the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    expected = " with fields " + " and ".join("/".join(keys) for keys, _ in fields.values())
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                row = _json_object(path, lineno, line, expected)
                rows.append({field: _example_field(path, lineno, row, keys, role)
                             for field, (keys, role) in fields.items()})
    if not rows:
        raise ValueError(f"{path}: no {what} (the file is empty; one JSON object per line expected)")
    return rows


def load_example_file(path):
    """A researcher's own examples: one JSON object per line with the problem text (field problem, question or
    prompt) and its label (answer, label or ground_truth; a string or a number). Blank lines are skipped.
    -> [{"name": "FILE[i]", "index": i, "problem", "answer"}], i = the row's 0-based position, which is also
    its key in the accuracy_history.json a run writes. Every error names the file, the line and the field."""
    rows = _own_rows(path, {"problem": (EXAMPLE_PROBLEM_KEYS, "problem text"), "answer": (EXAMPLE_LABEL_KEYS, "label")},
                     "examples")
    return [{"name": f"{Path(path).name}[{i}]", "index": i, **row} for i, row in enumerate(rows)]


def load_examples(spec, data_dir=DATA_DIR):
    """Training examples by name -> [{"name", "index", "problem", "answer"}], in the order named.

    spec: "pi1" ... "pi1209" (rank k-1 of rank_history on acc_step_500.json, the paper's pi_k), "pi1s" (the
    paper's simplified pi_1', PI1_SIMPLIFIED; needs no prepared data), "dsr_sub" (all 1209 DSR-sub rows in file
    order), or a comma list of these ("pi1,pi13"); or a path ending in .jsonl, on its own: your own problems and
    labels (load_example_file; no prepared data needed).
    """
    if spec.strip().endswith(".jsonl") and ("," not in spec or Path(spec.strip()).is_file()):
        return load_example_file(spec.strip())
    names = [name.strip() for name in spec.split(",")]
    simplified = PI1_SIMPLIFIED["name"]
    valid = (f"pi1 ... pi1209 (the paper's pi_k), {simplified} (the paper's simplified pi_1', Table 18), dsr_sub "
             "(all of DSR-sub), or a comma list such as pi1,pi13; or a file of your own problems, FILE.jsonl, "
             "on its own")
    for name in names:
        if name not in ("dsr_sub", simplified) and not re.fullmatch(r"pi[1-9]\d*", name):
            raise ValueError(f"unknown example {name!r} in {spec!r}: valid names are {valid}")
    rows, by_index = _read_dsr(data_dir) if set(names) != {simplified} else ([], {})
    ranked = []
    if any(name not in ("dsr_sub", simplified) for name in names):
        history_path = Path(data_dir) / "acc_step_500.json"
        if not history_path.is_file():
            raise FileNotFoundError(f"{history_path} not found: {_prepare_hint(data_dir)}")
        ranked = rank_history(read_history(history_path))
    examples = []
    for name in names:
        if name == simplified:
            examples.append(dict(PI1_SIMPLIFIED))
            continue
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


# A researcher's own few-shot demos (`eval.py --fewshot FILE.jsonl`): the field names a user tries first for the
# question and for the worked response ("answer" is not one: in MATH-style rows it is the final answer beside the
# solution). A row must have exactly one of each.
DEMO_QUESTION_KEYS = ("question", "problem", "prompt")
DEMO_RESPONSE_KEYS = ("response", "solution", "completion", "output")
# Named demo sets (prepare() writes them): name -> (prepared file, how many of its demos).
DEMO_SETS = {"qwen4": ("fewshot_qwen4.jsonl", 4), "qwen1": ("fewshot_qwen4.jsonl", 1), "pi1": ("fewshot_pi1.jsonl", 1)}


def load_demo_file(path):
    """Few-shot demos from a jsonl file: one JSON object per line with the question (field question, problem or
    prompt) and the worked response (response, solution, completion or output), both strings, kept verbatim.
    Blank lines are skipped. -> [{"question", "response"}]. Every error names the file, the line and the field."""
    return _own_rows(path, {"question": (DEMO_QUESTION_KEYS, "question"), "response": (DEMO_RESPONSE_KEYS, "response")},
                     "demos")


def load_demos(spec, data_dir=DATA_DIR):
    """Few-shot demos for the in-context baselines (paper App. C.2.3 (c), Table 16) -> [{"question", "response"}].

    spec: "qwen4" (the Qwen evaluation's 4 official MATH demos, examples["math"][:4]), "qwen1" (the first of them:
    Table 16's "Qwen official Example 1"), "pi1" (pi_1 with the model's own response, the release's
    examples["math500"]), all prepared by prepare(); or a path ending in .jsonl: your own (load_demo_file).
    """
    spec = spec.strip()
    if spec.endswith(".jsonl"):
        return load_demo_file(spec)
    if spec not in DEMO_SETS:
        raise ValueError(f"unknown few-shot demos {spec!r}: valid are {', '.join(DEMO_SETS)} or your own FILE.jsonl")
    filename, count = DEMO_SETS[spec]
    path = Path(data_dir) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {_prepare_hint(data_dir)}")
    demos = load_demo_file(path)
    if len(demos) < count:
        raise ValueError(f"{path}: {len(demos)} demos, {spec} needs {count}: {_prepare_hint(data_dir)}")
    return demos[:count]


def load_benchmark(name, data_dir=DATA_DIR):
    """A prepared benchmark -> [{"idx", "question", "answer"[, "solution"]}] (eval.md §2.1 golds); arc_e/arc_c
    (prepare_arc) also carry choices, labels, answer_label and id."""
    if name not in BENCHMARK_SIZES and name not in ARC_FILES:
        raise ValueError(f"unknown benchmark {name!r}: valid names are {', '.join([*BENCHMARK_SIZES, *ARC_FILES])}")
    hint = None
    if name in ARC_FILES:
        out = "" if Path(data_dir).resolve() == DATA_DIR else f" --out {data_dir}"
        hint = (f"ARC is a separate step: `python data/prepare.py --arc{out}` (downloads the AI2 test splits) or "
                f"`python data/prepare.py --arc-source DIR{out}` (a local copy)")
    return read_jsonl(Path(data_dir) / "eval" / f"{name}.jsonl", {"idx": int, "question": str, "answer": str},
                      nonempty=("question", "answer"), data_dir=data_dir, hint=hint)


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


# Random wrong labels (paper App. C.2.4, Table 17), in the paper's words: "We try to randomly flip the labels of
# final answers in DSR-sub ... Here we randomly add or subtract numbers within 10 and randomly change the sign. If it
# is a fraction, we similarly randomly add or subtract the numerator and denominator."
PERTURB_MAX = 10  # "numbers within 10": a shift d with 1 <= |d| <= 10 (d = 0 would leave the label right)
_WRAPPERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SEPARATED_RE = re.compile(r"\d{1,3}(?:(?:,|\{,\}|,\\!)\d{3})+(?:\.\d+)?")  # 154,320,000 / 23{,}000 / 11,\!090
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_FRACTION_RE = re.compile(r"(-?)\s*\\([dt]?frac)\s*(?:\{\s*(-?\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))")
_SLASH_RE = re.compile(r"(-?)\s*(\d+)\s*/\s*(\d+)")
_LITERAL_RE = re.compile(r"\d+(?:\.\d+)?")


def label_kind(label):
    """How perturb_labels changes `label`: ("number", Decimal), ("fraction", (sign, numerator, denominator,
    command)), ("expression", None) for any other label holding a digit, ("other", None) for the rest. A number
    or fraction may sit in $...$, \\(...\\) or \\[...\\], and a number may use thousands separators."""
    text = label.strip()
    for left, right in _WRAPPERS:
        if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
            text = text[len(left):-len(right)].strip()
    plain = re.sub(r",\\!|\{,\}|,", "", text) if _SEPARATED_RE.fullmatch(text) else text
    if _NUMBER_RE.fullmatch(plain):
        return "number", Decimal(plain)
    match = _FRACTION_RE.fullmatch(text)
    if match:
        sign, command, num_braced, num_digit, den_braced, den_digit = match.groups()
        numerator, denominator = int(num_braced or num_digit), int(den_braced or den_digit)
        if denominator > 0:
            return "fraction", (-1 if sign else 1, numerator, denominator, command)
    match = _SLASH_RE.fullmatch(text)
    if match and int(match.group(3)) > 0:
        return "fraction", (-1 if match.group(1) else 1, int(match.group(2)), int(match.group(3)), None)
    return ("expression" if _LITERAL_RE.search(label) else "other"), None


def _shift(rng):
    return rng.choice((-1, 1)) * rng.randint(1, PERTURB_MAX)


def _decimal_text(value):
    return format(value.copy_abs() if value == 0 else value, "f")  # no "-0", no exponent


def _wrong_candidate(label, kind, value, labels, rng):
    """One draw of a wrong label for `label` (perturb_labels keeps drawing until its value differs)."""
    if kind == "number":  # ±(x ± d): "add or subtract numbers within 10 and randomly change the sign"
        new = value + _shift(rng)
        return _decimal_text(-new if rng.random() < 0.5 else new)
    if kind == "fraction":  # numerator and denominator each ± d, the denominator kept positive; the sign stays
        sign, numerator, denominator, command = value
        top, bottom = numerator + _shift(rng), denominator + _shift(rng)
        if bottom <= 0:
            return label
        minus = "-" if sign * top < 0 else ""
        return (f"{minus}\\{command}{{{abs(top)}}}{{{bottom}}}" if command else f"{minus}{abs(top)}/{bottom}")
    if kind == "expression":  # ours: one number in it ± d (kept >= 0), the rest of the label unchanged
        spans = [m.span() for m in _LITERAL_RE.finditer(label)]
        start, end = spans[rng.randrange(len(spans))]
        new = Decimal(label[start:end]) + _shift(rng)
        return label if new < 0 else label[:start] + _decimal_text(new) + label[end:]
    return labels[rng.randrange(len(labels))]  # ours: no number to change, so another example's label


def perturb_labels(examples, fraction, seed):
    """New example dicts in which round(fraction * n) examples, chosen uniformly at random, carry a wrong
    label (paper App. C.2.4, Table 17: RLVR on DSR-sub with 60% / 90% random wrong labels). Deterministic in
    `seed` (one random.Random for the choice and every draw). By label_kind:
      number     ±(x ± d), 1 <= |d| <= 10, the sign flipped with probability 1/2 (the paper's procedure);
      fraction   a/b -> (a ± d1)/(b ± d2), 1 <= |d1|, |d2| <= 10, b ± d2 > 0 (the paper's; no sign flip, as the
                 paper lists none for fractions); written back as \\frac (\\dfrac, \\tfrac kept) or a/b;
      expression (ours: the paper names only numbers and fractions) one number in it ± d, the rest unchanged;
      other      (ours: no digit, e.g. \\pi, \\text{odd}, DSR-sub row 265's empty label) another example's label,
                 the old behaviour, kept only for these.
    Every draw is repeated until the grader (reward.is_equiv) rejects the true label against the new one: a
    response with the right answer earns no reward. Inputs are not modified.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    labels = [example["answer"] for example in examples]
    n_wrong = math.floor(fraction * len(examples) + 0.5)
    rng = random.Random(seed)
    perturbed = [dict(example) for example in examples]
    for i in sorted(rng.sample(range(len(examples)), n_wrong)):
        kind, value = label_kind(labels[i])
        for _ in range(1000):
            new = _wrong_candidate(labels[i], kind, value, labels, rng)
            if new.strip() and new != labels[i] and not is_equiv(labels[i], new):
                break
        else:
            raise ValueError(f"cannot perturb the label {labels[i]!r} of example {examples[i]['name']}: 1000 draws "
                             f"gave no label the grader tells apart from it (do all examples share one label?)")
        perturbed[i]["answer"] = new
    return perturbed


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Prepare the paper's data (default), show resolved examples, rank an accuracy history, or "
                    "prepare ARC (a separate, optional step).")
    parser.add_argument("--source", help="local folder with the release's files (layout of ../shared/data); "
                        f"default: download {RELEASE_REPO}@{RELEASE_COMMIT}")
    parser.add_argument("--out", default=str(DATA_DIR), help="where prepared data is written (default: data/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--show", metavar="SPEC", help="print the examples SPEC names (pi1, pi1s, pi1,pi13, dsr_sub) "
                      "as JSON lines: name, DSR-sub index, problem, label (answer)")
    mode.add_argument("--rank-history", metavar="FILE", help="rank an accuracy history ({dsr_index: "
                      "[accuracy, ...]}, e.g. data/acc_step_500.json or a run's accuracy_history.json)")
    mode.add_argument("--arc", action="store_true", help="prepare ARC-Easy/ARC-Challenge (Table 1) only: download "
                      f"the AI2 test splits from the Hugging Face hub ({ARC_REPO}@{ARC_REVISION[:7]})")
    mode.add_argument("--arc-source", metavar="DIR", help="prepare ARC only, from a local copy in the dataset's own "
                      "layout: DIR/ARC-Easy/test-*.parquet and DIR/ARC-Challenge/test-*.parquet")
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="prepared data read by --show (default: data/)")
    parser.add_argument("--method", choices=SELECTION_METHODS, default="std", help="--rank-history's selection: std "
                        "(the paper's historical variance, default), lim (LIMR's learning impact), random (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --method random (default 0)")
    parser.add_argument("--top", type=int, default=10, help="how many ranks --rank-history prints (default 10)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    if not args.rank_history and (args.method != "std" or args.seed != 0):
        parser.error("--method and --seed go with --rank-history")
    if args.source and (args.arc or args.arc_source):
        parser.error("--source is the release's files; ARC comes from --arc (download) or --arc-source DIR")
    try:
        if args.show:
            for example in load_examples(args.show, args.data_dir):
                print(json.dumps(example, ensure_ascii=False))
        elif args.rank_history:
            history = read_history(args.rank_history)
            try:
                lines = ranking_lines(history, args.method, args.seed, args.top)
            except ValueError as e:
                raise ValueError(f"{args.rank_history}: {e}") from e
            print("\n".join(lines))
        elif args.arc or args.arc_source:
            prepare_arc(args.arc_source, args.out)
        else:
            prepare(args.source, args.out)
    except (ValueError, FileNotFoundError, ImportError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
