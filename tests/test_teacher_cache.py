"""The exact teacher-output cache (kd_lab.teacher_cache): view ids that reproduce the augmentation without
changing its random stream, cached outputs equal to the online teacher's for the same (image, view) in fp32
and under bf16 autocast, every consumer's loss terms unchanged, subsets (SSLD's L ∪ U) mapped back to the
split, the file on disk (reused by another process; stale and corrupt files detected and rebuilt), fit and
train_method with and without the cache, and the error a per-image cache makes.

Tolerances: fp32 outputs and loss terms within atol 1e-5 (the teacher is the same function; only the batch
it is computed in differs); under bf16 autocast, outputs within one bf16 rounding step (rtol 2⁻⁷) of the online
teacher under the same autocast.
"""
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from kd_lab import data as kd_data
from kd_lab import teacher_cache as tc
from kd_lab.experiments import Setting, train_method
from kd_lab.methods import make_method, method_names
from kd_lab.models import build_model
from kd_lab.train import fit
from kd_lab.zoo import get_teacher

FP32_ATOL = 1e-5
BF16_RTOL = 2 ** -7                  # one step of bf16's 8-bit significand


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def teacher():
    """The shipped Fashion-MNIST teacher (eval mode, CPU)."""
    return get_teacher("fashion-mnist", "full", "cpu", verbose=False)


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "teacher_outputs"


def online(teacher, data, images, views, bf16=False):
    """The teacher run now on the rendered views, as fit's batch would give them: Features of (B, ...)."""
    x = data.normalize(kd_data.view_images(data.x[images], views, data.pad))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return teacher(x, features=True)


def every_view(images, pad=2):
    """All (image, view) pairs of ``images``: two (n·V,) tensors."""
    views = torch.arange(kd_data.num_views(pad))
    return images.repeat_interleave(len(views)), views.repeat(len(images))


# ------------------------------------------------------------------------------------- view ids
def old_augment_batch(x, pad, flip, generator=None):
    """augment_batch as it was before view ids (a verbatim copy): the random stream must not change."""
    b, c, h, w = x.shape
    dev = x.device
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b, 1), device=dev, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b, 1), device=dev, generator=generator)
        rows = (dy + torch.arange(h, device=dev))[:, None, :, None]
        cols = (dx + torch.arange(w, device=dev))[:, None, None, :]
        bidx = torch.arange(b, device=dev)[:, None, None, None]
        cidx = torch.arange(c, device=dev)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]
    if flip:
        mask = torch.rand(b, device=dev, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


@pytest.mark.parametrize("pad, flip", [(2, True), (2, False), (4, True), (0, True), (0, False)])
def test_same_seed_gives_the_same_augmented_batch_and_stream_as_before(fashion, pad, flip):
    x = fashion[0].x[:200]
    g_old, g_new = gen(5), gen(5)
    for _ in range(3):                                       # several batches: the stream stays in step
        before = old_augment_batch(x, pad, flip, g_old)
        plain = kd_data.augment_batch(x, pad, flip, g_new)
        assert torch.equal(before, plain)
    with_views, views = kd_data.augment_batch(x, pad, flip, gen(9), return_views=True)
    assert torch.equal(with_views, old_augment_batch(x, pad, flip, gen(9)))
    assert torch.equal(torch.rand(4, generator=g_old), torch.rand(4, generator=g_new))


@pytest.mark.parametrize("pad, flip", [(2, True), (2, False), (4, True), (1, True), (0, True)])
def test_view_ids_reproduce_the_augmented_images(fashion, pad, flip):
    x = fashion[0].x[:500]
    out, views = kd_data.augment_batch(x, pad, flip, gen(3), return_views=True)
    assert views.shape == (500,) and 0 <= int(views.min()) and int(views.max()) < kd_data.num_views(pad)
    assert torch.equal(kd_data.view_images(x, views, pad), out)
    if not flip:
        assert (views % 2 == 0).all()                        # no flip drawn, no flipped view id
    if pad == 2 and flip:
        assert kd_data.num_views(pad) == 50 and len(views.unique()) == 50     # 500 draws reach every view


def test_each_view_id_is_its_crop_and_flip():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    ident = kd_data.identity_view(2)
    assert torch.equal(kd_data.view_images(x, torch.tensor([ident, ident]), 2), x)
    assert torch.equal(kd_data.view_images(x, torch.tensor([ident + 1, ident]), 2)[0], x[0].flip(2))
    corner = kd_data.view_images(x, torch.tensor([0, 0]), 2)                # dy = dx = 0: shifted down-right
    assert torch.equal(corner[:, :, 2:, 2:], x[:, :, :2, :2]) and (corner[:, :, :2] == 0).all()


def test_batches_yield_views_that_reproduce_each_batch(fashion):
    data = fashion[0].subset(torch.arange(300))
    plain = list(data.batches(64, augment=True, generator=gen(1)))
    keyed = list(data.batches(64, augment=True, generator=gen(1), with_view=True))
    for (x0, y0), (x, y, idx, views) in zip(plain, keyed, strict=True):
        assert torch.equal(x0, x) and torch.equal(y0, y)                         # the same batches as before
        assert torch.equal(data.normalize(kd_data.view_images(data.x[idx], views, data.pad)), x)
    _, _, _, views = next(data.batches(64, shuffle=False, with_view=True))       # no augmentation: identity
    assert (views == kd_data.identity_view(data.pad)).all()


def test_bad_view_ids_are_refused():
    with pytest.raises(ValueError, match=r"view ids in 0\.\.49 for pad 2, got shape \(3,\), values 0\.\.50"):
        kd_data.view_images(torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 50]), 2)
    with pytest.raises(ValueError, match=r"must be a \(2,\) tensor"):
        kd_data.view_images(torch.zeros(2, 1, 4, 4), torch.tensor([0]), 2)


