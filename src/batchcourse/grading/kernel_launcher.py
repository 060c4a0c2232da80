"""Become a sandboxed process. Run by batchcourse.grading.sandbox through `unshare`, as root of new namespaces.

Two modes. "root": unshare ran as real root; the process joins control groups and becomes a user of
its own. "user": unshare made an unprivileged user namespace in which the grader's user is root; the
process limits itself with rlimits and enters a nested user namespace whose one user (the chosen uid)
is the grader's user outside, so that it keeps no capability once it execs.

Only the standard library is imported here, so that starting a kernel stays fast.
"""

import ctypes
import json
import os
import resource
import shutil
import signal
import sys
from pathlib import Path

from .. import i18n
from .lifetime import kept_environment

REPO_ROOT = Path(__file__).resolve().parents[3]
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWUSER = 0x10000000
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new system calls share one table)
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
# Covered with empty file systems of the sandbox's own: temporary and shared folders (so that two
# sandboxes cannot pass data through them) and homes. Only /tmp and /dev/shm stay writable.
COVERED = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run", "/root", "/home", "/var/mail", "/var/crash")
WRITABLE = ("/tmp", "/dev/shm")


def _mount(source: str, target: Path | str, kind: str | None = None, flags: int = 0, options: str | None = None) -> None:
    """mount(2): the system call, not the mount program, so that a process that may start no program (the test
    process) can make its sandbox too, in milliseconds."""
    libc = ctypes.CDLL(None, use_errno=True)
    encoded = [None if part is None else str(part).encode() for part in (source, target, kind, options)]
    if libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3]):
        raise OSError(ctypes.get_errno(), f"mount {kind or 'bind'} {target}")


def _tmpfs(target: Path | str, options: str) -> None:
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def _bind(source: Path, target: Path) -> None:
    _mount(str(source), target, None, MS_BIND | MS_REC)


def _make_private() -> None:
    _mount("none", "/", None, MS_REC | MS_PRIVATE)


def hidden_and_kept(folder: Path | None) -> tuple[list[Path], list[Path]]:
    """Folders to cover, and folders to mount back inside them (read-only but for `folder`, if any)."""
    repo = REPO_ROOT.resolve()
    hidden = [Path(p) for p in COVERED if Path(p).is_dir() and not Path(p).is_symlink()] + [repo]
    if len(repo.parent.parts) > 1:
        hidden.append(repo.parent)
    hidden = [p for p in hidden if not any(q in p.parents for q in hidden)]
    kept = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), repo / "src", repo / "data", repo / "translations"}
    if folder is not None:
        kept.add(folder)
    return hidden, sorted(p for p in kept if p.exists())


def isolate_files(folder: Path | None) -> None:
    """Hide the course, homes and shared folders, keep the Python environment and the course package, and make
    everything read-only but `folder` (if any), /tmp and /dev/shm. Needs a mount namespace of its own."""
    _make_private()
    hidden, kept = hidden_and_kept(folder)
    stage = Path("/mnt")
    _tmpfs(stage, "size=1m,mode=700")
    staged = []
    for index, path in enumerate(kept):
        target = stage / str(index)
        target.mkdir()
        _bind(path, target)
        staged.append((path, target))
    for path in hidden:
        mode = "1777" if str(path) == "/dev/shm" else "755"
        _tmpfs(path, f"size=256m,mode={mode}")
    for path, target in staged:
        path.mkdir(parents=True, exist_ok=True)
        _bind(target, path)
    _make_private()
    _tmpfs(stage, "size=4k,mode=000")
    read_only_but(*([folder] if folder is not None else []), Path("/proc"), *[Path(p) for p in WRITABLE])


def _set_read_only(path: Path, read_only: bool, recursive: bool) -> None:
    """mount_setattr(2): changes only the read-only flag, so it also works on mounts locked by a user namespace."""
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    flags = AT_RECURSIVE if recursive else 0
    if libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, str(path).encode(), flags, ctypes.byref(attr), ctypes.sizeof(attr)):
        raise OSError(ctypes.get_errno(), f"mount_setattr {path}")


