"""Tests for loss.py (CPU, float64 where exactness matters): a slow per-token reference, hand-computed
cases, masking and split invariance, the aggregation formulas, and chunked vs naive log-probs."""
import math

import pytest
import torch

from loss import (AGG_MODES, gae, group_advantages, kl_k3, last_token_rewards, moments, policy_loss,
                  token_logprobs_and_entropy, value_loss, whiten)

F64 = torch.float64


# ---------------------------------------------------------------------------------------------------
# group_advantages
# ---------------------------------------------------------------------------------------------------

# paper_run.md §4: k correct of 8 -> (advantage of a correct sample, advantage of a wrong one)
PAPER_ADVANTAGE_TABLE = {1: (2.474867, -0.353552), 2: (1.620182, -0.540061), 3: (1.207612, -0.724567),
                         4: (0.935413, -0.935413), 5: (0.724567, -1.207612), 6: (0.540061, -1.620182),
                         7: (0.353552, -2.474867)}


@pytest.mark.parametrize("k", sorted(PAPER_ADVANTAGE_TABLE))
def test_advantages_match_paper_table(k):
    rewards = torch.tensor([[1.0] * k + [0.0] * (8 - k)])
    adv = group_advantages(rewards)
    plus, minus = PAPER_ADVANTAGE_TABLE[k]
    assert adv[0, :k].tolist() == pytest.approx([plus] * k, abs=1e-6)
    assert adv[0, k:].tolist() == pytest.approx([minus] * (8 - k), abs=1e-6)
    # closed form of §4: sd = sqrt(k(8-k)/56), A+ = (1 - k/8)/(sd + 1e-6)
    sd = math.sqrt(k * (8 - k) / 56)
    assert adv[0, 0].item() == pytest.approx((1 - k / 8) / (sd + 1e-6), rel=1e-6)


def test_advantages_all_equal_groups_are_exactly_zero():
    rewards = torch.tensor([[0.0] * 8, [1.0] * 8, [0.1] * 8, [1 / 3] * 8, [1.0, 0, 1, 0, 1, 0, 1, 0]])
    adv = group_advantages(rewards)
    assert torch.equal(adv[:4], torch.zeros(4, 8))  # exact zeros, not 1e-10 leftovers
    assert not torch.isnan(adv).any()
    assert torch.equal(group_advantages(rewards, scale_by_std=False)[:4], torch.zeros(4, 8))


def test_advantages_group_of_one_and_dr_grpo():
    assert torch.equal(group_advantages(torch.tensor([[1.0], [0.0]])), torch.zeros(2, 1))
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert group_advantages(rewards, scale_by_std=False).tolist() == [[0.75, -0.25, -0.25, -0.25]]
    # unbiased std: std([1,0,0,0]) = sqrt(0.25) = 0.5 with n-1; the population std would give sqrt(3)/4
    assert group_advantages(rewards)[0, 0].item() == pytest.approx(0.75 / (0.5 + 1e-6), rel=1e-7)
    assert group_advantages(torch.tensor([[1, 0]])).dtype == torch.float32  # int rewards are promoted


# ---------------------------------------------------------------------------------------------------
# kl_k3
# ---------------------------------------------------------------------------------------------------