def test_subsets_keep_their_indices_into_the_split(fashion):
    train = fashion[0]
    first = train.subset(torch.tensor([10, 20, 30, 40]))
    second = first.subset(torch.tensor([3, 1]))
    assert train.source_index is None and torch.equal(first.source_index, torch.tensor([10, 20, 30, 40]))
    assert torch.equal(second.source_index, torch.tensor([40, 20]))
    assert torch.equal(train.x[second.source_indices()], second.x)
    assert torch.equal(replace(second, y=second.y + 1).source_index, second.source_index)
    assert torch.equal(second.to("cpu").source_index, second.source_index)


# ------------------------------------------------------------------------------- exact outputs
@pytest.mark.parametrize("kind", tc.KINDS)
def test_every_view_of_a_few_images_equals_the_online_teacher_fp32(fashion, teacher, folder, kind):
    train = fashion[0]
    images, views = every_view(torch.tensor([0, 7, 1234, 59999]))
    table = tc.TeacherOutputs(teacher, train, kind, folder=folder)
    cached = table.lookup(images, views)
    want = getattr(online(teacher, train, images, views), kind)
    assert cached.dtype == torch.float32 and cached.shape == want.shape == (200, table.dim)
    torch.testing.assert_close(cached, want, atol=FP32_ATOL, rtol=0)
    assert table.computed == 200
    again = table.lookup(images.flip(0), views.flip(0))                # served from the table, any order
    assert table.computed == 200 and torch.equal(again, cached.flip(0))


def test_under_bf16_autocast_the_cache_equals_the_online_teacher_under_the_same_autocast(fashion, teacher, folder):
    train = fashion[0]
    images, views = every_view(torch.tensor([3, 99]))
    for kind in tc.KINDS:
        table = tc.TeacherOutputs(teacher, train, kind, bf16=True, folder=folder)
        cached = table.lookup(images, views)
        want = getattr(online(teacher, train, images, views, bf16=True), kind)
        assert cached.dtype == want.dtype == torch.bfloat16
        torch.testing.assert_close(cached.float(), want.float(), rtol=BF16_RTOL, atol=1e-6)


def test_random_training_batches_of_a_subset_are_served_exactly(fashion, teacher, folder):
    """Batches as fit draws them from a labeled subset: positions mapped to the split through source_index."""
    train = fashion[0]
    labeled = train.subset(kd_data.labeled_split(train.y, 200, seed=1).labeled)
    table = tc.TeacherOutputs(teacher, train, "logits", folder=folder)
    seen = 0
    for _ in range(2):                                                 # two epochs: the second hits sometimes
        for x, _, idx, views in labeled.batches(50, augment=True, generator=gen(seen), with_view=True):
            with torch.no_grad():
                want = teacher(x)
            torch.testing.assert_close(table.lookup(labeled.source_indices(idx), views), want, atol=FP32_ATOL, rtol=0)
            seen += 1
    assert 0 < table.computed < table.served == 400


# -------------------------------------------------------------------------------- every consumer
CONSUMERS = ["kd", "dkd", "ssld", "rkd-d", "rkd-a", "rkd", "kd+rkd"]


