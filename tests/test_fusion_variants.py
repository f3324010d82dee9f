"""The fusion-strategy variants (models.fusion_variants): interface, masks, serial order, sharing, OOLL's
one-to-one reads, MAC ranking, packing, training."""

from __future__ import annotations

import json

import pytest
import torch

import run
from bench.fusion_bench import counted
from config import get_config
from models import fusion_engine
from models.execution import EXPLICIT, BatchPlan
from models.fusion import FUSIONS, build_fusion
from models.fusion_engine import NUM_MODALITIES
from models.fusion_variants import OALL, OOLL, VARIANT_FUSIONS, EMTSerial, OALLSerial

DIM, HEADS, DEPTH = 8, 2, 2
BATCH, LENGTHS = 3, (5, 7, 4)
VALID = ((5, 2, 3), (7, 7, 1), (4, 3, 2))  # per modality: valid steps of each clip (>= 1)
SERIAL_PAIRS = (("emt-serial", "emt"), ("oall-serial", "oall"))
SWITCHES = ("mpu_share", "modality_share", "layer_share")


def small_cfg(name: str, **overrides):
    settings = dict(
        fusion=name, d_model=DIM, heads=HEADS, fusion_layers=DEPTH, attn_dropout=0.0, ff_dropout=0.0, emb_dropout=0.0
    )
    settings.update(overrides)
    return get_config("tiny", **settings)


def fusion_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    gmc = torch.randn(BATCH, NUM_MODALITIES, DIM, generator=g)
    locals_ = [torch.randn(BATCH, t, DIM, generator=g) for t in LENGTHS]
    masks = [torch.arange(t)[None] < torch.tensor(v)[:, None] for t, v in zip(LENGTHS, VALID)]
    return gmc, locals_, masks