def test_kl_k3_hand_values_and_clamp():
    logp = torch.tensor([-1.0, -2.0, -1.0, 0.0], dtype=F64)
    ref = torch.tensor([-1.0, -1.0, -2.0, 20.0], dtype=F64)
    expected = [0.0, math.e - 1 - 1, math.exp(-1) + 1 - 1, 10.0]  # d = ref - logp: 0, 1, -1, 20 (clamped)
    assert kl_k3(logp, ref).tolist() == pytest.approx(expected, abs=1e-12)
    logp.requires_grad_(True)
    kl_k3(logp, ref).sum().backward()
    # d/dlogp [e^d - d - 1] = -(e^d - 1); zero where the clamp is active
    assert logp.grad.tolist() == pytest.approx([0.0, -(math.e - 1), -(math.exp(-1) - 1), 0.0], abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# policy_loss against a slow per-token reference
# ---------------------------------------------------------------------------------------------------

def reference_aggregate(token_loss, mask, agg, max_response_tokens):
    """token_loss(b, t) summed one masked token at a time in plain Python, then aggregated by `agg`."""
    B, T = mask.shape
    seq_terms, total, count = [], 0.0, 0
    for b in range(B):
        seq_sum, seq_len = 0.0, 0
        for t in range(T):
            if mask[b, t]:
                seq_sum, seq_len = seq_sum + token_loss(b, t), seq_len + 1
        total, count = total + seq_sum, count + seq_len
        seq_terms.append((seq_sum, seq_len))
    if agg == "token-mean":
        return total / count
    if agg == "seq-mean-token-mean":
        return sum(s / max(n, 1) for s, n in seq_terms) / B
    return sum(s / max_response_tokens for s, _ in seq_terms) / B


def reference_policy_loss(logp, old_logp, ref_logp, entropy, adv, mask, *, clip_low, clip_high, kl_coef,
                          entropy_coef, pg_coef, agg, max_response_tokens):
    """The loss written one token at a time in plain Python over scalar tensors (autograd-able)."""
    def token_loss(b, t):
        ratio = torch.exp(logp[b, t] - old_logp[b, t])
        clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
        a = adv[b, t] if adv.dim() == 2 else adv[b]  # per token (PPO) or per sequence (GRPO)
        pg = torch.max(-a * ratio, -a * clipped)
        d = ref_logp[b, t] - logp[b, t]
        kl = torch.clamp(torch.exp(d) - d - 1, -10, 10)
        return pg_coef * pg - entropy_coef * entropy[b, t] + kl_coef * kl
    return reference_aggregate(token_loss, mask, agg, max_response_tokens)


def random_batch(B=5, T=7, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=F64) * 3
    old_logp = logp + (torch.rand(B, T, generator=g, dtype=F64) - 0.5) * spread  # ratios from ~0.78 to ~1.28
    ref_logp = logp + (torch.rand(B, T, generator=g, dtype=F64) - 0.5)
    entropy = torch.rand(B, T, generator=g, dtype=F64) * 2
    adv = torch.randn(B, generator=g, dtype=F64)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return logp, old_logp, ref_logp, entropy, adv, mask


COEFS = [dict(kl_coef=0.001, entropy_coef=0.001, pg_coef=1.0),  # the paper's run
         dict(kl_coef=0.5, entropy_coef=0.3, pg_coef=1.0, clip_low=0.1, clip_high=0.28),  # asymmetric clip
         dict(kl_coef=0.0, entropy_coef=0.001, pg_coef=0.0)]  # entropy-only training


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("coefs", COEFS)
def test_policy_loss_matches_per_token_reference(agg, coefs):
    kwargs = dict(clip_low=0.2, clip_high=0.2) | coefs
    logp, old_logp, ref_logp, entropy, adv, mask = random_batch()
    leaves = [t.clone().requires_grad_(True) for t in (logp, ref_logp, entropy, adv)]
    loss, _ = policy_loss(leaves[0], old_logp, leaves[1], leaves[3], mask, entropy=leaves[2], agg=agg,
                          max_response_tokens=9, **kwargs)
    loss.backward()
    ref_leaves = [t.clone().requires_grad_(True) for t in (logp, ref_logp, entropy, adv)]
    ref = reference_policy_loss(ref_leaves[0], old_logp, ref_leaves[1], ref_leaves[2], ref_leaves[3], mask,
                                agg=agg, max_response_tokens=9, **kwargs)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-15)
    for ours, theirs in zip(leaves, ref_leaves):  # a switched-off term leaves no graph: None means zero
        ours_grad = torch.zeros_like(ours) if ours.grad is None else ours.grad
        torch.testing.assert_close(ours_grad, theirs.grad, rtol=1e-12, atol=1e-15)


def test_clipping_by_hand():
    # ratio 1.5 (> 1.2): with adv > 0 the clipped branch wins (-1.2·adv > -1.5·adv): gradient 0, counted as clipped.
    # With adv < 0 the unclipped branch wins (1.5·|adv| > 1.2·|adv|): gradient -adv·ratio, not clipped.
    old = torch.zeros(2, 1, dtype=F64)
    logp = torch.full((2, 1), math.log(1.5), dtype=F64, requires_grad=True)
    adv = torch.tensor([2.0, -2.0], dtype=F64)
    mask = torch.ones(2, 1, dtype=torch.bool)
    loss, stats = policy_loss(logp, old, None, adv, mask, kl_coef=0, entropy_coef=0, agg="token-mean")
    loss.backward()
    assert loss.item() == pytest.approx((-2.0 * 1.2 + 2.0 * 1.5) / 2)
    assert logp.grad[:, 0].tolist() == pytest.approx([0.0, 2.0 * 1.5 / 2])
    assert stats["clip_frac"].item() == pytest.approx(0.5)
    assert stats["ratio_max"].item() == pytest.approx(1.5) and stats["ratio_mean"].item() == pytest.approx(1.5)