def read_only_but(*writable: Path) -> None:
    """Every mount read-only, then the sandbox's own writable ones back: nothing outside it can be written."""
    _set_read_only(Path("/"), True, recursive=True)
    for path in writable:
        if path.is_dir():
            _set_read_only(path, False, recursive=False)


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


def set_limits(memory_mb: int, max_processes: int, contained: bool) -> None:
    limits = {
        # Where no control group holds the memory, each process's data (heap and private mappings) and
        # address space are limited instead: looser bounds, per process rather than for the sandbox.
        resource.RLIMIT_AS: resource.RLIM_INFINITY if contained else 4 * memory_mb * 1024 * 1024,
        resource.RLIMIT_DATA: resource.RLIM_INFINITY if contained else memory_mb * 1024 * 1024,
        resource.RLIMIT_NPROC: max_processes,
        resource.RLIMIT_FSIZE: 256 * 1024 * 1024,
        resource.RLIMIT_CORE: 0,
    }
    for limit, value in limits.items():
        resource.setrlimit(limit, (value, value))


def become_user(uid: int) -> None:
    """Root mode: become `uid`, a user of the sandbox's own."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def become_nested_user(uid: int) -> None:
    """User mode: enter a user namespace whose only user, `uid`, is the grader's user outside.

    The process keeps no capability over the namespace that owns the mounts (it cannot undo them), and
    loses every capability when it execs as a user other than 0."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER):
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} 0 1")
    Path("/proc/self/gid_map").write_text(f"{uid} 0 1")


def drop_privileges(uid: int, mode: str) -> None:
    become_user(uid) if mode == "root" else become_nested_user(uid)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # Changing the user clears the parent-death signal that `unshare --kill-child` set: set it again,
    # so that the kernel (and with it its PID namespace) ends whenever the sandbox process is killed.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def private_home(uid: int, mode: str) -> Path:
    """The sandboxed process's home, in its own /tmp, owned by the user it is about to become (in user mode, by
    root of the sandbox's namespace, which `become_nested_user` maps that user to)."""
    owner = uid if mode == "root" else 0
    home = Path("/tmp/home")
    home.mkdir(mode=0o700)
    os.chown(home, owner, owner)
    return home


def isolate(settings: dict, connection_file: str) -> tuple[list[str], dict[str, str]]:
    """Isolate this process (see the module docstring); returns the kernel's command, with {connection_file}
    replaced by a private copy of `connection_file` in the sandbox's folder, and its environment."""
    folder, uid, mode = Path(settings["folder"]), settings["uid"], settings.get("mode", "root")
    owner = uid if mode == "root" else 0
    private = folder / "connection.json"
    shutil.copyfile(connection_file, private)
    os.chown(private, owner, owner)
    os.chmod(private, 0o400)
    contained = mode == "root" and join_control_groups(folder.name, settings["memory_mb"], settings["max_processes"])
    isolate_files(folder)
    home = private_home(uid, mode)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    set_limits(settings["memory_mb"], settings["max_processes"], contained)
    drop_privileges(uid, mode)
    os.chdir(home)
    env = kept_environment()
    env[i18n.VARIABLE] = settings.get("lang", "en")  # the submission's language: hints, figures, printed lines
    env.update(HOME=str(home), MPLCONFIGDIR=str(home / ".matplotlib"), IPYTHONDIR=str(home / ".ipython"),
               MPLBACKEND="module://matplotlib_inline.backend_inline", TMPDIR=str(home))
    command = settings.get("command") or [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return [part.replace("{connection_file}", str(private)) for part in command], env


def main(settings: dict, connection_file: str) -> None:
    """Isolate this process, then exec `settings["command"]` (default: an ipykernel)."""
    argv, env = isolate(settings, connection_file)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "/dev/null")
