"""model.py — the models and where they live: loading (HF folders or the tiny in-code ones), the log-prob
module the loss trains, the PPO critic, dtypes (`to_dtype`: parameters only, fp32 buffers stay fp32), FSDP2
sharding, building sharded models from rank 0's weights (`from_rank0`), and the process group. rlvr.py (the
loop), eval.py, rollout.py and bench.py import this file; it imports no other project file but loss.py.
"""
import argparse
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, fully_shard

import loss as L

# ---------------------------------------------------------------------------------------------------
# Tiny models for CPU: a random Qwen2 from a config and a byte-level tokenizer built in code
# ---------------------------------------------------------------------------------------------------

# Qwen2.5-Math's chat template, restricted to what RLVR uses (no tools): a default system turn when the
# conversation has none, then each turn as <|im_start|>role\ncontent<|im_end|>\n, then the generation
# prompt. It renders exactly what the released template renders for such conversations.
QWEN_MATH_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within \\\\boxed{}.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# The toy task's tokens: its boxed answers, and the prompt's fixed text as whole tokens, as a real BPE vocabulary
# merges them: the template's system turn and roles, the toy question's "What is ", and the training suffix
# (data/prepare.py's PROMPT_SUFFIX). The toy prompt is then 17 tokens instead of 183 bytes, and a toy step 3-6x
# cheaper (measured: fp32 0.76 s -> 0.24 s; bf16 training 4.1 s -> 0.69 s, where bf16 matmuls on a CPU without
# AVX-512 are 20-30x slower than fp32: docs/gpu.md).
TOY_TOKENS = [f"\\boxed{{{d}}}" for d in range(10)] + [
    "system\nPlease reason step by step, and put your final answer within \\boxed{}.", "user\nWhat is ",
    " Let's think step by step and output the final answer within \\boxed{}.", "assistant\n"]


def tiny_tokenizer(extra_tokens=()):
    """A byte-level tokenizer (any text round-trips) with Qwen's special tokens and chat template.

    Ids: 0-255 bytes, 256 <|endoftext|> (eos = pad, as Qwen2.5-Math's base tokenizer), 257 <|im_start|>,
    258 <|im_end|>, then `extra_tokens` as whole tokens (the toy preset's boxed answers).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.add_tokens(list(extra_tokens))
    tok.chat_template = QWEN_MATH_CHAT_TEMPLATE
    return tok


def tiny_model(tokenizer, hidden_size=64, num_layers=2, seed=0):
    """A random Qwen2ForCausalLM shaped like Qwen2.5-Math-1.5B (GQA, tied embeddings), but tiny. Two heads of
    32 over one KV head: vLLM's CPU attention needs head_dim >= 32, and vLLM's Qwen2 derives head_dim from
    hidden / heads (vllm/model_executor/models/qwen2.py:150)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=4096, tie_word_embeddings=True, rms_norm_eps=1e-6,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)


# Qwen2.5-Math-1.5B's architecture (its config.json), for benchmarks with random weights at the real shape.
QWEN25_MATH_1_5B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                        num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=4096,
                        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                        bos_token_id=151643, eos_token_id=151643)
# Qwen2.5-0.5B's architecture (its config.json): a benchmark shape that fits twice (fp32 engine and shards) in 24 GiB.
QWEN25_0_5B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                   num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096, rope_theta=1e6,
                   rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643)


# ---------------------------------------------------------------------------------------------------
# Distributed setup, models, FSDP2
# ---------------------------------------------------------------------------------------------------

def setup_distributed():
    """torchrun's env → process group (NCCL on GPU, gloo on CPU). Returns (rank, world_size, device).

    Without torchrun it sets up a one-process group as torchrun would (its env variables included, on a free
    port): VLLMEngine needs a group and external_launcher reads RANK/LOCAL_RANK (vllm/v1/executor/
    uniproc_executor.py:195)."""
    if "RANK" not in os.environ:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=timedelta(minutes=30))
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", timeout=timedelta(minutes=30))
    return rank, world, device


