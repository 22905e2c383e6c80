"""The program the download Job (and a PerNode replica's init container) runs: text, not code of
the operator.

DOWNLOAD_SCRIPT is passed to `python -c` in the downloader image. It runs the real download
command it is given (`hf download ... --local-dir` or `aws s3 sync`, both resumable: a retried
pod continues where the last one stopped) and serves its progress as JSON on
http://<pod IP>:9090/progress for the operator to read (bytes in the directory so far, the
model's total size when the source can tell). It writes a marker file when the download
finished, and exits at once when the marker is there already (a warm cache). A failure ends
with the tail of the command's error output as the container's termination message, which
status.cache shows; an error no retry can fix exits 2, and the Job's podFailurePolicy fails at
once instead of retrying. tests/unit/test_download_script.py runs it with stand-in commands.
"""

from __future__ import annotations

PROGRESS_PORT = 9090
MARKER = ".modelfleet-complete"

DOWNLOAD_SCRIPT = r'''
import collections, http.server, json, os, subprocess, sys, threading, time

dest = os.environ["MODELFLEET_DEST"]
marker = os.path.join(dest, ".modelfleet-complete")
port = int(os.environ.get("MODELFLEET_PROGRESS_PORT", "9090"))
log = os.environ.get("MODELFLEET_TERMINATION_LOG", "/dev/termination-log")
command = sys.argv[1:]


def on_disk():
    total = 0
    for root, _dirs, files in os.walk(dest):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def expected():
    """The model's size in bytes from the source, or None when it cannot tell."""
    try:
        if os.environ.get("MODELFLEET_SOURCE") == "s3":
            url = os.environ["MODELFLEET_S3_URL"]
            argv = ["aws", "s3", "ls", url, "--recursive", "--summarize"]
            if os.environ.get("MODELFLEET_S3_ENDPOINT"):
                argv += ["--endpoint-url", os.environ["MODELFLEET_S3_ENDPOINT"]]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
            for line in out.splitlines():
                if line.strip().startswith("Total Size:"):
                    return int(line.split(":", 1)[1])
            return None
        if os.environ.get("MODELFLEET_SOURCE") == "huggingFace":
            from huggingface_hub import HfApi

            info = HfApi().model_info(
                os.environ["MODELFLEET_MODEL"],
                revision=os.environ.get("MODELFLEET_REVISION") or None,
                files_metadata=True,
            )
            return sum(s.size or 0 for s in info.siblings or [])
    except Exception as error:  # progress without a total is still progress
        print(f"modelfleet: model size unknown: {error}", file=sys.stderr)
    return None


state = {"total": None, "done": False}
# Errors no retry can fix: a missing or gated repository, a revision that does not exist,
# refused credentials, a missing bucket.
PERMANENT = (
    "RepositoryNotFoundError",
    "GatedRepoError",
    "RevisionNotFoundError",
    "401 Client Error",
    "403 Client Error",
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
)


class Progress(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(
            {"bytes": on_disk(), "totalBytes": state["total"], "done": state["done"]}
        ).encode()
        self.send_response(200 if self.path == "/progress" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if os.path.exists(marker):
    print(f"modelfleet: {dest} holds the complete model already")
    sys.exit(0)
os.makedirs(dest, exist_ok=True)
server = http.server.ThreadingHTTPServer(("", port), Progress)
threading.Thread(target=server.serve_forever, daemon=True).start()
state["total"] = expected()
started = time.time()
tail = collections.deque(maxlen=6)
process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
for line in process.stderr:
    sys.stderr.write(line)
    if line.strip():
        tail.append(line.strip()[:300])
code = process.wait()
if code != 0:
    message = f"{command[0]} exited with {code}: " + " | ".join(tail)
    if any(p in message for p in PERMANENT):
        code = 2  # the Job's podFailurePolicy fails at once: a retry would fail the same way
    try:
        with open(log, "w") as out:
            out.write(message[-3000:])
    except OSError:
        pass
    print(message, file=sys.stderr)
    sys.exit(code)
with open(marker, "w") as out:
    json.dump({"bytes": on_disk(), "seconds": round(time.time() - started)}, out)
state["done"] = True
print(f"modelfleet: downloaded {on_disk()} bytes in {time.time() - started:.0f} s")
'''