def built(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_fusion(small_cfg(name, **overrides)).eval()


@pytest.mark.parametrize("name", sorted(VARIANT_FUSIONS))
def test_registered_with_the_fusion_interface(name):
    assert FUSIONS[name] is VARIANT_FUSIONS[name]
    gmc, locals_, masks = fusion_inputs()
    out_gmc, out_locals = built(name)(gmc, locals_, masks)
    assert out_gmc.shape == gmc.shape
    assert [h.shape for h in out_locals] == [h.shape for h in locals_]
    assert torch.isfinite(out_gmc).all() and all(torch.isfinite(h).all() for h in out_locals)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_every_strategy_has_the_emt_parameter_count_when_fully_shared(name):
    count = sum(p.numel() for p in built(name).parameters())
    assert count == sum(p.numel() for p in built("emt").parameters())


@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("switch", SWITCHES)
def test_every_strategy_has_the_emt_parameter_count_with_a_switch_off(name, switch):
    count = sum(p.numel() for p in built(name, **{switch: False}).parameters())
    assert count == sum(p.numel() for p in built("emt", **{switch: False}).parameters())


@pytest.mark.parametrize("name", sorted(VARIANT_FUSIONS))
@pytest.mark.parametrize("switch", SWITCHES)
def test_unsharing_a_switch_adds_independent_blocks(name, switch):
    shared = sum(p.numel() for p in built(name).parameters())
    unshared = built(name, **{switch: False})
    assert sum(p.numel() for p in unshared.parameters()) > shared
    gmc, locals_, masks = fusion_inputs()
    assert unshared(gmc, locals_, masks)[0].shape == gmc.shape


@pytest.mark.parametrize("name", sorted(VARIANT_FUSIONS))
@pytest.mark.parametrize("mpu_share, blocks_per_layer", [(False, 2 * NUM_MODALITIES), (True, NUM_MODALITIES)])
def test_one_local_block_per_modality_without_modality_sharing(name, mpu_share, blocks_per_layer):
    fusion = built(name, mpu_share=mpu_share, modality_share=False, layer_share=True)
    blocks = {id(cst) for layer in fusion.layers for cst in [*layer["global"], *layer["local"]]}
    assert len(blocks) == blocks_per_layer


def test_ooll_local_update_is_one_cst_adding_the_mean_of_its_one_to_one_reads():
    fusion = built("ooll", fusion_layers=1)
    gmc, locals_, masks = fusion_inputs()
    _, out_locals = fusion(gmc, locals_, masks)
    h = [fusion.pos_emb(x) for x in locals_]
    for m in range(NUM_MODALITIES):
        cross, self_attn, ff = fusion.layers[0]["local"][m].layers[0]
        reads = [cross(h[m], context=h[n], key_mask=masks[n]) for n in range(NUM_MODALITIES) if n != m]
        x = h[m] + (reads[0] + reads[1]) / 2
        x = self_attn(x, key_mask=masks[m]) + x
        x = ff(x) + x
        torch.testing.assert_close(out_locals[m], x)


@pytest.mark.parametrize("source", [1, 2])
def test_ooll_reads_the_other_modalities_valid_tokens_only(source):
    """One layer: text's new tokens depend on audio / vision only through OOLL's local-local reads."""
    gmc, locals_, masks = fusion_inputs()
    mask = masks[source][..., None]
    valid_changed, padding_changed = list(locals_), list(locals_)
    valid_changed[source] = torch.where(mask, torch.randn_like(locals_[source]), locals_[source])
    padding_changed[source] = torch.where(mask, locals_[source], 1e3 * torch.randn_like(locals_[source]))
    text = {}
    for name in ("ooll", "emt"):
        fusion = built(name, fusion_layers=1)
        text[name] = [fusion(gmc, h, masks)[1][0] for h in (locals_, valid_changed, padding_changed)]
    clean, valid, padded = text["ooll"]
    assert not torch.allclose(valid[masks[0]], clean[masks[0]], atol=1e-3)
    torch.testing.assert_close(padded[masks[0]], clean[masks[0]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(text["emt"][1], text["emt"][0])  # the EMT's locals read only the GMC


def fusion_macs(name: str) -> dict:
    """Forward MACs (total / cross / self, counted as the benchmark does) of the small fusion, explicit attention."""
    fusion = built(name)
    with torch.no_grad(), counted(fusion) as macs:
        fusion(*fusion_inputs(), BatchPlan(attention=EXPLICIT))
    return macs


def test_macs_rank_emt_below_ooll_below_oall():
    macs = {name: fusion_macs(name) for name in ("emt", "ooll", "oall")}
    for part in ("cross", "total"):
        assert macs["emt"][part] < macs["ooll"][part] < macs["oall"][part], part
    assert macs["ooll"]["self"] == macs["oall"]["self"] == macs["emt"]["self"]
    # OOLL = OALL minus each target's read of its own modality: its key/value projection (2 D^2 T_m) and
    # attention (q k^T and probs v: 2 D T_m^2) per clip; the query and output projections run once in both.
    own = DEPTH * BATCH * sum(2 * DIM * DIM * t + 2 * DIM * t * t for t in LENGTHS)
    assert macs["oall"]["cross"] - macs["ooll"]["cross"] == own
    assert macs["oall"]["total"] - macs["ooll"]["total"] == own


@pytest.mark.parametrize("name", sorted(VARIANT_FUSIONS))
def test_outputs_at_valid_positions_ignore_padded_values(name):
    fusion = built(name)
    gmc, locals_, masks = fusion_inputs()
    noisy = [torch.where(mask[..., None], h, 1e3 * torch.randn_like(h)) for h, mask in zip(locals_, masks)]
    out_gmc, out_locals = fusion(gmc, locals_, masks)
    noisy_gmc, noisy_locals = fusion(gmc, noisy, masks)
    torch.testing.assert_close(noisy_gmc, out_gmc, rtol=1e-5, atol=1e-5)
    for clean, dirty, mask in zip(out_locals, noisy_locals, masks):
        torch.testing.assert_close(dirty[mask], clean[mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("serial, parallel", SERIAL_PAIRS)
def test_serial_update_differs_from_parallel_with_the_same_weights(serial, parallel):
    serial_fusion, parallel_fusion = built(serial), built(parallel, seed=1)
    copy_weights(parallel_fusion, serial_fusion)
    gmc, locals_, masks = fusion_inputs()
    out_s, locals_s = serial_fusion(gmc, locals_, masks)
    out_p, locals_p = parallel_fusion(gmc, locals_, masks)
    assert not torch.allclose(out_s, out_p, atol=1e-4)
    # Text is updated first, from the layer's input, in both orders: its first layer agrees; audio does not.
    one_layer_s, one_layer_p = built(serial, fusion_layers=1), built(parallel, seed=1, fusion_layers=1)
    copy_weights(one_layer_p, one_layer_s)
    (_, first_s), (_, first_p) = one_layer_s(gmc, locals_, masks), one_layer_p(gmc, locals_, masks)
    torch.testing.assert_close(first_s[0], first_p[0])
    assert not torch.allclose(first_s[1], first_p[1], atol=1e-4)


def copy_weights(target, source) -> None:
    """Load the fully shared single CST and pool of ``source`` (any strategy) into ``target``."""
    target.layers[0]["local"][0].load_state_dict(source.layers[0]["local"][0].state_dict())
    target.pools[0].load_state_dict(source.pools[0].state_dict())


class ParallelGlobalLocal(EMTSerial):
    """EMTSerial's contexts updated in parallel: must be exactly the EMT."""

    SERIAL = False


def test_the_strategy_framework_with_global_contexts_in_parallel_is_the_emt():
    torch.manual_seed(0)
    ours = ParallelGlobalLocal.from_config(small_cfg("emt")).eval()
    emt = built("emt", seed=1)
    copy_weights(emt, ours)
    gmc, locals_, masks = fusion_inputs()
    out_ours, locals_ours = ours(gmc, locals_, masks)
    out_emt, locals_emt = emt(gmc, locals_, masks)
    torch.testing.assert_close(out_ours, out_emt)
    for a, b in zip(locals_ours, locals_emt):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", [OALL, OALLSerial, OOLL])
def test_recompute_path_gives_the_same_outputs_and_gradients(cls, monkeypatch):
    monkeypatch.setattr(fusion_engine, "RECOMPUTE_CHUNK_TOKENS", 10)  # several recomputed chunks per CST
    torch.manual_seed(0)
    fusion = cls.from_config(small_cfg("oall")).train()
    gmc, locals_, masks = fusion_inputs()
    results = []
    for recompute in (False, True):
        fusion.zero_grad()
        out_gmc, out_locals = fusion(gmc, locals_, masks, BatchPlan(recompute=recompute))
        (out_gmc.square().sum() + sum(h.square().sum() for h in out_locals)).backward()
        results.append([out_gmc.detach()] + [p.grad.clone() for p in fusion.parameters()])
    for plain, recomputed in zip(*results):
        torch.testing.assert_close(recomputed, plain)


@pytest.mark.parametrize("name", sorted(VARIANT_FUSIONS))
def test_each_strategy_trains_end_to_end_through_run_py(name, tiny_root, tmp_path):
    out = tmp_path / name
    argv = ["--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(out), "--missing-rate", "0.5"]
    argv += ["--seeds", "1", "--fusion", name, "--no-progress", "--set", "max_epochs=1"]
    assert run.main(argv) == 0
    assert json.loads((out / "config.json").read_text())["config"]["fusion"] == name
    results = json.loads((out / "results.json").read_text())
    assert all(v == v for v in results["rates"]["0.5"]["mean"].values() if isinstance(v, float))