def end_distributed():
    """The end of a torchrun worker that used FSDP2, after an orderly shutdown: destroy the process group, run the
    atexit handlers (the grader's workers, logging), flush, and exit with status 0 without interpreter finalization.

    Why (torch 2.13): DTensor's global sharding-propagation caches keep FSDP2's DeviceMesh alive, and the mesh keeps
    the process group, with its gloo worker and transport threads, alive past destroy_process_group. A process
    group freed during interpreter finalization can abort the process: "terminate called without an active
    exception", SIGABRT, after all work is done (seen in CI; 8 of 40 runs of a 5-line gloo script that keeps one
    reference to the group, 0 of 25 when it ends here instead). Error paths do not come here: they raise.
    """
    import atexit
    import sys
    if dist.is_initialized():
        dist.destroy_process_group()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class UserError(Exception):
    """A mistake the user can fix (a flag value, a file, a folder, the world size): reported as one line."""


def exit_user_error(error):
    """The end of an entry point on a UserError, the same on every rank, before any collective: rank 0 (RANK, or
    the only process) prints "error: <reason>" once, as the last thing our processes print, and every rank exits
    with status 1; no traceback. The other ranks wait a moment first, so that torchrun, which stops the remaining
    workers when one exits, never stops rank 0 before it has printed (it then names rank 0 as the root cause)."""
    import sys
    import time
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"error: {error}", file=sys.stderr, flush=True)
    else:
        time.sleep(3)
    sys.exit(1)


class ArgParser(argparse.ArgumentParser):
    """argparse, with its usage errors (an unknown flag, a value of the wrong type) raised as UserError, so that an
    entry point reports them like every other user error (exit_user_error), once under torchrun."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


# Where an HF folder keeps its weights; a folder with none of these cannot be loaded.
_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "model*.bin")


def _check_safetensors(path):
    """Raise UserError if `path` is not a complete safetensors file: an 8-byte header length, a JSON header, and
    every tensor's data inside the file (a truncated download fails here, not deep inside the loader)."""
    import json
    import struct
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if n is None or 8 + n > size:
            raise UserError(f"model folder {path.parent}: {path.name} is damaged (truncated: {size} bytes, its "
                            f"header says {'?' if n is None else 8 + n}+); download or export it again")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"model folder {path.parent}: {path.name} is damaged (its header is not JSON: {e})") from e
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
               and "data_offsets" in t), default=0)
    if 8 + n + end > size:
        raise UserError(f"model folder {path.parent}: {path.name} is damaged (truncated: {size} bytes of "
                        f"{8 + n + end}); download or export it again")


def check_model(name):
    """Raise UserError unless `name` can be loaded as an HF causal LM, before anything is built: "tiny"; a local
    folder with config.json, a tokenizer and complete weight files; or a hub id ("org/name") not shaped like a
    path. What is wrong is named: no such path, not a model folder, which file is damaged."""
    from pathlib import Path
    if name == "tiny":
        return
    path = Path(name).expanduser()
    if not path.exists():
        looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/")
        if looks_like_path or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise UserError(f"--model {name}: no such folder (give an HF model folder, or a hub id such as "
                            f"Qwen/Qwen2.5-Math-1.5B on a machine that can download it)")
        return  # a hub id: transformers / vLLM download it (or find it in the HF cache)
    if not path.is_dir():
        raise UserError(f"--model {name}: not a model folder (a file; give the folder that holds config.json)")
    if not (path / "config.json").is_file():
        raise UserError(f"--model {name}: not a model folder (no config.json in it)")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise UserError(f"--model {name}: the folder has no tokenizer (tokenizer.json or tokenizer_config.json)")
    weights = sorted(f for pattern in _WEIGHT_FILES for f in path.glob(pattern))
    if not weights:
        raise UserError(f"--model {name}: the folder has no weights (*.safetensors or pytorch_model*.bin)")
    for f in weights:
        if f.suffix == ".safetensors":
            _check_safetensors(f)


