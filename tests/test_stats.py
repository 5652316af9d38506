import numpy as np
import pytest

from vla_data.normalize import Normalizer, pad_dims
from vla_data.stats import QUANTILES, RunningStats


def _mixture(rng, n=6000):
    return np.concatenate(
        [
            rng.normal(size=(n // 2, 3)),
            rng.normal(5, 10, size=(n // 3, 3)),
            rng.uniform(-100, 1, size=(n // 6, 3)),
        ]
    )


@pytest.mark.parametrize("order", ["shuffled", "ascending", "descending", "rounded"])
def test_quantiles_within_documented_bound_of_numpy(order):
    rng = np.random.default_rng(0)
    data = _mixture(rng)
    if order == "ascending":
        data = np.sort(data, axis=0)
    elif order == "descending":
        data = np.sort(data, axis=0)[::-1]
    elif order == "rounded":
        data = np.round(data)  # many ties
    stats = RunningStats()
    for batch in np.array_split(data, 41):
        stats.update(batch)
    result = stats.result()
    bound = np.asarray(result["quantile_error_bound"])
    span = data.max(axis=0) - data.min(axis=0)
    assert np.all(bound <= 2 * span / stats.bins * 1.001)
    for name, q in QUANTILES.items():
        exact = np.quantile(data, q, axis=0)
        assert np.all(np.abs(np.asarray(result[name]) - exact) <= bound), name
    np.testing.assert_allclose(result["mean"], data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result["std"], data.std(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(result["min"], data.min(axis=0))
    np.testing.assert_array_equal(result["max"], data.max(axis=0))
    assert result["count"] == len(data)


def test_constant_dimension_then_outlier():
    stats = RunningStats()
    stats.update(np.zeros((100, 1)))
    stats.update(np.full((1, 1), 1000.0))
    result = stats.result()
    assert result["q50"] == [0.0]
    assert result["max"] == [1000.0]
    assert (
        abs(result["q99"][0] - np.quantile(np.r_[np.zeros(100), 1000.0], 0.99))
        <= result["quantile_error_bound"][0]
    )


def test_quantile_normalizer_matches_formula_and_inverts():
    rng = np.random.default_rng(1)
    x = rng.normal(3, 2, size=(500, 4))
    stats = RunningStats()
    stats.update(x)
    result = stats.result()
    norm = Normalizer.from_stats(result, "quantile")
    q01, q99 = np.asarray(result["q01"]), np.asarray(result["q99"])
    np.testing.assert_allclose(norm.normalize(x), (x - q01) / (q99 - q01 + 1e-6) * 2 - 1)
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(x)), x)
    z = Normalizer.from_stats(result, "zscore")
    np.testing.assert_allclose(z.normalize(x), (x - x.mean(0)) / (x.std(0) + 1e-6), rtol=1e-9)
    np.testing.assert_allclose(z.unnormalize(z.normalize(x)), x)
    assert np.abs(Normalizer.from_stats(result, "quantile", clip=True).normalize(x * 10)).max() <= 1.0


def test_normalizer_without_stats_says_what_to_do():
    with pytest.raises(Exception, match="vla-data stats"):
        Normalizer.from_stats({"mean": [0.0]}, "quantile")


def test_pad_dims():
    padded, mask = pad_dims(np.ones((2, 3)), 5)
    assert padded.shape == (2, 5) and padded[:, 3:].sum() == 0
    assert mask.tolist() == [True, True, True, False, False]
    with pytest.raises(Exception, match="more than the model dimension"):
        pad_dims(np.ones((2, 6)), 5)
