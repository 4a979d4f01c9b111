"""COVID bundle training options (issue 28): the 'all' split of a phantom folder and starting from earlier weights."""

import pytest
import torch

from monai_ext.apps.covid19_ct_fewshot_seg import fewshot_segmentation_datalist
from monai_ext.bundle_helpers import load_weights
from monai_ext.phantoms.chest_ct_dataset import synthesize_dataset


def test_split_all_trains_on_more_than_four_cases(tmp_path):
    synthesize_dataset(tmp_path, cases=10, seed=0, shape=(24, 24, 16), spacing=(12.0, 12.0, 12.0), variety=True,
                       progress=False)
    fewshot = fewshot_segmentation_datalist(tmp_path, fold=0, num_val=1)
    everything = fewshot_segmentation_datalist(tmp_path, fold=0, num_val=1, split="all")
    assert len(fewshot["training"]) == 4
    assert len(everything["training"]) == 8 and len(everything["validation"]) == 1 and len(everything["testing"]) == 1
    train = {d["image"] for d in everything["training"]}
    assert not train & {d["image"] for d in everything["validation"] + everything["testing"]}
    with pytest.raises(ValueError, match="split must be one of"):
        fewshot_segmentation_datalist(tmp_path, split="most")


def test_load_weights_plain_wrapped_and_mismatched(tmp_path):
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.save(src.state_dict(), tmp_path / "plain.pt")
    torch.save({"model": src.state_dict()}, tmp_path / "wrapped.pt")
    for name in ("plain.pt", "wrapped.pt"):
        torch.nn.init.zeros_(dst.weight)
        assert load_weights(dst, tmp_path / name) is dst
        assert torch.equal(dst.weight, src.weight)
    with pytest.raises(ValueError, match="do not fit the network"):
        load_weights(torch.nn.Linear(4, 2), tmp_path / "plain.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_weights(dst, tmp_path / "missing.pt")
