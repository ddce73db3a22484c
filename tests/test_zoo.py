"""Teacher zoo: cache keys, atomic save, corrupt/stale detection and rebuild, the shipped teacher."""
import warnings

import pytest
import torch

from kd_lab import zoo
from kd_lab.models import build_model
from kd_lab.train import evaluate

# A recipe small enough to train in a second or two on the CPU.
TINY = {"preset": "mlp", "epochs": 1, "batch_size": 256, "lr": 0.05, "weight_decay": 5e-4,
        "optimizer": "sgd", "augment": False, "train_size": 1000, "seed": 0}


def tiny_teacher_file(tmp_cache):
    return tmp_cache / zoo._file_name("fashion-mnist", TINY)


def test_key_depends_on_every_recipe_field_and_the_dataset():
    base = zoo.recipe_key("fashion-mnist", TINY)
    assert base == zoo.recipe_key("fashion-mnist", dict(TINY))
    assert zoo.recipe_key("mnist", TINY) != base
    for field in TINY:
        changed = dict(TINY, **{field: "x"})
        assert zoo.recipe_key("fashion-mnist", changed) != base, field


def test_train_then_cache_hit(tmp_cache):
    first = zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    path = tiny_teacher_file(tmp_cache)
    assert path.is_file() and not list(tmp_cache.glob(".*.tmp"))      # atomic save leaves no temp file
    assert first.zoo_info["test_acc"] > 0.5 and not first.training
    stamp = path.stat().st_mtime_ns
    second = zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    assert path.stat().st_mtime_ns == stamp                            # loaded, not retrained
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b)


def _corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _corrupt_weights(path):
    payload = torch.load(path, weights_only=True)
    first = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][first] = payload["state_dict"][first] + 1
    torch.save(payload, path)


def _corrupt_recipe(path):
    payload = torch.load(path, weights_only=True)
    payload["recipe"] = dict(payload["recipe"], epochs=99)
    torch.save(payload, path)


def _corrupt_garbage(path):
    path.write_bytes(b"not a checkpoint at all")


@pytest.mark.parametrize("damage,reported", [(_corrupt_truncate, "cannot be read"),
                                             (_corrupt_weights, "fails its checksum"),
                                             (_corrupt_recipe, "is stale"),
                                             (_corrupt_garbage, "cannot be read")])
def test_damaged_cache_is_reported_and_rebuilt(tmp_cache, damage, reported):
    zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    path = tiny_teacher_file(tmp_cache)
    damage(path)
    with pytest.warns(UserWarning, match=reported):
        rebuilt = zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    model, info = zoo.load_teacher(path, "fashion-mnist", TINY)        # the file is good again
    assert info["test_acc"] == rebuilt.zoo_info["test_acc"]


def test_save_load_roundtrip_is_fp16_exact(tmp_path):
    model = build_model("mlp")
    path = zoo.save_teacher(model, tmp_path / "t.pt", "fashion-mnist", TINY, {"note": 1})
    loaded, info = zoo.load_teacher(path, "fashion-mnist", TINY)
    assert info == {"note": 1}
    for k, v in model.state_dict().items():
        expected = v.half().float() if v.is_floating_point() else v
        torch.testing.assert_close(loaded.state_dict()[k], expected)


def test_unknown_recipe_and_dataset():
    with pytest.raises(ValueError, match=r"unknown teacher recipe 'huge'; choose one of "
                                         r"\['first20k', 'first20k-quick', 'full', 'quick'\]"):
        zoo.get_teacher("fashion-mnist", "huge")
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        zoo.get_teacher("imagenet")


def test_shipped_teacher_accuracy_on_the_real_test_set(fashion, tmp_cache):
    """The teacher shipped in kd_lab/weights reaches >= 93.5 % on the 10,000 test images."""
    name = zoo._file_name("fashion-mnist", zoo.RECIPES["full"])
    assert (zoo.SHIPPED_DIR / name).is_file(), f"shipped teacher {name} is missing"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        teacher = zoo.get_teacher("fashion-mnist", "full", "cpu", verbose=False)   # empty cache: shipped file
    assert teacher.zoo_info["path"] == str(zoo.SHIPPED_DIR / name)
    _, test = fashion
    acc = evaluate(teacher, test).accuracy
    assert acc >= 0.935
    assert acc == pytest.approx(teacher.zoo_info["test_acc"], abs=1e-4)
    assert (zoo.SHIPPED_DIR / name).stat().st_size < 5e6
