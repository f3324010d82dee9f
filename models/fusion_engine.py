"""The one layer loop behind every fusion strategy (docs/REFERENCE.md §4.2, §4.3).

Every strategy has the same small interface,

    fusion(gmc, locals_, masks, plan) -> (gmc_out, locals_out)

with ``gmc`` (B, 3, D), ``locals_`` = [H_t (B, T_t, D), H_a (B, T_a, D), H_v (B, T_v, D)], ``masks`` =
bool (B, T_m), True = valid, and a :class:`~models.execution.BatchPlan`; the outputs keep those shapes.
:class:`FusionEngine` runs L layers. In each, every modality's local tokens H_m are updated by a
cross-self transformer (CST) reading the strategy's contexts (:meth:`FusionEngine.contexts`: the global
tokens for the EMT, other modalities' local tokens for OOLL / OALL), and the global multimodal context
(GMC) reads each H_m with a second CST application; :class:`~models.blocks.AttentionPool` pools the three
GMC copies. The global-from-local half is the EMT's in every strategy, so the heads and the DLFR losses
always get the GMC they need.

A strategy is a subclass that writes :meth:`~FusionEngine.contexts` (and sets :attr:`~FusionEngine.SERIAL`
or :attr:`~FusionEngine.PACKABLE` when they differ), registered in :data:`models.fusion.FUSIONS`.

Module layout: ``layers[l]["local"][m]`` is the CST of layer l updating modality m's locals,
``layers[l]["global"][m]`` the one letting the GMC read modality m, ``pools[l]`` layer l's pool. The
sharing switches alias modules as the reference's deep copies do (all True, the shipped config, leaves
ONE CST and one pool in total):

* ``mpu_share``: the CST updating H_m also updates the GMC from H_m (the two directions of one
  mutual-promotion unit);
* ``modality_share``: one local (and one global) CST for all modalities;
* ``layer_share``: every layer reuses layer 1's modules (CSTs and pool).

The reference's module names (``mpus.{l}.{m}.{direction}``, ...) belong to the checkpoint key table
(:mod:`models.reference_checkpoint`) only.

Update order. Inside a layer the modalities go text -> audio -> vision; modality m's local update and then
the GMC's read of m run before modality m + 1 (the reference's order, which fixes the order of the dropout
draws). Parallel strategies (the EMT, OOLL, OALL) read layer l-1 everywhere: the GMC copies read the
previous layer's H_m and GMC, and the local updates the previous layer's contexts. Serial strategies
(``SERIAL = True``) let modality m's update read the state as already updated by the modalities before
it in this layer, and the GMC read the NEW H_m; the three successive GMC states are pooled.

Execution (:class:`~models.execution.BatchPlan`): with ``plan.packed`` (and a strategy whose contexts can
be read packed, ``PACKABLE``) the layers run on the valid local tokens only (:mod:`models.ragged`) and the
returned local sequences are zeros at the padding; with ``plan.recompute`` in training each CST
application keeps no activations: it runs in chunks of about :data:`RECOMPUTE_CHUNK_TOKENS` target tokens
(packed applications whole), each recomputed in the backward pass with the same random draws, which bounds
the memory of the activations that exist at one time.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.blocks import AttentionPool, Context, CrossSelfTransformer, PositionalEmbedding
from models.execution import DEFAULT_PLAN, BatchPlan
from models.ragged import Ragged

#: Number of global multimodal-context tokens: one per modality (text, audio, vision).
NUM_MODALITIES = 3

#: Target tokens per recomputed chunk of a CST application (``plan.recompute``, training): bounds the
#: memory of the activations that exist at one time while keeping the matrix products large.
RECOMPUTE_CHUNK_TOKENS = 8192


def share_or_copy(module: nn.Module, share: bool) -> nn.Module:
    """The module itself when shared, else an independent deep copy (same initial weights, as the reference)."""
    return module if share else copy.deepcopy(module)


def _rows(t: Optional[torch.Tensor], part: slice) -> Optional[torch.Tensor]:
    return None if t is None else t[part]


class FusionEngine(nn.Module):
    """L layers of local updates (the strategy's :meth:`contexts`) and global-from-local updates, pooled."""

    #: Update the modalities one after another inside a layer (True) or all from layer l-1 (False).
    SERIAL = False
    #: The contexts can be read as packed tokens (each is one modality's tokens or the GMC; a
    #: concatenation of several modalities' tokens cannot).
    PACKABLE = True

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        ff_expansion: int = 4,
        emb_dropout: float = 0.0,
        max_seq_len: int = 1024,
        learnable_pos_emb: bool = False,
        mpu_share: bool = True,
        modality_share: bool = True,
        layer_share: bool = True,
        attn_act_fn: str = "tanh",
    ):
        super().__init__()
        self.dim = dim
        self.pos_emb = PositionalEmbedding(dim, max_seq_len, emb_dropout, learnable_pos_emb)
        cst = CrossSelfTransformer(dim, heads, 1, attn_dropout, ff_dropout, ff_expansion)

        def per_modality(block: CrossSelfTransformer) -> nn.ModuleList:
            return nn.ModuleList([block] + [share_or_copy(block, modality_share) for _ in range(NUM_MODALITIES - 1)])

        local = per_modality(cst)
        glob = nn.ModuleList(local) if mpu_share else per_modality(copy.deepcopy(cst))
        layer = nn.ModuleDict({"local": local, "global": glob})
        self.layers = nn.ModuleList([layer] + [share_or_copy(layer, layer_share) for _ in range(depth - 1)])
        pool = AttentionPool(NUM_MODALITIES * dim, attn_act_fn)
        self.pools = nn.ModuleList([pool] + [share_or_copy(pool, layer_share) for _ in range(depth - 1)])

    @classmethod
    def from_config(cls, cfg) -> "FusionEngine":
        """The strategy with the config's width, depth, heads, dropouts, positions, sharing and pool."""
        return cls(cfg.d_model, cfg.fusion_layers, cfg.heads, cfg.attn_dropout, cfg.ff_dropout, cfg.ff_expansion,
                   cfg.emb_dropout, cfg.max_seq_len, cfg.learnable_pos_emb, cfg.mpu_share, cfg.modality_share,
                   cfg.layer_share, cfg.attn_act_fn)

    def contexts(
        self, m: int, locals_: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | Ragged], gmc: torch.Tensor
    ) -> list[Context]:
        """The contexts modality m's local tokens cross-attend to (several are read by one cross-attention,
        see :meth:`models.blocks.CrossSelfTransformer.forward_contexts`)."""
        raise NotImplementedError

    def forward(
        self,
        gmc: torch.Tensor,
        locals_: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        plan: BatchPlan = DEFAULT_PLAN,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """gmc (B, 3, D); locals_ [(B, T_m, D)] x 3; masks [(B, T_m) bool, True = valid] -> same shapes."""
        locals_ = [self.pos_emb(h) for h in locals_]
        if not (plan.packed and self.PACKABLE):
            return self._layers(gmc, locals_, masks, plan)
        layouts = [Ragged.from_mask(mask) for mask in masks]
        gmc, packed = self._layers(gmc, [layout.pack(h) for layout, h in zip(layouts, locals_)], layouts, plan)
        return gmc, [layout.unpack(h) for layout, h in zip(layouts, packed)]

    def _layers(self, gmc, locals_, masks, plan: BatchPlan) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The L layers on padded locals (B, T_m, D) with bool masks, or packed (N_m, D) with their layouts."""
        locals_ = list(locals_)
        for layer, pool in zip(self.layers, self.pools):
            previous_gmc, previous_locals = gmc, list(locals_)
            gmc_copies = []
            for m in range(NUM_MODALITIES):
                read_locals, read_gmc = (locals_, gmc) if self.SERIAL else (previous_locals, previous_gmc)
                contexts = self.contexts(m, read_locals, masks, read_gmc)
                locals_[m] = self._run(layer["local"][m], read_locals[m], contexts, masks[m], plan)  # (B, T_m, D)
                source = locals_[m] if self.SERIAL else previous_locals[m]
                copy_m = self._run(layer["global"][m], read_gmc, [(source, masks[m])], None, plan)  # (B, 3, D)
                gmc_copies.append(copy_m)
                if self.SERIAL:
                    gmc = copy_m
            pooled = pool(rearrange(torch.stack(gmc_copies, dim=1), "b m n d -> b m (n d)"))  # (B, 3D)
            gmc = rearrange(pooled, "b (n d) -> b n d", n=NUM_MODALITIES)
        return gmc, locals_

    def _run(self, cst: CrossSelfTransformer, x, contexts: Sequence[Context], mask, plan: BatchPlan) -> torch.Tensor:
        """One CST application reading ``contexts``; with ``plan.recompute`` in training, checkpointed.

        Clips are independent, so chunking over the batch is exact; packed applications (a
        :class:`~models.ragged.Ragged` mask anywhere) are recomputed whole.
        """
        if not (plan.recompute and torch.is_grad_enabled()):
            return cst.forward_contexts(x, contexts, mask, plan)
        if isinstance(mask, Ragged) or any(isinstance(c_mask, Ragged) for _, c_mask in contexts):
            return checkpoint(cst.forward_contexts, x, contexts, mask, plan, use_reentrant=False)
        step = max(1, RECOMPUTE_CHUNK_TOKENS // x.shape[1])
        outs = []
        for start in range(0, x.shape[0], step):
            part = slice(start, start + step)
            chunk_contexts = [(_rows(context, part), _rows(c_mask, part)) for context, c_mask in contexts]
            outs.append(checkpoint(cst.forward_contexts, x[part], chunk_contexts, _rows(mask, part), plan,
                                   use_reentrant=False))
        return outs[0] if len(outs) == 1 else torch.cat(outs)
