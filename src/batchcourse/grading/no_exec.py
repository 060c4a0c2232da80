"""No new programs: a seccomp filter that refuses execve and execveat to a process and everything it forks.

The test process reads nothing from the student's kernel but data (see `wire`); this filter holds even if that
ever failed: no shell, no other interpreter, no program of any kind starts from it. Fork and threads still work.
"""

import ctypes
import platform
import struct

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
LOAD_WORD, JUMP_IF_EQUAL, JUMP_IF_AT_LEAST, RETURN = 0x20, 0x15, 0x35, 0x06
ALLOW, REFUSE_EPERM = 0x7FFF0000, 0x00050000 | 1
X32_SYSCALLS = 0x40000000
# machine -> (the audit architecture seccomp reports, execve, execveat)
SYSCALLS = {"x86_64": (0xC000003E, 59, 322), "aarch64": (0xC00000B7, 221, 281)}


def _instruction(code: int, if_true: int, if_false: int, value: int) -> bytes:
    return struct.pack("HBBI", code, if_true, if_false, value)


def _program(arch: int, execve: int, execveat: int) -> bytes:
    return b"".join([
        _instruction(LOAD_WORD, 0, 0, 4),                 # the calling architecture
        _instruction(JUMP_IF_EQUAL, 1, 0, arch),
        _instruction(RETURN, 0, 0, REFUSE_EPERM),         # another ABI (32-bit): nothing
        _instruction(LOAD_WORD, 0, 0, 0),                 # the system call's number
        _instruction(JUMP_IF_AT_LEAST, 3, 0, X32_SYSCALLS),
        _instruction(JUMP_IF_EQUAL, 2, 0, execve),
        _instruction(JUMP_IF_EQUAL, 1, 0, execveat),
        _instruction(RETURN, 0, 0, ALLOW),
        _instruction(RETURN, 0, 0, REFUSE_EPERM),
    ])


class _Program(ctypes.Structure):
    _fields_ = [("length", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def refuse_new_programs() -> bool:
    """Install the filter in this process (inherited by its children); False where it cannot be done."""
    numbers = SYSCALLS.get(platform.machine())
    if numbers is None or platform.system() != "Linux":
        return False
    code = _program(*numbers)
    buffer = ctypes.create_string_buffer(code)
    program = _Program(len(code) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) == 0
