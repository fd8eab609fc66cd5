"""Temperature + top-p (nucleus) sampling as a logits processor, for `generate` to decode greedily.

transformers samples by sorting the whole vocabulary (top-p), then drawing from a softmax over
all of it; on a CPU, with SmolLM2's 49k-token vocabulary and dozens of sequences per step, that
costs about as much as the model's forward pass. This processor draws from the same
distribution but sorts only the best `candidates` logits (the whole vocabulary for a row whose
nucleus does not fit in them) and leaves one finite score per row, so greedy decoding returns the
drawn token. Seeding works as for `generate`: the draw uses torch's global generator.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class NucleusSampler(LogitsProcessor):
    def __init__(self, temperature: float, top_p: float, candidates: int = 256):
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (use greedy decoding for 0)")
        if not 0 < top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        self.temperature = temperature
        self.top_p = top_p
        self.candidates = candidates

    def nucleus(self, scores: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(token ids, probabilities) of the `width` best tokens per row; 0 outside the nucleus."""
        logits = scores.float() / self.temperature
        best, index = logits.topk(min(width, logits.shape[-1]), dim=-1)  # sorted, best first
        probs = (best - torch.logsumexp(logits, dim=-1, keepdim=True)).exp()
        better_mass = probs.cumsum(-1) - probs
        # A token stays while the tokens before it hold less than top_p (the best one always stays),
        # which is transformers' rule `drop if cumulative ascending mass <= 1 - top_p`.
        return index, probs.masked_fill(better_mass >= self.top_p, 0.0)

    def distribution(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token ids, unnormalised weights) per row: the nucleus of each row, exactly."""
        vocabulary = scores.shape[-1]
        if self.top_p >= 1:
            return self.nucleus(scores, vocabulary)
        index, weights = self.nucleus(scores, self.candidates)
        if (weights.sum(-1) < self.top_p).any():  # some row's nucleus is wider than the candidates
            return self.nucleus(scores, vocabulary)
        return index, weights

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        index, weights = self.distribution(scores)
        drawn = index.gather(-1, torch.multinomial(weights, 1))
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(-1, drawn, 0.0)
