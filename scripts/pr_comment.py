"""Create or update the one review-diff comment on a pull request (the review workflow runs it).

    python scripts/pr_comment.py --pr N --body-file report.md [--marker TEXT]

The comment is found by a hidden marker in its body, so a new push edits it instead of adding a second
one. Reads GITHUB_API_URL (Actions sets it; default https://api.github.com), GITHUB_REPOSITORY
(owner/name) and GITHUB_TOKEN. Standard library only: the workflow installs nothing for it.
Exit 0 and prints `created <url>` or `updated <url>`; exit 2 with one line on any failure (a 403 from a
read-only token on a fork's pull request included, a body file that is not UTF-8, an answer of the API that
is not what its documentation describes). The marker must be a non-empty HTML comment: anything else would
show in the comment or match comments the script did not write.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

MARKER = "<!-- video-pipeline review diff -->"
MAX_BODY = 65536  # GitHub refuses longer comment bodies
PER_PAGE = 100
# GitHub's owner and repository names: letters, digits, '-', and for a repository also '.' and '_'.
REPOSITORY = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", re.ASCII)
# A hidden marker: an HTML comment with something inside it (GitHub does not render it).
HIDDEN_MARKER = re.compile(r"<!--(?!\s*-->).*?-->", re.DOTALL)


class CommentError(Exception):
    """The GitHub API refused or could not be reached; the message is one line."""


def _request(method: str, url: str, token: str, payload: dict | None = None) -> tuple[object, str]:
    """(parsed JSON, Link header) of one REST call; any failure is a CommentError."""
    data = json.dumps(payload).encode() if payload is not None else None
    try:
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null"), resp.headers.get("Link", "")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        hint = " (the token may not write pull requests: a fork's pull request, or permissions: missing " \
               "pull-requests: write)" if e.code == 403 else ""
        raise CommentError(f"{method} {url}: HTTP {e.code}{hint}: {' '.join(detail.split())}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise CommentError(f"{method} {url}: {' '.join(str(e).split())}") from None


def _next_page(link: str) -> str | None:
    match = re.search(r'<([^>]+)>;\s*rel="next"', link)
    return match.group(1) if match else None


def find_comment(api: str, repo: str, pr: int, token: str, marker: str) -> dict | None:
    """The first comment of the pull request carrying the marker, following every page."""
    url: str | None = f"{api}/repos/{repo}/issues/{pr}/comments?per_page={PER_PAGE}"
    while url:
        comments, link = _request("GET", url, token)
        if not isinstance(comments, list):
            raise CommentError(f"GET {url}: expected a list of comments, got {type(comments).__name__}")
        for c in comments:
            body = c.get("body") if isinstance(c, dict) else None
            if isinstance(body, str) and marker in body:
                if not isinstance(c.get("id"), int):
                    raise CommentError(f"GET {url}: the marked comment has no numeric id")
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
        url = f"{api}/repos/{repo}/issues/comments/{existing['id']}"
        done, _ = _request("PATCH", url, token, {"body": text})
        return "updated", _comment_url(done, f"PATCH {url}")
    url = f"{api}/repos/{repo}/issues/{pr}/comments"
    done, _ = _request("POST", url, token, {"body": text})
    return "created", _comment_url(done, f"POST {url}")


def _comment_url(done: object, call: str) -> str:
    """The html_url of the comment the API answered with; anything else means it may not have been written."""
    url = done.get("html_url") if isinstance(done, dict) else None
    if not isinstance(url, str):
        raise CommentError(f"{call}: expected the comment with its html_url, got {type(done).__name__}; "
                           "check the pull request")
    return url


def check_settings(api: str, repo: str, pr: int, marker: str) -> None:
    """What the API would refuse or misread, refused first in one line (the URL is built from these)."""
    parts = urllib.parse.urlsplit(api)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in api):
        raise CommentError(f"GITHUB_API_URL {api!r} is not an http(s) URL such as https://api.github.com")
    if not REPOSITORY.fullmatch(repo):
        raise CommentError(f"GITHUB_REPOSITORY {repo!r} is not owner/name (letters, digits, '-', '.', '_')")
    if pr < 1:
        raise CommentError(f"--pr {pr}: a pull request number is 1 or more")
    if not HIDDEN_MARKER.fullmatch(marker):
        raise CommentError(f"--marker {marker!r} is not a non-empty HTML comment such as {MARKER!r}: another "
                           "marker would show in the comment or match comments this script did not write")


def read_body(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CommentError(f"--body-file {path} is not UTF-8 text (byte {e.start}): write the report as UTF-8") \
            from None
    except OSError as e:
        raise CommentError(f"--body-file {path}: {e.strerror}") from None


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
        api = env["GITHUB_API_URL"] or "https://api.github.com"
        check_settings(api, env["GITHUB_REPOSITORY"], args.pr, args.marker)
        body = read_body(args.body_file)
        action, url = upsert(api, env["GITHUB_REPOSITORY"], args.pr, env["GITHUB_TOKEN"], body, args.marker)
    except CommentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{action} {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
