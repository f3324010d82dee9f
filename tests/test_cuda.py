"""The CUDA tier: the GPU-only branches, run where a CUDA device is visible and skipped elsewhere.

``bash bench/gpu_check.sh`` runs this file first (``pytest -m cuda tests/test_cuda.py``); on a machine with a
GPU ``make test`` runs it too. Every other test runs on the CPU (tests/conftest.py hides the GPUs from them).
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from config import get_config
from data.load_data import build_loaders, load_mmsa
from models.emt import EMT
from models.emt_dlfr import build_model, read_positions, reference_path
from trains import trainer as trainer_mod
from trains.experiment import build_datasets, model_for
from trains.losses import DLFRObjective
from trains.optim import build_optimizer
from trains.trainer import Trainer
from utils.device import set_tf32
from utils.seed import capture_rng_state, restore_rng_state, setup_seed

from tests.model_inputs import dropout_free_bert, make_inputs, tiny_config
from tests.test_model_fastpath import AUDIO_LENGTHS, TEXT_LENGTHS, VISION_LENGTHS, WORDLESS_TEXT_LENGTHS
from tests.test_trainer_loop import Loader, StandIn, cfg_for

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# cuBLAS reads its workspace setting when this process first uses it: set before any test runs a matmul, so
# that the --deterministic test is deterministic whichever test runs first.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.device("cuda", 0)
#: Relative tolerances of the fast-vs-plain comparison on the GPU, without TF32: float64 as on the CPU; float32
#: sums in other orders (fused kernels, stacked views).
TOLERANCE = {torch.float64: 1e-5, torch.float32: 1e-4}
GRAD_TOLERANCE = {torch.float64: 1e-5, torch.float32: 1e-3}


@pytest.fixture(autouse=True)
def _full_float32():
    """No TF32 in these comparisons (the run default turns it on); restored after each test."""
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.fp32_precision
    set_tf32(False)
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.fp32_precision = before
    torch.use_deterministic_algorithms(False)
    torch.backends.cuda.enable_cudnn_sdp(True)


def cuda_inputs(text_lengths=TEXT_LENGTHS, dtype=torch.float32) -> dict:
    inputs = make_inputs(text_lengths, AUDIO_LENGTHS, VISION_LENGTHS)
    return {k: (v.to(dtype) if v.is_floating_point() else v).to(CUDA) for k, v in inputs.items()}


def outputs_and_grads(model, inputs, weights=None):
    """Outputs at the positions the losses read, and the gradients of one scalar built from all of them."""
    read = read_positions(inputs["text"], inputs["audio_lengths"], inputs["vision_lengths"])
    out = {k: v * read[k][..., None] if k in read else v for k, v in model(**inputs).tensors().items()}
    if weights is None:
        g = torch.Generator().manual_seed(1)
        weights = {k: torch.randn(v.shape, generator=g, dtype=v.dtype).to(v.device) for k, v in out.items()}
    model.zero_grad(set_to_none=True)
    sum((out[k] * weights[k]).sum() for k in out).backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, weights


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("text_lengths", [TEXT_LENGTHS, WORDLESS_TEXT_LENGTHS])
def test_fast_path_matches_plain_path_on_cuda(dtype, text_lengths):
    torch.manual_seed(0)
    fast = build_model(tiny_config(fusion_layers=2), 5, 6, dropout_free_bert()).to(CUDA, dtype).train()
    plain = copy.deepcopy(fast)
    inputs = cuda_inputs(text_lengths, dtype)
    out_fast, grads_fast, weights = outputs_and_grads(fast, inputs)
    with reference_path(plain):
        out_plain, grads_plain, _ = outputs_and_grads(plain, inputs, weights)
    for key in out_fast:
        assert relative_error(out_fast[key], out_plain[key]) < TOLERANCE[dtype], key
    assert grads_fast.keys() == grads_plain.keys()
    for name in grads_fast:
        assert relative_error(grads_fast[name], grads_plain[name]) < GRAD_TOLERANCE[dtype], name


def test_bf16_training_steps_have_no_float16_and_float32_losses():
    cfg = tiny_config(amp="bf16", attn_dropout=0.3, ff_dropout=0.1, device="cuda")
    torch.manual_seed(0)
    model = build_model(cfg, 5, 6).to(CUDA).train()
    optimizer = build_optimizer(cfg, model, model.policy)
    half = []

    def no_float16(module, _inputs, output):
        tensors = output if isinstance(output, (tuple, list)) else [output]
        half.extend(type(module).__name__ for t in tensors if torch.is_tensor(t) and t.dtype == torch.float16)

    hooks = [m.register_forward_hook(no_float16) for m in model.modules()]
    before = [p.detach().clone() for p in model.parameters()]
    batch = cuda_inputs()
    batch["labels"] = {"M": torch.linspace(-2.6, 2.6, len(TEXT_LENGTHS), device=CUDA)[:, None]}
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        with model.policy.autocast():
            out = model(*(batch[k] for k in model.INPUTS))
            terms = DLFRObjective(cfg)(out, full_batch(batch))
        assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in terms.values())
        terms["total"].backward()
        optimizer.step()
    for hook in hooks:
        hook.remove()
    assert not half, f"float16 outputs in: {sorted(set(half))}"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def full_batch(inputs: dict) -> dict:
    """The loss's extra batch fields (validity and kept-position masks) for :func:`cuda_inputs`."""
    text, audio, vision = inputs["text"], inputs["audio"], inputs["vision"]
    audio_mask = (torch.arange(audio.shape[1], device=CUDA)[None] < inputs["audio_lengths"][:, None]).long()
    vision_mask = (torch.arange(vision.shape[1], device=CUDA)[None] < inputs["vision_lengths"][:, None]).long()
    return {
        **inputs,
        "text_missing_mask": (inputs["text_m"][:, 0] == text[:, 0]).float() * text[:, 1],
        "audio_mask": audio_mask, "audio_missing_mask": (inputs["audio_m"].abs().sum(-1) > 0).long() * audio_mask,
        "vision_mask": vision_mask, "vision_missing_mask": (inputs["vision_m"].abs().sum(-1) > 0).long() * vision_mask,
    }


