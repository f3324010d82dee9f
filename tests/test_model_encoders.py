"""AuViSubNet: packed LSTM encoder of audio / vision (docs/REFERENCE.md §4.2 step 2)."""

import torch
from torch import nn

from models.encoders import AuViSubNet


def _clips(lengths, max_len=7, dim=3):
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), max_len, dim) * (torch.arange(max_len)[None] < lengths[:, None])[..., None]
    return x, lengths


def test_utterance_is_the_last_valid_step_and_sequence_stops_at_the_batch_max():
    torch.manual_seed(0)
    net = AuViSubNet(3, 6, 4)
    x, lengths = _clips([5, 2, 4])
    utt, seq = net(x, lengths)
    assert utt.shape == (3, 4)
    assert seq.shape == (3, 5, 4)  # T_batchmax = 5, not 7
    # A unidirectional LSTM's h_n is the output at the last valid step; both pass through linear_1.
    for i, n in enumerate(lengths.tolist()):
        assert torch.allclose(utt[i], seq[i, n - 1], atol=1e-6)
        # Padded steps hold linear_1(0) = its bias.
        assert torch.allclose(seq[i, n:], net.linear_1.bias.expand(5 - n, 4), atol=1e-6)


def test_padding_does_not_change_the_encoding():
    torch.manual_seed(0)
    net = AuViSubNet(3, 6, 4)
    x, lengths = _clips([3, 2])
    utt, _ = net(x, lengths)
    noisy = x.clone()
    noisy[0, 3:] = 100.0
    assert torch.allclose(net(noisy, lengths)[0], utt)


def test_linear_is_identity_when_widths_match():
    net = AuViSubNet(3, 4, 4)
    assert isinstance(net.linear_1, nn.Identity)
    assert sum(p.numel() for p in net.parameters()) == 4 * (4 * (3 + 4) + 2 * 4)


def test_batch_of_one_clip_works():
    torch.manual_seed(0)
    net = AuViSubNet(3, 6, 4).train()
    x, lengths = _clips([4])
    utt, seq = net(x, lengths)
    assert utt.shape == (1, 4) and seq.shape == (1, 4, 4)
    (utt.sum() + seq.sum()).backward()
    assert net.rnn.weight_ih_l0.grad is not None


def test_lstm_runs_in_float32_outside_autocast():
    """Under bf16 autocast the LSTM sees float32 inputs with autocast off (CUDA autocast would run cuDNN's
    LSTM in float16); the linear layer after it follows autocast."""
    torch.manual_seed(0)
    net = AuViSubNet(5, 8, 4)
    seen = []
    net.rnn.register_forward_pre_hook(
        lambda module, args: seen.append((torch.is_autocast_enabled("cpu"), args[0].data.dtype)))
    x = torch.randn(3, 6, 5).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        utterance, sequence = net(x, torch.tensor([6, 2, 4]))
    assert seen == [(False, torch.float32)]
    assert utterance.dtype == sequence.dtype == torch.bfloat16  # linear_1 under autocast
    reference_utt, reference_seq = net(x.float(), torch.tensor([6, 2, 4]))
    assert torch.allclose(utterance.float(), reference_utt, atol=0.05)
