"""The project's transforms follow MONAI core style: ``backend`` declared (and true), ``XD = XDict = Xd``
aliases for every dictionary transform, ``__all__`` and docstrings, inputs left unchanged unless ``inplace``."""

import importlib
import inspect

import monai.transforms
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ComponentLocator
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

import monai_ext  # noqa: F401 - loads every module, as a bundle's "$import monai_ext" does
from monai_ext.transforms import (
    HeatmapPeaksTopK,
    HeatmapToPointsOtsu,
    PlanarRadiograph,
    PointList,
    MultiPointHeatmap,
    AdjacentSlices,
    CellTargets,
    CentroidSeededWatershed,
    StainDeconvolution,
    TightSliceBoxes,
    WorldBoxToSliceBoxes,
)
from monai_ext.apps.us_inpainting_hpi import NeedleGapMask, RandNeedleGapMask
from monai_ext.apps.us_variational_style_transfer import (
    RandStyleTransfer,
    StyleInterpolate,
    StyleTransfer,
    USVariationalStyleTransfer,
)
from monai_ext.transforms import (
    CheckLabel,
    DatasetChannelCoding,
    UnionLabelEncode,
    CheckVolume,
    ComponentMajorityLabel,
    FBPKernel,
    FreeFormMask,
    NeedleReverberation,
    RandFreeFormMask,
    RandNeedleReverberation,
    LoadConnectome,
    LoadConnectomed,
    ScaleConnectome,
    LoadContrasts,
    LoadContrastsd,
    LoadScan,
    LoadScand,
    LoadUltrasound,
    LoadUltrasoundd,
    BSplineMaskWarp,
    MapLabels,
    MaskCrop,
    MaskMorphology,
    MaskOutsideBody,
    MaskShift,
    NoduleErase,
    NoduleErased,
    NoduleInsert,
    NoduleInsertd,
    ObliquePlane,
    PerlinNoise,
    RandBSplineMaskWarp,
    RandFBPKernel,
    RandMaskCrop,
    RandMaskMorphology,
    RandNoduleInsert,
    RandNoduleInsertd,
    RandObliquePlane,
    RandPerlinNoise,
    RandSparsePlaneAnnotation,
    ReloadOriginal,
    ComponentDetections,
    LatticeSplineDeform,
    RandLatticeSplineDeform,
    RemoveDarkComponents,
    ScanInputError,
    TwoPointSphereLabel,
    VesselGuidedPatchSamples,
    SegmentationGradCAM,
    SparsePlaneAnnotation,
)

