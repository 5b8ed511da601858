"""rollout.py — generation engines and the weight sync from the FSDP2 policy into them.

What it owns: one engine interface used by training and evaluation, two engines behind it, and the one
function that moves the trainer's weights into an engine. This is the only file that imports vllm.

    generate(prompt_token_ids, n, temperature, top_p, max_tokens, seed) -> per prompt, n Samples
    load_weights(iterable of (hf_name, tensor)) -> set of names loaded;  param_names;  dtype
    sleep() / wake(tags)    (no-ops where meaningless)

- TorchEngine: plain-PyTorch batched sampling with a KV cache (CPU or GPU); the tests' and CPU runs' engine.
- VLLMEngine: vllm==0.33.0 colocated on every rank under torchrun (../shared/spec/vllm.md). NOT YET RUN ON
  A GPU: every call was checked against the 0.33.0 wheel's source only (cited as `vllm/<path>:<line>`).
- sync_weights(policy, engine): full parameters from the FSDP2 shards, one decoder layer at a time.

Stopping follows the paper's run (paper_run.md §2): only the model's EOS ids stop a sample (the tokenizer's
EOS plus generation_config's eos_token_id), the EOS token stays in the response, and a sample that reaches
max_tokens ends with finish reason "length".

    python rollout.py --bench                              # TorchEngine tokens/s, tiny model, batch 128
    torchrun --nproc_per_node=2 rollout.py --bench-sync    # sync time, Qwen2.5-Math-1.5B shape, 2 CPU ranks
"""
import itertools
import math
import re
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor


@dataclass
class Sample:
    token_ids: list[int]  # the response, EOS included when finish_reason == "stop"
    finish_reason: str  # "stop" (an EOS id was sampled) or "length" (max_tokens reached)
    logprobs: list[float] | None = None  # log-prob of each sampled token at the sampling temperature


