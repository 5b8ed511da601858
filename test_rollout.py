"""Tests for rollout.py (CPU): the TorchEngine's sampling, EOS and length handling, and the weight sync from an
FSDP2 policy over 2 gloo ranks (this file is also the torchrun worker: `torchrun ... test_rollout.py OUT`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import model as M
import rlvr
from rollout import TorchEngine, eos_token_ids, hf_name, sync_weights

HERE = Path(__file__).resolve().parent


def tiny_engine(seed=0, eos=None):
    tok = M.tiny_tokenizer()
    model = M.tiny_model(tok, seed=seed)
    return tok, TorchEngine(model, eos if eos is not None else [tok.eos_token_id])


def prompt_ids(tok, problems):
    return [tok(rlvr.data.chat_prompt(tok, p), add_special_tokens=False).input_ids for p in problems]


# ---------------------------------------------------------------------------------------------------
# single process
# ---------------------------------------------------------------------------------------------------

def test_eos_token_ids_joins_tokenizer_and_generation_config():
    tok = M.tiny_tokenizer()
    gen = type("GenerationConfig", (), {"eos_token_id": [258, 256]})()
    assert eos_token_ids(tok, gen) == [256, 258]
    assert eos_token_ids(tok, None) == [256]


def test_stop_on_eos_keeps_it_and_length_is_reported():
    tok, engine = tiny_engine(eos=[10**6])  # an id never sampled: greedy runs to max_tokens
    prompts = prompt_ids(tok, ["What is 1 + 1?"])
    free = engine.generate(prompts, n=1, temperature=0.0, max_tokens=12, seed=0)[0][0]
    assert free.finish_reason == "length" and len(free.token_ids) == 12 and len(free.logprobs) == 12
    stop_id = free.token_ids[5]  # declare the 6th greedy token an EOS: generation must end at its first occurrence
    first = free.token_ids.index(stop_id)
    engine.eos_token_ids = [stop_id]
    stopped = engine.generate(prompts, n=1, temperature=0.0, max_tokens=12, seed=0)[0][0]
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == free.token_ids[:first + 1]  # EOS included, nothing after it
    assert stopped.logprobs == pytest.approx(free.logprobs[:first + 1], abs=1e-6)


def test_batched_sampling_matches_one_prompt_at_a_time_for_greedy():
    """Left padding, the repeated prefill cache and dropping finished rows must not change greedy outputs."""
    tok, engine = tiny_engine(seed=1)
    prompts = prompt_ids(tok, ["What is 1 + 1?", "Compute $\\frac{1}{2} + \\frac{1}{3}$ please, carefully.", "x"])
    batched = engine.generate(prompts, n=1, temperature=0.0, max_tokens=10, seed=0)
    for p, out in zip(prompts, batched):
        alone = engine.generate([p], n=1, temperature=0.0, max_tokens=10, seed=0)[0][0]
        assert out[0].token_ids == alone.token_ids and out[0].finish_reason == alone.finish_reason


def test_sampling_seeds_temperature_and_log_probs():
    tok, engine = tiny_engine(seed=2)
    prompts = prompt_ids(tok, ["What is 2 + 2?", "Find x."])
    a = engine.generate(prompts, n=3, temperature=0.6, max_tokens=8, seed=123)
    b = engine.generate(prompts, n=3, temperature=0.6, max_tokens=8, seed=123)
    c = engine.generate(prompts, n=3, temperature=0.6, max_tokens=8, seed=124)
    assert [[s.token_ids for s in g] for g in a] == [[s.token_ids for s in g] for g in b]
    assert [[s.token_ids for s in g] for g in a] != [[s.token_ids for s in g] for g in c]
    assert len(a) == 2 and all(len(g) == 3 for g in a)
    assert len({tuple(s.token_ids) for s in a[0]}) > 1  # the n samples of a prompt differ
    # the returned log-probs are those of softmax(logits / T) at the sampled tokens: recompute them
    s = a[1][2]
    ids = torch.tensor([prompts[1] + s.token_ids])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, len(prompts[1]) - 1:-1]
    expected = torch.log_softmax(logits / 0.6, dim=-1).gather(1, torch.tensor(s.token_ids)[:, None]).squeeze(1)
    assert s.logprobs == pytest.approx(expected.tolist(), abs=1e-5)


def test_large_requests_run_in_chunks_of_whole_prompts():
    tok, engine = tiny_engine(seed=3)
    prompts = prompt_ids(tok, ["a", "bb", "ccc", "dddd", "eeeee"])
    whole = engine.generate(prompts, n=1, temperature=0.0, max_tokens=6, seed=0)
    engine.max_rows = 2  # 3 chunks: greedy results must not change, nor their order
    assert [g[0].token_ids for g in engine.generate(prompts, n=1, temperature=0.0, max_tokens=6, seed=0)] == [
        g[0].token_ids for g in whole]
    sampled = engine.generate(prompts, n=3, temperature=1.0, max_tokens=6, seed=0)  # 1 prompt × 3 rows per chunk
    assert len(sampled) == 5 and all(len(g) == 3 for g in sampled)


def test_top_p_keeps_only_the_nucleus():
    from rollout import _sample
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    tokens = {_sample(logits, 1.0, 0.75, g)[0].item() for _ in range(300)}
    assert tokens == {0, 1}  # 0.5 + 0.3 reaches 0.75: tokens 2 and 3 are never sampled
    tokens = {_sample(logits, 1.0, 1.0, g)[0].item() for _ in range(600)}
    assert tokens == {0, 1, 2, 3}


def test_load_weights_is_strict_like_vllm():
    tok, engine = tiny_engine()
    name, p = next(iter(engine.model.named_parameters()))
    with pytest.raises(KeyError, match="not a parameter"):
        engine.load_weights([("model.nonexistent.weight", p)])
    with pytest.raises(ValueError, match="shape"):
        engine.load_weights([(name, p[:1])])
    assert engine.load_weights([(name, torch.zeros_like(p, dtype=torch.float64))]) == {name}
    assert torch.count_nonzero(dict(engine.model.named_parameters())[name]) == 0
    assert "lm_head.weight" not in engine.param_names  # tied: listed once, as the embedding
    assert hf_name("model.layers.0._checkpoint_wrapped_module.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"


def test_generate_needs_a_seed():
    """Without a seed every rank would sample alike: the trainer seeds numpy and torch identically on all ranks, and
    vLLM's GPU runner draws an unseeded request's seed from numpy (v1/worker/gpu/sample/states.py:56-57)."""
    import inspect
    from rollout import VLLMEngine
    tok, engine = tiny_engine()
    with pytest.raises(TypeError, match="seed"):
        engine.generate(prompt_ids(tok, ["What is 1 + 1?"]), n=2, temperature=1.0, max_tokens=4)
    assert inspect.signature(VLLMEngine.generate).parameters["seed"].default is inspect.Parameter.empty


def test_a_sample_that_fills_the_models_context_ends_with_length():
    """TorchEngine's context is the model's max_position_embeddings, as vLLM's: prompt + response never exceeds it."""
    tok = M.tiny_tokenizer()
    prompts = prompt_ids(tok, ["What is 1 + 1?", "x"])
    lm = M.tiny_model(tok, seed=1)
    lm.config.max_position_embeddings = len(prompts[0]) + 5
    engine = TorchEngine(lm, [10**6])  # an EOS never sampled
    first = engine.generate(prompts[:1], n=2, temperature=1.0, max_tokens=12, seed=0)[0]  # one prompt: no padding
    second = engine.generate(prompts[1:], n=2, temperature=1.0, max_tokens=12, seed=0)[0]  # with the EOS id 10**6
    assert [(len(s.token_ids), s.finish_reason) for s in first] == [(5, "length")] * 2
    assert [(len(s.token_ids), s.finish_reason) for s in second] == [(12, "length")] * 2  # a short prompt: max_tokens
    with pytest.raises(ValueError, match="no room in the model's context"):
        engine.generate([prompts[0] + [1] * 5], n=1, temperature=0.0, max_tokens=4, seed=0)


