"""loss.py — the GRPO and PPO objectives of 1-shot RLVR as pure tensor functions.

What it owns: group-normalised advantages, per-token log-probs and entropy that never materialise the
(N, V) logits, the k3 KL estimator, and the clipped policy-gradient loss with its aggregation modes; for PPO
(the paper's Table 4 / Table 10 PPO rows), GAE advantages and returns, batch whitening, and the clipped value loss.
It imports torch only: no model, config object, process group or global; every hyperparameter is a keyword.

    python loss.py --bench      # memory and time of log-prob + entropy, naive vs chunked (Qwen2.5-Math-1.5B dims)

Shapes: P prompts, G samples per prompt, B = P·G sequences, T response tokens, V vocab, H hidden, N tokens.

Deviations from the paper's run (verl in ypwang61/One-Shot-RLVR@21ed529, ../shared/spec/paper_run.md):
1. Aggregation. verl takes a token mean inside each dynamic micro-batch and weights it by the micro-batch's
   sequence count n_m/128 (§5), so its gradient depends on how the 24,000-token budget happens to split a
   rank's sequences. Ours is one global token mean: the caller passes the response-token count of the whole
   mini-batch over all ranks as `num_tokens`, and the gradient no longer depends on the split.
2. Precision. verl divides the bf16 logits by T in bf16 and then runs fp32 cross-entropy (§5); we cast each
   chunk's logits to fp32 before dividing by T. Same inputs, one rounding fewer.
3. A group of one sample (G = 1) gets advantage 0, since r − mean = 0; verl uses mean 0 and std 1 there
   (advantage = r). The paper's run has G = 8 and never reaches that branch.
4. PPO's GAE ends each episode at the response's last token: the value after it is 0 and padded positions
   hold 0. verl's loop (core_algos.compute_gae_advantage_return) runs through the padded positions of the
   (B, 3072) tensor, where the critic's mask, shifted by one (dp_critic.py: attention_mask[:, -R-1:-1]),
   keeps one extra value, V at the EOS position. With γ = λ = 1 (the paper's setting) the sum telescopes and
   both give A_t = R − V_t exactly; with γ or λ < 1 verl bootstraps from that extra value.
5. The value loss is aggregated like the policy loss (deviation 1: one global mean, not n_m/128-weighted
   micro-batch means) over the response tokens only; verl's critic update, with the same shifted mask, also
   fits that extra post-EOS position toward its return 0.
Unchanged from the paper's run: unbiased std + 1e-6 (§4), clip 0.2 on both sides, the k3 ("low_var_kl")
estimator clamped to ±10, the entropy bonus with its gradient, and all log-probs and the entropy at T = 0.6.
For PPO, as verl: the reward on the last response token, whitening over all response tokens of the batch
(mean, unbiased variance, rsqrt(var + 1e-8)) and ½·max of the clipped and unclipped squared errors.
"""
import math

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def group_advantages(rewards, eps=1e-6, scale_by_std=True):
    """GRPO's outcome advantage: A = (r − mean_group) / (std_group + eps), one value per sequence.

    Shapes: rewards (P, G) -> (P, G). std is unbiased (n − 1) like torch.std in verl's GRPO estimator
    (paper_run.md §4); scale_by_std=False gives Dr. GRPO's r − mean. A group whose rewards are all equal,
    a group of one included, gets exactly 0 (no NaN, no 1e-10 leftovers from float rounding).
    """
    assert rewards.dim() == 2, f"rewards must be (P, G), got {tuple(rewards.shape)}"
    if not rewards.is_floating_point():
        rewards = rewards.float()
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_by_std and rewards.shape[1] > 1:
        adv = adv / (rewards.std(dim=1, keepdim=True) + eps)
    all_equal = (rewards == rewards[:, :1]).all(dim=1, keepdim=True)
    return torch.where(all_equal, torch.zeros_like(adv), adv)


def _scaled_logits(hidden, weight, temperature):
    """z = hidden @ weight.T / T for one chunk, in fp32 (fp64 for fp64 inputs).

    The matmul runs in the inputs' dtype (bf16 under FSDP mixed precision, with fp32 accumulation inside
    the GEMM), like the logits verl and vLLM compute; everything after it runs in fp32.
    """
    z = (hidden @ weight.T).to(torch.promote_types(hidden.dtype, torch.float32))
    return z / temperature if temperature != 1.0 else z


