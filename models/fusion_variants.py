"""The fusion strategies the EMT paper compares its EMT against (EMT-DLFR, TAC 2023, fusion-strategy study).

Every strategy is a drop-in behind ``cfg.fusion`` with the fusion interface of :mod:`models.fusion`,
``fusion(gmc (B, 3, D), [H_t, H_a, H_v] (B, T_m, D), masks bool (B, T_m)) -> (gmc_out, locals_out)``, and
is built from the EMT's own blocks (:class:`models.emt.CrossSelfTransformer` with its GEGLU FFN,
:class:`models.emt.AttentionPool`, :class:`models.emt.PositionalEmbedding`) with the same width, depth,
heads and dropouts. The strategies differ ONLY in the context(s) the local tokens of modality m read in the
cross-attention of their one CST (Cross-Self Transformer) update; self-attention and the FFN then run once,
as in the EMT:

=============  ==========================================================================  ===================
``--fusion``   local update of modality m in layer l                                       cross-modal cost
=============  ==========================================================================  ===================
``emt``        OAGL (:class:`models.emt.EMT`): one CST, context = the 3 GMC tokens          O(3 T_m)
``ooll``       OOLL, MulT-style: one CST whose cross-attention reads each H_n, n != m,      O(T_m sum_{n!=m} T_n)
               separately (one-to-one, same weights); the residual adds the mean of the
               two reads (:meth:`models.emt.CrossSelfTransformer.forward_contexts`)
``oall``       OALL, PMR-style: one CST, context = concat(H_t, H_a, H_v) (all modalities,   O(T_m sum T)
               masks concatenated likewise)
=============  ==========================================================================  ===================

The global tokens. The heads and the DLFR attraction loss need the GMC, so every strategy keeps the EMT's
global-from-local direction unchanged: per layer and modality, a CST lets the GMC (B, 3, D) read H_m
(masked), and :class:`models.emt.AttentionPool` pools the three copies. This part costs O(3 T_m) in every
strategy, so the strategies' cross-modal costs differ only by how the local tokens exchange information
(global-local for the EMT, local-local for OOLL / OALL), which is what the paper compares.

Parallel vs serial. As in the EMT, the parallel strategies read layer l-1 everywhere. The serial variants
(``emt-serial``, ``oall-serial``) update the modalities one after another inside a layer, in the order
text -> audio -> vision: modality m's local update reads the GMC and the local sequences as already
updated by the modalities before it in this layer, then the GMC is updated from the NEW H_m; the three
successive GMC states are pooled by the layer's AttentionPool, so the modules and parameter counts are
those of the parallel strategy.

Sharing switches (interpreted as in the EMT; all True, the shipped config, leaves ONE CST and one pool in
total, so every strategy has the EMT's parameter count):

* ``mpu_share``: the CST updating modality m's locals also updates the GMC from m (the two directions of
  one mutual-promotion unit).
* ``modality_share``: one local CST for all modalities and one global CST for all modalities; without it
  every modality has its own (for OOLL, modality m's CST reads both other modalities with its one
  cross-attention, so unsharing gives per-target, not per-pair, weights).
* ``layer_share``: every layer reuses layer 1's modules (CSTs and pool).

Training with ``recompute`` (set by :meth:`models.emt_dlfr.EMTDLFR.set_fast_path`, as for the EMT) runs each
CST in checkpointed chunks of about :data:`models.emt.RECOMPUTE_CHUNK_TOKENS` target tokens.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.emt import (
    NUM_MODALITIES,
    RECOMPUTE_CHUNK_TOKENS,
    AttentionPool,
    CrossSelfTransformer,
    PositionalEmbedding,
    fusion_kwargs,
    share_or_copy,
)

#: A cross-attention context and its key mask (None = every key valid).
Context = tuple[torch.Tensor, Optional[torch.Tensor]]


class StrategyFusion(nn.Module):
    """L layers of local updates (strategy-specific contexts) and the EMT's global-from-local update.

    ``layers[l]["local"][m]`` is the CST of layer l updating modality m from its contexts (:meth:`contexts`;
    several contexts are read by its one cross-attention, see
    :meth:`models.emt.CrossSelfTransformer.forward_contexts`); ``layers[l]["global"][m]`` lets the GMC read
    modality m; ``pools[l]`` pools the three GMC copies. Subclasses set :attr:`SERIAL` and :meth:`contexts`.
    """

    #: Update the modalities one after another inside a layer (True) or all from layer l-1 (False).
    SERIAL = False

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
        self.recompute = False

    @classmethod
    def from_config(cls, cfg) -> "StrategyFusion":
        return cls(**fusion_kwargs(cfg))

    def contexts(
        self, m: int, locals_: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], gmc: torch.Tensor
    ) -> list[Context]:
        """The contexts modality m's local tokens cross-attend to (OOLL: one per other modality; others: one)."""
        raise NotImplementedError

    def _run(self, cst: CrossSelfTransformer, x, contexts: Sequence[Context], mask) -> torch.Tensor:
        """One CST application reading ``contexts``; with ``recompute`` in training, checkpointed in chunks of clips."""
        if not (self.recompute and torch.is_grad_enabled()):
            return cst.forward_contexts(x, contexts, mask)
        step = max(1, RECOMPUTE_CHUNK_TOKENS // x.shape[1])
        outs = []
        for start in range(0, x.shape[0], step):
            part = slice(start, start + step)

            def rows(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
                return None if t is None else t[part]

            chunk_contexts = [(rows(context), rows(context_mask)) for context, context_mask in contexts]
            outs.append(checkpoint(cst.forward_contexts, rows(x), chunk_contexts, rows(mask), use_reentrant=False))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _update_local(self, layer: nn.ModuleDict, m: int, locals_, masks, gmc) -> torch.Tensor:
        """Modality m's new local tokens (B, T_m, D): its CST reading the strategy's contexts."""
        return self._run(layer["local"][m], locals_[m], self.contexts(m, locals_, masks, gmc), masks[m])

    def _update_global(self, layer: nn.ModuleDict, m: int, gmc, local, mask) -> torch.Tensor:
        """The GMC copy (B, 3, D) that read modality m's local tokens (masked): common to every strategy."""
        return self._run(layer["global"][m], gmc, [(local, mask)], None)

    def _layer(self, layer: nn.ModuleDict, pool: AttentionPool, gmc, locals_, masks):
        """One layer, parallel or serial -> new gmc (B, 3, D) and locals."""
        gmc_copies = []
        if self.SERIAL:
            locals_ = list(locals_)
            for m in range(NUM_MODALITIES):
                locals_[m] = self._update_local(layer, m, locals_, masks, gmc)
                gmc = self._update_global(layer, m, gmc, locals_[m], masks[m])  # (B, 3, D)
                gmc_copies.append(gmc)
        else:
            new_locals = [self._update_local(layer, m, locals_, masks, gmc) for m in range(NUM_MODALITIES)]
            for m in range(NUM_MODALITIES):
                gmc_copies.append(self._update_global(layer, m, gmc, locals_[m], masks[m]))  # (B, 3, D)
            locals_ = new_locals
        pooled = pool(rearrange(torch.stack(gmc_copies, dim=1), "b m n d -> b m (n d)"))  # (B, 3D)
        return rearrange(pooled, "b (n d) -> b n d", n=NUM_MODALITIES), locals_

    def forward(
        self, gmc: torch.Tensor, locals_: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """gmc (B, 3, D); locals_ [(B, T_m, D)] x 3; masks [(B, T_m) bool, True = valid] -> same shapes."""
        locals_ = [self.pos_emb(h) for h in locals_]
        for layer, pool in zip(self.layers, self.pools):
            gmc, locals_ = self._layer(layer, pool, gmc, locals_, masks)
        return gmc, list(locals_)


class EMTSerial(StrategyFusion):
    """OAGL (serial): the EMT's global-local exchange, modalities updated text -> audio -> vision."""

    SERIAL = True

    def contexts(self, m, locals_, masks, gmc) -> list[Context]:
        return [(gmc, None)]  # (B, 3, D)


class OOLL(StrategyFusion):
    """OOLL (MulT-style one-to-one local-local): modality m's tokens cross-attend to each other modality n != m.

    Inside modality m's one CST, its one cross-attention (the same weights and norms) reads H_n for each
    n != m separately, each with H_n's key mask, and the residual adds the MEAN of the two reads:
    ``H_m <- H_m + mean_{n != m} CrossAttn(LN(H_m), LN(H_n), mask_n)``, then the CST's self-attention and
    FFN run once. Mean rather than sum: the update then has the scale of one cross-attention read, as in
    the EMT and OALL whose weights and initialisation it shares (a sum would double the cross residual's
    contribution relative to self-attention and the FFN). It is also OALL's read with the attention mass
    split equally between the two sources instead of by one softmax over the concatenated keys. (MulT
    concatenates its per-source outputs, which would need a 2D-wide block and change the parameter count.)

    Cost per target m and layer (D = width): the non-cross parts (self-attention, FFN, the GMC's reads,
    pool) equal OALL's and the parameters equal the EMT's. The cross-attention's score and value matmuls
    cost 2 D T_m sum_{n != m} T_n MACs against OALL's 2 D T_m sum_n T_n; the query and output projections
    run once for both reads (the same weights read the same LN(H_m); the output projection is affine, so
    projecting the mean of the reads equals the mean of the projected reads). OOLL's cross-modal cost is
    therefore OALL's minus m's own read: the key/value projection of its T_m tokens (2 D^2 T_m) and the
    attention to them (2 D T_m^2).
    """

    def contexts(self, m, locals_, masks, gmc) -> list[Context]:
        return [(locals_[n], masks[n]) for n in range(NUM_MODALITIES) if n != m]  # (B, T_n, D)


class OALL(StrategyFusion):
    """OALL (PMR-style): modality m's tokens cross-attend to the concatenated local tokens of all modalities."""

    def contexts(self, m, locals_, masks, gmc) -> list[Context]:
        return [(torch.cat(list(locals_), dim=1), torch.cat(list(masks), dim=1))]  # (B, sum T, D)


class OALLSerial(OALL):
    """OALL (serial): as OALL, modalities updated text -> audio -> vision, each reading the updated ones."""

    SERIAL = True


#: The strategies registered in :data:`models.fusion.FUSIONS` next to ``emt``.
VARIANT_FUSIONS: dict[str, type[nn.Module]] = {
    "ooll": OOLL,
    "oall": OALL,
    "emt-serial": EMTSerial,
    "oall-serial": OALLSerial,
}