def eos_token_ids(tokenizer, generation_config=None):
    """The ids that end a sample: the tokenizer's EOS plus generation_config.eos_token_id, as vLLM adds
    them (vllm/sampling_params.py:775-803). For Qwen2.5-Math-1.5B both are <|endoftext|> (151643)."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(generation_config, "eos_token_id", None)
    ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
    return sorted(i for i in ids if i is not None)


# ---------------------------------------------------------------------------------------------------
# TorchEngine
# ---------------------------------------------------------------------------------------------------

def _sample(logits, temperature, top_p, generator):
    """One token per row. Returns (token, log-prob of that token under softmax(logits / temperature)).

    temperature 0 is greedy (its log-prob is then taken at temperature 1). The log-prob is before the top-p
    cut, i.e. the quantity the policy computes; with top_p = 1 (the paper's setting) it equals vLLM's
    "processed_logprobs".
    """
    logits = logits.float()
    if not torch.isfinite(logits).all():
        raise FloatingPointError("the engine's logits hold NaN or inf: its weights diverged (a too-large --lr?)")
    if temperature == 0:
        token = logits.argmax(dim=-1)
        return token, torch.log_softmax(logits, dim=-1).gather(1, token[:, None]).squeeze(1)
    logp = torch.log_softmax(logits / temperature, dim=-1)
    probs = logp.exp()
    if top_p < 1.0:  # nucleus: keep the smallest prefix of sorted tokens whose mass reaches top_p
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        probs = probs.scatter(1, order, sorted_probs.masked_fill(outside, 0.0))
    token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return token, logp.gather(1, token[:, None]).squeeze(1)


class TorchEngine:
    """Batched sampling with HF's KV cache: prefill each prompt once, repeat its cache n times, then decode
    one token per step, dropping rows as they finish. Owns its model (a copy, never the FSDP policy)."""

    def __init__(self, model, eos_token_ids, dtype=None, max_rows=256):
        self.model = model.eval().requires_grad_(False)
        self.max_rows = max_rows  # sequences decoded at once; larger requests run in chunks of whole prompts
        if dtype is not None:
            self.model.to(dtype)
        first = next(self.model.parameters())
        self.dtype, self.device = first.dtype, first.device
        self.eos_token_ids = list(eos_token_ids)
        self.param_names = {name for name, _ in self.model.named_parameters()}  # HF names, tied lm_head deduped

    def generate(self, prompt_token_ids, n, temperature, top_p=1.0, max_tokens=3072, seed=0):
        assert max_tokens >= 1 and n >= 1 and not (temperature == 0 and n > 1), "greedy needs n = 1"
        per_chunk = max(1, self.max_rows // n)
        chunks = [prompt_token_ids[i:i + per_chunk] for i in range(0, len(prompt_token_ids), per_chunk)]
        return [group for c, chunk in enumerate(chunks)  # chunk c samples with seed + c
                for group in self._generate(chunk, n, temperature, top_p, max_tokens, seed + c)]

    @torch.no_grad()
    def _generate(self, prompt_token_ids, n, temperature, top_p, max_tokens, seed):
        from transformers import DynamicCache
        dev, pad = self.device, self.eos_token_ids[0]
        width = max(len(p) for p in prompt_token_ids)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompt_token_ids], device=dev)
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_token_ids], device=dev)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=ids, attention_mask=attn, position_ids=pos, past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1]
        # Sample i of prompt p is row p·n + i: the prompt's cache and last logits are repeated, not recomputed.
        cache.batch_repeat_interleave(n)
        logits, attn = logits.repeat_interleave(n, dim=0), attn.repeat_interleave(n, dim=0)
        next_pos = pos[:, -1:].repeat_interleave(n, dim=0) + 1

        rows = len(prompt_token_ids) * n
        out_tokens = torch.full((rows, max_tokens), pad, dtype=torch.long, device=dev)
        out_logp = torch.zeros(rows, max_tokens, device=dev)
        length = torch.full((rows,), max_tokens, dtype=torch.long, device=dev)
        stopped = torch.zeros(rows, dtype=torch.bool, device=dev)
        active = torch.arange(rows, device=dev)
        eos = torch.tensor(self.eos_token_ids, device=dev)
        generator = torch.Generator(device=dev).manual_seed(seed)
        for step in range(max_tokens):
            token, logp = _sample(logits, temperature, top_p, generator)
            out_tokens[active, step], out_logp[active, step] = token, logp
            done = torch.isin(token, eos)
            length[active[done]], stopped[active[done]] = step + 1, True
            if step == max_tokens - 1 or done.all():
                break
            if done.any():  # drop finished rows from the batch and the cache
                keep = (~done).nonzero().squeeze(1)
                active, token, attn, next_pos = active[keep], token[keep], attn[keep], next_pos[keep]
                cache.batch_select_indices(keep)
            attn = torch.cat([attn, attn.new_ones(len(active), 1)], dim=1)
            logits = self.model(input_ids=token[:, None], attention_mask=attn, position_ids=next_pos,
                                past_key_values=cache, use_cache=True).logits[:, -1]
            next_pos = next_pos + 1

        tokens, logps, length, stopped = out_tokens.tolist(), out_logp.tolist(), length.tolist(), stopped.tolist()
        samples = [Sample(tokens[r][:length[r]], "stop" if stopped[r] else "length", logps[r][:length[r]])
                   for r in range(rows)]
        return [samples[p * n:(p + 1) * n] for p in range(len(prompt_token_ids))]

    @torch.no_grad()
    def load_weights(self, weights):
        """Copy (hf_name, tensor) pairs into the model in place, as vLLM's load_weights does: unknown names
        and shape mismatches are errors, dtype and device are converted. Returns the names loaded."""
        params = dict(self.model.named_parameters())
        loaded = set()
        for name, tensor in weights:
            if name not in params:
                raise KeyError(f"{name!r} is not a parameter of the engine's model")
            if params[name].shape != tensor.shape:
                raise ValueError(f"{name}: engine shape {tuple(params[name].shape)}, got {tuple(tensor.shape)}")
            params[name].copy_(tensor)
            loaded.add(name)
        return loaded

    def sleep(self):
        pass

    def wake(self, tags=None):
        pass


# ---------------------------------------------------------------------------------------------------
# VLLMEngine (vllm==0.33.0; checked against its source, not yet run on a GPU)
# ---------------------------------------------------------------------------------------------------

class VLLMEngine:
    """vLLM colocated on every rank: external_launcher, tensor parallel 1, one independent engine per GPU.

    Build it on every rank at the same point, after dist.init_process_group and before the FSDP model
    (vLLM adopts the default process group and all-reduces free memory at init: vllm.md §1.3). vLLM reseeds
    random/numpy/torch and sets float32 matmul precision at init, so the trainer seeds after this.
    """

    def __init__(self, model_path, *, seed, max_model_len, gpu_memory_utilization=0.3, sleep_level=0,
                 max_num_seqs=256):
        import vllm
        assert vllm.__version__ == "0.33.0", f"VLLMEngine was checked against vllm 0.33.0 only, found {vllm.__version__}"
        assert dist.is_initialized(), "init the process group first: vLLM adopts it (vllm/distributed/parallel_state.py:1928)"
        self.llm = vllm.LLM(
            model=model_path,
            dtype="bfloat16",  # explicit: "auto" would run an fp32 checkpoint in fp16 (vllm/entrypoints/llm.py:91-94)
            tensor_parallel_size=1,
            distributed_executor_backend="external_launcher",  # SPMD under torchrun (vllm/config/parallel.py:1050-1052)
            seed=seed,  # base + rank: unseeded requests draw their seed from np.random seeded with it (vllm.md P1)
            gpu_memory_utilization=gpu_memory_utilization,  # of TOTAL memory, checked against free memory at init
            max_model_len=max_model_len,  # prompt + response tokens
            max_num_seqs=max_num_seqs,
            enable_prefix_caching=True,  # reset after every weight sync (generate below)
            enable_sleep_mode=sleep_level > 0,
            logprobs_mode="processed_logprobs",  # sampled-token log-probs after temperature (vllm/config/model.py:291-299)
        )
        self.sleep_level = sleep_level
        self.dtype = torch.bfloat16
        # Qwen2's names after stacking (qkv_proj, gate_up_proj); load_weights returns names of this kind.
        self.param_names = self.llm.apply_model(lambda model: {n for n, _ in model.named_parameters()})[0]
        self._prefix_cache_stale = False

    def generate(self, prompt_token_ids, n, temperature, top_p=1.0, max_tokens=3072, seed=None):
        from vllm import SamplingParams
        if self._prefix_cache_stale:  # the same 1-shot prompt every step: never reuse KV of old weights (vllm.md P5)
            assert self.llm.reset_prefix_cache(), "vLLM refused to reset its prefix cache"
            self._prefix_cache_stale = False
        # One SamplingParams per prompt: sample i of prompt p gets seed + p·n + i (vllm/v1/engine/parallel_sampling.py:69-81);
        # a shared seed would give every copy of the prompt the same n samples (vllm.md P2).
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=0, max_tokens=max_tokens,
                                 seed=None if seed is None else seed + p * n, logprobs=0, detokenize=False)
                  for p in range(len(prompt_token_ids))]
        outputs = self.llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_token_ids], params,
                                    use_tqdm=False)  # same order as the prompts (vllm/entrypoints/llm.py:417-470)
        result = []
        for out in outputs:
            samples = []
            for c in sorted(out.outputs, key=lambda c: c.index):
                if c.finish_reason not in ("stop", "length"):
                    raise RuntimeError(f"vLLM finished a sample with {c.finish_reason!r}")
                # logprobs=0: each position maps the sampled token id to its Logprob (vllm/logprobs.py:109-118)
                logprobs = [pos[t].logprob for pos, t in zip(c.logprobs, c.token_ids)]
                samples.append(Sample(list(c.token_ids), c.finish_reason, logprobs))
            result.append(samples)
        return result

    def load_weights(self, weights):
        batch = list(weights)
        # apply_model runs the lambda on the in-process model, arguments by reference, no pickling
        # (vllm/entrypoints/llm.py:604-614 -> vllm/v1/worker/worker_base.py:165-167). Qwen2.load_weights stacks
        # q/k/v and gate/up itself and returns the vLLM names it loaded (vllm/model_executor/models/qwen2.py:519-521);
        # a tied lm_head.weight without model.embed_tokens.weight in the same call raises
        # (vllm/model_executor/models/utils.py:489-502): we send named_parameters(), which has no tied alias.
        loaded = self.llm.apply_model(lambda model: model.load_weights(batch))[0]
        self._prefix_cache_stale = True
        return loaded

    def sleep(self):
        if self.sleep_level:  # level 1: weights to pinned CPU memory, KV cache discarded (vllm/entrypoints/llm.py:839-870)
            self.llm.sleep(level=self.sleep_level)

    def wake(self, tags=None):
        if self.sleep_level:
            torch.cuda.empty_cache()  # return the trainer's cached blocks before vLLM maps memory (vllm.md §3.2)
            awake = self.llm.wake_up(tags)  # True once every tag is awake (vllm/entrypoints/llm.py:872-888)
            assert tags is not None or awake, "vLLM did not fully wake up"


# ---------------------------------------------------------------------------------------------------
# Weight sync
# ---------------------------------------------------------------------------------------------------

_WRAPPER_PARTS = {"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"}


def hf_name(name):
    """The HF name of a policy parameter: drop wrapper components (activation checkpointing, torch.compile)."""
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_PARTS)


def _layer_of(name):
    match = re.match(r"model\.layers\.(\d+)\.", name)
    return int(match.group(1)) if match else name.split(".")[0] + "." + name.split(".")[1]


@torch.no_grad()
def sync_weights(policy, engine):
    """Push the policy's weights into the engine; returns the wall time in seconds.

    For FSDP2 (torch 2.13 CPU / 2.14 GPU; parameters are DTensors): each parameter is cast to the engine's
    dtype on its shard, then all-gathered with full_tensor() (gloo on CPU, NCCL on GPU), in named_parameters()
    order, which is the same on every rank. The engine receives one decoder layer at a time, so at most one
    layer (or the embedding) exists in full at once. Names are HF names; named_parameters() lists a tied
    lm_head.weight once, as model.embed_tokens.weight (vllm.md §2.2). Raises if any engine parameter was not
    loaded, so a sync that did not land cannot go unnoticed, and refuses NaN/inf weights.
    """
    start = time.perf_counter()
    loaded = set()
    named = ((hf_name(name), p) for name, p in policy.named_parameters())
    for _, group in itertools.groupby(named, key=lambda item: _layer_of(item[0])):
        batch = []
        for name, p in group:
            p = p.detach().to(engine.dtype)
            batch.append((name, p.full_tensor() if isinstance(p, DTensor) else p))
        finite = torch.stack([torch.isfinite(t).all() for _, t in batch])  # one device sync per layer
        if not finite.all():
            bad = [name for (name, _), ok in zip(batch, finite.tolist()) if not ok]
            raise FloatingPointError(f"policy weights hold NaN or inf ({', '.join(bad[:3])}): not loading them")
        loaded |= engine.load_weights(batch)
        del batch
    missing = engine.param_names - loaded
    if missing:
        raise RuntimeError(f"weight sync left {len(missing)} engine parameters unloaded, e.g. {sorted(missing)[:3]}")
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------------

def _bench_generate(prompts=16, n=8, max_tokens=256, repeats=2):
    """TorchEngine vs HF generate on the tiny model: 16 copies of the π1 prompt × 8 samples = batch 128, every
    row running to max_tokens. Best of `repeats` after a full-size warm-up (the first call pays the allocator)."""
    import model
    from data import prepare as data
    tok = model.tiny_tokenizer()
    prompt = tok(data.chat_prompt(tok, "The pressure P exerted by wind on a sail varies jointly as the area A "
                                       "of the sail and the cube of the wind's velocity V."), add_special_tokens=False).input_ids
    engine = TorchEngine(model.tiny_model(tok), [10**6])  # an EOS never sampled: every row runs max_tokens
    ids = torch.tensor([prompt] * (prompts * n))

    def ours():
        engine.generate([prompt] * prompts, n=n, temperature=0.6, max_tokens=max_tokens, seed=0)

    @torch.no_grad()
    def hf():
        engine.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.6, top_k=0,
                              max_new_tokens=max_tokens, min_new_tokens=max_tokens, pad_token_id=0)

    best = {"TorchEngine": math.inf, "HF generate": math.inf}
    for run in range(repeats + 1):
        for name, fn in (("TorchEngine", ours), ("HF generate", hf)):
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start) if run else best[name]
    print(f"tiny Qwen2 (hidden 64, 2 layers), CPU, {torch.get_num_threads()} threads: batch {prompts * n} "
          f"({prompts} prompts × {n}), prompt {len(prompt)} tokens, {max_tokens} new tokens per row")
    for name, seconds in best.items():
        print(f"  {name}: {prompts * n * max_tokens / seconds:,.0f} tokens/s ({seconds:.2f} s, best of {repeats})")


def _bench_sync(repeats=3):
    """Sync time for Qwen2.5-Math-1.5B's shape (random weights, fp32 FSDP2 shards → bf16 engine), under torchrun."""
    import model
    from transformers import Qwen2Config, Qwen2ForCausalLM
    rank, world, device = model.setup_distributed()
    config = Qwen2Config(**model.QWEN25_MATH_1_5B)
    with torch.device("meta"):
        policy, engine_model = model.LogProbLM(Qwen2ForCausalLM(config)), Qwen2ForCausalLM(config)
    model.shard(policy, device)
    policy.to_empty(device=device)
    torch.manual_seed(rank)
    for p in policy.parameters():
        p.data.normal_(0, 0.02)  # each rank fills its own shard
    engine_model.to_empty(device=device).tie_weights()  # to_empty allocates lm_head apart from the embedding
    engine = TorchEngine(engine_model.to(torch.bfloat16), [config.eos_token_id])
    times = [sync_weights(policy, engine) for _ in range(repeats)]
    if rank == 0:
        n_params = sum(p.numel() for p in engine.model.parameters())
        print(f"sync_weights, Qwen2.5-Math-1.5B shape ({n_params / 1e9:.2f} B parameters, tied embeddings), "
              f"{world} CPU ranks over gloo, fp32 shards → bf16 engine, per decoder layer: "
              f"{' / '.join(f'{t:.2f}' for t in times)} s")
    dist.destroy_process_group()


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--bench"]:
        _bench_generate()
    elif sys.argv[1:] == ["--bench-sync"]:
        _bench_sync()
    else:
        print(__doc__)
