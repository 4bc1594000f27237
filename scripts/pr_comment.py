"""Create or update the one review-diff comment on a pull request (the review workflow runs it).

    python scripts/pr_comment.py --pr N --body-file report.md [--marker TEXT]

The comment is found by a hidden marker in its body, so a new push edits it instead of adding a second
one. Reads GITHUB_API_URL (Actions sets it; default https://api.github.com), GITHUB_REPOSITORY
(owner/name) and GITHUB_TOKEN. Standard library only: the workflow installs nothing for it.
Exit 0 and prints `created <url>` or `updated <url>`; exit 2 with one line on any failure (a 403 from a
read-only token on a fork's pull request included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

MARKER = "<!-- video-pipeline review diff -->"
MAX_BODY = 65536  # GitHub refuses longer comment bodies
PER_PAGE = 100


class CommentError(Exception):
    """The GitHub API refused or could not be reached; the message is one line."""


def _request(method: str, url: str, token: str, payload: dict | None = None) -> tuple[object, str]:
    """(parsed JSON, Link header) of one REST call; any failure is a CommentError."""
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null"), resp.headers.get("Link", "")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        hint = " (the token may not write pull requests: a fork's pull request, or permissions: missing " \
               "pull-requests: write)" if e.code == 403 else ""
        raise CommentError(f"{method} {url}: HTTP {e.code}{hint}: {' '.join(detail.split())}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise CommentError(f"{method} {url}: {e}") from None


def _next_page(link: str) -> str | None:
    match = re.search(r'<([^>]+)>;\s*rel="next"', link)
    return match.group(1) if match else None


def find_comment(api: str, repo: str, pr: int, token: str, marker: str) -> dict | None:
    """The first comment of the pull request carrying the marker, following every page."""
    url: str | None = f"{api}/repos/{repo}/issues/{pr}/comments?per_page={PER_PAGE}"
    while url:
        comments, link = _request("GET", url, token)
        for c in comments if isinstance(comments, list) else []:
            if marker in (c.get("body") or ""):
                return c
        url = _next_page(link)
    return None


def with_marker(body: str, marker: str) -> str:
    """The comment body: the marker, then the report, cut to GitHub's limit."""
    text = f"{marker}\n{body}"
    if len(text) > MAX_BODY:
        note = "\n\n… (cut: the full report is in the job summary)"
        text = text[:MAX_BODY - len(note)] + note
    return text


def upsert(api: str, repo: str, pr: int, token: str, body: str, marker: str = MARKER) -> tuple[str, str]:
    """("created" | "updated", comment URL)."""
    api = api.rstrip("/")
    text = with_marker(body, marker)
    existing = find_comment(api, repo, pr, token, marker)
    if existing:
        done, _ = _request("PATCH", f"{api}/repos/{repo}/issues/comments/{existing['id']}", token, {"body": text})
        return "updated", str((done or {}).get("html_url", existing.get("html_url", "")))
    done, _ = _request("POST", f"{api}/repos/{repo}/issues/{pr}/comments", token, {"body": text})
    return "created", str((done or {}).get("html_url", ""))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pr", type=int, required=True, help="pull request number")
    p.add_argument("--body-file", type=Path, required=True, help="the Markdown report")
    p.add_argument("--marker", default=MARKER, help="hidden text that identifies the comment")
    args = p.parse_args(argv)
    env = {k: os.environ.get(k, "") for k in ("GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_TOKEN")}
    missing = [k for k in ("GITHUB_REPOSITORY", "GITHUB_TOKEN") if not env[k]]
    try:
        if missing:
            raise CommentError(f"{' and '.join(missing)} not set")
        body = args.body_file.read_text(encoding="utf-8")
        action, url = upsert(env["GITHUB_API_URL"] or "https://api.github.com", env["GITHUB_REPOSITORY"],
                             args.pr, env["GITHUB_TOKEN"], body, args.marker)
    except (CommentError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{action} {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
