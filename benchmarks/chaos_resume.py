#!/usr/bin/env python
"""Chaos resume: kill a condensation at random moments, resume it each time, compare the end with an uninterrupted run.

    HF_LODC_LOCAL_HUB=../shared/hub nice -n 10 python benchmarks/chaos_resume.py              # 20 kills, seed 0
    python benchmarks/chaos_resume.py --kills 40 --seed 3 --iterations 60

A reference run of ``recipes/condense.py`` (a tiny 3-class dataset from ``tests/datasets_factory.py``,
``--checkpoint-every 1``, a short evaluation) is timed first: when its condensation starts, ends, when
the evaluation ends and the artefact is written. Then the same command with ``--resume`` is started
again and again into one output directory; each start gets one signal (SIGKILL or SIGTERM, seeded
random) aimed at a phase (seeded random):

* ``step``: a random moment of the condensation still to run;
* ``checkpoint``: the moment a checkpoint's temporary folder (``checkpoints/.tmp-iter_*``) appears;
* ``eval``: a random moment of the evaluation;
* ``save``: the moment the artefact's temporary folder (``.<out>.tmp*``) appears beside the output dir;
* ``startup``: a random moment before the condensation starts (data loading, the lock, the checks).

Where a kill really landed is read back from the run's log and the files present at that moment. A run
that finishes before its signal ends the episode; the remaining kills go to a fresh episode. Each
finished episode must match the reference bit for bit (the synthetic tensors of ``synset.safetensors``
and ``images.safetensors``, the loss history, the final loss and the evaluation accuracies), leave no
debris beside or inside the output directory (temporary files and folders, ``.old`` folders, the lock
file, checkpoints), and no resume may be refused for a lock. Writes ``benchmarks/results/chaos_resume.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHASES = ("step", "checkpoint", "eval", "save", "startup")
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
# log lines (recipes/condense.py, pipeline.py) that open each phase
STARTED = re.compile(r"^\[hf_lodc\] .*: \d+ classes, .* method ")
CONDENSED = "[hf_lodc] condensed in"
EVALUATED = ("[hf_lodc] evaluation took", "[hf_lodc] no evaluation")
WROTE = "[hf_lodc] wrote "
RESUMED_AT_END = re.compile(r"^\[hf_lodc\] resumed from .* at iteration (\d+)/(\d+)")
LOCK_REFUSED = "is in use by"
LOCK_TAKEN_OVER = "taking over the stale lock"
RUN_TIMEOUT_S = 600.0
SIGTERM_GRACE_S = 120.0  # a SIGTERM saves a checkpoint first; past this the run counts as hung and is killed


def run_args(dataset: Path, out: Path, iterations: int, eval_runs: int, eval_epochs: int) -> list[str]:
    """The condensation every start of an episode runs (with ``--resume``)."""
    return ["recipes/condense.py", "--dataset", str(dataset), "--cpu", "--iterations", str(iterations),
            "--checkpoint-every", "1", "--eval-runs", str(eval_runs), "--eval-epochs", str(eval_epochs),
            "--eval-models", "convnet", "--output-dir", str(out), "--resume"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
            "HF_LODC_SPEED": os.environ.get("HF_LODC_SPEED", "exact"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


class Run:
    """One start of the recipe, its output lines timestamped as they arrive."""

    def __init__(self, args: list[str]):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))

    def seen(self, match: Callable[[str], bool]) -> float | None:
        return next((t for t, line in list(self.lines) if match(line)), None)

    def wait_for(self, match: Callable[[str], bool], timeout: float) -> float | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            t = self.seen(match)
            if t is not None or self.proc.poll() is not None:
                return self.seen(match)
            time.sleep(0.01)
        return None

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def _started(line: str) -> bool:
    return bool(STARTED.match(line))


def _evaluating(line: str) -> bool:
    """The condensation is over: it ran, or the run resumed from the checkpoint after its last iteration."""
    m = RESUMED_AT_END.match(line)
    return line.startswith(CONDENSED) or (m is not None and m.group(1) == m.group(2))


def timeline(dataset: Path, out: Path, args: list[str]) -> dict[str, float]:
    """Run the reference (uninterrupted) and time its phases, in seconds from the process start."""
    run = Run(args)
    rc = run.finish()
    if rc != 0:
        raise RuntimeError(f"the reference run failed (exit {rc}):\n{run.text[-3000:]}")
    marks = {"started": run.seen(_started), "condensed": run.seen(lambda s: s.startswith(CONDENSED)),
             "evaluated": run.seen(lambda s: s.startswith(EVALUATED)), "wrote": run.seen(lambda s: s.startswith(WROTE)),
             "exited": time.monotonic() - run.t0}
    missing = [k for k, v in marks.items() if v is None]
    if missing:
        raise RuntimeError(f"the reference run's log lacks the {missing} lines:\n{run.text[-3000:]}")
    return marks


def _latest_iteration(out: Path) -> int:
    found = [int(p.name[5:]) for p in (out / "checkpoints").glob("iter_*") if p.name[5:].isdigit()
             and (p / "condenser_state.pt").is_file()]
    return max(found, default=0)


def _poll_path(run: Run, exists: Callable[[], bool], timeout: float) -> bool:
    """Wait (polling every millisecond) until ``exists()``; False if the run exits or time runs out first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and run.proc.poll() is None:
        if exists():
            return True
        time.sleep(0.001)
    return False


