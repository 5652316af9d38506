"""A minimal knowledge-insulation training step on a tiny torch model, fed by the vla-data loader.

    vla-data demo --out demo/                   # writes demo/loader.json and the data it names
    python examples/train_loop.py demo/loader.json --steps 20

The backbone (embedding + transformer over image and text tokens) learns by next-token
cross-entropy on `token_loss_mask` (FAST action tokens for robot samples, answers for web ones).
The action expert learns continuous actions by flow matching, attends to the backbone's prefix
features with the gradient stopped (`.detach()`), and never sees FAST tokens (the KI mask).
"""

import argparse

import torch
from torch import nn

from vla_data.loader import ki_attention_mask, make_loader


class TinyKIModel(nn.Module):
    def __init__(self, vocab_size: int, action_dim: int, width: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.image = nn.Sequential(nn.Conv2d(3, width, 16, stride=16), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.backbone = nn.TransformerEncoderLayer(width, 4, 4 * width, batch_first=True)
        self.head = nn.Linear(width, vocab_size)
        self.expert_in = nn.Linear(action_dim + 1, width)
        self.expert = nn.TransformerEncoderLayer(width, 4, 4 * width, batch_first=True)
        self.expert_out = nn.Linear(width, action_dim)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        B, L = batch["tokens"].shape
        image = self.image(batch["images"]["base_0_rgb"].float() / 255)[:, None]  # [B, 1, W]: one image token
        text = self.embed(batch["tokens"])  # [B, L, W]
        mask, _ = ki_attention_mask(batch)  # [B, L+H, L+H], True = may attend
        text_mask = torch.cat(
            [torch.ones(B, L, 1, dtype=torch.bool), mask[:, :L, :L]], dim=2
        )  # text sees the image
        text_mask = torch.cat([torch.ones(B, 1, L + 1, dtype=torch.bool), text_mask], dim=1)
        heads = self.backbone.self_attn.num_heads
        features = self.backbone(torch.cat([image, text], 1), src_mask=~text_mask.repeat_interleave(heads, 0))
        logits = self.head(features[:, :-1])  # position i predicts token i (after the image token)

        # Flow matching: x_t = t * noise + (1 - t) * actions, target velocity = noise - actions.
        actions = batch["actions"]  # [B, H, D]
        t = torch.rand(B, 1, 1)
        noise = torch.randn_like(actions)
        x_t = t * noise + (1 - t) * actions
        expert_tokens = self.expert_in(torch.cat([x_t, t.expand(-1, actions.shape[1], 1)], dim=2))
        prefix = features.detach()  # gradient stop: the expert does not train the backbone
        H = actions.shape[1]
        expert_mask = torch.ones(B, H, L + 1 + H, dtype=torch.bool)
        expert_mask[:, :, 1 : L + 1] = mask[:, L:, :L]  # E sees the prefix, never FAST tokens
        expert_mask[:, :, L + 1 :] = mask[:, L:, L:]
        full = torch.cat([prefix, expert_tokens], 1)
        square = torch.ones(B, L + 1 + H, L + 1 + H, dtype=torch.bool)
        square[:, L + 1 :] = expert_mask
        velocity = self.expert_out(
            self.expert(full, src_mask=~square.repeat_interleave(heads, 0))[:, L + 1 :]
        )
        return {"logits": logits, "velocity": velocity, "target": noise - actions}


def ki_losses(batch: dict, out: dict, alpha: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """CE on `token_loss_mask` targets + alpha * flow-matching MSE on real steps and dims of robot samples."""
    targets = batch["tokens"]
    loss_mask = batch["token_loss_mask"]
    ce = nn.functional.cross_entropy(out["logits"][loss_mask], targets[loss_mask])
    keep = (
        batch["has_actions"][:, None, None]
        & ~batch["action_is_pad"][:, :, None]
        & batch["action_dim_mask"][:, None, :]
    )
    mse = ((out["velocity"] - out["target"]) ** 2)[keep].mean() if keep.any() else torch.zeros(())
    return ce + alpha * mse, {"ce": ce.item(), "flow_mse": mse.item()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="loader.json")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    loader = make_loader(args.config)
    vocab = loader.prompt.total_vocab_size
    model = TinyKIModel(vocab, loader.config.action_dim)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step = 0
    while step < args.steps:
        for batch in loader:
            loss, parts = ki_losses(batch, model(batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 5 == 0 or step in (1, args.steps):
                print(
                    f"step {step}: loss {loss.item():.3f} (ce {parts['ce']:.3f}, flow {parts['flow_mse']:.3f})"
                )
            if step == args.steps:
                break
    print("loader state to save with the checkpoint:", loader.state_dict())


if __name__ == "__main__":
    main()
