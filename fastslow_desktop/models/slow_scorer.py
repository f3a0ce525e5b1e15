"""Runtime wrappers that give every slow model one interface: visual tokens once, then scores.

`CaptionerScorer` wraps our bidirectional captioner; `CocaScorer` uses a pretrained open_clip
CoCa as a forward-only likelihood scorer (the hub preset). Both score K candidates in one pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .device import configure_threads, inference_autocast, resolve_device
from .preprocess import ImagePreprocess
from .slow import SlowCaptioner
from .tokenizer import PAD_ID

logger = logging.getLogger(__name__)


def score_by_length(score_tokens: Callable[[str, torch.Tensor], np.ndarray], text: str,
                    memories: Sequence[torch.Tensor]) -> np.ndarray:
    """Score one text against memories of shape (1, T_i, D), in one batch per distinct T_i (rows of a
    batch must have equal token counts); returns (n, …) float32 in the order of `memories`, where
    `score_tokens` gives (rows, …)."""
    scores: np.ndarray | None = None
    by_len: dict[int, list[int]] = {}
    for i, memory in enumerate(memories):
        by_len.setdefault(memory.shape[1], []).append(i)
    for idx in by_len.values():
        out = score_tokens(text, torch.cat([memories[i] for i in idx]))
        if scores is None:
            scores = np.zeros((len(memories), *out.shape[1:]), np.float32)
        scores[idx] = out
    return scores if scores is not None else np.zeros(0, np.float32)


def trim_padding(ids: torch.Tensor) -> torch.Tensor:
    """ids (B, L) without the padding columns after the longest caption. Both decoders are causal and
    every row's padding follows its tokens (the backward decoder reverses only the real tokens), so no
    real position sees the padding: its scores are unchanged, and a short caption decodes a few
    positions instead of the context's every one."""
    return ids[:, : max(2, int((ids != PAD_ID).sum(1).max()))]


