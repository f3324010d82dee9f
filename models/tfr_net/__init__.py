"""TFR-Net, the robust-MSA baseline of the paper's Tables 6 and 7, as the authors' repository ships it.

:mod:`~models.tfr_net.alignment` (crossmodal transformers), :mod:`~models.tfr_net.fusion` (gated fusion
and head), :mod:`~models.tfr_net.model` (the network and its generators), :mod:`~models.tfr_net.losses`
(the objective); hyperparameters in :mod:`config.tfr_net`.
"""

from models.tfr_net.losses import tfr_loss
from models.tfr_net.model import TFRNet

__all__ = ["TFRNet", "tfr_loss"]