def test_gradient_at_ratio_one_is_minus_adv_over_num_tokens():
    logp, _, _, _, adv, mask = random_batch(B=6, T=9, seed=3)
    logp = logp.clone().requires_grad_(True)
    num_tokens = int(mask.sum()) + 17  # e.g. the global count: other ranks hold 17 more tokens
    loss, stats = policy_loss(logp, logp.detach(), None, adv, mask, kl_coef=0, entropy_coef=0,
                              num_tokens=num_tokens)
    loss.backward()
    expected = torch.where(mask, -adv[:, None] / num_tokens, torch.zeros_like(logp))
    torch.testing.assert_close(logp.grad, expected, rtol=1e-14, atol=0)
    assert stats["clip_frac"].item() == 0 and stats["ratio_max"].item() == 1 and stats["ratio_min"].item() == 1


def test_ratio_extremes_cover_response_tokens_only_and_are_1_without_any():
    old = torch.zeros(2, 3, dtype=F64)
    logp = torch.log(torch.tensor([[1.2, 0.5, 9.0], [0.9, 0.01, 1.1]], dtype=F64))  # 9.0 and 0.01 are padding
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]], dtype=torch.bool)
    _, stats = policy_loss(logp, old, None, torch.ones(2, dtype=F64), mask, kl_coef=0, entropy_coef=0)
    assert stats["ratio_max"].item() == pytest.approx(1.2) and stats["ratio_min"].item() == pytest.approx(0.5)
    _, stats = policy_loss(logp, old, None, torch.ones(2, dtype=F64), torch.zeros_like(mask), kl_coef=0, entropy_coef=0)
    assert stats["ratio_max"].item() == 1 and stats["ratio_min"].item() == 1


def test_masked_tokens_get_exactly_zero_gradient_even_with_garbage():
    logp, old_logp, ref_logp, entropy, adv, mask = random_batch(seed=1)
    garbage = torch.tensor([float("inf"), float("-inf"), float("nan")], dtype=F64)
    fill = garbage[torch.arange(mask.numel()) % 3].view(mask.shape)
    leaves = [torch.where(mask, t, fill).requires_grad_(True) for t in (logp, ref_logp, entropy)]
    old = torch.where(mask, old_logp, fill)
    loss, stats = policy_loss(leaves[0], old, leaves[1], adv, mask, entropy=leaves[2], kl_coef=0.1,
                              entropy_coef=0.1)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    for leaf in leaves:
        assert torch.equal(leaf.grad[~mask], torch.zeros_like(leaf.grad[~mask]))  # exactly 0.0, not NaN
        assert torch.isfinite(leaf.grad).all() and leaf.grad[mask].abs().sum() > 0


@pytest.mark.parametrize("agg", AGG_MODES)
def test_padding_invariance(agg):
    logp, old_logp, ref_logp, entropy, adv, mask = random_batch(seed=2)
    pad = lambda t, v: torch.cat([t, torch.full((t.shape[0], 4), v, dtype=t.dtype)], dim=1)
    kwargs = dict(kl_coef=0.1, entropy_coef=0.1, agg=agg, max_response_tokens=20)
    a = logp.clone().requires_grad_(True)
    loss_a, _ = policy_loss(a, old_logp, ref_logp, adv, mask, entropy=entropy, **kwargs)
    loss_a.backward()
    b = pad(logp, -5.0).requires_grad_(True)
    loss_b, _ = policy_loss(b, pad(old_logp, 3.0), pad(ref_logp, 7.0), adv, pad(mask, False),
                            entropy=pad(entropy, 9.0), **kwargs)
    loss_b.backward()
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-14)
    torch.testing.assert_close(b.grad[:, :mask.shape[1]], a.grad, rtol=1e-14, atol=0)
    assert torch.equal(b.grad[:, mask.shape[1]:], torch.zeros(mask.shape[0], 4, dtype=F64))