class SlowScorerBase:
    """h(x, y) for one text against many images or frame groups; higher = better match."""

    bidirectional: bool = False

    def __init__(self, tokenizer, preprocess: ImagePreprocess, device: torch.device, batch_size: int = 32):
        configure_threads()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.device = device
        self.batch_size = batch_size

    # Subclasses implement these two on tensors.
    def _tokens(self, pixels: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, N, D)
        raise NotImplementedError

    def _score(self, ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:  # (B, L), (B, N, D) -> (B,)
        raise NotImplementedError

    @torch.no_grad()
    def visual_tokens(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Encode images once; the result can be scored against any number of texts. (n, N, D)"""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocess.batch(images[start : start + self.batch_size]).to(self.device)
            with inference_autocast(self.device):
                chunks.append(self._tokens(pixels))
        return torch.cat(chunks) if chunks else torch.zeros(0)

    def _per_batch(self, text: str, tokens: torch.Tensor,
                   fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], empty: tuple[int, ...]) -> np.ndarray:
        """fn(ids, memory) over `tokens` (n, N, D) in batches of the scorer's size, the rows
        concatenated as float32; `empty` is the shape returned for no tokens."""
        ids = self.tokenizer([text]).to(self.device)
        out = []
        for start in range(0, len(tokens), self.batch_size):
            memory = tokens[start : start + self.batch_size].to(self.device)
            with inference_autocast(self.device):
                out.append(fn(ids.expand(len(memory), -1), memory).float().cpu())
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros(empty, np.float32)

    @torch.no_grad()
    def score_tokens(self, text: str, tokens: torch.Tensor) -> np.ndarray:
        """Score one text against precomputed visual tokens (n, N, D) in batches. (n,) float32"""
        return self._per_batch(text, tokens, self._score, (0,))

    def _token_scores(self, ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:  # (B, L) log p per position
        raise NotImplementedError

    @torch.no_grad()
    def score_and_worst(self, text: str, tokens: torch.Tensor) -> np.ndarray:
        """From one decoder pass per batch, for each row of visual tokens (n, N, D): h(x, y) and the
        worst caption position's log-probability (see `worst_token`). (n, 2) float32"""
        real = self.tokenizer([text])[0] != PAD_ID
        if not self.bidirectional:
            real[0] = False  # the start token is never predicted by a forward decoder

        def both(ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
            per_token = self._token_scores(ids, memory).float()
            return torch.stack([per_token.sum(1), per_token[:, real.to(per_token.device)].min(1).values], 1)

        return self._per_batch(text, tokens, both, (0, 2))

    def worst_token(self, text: str, memories: Sequence[torch.Tensor]) -> np.ndarray:
        """Per memory (1, T_i, D): the lowest log-probability of any caption position given the image
        (both directions added), i.e. the word the image explains worst — one wrong colour or shape
        shows here while the sum h(x, y) hides it. (n,) float32"""
        both = score_by_length(self.score_and_worst, text, memories)
        return both[:, 1] if len(both) else np.zeros(0, np.float32)

    def score(self, text: str, images: Sequence[Image.Image]) -> np.ndarray:
        """h(x, y) for each image. (n,) float32"""
        if not images:
            return np.zeros(0, np.float32)
        return self.score_tokens(text, self.visual_tokens(images))

    def score_groups(self, text: str, groups: Sequence[Sequence[Image.Image]]) -> np.ndarray:
        """Score frame groups (video segments): the decoder attends over all frames' tokens at once."""
        memories = [self.visual_tokens(frames).flatten(0, 1).unsqueeze(0) for frames in groups]
        return score_by_length(self.score_tokens, text, memories)


class CaptionerScorer(SlowScorerBase):
    """Our bidirectional captioner with fine-grained tokens."""

    def __init__(self, model: SlowCaptioner, tokenizer, preprocess: ImagePreprocess,
                 device: str | torch.device = "auto", batch_size: int = 32):
        device = resolve_device(device) if isinstance(device, str) else device
        super().__init__(tokenizer, preprocess, device, batch_size)
        self.model = model.to(device).eval()
        self.bidirectional = model.bwd is not None
        self.onnx_tokens = None  # slow_onnx.OnnxVisualTokens when the bundle loader sets one

    def _tokens(self, pixels):
        if self.onnx_tokens is not None and self.onnx_tokens.accepts(pixels):
            return self.onnx_tokens(pixels)
        return self.model.visual_tokens(pixels)

    def _score(self, ids, memory):
        return self.model.score_tokens(trim_padding(ids), memory)

    def _token_scores(self, ids, memory):
        full, ids = ids.shape[1], trim_padding(ids)
        out = self.model.token_logprobs(ids, memory, "fwd")
        out = out + self.model.token_logprobs(ids, memory, "bwd") if self.bidirectional else out
        return torch.nn.functional.pad(out, (0, full - out.shape[1]))  # (B, L) as the caller's ids


class CocaScorer(SlowScorerBase):
    """A pretrained open_clip CoCa read as a forward caption likelihood: Σ log p(yˡ | y<ˡ, x)."""

    def __init__(self, model, tokenizer, preprocess, device: str | torch.device = "auto", batch_size: int = 16):
        device = resolve_device(device) if isinstance(device, str) else device
        super().__init__(tokenizer, preprocess, device, batch_size)
        self.model = model.to(device).eval()

    def _tokens(self, pixels):
        _, image_embs = self.model._encode_image(pixels)  # (B, N, D) attentional-pool tokens
        return image_embs

    def _score(self, ids, memory):
        return self._token_scores(ids, memory).sum(1)

    def _token_scores(self, ids, memory):
        # Only the caption's own positions are decoded: open_clip pads every caption to 76 tokens, and
        # the padding's logits (76 × 49 408 per candidate) cost several times the caption itself.
        full, ids = ids.shape[1], trim_padding(ids)
        _, token_embs = self.model._encode_text(ids)
        logits = self.model.text_decoder(memory, token_embs[:, :-1])  # (B, L-1, V)
        targets = ids[:, 1:]
        logp = torch.log_softmax(logits.float(), -1).gather(2, targets.unsqueeze(-1)).squeeze(-1)
        # where(), not a product: padded rows can be NaN (fully masked attention) and NaN*0 is NaN.
        logp = torch.where(targets != PAD_ID, logp, torch.zeros_like(logp))
        out = torch.cat([torch.zeros_like(logp[:, :1]), logp], 1)  # position 0 is never predicted
        return torch.nn.functional.pad(out, (0, full - out.shape[1]))  # (B, L) as the caller's ids