def test_vllm_wake_raises_unless_fully_awake_exactly_when_every_tag_is_back():
    """A wake that vLLM did not perform only logs a warning (vllm/v1/executor/abstract.py:394-403) and leaves its
    scheduler paused (vllm/v1/engine/core.py:1014-1019): the next generate would wait forever. A stub stands in for
    vLLM's LLM (sleep mode needs a GPU)."""
    from rollout import VLLMEngine

    class StubLLM:
        def __init__(self, answers):
            self.answers = list(answers)

        def sleep(self, level):
            pass

        def wake_up(self, tags):
            return self.answers.pop(0)

    engine = object.__new__(VLLMEngine)  # no vLLM engine behind it: only sleep/wake are exercised
    engine.sleep_level, engine._asleep = 1, set()
    engine.llm = StubLLM([False, True])  # the order of a training step: weights, then the KV cache
    engine.sleep()
    engine.wake(["weights"])
    engine.wake(["kv_cache"])
    engine.llm = StubLLM([False, False])  # the KV-cache wake did not happen
    engine.sleep()
    engine.wake(["weights"])
    with pytest.raises(RuntimeError, match="fully awake = False, expected True"):
        engine.wake(["kv_cache"])


# ---------------------------------------------------------------------------------------------------
# 2 ranks: FSDP2 policy → sync → engine
# ---------------------------------------------------------------------------------------------------