def test_which_methods_declare_cacheable_teacher_outputs():
    declared = {name: make_method(name, build_model("student-tiny"), build_model("student"), **(
        {"peers": "student-tiny"} if name in ("dml", "udml") else {})).teacher_outputs for name in method_names()}
    assert declared == {"scratch": (), "kd": ("logits",), "dkd": ("logits",), "ssld": ("logits",), "dml": (),
                        "fitnet": (), "ofd": (), "ofd+kd": (), "udml": (), "rkd-d": ("embedding",),
                        "rkd-a": ("embedding",), "rkd": ("embedding",), "kd+rkd": ("logits", "embedding")}


@pytest.mark.parametrize("name", CONSUMERS)
def test_every_consumer_gets_the_same_loss_terms_with_the_cache(fashion, teacher, folder, name):
    train = fashion[0]
    data = train.subset(torch.arange(1000, 1064))
    torch.manual_seed(0)
    method = make_method(name, build_model("student"), teacher)
    x, y, idx, views = next(data.batches(32, augment=True, generator=gen(4), with_view=True))
    want = method.loss_terms(x, y)                                     # online teacher
    cache = tc.TeacherCache(train, folder=folder).attach(method, data)
    calls = []
    hook = teacher.register_forward_hook(lambda *_: calls.append(1))
    try:
        for round_ in range(2):                                        # cold (computes), then warm (reads)
            cache.bind(x, idx, views)
            got = method.loss_terms(x, y)
            assert got.keys() == want.keys()
            for term in want:
                torch.testing.assert_close(got[term], want[term], atol=FP32_ATOL, rtol=0)
            assert len(calls) == 1, f"round {round_}: the teacher ran {len(calls)} times"   # once, for all kinds
        assert method.loss_terms(x.clone(), y).keys() == want.keys() and len(calls) == 2   # another x: online
    finally:
        hook.remove()
        cache.detach(method)
    assert method.output_cache is None and cache.hit_rate == 0.5


def test_ssld_trains_on_l_and_mined_u_through_indices_into_the_split(fashion, folder):
    train, test = fashion
    teacher = get_teacher("fashion-mnist", "first20k", "cpu", verbose=False)
    method = make_method("ssld", build_model("student"), teacher, pool_size=300, top_k=5)
    labeled = kd_data.labeled_split(train.y, 20, seed=0).labeled
    data = method.training_set(train, labeled, test)                   # L ∪ mined U, U's labels the teacher's
    assert len(data) > 20 and torch.equal(train.x[data.source_index], data.x)
    assert torch.equal(data.source_index[:20], labeled) and (data.source_index[20:] >= 20000).all()
    cache = tc.TeacherCache(train, folder=folder)
    h = fit(method, data, None, epochs=1, batch_size=16, device="cpu", amp="off", progress=False, teacher_cache=cache)
    assert h.status == "finished" and h.config["teacher_cache"] is True
    table = cache.tables["logits"]
    assert set(table.image[:table.used].tolist()) == set(data.source_index.tolist())
    images = data.source_index
    views = table.filled[table.slot[images]].float().argmax(1)         # the one view each image was seen in
    torch.testing.assert_close(table.read(images, views), online(teacher, train, images, views).logits,
                               atol=FP32_ATOL, rtol=0)


def test_a_training_set_from_another_split_or_a_method_without_outputs_is_refused(fashion, teacher, folder):
    train, test = fashion
    kd = make_method("kd", build_model("student"), teacher)
    with pytest.raises(ValueError, match=r"training set \(10 images of 'fashion-mnist'\) is not part of the cache's "
                                         r"split \(60000 images"):
        tc.TeacherCache(train, folder=folder).attach(kd, test.subset(torch.arange(10)))
    with pytest.raises(ValueError, match="declares teacher_outputs among .* 'fitnet' declares \\(\\)"):
        tc.TeacherCache(train, folder=folder).attach(make_method("fitnet", build_model("student"), teacher), train)
    with pytest.raises(ValueError, match="whole split, not on a subset of 10 images"):
        tc.TeacherCache(train.subset(torch.arange(10)))
    with pytest.raises(ValueError, match=r"kind must be one of \('logits', 'embedding'\), got 'taps'"):
        tc.TeacherOutputs(teacher, train, "taps", folder=folder)


# ------------------------------------------------------------------------------------------ disk
def test_a_table_is_saved_and_reloaded_lazily(fashion, teacher, folder):
    images, views = every_view(torch.tensor([5, 6]))
    first = tc.TeacherOutputs(teacher, fashion[0], "embedding", folder=folder)
    want = first.lookup(images, views)
    assert first.save() == first.path and first.save() is None         # nothing new: not written again
    assert first.path.parent == folder and not list(folder.glob(".*.tmp"))
    second = tc.TeacherOutputs(teacher, fashion[0], "embedding", folder=folder)
    assert not second.loaded and second.used == 0                      # lazy: nothing read yet
    assert torch.equal(second.lookup(images, views), want) and second.computed == 0


