"""The trained byte-level LM of the accuracy benchmarks (benchmarks/trained_lm.py) at tiny sizes, its
perplexity helper, and a smoke run of the LM section (benchmarks/accuracy_lm.py)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import accuracy_lm  # noqa: E402
from benchmarks.trained_lm import SEQ, byte_lm, corpus, perplexity, windows  # noqa: E402

TINY = dict(d=16, layers=1, heads=2, steps=3, batch=2, packages=("json",))


def test_perplexity_of_a_uniform_and_of_a_perfect_predictor():
    text = bytes(range(256)) * 20
    assert perplexity(lambda ids: np.zeros(ids.shape + (256,), np.float32), text, batch=4) == pytest.approx(256)

    def oracle(ids):  # the next byte of this text is the current one plus 1
        logits = np.full(ids.shape + (256,), -50.0, np.float32)
        np.put_along_axis(logits, ((ids + 1) % 256)[..., None], 50.0, axis=-1)
        return logits
    assert perplexity(oracle, text, batch=4) == pytest.approx(1.0)
    w = windows(text, limit=3)
    assert w.shape == (3, SEQ + 1) and w[1, 0] == text[SEQ]


def test_corpus_holds_out_whole_files():
    train, held_out = corpus(("json",))
    assert train and held_out and held_out not in train


def test_byte_lm_trains_seeded_then_loads_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path))
    first = byte_lm(**TINY)
    assert first.train_s > 0 and list(tmp_path.glob("trained/byte_lm-*.pt"))
    second = byte_lm(**TINY)
    assert second.train_s == 0
    for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values()):
        assert torch.equal(a, b)
    ids = np.zeros((2, SEQ), np.int64)
    assert first.module(torch.from_numpy(ids)).shape == (2, SEQ, 256)
    cal = first.calibration(6, batch=2)
    assert len(cal) == 3 and cal[0][0].shape == (2, SEQ) and cal[0][0].dtype == np.int64


@pytest.mark.slow
def test_lm_section_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path))
    lines = accuracy_lm.run(quick=True)
    table = [line for line in lines if line.startswith("| int4 g128 GPTQ |")]
    assert len(table) == 1 and "half of round to nearest" in "\n".join(lines)