class LogProbLM(torch.nn.Module):
    """An HF causal LM whose forward returns (log-prob, entropy) of given target tokens, never (N, V) logits.

    It holds the HF model's own `model` and `lm_head`, so parameter names stay HF names. The lm_head weight is
    used inside this forward, where FSDP2 has it unsharded (a tied weight is the embedding's).
    """

    def __init__(self, lm):
        super().__init__()
        self.model, self.lm_head, self.config = lm.model, lm.lm_head, lm.config

    def forward(self, input_ids, positions, targets, temperature, chunk_size):
        """input_ids (B, L) right-padded; positions = (rows, cols) of the N hidden states that predict targets (N,)."""
        # Causal mask only (no attention_mask): exact for right padding. No KV cache in training.
        hidden = self.model(input_ids=input_ids, use_cache=False).last_hidden_state
        return L.token_logprobs_and_entropy(hidden[positions], self.lm_head.weight, targets, temperature,
                                            chunk_size)


class ValueModel(torch.nn.Module):
    """PPO's critic: the actor's checkpoint with a fresh scalar head, as verl loads it (fsdp_workers.py
    CriticWorker: AutoModelForTokenClassification with num_labels = 1 and classifier_dropout 0). Parameter names
    are Qwen2ForTokenClassification's (`model.*`, `score.weight`, `score.bias`); the head is initialised as HF
    initialises it (normal(0, initializer_range), bias 0), seeded so that every rank builds the same one.
    """

    def __init__(self, base_model, seed=0):
        super().__init__()
        self.model, self.config = base_model, base_model.config
        self.score = torch.nn.Linear(base_model.config.hidden_size, 1)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.score.weight.copy_(torch.randn(self.score.weight.shape, generator=g) * self.config.initializer_range)
            self.score.bias.zero_()

    def forward(self, input_ids, positions):
        """input_ids (B, L) right-padded; positions = (rows, cols) of the N hidden states that predict the response
        tokens -> values (N,), fp32. The head runs in fp32 (verl: bf16 under autocast); it is H×1, so this is free."""
        hidden = self.model(input_ids=input_ids, use_cache=False).last_hidden_state[positions]
        return torch.nn.functional.linear(hidden.float(), self.score.weight.float(), self.score.bias.float()).squeeze(-1)


