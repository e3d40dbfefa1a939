"""Class-incremental learning with a condensed memory (GDumb), as in Yang et al. (NeurIPS 2023), Sec. 5.

    >>> from hf_lodc.continual import ContinualConfig, run_continual
    >>> cfg = ContinualConfig.from_flat({"dataset": "ylecun/mnist", "tasks": 5, "memory_ipc": 1,
    ...                                  "methods": "random,dm,lodm", "seeds": 2, "iterations": 100})
    >>> result = run_continual(cfg)          # result.summary: curves, final / average incremental accuracy

Each task's classes are condensed from that task's rows only (``tasks.restrict``), the memories
are ordinary artefacts, and the learner is re-trained from scratch on the whole memory after each task.
"""

from .config import ContinualConfig
from .experiment import ContinualResult, StepResult, run_continual, validate_continual
from .gdumb import gdumb_step
from .memory import TaskMemory, condense_task, load_task_memory
from .report import markdown_table, plot_curves, summarise
from .tasks import ClassSubset, TaskSplit, restrict, split_classes

__all__ = [
    "ContinualConfig", "ContinualResult", "StepResult", "run_continual", "validate_continual", "gdumb_step",
    "TaskMemory", "condense_task", "load_task_memory", "markdown_table", "plot_curves", "summarise",
    "ClassSubset", "TaskSplit", "restrict", "split_classes",
]