# module -> the package that re-exports it
MODULES = {
    "monai_ext.transforms.binary_mask": "monai_ext.transforms",
    "monai_ext.transforms.body_mask": "monai_ext.transforms",
    "monai_ext.transforms.cell_maps": "monai_ext.transforms",
    "monai_ext.transforms.class_activation": "monai_ext.transforms",
    "monai_ext.transforms.component_detections": "monai_ext.transforms",
    "monai_ext.transforms.component_majority": "monai_ext.transforms",
    "monai_ext.transforms.lattice_spline_deform": "monai_ext.transforms",
    "monai_ext.transforms.two_point_sphere": "monai_ext.transforms",
    "monai_ext.transforms.vessel_guided_patches": "monai_ext.transforms",
    "monai_ext.transforms.dataset_channel_coding": "monai_ext.transforms",
    "monai_ext.transforms.union_labels": "monai_ext.transforms",
    "monai_ext.transforms.connectome": "monai_ext.transforms",
    "monai_ext.transforms.fbp_kernel": "monai_ext.transforms",
    "monai_ext.transforms.free_form_mask": "monai_ext.transforms",
    "monai_ext.transforms.gas_components": "monai_ext.transforms",
    "monai_ext.transforms.hu_window": "monai_ext.transforms",
    "monai_ext.transforms.input_checks": "monai_ext.transforms",
    "monai_ext.transforms.label_mapping": "monai_ext.transforms",
    "monai_ext.transforms.load_contrasts": "monai_ext.transforms",
    "monai_ext.transforms.load_ultrasound": "monai_ext.transforms",
    "monai_ext.transforms.mask_crop": "monai_ext.transforms",
    "monai_ext.transforms.mask_morphology": "monai_ext.transforms",
    "monai_ext.transforms.mask_shift": "monai_ext.transforms",
    "monai_ext.transforms.mask_warp": "monai_ext.transforms",
    "monai_ext.transforms.needle_reverberation": "monai_ext.transforms",
    "monai_ext.transforms.nodule_erase": "monai_ext.transforms",
    "monai_ext.transforms.nodule_geometry": "monai_ext.transforms",
    "monai_ext.transforms.nodule_insert": "monai_ext.transforms",
    "monai_ext.transforms.oblique_plane": "monai_ext.transforms",
    "monai_ext.transforms.point_list": "monai_ext.transforms",
    "monai_ext.transforms.planar_radiograph": "monai_ext.transforms",
    "monai_ext.transforms.multi_point_heatmap": "monai_ext.transforms",
    "monai_ext.transforms.heatmap_otsu_points": "monai_ext.transforms",
    "monai_ext.transforms.heatmap_peaks": "monai_ext.transforms",
    "monai_ext.transforms.perlin_noise": "monai_ext.transforms",
    "monai_ext.transforms.polyline": "monai_ext.transforms",
    "monai_ext.transforms.random_delegate": "monai_ext.transforms",
    "monai_ext.transforms.sparse_planes": "monai_ext.transforms",
    "monai_ext.transforms.reload_original": "monai_ext.transforms",
    "monai_ext.transforms.adjacent_slices": "monai_ext.transforms",
    "monai_ext.transforms.slice_boxes": "monai_ext.transforms",
    "monai_ext.transforms.stain_deconvolution": "monai_ext.transforms",
    "monai_ext.apps.us_variational_style_transfer.transforms": "monai_ext.apps.us_variational_style_transfer",
    "monai_ext.apps.us_inpainting_hpi.transforms": "monai_ext.apps.us_inpainting_hpi",
}
LOADERS = {LoadScan, LoadScand, LoadUltrasound, LoadUltrasoundd, LoadContrasts, LoadContrastsd, LoadConnectome,
           LoadConnectomed}  # input: file names, not array data


def _defined(modname: str) -> dict:
    """Public classes and functions defined in the module (an alias appears under its own name)."""
    mod = importlib.import_module(modname)
    return {
        n: o for n, o in vars(mod).items()
        if not n.startswith("_") and (inspect.isclass(o) or inspect.isfunction(o)) and o.__module__ == modname
    }


