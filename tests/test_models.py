"""The four networks of Section IV: weight counts quoted by the paper / the authors' code."""

from __future__ import annotations

import pytest
import torch

from sgdvi.models import MODEL_SPECS, build_model, count_weights, flat_parameters


@pytest.mark.parametrize(
    ("name", "num_classes", "weights"),
    [
        ("small-lenet", 10, 13_338),
        ("small-fc", 10, 3_978),
        ("tiny-fc", 5, 917),
        ("small-allcnn", 10, 26_982),
        ("small-allcnn", 100, 29_412),
    ],
)
def test_weight_counts_and_output_shapes(name, num_classes, weights):
    model = build_model(name, num_classes=num_classes)
    assert count_weights(model) == weights
    assert flat_parameters(model).shape == (weights,)
    x = torch.randn(4, *MODEL_SPECS[name].input_shape)
    for mode in (model.train, model.eval):
        mode()
        out = model(x)
        assert out.shape == (4, num_classes)
        assert torch.isfinite(out).all()


def test_default_classes_and_dropout():
    assert build_model("tiny-fc")[-1].out_features == 5
    lenet = build_model("small-lenet")
    assert [m.p for m in lenet if isinstance(m, torch.nn.Dropout)] == [0.1, 0.1, 0.1]


def test_fc_models_refuse_dropout():
    with pytest.raises(ValueError, match="dropout: 0"):
        build_model("small-fc", dropout=0.1)


@pytest.mark.parametrize(
    ("name", "classes"),
    [
        ("small-lenet", 10),
        ("small-fc", 10),
        ("tiny-fc", 5),
        ("small-allcnn", 10),
        ("small-allcnn", 100),
    ],
)
def test_closed_form_weight_count_matches_the_built_network(name, classes):
    from sgdvi.config import weight_count
    from sgdvi.models import build_model, count_weights

    assert weight_count(name, classes) == count_weights(build_model(name, num_classes=classes))
