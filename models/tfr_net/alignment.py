"""TFR-Net's feature-alignment module (Yuan et al. 2021, §3.2; the reference's ``CM_ATTN``).

For each target modality m in (text l, audio a, vision v), on the incomplete view:

1. text: dropout on BERT's states; every modality: a bias-free temporal Conv1d to d channels (kernel sizes
   1 / 5 / 3, "same" padding), skipped when the input already is d wide;
2. h_m = [SelfAttn_m(x_m); CrossAttn_{m<-n1}(x_m, x_n1); CrossAttn_{m<-n2}(x_m, x_n2)] (B, L_m, 3d): one
   self-attention "memory" transformer (max(nlevels, 3) layers) and two crossmodal ones (nlevels layers),
   MulT's (models/crossmodal_transformer.py), position embeddings on; h_m goes to the fusion;
3. h_m^g = FinalAttn_m(h_m) (B, L_m, 3d) goes to the generator. This last transformer is one head,
   max(nlevels, 3) layers, no position embedding, and as wide as the sequence (L_m). The reference hands it
   h_m permuted to (B, 3d, L_m) while the encoder reads (sequence, batch, features): so its "sequence" is
   the BATCH, its "batch" the 3d channels and its features the L_m time steps. Each clip therefore attends
   over the other clips of its mini-batch, under the causal mask (clip i reads clips 0..i). This is kept
   as the reference computes it; it makes a clip's reconstruction depend on its batch neighbours (the
   prediction does not read h_m^g). It is why the model's shape depends on the data's padded lengths.

The attribute names are the reference's, so that its checkpoints load by prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from config.tfr_net import TFRNetConfig
from models.crossmodal_transformer import CrossmodalTransformer

#: Layers of the memory and final self-attention transformers at least (the reference's ``layers=3``).
MIN_SELF_LAYERS = 3
#: Heads of the final, sequence-wide transformers.
FINAL_HEADS = 1
#: Short names of the modalities in the reference's attribute names: (text, audio, vision).
SHORT = ("l", "a", "v")


def temporal_projection(in_dim: int, out_dim: int, kernel_size: int) -> nn.Module:
    """Bias-free Conv1d keeping the length; an Identity (no weights) when the width already is ``out_dim``."""
    if in_dim == out_dim:
        return nn.Identity()
    return nn.Conv1d(in_dim, out_dim, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)


class CrossmodalAlignment(nn.Module):
    """(text (B, L_l, D_l), audio (B, L_a, D_a), vision (B, L_v, D_v)) -> h and h^g per modality (B, L_m, 3d)."""

    def __init__(self, cfg: TFRNetConfig, feature_dims: tuple[int, int, int], seq_lens: tuple[int, int, int]):
        super().__init__()
        d_model, heads = cfg.dst_feature_dim_nheads
        self.text_dropout = cfg.text_dropout
        kernels = (cfg.conv1d_kernel_size_l, cfg.conv1d_kernel_size_a, cfg.conv1d_kernel_size_v)
        for short, dim, kernel in zip(SHORT, feature_dims, kernels):
            setattr(self, f"proj_{short}", temporal_projection(dim, d_model, kernel))
        #: The attention dropout of a crossmodal transformer is set by its KEY source's modality.
        source_dropout = {"l": cfg.attn_dropout, "a": cfg.attn_dropout_a, "v": cfg.attn_dropout_v}
        self_layers = max(cfg.nlevels, MIN_SELF_LAYERS)

        def transformer(width, num_heads, layers, attn_dropout, positions):
            return CrossmodalTransformer(
                width, num_heads, layers, attn_dropout=attn_dropout, relu_dropout=cfg.relu_dropout,
                res_dropout=cfg.res_dropout, embed_dropout=cfg.embed_dropout, attn_mask=cfg.attn_mask,
                position_embedding=positions,
            )

        for target in SHORT:
            for source in SHORT:
                if source != target:
                    setattr(self, f"trans_{target}_with_{source}",
                            transformer(d_model, heads, cfg.nlevels, source_dropout[source], True))
            setattr(self, f"trans_{target}_mem", transformer(d_model, heads, self_layers, cfg.attn_dropout, True))
        for target, length in zip(SHORT, seq_lens):
            setattr(self, f"trans_{target}_final",
                    transformer(length, FINAL_HEADS, self_layers, cfg.attn_dropout, False))

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor):
        """Returns (h_l, h_a, h_v, h_l^g, h_a^g, h_v^g), each (B, L_m, 3d)."""
        text = F.dropout(text, p=self.text_dropout, training=self.training)
        projected = {}
        for short, x in zip(SHORT, (text, audio, vision)):
            proj = getattr(self, f"proj_{short}")
            projected[short] = x if isinstance(proj, nn.Identity) else proj(x.transpose(1, 2)).transpose(1, 2)
        hidden, generated = [], []
        for target in SHORT:
            x = projected[target]  # (B, L_m, d)
            parts = [getattr(self, f"trans_{target}_mem")(x)]
            parts += [getattr(self, f"trans_{target}_with_{source}")(x, projected[source])
                      for source in SHORT if source != target]
            h = torch.cat(parts, dim=-1)  # (B, L_m, 3d)
            # The batch becomes the attended sequence: (3d, B, L_m) in batch-first terms, see the docstring.
            h_g = getattr(self, f"trans_{target}_final")(h.permute(2, 0, 1)).permute(1, 2, 0)  # (B, L_m, 3d)
            hidden.append(h)
            generated.append(h_g)
        return (*hidden, *generated)
