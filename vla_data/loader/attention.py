"""The knowledge-insulation attention mask over text tokens and action-expert tokens.

Sequence layout per sample: L text positions (prefix P, postfix F, padding) then H expert
positions E. Images are the model's business (they go in front of P and behave like P).
    P -> P            (bidirectional)
    F -> P, F[<=q]    (causal over the postfix)
    E -> P, E         (never F: the expert cannot see FAST tokens)
    padding -> itself only; samples without actions have no E.
"""

from __future__ import annotations

import torch


def ki_attention_mask(batch: dict, horizon: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask `[B, L+H, L+H]` (query, key; True = may attend) and position ids `[B, L+H]`."""
    token_mask = batch["token_mask"]
    ar = batch["token_ar_mask"] & token_mask
    has_actions = batch["has_actions"]
    B, L = token_mask.shape
    H = horizon if horizon is not None else batch["actions"].shape[1]
    prefix = token_mask & ~ar
    expert = has_actions[:, None].expand(B, H)

    # Text block, openpi's cumulative convention: key k is visible to query q if cumsum[k] <= cumsum[q].
    steps = torch.cumsum(ar.long(), dim=1)
    text = (steps[:, None, :] <= steps[:, :, None]) & token_mask[:, None, :] & token_mask[:, :, None]

    mask = torch.zeros(B, L + H, L + H, dtype=torch.bool)
    mask[:, :L, :L] = text
    mask[:, L:, :L] = expert[:, :, None] & prefix[:, None, :]
    mask[:, L:, L:] = expert[:, :, None] & expert[:, None, :]
    # E -> F and F -> E stay False: the expert and the FAST tokens never see each other.
    index = torch.arange(L + H)
    mask[:, index, index] |= True  # padding attends to itself, keeps softmax finite

    text_positions = torch.cumsum(token_mask.long(), dim=1) - 1
    expert_positions = prefix.sum(dim=1, keepdim=True) + torch.arange(H)[None, :]
    positions = torch.cat([text_positions.clamp(min=0) * token_mask, expert_positions * expert], dim=1)
    return mask, positions
