#!/usr/bin/python3
"""Run a command under the seccomp filter losad.service asks systemd for.

    seccomp_filter.py [--action errno|kill] -- COMMAND [ARG...]
    seccomp_filter.py --print      (the allowed system calls, one a line)

Reproduces, without systemd, what these lines of systemd/losad.service load
into the kernel (systemd.exec(5)), so that scripts/confine.sh can show the
daemon works under them:

  SystemCallArchitectures=native     other ABIs (i386, x32) are killed
  SystemCallFilter=@system-service   an allow list, expanded by
  SystemCallFilter=~@privileged        `systemd-analyze syscall-filter` (the
  SystemCallErrorNumber=EPERM          installed systemd's own groups)
  MemoryDenyWriteExecute=yes         no writable+executable mmap, no mprotect
                                     or pkey_mprotect to PROT_EXEC, no
                                     shmat(SHM_EXEC)
  RestrictAddressFamilies=AF_UNIX    socket()/socketpair() of another family
                                     fail with EAFNOSUPPORT
  RestrictNamespaces=yes             unshare/clone with CLONE_NEW*, setns
                                     fail with EPERM; clone3 with ENOSYS
                                     (glibc then falls back to clone)
  RestrictRealtime=yes               sched_setscheduler to FIFO, RR or
                                     DEADLINE fails with EPERM
  LockPersonality=yes                personality() other than PER_LINUX or
                                     a query fails with EPERM

`--action kill` kills the process on a call outside the allow list instead
of failing it with EPERM (systemd's behaviour without SystemCallErrorNumber=):
stricter, so a test that passes with it passes with the unit too.

Needs no privilege beyond no_new_privs (set here). x86-64 only: syscall
numbers come from <asm/unistd_64.h> (Debian's linux-libc-dev).
"""

import ctypes
import errno
import os
import re
import struct
import subprocess
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"

# linux/filter.h and linux/seccomp.h
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_AND_K = 0x54
BPF_RET_K = 0x06
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# struct seccomp_data offsets: nr, arch, instruction pointer, then six u64 arguments
# (their low 32 bits first, little-endian).
OFFSET_NR = 0
OFFSET_ARCH = 4


def offset_arg(index):
    return 16 + 8 * index


PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
AF_UNIX = 1
SCHED_FIFO, SCHED_RR, SCHED_DEADLINE = 1, 2, 6
SCHED_RESET_ON_FORK = 0x40000000
CLONE_NEW_ANY = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000  # NS CGROUP UTS IPC
                 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080)  # USER PID NET TIME


def syscall_numbers():
    try:
        text = open(UNISTD, encoding="utf-8").read()
    except OSError as error:
        sys.exit(f"seccomp_filter.py: cannot read {UNISTD} ({error.strerror}); install linux-libc-dev")
    return {name: int(number) for name, number in re.findall(r"#define __NR_(\w+)\s+(\d+)", text)}