@pytest.mark.parametrize("agg", AGG_MODES)
def test_split_invariance_with_global_counts(agg):
    """Several micro-batches (as ranks or a token budget would split them) give the one-batch gradient."""
    logp, old_logp, ref_logp, entropy, adv, mask = random_batch(B=8, T=6, seed=4)
    kwargs = dict(kl_coef=0.05, entropy_coef=0.02, agg=agg, max_response_tokens=6)
    whole = logp.clone().requires_grad_(True)
    policy_loss(whole, old_logp, ref_logp, adv, mask, entropy=entropy, **kwargs)[0].backward()

    parts = logp.clone().requires_grad_(True)
    counts = dict(num_tokens=int(mask.sum()), num_seqs=mask.shape[0])
    total = 0.0
    for idx in ([0, 5], [1, 2, 3], [4], [6, 7]):
        sub = lambda t: t[idx]
        loss, _ = policy_loss(sub(parts), sub(old_logp), sub(ref_logp), sub(adv), sub(mask),
                              entropy=sub(entropy), **counts, **kwargs)
        loss.backward()
        total = total + loss.item()
    torch.testing.assert_close(parts.grad, whole.grad, rtol=1e-13, atol=1e-16)
    # and the split without global counts really is different (the test can fail)
    local = policy_loss(logp[[4]], old_logp[[4]], ref_logp[[4]], adv[[4]], mask[[4]], entropy=entropy[[4]],
                        **kwargs)[0]
    assert local.item() != pytest.approx(policy_loss(logp[[4]], old_logp[[4]], ref_logp[[4]], adv[[4]],
                                                     mask[[4]], entropy=entropy[[4]], **counts, **kwargs)[0].item())


def test_aggregation_modes_follow_their_formulas():
    """Two sequences: lengths 1 and 3, pg-only token losses -adv·1 at ratio 1 (adv = 2 and 1)."""
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    logp = torch.zeros(2, 3, dtype=F64)
    adv = torch.tensor([2.0, 1.0], dtype=F64)
    run = lambda agg: policy_loss(logp, logp, None, adv, mask, kl_coef=0, entropy_coef=0, agg=agg,
                                  max_response_tokens=4)[0].item()
    # token-mean: (-2 - 1 - 1 - 1) / 4 tokens
    assert run("token-mean") == pytest.approx(-5 / 4)
    # seq-mean-token-mean: mean over sequences of per-sequence means = (-2/1 + -3/3) / 2
    assert run("seq-mean-token-mean") == pytest.approx(-3 / 2)
    # seq-mean-token-sum-norm: mean over sequences of per-sequence sums / 4 = (-2/4 + -3/4) / 2
    assert run("seq-mean-token-sum-norm") == pytest.approx(-5 / 8)
    # without the constant, Dr. GRPO divides by the tensors' width T = 3 (verl's default)
    default = policy_loss(logp, logp, None, adv, mask, kl_coef=0, entropy_coef=0, agg="seq-mean-token-sum-norm")[0]
    assert default.item() == pytest.approx((-2 / 3 + -3 / 3) / 2)
    with pytest.raises(ValueError, match="unknown aggregation"):
        run("sum")


def test_entropy_only_and_missing_inputs():
    logp, old_logp, ref_logp, entropy, adv, mask = random_batch(seed=5)
    ent = entropy.clone().requires_grad_(True)
    loss, stats = policy_loss(logp, old_logp, None, adv, mask, entropy=ent, pg_coef=0.0, kl_coef=0.0,
                              entropy_coef=0.01)
    loss.backward()
    n = mask.sum().item()
    assert loss.item() == pytest.approx(-0.01 * (entropy * mask).sum().item() / n, rel=1e-12)
    torch.testing.assert_close(ent.grad, (-0.01 / n) * mask.to(F64), rtol=1e-12, atol=0)
    assert "kl" not in stats and stats["entropy"].item() == pytest.approx((entropy * mask).sum().item() / n)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, old_logp, None, adv, mask, entropy=entropy, kl_coef=0.1)
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(logp, old_logp, ref_logp, adv, mask, entropy_coef=0.1)
    with pytest.raises(AssertionError, match="adv must be"):
        policy_loss(logp, old_logp, ref_logp, adv[:-1], mask, entropy=entropy)


# ---------------------------------------------------------------------------------------------------
# token_logprobs_and_entropy: chunked == naive
# ---------------------------------------------------------------------------------------------------