def test_saving_merges_the_rows_another_process_saved(fashion, teacher, folder):
    train = fashion[0]
    a = tc.TeacherOutputs(teacher, train, "logits", folder=folder)
    b = tc.TeacherOutputs(teacher, train, "logits", folder=folder)
    pa, pb = every_view(torch.tensor([1])), every_view(torch.tensor([2]))
    a.lookup(*pa), b.lookup(*pb)                                       # both read the (missing) file first
    a.save(), b.save()
    c = tc.TeacherOutputs(teacher, train, "logits", folder=folder)
    c.lookup(torch.cat([pa[0], pb[0]]), torch.cat([pa[1], pb[1]]))
    assert c.computed == 0


def test_a_second_process_reuses_the_file(fashion, teacher, folder):
    images, views = every_view(torch.tensor([11, 12]))
    table = tc.TeacherOutputs(teacher, fashion[0], "logits", folder=folder)
    want = table.lookup(images, views)
    table.save()
    script = (
        "import sys, torch\n"
        "from kd_lab import data, teacher_cache as tc\n"
        "from kd_lab.zoo import get_teacher\n"
        "train, _ = data.load('fashion-mnist')\n"
        "table = tc.TeacherOutputs(get_teacher('fashion-mnist', 'full', 'cpu', verbose=False), train, 'logits',"
        " folder=sys.argv[1])\n"
        "images = torch.tensor([11, 12]).repeat_interleave(50); views = torch.arange(50).repeat(2)\n"
        "torch.save(table.lookup(images, views), sys.argv[2]); print('computed', table.computed)\n")
    out = folder.parent / "out.pt"
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(out)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "KD_LAB_QUICK": "1"})
    assert done.returncode == 0, done.stderr
    assert "computed 0" in done.stdout
    assert torch.equal(torch.load(out), want)


def _rewrite(path, change):
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


@pytest.mark.parametrize("damage, report", [
    (lambda p: p.write_bytes(b"not a torch file"), "cannot be read"),
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "cannot be read"),
    (lambda p: _rewrite(p, lambda d: d["rows"].add_(1)), "fails its checksum"),
    (lambda p: _rewrite(p, lambda d: d["key"].update(format=0)), r"is stale: it holds \{'format': 0\}, wanted "
                                                                 r"\{'format': 1\}"),
    (lambda p: _rewrite(p, lambda d: d["key"].update(data="another split")), "is stale: it holds {'data'"),
    (lambda p: _rewrite(p, lambda d: d.update(filled=d["filled"][:, :3])), "rows of the wrong shape"),
    (lambda p: torch.save([1, 2], p), "is not a kd_lab teacher-output file of format 1"),
])
def test_a_stale_or_corrupt_file_is_reported_and_rebuilt(fashion, teacher, folder, damage, report):
    images, views = every_view(torch.tensor([21]))
    table = tc.TeacherOutputs(teacher, fashion[0], "logits", folder=folder)
    want = table.lookup(images, views)
    damage(table.save())
    rebuilt = tc.TeacherOutputs(teacher, fashion[0], "logits", folder=folder)
    with pytest.warns(UserWarning, match=report) as caught:
        assert torch.equal(rebuilt.lookup(images, views), want)
    assert len(caught) == 1 and "\n" not in str(caught[0].message) and "rebuilding it" in str(caught[0].message)
    assert rebuilt.computed == 50 and rebuilt.save() == rebuilt.path                # rewritten, valid again
    healed = tc.TeacherOutputs(teacher, fashion[0], "logits", folder=folder)
    assert torch.equal(healed.lookup(images, views), want) and healed.computed == 0


def test_the_key_names_teacher_split_kind_and_precision(fashion, teacher, folder):
    train, test = fashion
    key = tc.TeacherOutputs(teacher, train, "logits", folder=folder).key
    assert key == {"format": tc.FORMAT, "teacher": tc.weights_hash(teacher), "data": tc.images_hash(train),
                   "dataset": "fashion-mnist", "images": 60000, "kind": "logits", "dim": 10, "pad": 2, "views": 50,
                   "dtype": "float32"}
    paths = {tc.TeacherOutputs(teacher, split, kind, bf16=bf16, folder=folder).path
             for split in (train, test) for kind in tc.KINDS for bf16 in (False, True)}
    assert len(paths) == 8                                             # no two tables share a file
    other = build_model("teacher")
    assert tc.weights_hash(other) != key["teacher"] and tc.images_hash(test) != key["data"]
    assert tc.TeacherOutputs(teacher, train, "embedding", folder=folder).dim == 256


