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


def test_temperature_rows_for_the_theory_table():
    """Four ``remarks`` rows per (N, eta, b), in the theory table's format, with the values
    worked out by hand: eta / (2 b), times (1 - b / N) without replacement."""
    from sgdvi.theory import checks

    table = checks.frame(tp.temperature_rows(tp.temperature_table([1000], [0.2], [100])))
    assert list(table.columns) == checks.COLUMNS and set(table.check) == {"remarks"}
    values = dict(zip(table.quantity, table.value, strict=True))
    assert values == pytest.approx(
        {
            "inv_beta_with_replacement": 0.001,
            "inv_beta_without_replacement": 0.0009,
            "factor_1_minus_b_over_N": 0.9,
            "eta_over_b": 0.002,
        }
    )
    assert set(table.setting) == {"N=1000, eta=0.2, b=100"} and table.passed.isna().all()