def naive_logprobs_and_entropy(hidden, weight, targets, temperature):
    logits = (hidden @ weight.T) / temperature  # (N, V) at once
    logp_all = torch.log_softmax(logits, dim=-1)
    return logp_all.gather(1, targets[:, None]).squeeze(1), -(logp_all.exp() * logp_all).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_chunked_logprobs_equal_naive_values_and_gradients(chunk_size, temperature):
    g = torch.Generator().manual_seed(0)
    N, H, V = 50, 16, 97
    hidden = torch.randn(N, H, generator=g, dtype=F64) * 2
    weight = torch.randn(V, H, generator=g, dtype=F64)
    targets = torch.randint(0, V, (N,), generator=g)
    g_logp, g_ent = torch.randn(N, generator=g, dtype=F64), torch.randn(N, generator=g, dtype=F64)
    results = []
    for fn in (naive_logprobs_and_entropy, lambda *a: token_logprobs_and_entropy(*a, chunk_size=chunk_size)):
        h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        logp, ent = fn(h, w, targets, temperature)
        ((logp * g_logp).sum() + (ent * g_ent).sum()).backward()  # both outputs feed the loss
        results.append((logp.detach(), ent.detach(), h.grad, w.grad))
    for ours, naive in zip(results[1], results[0]):
        torch.testing.assert_close(ours, naive, rtol=1e-12, atol=1e-12)


def test_chunked_logprobs_float32_and_frozen_weight():
    """fp32 inputs (the CPU trainer) and a weight that needs no gradient (the frozen reference model)."""
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(33, 8, generator=g)
    weight = torch.randn(40, 8, generator=g)
    targets = torch.randint(0, 40, (33,), generator=g)
    h = hidden.clone().requires_grad_(True)
    logp, ent = token_logprobs_and_entropy(h, weight, targets, 0.6, chunk_size=5)
    (logp.sum() + ent.sum()).backward()
    h2 = hidden.clone().requires_grad_(True)
    logp2, ent2 = naive_logprobs_and_entropy(h2, weight, targets, 0.6)
    (logp2.sum() + ent2.sum()).backward()
    assert logp.dtype == torch.float32
    torch.testing.assert_close(logp, logp2.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, ent2.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h.grad, h2.grad, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the reference pass: no graph, same values
        logp3, _ = token_logprobs_and_entropy(hidden, weight, targets, 0.6, chunk_size=5)
    assert torch.equal(logp3, logp.detach())
    assert (ent >= 0).all() and (ent <= math.log(40) + 1e-5).all()  # 0 ≤ H ≤ log V


# ---------------------------------------------------------------------------------------------------
# PPO: per-token advantages in policy_loss, GAE, whitening, the clipped value loss
# ---------------------------------------------------------------------------------------------------

def test_policy_loss_takes_per_token_advantages():
    logp, old_logp, ref_logp, entropy, adv, mask = random_batch(seed=6)
    g = torch.Generator().manual_seed(6)
    token_adv = torch.randn(mask.shape, generator=g, dtype=F64)
    token_adv = torch.where(mask, token_adv, torch.full_like(token_adv, float("nan")))  # padding never read
    kwargs = dict(clip_low=0.2, clip_high=0.28, kl_coef=0.1, entropy_coef=0.01, pg_coef=1.0, agg="token-mean",
                  max_response_tokens=9)
    ours = logp.clone().requires_grad_(True)
    policy_loss(ours, old_logp, ref_logp, token_adv, mask, entropy=entropy, **kwargs)[0].backward()
    theirs = logp.clone().requires_grad_(True)
    reference_policy_loss(theirs, old_logp, ref_logp, entropy, token_adv, mask, **kwargs).backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-15)
    # a per-sequence advantage broadcast over the tokens is the GRPO loss exactly
    broadcast = adv[:, None].expand(mask.shape)
    assert torch.equal(policy_loss(logp, old_logp, ref_logp, broadcast, mask, entropy=entropy, **kwargs)[0],
                       policy_loss(logp, old_logp, ref_logp, adv, mask, entropy=entropy, **kwargs)[0])