def load_model_and_tokenizer(name, *, seed=0, toy=False, weights=True):
    """The HF causal LM (fp32 master weights) and its tokenizer from a folder or hub id; "tiny" builds both in
    code (seeded by `seed`; `toy` adds the toy task's boxed-digit tokens). weights=False: the same model on the
    meta device (config and generation config as loaded, no weights read, no memory): what ranks other than 0
    build, to be filled from rank 0 (from_rank0)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    if name == "tiny":
        tokenizer = tiny_tokenizer(TOY_TOKENS if toy else ())
        if weights:
            return tiny_model(tokenizer, seed=seed), tokenizer
        with torch.device("meta"):
            return tiny_model(tokenizer, seed=seed), tokenizer
    tokenizer = AutoTokenizer.from_pretrained(name)
    if weights:
        lm = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    else:
        lm = meta_copy(AutoConfig.from_pretrained(name))
    try:
        lm.generation_config = GenerationConfig.from_pretrained(name)
    except OSError:  # no generation_config.json: the tokenizer's EOS alone stops generation
        pass
    return lm, tokenizer


def context_tokens(name):
    """The model's context in tokens (config max_position_embeddings), as vLLM derives its default max_model_len
    (vllm/config/model.py:2527-2667, which also caps it by the tokenizer's model_max_length and refuses a larger
    user value); None when the config does not say."""
    from transformers import AutoConfig
    return getattr(AutoConfig.from_pretrained(name), "max_position_embeddings", None)


def meta_copy(lm_or_config):
    """A weightless fp32 HF causal LM with the architecture of `lm_or_config` (a model or its config) on the meta
    device, generation config included: built in no time and no memory, then sharded and filled (from_rank0) or
    allocated (to_empty) where it will live."""
    from transformers import AutoModelForCausalLM, PretrainedConfig
    config = lm_or_config if isinstance(lm_or_config, PretrainedConfig) else lm_or_config.config
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if not isinstance(lm_or_config, PretrainedConfig):
        lm.generation_config = lm_or_config.generation_config
    return lm


def to_dtype(module, dtype):
    """Cast the parameters of `module` to `dtype` in place; buffers keep their dtype. module.to(dtype) would also
    cast RoPE's inverse frequencies (`rotary_emb.inv_freq`, fp32 in transformers 5.19: modeling_qwen2.py:83), whose
    bf16 rounding is up to 3.7e-3 relative: at position 3,000 the fastest rotations are then off by radians, a
    spurious KL between a policy and a reference with identical weights. transformers' own from_pretrained(dtype=
    bfloat16) keeps them fp32 too. Every model the project puts in bf16 goes through here."""
    for p in module.parameters():
        p.data = p.data.to(dtype)
    return module


def save_hf_folder(lm, tokenizer, path):
    """Write an in-code model as an HF folder (fp32 safetensors, config, generation config, tokenizer): vLLM
    loads models from folders only. Written to a temporary name and renamed, so a folder is always complete."""
    import shutil
    tmp = f"{path}.tmp{os.getpid()}"
    lm.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def shard(module, device, mp_dtype=None, offload=False):
    """FSDP2 (torch 2.13 CPU / 2.14 GPU): fully_shard each decoder layer, then the root.

    Gradients are summed over ranks, not averaged (divide factor 1, plain SUM collectives, which gloo also
    supports): the loss is already normalised by the global token count, so the sum is the gradient of the
    global mean.
    """
    mp = MixedPrecisionPolicy(param_dtype=mp_dtype, reduce_dtype=torch.float32) if mp_dtype else MixedPrecisionPolicy()
    kwargs = dict(mp_policy=mp, offload_policy=CPUOffloadPolicy() if offload else None)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    for layer in module.model.layers:
        fully_shard(layer, **kwargs)
    fully_shard(module, **kwargs)
    for m in module.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)
    return module


def broadcast_buffers(module, full, device):
    """Every buffer of `module` (e.g. after to_empty: uninitialised) := rank 0's value of it in `full` (None on
    other ranks), on `device`, in `module`'s buffer dtype (fp32 RoPE frequencies stay fp32). Buffers are not in a
    state dict when non-persistent, as RoPE's are, so set_model_state_dict does not fill them."""
    source = dict(full.named_buffers()) if full is not None else {}
    for name, buf in list(module.named_buffers()):
        t = (source[name].to(device, buf.dtype) if dist.get_rank() == 0
             else torch.empty(buf.shape, dtype=buf.dtype, device=device))
        dist.broadcast(t, src=0)
        owner, _, leaf = name.rpartition(".")
        module.get_submodule(owner)._buffers[leaf] = t
    return module


def from_rank0(module, full, device, *, dtype=torch.float32, mp_dtype=None, offload=False):
    """FSDP2 shards of `module` (built on the meta device on every rank, e.g. by meta_copy) with the weights of
    `full` (the same model with weights on rank 0, None elsewhere): cast to `dtype` (parameters only), shard,
    allocate the shards where they live (CPU with `offload`), then torch.distributed.checkpoint.state_dict's
    set_model_state_dict(full_state_dict, broadcast_from_rank0) sends rank 0's tensors one at a time and each rank
    copies its slice into its shard, casting to the shard's dtype (torch 2.13: _state_dict_utils.py
    _broadcast_tensors, _distribute_tensors; it runs over gloo too). So only rank 0 ever holds the full model, in
    host memory, and nothing full is ever moved to the GPU."""
    shard(to_dtype(module, dtype), device, mp_dtype=mp_dtype, offload=offload)
    module.to_empty(device="cpu" if offload else device)
    set_model_state_dict(module, full.state_dict() if full is not None else {},
                         options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    return broadcast_buffers(module, full, device)
