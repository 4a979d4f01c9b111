"""Reading the error a bundle run raised: MONAI wraps a transform's exception in ``RuntimeError("applying transform
...")`` layers (and the bundle runner in ``RuntimeError("Failed to evaluate ...")``), chained by ``__cause__``."""


def error_chain(exc: BaseException) -> list:
    """``exc`` and every exception it was raised from, outermost first."""
    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def error_text(excinfo) -> str:
    """The messages of the whole chain of a ``pytest.raises`` result, one per line."""
    return "\n".join(str(e) for e in error_chain(excinfo.value))
