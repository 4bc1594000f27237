"""scripts/pr_comment.py against a local fake of the three GitHub REST endpoints it calls:
list issue comments (paginated with Link headers), create a comment, update a comment."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "pr_comment.py"
sys.path.insert(0, str(SCRIPT.parent))
import pr_comment  # noqa: E402

OWNER_REPO = "acme/video"
PR = 7


class FakeGitHub:
    def __init__(self) -> None:
        self.comments: list[dict] = []  # {id, body, html_url}
        self.requests: list[tuple[str, str]] = []
        self.forbid = False  # answer 403 to every call, as for a read-only token
        self.page_size = 100  # the server's own cap, whatever per_page asks (to force pagination in tests)
        self.odd_listing: object = None  # answered instead of the page of comments, when set
        self.odd_created: object = None  # answered instead of the created comment, when set

    def add(self, body: str) -> dict:
        c = {"id": 1000 + len(self.comments), "body": body}
        c["html_url"] = f"https://github.test/{OWNER_REPO}/pull/{PR}#issuecomment-{c['id']}"
        self.comments.append(c)
        return c


@pytest.fixture
def github():
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def reply(self, code: int, body: object, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self) -> None:
            url = urlparse(self.path)
            fake.requests.append((self.command, url.path))
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length)) if length else None
            if fake.forbid:
                return self.reply(403, {"message": "Resource not accessible by integration"})
            if self.headers.get("Authorization") != "Bearer t0ken":
                return self.reply(401, {"message": "Bad credentials"})
            listing = f"/repos/{OWNER_REPO}/issues/{PR}/comments"
            if self.command == "GET" and url.path == listing:
                q = parse_qs(url.query)
                size = min(int(q.get("per_page", ["30"])[0]), fake.page_size)
                page = int(q.get("page", ["1"])[0])
                chunk = fake.comments[(page - 1) * size:page * size]
                more = page * size < len(fake.comments)
                if fake.odd_listing is not None:
                    return self.reply(200, fake.odd_listing)
                base = f"http://{self.headers['Host']}{listing}?per_page={size}"
                link = {"Link": f'<{base}&page={page + 1}>; rel="next", <{base}&page=99>; rel="last"'} if more else {}
                return self.reply(200, chunk, link)
            if self.command == "POST" and url.path == listing:
                created = fake.add(payload["body"])
                return self.reply(201, created if fake.odd_created is None else fake.odd_created)
            prefix = f"/repos/{OWNER_REPO}/issues/comments/"
            if self.command == "PATCH" and url.path.startswith(prefix):
                c = next((c for c in fake.comments if str(c["id"]) == url.path[len(prefix):]), None)
                if c is None:
                    return self.reply(404, {"message": "Not Found"})
                c["body"] = payload["body"]
                return self.reply(200, c)
            return self.reply(404, {"message": "Not Found"})

        do_GET = do_POST = do_PATCH = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def run_script(github: FakeGitHub, tmp_path: Path, body: str | bytes, *args: str,
               **env_overrides: str) -> subprocess.CompletedProcess:
    report = tmp_path / "report.md"
    report.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    env = {"GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": OWNER_REPO, "GITHUB_TOKEN": "t0ken",
           "PATH": "/usr/bin:/bin", **env_overrides}
    return subprocess.run([sys.executable, str(SCRIPT), "--pr", str(PR), "--body-file", str(report), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_first_run_creates_one_comment_with_the_marker(github, tmp_path):
    github.add("LGTM from a human")
    done = run_script(github, tmp_path, "### Review diff\nno changes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created https://github.test/")
    [_, ours] = github.comments
    assert ours["body"].startswith(pr_comment.MARKER) and "no changes" in ours["body"]


def test_second_run_updates_the_same_comment_and_never_adds_one(github, tmp_path):
    for body in ("first report", "second report", "third report"):
        assert run_script(github, tmp_path, body).returncode == 0
    [ours] = github.comments
    assert ours["body"].endswith("third report")
    assert [m for m, _ in github.requests].count("POST") == 1
    assert [m for m, _ in github.requests].count("PATCH") == 2


def test_the_marked_comment_is_found_on_a_later_page(github, tmp_path):
    github.page_size = 10
    for i in range(25):
        github.add(f"chatter {i}")
    marked = github.add(f"{pr_comment.MARKER}\nold report")
    github.add("more chatter")
    done = run_script(github, tmp_path, "new report")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("updated ") and marked["body"].endswith("new report")
    assert len(github.comments) == 27
    assert [m for m, _ in github.requests].count("GET") == 3  # pages 1-3 followed through Link: rel="next"


def test_a_403_is_one_line_and_exit_2_without_a_comment(github, tmp_path):
    github.forbid = True
    done = run_script(github, tmp_path, "report")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: GET ") and "HTTP 403" in line and "pull-requests: write" in line
    assert github.comments == []


def test_missing_token_or_unreachable_api_exit_2(github, tmp_path, monkeypatch):
    report = tmp_path / "r.md"
    report.write_text("x", encoding="utf-8")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("GITHUB_REPOSITORY", OWNER_REPO)
    assert pr_comment.main(["--pr", "1", "--body-file", str(report)]) == 2
    with pytest.raises(pr_comment.CommentError, match="HTTP 401"):
        pr_comment.upsert(github.url, OWNER_REPO, PR, "wrong", "x")
    with pytest.raises(pr_comment.CommentError):
        pr_comment.upsert("http://127.0.0.1:9", OWNER_REPO, PR, "t0ken", "x")


def test_an_oversized_report_is_cut_to_githubs_limit_keeping_the_marker():
    text = pr_comment.with_marker("x" * 100_000, pr_comment.MARKER)
    assert len(text) <= pr_comment.MAX_BODY and text.startswith(pr_comment.MARKER) and "job summary" in text


def assert_one_error_line(done: subprocess.CompletedProcess, *names: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    [line] = done.stderr.splitlines()  # no traceback
    assert line.startswith("error: ") and all(n in line for n in names), line


# What a user or a misconfigured workflow can hand the script: (case, body, extra arguments, environment,
# what the one line names). Each used to end in a traceback, or was accepted.
BAD_SETTINGS = [
    ("a body that is not UTF-8", b"\xff\xfe report", [], {}, ["is not UTF-8 text (byte 0)"]),
    ("an API URL that is not a URL", "x", [], {"GITHUB_API_URL": "not a url"}, ["GITHUB_API_URL 'not a url'"]),
    ("an API URL of another scheme", "x", [], {"GITHUB_API_URL": "ftp://api.github.test"}, ["http(s) URL"]),
    ("a repository with a space", "x", [], {"GITHUB_REPOSITORY": "acme/my video"},
     ["GITHUB_REPOSITORY 'acme/my video'", "owner/name"]),
    ("a repository without an owner", "x", [], {"GITHUB_REPOSITORY": "video"}, ["owner/name"]),
    ("a negative pull request", "x", ["--pr", "-5"], {}, ["--pr -5", "1 or more"]),
    ("pull request 0", "x", ["--pr", "0"], {}, ["--pr 0"]),
    ("an empty marker", "x", ["--marker", ""], {}, ["--marker ''", "HTML comment"]),
    ("a marker of spaces", "x", ["--marker", "  "], {}, ["HTML comment"]),
    ("an empty HTML comment", "x", ["--marker", "<!-- -->"], {}, ["HTML comment"]),
    ("a visible marker", "x", ["--marker", "review"], {}, ["--marker 'review'"]),
]


@pytest.mark.parametrize("case, body, args, env, names", BAD_SETTINGS, ids=[c[0] for c in BAD_SETTINGS])
def test_bad_settings_are_one_line_exit_2_and_touch_no_comment(github, tmp_path, case, body, args, env, names):
    github.add("LGTM from a human")  # an empty marker would have matched (and edited) this comment
    assert_one_error_line(run_script(github, tmp_path, body, *args, **env), *names)
    assert [c["body"] for c in github.comments] == ["LGTM from a human"]
    assert [m for m, _ in github.requests if m != "GET"] == [], "nothing was written"


@pytest.mark.parametrize("listing, outcome", [
    ({"message": "moved"}, "error"),
    ([{"body": f"{pr_comment.MARKER}\nold", "id": "not-a-number"}], "error"),
    (["a string, not a comment"], "created"),  # entries that cannot be ours are passed over
    ([{"body": 5}], "created"),
], ids=["an object", "a marked comment whose id is text", "a list of strings", "a body that is a number"])
def test_an_unexpected_listing_is_one_line_or_passed_over_never_a_traceback(github, tmp_path, listing, outcome):
    github.odd_listing = listing
    done = run_script(github, tmp_path, "report")
    if outcome == "error":
        assert_one_error_line(done, "GET ")
    else:
        assert done.returncode == 0 and done.stdout.startswith("created "), done.stderr


@pytest.mark.parametrize("created", [[], {"id": 5}, "text"], ids=["a list", "no html_url", "a string"])
def test_an_unexpected_answer_to_the_create_is_one_line_not_a_traceback(github, tmp_path, created):
    github.odd_created = created
    assert_one_error_line(run_script(github, tmp_path, "report"), "POST ", "html_url")


def test_an_api_answer_that_is_not_json_is_one_line(tmp_path):
    from http.server import BaseHTTPRequestHandler

    class Html(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"<html>")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake = FakeGitHub()
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        assert_one_error_line(run_script(fake, tmp_path, "report"), "GET ")
    finally:
        server.shutdown()
        server.server_close()
