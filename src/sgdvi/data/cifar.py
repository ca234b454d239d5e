"""CIFAR-10 / CIFAR-100: download (torchvision) or local copy, and the python-pickle reader.

Figs. 2a-c of Chaudhari & Soatto (2018) train small-allcnn on CIFAR-10 and CIFAR-100.
The official "python version" archives (``cifar-10-python.tar.gz``,
``cifar-100-python.tar.gz``) hold pickled dicts: ``b'data'`` uint8 (n, 3072) with the
1024 red, then green, then blue values of each 32x32 image in row-major order, and
``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` (CIFAR-100). CIFAR-10 has the training batches
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; CIFAR-100 has ``train`` and ``test``.

Pickle files can run code when loaded: the reader is meant for the official archive
(verified against torchvision's MD5 checksums by :func:`fetch_cifar`) or a copy you trust.
"""

from __future__ import annotations

import io
import logging
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgdvi.data.fetch import SourceFailed, socket_timeout, try_sources, verify_checksums

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CifarSpec:
    """Layout of one official CIFAR python archive."""

    name: str
    url: str
    archive: str
    archive_md5: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    classes: int
    md5: Mapping[str, str]  # member file -> MD5, from torchvision


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        name="cifar10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive="cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        label_key="labels",
        classes=10,
        md5={
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
        },
    ),
    "cifar100": CifarSpec(
        name="cifar100",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive="cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        label_key="fine_labels",
        classes=100,
        md5={
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        },
    ),
}


def cifar_spec(name: str) -> CifarSpec:
    if name not in CIFAR_SPECS:
        raise ValueError(f"unknown CIFAR dataset {name!r}; use one of {list(CIFAR_SPECS)}")
    return CIFAR_SPECS[name]


def local_hint(spec: CifarSpec) -> str:
    n = spec.name.removeprefix("cifar")
    return (
        f"To use a local copy: on a machine with internet, download {spec.url} (the python "
        f"version), copy {spec.archive} or its extracted folder {spec.folder}/ into a "
        f"directory, and set data.cifar.local_dir_cifar{n} to that directory (keep 'local' in "
        "data.cifar.sources) in config/config.yaml or in a file passed with --configfile."
    )


# --------------------------------------------------------------------------- locating


def _find_archive(path: Path, spec: CifarSpec) -> Path | None:
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return path
    if (path / spec.archive).is_file():
        return path / spec.archive
    return None


def _find_folder(path: Path, spec: CifarSpec) -> Path | None:
    for folder in (path / spec.folder, path):
        if folder.is_dir() and all((folder / f).is_file() for f in spec.train + spec.test):
            return folder
    return None


def _members(spec: CifarSpec) -> tuple[str, ...]:
    return spec.train + spec.test


# --------------------------------------------------------------------------- reading


