"""The methods described from their declarations: the `fuse --help` list and the README table, never by hand."""
from __future__ import annotations

from basefuse.fusion.methods.contract import Method, Param
from basefuse.fusion.methods.registry import METHODS

WEIGHTS_TEXT = {"ignored": "no", "optional": "optional", "required": "required"}


def _param_text(p: Param) -> str:
    rng = "" if p.range_text() == "any" else " " + p.range_text()
    return f"{p.name}={p.default!r}{rng}".replace("True", "true").replace("False", "false")


def _olds(m: Method) -> str:
    names = [*m.aliases, *(f"{a.old} -> {a.new}" for a in m.param_aliases)]
    return ", ".join(names)


def cli_help() -> str:
    """One paragraph per method for `basefuse fuse --help`."""
    parts = []
    for m in METHODS.values():
        needs = [w for w, on in (("--base", m.needs_base), ("--weights", m.weights == "required")) if on]
        line = f"{m.name}: {m.summary}"
        if m.params:
            line += "; params " + ", ".join(_param_text(p) for p in m.params)
        if needs:
            line += "; needs " + " and ".join(needs)
        if m.weights == "optional":
            line += "; --weights optional"
        if m.max_sources is not None:
            line += f"; exactly {m.max_sources} sources"
        if m.aliases or m.param_aliases:
            line += f" (old names, for one release: {_olds(m)})"
        parts.append(line + ".")
    return "Methods (--method), parameters as --param name=value:\n\n" + "\n\n".join(parts)


def readme_table() -> str:
    """The README's methods table (a test checks the README holds exactly this)."""
    rows = ["| method | what it computes | parameters (default, range) | `--base` | weights | per element | "
            "mergekit | old names |",
            "|---|---|---|---|---|---|---|---|"]
    for m in METHODS.values():
        params = "<br>".join(f"`{p.name}` ({p.default!r}, {p.range_text()}): {p.help}" for p in m.params) or "none"
        rows.append(f"| `{m.name}` | {m.summary} | {params} | {'yes' if m.needs_base else 'no'} | "
                    f"{WEIGHTS_TEXT[m.weights]} | {'yes' if m.elementwise else 'no (whole tensor)'} | "
                    f"{'`' + m.mergekit + '`' if m.mergekit else '-'} | {_olds(m) or '-'} |")
    return "\n".join(rows)
