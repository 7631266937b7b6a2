"""The one list of methods. Adding a method: write its module (one `METHOD = Method(...)`) and name it here."""
from __future__ import annotations

from basefuse.errors import BasefuseError
from basefuse.fusion.methods.average import METHOD as AVERAGE
from basefuse.fusion.methods.breadcrumbs import METHOD as BREADCRUMBS
from basefuse.fusion.methods.contract import Method, notice
from basefuse.fusion.methods.dare import METHOD as DARE_LINEAR
from basefuse.fusion.methods.dare_ties import METHOD as DARE_TIES
from basefuse.fusion.methods.fisher import METHOD as FISHER
from basefuse.fusion.methods.linear import METHOD as LINEAR
from basefuse.fusion.methods.model_stock import METHOD as MODEL_STOCK
from basefuse.fusion.methods.regmean import METHOD as REGMEAN
from basefuse.fusion.methods.slerp import METHOD as SLERP
from basefuse.fusion.methods.task_arithmetic import METHOD as TASK_ARITHMETIC
from basefuse.fusion.methods.ties import METHOD as TIES

METHODS: dict[str, Method] = {m.name: m for m in [
    AVERAGE, LINEAR, TASK_ARITHMETIC, TIES, DARE_LINEAR, DARE_TIES, MODEL_STOCK, BREADCRUMBS, SLERP, FISHER, REGMEAN,
]}
ALIASES: dict[str, str] = {old: m.name for m in METHODS.values() for old in m.aliases}


def get_method(name: str) -> Method:
    """The method of that name; an old name works for one release, with a notice."""
    if name in ALIASES:
        notice(f"method {name!r} is now {ALIASES[name]!r} (mergekit's name); the old name goes in the next release")
        return METHODS[ALIASES[name]]
    if name not in METHODS:
        raise BasefuseError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]