def deterministic_gradients() -> dict:
    setup_seed(0, deterministic=True)
    cfg = tiny_config(attn_dropout=0.3, ff_dropout=0.1, device="cuda", deterministic=True)
    model = build_model(cfg, 5, 6).to(CUDA).train()
    batch = cuda_inputs()
    batch["labels"] = {"M": torch.zeros(len(TEXT_LENGTHS), 1, device=CUDA)}
    out = model(*(batch[k] for k in model.INPUTS))
    DLFRObjective(cfg)(out, full_batch(batch))["total"].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_deterministic_twice_gives_bit_identical_gradients():
    first, second = deterministic_gradients(), deterministic_gradients()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[n], second[n]) for n in first)


def test_rng_state_of_the_training_device_only_and_best_state_on_the_cpu():
    state = capture_rng_state(CUDA)
    assert torch.is_tensor(state["cuda"])  # one generator's state, not a list per GPU
    first = torch.rand(3, device=CUDA)
    restore_rng_state(state, CUDA)
    assert torch.equal(first, torch.rand(3, device=CUDA))
    trainer = Trainer(cfg_for(device="cuda", max_epochs=2, early_stop=2), StandIn(), progress=False)
    trainer.train_epoch = lambda loader, epoch: {"Loss": 0.0}
    trainer.evaluate = lambda loader, desc="": {"Loss": float("nan")}  # validation never improves
    result = trainer.fit({"train": Loader(), "valid": Loader()})
    assert all(t.device.type == "cpu" for t in result.best_state.values())


def test_resume_on_cuda_continues_the_run(tiny_root, tmp_path, monkeypatch):
    cfg = get_config("tiny", device="cuda", deterministic=True, max_epochs=3, early_stop=3)
    path = tiny_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (0.3, 0.3, 0.3))

    def fit(checkpoint=None):
        setup_seed(7, deterministic=True)
        trainer = Trainer(cfg, model_for(cfg, datasets), progress=False)
        return trainer.fit(build_loaders(datasets, cfg.batch_size, 7, pin_memory=True), checkpoint_path=checkpoint)

    full = fit()
    state = tmp_path / "train_state.pt"
    save = trainer_mod.atomic_torch_save

    class Killed(Exception):
        pass

    def save_then_stop(file, obj):
        save(file, obj)
        raise Killed  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(trainer_mod, "atomic_torch_save", save_then_stop)
    with pytest.raises(Killed):
        fit(state)
    monkeypatch.setattr(trainer_mod, "atomic_torch_save", save)
    assert torch.is_tensor(torch.load(state, map_location="cpu", weights_only=False)["rng"]["cuda"])
    resumed = fit(state)
    assert resumed.epochs_run == full.epochs_run
    assert [h["valid"]["Loss"] for h in resumed.history] == pytest.approx([h["valid"]["Loss"] for h in full.history],
                                                                          rel=1e-5)


def run_py(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_one_run_py_cell_on_the_gpu_chosen_by_auto(tiny_root, tmp_path):
    done = run_py("--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path), "--missing-rate", "0.5",
                  "--seeds", "1", "--no-progress", "--amp", "bf16")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "device: cuda:0" in done.stderr and "chosen by --device auto" in done.stderr
    (cell,) = tmp_path.glob("cells/*/*.json")
    assert all(math.isfinite(v) for v in json.loads(cell.read_text())["test"].values())


def test_two_workers_share_one_gpu(tiny_root, tmp_path):
    done = run_py("--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path), "--missing-rates", "0.0",
                  "0.5", "--seeds", "1", "--no-progress", "--gpus", "0,0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list(tmp_path.glob("cells/*/*.json"))) == 2 and (tmp_path / "results.json").exists()
    assert done.stderr.count("device: cuda:0") == 2  # each worker sees its GPU as cuda:0


def test_sdpa_dropout_in_recomputed_blocks_replays_the_draws_on_cuda():
    """The fusion's attention dropout inside SDPA's CUDA kernels, recomputed in the backward pass: the same
    outputs and gradients as blocks that store their activations, given the same seed."""
    torch.manual_seed(0)
    recomputed = EMT(16, 2, 2, attn_dropout=0.3).to(CUDA).train()
    recomputed.recompute = True
    stored = copy.deepcopy(recomputed)
    stored.recompute = False
    g = torch.Generator().manual_seed(3)
    gmc = torch.randn(4, 3, 16, generator=g).to(CUDA)
    locals_ = [torch.randn(4, t, 16, generator=g).to(CUDA) for t in (7, 30, 20)]
    masks = [(torch.arange(t)[None] < torch.tensor([t, 3, 1, t // 2])[:, None]).to(CUDA) for t in (7, 30, 20)]
    results = []
    for model in (recomputed, stored):
        torch.manual_seed(7)
        out_gmc, out_locals = model(gmc, locals_, masks)
        (out_gmc.square().sum() + sum(h.square().sum() for h in out_locals)).backward()
        results.append(([out_gmc, *out_locals], [p.grad for p in model.parameters()]))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a + grads_a, outs_b + grads_b):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