class _ChunkedLogProbEntropy(torch.autograd.Function):
    """Log-prob of the target and entropy at each position, over chunks of tokens, recomputed in backward.

    Per token, with z = logits / T, lse = logsumexp(z), p = softmax(z):
        logp = z[target] − lse                 d logp / dz = onehot(target) − p
        H    = lse − Σ p·z                     d H / dz    = −p · (z − Σ p·z)
    Forward keeps only lse and Σ p·z (N floats each); backward recomputes z chunk by chunk, so the extra
    memory is a few (chunk, V) fp32 buffers instead of several (N, V) tensors.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, chunk_size):
        n = hidden.shape[0]
        dtype = torch.promote_types(hidden.dtype, torch.float32)
        logp, entropy, lse, mean_z = (torch.empty(n, dtype=dtype, device=hidden.device) for _ in range(4))
        for s in range(0, n, chunk_size):
            e = min(s + chunk_size, n)
            z = _scaled_logits(hidden[s:e], weight, temperature)
            lse[s:e] = torch.logsumexp(z, dim=-1)
            logp[s:e] = z.gather(1, targets[s:e, None]).view(-1) - lse[s:e]
            p = (z - lse[s:e, None]).exp_()
            mean_z[s:e] = p.mul_(z).sum(dim=-1)  # Σ_v p·z in p's buffer (a GEMM dot would lose ~1e-4 over 152k terms)
            del z, p
        entropy = lse - mean_z
        ctx.save_for_backward(hidden, weight, targets, lse, mean_z)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, targets, lse, mean_z = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=lse.dtype) if need_weight else None  # accumulate in fp32
        for s in range(0, hidden.shape[0], ctx.chunk_size):
            e = min(s + ctx.chunk_size, hidden.shape[0])
            z = _scaled_logits(hidden[s:e], weight, ctx.temperature)
            p = (z - lse[s:e, None]).exp_()
            # dL/dz = g_logp·(onehot − p) − g_H·p·(z − Σp·z) = −p·(g_logp + g_H·(z − Σp·z)) + g_logp·onehot,
            # computed in place in z's buffer: two (C, V) buffers in all.
            grad_z = z.sub_(mean_z[s:e, None]).mul_(grad_entropy[s:e, None]).add_(grad_logp[s:e, None]).mul_(p).neg_()
            del p
            grad_z.scatter_add_(1, targets[s:e, None], grad_logp[s:e, None])
            grad_z = grad_z.div_(ctx.temperature).to(weight.dtype)  # chain rule through z = logits / T
            if need_hidden:
                grad_hidden[s:e] = grad_z @ weight
            if need_weight and grad_weight.dtype == grad_z.dtype:  # fp32: accumulate in place, no (V, H) temp
                grad_weight.addmm_(grad_z.T, hidden[s:e])
            elif need_weight:  # bf16 weights: bf16 GEMM, fp32 accumulation across chunks
                grad_weight += grad_z.T @ hidden[s:e]
            del grad_z
        grad_weight = grad_weight.to(weight.dtype) if need_weight else None
        return grad_hidden, grad_weight, None, None, None


def token_logprobs_and_entropy(hidden, lm_head_weight, targets, temperature, chunk_size=512):
    """Log-prob of each target token and the entropy of each position, both from logits / temperature.

    Shapes: hidden (N, H), lm_head_weight (V, H), targets (N,) -> logp (N,), entropy (N,), fp32.
    Works over chunks of `chunk_size` tokens and recomputes them in backward, so the (N, V) logits never
    exist at once; values and gradients equal the naive full-logits computation. The paper computes new,
    old and reference log-probs and the entropy all at the sampling temperature 0.6 (paper_run.md §5).
    """
    assert hidden.dim() == 2 and lm_head_weight.dim() == 2 and hidden.shape[1] == lm_head_weight.shape[1], (
        f"hidden (N, H) and lm_head_weight (V, H) expected, got {tuple(hidden.shape)} and {tuple(lm_head_weight.shape)}")
    assert targets.shape == hidden.shape[:1], f"targets must be (N,) = ({hidden.shape[0]},), got {tuple(targets.shape)}"
    assert temperature > 0 and chunk_size > 0
    return _ChunkedLogProbEntropy.apply(hidden, lm_head_weight, targets.long(), float(temperature), int(chunk_size))


def kl_k3(logp, ref_logp):
    """k3 estimator of KL(π‖π_ref) per token (verl's "low_var_kl"): e^(ref−logp) − (ref−logp) − 1 ≥ 0.

    Clamped to [−10, 10] as verl does (paper_run.md §5); the gradient is zero where the clamp is active.
    """
    d = ref_logp - logp
    return (torch.exp(d) - d - 1).clamp(min=-10.0, max=10.0)


def aggregate(x, mask, agg, num_tokens=None, num_seqs=None, max_response_tokens=None):
    """Reduce per-token values (B, T) to a scalar. Counts default to this call's; for a loss split over
    micro-batches or ranks the caller passes the global `num_tokens` / `num_seqs` so the pieces sum to the whole.
    Dr. GRPO's constant defaults to T, the tensors' width (verl's default); pass `max_response_tokens` when
    micro-batches are padded to different widths, or the constant would change with the split.
    """
    x = torch.where(mask, x, torch.zeros_like(x))  # never x·mask: 0·inf is NaN
    if agg == "token-mean":  # DAPO/verl: every response token weighs the same; longer answers weigh more in total
        return x.sum() / (mask.sum().clamp(min=1) if num_tokens is None else num_tokens)
    n_seqs = mask.shape[0] if num_seqs is None else num_seqs
    if agg == "seq-mean-token-mean":  # GRPO (Shao et al. 2024, eq. 3): 1/|o_i| per sequence; favours short answers
        return (x.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).sum() / n_seqs
    if agg == "seq-mean-token-sum-norm":  # Dr. GRPO (Liu et al. 2025): per-sequence sum / a constant; no length bias
        return (x.sum(dim=1) / (max_response_tokens or mask.shape[1])).sum() / n_seqs
    raise ValueError(f"unknown aggregation {agg!r}; choose one of {AGG_MODES}")


def policy_loss(logp, old_logp, ref_logp, adv, mask, *, clip_low=0.2, clip_high=0.2, kl_coef=0.001,
                entropy=None, entropy_coef=0.001, pg_coef=1.0, agg="token-mean", num_tokens=None,
                num_seqs=None, max_response_tokens=None):
    """The per-token GRPO loss, aggregated:

        pg_coef · max(−adv·ratio, −adv·clip(ratio, 1 − clip_low, 1 + clip_high)) − entropy_coef · H + kl_coef · k3

    with ratio = exp(logp − old_logp). A term with coefficient 0 is skipped (its input may then be None):
    the paper's Table 5 ablations and entropy-only training (pg_coef = 0). At ratio = 1 the gradient of the
    clipped term is exactly −adv per token (torch.maximum splits a tie's gradient half and half).

    Shapes: logp, old_logp, ref_logp, entropy, mask (B, T); adv (B,) per sequence (GRPO) or (B, T) per token
    (PPO's GAE). mask is 1 on response tokens, EOS included. Returns (loss, stats): stats are detached and aggregated like the loss (so they sum over
    micro-batches and ranks, given global counts), except ratio_max / ratio_min over this call's tokens.
    """
    B, T = logp.shape
    for name, t in (("old_logp", old_logp), ("ref_logp", ref_logp), ("entropy", entropy), ("mask", mask)):
        assert t is None or t.shape == (B, T), f"{name} must be ({B}, {T}) like logp, got {tuple(t.shape)}"
    assert adv.shape in ((B,), (B, T)), f"adv must be ({B},) or ({B}, {T}), got {tuple(adv.shape)}"
    if kl_coef and ref_logp is None:
        raise ValueError("kl_coef > 0 needs ref_logp")
    if entropy_coef and entropy is None:
        raise ValueError("entropy_coef > 0 needs entropy")
    mask = mask.bool()
    zero = torch.zeros_like(logp)
    # Padded positions may hold anything, even inf: select them away first, so they get exactly zero gradient.
    logp = torch.where(mask, logp, zero)
    ratio = torch.exp(logp - torch.where(mask, old_logp, zero))
    neg_adv = -adv[:, None] if adv.dim() == 1 else -torch.where(mask, adv, zero)
    pg_plain, pg_clipped = neg_adv * ratio, neg_adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    pg = torch.maximum(pg_plain, pg_clipped)
    token_loss = pg_coef * pg if pg_coef else zero
    kl = None if ref_logp is None else kl_k3(logp, torch.where(mask, ref_logp, zero))
    if kl_coef:
        token_loss = token_loss + kl_coef * kl
    entropy = None if entropy is None else torch.where(mask, entropy, zero)
    if entropy_coef:
        token_loss = token_loss - entropy_coef * entropy
    counts = dict(num_tokens=num_tokens, num_seqs=num_seqs, max_response_tokens=max_response_tokens)
    loss = aggregate(token_loss, mask, agg, **counts)

    with torch.no_grad():
        per_token = {"pg": pg, "clip_frac": (pg_clipped > pg_plain).to(pg.dtype), "ratio_mean": ratio,
                     "kl": kl, "entropy": entropy}
        stats = {k: aggregate(v, mask, agg, **counts) for k, v in per_token.items() if v is not None}
        # extremes over the response tokens (1 when there are none), on the device: no host sync per micro-batch
        inf, one, some = ratio.new_tensor(math.inf), ratio.new_tensor(1.0), mask.any()
        stats["ratio_max"] = torch.where(some, torch.where(mask, ratio, -inf).max(), one)
        stats["ratio_min"] = torch.where(some, torch.where(mask, ratio, inf).min(), one)
    return loss, {k: v.detach() for k, v in stats.items()}


# ---------------------------------------------------------------------------------------------------
# PPO: GAE on a learned critic's values, batch whitening, the clipped value loss
# ---------------------------------------------------------------------------------------------------

def last_token_rewards(rewards, mask):
    """The outcome reward on each response's last token, 0 elsewhere (verl's naive reward manager, §3).

    Shapes: rewards (B,), mask (B, T) -> (B, T).
    """
    assert rewards.shape == mask.shape[:1], f"rewards must be ({mask.shape[0]},), got {tuple(rewards.shape)}"
    last = (mask.sum(dim=1) - 1).clamp(min=0)
    out = torch.zeros(mask.shape, dtype=torch.promote_types(rewards.dtype, torch.float32), device=mask.device)
    return torch.where(mask.bool(), out.scatter(1, last[:, None], rewards[:, None].to(out.dtype)), out)


def gae(rewards, values, mask, *, gamma=1.0, lam=1.0):
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) per token, and the returns A + V:

        δ_t = r_t + γ·V_{t+1} − V_t,    A_t = δ_t + γλ·A_{t+1},    returns_t = A_t + V_t

    Shapes: rewards, values, mask (B, T) -> adv (B, T), returns (B, T). mask is a prefix per row (built from
    lengths): the episode ends at its last token, after which V = 0. Padded inputs may hold anything; padded
    outputs are 0. With γ = λ = 1 and the reward R on the last token, A_t = R − V_t (the paper's setting).
    Computed without a graph: advantages and returns are targets.
    """
    assert rewards.shape == values.shape == mask.shape and mask.dim() == 2, (
        f"rewards, values, mask must be one (B, T) shape, got {tuple(rewards.shape)}, {tuple(values.shape)}, "
        f"{tuple(mask.shape)}")
    with torch.no_grad():
        mask = mask.bool()
        r, v = (torch.where(mask, x, torch.zeros_like(values)) for x in (rewards.to(values.dtype), values))
        adv, next_adv, next_v = torch.zeros_like(v), v.new_zeros(v.shape[0]), v.new_zeros(v.shape[0])
        for t in reversed(range(v.shape[1])):
            next_adv = r[:, t] + gamma * next_v - v[:, t] + gamma * lam * next_adv
            adv[:, t], next_v = next_adv, v[:, t]
        return adv, adv + v


def moments(x, mask):
    """[n, Σx, Σx²] over the masked entries, in float64. Add them over ranks (all_reduce) for batch statistics.

    Shapes: x, mask (B, T) -> (3,).
    """
    x = torch.where(mask.bool(), x, torch.zeros_like(x)).double()
    return torch.stack([mask.sum().double(), x.sum(), x.square().sum()])


def mean_var(m):
    """Mean and unbiased (n − 1) variance from moments(), as verl's masked_var and torch.var."""
    n, total, total_sq = m.unbind()
    mean = total / n.clamp(min=1)
    return mean, ((total_sq - n * mean.square()) / (n - 1).clamp(min=1)).clamp(min=0)


def whiten(adv, mask, m=None, eps=1e-8):
    """(adv − mean) / sqrt(var + eps) over the response tokens (verl masked_whiten, applied to GAE advantages).

    Shapes: adv, mask (B, T) -> (B, T), padded positions 0. `m` is moments(adv, mask) summed over the batch's
    ranks; the default is this call's own tokens.
    """
    mean, var = mean_var(moments(adv, mask) if m is None else m)
    out = ((adv.double() - mean) * torch.rsqrt(var + eps)).to(adv.dtype)
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def value_loss(values, old_values, returns, mask, *, clip_value=0.5, agg="token-mean", num_tokens=None,
               num_seqs=None, max_response_tokens=None):
    """The PPO critic's clipped value loss per token, aggregated like policy_loss (verl compute_value_loss):

        ½ · max((V − R)², (clip(V, V_old − clip_value, V_old + clip_value) − R)²)

    Shapes: values, old_values, returns, mask (B, T). `old_values` are the value pass's, before the update;
    with one critic step per rollout V = V_old and the clip is inert. Padded positions get exactly zero
    gradient. Returns (loss, stats): vf_loss, vf_clipfrac (share of tokens where the clipped error is larger)
    and value_mean, detached and aggregated like the loss.
    """
    for name, t in (("old_values", old_values), ("returns", returns), ("mask", mask)):
        assert t.shape == values.shape, f"{name} must be {tuple(values.shape)} like values, got {tuple(t.shape)}"
    mask = mask.bool()
    zero = torch.zeros_like(values)
    v, old, ret = (torch.where(mask, x, zero) for x in (values, old_values, returns))
    err = (v - ret).square()
    err_clipped = (torch.clamp(v, old - clip_value, old + clip_value) - ret).square()
    counts = dict(num_tokens=num_tokens, num_seqs=num_seqs, max_response_tokens=max_response_tokens)
    loss = aggregate(0.5 * torch.maximum(err, err_clipped), mask, agg, **counts)
    with torch.no_grad():
        stats = {"vf_loss": loss, "vf_clipfrac": aggregate((err_clipped > err).to(v.dtype), mask, agg, **counts),
                 "value_mean": aggregate(v, mask, agg, **counts)}
    return loss, {k: x.detach() for k, x in stats.items()}


# ---------------------------------------------------------------------------------------------------
# Benchmark: python loss.py --bench
# ---------------------------------------------------------------------------------------------------

def _naive_logprobs_and_entropy(hidden, weight, targets, temperature):
    """What one would write first: the (N, V) logits at once, log_softmax, entropy = −Σ p log p."""
    logp_all = torch.log_softmax((hidden @ weight.T) / temperature, dim=-1)
    return logp_all.gather(1, targets[:, None]).squeeze(1), -(logp_all.exp() * logp_all).sum(-1)


def _bench_one(method, n_tokens, out_path, hidden_size=1536, vocab=151936, chunk_size=512):
    """One forward+backward in this (fresh) process; prints JSON with the peak RSS above the inputs."""
    import json
    import resource
    import time
    g = torch.Generator().manual_seed(0)
    hidden = (torch.randn(n_tokens, hidden_size, generator=g)).requires_grad_(True)
    weight = (torch.randn(vocab, hidden_size, generator=g) * 0.02).requires_grad_(True)
    targets = torch.randint(0, vocab, (n_tokens,), generator=g)
    torch.ones(64, 64) @ torch.ones(64, 64)  # start the thread pool before the baseline
    rss_before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
    fn = _naive_logprobs_and_entropy if method == "naive" else (
        lambda *a: token_logprobs_and_entropy(*a, chunk_size=chunk_size))
    t0 = time.perf_counter()
    logp, ent = fn(hidden, weight, targets, 0.6)
    (logp.sum() + 0.5 * ent.sum()).backward()
    seconds = time.perf_counter() - t0
    # VmHWM: this process image's peak RSS. Not ru_maxrss, which survives execve and so would include the
    # RSS of the parent that spawned us (getrusage(2), NOTES).
    peak = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) * 1024
    torch.save({"logp": logp.detach(), "entropy": ent.detach(), "grad_hidden": hidden.grad,
                "grad_weight": weight.grad}, out_path)
    print(json.dumps({"seconds": seconds, "peak_extra_gb": (peak - rss_before) / 2**30}))


def _affine(points, n):
    """Extrapolate a quantity that is affine in the token count from its two largest measured points."""
    (n0, y0), (n1, y1) = sorted(points.items())[-2:]
    return y1 + (y1 - y0) / (n1 - n0) * (n - n1)


def _bench(token_counts=(2048, 4096, 8192), chunk_size=512):
    import json
    import os
    import subprocess
    import sys
    import tempfile
    free_gb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemAvailable")).split()[1]) / 2**20
    print(f"log-prob + entropy forward+backward, fp32 on CPU ({torch.get_num_threads()} threads, {free_gb:.0f} GB free), "
          f"hidden 1536, vocab 151,936 (Qwen2.5-Math-1.5B), T = 0.6, chunk {chunk_size} tokens")
    print(f"{'tokens':>7} {'method':>8} {'peak extra GB':>14} {'seconds':>8}   max rel. error vs naive")
    peak, secs = {"naive": {}, "chunked": {}}, {"naive": {}, "chunked": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in token_counts:
            for method in ("naive", "chunked"):
                if method == "naive" and len(peak["naive"]) >= 2 and _affine(peak["naive"], n) > 0.9 * free_gb:
                    print(f"{n:>7} {method:>8} {_affine(peak['naive'], n):>14.2f}   (extrapolated: more than the "
                          f"{free_gb:.0f} GB free, not run)")
                    continue
                path = os.path.join(tmp, f"{method}.pt")
                proc = subprocess.run([sys.executable, __file__, "--bench-one", method, str(n), path, str(chunk_size)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:  # e.g. killed for memory
                    print(f"{n:>7} {method:>8} {'failed (exit ' + str(proc.returncode) + ')':>23}")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                peak[method][n], secs[method][n] = r["peak_extra_gb"], r["seconds"]
                err = ""
                if method == "chunked" and n in peak["naive"]:
                    ours, naive = torch.load(path), torch.load(os.path.join(tmp, "naive.pt"))
                    err = "  ".join(f"{k} {((ours[k] - naive[k]).abs().max() / naive[k].abs().max()).item():.1e}"
                                    for k in ours)
                print(f"{n:>7} {method:>8} {r['peak_extra_gb']:>14.2f} {r['seconds']:>8.2f}   {err}")
    n_max = max(peak["chunked"])
    naive_peak = peak["naive"].get(n_max) or _affine(peak["naive"], n_max)
    naive_secs = secs["naive"].get(n_max) or _affine(secs["naive"], n_max)
    print(f"at {n_max} tokens: peak memory {naive_peak / peak['chunked'][n_max]:.1f}x lower than naive, time "
          f"{secs['chunked'][n_max] / naive_secs:.2f}x naive's (naive {'measured' if n_max in peak['naive'] else 'extrapolated'})")
    print(f"extrapolated to the paper's 24,000-token micro-batch: naive ≈ {_affine(peak['naive'], 24000):.1f} GB, "
          f"chunked ≈ {_affine(peak['chunked'], 24000):.1f} GB")


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["--bench"]:
        _bench()
    elif sys.argv[1:2] == ["--bench-one"]:
        _bench_one(sys.argv[2], int(sys.argv[3]), sys.argv[4], chunk_size=int(sys.argv[5]))
    else:
        print(__doc__)
