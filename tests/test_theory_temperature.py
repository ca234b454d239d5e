"""Remarks 11 and 12: temperatures of SGD."""

import pytest

from sgdvi.theory import temperature as tp


def test_temperature_table_values():
    df = tp.temperature_table([60000, 50000], [0.1], [128])
    row = df[df.N == 60000].iloc[0]
    assert row.inv_beta_with == pytest.approx(0.1 / 256)
    assert row.inv_beta_without == pytest.approx(0.1 / 256 * (1 - 128 / 60000))
    assert row.factor == pytest.approx(1 - 128 / 60000)
    assert row.eta_over_b == pytest.approx(0.1 / 128)


def test_linear_scaling_keeps_temperature():
    a = tp.inverse_temperature_with_replacement(0.1, 128)
    b = tp.inverse_temperature_with_replacement(0.1 * 8, 128 * 8)
    assert a == pytest.approx(b)
    assert tp.inverse_temperature_without_replacement(0.1, 60000, 60000) == 0.0


def test_batch_larger_than_dataset_is_rejected():
    with pytest.raises(ValueError, match="exceeds dataset size"):
        tp.temperature_table([100], [0.1], [128])