def _checkpoint_tmp(out: Path) -> bool:
    try:
        return any(e.name.startswith(".tmp-") for e in os.scandir(out / "checkpoints"))
    except OSError:
        return False


def _artefact_tmp(out: Path) -> bool:
    try:
        return any(e.name.startswith(f".{out.name}.tmp") for e in os.scandir(out.parent))
    except OSError:
        return False


def _landed(run: Run, t_kill: float, out: Path, files: dict[str, bool]) -> str:
    """Where a signal sent ``t_kill`` s after the start landed, from the log and the files present then."""
    before = [line for t, line in run.lines if t <= t_kill]
    if any(s.startswith(WROTE) for s in before):
        return "after the save"
    if files.get("artefact_tmp"):
        return "save"
    if any(s.startswith(EVALUATED) for s in before):
        return "save"
    if any(_evaluating(s) for s in before):
        return "eval"
    if files.get("checkpoint_tmp"):
        return "checkpoint"
    if any(_started(s) for s in before):
        return "step"
    return "startup"


def kill_once(args: list[str], out: Path, marks: dict[str, float], iterations: int, phase: str, sig: str,
              rng: random.Random) -> dict[str, Any]:
    """Start the run, send ``sig`` aimed at ``phase``, wait for the process to end; what happened."""
    at_iteration = _latest_iteration(out)
    run = Run(args)
    cond = marks["condensed"] - marks["started"]
    left = cond * max(0, iterations - at_iteration) / iterations
    aimed = False
    if phase == "startup":
        time.sleep(rng.uniform(0.2, marks["started"]))
        aimed = True
    elif run.wait_for(_started, RUN_TIMEOUT_S) is not None:
        if phase == "step":
            time.sleep(rng.uniform(0, max(left, 0.05)))
            aimed = True
        elif phase == "checkpoint":
            time.sleep(rng.uniform(0, max(left * 0.9, 0.01)))
            aimed = _poll_path(run, lambda: _checkpoint_tmp(out), left + 30)
        elif phase == "eval":
            if run.wait_for(_evaluating, RUN_TIMEOUT_S) is not None:
                time.sleep(rng.uniform(0, marks["evaluated"] - marks["condensed"]))
                aimed = True
        elif phase == "save":
            aimed = _poll_path(run, lambda: _artefact_tmp(out), RUN_TIMEOUT_S)
            if aimed:
                time.sleep(rng.uniform(0, 0.005))
    files = {"checkpoint_tmp": _checkpoint_tmp(out), "artefact_tmp": _artefact_tmp(out)}
    t_kill = time.monotonic() - run.t0
    sent = False
    if run.proc.poll() is None:
        run.proc.send_signal(SIGNALS[sig])
        sent = True
    rc = run.finish(SIGTERM_GRACE_S if sig == "SIGTERM" else RUN_TIMEOUT_S)
    left_files = sorted(p.name for p in out.parent.iterdir() if p.name != out.name)
    return {"phase_aimed": phase, "signal": sig, "sent": sent, "aimed": aimed,
            "landed": _landed(run, t_kill, out, files) if sent else "exited before the signal",
            "at_s": round(t_kill, 3), "exit": rc, "from_iteration": at_iteration,
            "checkpoint_after": _latest_iteration(out), "left_beside_output": left_files,
            "lock_refused": LOCK_REFUSED in run.text, "lock_taken_over": LOCK_TAKEN_OVER in run.text,
            "tail": run.text.splitlines()[-3:]}


def finished(out: Path) -> bool:
    """The output dir holds the evaluated artefact (not one saved un-evaluated by an interruption)."""
    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return results.get("evaluated") is not False and (out / "config.json").is_file()


