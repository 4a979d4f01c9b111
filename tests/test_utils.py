"""monai_ext.bundle_helpers: atomic writes of files and folders."""

from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pytest

from monai_ext.io import atomic_directory, atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_normal_permissions_and_suffix(tmp_path):
    old = os.umask(0o022)
    try:
        seen = []
        out = atomic_write(tmp_path / "sub" / "x.nii.gz", lambda tmp: (seen.append(tmp.name), nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp)))
        assert seen[0].endswith(".tmp.nii.gz") and seen[0].startswith(".x.nii.gz.")  # nibabel goes by the extension
        assert nib.load(str(out)).shape == (2, 2, 2)
        assert _mode(out) == 0o644  # not mkstemp's 0600
        folder = tmp_path / "gen"
        assert atomic_directory(folder, lambda tmp: (tmp / "a.txt").write_text("a")) is True
        assert _mode(folder) == 0o755 and (folder / "a.txt").read_text() == "a"
    finally:
        os.umask(old)


def test_atomic_write_failure_leaves_nothing(tmp_path):
    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "model.pt", broken)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep.pt").write_text("old")
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "keep.pt", broken)
    assert (tmp_path / "keep.pt").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_atomic_directory_keeps_a_concurrent_writers_folder(tmp_path):
    folder = tmp_path / "cache"

    def fill(tmp):
        (tmp / "ours.txt").write_text("ours")
        folder.mkdir()  # another process finished first
        (folder / "theirs.txt").write_text("theirs")

    assert atomic_directory(folder, fill) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert sorted(p.name for p in folder.iterdir()) == ["theirs.txt"]
    with pytest.raises(ValueError):
        atomic_directory(tmp_path / "other", lambda tmp: (_ for _ in ()).throw(ValueError("bad")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_atomic_directory_fills_an_existing_empty_folder(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()  # the empty dataset_dir a user made
    with pytest.raises(ValueError):
        atomic_directory(folder, lambda tmp: (_ for _ in ()).throw(ValueError("bad")))
    assert folder.is_dir() and not any(folder.iterdir())  # a failure leaves it as it was
    assert atomic_directory(folder, lambda tmp: (tmp / "a.txt").write_text("a")) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"] and (folder / "a.txt").read_text() == "a"
    assert atomic_directory(folder, lambda tmp: (tmp / "b.txt").write_text("b")) is False  # not empty any more
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]


def test_config_flag_reads_cli_strings():
    from monai_ext.bundle_helpers import config_flag

    assert config_flag(True, "x") is True and config_flag(0, "x") is False
    assert config_flag("false", "x") is False and config_flag(" Yes ", "x") is True and config_flag("0", "x") is False
    with pytest.raises(ValueError, match="flag_name must be true or false, got 'maybe'"):
        config_flag("maybe", "flag_name")
    with pytest.raises(ValueError, match="flag_name"):
        config_flag(2, "flag_name")
