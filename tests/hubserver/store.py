"""In-memory repository store for the fake Hub server (stdlib only).

Model of a repo, close enough to the real Hub for client tests:

* a repo has immutable commits; each commit is a full snapshot ``{path: FileEntry}``;
* refs (branches, tags) point at commit shas (40 hex chars);
* LFS objects live in a per-repo object store keyed by sha256 and are referenced by
  ``FileEntry`` objects whose ``lfs`` flag is set;
* every mutation happens under ``Store.lock``; a commit builds its new snapshot completely
  and only then moves the branch pointer, so a failed commit never leaves a partial state.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import itertools
import threading
from dataclasses import dataclass, field

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

LFS_POINTER_TEMPLATE = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"

# The .gitattributes written by the Hub in a new repo (LFS patterns; abridged but same spirit).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.lz4", "*.mds", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz",
        "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar",
        "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm",
        "*.xz", "*.zip", "*.zst", "*tfevents*",
        # audio / image / video files (dataset repos)
        "*.mp3", "*.ogg", "*.wav", "*.flac", "*.jpg", "*.jpeg", "*.png", "*.gif", "*.webp",
        "*.bmp", "*.tiff", "*.mp4", "*.webm",
    )
)

# Files bigger than this are always uploaded through LFS (the Hub uses 10 MB).
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return LFS_POINTER_TEMPLATE.format(oid=sha256, size=size).encode()


def utcnow_iso() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot. ``data`` is the real content (also for LFS files)."""

    data: bytes
    lfs: bool
    sha256: str
    git_oid: str  # git blob oid: of the content (regular) or of the LFS pointer (lfs)

    @classmethod
    def regular(cls, data: bytes) -> "FileEntry":
        return cls(data=data, lfs=False, sha256=hashlib.sha256(data).hexdigest(), git_oid=git_blob_oid(data))

    @classmethod
    def from_lfs(cls, data: bytes, sha256: str) -> "FileEntry":
        return cls(data=data, lfs=True, sha256=sha256, git_oid=git_blob_oid(lfs_pointer(sha256, len(data))))

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    @property
    def etag(self) -> str:
        """What the Hub uses as (linked) ETag: sha256 for LFS files, git oid otherwise."""
        return self.sha256 if self.lfs else self.git_oid

    @property
    def remote_oid(self) -> str:
        """What `preupload` reports as `oid` (compared client-side to detect unchanged files)."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    files: dict  # path -> FileEntry  (treated as immutable)
    title: str
    message: str
    author: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str  # "namespace/name"
    owner: str  # namespace (user or org)
    private: bool
    created_at: str
    commits: dict = field(default_factory=dict)  # sha -> Commit
    branches: dict = field(default_factory=dict)  # name -> sha
    tags: dict = field(default_factory=dict)  # name -> sha
    lfs_objects: dict = field(default_factory=dict)  # sha256 -> bytes
    pr_count: int = 0

    @property
    def url_path(self) -> str:
        return URL_PREFIX[self.repo_type] + self.repo_id

    def resolve(self, revision: str | None) -> Commit | None:
        """Resolve a branch / tag / 'refs/heads/x' / full or short (>=7) commit sha."""
        rev = revision or "main"
        for prefix, table in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if rev.startswith(prefix) and rev[len(prefix):] in table:
                return self.commits[table[rev[len(prefix):]]]
        if rev in self.branches:
            return self.commits[self.branches[rev]]
        if rev in self.tags:
            return self.commits[self.tags[rev]]
        if 7 <= len(rev) <= 40 and all(c in "0123456789abcdef" for c in rev.lower()):
            matches = [sha for sha in self.commits if sha.startswith(rev.lower())]
            if len(matches) == 1:
                return self.commits[matches[0]]
        return None

    def history(self, sha: str) -> list[Commit]:
        """First-parent history, newest first."""
        out = []
        cur = self.commits.get(sha)
        while cur is not None:
            out.append(cur)
            cur = self.commits.get(cur.parents[0]) if cur.parents else None
        return out

    def last_commit_touching(self, head_sha: str, path: str) -> Commit | None:
        """Newest commit (first-parent) in which `path` (file or folder) changed."""
        hist = self.history(head_sha)

        def view(commit: Commit):
            if path in commit.files:
                return commit.files[path].git_oid
            prefix = path.rstrip("/") + "/"
            return tuple(sorted((p, e.git_oid) for p, e in commit.files.items() if p.startswith(prefix)))

        for i, commit in enumerate(hist):
            parent = hist[i + 1] if i + 1 < len(hist) else None
            if parent is None or view(commit) != view(parent):
                return commit
        return None


class CommitError(Exception):
    """Raised by `Store.commit` and mapped by the server to an HTTP error."""

    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


def folder_oid(files: dict, folder: str) -> str:
    prefix = folder.rstrip("/") + "/"
    h = hashlib.sha1()
    for path in sorted(p for p in files if p.startswith(prefix)):
        h.update(f"{path}\0{files[path].git_oid}\n".encode())
    return h.hexdigest()


def lfs_patterns(gitattributes: str) -> list[str]:
    pats = []
    for line in gitattributes.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "filter=lfs" in parts[1:]:
            pats.append(parts[0])
    return pats


def matches_lfs_patterns(path: str, patterns: list[str]) -> bool:
    base = path.rsplit("/", 1)[-1]
    for pat in patterns:
        if "/" in pat:
            if fnmatch.fnmatchcase(path, pat.replace("**/", "*")) or fnmatch.fnmatchcase(path, pat):
                return True
        elif fnmatch.fnmatchcase(base, pat):
            return True
    return False


class Store:
    """All repos + users. Thread-safe through a single re-entrant lock."""

    def __init__(self):
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}  # (repo_type, repo_id) -> Repo
        self._counter = itertools.count()

    # -- repos -------------------------------------------------------------------------------

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        with self.lock:
            return self.repos.get((repo_type, repo_id))

    def create_repo(self, repo_type: str, repo_id: str, owner: str, private: bool = False) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise CommitError(409, f"You already created this {repo_type} repo")
            repo = Repo(repo_type=repo_type, repo_id=repo_id, owner=owner, private=private, created_at=utcnow_iso())
            files = {".gitattributes": FileEntry.regular(DEFAULT_GITATTRIBUTES.encode())}
            commit = self._new_commit(repo, (), files, "initial commit", "", owner)
            repo.branches["main"] = commit.sha
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> bool:
        with self.lock:
            return self.repos.pop((repo_type, repo_id), None) is not None

    def _new_commit(self, repo: Repo, parents: tuple, files: dict, title: str, message: str, author: str) -> Commit:
        h = hashlib.sha1()
        h.update(f"{repo.repo_type}:{repo.repo_id}\n{parents}\n{title}\n{message}\n{next(self._counter)}\n".encode())
        for path in sorted(files):
            h.update(f"{path}\0{files[path].git_oid}\n".encode())
        commit = Commit(
            sha=h.hexdigest(), parents=tuple(parents), files=dict(files), title=title, message=message,
            author=author, date=utcnow_iso(),
        )
        repo.commits[commit.sha] = commit
        return commit

    # -- commits -----------------------------------------------------------------------------

    def commit(
        self,
        repo: Repo,
        branch: str,
        operations: list[tuple[str, dict]],
        title: str,
        description: str,
        author: str,
        parent_commit: str | None = None,
    ) -> Commit:
        """Apply ndjson-style operations atomically on top of `branch`.

        operations: list of (key, value) with key in file / lfsFile / deletedFile / deletedFolder.
        `file` values must already carry decoded bytes under "data".
        """
        with self.lock:
            if branch not in repo.branches:
                raise CommitError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            if parent_commit is not None and not head.sha.startswith(parent_commit.lower()):
                raise CommitError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)  # the new snapshot is built on a copy...
            for key, value in operations:
                path = value.get("path", "")
                if key == "file":
                    files[path] = FileEntry.regular(value["data"])
                elif key == "lfsFile":
                    oid = str(value.get("oid", "")).lower()
                    data = repo.lfs_objects.get(oid)
                    if data is None:
                        raise CommitError(
                            400,
                            f"Your push was rejected because an LFS pointer pointed to a file that does not exist"
                            f" ({path}, oid {oid}).",
                        )
                    if "size" in value and value["size"] is not None and int(value["size"]) != len(data):
                        raise CommitError(400, f"LFS file size mismatch for {path}")
                    files[path] = FileEntry.from_lfs(data, oid)
                elif key == "deletedFile":
                    if path not in files:
                        raise CommitError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    doomed = [p for p in files if p.startswith(prefix)]
                    if not doomed:
                        raise CommitError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise CommitError(400, f"Unknown commit operation key: {key!r}")
            commit = self._new_commit(repo, (head.sha,), files, title, description, author)
            repo.branches[branch] = commit.sha  # ... and only then the branch pointer moves
            return commit

    def put_files(self, repo: Repo, files: dict[str, bytes], title: str = "seed", branch: str = "main",
                  lfs: bool | None = None, author: str | None = None) -> Commit:
        """Direct (server-side) commit, for seeding test data. lfs=None: decided by .gitattributes/size."""
        with self.lock:
            head = repo.commits[repo.branches[branch]]
            patterns = lfs_patterns(head.files[".gitattributes"].data.decode()) if ".gitattributes" in head.files else []
            ops = []
            for path, data in files.items():
                use_lfs = lfs if lfs is not None else (
                    matches_lfs_patterns(path, patterns) or len(data) >= LFS_SIZE_THRESHOLD
                )
                if use_lfs:
                    oid = hashlib.sha256(data).hexdigest()
                    repo.lfs_objects[oid] = data
                    ops.append(("lfsFile", {"path": path, "oid": oid, "size": len(data)}))
                else:
                    ops.append(("file", {"path": path, "data": data}))
            return self.commit(repo, branch, ops, title, "", author or repo.owner)