def _unpickle(fobj: io.BufferedIOBase, where: str) -> dict[str, object]:
    try:
        obj = pickle.load(fobj, encoding="bytes")
    except Exception as exc:
        raise ValueError(
            f"{where}: not a CIFAR python pickle ({type(exc).__name__}: {exc}); "
            "use the official python version of the dataset"
        ) from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _batch_arrays(
    batch: Mapping[str, object], spec: CifarSpec, where: str
) -> tuple[np.ndarray, np.ndarray]:
    for key in ("data", spec.label_key):
        if key not in batch:
            raise ValueError(f"{where}: the pickled dict has no key {key!r} (keys {list(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[spec.label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{where}: 'data' has shape {data.shape} and dtype {data.dtype}; "
            "expected uint8 (n, 3072)"
        )
    if labels.shape != (len(data),):
        raise ValueError(f"{where}: {labels.shape} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.classes):
        raise ValueError(f"{where}: labels outside 0..{spec.classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(path: str | Path, name: str) -> dict[str, np.ndarray]:
    """Read CIFAR-10/100 from the official python archive or its extracted folder.

    ``path`` may be the ``.tar.gz`` itself, a directory holding it, the extracted folder
    (``cifar-10-batches-py`` / ``cifar-100-python``), or a directory holding that folder.
    Returns ``x_train`` uint8 (n, 3, 32, 32), ``y_train`` int64 (n,), ``x_test``, ``y_test``.
    """
    spec = cifar_spec(name)
    path = Path(path)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    folder = _find_folder(path, spec) if path.is_dir() else None
    archive = None if folder else _find_archive(path, spec)
    if folder is not None:
        for member in _members(spec):
            where = str(folder / member)
            with open(folder / member, "rb") as f:
                batches[member] = _batch_arrays(_unpickle(f, where), spec, where)
    elif archive is not None:
        with tarfile.open(archive, "r:*") as tar:
            by_name = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
            missing = [m for m in _members(spec) if m not in by_name]
            if missing:
                raise ValueError(f"{archive} lacks {missing}; is it the {spec.archive} archive?")
            for member in _members(spec):
                where = f"{archive}:{by_name[member].name}"
                fobj = tar.extractfile(by_name[member])
                assert fobj is not None
                with fobj:
                    batches[member] = _batch_arrays(_unpickle(fobj, where), spec, where)
    else:
        raise FileNotFoundError(
            f"no {spec.name} data at {path}: expected {spec.archive} or a folder {spec.folder}/ "
            f"with {list(_members(spec))}"
        )
    out = {}
    for split, members in (("train", spec.train), ("test", spec.test)):
        out[f"x_{split}"] = np.concatenate([batches[m][0] for m in members])
        out[f"y_{split}"] = np.concatenate([batches[m][1] for m in members])
    return out


# --------------------------------------------------------------------------- fetching


def _extract_members(archive: Path, dest: Path, spec: CifarSpec) -> None:
    """Extract the data files (and meta file) of ``archive`` into ``dest`` (flat, safe)."""
    wanted = set(_members(spec)) | {spec.meta}
    found = set()
    with tarfile.open(archive, "r:*") as tar:
        for m in tar.getmembers():
            base = m.name.rsplit("/", 1)[-1]
            if m.isfile() and base in wanted and base not in found:
                fobj = tar.extractfile(m)
                assert fobj is not None
                with fobj, open(dest / base, "wb") as out:
                    shutil.copyfileobj(fobj, out)
                found.add(base)
    missing = [m for m in _members(spec) if m not in found]
    if missing:
        raise SourceFailed(f"{archive} lacks {missing}")


def _from_torchvision(scratch: Path, spec: CifarSpec, timeout: float) -> None:
    from torchvision.datasets.utils import download_url

    with socket_timeout(timeout):
        download_url(spec.url, root=str(scratch), filename=spec.archive, md5=spec.archive_md5)
    (scratch / spec.folder).mkdir()
    _extract_members(scratch / spec.archive, scratch / spec.folder, spec)
    (scratch / spec.archive).unlink()


def _from_local(scratch: Path, spec: CifarSpec, local_dir: str | Path | None) -> None:
    n = spec.name.removeprefix("cifar")
    if not local_dir:
        raise SourceFailed(f"data.cifar.local_dir_cifar{n} is not set")
    root = Path(local_dir).expanduser()
    if not root.exists():
        raise SourceFailed(f"data.cifar.local_dir_cifar{n} {str(root)!r} does not exist")
    out = scratch / spec.folder
    out.mkdir()
    folder = _find_folder(root, spec) if root.is_dir() else None
    if folder is not None:
        for member in (*_members(spec), spec.meta):
            if (folder / member).is_file():
                shutil.copyfile(folder / member, out / member)
        return
    archive = _find_archive(root, spec)
    if archive is None:
        raise SourceFailed(
            f"{root} holds neither {spec.archive} nor a folder {spec.folder}/ with "
            f"{list(_members(spec))}"
        )
    _extract_members(archive, out, spec)


def fetch_cifar(
    name: str,
    dest_dir: str | Path,
    sources: Sequence[str],
    local_dir: str | Path | None = None,
    timeout: float = 15.0,
    verify_md5: bool = True,
) -> Path:
    """Put the extracted data files of CIFAR ``name`` in ``dest_dir/<folder>``; return it.

    Sources in order: ``torchvision`` (downloads the official archive, MD5-checked by
    torchvision) and ``local`` (archive or extracted folder in ``local_dir``). With
    ``verify_md5`` every extracted data file must match torchvision's per-file MD5 (turn it
    off only for generated test fixtures). Raises :class:`sgdvi.data.fetch.DownloadError`
    listing every failed source.
    """
    spec = cifar_spec(name)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    attempts = {
        "torchvision": lambda scratch: _from_torchvision(scratch, spec, timeout),
        "local": lambda scratch: _from_local(scratch, spec, local_dir),
    }
    unknown = [s for s in sources if s not in attempts]
    if unknown:
        raise ValueError(f"data.cifar.sources: unknown {unknown}; use {list(attempts)}")
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=dest) as tmp:

        def attempt(source: str) -> Path:
            scratch = Path(tmp) / source
            scratch.mkdir()
            attempts[source](scratch)
            folder = scratch / spec.folder
            if verify_md5:
                verify_checksums(
                    {m: folder / m for m in _members(spec)}, dict(spec.md5), algo="md5"
                )
            load_cifar(folder, name)  # readable, right shapes and labels
            return folder

        _, folder = try_sources(
            spec.name, [(s, lambda s=s: attempt(s)) for s in sources], local_hint(spec)
        )
        final = dest / spec.folder
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(folder), final)
    log.info("%s: data files in %s", name, final)
    return final
