"""What the Hub push tests share: the repo they push to, the fast retry options, reading a card's front matter."""

from __future__ import annotations

import yaml

REPO = "alice/mnist-lodm"
NAME = "lodm-ipc1-r2"
FAST = dict(retry_wait=0.01, log=None)  # no waiting between retries, no log lines


def card_front_matter(server, repo: str = REPO) -> dict:
    """The YAML front matter of ``repo``'s README.md on the loopback server."""
    return yaml.safe_load(server.read_file(repo, "README.md").decode().split("---\n")[1])
