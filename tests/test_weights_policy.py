"""Committed weights stay small and change only with a release (docs/ARCHITECTURE.md, "Bundles, weights and results").

git keeps every version of a weight file forever, so a trial checkpoint committed once costs every clone. Weight
files may change only in a commit that also changes the bundle's ``version`` in ``configs/metadata.json``.
The history check starts at the commit that introduced this rule (earlier commits did not follow it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
MAX_FILE_MB = 5.0
MAX_BUNDLE_MB = 10.0
#: the commit that introduced this rule; the history check covers the commits after it
POLICY_START = "686328e"


def _mb(path: Path) -> float:
    return path.stat().st_size / 2**20


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_weights_stay_under_the_size_limits(bundle: Path):
    files = [p for p in (bundle / "models").glob("*") if p.is_file()]
    big = [f"{p.name} ({_mb(p):.1f} MB)" for p in files if _mb(p) > MAX_FILE_MB]
    assert not big, f"{bundle.name}: weight files over {MAX_FILE_MB} MB: {big}"
    total = sum(_mb(p) for p in files)
    assert total <= MAX_BUNDLE_MB, f"{bundle.name}: models/ holds {total:.1f} MB, over {MAX_BUNDLE_MB} MB"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def _version_at(commit: str, metadata: str) -> str | None:
    try:
        return json.loads(_git("show", f"{commit}:{metadata}"))["version"]
    except (subprocess.CalledProcessError, json.JSONDecodeError, KeyError):
        return None


def test_weights_change_only_with_a_version_bump():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    try:
        commits = _git("rev-list", "--reverse", f"{POLICY_START}..HEAD").split()
    except subprocess.CalledProcessError:
        pytest.skip(f"history before {POLICY_START} not available (shallow clone)")
    offenders = []
    for commit in commits:
        changed = _git("diff-tree", "--no-commit-id", "--name-only", "-r", f"{commit}^", commit).split()
        for bundle in {Path(p).parts[1] for p in changed if p.startswith("bundles/") and "/models/" in p}:
            metadata = f"bundles/{bundle}/configs/metadata.json"
            before, after = _version_at(f"{commit}^", metadata), _version_at(commit, metadata)
            if before == after:
                offenders.append(f"{commit[:8]} changes bundles/{bundle}/models/ but its version stays {after}")
    assert not offenders, "\n".join(offenders)
