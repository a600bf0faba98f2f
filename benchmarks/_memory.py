"""Peak resident memory of this process (Linux ``/proc``), resettable."""
from pathlib import Path


def status_mib(field):
    """A memory field of ``/proc/self/status`` (e.g. ``VmRSS``, ``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak():
    """Reset the peak resident set (``VmHWM``) to the current one."""
    Path("/proc/self/clear_refs").write_text("5")
