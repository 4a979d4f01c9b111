"""Every public monai_ext component resolves by its short _target_ name, and none collides with MONAI."""

import inspect
import sys

import monai
from monai.bundle import ComponentLocator, ConfigParser


def _monai_ext_public_components() -> dict[str, str]:
    found = {}
    for modname, mod in list(sys.modules.items()):
        if not modname.startswith("monai_ext") or mod is None:
            continue
        for name, obj in inspect.getmembers(mod):
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == modname and not name.startswith("_"):
                found[name] = modname
    return found


def _monai_core_components() -> set[str]:
    monai.utils.module.load_submodules(monai, True)
    names = set()
    for modname, mod in list(sys.modules.items()):
        if modname.startswith("monai.") or modname == "monai":
            if mod is None:
                continue
            for name, obj in inspect.getmembers(mod):
                if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == modname:
                    names.add(name)
    return names


def test_no_name_collides_with_monai():
    ours = _monai_ext_public_components()
    assert len(ours) > 5, ours
    clashes = sorted(set(ours) & _monai_core_components())
    assert not clashes, f"monai_ext names that MONAI also defines (ambiguous _target_): {clashes}"


def test_no_name_defined_twice_inside_monai_ext():
    locator = ComponentLocator()
    table = locator._find_classes_or_functions(locator._find_module_names())
    dups = {k: v for k, v in table.items() if len(v) > 1 and any(m.startswith("monai_ext") for m in v)}
    assert not dups, dups


def test_every_public_class_resolves_by_short_name():
    ours = {k: v for k, v in _monai_ext_public_components().items()}
    parser = ConfigParser({"imports": ["$import monai_ext"]})
    parser.parse()
    locator = ComponentLocator()
    for name, modname in ours.items():
        assert locator.get_component_module_name(name) == modname, name
        # and the config resolver can import it from there (a module named like its function would shadow it)
        config = ConfigParser({"imports": ["$import monai_ext"], "c": {"_target_": name, "_mode_": "callable"}})
        got = config.get_parsed_content("c")
        assert getattr(got, "func", got) is getattr(sys.modules[modname], name), name


def test_bundle_style_config_instantiates_short_targets():
    config = {
        "imports": ["$import monai_ext"],
        "loss": {"_target_": "DiceHausdorffDTLoss", "lambda_hd": 0.5},
        "nsd": {"_target_": "SpacingAwareSurfaceDiceMetric", "class_thresholds": [1.0, 1.0, 3.0]},
        "stop": {"_target_": "TimeLimitHandler", "limit_sec": 5},
    }
    parser = ConfigParser(config)
    assert type(parser.get_parsed_content("loss")).__name__ == "DiceHausdorffDTLoss"
    assert parser.get_parsed_content("nsd").class_thresholds == [1.0, 1.0, 3.0]
    assert parser.get_parsed_content("stop").limit_sec == 5.0
