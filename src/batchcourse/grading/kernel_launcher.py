"""Become a sandboxed kernel. Run by batchcourse.sandbox through `unshare`, as root of new namespaces.

Only the standard library is imported here, so that starting a kernel stays fast.
"""

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PR_SET_PDEATHSIG = 1
SYSTEM_TEMP_AND_HOMES = ("/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/run/user")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def hidden_and_kept(folder: Path) -> tuple[list[Path], list[Path]]:
    """Folders to cover, and folders to mount back inside them (read-only but for `folder`)."""
    repo = REPO_ROOT.resolve()
    hidden = [Path(p) for p in SYSTEM_TEMP_AND_HOMES if Path(p).is_dir()] + [repo]
    if len(repo.parent.parts) > 1:
        hidden.append(repo.parent)
    hidden = [p for p in hidden if not any(q in p.parents for q in hidden)]
    kept = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), repo / "src", repo / "data", folder}
    return hidden, sorted(p for p in kept if p.exists())


def isolate_files(folder: Path) -> None:
    _mount("--make-rprivate", "/")
    hidden, kept = hidden_and_kept(folder)
    stage = Path("/mnt")
    _mount("-t", "tmpfs", "-o", "size=1m,mode=700", "tmpfs", str(stage))
    staged = []
    for index, path in enumerate(kept):
        target = stage / str(index)
        target.mkdir()
        _mount("--rbind", str(path), str(target))
        staged.append((path, target))
    for path in hidden:
        _mount("-t", "tmpfs", "-o", "size=256m,mode=755", "tmpfs", str(path))
    for path, target in staged:
        path.mkdir(parents=True, exist_ok=True)
        _mount("--rbind", str(target), str(path))
        if path != folder:
            _mount("-o", "remount,bind,ro", str(path))


def control_groups(name: str) -> dict[str, Path]:
    """The memory and pids control groups of a sandbox (cgroup v2, or v1's separate hierarchies)."""
    unified = Path("/sys/fs/cgroup")
    controllers = unified / "cgroup.controllers"
    if controllers.is_file() and {"memory", "pids"} <= set(controllers.read_text().split()):
        return {"memory": unified / name, "pids": unified / name}
    return {"memory": unified / "memory" / name, "pids": unified / "pids" / name}


def join_control_groups(name: str, memory_mb: int, max_processes: int) -> bool:
    """Put this process (and so the kernel and all it starts) under a memory and a process limit."""
    groups = control_groups(name)
    limits = {"memory": [("memory.max", "memory.limit_in_bytes"), memory_mb * 1024 * 1024],
              "pids": [("pids.max",), max_processes]}
    try:
        for kind, folder in groups.items():
            folder.mkdir(exist_ok=True)
            files, value = limits[kind]
            target = next(folder / f for f in files if (folder / f).exists())
            target.write_text(str(value))
            (folder / "cgroup.procs").write_text(str(os.getpid()))
        return True
    except (OSError, StopIteration):
        return False


def drop_privileges(uid: int, memory_mb: int, max_processes: int, contained: bool) -> None:
    limits = {
        # Where no control group holds the memory, the address space is limited instead: a looser
        # bound, as torch reserves far more address space than it uses.
        resource.RLIMIT_AS: resource.RLIM_INFINITY if contained else 4 * memory_mb * 1024 * 1024,
        resource.RLIMIT_NPROC: max_processes,
        resource.RLIMIT_FSIZE: 256 * 1024 * 1024,
        resource.RLIMIT_CORE: 0,
    }
    for limit, value in limits.items():
        resource.setrlimit(limit, (value, value))
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    # Changing the user clears the parent-death signal that `unshare --kill-child` set: set it again,
    # so that the kernel (and with it its PID namespace) ends whenever the sandbox process is killed.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(settings: dict, connection_file: str) -> None:
    folder, uid = Path(settings["folder"]), settings["uid"]
    private = folder / "connection.json"
    shutil.copyfile(connection_file, private)
    os.chown(private, uid, uid)
    os.chmod(private, 0o400)
    contained = join_control_groups(folder.name, settings["memory_mb"], settings["max_processes"])
    isolate_files(folder)
    home = Path("/tmp/home")
    home.mkdir(mode=0o700)
    os.chown(home, uid, uid)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    drop_privileges(uid, settings["memory_mb"], settings["max_processes"], contained)
    os.chdir(home)
    env = {key: value for key, value in os.environ.items()
           if key.startswith(("NBGRADER_", "LANG", "LC_", "PATH", "PYTHON", "OMP_", "MKL_"))}
    env.update(HOME=str(home), MPLCONFIGDIR=str(home / ".matplotlib"), IPYTHONDIR=str(home / ".ipython"),
               MPLBACKEND="module://matplotlib_inline.backend_inline", TMPDIR=str(home))
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", str(private)], env)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2])