def worker(out_path):
    """Runs on each rank under torchrun; writes what the tests assert to out_path (rank 0)."""
    import torch.distributed as dist
    cfg = rlvr.parse_config(["--preset", "tiny"])
    rank, world, device = M.setup_distributed()
    tok = M.tiny_tokenizer()
    lm = M.tiny_model(tok, seed=7)
    engine = TorchEngine(M.tiny_model(tok, seed=99), [tok.eos_token_id])  # different weights until synced
    policy = M.shard(M.LogProbLM(lm), device)
    prompts = prompt_ids(tok, ["What is 3 + 4?"])
    result = {}
    sync_weights(policy, engine)
    greedy_before = engine.generate(prompts, n=1, temperature=0.0, max_tokens=12, seed=0)[0][0].token_ids

    # an optimizer step with a large lr, so that greedy decoding must change
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-2)
    ids = torch.tensor([prompts[0] + greedy_before])
    cols = torch.arange(len(prompts[0]) - 1, ids.shape[1] - 1)
    logp, _ = policy(ids, (torch.zeros_like(cols), cols), torch.tensor(greedy_before), 1.0, 4)
    logp.sum().backward()  # gradient descent on Σ logp pushes the greedy continuation down
    optimizer.step()
    seconds = sync_weights(policy, engine)

    full = {hf_name(n): p.full_tensor() for n, p in policy.named_parameters()}
    engine_params = dict(engine.model.named_parameters())
    result["exact"] = all(torch.equal(engine_params[n], t) for n, t in full.items()) and set(full) == set(engine_params)
    result["sync_seconds"] = seconds
    result["greedy_before"], result["greedy_after"] = greedy_before, engine.generate(
        prompts, n=1, temperature=0.0, max_tokens=12, seed=0)[0][0].token_ids
    # the policy's own greedy decoding: its full weights in a plain HF model, HF generate
    reference = M.tiny_model(tok, seed=0)
    reference.load_state_dict({n: t for n, t in full.items()}, strict=False)
    reference.tie_weights()
    hf_out = reference.generate(torch.tensor(prompts), attention_mask=torch.ones(1, len(prompts[0]), dtype=torch.long),
                                do_sample=False, max_new_tokens=12, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    result["policy_greedy"] = hf_out[0, len(prompts[0]):].tolist()

    # per-rank seeds: the trainer's rollout seeds differ by rank, and replay identically
    seed = rlvr.rollout_seed(cfg, step=1, rank=rank, world=world)
    sample = lambda: [s.token_ids for s in engine.generate(prompts, n=4, temperature=0.6, max_tokens=10, seed=seed)[0]]
    mine = sample()
    gathered = [None] * world
    dist.all_gather_object(gathered, {"first": mine, "again": sample()})
    result["rank_samples"] = gathered

    # a sync that does not cover every engine parameter must fail loudly
    engine.param_names = engine.param_names | {"model.layers.9.mlp.up_proj.weight"}
    try:
        sync_weights(policy, engine)
        result["incomplete_sync_error"] = None
    except RuntimeError as e:
        result["incomplete_sync_error"] = str(e)
    if rank == 0:
        Path(out_path).write_text(json.dumps(result))
    M.end_distributed()  # not dist.destroy_process_group(): model.end_distributed says why


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("rollout") / "result.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29611",
           str(HERE / "test_rollout.py"), str(out)]
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_sync_makes_engine_equal_the_full_policy_exactly(two_ranks):
    assert two_ranks["exact"] is True
    assert two_ranks["sync_seconds"] > 0


def test_greedy_changes_after_update_and_matches_policy_greedy(two_ranks):
    assert two_ranks["greedy_after"] != two_ranks["greedy_before"]
    assert two_ranks["greedy_after"] == two_ranks["policy_greedy"]


def test_ranks_sample_differently_and_reproducibly(two_ranks):
    r0, r1 = two_ranks["rank_samples"]
    assert r0["first"] == r0["again"] and r1["first"] == r1["again"]
    assert r0["first"] != r1["first"]


def test_incomplete_sync_raises(two_ranks):
    assert "left 1 engine parameters unloaded" in two_ranks["incomplete_sync_error"]


if __name__ == "__main__":
    worker(sys.argv[1])