def test_every_transform_module_is_checked_here():
    import pkgutil

    import monai_ext.transforms as pkg

    found = {f"monai_ext.transforms.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)}
    assert found <= set(MODULES), f"add to MODULES: {sorted(found - set(MODULES))}"


def _transform_classes() -> list:
    return [
        o for m in MODULES for n, o in _defined(m).items()
        if inspect.isclass(o) and n == o.__name__ and issubclass(o, (Transform, MapTransform))
    ]


def _dict_classes() -> list:
    return [c for c in _transform_classes() if issubclass(c, MapTransform)]


def test_every_transform_declares_its_backend():
    classes = _transform_classes()
    assert len(classes) >= 20, classes
    for cls in classes:
        assert "backend" in vars(cls), f"{cls.__name__} does not declare backend"
        assert isinstance(cls.backend, list) and all(isinstance(b, TransformBackends) for b in cls.backend), cls
        assert (cls.backend == []) == (cls in LOADERS), cls  # only loaders take no array data
    for cls in _dict_classes():
        array = getattr(importlib.import_module(cls.__module__), cls.__name__[:-1])
        assert cls.backend == array.backend, cls


# ----------------------------------------------------------------------------- backends are true


def _ct(shape=(28, 28, 20)):
    """Lung block (-850 HU) in soft tissue (40 HU), 1 mm voxels; returns (image, lung mask), both (1, *shape)."""
    img = np.full((1, *shape), 40.0, np.float32)
    img[0, 3:-3, 3:-3, 3:-3] = -850.0
    img += np.random.default_rng(0).normal(0, 20, img.shape).astype(np.float32)
    lung = np.zeros(img.shape, np.uint8)
    lung[0, 3:-3, 3:-3, 3:-3] = 1
    return img, lung


@pytest.fixture(scope="module")
def tiny_style_model():
    torch.manual_seed(0)
    return USVariationalStyleTransfer(channels=(4, 8, 8), latent_dims=3).eval()


def _runners(model) -> dict:
    """For each array transform that declares the numpy and torch backends: ``run(convert)`` calls it on
    inputs converted by ``convert`` (np.asarray or torch.as_tensor) and returns the output to check."""
    img, lung = _ct()
    body = np.full((1, 8, 8, 8), -1000.0, np.float32)
    body[0, 2:6, 2:6, 2:6] = 40.0
    pred = np.zeros((2, 8, 8, 8), np.float32)
    pred[1] = 1.0
    us = np.random.default_rng(1).random((1, 16, 16)).astype(np.float32)
    rgb = np.random.default_rng(2).integers(0, 256, (3, 12, 10)).astype(np.uint8)
    cells = np.zeros((1, 12, 12), np.int32)
    cells[0, 1:6, 1:6], cells[0, 1:6, 6:11], cells[0, 7:11, 2:9] = 1, 2, 3   # two touching cells and one apart
    centre = dict(centre=[14.0, 14.0, 10.0], diameter_mm=6.0, centre_frame="voxel", pixdim=1.0)
    needle = NeedleReverberation([3.0, 2.0], 30.0, 12.0, curvature=0.01).params
    torch.manual_seed(0)
    seg_net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, 3, 1))
    points = np.array([[3.0, 4.0], [8.0, 2.0], [8.0, 8.0]])
    heat = MultiPointHeatmap(1.5, spatial_shape=(12, 10))(points)
    return {
        PointList: lambda c: PointList(5)(c(points)),
        PlanarRadiograph: lambda c: PlanarRadiograph()(c(rgb[..., None]), photometric="MONOCHROME1"),
        MultiPointHeatmap: lambda c: MultiPointHeatmap(1.5, spatial_shape=(12, 10))(c(points)),
        HeatmapToPointsOtsu: lambda c: HeatmapToPointsOtsu()(c(heat)),
        HeatmapPeaksTopK: lambda c: HeatmapPeaksTopK()(c(heat))[0],
        MaskOutsideBody: lambda c: MaskOutsideBody(-500.0)(c(pred), c(body)),
        CheckVolume: lambda c: CheckVolume(hu_range_check=True)(c(img)),
        CheckLabel: lambda c: CheckLabel(num_classes=2)(c(lung), c(img)),
        MapLabels: lambda c: MapLabels({1: 2})(c(lung)),
        DatasetChannelCoding: lambda c: DatasetChannelCoding(num_datasets=2)(c(img), 1),
        UnionLabelEncode: lambda c: UnionLabelEncode([2, 1])(c(lung), 1),
        ComponentMajorityLabel: lambda c: ComponentMajorityLabel(labels=(1, 2))(c(lung)),
        RemoveDarkComponents: lambda c: RemoveDarkComponents(-960.0, labels=(1,))(c(pred), c(body)),
        NoduleInsert: lambda c: NoduleInsert(**centre)(c(img), lung_mask=c(lung)),
        NoduleErase: lambda c: NoduleErase(**centre)(c(img)),
        RandNoduleInsert: lambda c: RandNoduleInsert(diameter_range=(3.0, 5.0), pixdim=1.0).set_random_state(0)(
            c(img), lung_mask=c(lung)),
        PerlinNoise: lambda c: PerlinNoise(30.0, scale=8.0, seed=3)(c(img)),
        BSplineMaskWarp: lambda c: BSplineMaskWarp(np.ones((3, 3, 3, 3)))(c(lung)),
        RandBSplineMaskWarp: lambda c: RandBSplineMaskWarp(sigma=3.0).set_random_state(0)(c(lung)),
        MaskShift: lambda c: MaskShift((2, -1, 1))(c(lung)),
        MaskCrop: lambda c: MaskCrop([[4, 4, 4, 12, 20, 10]])(c(lung)),
        RandMaskCrop: lambda c: RandMaskCrop(mode="rand_0").set_random_state(0)(c(lung)),
        MaskMorphology: lambda c: MaskMorphology(-1)(c(lung)),
        RandMaskMorphology: lambda c: RandMaskMorphology(mode="dilate").set_random_state(0)(c(lung)),
        RandPerlinNoise: lambda c: RandPerlinNoise(prob=1.0, amplitude_range=(10.0, 30.0)).set_random_state(0)(c(img)),
        FBPKernel: lambda c: FBPKernel(20.0, 2.0)(c(img)),
        FreeFormMask: lambda c: FreeFormMask([{"points": [[2, 2], [10, 12]], "width": 3}])(c(us)),
        RandFreeFormMask: lambda c: RandFreeFormMask().set_random_state(0)(c(us)),
        NeedleReverberation: lambda c: NeedleReverberation([3.0, 2.0], 30.0, 12.0, curvature=0.01)(c(us)),
        RandNeedleReverberation: lambda c: RandNeedleReverberation(prob=1.0).set_random_state(0)(c(us)),
        RandFBPKernel: lambda c: RandFBPKernel(prob=1.0).set_random_state(0)(c(img)),
        AdjacentSlices: lambda c: AdjacentSlices(context=2)(c(img)),
        TightSliceBoxes: lambda c: TightSliceBoxes()(c(lung)),
        WorldBoxToSliceBoxes: lambda c: WorldBoxToSliceBoxes()(c(img), [2.0, 3.0, 1.0, 20.0, 9.5, 15.0]),
        StyleTransfer: lambda c: StyleTransfer(model, device="cpu")(c(us), seed=1),
        RandStyleTransfer: lambda c: RandStyleTransfer(model, prob=1.0, device="cpu").set_random_state(0)(c(us)),
        StyleInterpolate: lambda c: StyleInterpolate(model, us, us[:, ::-1].copy(), device="cpu")(c(us)),
        SegmentationGradCAM: lambda c: SegmentationGradCAM(seg_net, "0", class_index=1)(c(img / 1000.0)),
        ObliquePlane: lambda c: ObliquePlane(np.eye(3)[:, [2, 0, 1]], center=[13.0, 14.0, 9.5], size=24)(c(img)),
        RandObliquePlane: lambda c: RandObliquePlane(size=20).set_random_state(0)(c(img)),
        SparsePlaneAnnotation: lambda c: SparsePlaneAnnotation([{"rotation": np.eye(3).tolist(), "center": [14, 14, 10]}])(c(lung)),
        RandSparsePlaneAnnotation: lambda c: RandSparsePlaneAnnotation(2).set_random_state(0)(c(lung)),
        StainDeconvolution: lambda c: StainDeconvolution(("haematoxylin", "dab"))(c(rgb)),
        CellTargets: lambda c: CellTargets(1.0)(c(cells)),
        ScaleConnectome: lambda c: ScaleConnectome()(c(np.abs(img[:, :8, :8, 0] + img[:, :8, :8, 0].transpose(0, 2, 1)))),
        CentroidSeededWatershed: lambda c: CentroidSeededWatershed(region_threshold=0.5)(c(CellTargets(1.0)(cells))),
        NeedleGapMask: lambda c: NeedleGapMask(needle, [[0.4, 0.7]])(c(us)),
        RandNeedleGapMask: lambda c: RandNeedleGapMask(prob=1.0).set_random_state(0)(c(us), needle),
        LatticeSplineDeform: lambda c: LatticeSplineDeform(np.ones((3, 3, 3, 3)))(c(img)),
        RandLatticeSplineDeform: lambda c: RandLatticeSplineDeform(max_displacement=2.0).set_random_state(0)(c(img)),
        TwoPointSphereLabel: lambda c: TwoPointSphereLabel()(c(img), [[[10.0, 12.0, 8.0], [16.0, 12.0, 8.0]]]),
        VesselGuidedPatchSamples: lambda c: VesselGuidedPatchSamples(2, 2, 2, 6.0, patch_size=8).set_random_state(0)(
            c(img), c(lung[:, ::-1].copy()))[-1],
        ComponentDetections: lambda c: ComponentDetections()(c(lung.astype(np.float32))),
    }


