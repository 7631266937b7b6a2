"""`basefuse fuse`: fuse finetuned checkpoints into a new base model folder."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from typer.core import TyperCommand

from basefuse.cli import output
from basefuse.errors import BasefuseError

if TYPE_CHECKING:
    from basefuse.fusion.mergekit_config import FuseRequest

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """'500MB', '2GB', '1.5GiB' or a byte count (rounded down to whole bytes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise BasefuseError(f"--shard-size {text!r}: use a size like 500MB, 2GB or a byte count")
    size = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if size < 1:  # "0.5B" would round to 0: name what was given, not the rounded value
        raise BasefuseError(f"--shard-size {text!r} is under one byte: give a size like 500MB or 2GB (fractions "
                            "of a unit are fine: 1.5GB)")
    return int(size)


def parse_weights(values: list[str] | None) -> list[float] | None:
    """Weights given as repeated options or one comma-separated list."""
    if not values:
        return None
    out: list[float] = []
    for v in values:
        for part in v.split(","):
            try:
                out.append(float(part))
            except ValueError:
                raise BasefuseError(f"--weights {part!r} is not a number") from None
    return out


def parse_params(values: list[str] | None) -> dict[str, str]:
    """`--param name=value` (repeated, or comma-separated): the values are checked against the method later."""
    out: dict[str, str] = {}
    for v in values or []:
        for part in v.split(","):
            name, eq, value = part.partition("=")
            if not eq or not name.strip() or not value.strip():
                raise BasefuseError(f"--param {part!r}: write name=value, e.g. --param density=0.2")
            if name.strip() in out:
                raise BasefuseError(f"--param {name.strip()!r} given twice: give it once")
            out[name.strip()] = value.strip()
    return out


def parse_data(values: list[str] | None) -> dict[str, str] | None:
    """`--data SRC=TASK` (repeatable): each source's task for the data-aware methods (fisher, regmean)."""
    if not values:
        return None
    out: dict[str, str] = {}
    for v in values:
        src, eq, task = v.rpartition("=")
        if not eq or not src.strip() or not task.strip():
            raise BasefuseError(f"--data {v!r}: write SOURCE=TASK, e.g. --data ./ft0=sst2 (the source as given)")
        if src.strip() in out:
            raise BasefuseError(f"--data {src.strip()!r} given twice: give each source's task once")
        out[src.strip()] = task.strip()
    return out


def resolve_request(sources: list[str] | None, base: str | None, method: str | None, param: list[str] | None,
                    config: Path | None, weights: list[str] | None, dtype: str | None,
                    old_flags: dict[str, float | int | None]) -> "FuseRequest":
    """What to fuse: from a mergekit --config, or from the command line (old flags mapped, with a notice)."""
    from basefuse.fusion.mergekit_config import FuseRequest, read_mergekit_config

    params: dict[str, object] = dict(parse_params(param))
    for name, v in old_flags.items():
        if v is not None:
            if name in params:
                raise BasefuseError(f"--{name} and --param {name}=... both given: give it once")
            if name in ("density", "seed"):  # lam, k, p: the method's own notice names the new parameter
                typer.echo(f"notice: --{name} is now --param {name}=VALUE; the old flag goes in the next release",
                           err=True)
            params[name] = v
    if config is not None:
        given = [flag for flag, v in (("SOURCES", sources), ("--base", base), ("--method", method),
                                      ("--weights", weights), ("--param", params), ("--dtype", dtype)) if v]
        if given:
            raise BasefuseError(f"--config {config} sets the fusion: drop {given[0]} (give it in the config "
                                "or on the command line, not both)")
        return read_mergekit_config(config)
    if not sources:
        raise BasefuseError("give the finetuned model folders (at least 2), or --config merge.yml")
    return FuseRequest(list(sources), method or "average", base, parse_weights(weights), params, dtype)


class _MethodsEpilog(TyperCommand):
    """`fuse --help` ends with the methods as declared, built only when help is shown (the import costs start-up)."""

    @property
    def epilog(self) -> str:
        from basefuse.fusion.methods.docs import cli_help

        return cli_help()

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        pass


def register(app: typer.Typer) -> None:
    @app.command("fuse", cls=_MethodsEpilog)
    def fuse_command(
        sources: Optional[list[str]] = typer.Argument(None, help="Finetuned model folders, hub ids (org/name or "
                                                                 "org/name@revision) or LoRA adapter folders (with "
                                                                 "--base); at least 2, each once: the same folder or "
                                                                 "identical weights twice is refused; use --method "
                                                                 "linear --weights to weigh one more."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (must not exist unless --force)."),
        base: Optional[str] = typer.Option(None, "--base", help="Pretrained model the sources were finetuned "
                                                                "from (folder, org/name[@revision] or built-in); "
                                                                "the output loads like it (recommended)."),
        method: Optional[str] = typer.Option(None, "--method", "-m",
                                             help="Fusion method (default average); the methods and their "
                                                  "parameters are listed below."),
        param: Optional[list[str]] = typer.Option(None, "--param", "-P", help="A method parameter name=value, "
                                                  "repeatable or comma-separated, e.g. -P density=0.2,lambda=1."),
        config: Optional[Path] = typer.Option(None, "--config", help="A mergekit YAML config (merge_method, "
                                              "models, base_model, parameters, dtype) instead of sources, --base, "
                                              "--method, --weights and --param."),
        weights: Optional[list[str]] = typer.Option(None, "--weights", help="Per-source weights, e.g. 1,2,1."),
        data: Optional[list[str]] = typer.Option(None, "--data", metavar="SRC=TASK",
                                                 help="A source's own task (built-in task, data file or hf:NAME), "
                                                      "once per source: fisher and regmean estimate each source's "
                                                      "statistics on it (kept beside the checkpoint and reused)."),
        lam: Optional[float] = typer.Option(None, "--lam", hidden=True),
        density: Optional[float] = typer.Option(None, "--density", hidden=True),
        k: Optional[float] = typer.Option(None, "--k", hidden=True),
        p: Optional[float] = typer.Option(None, "--p", hidden=True),
        seed: Optional[int] = typer.Option(None, "--seed", hidden=True),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="Output dtype: float32, float16, bfloat16 "
                                                                  "(default: the base's / first source's)."),
        accumulate: str = typer.Option("float32", "--accumulate", help="float32 or float64."),
        device: str = typer.Option("cpu", "--device", help="Where the arithmetic runs: cpu (numpy), or cuda / cuda:N (torch on that GPU; meant for the whole-tensor methods, average stays bound by reading the files)."),
        shard_size: Optional[str] = typer.Option(None, "--shard-size", help="Shard the output, e.g. 2GB."),
        tokenizer: str = typer.Option("sources", "--tokenizer", help="sources: every model must share one "
                                      "vocabulary; base: sources with added tokens are fused on the base's "
                                      "vocabulary (rows every model has fused, the base's own rows for the rest)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
        allow_unrelated: bool = typer.Option(False, "--allow-unrelated",
                                             help="Fuse even sources flagged as not finetuned from the base."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        hash_cache: bool = typer.Option(True, "--hash-cache/--no-hash-cache",
                                        help="Reuse sha256 digests of unchanged input files from earlier runs."),
        push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO",
                                                  help="Then upload the finished output to this Hub model repo "
                                                       "(org/name; created if missing). Token: HF_TOKEN or "
                                                       "`hf auth login`."),
        private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
    ) -> None:
        """Fuse N finetuned checkpoints into one base model (shared body fused, heads dropped)."""
        from basefuse.checkpoints.hashing import Hasher

        # sha256 of the inputs is the costliest part of a cold run: start it before importing numpy
        if private and not push_to_hub:
            raise BasefuseError("--private only applies with --push-to-hub REPO")
        if push_to_hub:  # a missing token or a bad repo id is said before the fusion, not after it
            from basefuse.hub.push import check_push_target

            check_push_target(push_to_hub)
        req = resolve_request(sources, base, method, param, config, weights, dtype,
                              {"lam": lam, "density": density, "k": k, "p": p, "seed": seed})
        sources, base, dtype = req.sources, req.base, req.dtype
        hasher = Hasher(use_cache=hash_cache)
        try:  # from here on, an error or Ctrl-C (even during the imports) stops the hashing at once
            for folder in [*sources, *([base] if base else [])]:
                hasher.submit_folder(folder)
            from basefuse.fusion.api import fuse

            manifest = fuse(sources, out, base=base, method=req.method, weights=req.weights, dtype=dtype,
                            accumulate=accumulate, device=device,
                            shard_size=parse_size(shard_size) if shard_size else None, force=force,
                            allow_unrelated=allow_unrelated, progress=output.progress(progress), hasher=hasher,
                            repo_id=push_to_hub, params=req.params, tokenizer=tokenizer, data=parse_data(data))
        finally:
            hasher.close(save=False)  # fuse() has saved the digests; after an early error this stops the hashing
        if output.human():
            typer.echo(f"wrote {out}: {manifest['method']} of {len(manifest['sources'])} sources, "
                       f"{manifest['fused_tensors']} tensors fused, {len(manifest['dropped_keys'])} keys dropped "
                       f"(see {out / 'fusion.json'})")
        url = None
        if push_to_hub:
            from basefuse.hub.push import push_folder

            import json

            from basefuse.fusion.card import public_manifest

            published = json.dumps(public_manifest(manifest), indent=2) + "\n"
            url = push_folder(out, push_to_hub, private=private, replace={"fusion.json": published.encode()},
                              message=f"basefuse fuse: {manifest['method']} of {len(manifest['sources'])} sources")
            if output.human():
                typer.echo(f"pushed {out} to {push_to_hub} ({url})")
        output.result({"out": str(out), "pushed": url, "fusion": manifest})
