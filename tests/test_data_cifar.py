"""CIFAR-10/100 reader and local source on small files in the official pickle format."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sgdvi.data.cifar import CIFAR_SPECS, fetch_cifar, load_cifar
from sgdvi.data.fetch import DownloadError


def write_cifar(root: Path, name: str, per_batch: int = 3, seed: int = 0) -> dict:
    """Write ``root/<folder>/`` like the official python version; return the arrays written."""
    spec = CIFAR_SPECS[name]
    rng = np.random.default_rng(seed)
    folder = root / spec.folder
    folder.mkdir(parents=True)
    written = {}
    for member in spec.train + spec.test:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, spec.classes, per_batch).tolist()
        batch = {b"batch_label": b"x", b"data": data, b"filenames": [b"a.png"] * per_batch}
        if name == "cifar10":
            batch[b"labels"] = labels
        else:
            batch[b"fine_labels"] = labels
            batch[b"coarse_labels"] = [c // 5 for c in labels]
        with open(folder / member, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[member] = (data, labels)
    with open(folder / spec.meta, "wb") as f:
        pickle.dump({b"label_names": [b"c"] * spec.classes}, f, protocol=2)
    return written


def pixel(row: np.ndarray, c: int, i: int, j: int) -> int:
    """Pixel (channel c, row i, column j) of a CIFAR row: 1024 R, then G, then B values."""
    return int(row[c * 1024 + i * 32 + j])


def check(out: dict, written: dict, name: str) -> None:
    spec = CIFAR_SPECS[name]
    for split, members in (("train", spec.train), ("test", spec.test)):
        data = np.concatenate([written[m][0] for m in members])
        labels = np.concatenate([written[m][1] for m in members])
        x = out[f"x_{split}"]
        assert x.shape == (len(data), 3, 32, 32) and x.dtype == np.uint8
        np.testing.assert_array_equal(out[f"y_{split}"], labels)
        assert out[f"y_{split}"].dtype == np.int64
        for k, c, i, j in [(0, 0, 0, 0), (1, 1, 5, 31), (len(data) - 1, 2, 31, 7)]:
            assert x[k, c, i, j] == pixel(data[k], c, i, j)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_load_folder_and_targz(tmp_path, name):
    spec = CIFAR_SPECS[name]
    written = write_cifar(tmp_path / "src", name)
    # extracted folder, given as the folder or as its parent
    check(load_cifar(tmp_path / "src" / spec.folder, name), written, name)
    check(load_cifar(tmp_path / "src", name), written, name)
    # official archive, given as the file or as its directory
    (tmp_path / "arch").mkdir()
    with tarfile.open(tmp_path / "arch" / spec.archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / spec.folder, arcname=spec.folder)
    check(load_cifar(tmp_path / "arch" / spec.archive, name), written, name)
    check(load_cifar(tmp_path / "arch", name), written, name)
    assert len(load_cifar(tmp_path / "arch", name)["y_train"]) == 3 * len(spec.train)


def test_missing_key_and_bad_shape(tmp_path):
    spec = CIFAR_SPECS["cifar10"]
    write_cifar(tmp_path, "cifar10")
    with open(tmp_path / spec.folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(ValueError, match=r"data_batch_3.*no key 'labels'"):
        load_cifar(tmp_path, "cifar10")
    with open(tmp_path / spec.folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"expected uint8 \(n, 3072\)"):
        load_cifar(tmp_path, "cifar10")
    (tmp_path / spec.folder / "test_batch").write_bytes(b"not a pickle")
    (tmp_path / spec.folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar(tmp_path, "cifar10")


def test_fetch_local_folder_and_archive(tmp_path):
    spec = CIFAR_SPECS["cifar100"]
    written = write_cifar(tmp_path / "src", "cifar100")
    folder = fetch_cifar(
        "cifar100", tmp_path / "dest", ["local"], local_dir=tmp_path / "src", verify_md5=False
    )
    assert folder == tmp_path / "dest" / spec.folder
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == [spec.folder]
    check(load_cifar(tmp_path / "dest", "cifar100"), written, "cifar100")

    (tmp_path / "arch").mkdir()
    with tarfile.open(tmp_path / "arch" / spec.archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / spec.folder, arcname=spec.folder)
    fetch_cifar(
        "cifar100", tmp_path / "dest2", ["local"], local_dir=tmp_path / "arch", verify_md5=False
    )
    check(load_cifar(tmp_path / "dest2", "cifar100"), written, "cifar100")


def test_fetch_md5_mismatch_and_failure_message(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    write_cifar(tmp_path / "src", "cifar10")
    with pytest.raises(DownloadError) as err:
        fetch_cifar("cifar10", tmp_path / "dest", ["torchvision", "local"], tmp_path / "src")
    msg = str(err.value)
    assert "torchvision: OSError: network unreachable" in msg
    assert "local: checksum mismatch: data_batch_1: md5" in msg
    assert msg.index("torchvision:") < msg.index("local:")
    assert "data.cifar.local_dir_cifar10" in msg
    assert not (tmp_path / "dest" / "cifar-10-batches-py").exists()

    with pytest.raises(DownloadError, match="local_dir_cifar10 is not set"):
        fetch_cifar("cifar10", tmp_path / "dest", ["local"], None)