def syscall_groups():
    """Every group `systemd-analyze syscall-filter` knows: name -> members (names and @groups)."""
    try:
        text = subprocess.run(["systemd-analyze", "syscall-filter"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"seccomp_filter.py: `systemd-analyze syscall-filter` failed ({error}); it defines @system-service")
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(name, groups, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    if name not in groups:
        sys.exit(f"seccomp_filter.py: systemd-analyze does not know the group {name}")
    return set().union(*(expand(member, groups, seen) for member in groups[name]))


def allowed_syscalls():
    """SystemCallFilter=@system-service then ~@privileged, as systemd combines them."""
    groups = syscall_groups()
    return expand("@system-service", groups) - expand("@privileged", groups)


def instruction(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)


def ret(action):
    return instruction(BPF_RET_K, action)


def filter_program(numbers, allowed, deny_action):
    program = [
        instruction(BPF_LD_W_ABS, OFFSET_ARCH),
        instruction(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        ret(SECCOMP_RET_KILL_PROCESS),
        instruction(BPF_LD_W_ABS, OFFSET_NR),
        instruction(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        ret(deny_action),
    ]

    def rule(name, checks):
        """A block for syscall `name`: `checks` run with the syscall's number matched and end in
        a return or fall through; A is reloaded with the number afterwards."""
        if name not in numbers:
            return
        body = [item for check in checks for item in check]
        program.append(instruction(BPF_LD_W_ABS, OFFSET_NR))
        program.append(instruction(BPF_JEQ_K, numbers[name], 0, len(body)))
        program.extend(body)

    def errno_if_bits(arg, mask, error, all_bits=False):
        # A = args[arg]; all_bits: (A & mask) == mask, else A & mask != 0 → errno
        if all_bits:
            return [instruction(BPF_LD_W_ABS, offset_arg(arg)), instruction(BPF_AND_K, mask),
                    instruction(BPF_JEQ_K, mask, 0, 1), ret(SECCOMP_RET_ERRNO | error)]
        return [instruction(BPF_LD_W_ABS, offset_arg(arg)), instruction(BPF_JSET_K, mask, 0, 1),
                ret(SECCOMP_RET_ERRNO | error)]

    def errno_unless(arg, values, error):
        checks = [instruction(BPF_LD_W_ABS, offset_arg(arg))]
        for index, value in enumerate(values):
            checks.append(instruction(BPF_JEQ_K, value, len(values) - index, 0))
        checks.append(ret(SECCOMP_RET_ERRNO | error))
        return checks

    def errno_if_policy(arg, policies, error):
        # A = args[arg] without SCHED_RESET_ON_FORK; any of `policies` jumps to the return.
        checks = [instruction(BPF_LD_W_ABS, offset_arg(arg)), instruction(BPF_AND_K, ~SCHED_RESET_ON_FORK & 0xFFFFFFFF)]
        for index, value in enumerate(policies[:-1]):
            checks.append(instruction(BPF_JEQ_K, value, len(policies) - 1 - index, 0))
        checks.append(instruction(BPF_JEQ_K, policies[-1], 0, 1))
        checks.append(ret(SECCOMP_RET_ERRNO | error))
        return checks

    # MemoryDenyWriteExecute=yes
    rule("mmap", [errno_if_bits(2, PROT_WRITE | PROT_EXEC, errno.EPERM, all_bits=True)])
    rule("mprotect", [errno_if_bits(2, PROT_EXEC, errno.EPERM)])
    rule("pkey_mprotect", [errno_if_bits(2, PROT_EXEC, errno.EPERM)])
    rule("shmat", [errno_if_bits(2, SHM_EXEC, errno.EPERM)])
    # RestrictAddressFamilies=AF_UNIX
    rule("socket", [errno_unless(0, [AF_UNIX], errno.EAFNOSUPPORT)])
    rule("socketpair", [errno_unless(0, [AF_UNIX], errno.EAFNOSUPPORT)])
    # RestrictNamespaces=yes
    rule("unshare", [errno_if_bits(0, CLONE_NEW_ANY, errno.EPERM)])
    rule("clone", [errno_if_bits(0, CLONE_NEW_ANY, errno.EPERM)])
    rule("setns", [[ret(SECCOMP_RET_ERRNO | errno.EPERM)]])
    rule("clone3", [[ret(SECCOMP_RET_ERRNO | errno.ENOSYS)]])
    # RestrictRealtime=yes
    rule("sched_setscheduler", [errno_if_policy(1, [SCHED_FIFO, SCHED_RR, SCHED_DEADLINE], errno.EPERM)])
    # LockPersonality=yes
    rule("personality", [errno_unless(0, [0, 0xFFFFFFFF], errno.EPERM)])

    program.append(instruction(BPF_LD_W_ABS, OFFSET_NR))
    for name in sorted(allowed):
        if name in numbers:   # other architectures' names (mmap2, socketcall, …)
            program.append(instruction(BPF_JEQ_K, numbers[name], 0, 1))
            program.append(ret(SECCOMP_RET_ALLOW))
    program.append(ret(deny_action))
    if len(program) > 4096:
        sys.exit(f"seccomp_filter.py: the filter has {len(program)} instructions, over the kernel's 4096")
    return program


def main(arguments):
    action, show = "errno", False
    while arguments and arguments[0] != "--":
        option = arguments.pop(0)
        if option == "--action" and arguments and arguments[0] in ("errno", "kill"):
            action = arguments.pop(0)
        elif option == "--print":
            show = True
        else:
            sys.exit(f"seccomp_filter.py: unknown option {option}\n{__doc__}")
    command = arguments[1:]
    numbers, allowed = syscall_numbers(), allowed_syscalls()
    if show:
        print("\n".join(sorted(name for name in allowed if name in numbers)))
        return
    if not command:
        sys.exit(__doc__)
    deny = SECCOMP_RET_KILL_PROCESS if action == "kill" else SECCOMP_RET_ERRNO | errno.EPERM
    program = b"".join(filter_program(numbers, allowed, deny))
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"seccomp_filter.py: prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        sys.exit(f"seccomp_filter.py: prctl(PR_SET_SECCOMP): {os.strerror(ctypes.get_errno())}")
    try:
        os.execvp(command[0], command)
    except OSError as error:
        sys.exit(f"seccomp_filter.py: cannot run {command[0]}: {error.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
