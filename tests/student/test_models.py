"""BiLSTM student: padding invariance, seeding, safe save/load, ONNX export, GloVe initialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdutils.data.assets import AssetError, package_file
from kdutils.data.embeddings import glove_embedding_matrix, glove_neighbours, load_glove
from kdutils.data.text import Vocab
from kdutils.student.models import (
    BiLSTMClassifier,
    StudentLoadError,
    build_student,
    load_student,
    save_student,
)
from kdutils.student.train import build_vocab, init_student
from kdutils.study.config import StudentArch, StudentConfig, load_profile
from kdutils.study.specs import GLOVE

GLOVE_PACKAGE, GLOVE_REQUIREMENT, GLOVE_INDEX = GLOVE.package, GLOVE.requirement, (GLOVE.index_member, GLOVE.index_sha256)

MINILM_PARAMS = 22_700_000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch(vocab: Vocab, rt_splits) -> tuple[torch.Tensor, torch.Tensor]:
    return vocab.encode_batch(rt_splits.val.text.tolist()[:16], max_length=64)


def _meta(name: str = "student_test") -> dict:
    return {"name": name, "label_names": ["negative", "positive"], "max_length": 64}


@pytest.mark.parametrize(("pooling", "layers"), [("max", 1), ("mean", 1), ("both", 2)])
def test_padding_does_not_change_logits(vocab: Vocab, batch, pooling: str, layers: int) -> None:
    torch.manual_seed(0)
    model = BiLSTMClassifier(len(vocab), 2, 16, 12, layers, pooling, 0.3).eval()
    ids, mask = batch
    base = model(ids, mask)
    # Extra right padding, with garbage token ids under the mask: the logits must not move.
    extra = 9
    padded_ids = F.pad(ids, (0, extra), value=0)
    padded_ids[~F.pad(mask, (0, extra))] = 7
    padded = model(padded_ids, F.pad(mask, (0, extra)))
    torch.testing.assert_close(padded, base, atol=1e-5, rtol=0)
    # Each sentence alone (no padding at all) gives its batched logits.
    for i in (0, 5):
        n = int(mask[i].sum())
        torch.testing.assert_close(model(ids[i:i + 1, :n], mask[i:i + 1, :n]), base[i:i + 1], atol=1e-5, rtol=0)


def test_fixed_seed_gives_identical_weights(vocab: Vocab) -> None:
    cfg = StudentConfig()
    for arch in (cfg.main, cfg.original):
        a = init_student(vocab, 2, arch, seed=3).state_dict()
        b = init_student(vocab, 2, arch, seed=3).state_dict()
        c = init_student(vocab, 2, arch, seed=4).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)


def test_glove_initialisation_uses_real_vectors(vocab: Vocab) -> None:
    words, vectors = load_glove()
    model = init_student(vocab, 2, StudentArch(), seed=0)
    emb = model.embedding.weight.detach().numpy()
    row = words.index("good")
    np.testing.assert_array_equal(emb[vocab.stoi["good"]], vectors[row])
    assert not emb[Vocab.PAD_ID].any()
    _, coverage = glove_embedding_matrix(vocab)
    assert 0.9 < coverage <= 1.0


def test_glove_files_are_pinned() -> None:
    with pytest.raises(AssetError, match="sha256"):
        package_file(GLOVE_PACKAGE, GLOVE_INDEX[0], GLOVE_REQUIREMENT, "0" * 64)


def test_glove_neighbours_are_cosine_nearest_within_words() -> None:
    words = ["<pad>", "<unk>", "good", "great", "bad", "terrible", "awful", "film", "movie", "zzqxv"]
    nbrs = glove_neighbours(words, k=2, cache=False)
    assert "<unk>" not in nbrs and "zzqxv" not in nbrs
    assert nbrs["film"][0] == "movie" and nbrs["terrible"][0] == "awful"
    assert all(w not in v and len(v) == 2 and set(v) <= set(words) for w, v in nbrs.items())
    with pytest.raises(ValueError):
        glove_neighbours(words, k=0)


@pytest.mark.parametrize("profile", ["default", "paper"])
def test_parameter_budget_of_main_config(profile: str) -> None:
    cfg = load_profile(profile).student
    model = build_student(cfg.vocab_size, 2, cfg.main)
    assert model.num_parameters() <= MINILM_PARAMS / 20
    original = build_student(cfg.vocab_size, 2, cfg.original)
    assert original.hidden_size == 8 and original.embedding_dim == 16 and original.num_layers == 1
    assert original.num_parameters() < model.num_parameters()


def test_save_load_round_trip(vocab: Vocab, batch, tmp_path) -> None:
    model = init_student(vocab, 2, StudentArch(hidden_size=16, pooling="both"), seed=1).eval()
    save_student(tmp_path / "s", model, vocab, _meta())
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "config.json", "kdmodel.json", "model.safetensors", "vocab.json"]
    loaded, loaded_vocab, meta = load_student(tmp_path / "s")
    assert not loaded.training and loaded_vocab == vocab
    assert meta["kind"] == "student" and meta["params"] == model.num_parameters() and meta["size_mb"] > 0
    torch.testing.assert_close(loaded(*batch), model(*batch), atol=0, rtol=0)


def test_vocab_weights_mismatch_is_a_clear_error(vocab: Vocab, rt_splits, tmp_path) -> None:
    model = BiLSTMClassifier(len(vocab), 2, 8, 4, 1, "max", 0.0)
    save_student(tmp_path / "s", model, vocab, _meta())
    build_vocab(rt_splits.train.text, max_size=500).save(tmp_path / "s" / "vocab.json")
    with pytest.raises(StudentLoadError, match="vocab/weights mismatch"):
        load_student(tmp_path / "s")
    # Same size, other words: caught by the hash recorded at save time.
    other = Vocab([*vocab.itos[:2], *reversed(vocab.itos[2:])])
    other.save(tmp_path / "s" / "vocab.json")
    with pytest.raises(StudentLoadError, match="sha256 mismatch"):
        load_student(tmp_path / "s")
    (tmp_path / "s" / "vocab.json").unlink()
    with pytest.raises(StudentLoadError, match="vocab.json is missing"):
        load_student(tmp_path / "s")
    with pytest.raises(ValueError, match="vocab has"):
        save_student(tmp_path / "t", BiLSTMClassifier(len(vocab) + 1, 2, 8, 4), vocab, _meta())


def test_save_refuses_incomplete_meta(vocab: Vocab, tmp_path) -> None:
    with pytest.raises(ValueError, match="max_length"):
        save_student(tmp_path / "s", BiLSTMClassifier(len(vocab), 2, 8, 4), vocab, {"name": "x", "label_names": [0, 1]})
    assert not (tmp_path / "s").exists()


def test_bad_inputs_do_not_crash(vocab: Vocab) -> None:
    model = BiLSTMClassifier(len(vocab), 2, 8, 4).eval()
    ids, mask = vocab.encode_batch(["", "zzqxv qqqzr", "good " * 500], max_length=64)
    assert ids.shape == (3, 64)
    logits = model(ids, mask)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    # A hand-made all-padding row (never produced by encode_batch) still gives finite logits.
    assert torch.isfinite(model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool))).all()
    with pytest.raises(ValueError, match="pooling"):
        BiLSTMClassifier(len(vocab), 2, pooling="attention")


def test_onnx_export_with_dynamic_batch_and_length(vocab: Vocab, batch, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = BiLSTMClassifier(len(vocab), 2, 16, 8, 2, "both", 0.3).eval()
    ids, mask = batch
    path = tmp_path / "student.onnx"
    # Traced on 2 rows cut to their own width, run on 16 rows of another width.
    width = int(mask[:2].sum(dim=1).max())
    assert width < ids.shape[1]
    torch.onnx.export(model, (ids[:2, :width], mask[:2, :width]), str(path), dynamo=False, opset_version=17,
                      input_names=["input_ids", "mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "time"}, "mask": {0: "batch", 1: "time"},
                                    "logits": {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "mask": mask.numpy()})[0]
    np.testing.assert_allclose(got, model(ids, mask).detach().numpy(), atol=1e-5)
    assert json.loads(json.dumps(model.config()))["vocab_size"] == len(vocab)
