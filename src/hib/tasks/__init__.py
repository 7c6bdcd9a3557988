"""Downstream tasks behind one interface (hib.tasks.base), one module per task.

`TASK_MODULES` is the registry: each module registers its task by name when imported
(hib.tasks.base.task_class imports them on first use). A task of your own is one module with a
`@register_task` class plus one line here (docs/tasks.md).
"""

TASK_MODULES = (
    "hib.tasks.ks",
    "hib.tasks.asr",
    "hib.tasks.sid",
    "hib.tasks.ic",
    "hib.tasks.folder",
)
