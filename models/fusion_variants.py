"""The fusion strategies the EMT paper compares its EMT against (EMT-DLFR, TAC 2023, fusion-strategy study).

Every strategy is a drop-in behind ``cfg.fusion`` with the fusion interface of :mod:`models.fusion_engine`,
``fusion(gmc (B, 3, D), [H_t, H_a, H_v] (B, T_m, D), masks bool (B, T_m), plan) -> (gmc_out, locals_out)``:
each is a :class:`~models.fusion_engine.FusionEngine` with its own ``contexts`` rule, built from the EMT's
blocks (:class:`models.blocks.CrossSelfTransformer` with its GEGLU FFN, :class:`models.blocks.AttentionPool`,
:class:`models.blocks.PositionalEmbedding`) with the same width, depth, heads and dropouts. The strategies differ ONLY in the context(s) the local tokens of modality m read in the
cross-attention of their one CST (Cross-Self Transformer) update; self-attention and the FFN then run once,
as in the EMT:

=============  ==========================================================================  ===================
``--fusion``   local update of modality m in layer l                                       cross-modal cost
=============  ==========================================================================  ===================
``emt``        OAGL (:class:`models.emt.EMT`): one CST, context = the 3 GMC tokens          O(3 T_m)
``ooll``       OOLL, MulT-style: one CST whose cross-attention reads each H_n, n != m,      O(T_m sum_{n!=m} T_n)
               separately (one-to-one, same weights); the residual adds the mean of the
               two reads (:meth:`models.blocks.CrossSelfTransformer.forward_contexts`)
``oall``       OALL, PMR-style: one CST, context = concat(H_t, H_a, H_v) (all modalities,   O(T_m sum T)
               masks concatenated likewise)
=============  ==========================================================================  ===================

The global tokens. The heads and the DLFR attraction loss need the GMC, so every strategy keeps the EMT's
global-from-local direction unchanged: per layer and modality, a CST lets the GMC (B, 3, D) read H_m
(masked), and :class:`models.blocks.AttentionPool` pools the three copies. This part costs O(3 T_m) in every
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

Execution is the engine's (:mod:`models.fusion_engine`): OOLL and the serial EMT read packed tokens when
the batch plan packs; OALL concatenates its contexts and stays padded (``PACKABLE = False``).
"""

from __future__ import annotations

import torch

from models.blocks import Context
from models.emt import EMT
from models.fusion_engine import NUM_MODALITIES, FusionEngine


class EMTSerial(EMT):
    """OAGL (serial): the EMT's global-local exchange, modalities updated text -> audio -> vision."""

    SERIAL = True


class OOLL(FusionEngine):
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


class OALL(FusionEngine):
    """OALL (PMR-style): modality m's tokens cross-attend to the concatenated local tokens of all modalities."""

    PACKABLE = False

    def contexts(self, m, locals_, masks, gmc) -> list[Context]:
        return [(torch.cat(list(locals_), dim=1), torch.cat(list(masks), dim=1))]  # (B, sum T, D)


class OALLSerial(OALL):
    """OALL (serial): as OALL, modalities updated text -> audio -> vision, each reading the updated ones."""

    SERIAL = True


#: The strategies registered in :data:`models.fusion.FUSIONS` next to ``emt``.
VARIANT_FUSIONS: dict[str, type[FusionEngine]] = {
    "ooll": OOLL,
    "oall": OALL,
    "emt-serial": EMTSerial,
    "oall-serial": OALLSerial,
}