# ------------------------------------------------------------------------------------------ fit
def test_fit_with_the_cache_trains_exactly_as_with_the_online_teacher(fashion, teacher, folder):
    train, test = fashion
    data = train.subset(torch.arange(2000, 2128))
    runs = {}
    for cached in (False, True):
        torch.manual_seed(0)
        method = make_method("kd", build_model("student"), teacher)
        cache = tc.TeacherCache(train, folder=folder) if cached else None
        runs[cached] = fit(method, data, test.subset(torch.arange(100)), epochs=2, batch_size=32, device="cpu",
                           amp="off", progress=False, teacher_cache=cache), method
    (h0, m0), (h1, m1) = runs[False], runs[True]
    assert h0.config["teacher_cache"] is False and "teacher_cache_hit_rate" not in h0.config
    assert h1.config["teacher_cache"] is True and 0 <= h1.config["teacher_cache_hit_rate"] < 0.1
    assert m1.output_cache is None                                     # detached when the run ended
    for a, b in zip(h0.steps, h1.steps, strict=True):
        assert a["kd"] == pytest.approx(b["kd"], abs=1e-5) and a["ce"] == pytest.approx(b["ce"], abs=1e-5)
    assert h0.test_acc == h1.test_acc
    for p0, p1 in zip(m0.student.parameters(), m1.student.parameters(), strict=True):
        torch.testing.assert_close(p0, p1, atol=FP32_ATOL, rtol=0)      # the same trained student


def test_train_method_uses_the_cache_by_default_and_not_when_switched_off(teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("KD_LAB_CACHE", str(tmp_path / "cache"))
    setting = Setting(labeled=64, epochs=1, test_size=100, eval_every=1)
    _, on = train_method("kd", setting, device="cpu", teacher=teacher, progress=False)
    _, again = train_method("kd", setting, device="cpu", teacher=teacher, progress=False)
    _, off = train_method("kd", replace(setting, teacher_cache=False), device="cpu", teacher=teacher, progress=False)
    _, scratch = train_method("scratch", setting, device="cpu", progress=False)
    assert on.config["teacher_cache"] and again.config["teacher_cache"] and not off.config["teacher_cache"]
    assert on.config["teacher_cache_hit_rate"] == 0 and again.config["teacher_cache_hit_rate"] == 1.0  # same draws
    assert scratch.config["teacher_cache"] is False                    # no teacher outputs to cache
    assert len(list((tmp_path / "cache" / "teacher_outputs").glob("fashion-mnist-logits-*.pt"))) == 1
    assert Setting().teacher_cache is True


def test_the_run_command_has_a_switch_to_turn_the_cache_off():
    from kd_lab.__main__ import build_parser
    assert build_parser().parse_args(["run", "kd", "--no-teacher-cache"]).no_teacher_cache is True
    assert build_parser().parse_args(["run", "kd"]).no_teacher_cache is False


# ------------------------------------------------------------------------------ the naive cache
def test_a_per_image_cache_is_wrong_under_augmentation(fashion, teacher):
    train = fashion[0]
    err = tc.naive_cache_error(teacher, train, 4)
    images, views = every_view(torch.arange(4))
    true = online(teacher, train, images, views).logits                                # (200, 10)
    naive = online(teacher, train, torch.arange(4), torch.full((4,), kd_data.identity_view(2))).logits
    naive = naive.repeat_interleave(50, dim=0)
    assert err["pairs"] == 200
    assert err["logit_mae"] == pytest.approx(float((true - naive).abs().mean()), abs=1e-5)
    assert err["top1_changed"] == pytest.approx(float((true.argmax(1) != naive.argmax(1)).float().mean()))
    p, q = torch.softmax(true / 4, 1), torch.log_softmax(naive / 4, 1)
    assert err["kd_loss"] == pytest.approx(float(16 * (p * (p.log() - q)).sum(1).mean()), rel=1e-4)
    assert err["logit_mae"] > 0.05 and err["kd_loss"] > 0.005          # the views differ for the teacher
    with pytest.raises(ValueError, match=r"n_images must be an integer in 1\.\.60000, got 0"):
        tc.naive_cache_error(teacher, train, 0)