def test_numpy_and_torch_backends_are_true(tiny_style_model):
    runners = _runners(tiny_style_model)
    both = {c for c in _transform_classes() if not issubclass(c, MapTransform) and c.backend}
    assert set(runners) == both - {ReloadOriginal}, "every array transform on numpy and torch is exercised here"
    for cls, run in runners.items():
        assert set(cls.backend) == {TransformBackends.TORCH, TransformBackends.NUMPY}, cls
        out_np = run(np.asarray)
        out_t = run(torch.as_tensor)
        assert isinstance(out_np, np.ndarray) and not isinstance(out_t, np.ndarray), cls
        assert isinstance(out_t, torch.Tensor), cls
        np.testing.assert_allclose(out_np, out_t.cpu().numpy(), atol=1e-3, err_msg=cls.__name__)


def test_reload_original_is_torch_only(tmp_path):
    assert ReloadOriginal.backend == [TransformBackends.TORCH]
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), str(path))
    loaded = LoadScan(image_only=True, ensure_channel_first=True)(str(path))
    assert isinstance(ReloadOriginal()(loaded), MetaTensor)
    with pytest.raises(ScanInputError, match="filename_or_obj"):
        ReloadOriginal()(loaded.numpy())  # a plain array carries no file name


# ----------------------------------------------------------------------------- dictionary aliases