def compare(ref: Path, out: Path) -> list[str]:
    """Differences between two artefacts in what must be deterministic; [] when bit-identical."""
    import torch
    from safetensors.torch import load_file

    diffs = []
    for name in ("synset.safetensors", "images.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(out / name))
        if sorted(a) != sorted(b):
            diffs.append(f"{name}: tensors {sorted(a)} vs {sorted(b)}")
            continue
        diffs += [f"{name}:{k} differs" for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    if json.loads((ref / "history.json").read_text()) != json.loads((out / "history.json").read_text()):
        diffs.append("history.json (loss history) differs")
    ra, rb = (json.loads((p / "results.json").read_text()) for p in (ref, out))
    if ra["condensation"].get("final_loss") != rb["condensation"].get("final_loss"):
        diffs.append("final_loss differs")
    acc = lambda r: {m: e.get("accuracies") for m, e in (r.get("evaluations") or {}).items()}  # noqa: E731
    if acc(ra) != acc(rb):
        diffs.append(f"evaluation accuracies differ: {acc(ra)} vs {acc(rb)}")
    return diffs


def debris(out: Path) -> list[str]:
    """What a finished episode should not have: anything beside the output dir, temporary or hidden entries
    inside it, leftover checkpoints."""
    found = [f"beside: {p.name}" for p in out.parent.iterdir() if p.name != out.name]
    for p in out.rglob("*"):
        rel = p.relative_to(out)
        if any(part.startswith(".") or ".tmp" in part or ".old" in part for part in rel.parts):
            found.append(f"inside: {rel}")
    if (out / "checkpoints").exists():
        found.append("inside: checkpoints (a finished run drops them)")
    return found


def chaos(dataset: Path, work: Path, *, kills: int = 20, seed: int = 0, iterations: int = 30, eval_runs: int = 2,
          eval_epochs: int = 100, phases: tuple[str, ...] | None = None, log: Callable[[str], None] = print,
          ) -> dict[str, Any]:
    """``kills`` signals into resumed runs of one condensation; the record ``main`` writes.

    ``phases``: aim the kills at these phases in turn (and SIGKILL/SIGTERM alternately) instead of at
    seeded random ones (a test that must cover each phase with few kills)."""
    rng = random.Random(seed)
    t_all = time.monotonic()
    ref = work / "ref" / "out"
    marks = timeline(dataset, ref, run_args(dataset, ref, iterations, eval_runs, eval_epochs))
    log(f"reference: started {marks['started']:.1f} s, condensed {marks['condensed']:.1f} s, evaluated "
        f"{marks['evaluated']:.1f} s, wrote {marks['wrote']:.1f} s")
    episodes: list[dict[str, Any]] = []
    done = 0
    while done < kills:
        out = work / f"episode{len(episodes)}" / "out"
        out.parent.mkdir(parents=True)
        args = run_args(dataset, out, iterations, eval_runs, eval_epochs)
        ep: dict[str, Any] = {"kills": [], "resumes": 0}
        while done < kills and not finished(out):
            if phases:
                phase, sig = phases[done % len(phases)], ("SIGKILL", "SIGTERM")[done % 2]
            else:
                phase = rng.choices(PHASES, weights=(3, 3, 3, 3, 1))[0]
                sig = rng.choice(sorted(SIGNALS))
            k = kill_once(args, out, marks, iterations, phase, sig, rng)
            ep["kills"].append(k)
            ep["resumes"] += 1
            done += k["sent"]
            log(f"kill {done}/{kills}: {sig} aimed at {phase}, landed {k['landed']} at {k['at_s']:.2f} s, exit "
                f"{k['exit']}, checkpoint {k['from_iteration']} -> {k['checkpoint_after']}"
                + (f", left {k['left_beside_output']}" if k["left_beside_output"] else ""))
        tail = []
        while not finished(out):  # resume until the run completes
            run = Run(args)
            rc = run.finish()
            ep["resumes"] += 1
            tail.append({"exit": rc, "lock_refused": LOCK_REFUSED in run.text,
                         "lock_taken_over": LOCK_TAKEN_OVER in run.text})
            if rc != 0:
                ep["failed"] = f"the resume exited {rc}: {run.text[-2000:]}"
                log(ep["failed"])
                break
        ep["final_resumes"] = tail
        ep["identical_diffs"] = compare(ref, out) if finished(out) else ["did not finish"]
        ep["bit_identical"] = not ep["identical_diffs"]
        ep["debris"] = debris(out) if finished(out) else []
        ep["lock_refused"] = any(k["lock_refused"] for k in ep["kills"]) or any(t["lock_refused"] for t in tail)
        log(f"episode {len(episodes)}: {len(ep['kills'])} kill(s), {ep['resumes']} start(s), bit-identical "
            f"{'yes' if ep['bit_identical'] else 'NO ' + str(ep['identical_diffs'])}, debris {ep['debris'] or 'none'}")
        episodes.append(ep)
    all_kills = [k for ep in episodes for k in ep["kills"] if k["sent"]]
    landed: dict[str, int] = {}
    for k in all_kills:
        landed[f"{k['signal']} {k['landed']}"] = landed.get(f"{k['signal']} {k['landed']}", 0) + 1
    return {
        "kills": len(all_kills), "seed": seed, "episodes": episodes, "landed": dict(sorted(landed.items())),
        "resumes": sum(ep["resumes"] for ep in episodes),
        "bit_identical": all(ep["bit_identical"] for ep in episodes),
        "debris": sorted({d for ep in episodes for d in ep["debris"]}),
        "lock_refused": any(ep["lock_refused"] for ep in episodes),
        "locks_taken_over": sum(k["lock_taken_over"] for ep in episodes for k in ep["kills"])
        + sum(t["lock_taken_over"] for ep in episodes for t in ep["final_resumes"]),
        "reference_timeline_s": {k: round(v, 2) for k, v in marks.items()},
        "run": {"iterations": iterations, "checkpoint_every": 1, "eval_runs": eval_runs, "eval_epochs": eval_epochs,
                "dataset": "tests/datasets_factory.make_dataset: 3 classes, 6 train + 2 test 8x8 RGB images each"},
        "wall_time_s": round(time.monotonic() - t_all, 1),
    }


def markdown(rec: dict[str, Any]) -> str:
    from benchmarks._machine import machine_line

    lines = [
        "# Chaos resume",
        "",
        f"`python benchmarks/chaos_resume.py --kills {rec['kills']} --seed {rec['seed']}`: one condensation "
        f"({rec['run']['iterations']} iterations, a checkpoint after each, {rec['run']['eval_runs']} evaluation "
        f"runs x {rec['run']['eval_epochs']} epochs) killed {rec['kills']} times and resumed with `--resume` each time.",
        "",
        f"- bit-identical to the uninterrupted run: **{'yes' if rec['bit_identical'] else 'no'}** "
        f"({len(rec['episodes'])} episode(s), {rec['resumes']} starts in all)",
        f"- debris left: **{', '.join(rec['debris']) or 'none'}**",
        f"- a resume refused for a lock: **{'yes' if rec['lock_refused'] else 'no'}**; stale locks taken over: "
        f"{rec['locks_taken_over']}",
        f"- wall time: {rec['wall_time_s']} s; {machine_line(rec['machine'])}",
        "",
        "| where the signal landed | kills |",
        "|---|---|",
        *(f"| {k} | {n} |" for k, n in rec["landed"].items()),
        "",
        "| # | signal | aimed at | landed | at (s) | exit | checkpoint before -> after | left beside the output |",
        "|---|---|---|---|---|---|---|---|",
    ]
    n = 0
    for ep in rec["episodes"]:
        for k in ep["kills"]:
            n += 1
            lines.append(f"| {n} | {k['signal']} | {k['phase_aimed']} | {k['landed']} | {k['at_s']} | {k['exit']} | "
                         f"{k['from_iteration']} -> {k['checkpoint_after']} | "
                         f"{', '.join(k['left_beside_output']) or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--eval-runs", type=int, default=2)
    ap.add_argument("--eval-epochs", type=int, default=100)
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "chaos_resume"))
    a = ap.parse_args(argv)
    from benchmarks._machine import machine
    from tests.datasets_factory import make_dataset

    work = Path(tempfile.mkdtemp(prefix="hf_lodc-chaos-"))
    try:
        data = make_dataset(work / "data", per_class={"train": 6, "test": 2})
        rec = chaos(data, work / "runs", kills=a.kills, seed=a.seed, iterations=a.iterations, eval_runs=a.eval_runs,
                    eval_epochs=a.eval_epochs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rec["machine"] = machine()
    rec["command"] = "python benchmarks/chaos_resume.py " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(a.results).parent.mkdir(parents=True, exist_ok=True)
    Path(a.results + ".json").write_text(json.dumps(rec, indent=2, default=str) + "\n")
    Path(a.results + ".md").write_text(markdown(rec))
    print(markdown(rec))
    return 0 if rec["bit_identical"] and not rec["debris"] and not rec["lock_refused"] else 1


if __name__ == "__main__":
    sys.exit(main())