def ppo_batch(B=6, T=8, seed=0):
    """Values, rewards on the last token, ragged masks (lengths 1 … T, T included), garbage in the padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0], lengths[1] = T, 1
    mask = torch.arange(T)[None, :] < lengths[:, None]
    values = torch.randn(B, T, generator=g, dtype=F64)
    rewards = torch.randint(0, 2, (B,), generator=g).to(F64)
    token_rewards = last_token_rewards(rewards, mask)
    garbage = torch.full((B, T), float("nan"), dtype=F64)
    return torch.where(mask, values, garbage), rewards, token_rewards, mask


def reference_gae(token_rewards, values, mask, gamma, lam):
    """GAE one token at a time in plain Python floats: the episode ends at the last valid token."""
    B, T = mask.shape
    adv, ret = torch.zeros(B, T, dtype=F64), torch.zeros(B, T, dtype=F64)
    for b in range(B):
        n = int(mask[b].sum())
        next_adv = 0.0
        for t in reversed(range(n)):
            next_v = float(values[b, t + 1]) if t + 1 < n else 0.0
            delta = float(token_rewards[b, t]) + gamma * next_v - float(values[b, t])
            next_adv = delta + gamma * lam * next_adv
            adv[b, t], ret[b, t] = next_adv, next_adv + float(values[b, t])
    return adv, ret


@pytest.mark.parametrize("gamma, lam", [(1.0, 1.0), (0.9, 0.95), (0.5, 0.0), (1.0, 0.7)])
def test_gae_matches_per_token_reference(gamma, lam):
    values, rewards, token_rewards, mask = ppo_batch(seed=int(gamma * 10 + lam * 100))
    adv, ret = gae(token_rewards, values, mask, gamma=gamma, lam=lam)
    ref_adv, ref_ret = reference_gae(token_rewards, values, mask, gamma, lam)
    torch.testing.assert_close(adv, ref_adv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ret, ref_ret, rtol=1e-12, atol=1e-12)
    assert torch.equal(adv[~mask], torch.zeros_like(adv[~mask])) and torch.equal(ret[~mask], adv[~mask])
    if (gamma, lam) != (1.0, 1.0):  # the test can fail: γ, λ < 1 really change the advantages
        assert not torch.allclose(adv, gae(token_rewards, values, mask)[0])


def test_gae_with_unit_gamma_lambda_is_reward_minus_value():
    values, rewards, token_rewards, mask = ppo_batch(B=9, T=11, seed=7)
    adv, ret = gae(token_rewards, values, mask, gamma=1.0, lam=1.0)
    expected = torch.where(mask, rewards[:, None] - values, torch.zeros_like(adv))
    torch.testing.assert_close(adv, expected, rtol=1e-12, atol=1e-12)  # A_t = R − V(s_t)
    torch.testing.assert_close(ret, torch.where(mask, rewards[:, None].expand_as(ret), torch.zeros_like(ret)),
                               rtol=1e-12, atol=1e-12)  # returns = R at every response token
    assert token_rewards[mask].sum() == rewards.sum() and token_rewards[0, -1] == rewards[0]  # the last token


def test_whitening_matches_reference_and_splits_over_ranks():
    values, _, token_rewards, mask = ppo_batch(B=8, T=7, seed=8)
    adv, _ = gae(token_rewards, values, mask, gamma=0.9, lam=0.8)
    flat = [float(x) for x in adv[mask]]
    mean = sum(flat) / len(flat)
    var = sum((x - mean) ** 2 for x in flat) / (len(flat) - 1)  # unbiased, as verl's masked_var
    expected = torch.where(mask, (adv - mean) / math.sqrt(var + 1e-8), torch.zeros_like(adv))
    white = whiten(adv, mask)
    torch.testing.assert_close(white, expected, rtol=1e-12, atol=1e-12)
    assert white[mask].mean().abs() < 1e-12 and abs(white[mask].std().item() - 1) < 1e-6
    # two "ranks" with their moments summed whiten exactly like the whole batch
    parts = ([0, 3, 5], [1, 2, 4, 6, 7])
    total = sum(moments(adv[idx], mask[idx]) for idx in parts)
    for idx in parts:
        torch.testing.assert_close(whiten(adv[idx], mask[idx], total), expected[idx], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(whiten(adv[[0, 3, 5]], mask[[0, 3, 5]]), expected[[0, 3, 5]])  # local ≠ global


def reference_value_loss(values, old_values, returns, mask, *, clip_value, agg, max_response_tokens):
    """½·max((V − R)², (clip(V, V_old ± c) − R)²) one token at a time, aggregated like reference_policy_loss."""
    def token_loss(b, t):
        clipped = torch.clamp(values[b, t], float(old_values[b, t]) - clip_value, float(old_values[b, t]) + clip_value)
        return 0.5 * torch.max((values[b, t] - returns[b, t]) ** 2, (clipped - returns[b, t]) ** 2)
    return reference_aggregate(token_loss, mask, agg, max_response_tokens)


def value_batch(B=6, T=8, seed=0):
    values, _, token_rewards, mask = ppo_batch(B, T, seed)
    g = torch.Generator().manual_seed(seed + 1)
    old = values + (torch.rand(B, T, generator=g, dtype=F64) - 0.5) * 2  # |V − V_old| up to 1: some clipped
    _, returns = gae(token_rewards, old, mask, gamma=0.95, lam=0.9)
    return values, old, returns, mask


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize("clip_value", [0.5, 0.2])
def test_value_loss_matches_per_token_reference(agg, clip_value):
    values, old, returns, mask = value_batch(seed=9)
    ours = values.clone().requires_grad_(True)
    loss, stats = value_loss(ours, old, returns, mask, clip_value=clip_value, agg=agg, max_response_tokens=10)
    loss.backward()
    theirs = torch.where(mask, values, torch.zeros_like(values)).requires_grad_(True)
    ref = reference_value_loss(theirs, old, returns, mask, clip_value=clip_value, agg=agg, max_response_tokens=10)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12, abs=1e-15)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-15)
    assert 0 < stats["vf_clipfrac"].item() < 1  # both branches occur in this batch
    assert stats["vf_loss"].item() == loss.item()


def test_value_loss_by_hand():
    # V = 1, V_old = 0, clip 0.5 → clip(V) = 0.5. Token 1, R = 2: errors 1 and 2.25, the clipped branch wins
    # (gradient 0: V is outside the clip range). Token 2, R = 0: errors 1 and 0.25, the plain branch (gradient V − R).
    values = torch.tensor([[1.0, 1.0]], dtype=F64, requires_grad=True)
    old, returns, mask = torch.zeros(1, 2, dtype=F64), torch.tensor([[2.0, 0.0]], dtype=F64), torch.ones(1, 2, dtype=torch.bool)
    loss, stats = value_loss(values, old, returns, mask, clip_value=0.5)
    loss.backward()
    assert loss.item() == pytest.approx((0.5 * 2.25 + 0.5 * 1.0) / 2)
    assert values.grad[0].tolist() == pytest.approx([0.0, 1.0 / 2])
    assert stats["vf_clipfrac"].item() == 0.5 and stats["value_mean"].item() == 1.0
    # one critic step per rollout: V = V_old, the clip is inert and the gradient is (V − R) / n
    loss, stats = value_loss(values, values.detach(), returns, mask)
    assert stats["vf_clipfrac"].item() == 0 and loss.item() == pytest.approx((0.5 * 1 + 0.5 * 1) / 2)


def test_value_loss_padded_positions_get_exactly_zero_gradient_even_with_garbage():
    values, old, returns, mask = value_batch(seed=10)
    garbage = torch.tensor([float("inf"), float("-inf"), float("nan")], dtype=F64)
    fill = garbage[torch.arange(mask.numel()) % 3].view(mask.shape)
    leaf = torch.where(mask, values, fill).requires_grad_(True)
    loss, stats = value_loss(leaf, torch.where(mask, old, fill), torch.where(mask, returns, fill), mask)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    assert torch.equal(leaf.grad[~mask], torch.zeros_like(leaf.grad[~mask]))
    assert torch.isfinite(leaf.grad).all() and leaf.grad[mask].abs().sum() > 0


@pytest.mark.parametrize("agg", AGG_MODES)
def test_value_loss_split_invariance_with_global_counts(agg):
    values, old, returns, mask = value_batch(B=8, T=6, seed=11)
    whole = torch.where(mask, values, torch.zeros_like(values)).requires_grad_(True)
    value_loss(whole, old, returns, mask, agg=agg, max_response_tokens=6)[0].backward()
    parts = whole.detach().clone().requires_grad_(True)
    counts = dict(num_tokens=int(mask.sum()), num_seqs=mask.shape[0], max_response_tokens=6)
    stats_sum = 0.0
    for idx in ([0, 5], [1, 2, 3], [4], [6, 7]):
        loss, stats = value_loss(parts[idx], old[idx], returns[idx], mask[idx], agg=agg, **counts)
        loss.backward()
        stats_sum += stats["vf_loss"].item()
    torch.testing.assert_close(parts.grad, whole.grad, rtol=1e-13, atol=1e-16)
    assert stats_sum == pytest.approx(value_loss(whole, old, returns, mask, agg=agg, max_response_tokens=6)[0].item(),
                                      rel=1e-13)