def test_every_dictionary_transform_has_monai_aliases():
    locator = ComponentLocator()
    classes = _dict_classes()
    assert len(classes) >= 12, classes
    for cls in classes:
        assert cls.__name__.endswith("d"), cls
        mod = importlib.import_module(cls.__module__)
        package = importlib.import_module(MODULES[cls.__module__])
        base = cls.__name__[:-1]
        for alias in (base + "D", base + "Dict"):
            assert getattr(mod, alias) is cls and alias in mod.__all__, alias
            assert getattr(package, alias) is cls and alias in package.__all__, alias
            assert not hasattr(monai.transforms, alias), f"{alias} is also a MONAI name"
            # a bundle config names it by its short _target_: one module defines it
            assert locator.get_component_module_name(alias) == cls.__module__, alias
        assert cls.__name__ in mod.__all__ and cls.__name__ in package.__all__
    # the convention is MONAI's own
    assert monai.transforms.ScaleIntensityD is monai.transforms.ScaleIntensityDict is monai.transforms.ScaleIntensityd


# ----------------------------------------------------------------------------- __all__ and docstrings


@pytest.mark.parametrize("modname", sorted(MODULES))
def test_module_has_all_and_documents_its_public_definitions(modname):
    mod = importlib.import_module(modname)
    assert mod.__doc__, modname
    assert isinstance(mod.__all__, list) and len(set(mod.__all__)) == len(mod.__all__), modname
    for name in mod.__all__:
        assert hasattr(mod, name), f"{modname}.__all__ lists missing {name}"
    missing = []
    for name, obj in _defined(modname).items():
        if not (vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__):
            missing.append(name)
        if inspect.isclass(obj) and name == obj.__name__:
            for meth, fn in vars(obj).items():
                fn = fn.__func__ if isinstance(fn, (staticmethod, classmethod)) else fn
                if inspect.isfunction(fn) and (meth == "__call__" or not meth.startswith("_")) and not fn.__doc__:
                    missing.append(f"{name}.{meth}")
    assert not missing, f"{modname}: no docstring: {missing}"
    package = importlib.import_module(MODULES[modname])
    for name in mod.__all__:
        if name[:1].isupper() or inspect.isfunction(getattr(mod, name)):
            assert getattr(package, name, None) is getattr(mod, name) and name in package.__all__, name


# ----------------------------------------------------------------------------- inplace


@pytest.mark.parametrize("cls", [NoduleInsert, NoduleInsertd, RandNoduleInsert, RandNoduleInsertd, NoduleErase,
                                 NoduleErased])
def test_nodule_transforms_do_not_write_into_their_input_by_default(cls):
    param = inspect.signature(cls).parameters["inplace"]
    assert param.default is False and param.annotation in (bool, "bool"), cls
