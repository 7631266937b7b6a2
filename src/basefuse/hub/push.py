"""`--push-to-hub`: upload a finished output folder to a Hub model repo with huggingface_hub's upload API.

Checked before any work (a repo id, a token), pushed only once the folder is complete and in place, so a
failed push never leaves a half-written model anywhere: the local folder stays, and the push can be retried.
"""
from __future__ import annotations

from pathlib import Path


def check_push_target(repo_id: str) -> None:
    """Refuse a malformed repo id, or a missing token, before the fusion or training starts."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from basefuse.errors import BasefuseError

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise BasefuseError(f"--push-to-hub {repo_id!r}: not a Hub repo id; use org/name (letters, digits, "
                            "'-', '_', '.')") from None
    if not get_token():
        raise BasefuseError(f"--push-to-hub {repo_id}: no Hugging Face token; set HF_TOKEN or run "
                            "`hf auth login` (a token with write access)")


def push_folder(folder: Path, repo_id: str, *, private: bool = False, message: str,
                replace: dict[str, bytes] | None = None) -> str:
    """Create `repo_id` if needed (private with `private`) and upload every file of `folder` in one commit;
    returns the commit's URL. The token comes from HF_TOKEN or the stored login, the Hub from HF_ENDPOINT.
    `replace`: files uploaded with these contents instead of the local ones (e.g. fusion.json without local paths)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from basefuse.errors import BasefuseError, PushFailed

    api = HfApi()
    retry = f"the model is complete in {folder}; retry with `hf upload {repo_id} {folder}`"
    try:
        repo = api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        replace = replace or {}
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(),
                                  path_or_fileobj=replace.get(p.relative_to(folder).as_posix(), str(p)))
               for p in files]
        commit = api.create_commit(repo_id=repo.repo_id, operations=ops, commit_message=message)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        why = (str(e).splitlines() or [type(e).__name__])[0][:160]
        if status in (401, 403):
            raise BasefuseError(f"--push-to-hub {repo_id}: the Hub refused the token ({status}: {why}); use a "
                                f"token with write access to {repo_id}; {retry}") from None
        raise PushFailed(f"--push-to-hub {repo_id} failed ({why}); {retry}") from None
    except Exception as e:  # network down, offline mode, a failed LFS part: the upload did not happen
        cause = e.__cause__ or e
        why = (str(cause).splitlines() or [type(cause).__name__])[0][:160]
        raise PushFailed(f"--push-to-hub {repo_id} failed ({type(cause).__name__}: {why}); {retry}") from None
    return commit.commit_url
