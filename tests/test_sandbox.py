"""Tests for sandbox.py (report §4.1 multilingual sandbox): every hostile program of issue 6
gets the right status within its time limit plus a margin, leaves no process of its own
behind, writes nothing outside its directory, and leaves the caller alive; ordinary programs
in every language get the right verdict; syntax errors are caught before running.

CI runs as root with bubblewrap installed, so these run under the strongest mode.
"""
import glob
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import sandbox

MARGIN = 2.0  # seconds over a program's limit for the worker's bookkeeping on a busy 2-core box
# Every hostile program first prints its PID namespace, so we can look for leftovers in it.
NS = "import os; print(os.readlink('/proc/self/ns/pid'), flush=True)\n"


def processes_in(namespace):
    """Host pids of processes in that PID namespace, apart from its pid 1 (the idle worker)."""
    found = []
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            if os.readlink(proc + "/ns/pid") != namespace:
                continue
            with open(proc + "/status") as f:
                nspid = next(line for line in f if line.startswith("NSpid")).split()[-1]
        except (OSError, StopIteration):
            continue  # it ended while we looked
        if nspid != "1":
            found.append(proc)
    return found


def hostile(code, status, timeout=1.0, **kw):
    """Run code (after the NS line), check status, time limit and that nothing of it is left."""
    start = time.monotonic()
    r = sandbox.run(NS + code, timeout=timeout, **kw)
    elapsed = time.monotonic() - start
    assert r.status == status, r
    assert elapsed < timeout + MARGIN, f"took {elapsed:.1f}s for a {timeout}s limit"
    namespace = r.stdout.split("\n", 1)[0]
    assert namespace.startswith("pid:["), r
    assert processes_in(namespace) == [], "processes of the program outlived run()"
    return r


def test_strongest_isolation_in_use():
    assert sandbox.isolation() == "bwrap"


# ----------------------------------------------------------------------------- ordinary programs

ORDINARY = [  # (language, code, stdin, expected status)
    ("python", "print(input()[::-1])", "abc", "passed"),
    ("python", "assert sum([1, 2]) == 4", "", "failed"),
    ("python", "def f(:\n    pass", "", "syntax_error"),
    ("cpp", "#include <iostream>\nint main() { int x; std::cin >> x; std::cout << 2 * x << std::endl; }", "21",
     "passed"),
    ("cpp", "#include <cassert>\nint main() { assert(1 + 1 == 3); }", "", "failed"),
    ("cpp", "int main() { return undefined_name; }", "", "failed"),  # compiles badly, parses fine
    ("cpp", "int main() { int x = ; }", "", "syntax_error"),
    ("cpp", "#include <bits/stdc++.h>\n#define rep(i, n) for (int i = 0; i < (n); i++)\n"
            "int main() { rep(i, 3) { std::cout << i; } }", "", "passed"),  # tree-sitter alone says error
    ("cpp", "#include <vector>\nint main() { std::vector<char> v(64L << 30); return v[1]; }", "", "memory"),
    ("java", "import java.util.*;\npublic class Solution {\n  public static void main(String[] a) {\n"
             "    System.out.println(new Scanner(System.in).nextInt() * 2);\n  }\n}", "21", "passed"),
    ("java", "class Main { public static void main(String[] a) { throw new RuntimeException(\"no\"); } }", "",
     "failed"),
    ("java", "class Main { public static void main(String[] a) { int x = ; } }", "", "syntax_error"),
    ("javascript", "const s = require('fs').readFileSync(0, 'utf8');\nsetTimeout(() => console.log(s.trim()), 10);",
     "hi", "passed"),
    ("javascript", "throw new Error('no');", "", "failed"),
    ("javascript", "function (", "", "syntax_error"),
]

EARLY_EXITS = [  # exit 0 before the end: never a pass
    ("python", "import sys\nsys.exit(0)\nassert False"),
    ("python", "import os\nos._exit(0)\nassert False"),
    ("python", "exit(0)\nassert False"),
    ("cpp", "#include <cstdlib>\nint main() { exit(0); return 1; }"),
    ("cpp", "#include <cstdlib>\n#include <unistd.h>\nint main() { _exit(0); }"),
    ("java", "public class Main { public static void main(String[] a) { System.exit(0); } }"),
    ("javascript", "process.exit(0);\nthrow new Error('never');"),
]


def test_ordinary_programs_in_every_language():
    results = sandbox.run_batch([dict(code=c, language=lang, stdin=i, timeout=20) for lang, c, i, _ in ORDINARY])
    for (lang, code, _, want), r in zip(ORDINARY, results):
        assert r.status == want, (lang, code, r)
    assert results[0].stdout == "cba\n" and results[3].stdout == "42\n" and results[9].stdout == "42\n"
    assert results[12].stdout == "hi\n"
    assert "error" in results[5].stderr  # the compiler's message comes back
    assert results[2].returncode is None  # nothing ran


def test_early_exit_0_is_failed_in_every_language():
    results = sandbox.run_batch([dict(code=c, language=lang, timeout=20) for lang, c in EARLY_EXITS])
    for (lang, code), r in zip(EARLY_EXITS, results):
        assert (r.status, r.returncode) == ("failed", 0), (lang, code, r)


def test_printing_or_writing_a_guessed_marker_is_not_a_pass():
    code = ("import os, sys\nprint('passed')\nprint('0' * 32)\n"
            "for fd in range(3, 256):\n    try: os.write(fd, b'0' * 32)\n    except OSError: pass\nsys.exit(0)")
    assert sandbox.run(code).status == "failed"


def test_syntax_error_is_caught_before_running(tmp_path):
    canary = tmp_path / "ran"
    r = sandbox.run(f"open({str(canary)!r}, 'w')\nif True print(1)")
    assert r.status == "syntax_error" and r.returncode is None and not canary.exists()


def test_unsupported_and_unknown_languages(monkeypatch):
    sandbox.isolation()  # probe before `which` finds nothing
    with pytest.raises(ValueError, match="unknown language"):
        sandbox.run("print(1)", language="cobol")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, path=None: None)
    assert sandbox.run("console.log(1)", language="javascript").status == "unsupported"


def test_results_come_back_in_order():
    results = sandbox.run_batch([dict(code=f"print({i})") for i in range(12)], workers=4)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]


# ----------------------------------------------------------------------------- hostile programs

def test_infinite_loop():
    hostile("while True: pass", "timeout")


def test_loop_catching_everything_and_ignoring_signals():
    hostile("import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    try:\n"
            "        while True: pass\n    except BaseException: pass", "timeout")


def test_long_c_level_call():
    hostile("x = 10 ** (10 ** 8)", "timeout")


def test_allocating_64_gb():
    r = hostile("x = bytearray(64 << 30)", "memory")
    assert "MemoryError" in r.stderr


def test_fork_bomb():
    hostile("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", "timeout", timeout=2.0)


def test_fork_bomb_does_not_starve_its_neighbours():
    bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    forks = "import os\nfor _ in range(10):\n    pid = os.fork()\n    if pid == 0: os._exit(0)\n    os.waitpid(pid, 0)"
    results = sandbox.run_batch([dict(code=bomb, timeout=3)] + [dict(code=forks, timeout=10)] * 4, workers=5)
    assert [r.status for r in results] == ["timeout"] + ["passed"] * 4


def test_setsid_daemon_is_killed_when_the_parent_exits_0():
    r = hostile("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        time.sleep(1000)\n    os._exit(0)\ntime.sleep(0.2)\nprint('parent done')", "passed",
                timeout=5.0)
    assert r.stdout.endswith("parent done\n")


def test_exit_0_before_the_end():
    hostile("import sys\nsys.exit(0)\nassert False", "failed")
    hostile("import os\nos._exit(0)\nassert False", "failed")


def test_output_flood_is_capped():
    r = hostile("while True: print('x' * 10**6)", "failed", timeout=3.0)
    assert len(r.stdout.encode()) <= sandbox.OUTPUT_LIMIT and "File too large" in r.stderr


def test_reading_stdin_when_none_is_given():
    r = hostile("import sys\nprint(repr(sys.stdin.read()))\ninput()", "failed")
    assert "''" in r.stdout and "EOFError" in r.stderr


def test_writing_a_huge_file():
    r = hostile("with open('big', 'wb') as f:\n    while True: f.write(b'x' * 10**6)", "failed", timeout=3.0)
    assert "File too large" in r.stderr


def test_files_outside_its_directory_are_out_of_reach(tmp_path):
    os.chmod(tmp_path, 0o777)  # even a world-writable host directory
    canary = tmp_path / "canary.txt"
    canary.write_text("precious")
    targets = [str(canary), str(tmp_path / "new.txt"), "/tmp/sandbox-escape", "/etc/sandbox-escape",
               "/usr/sandbox-escape", "/sandbox-escape", "/dev/shm/sandbox-escape", "../sandbox-escape"]
    r = hostile(f"import os\ntry: os.remove({str(canary)!r}); print('REMOVED')\nexcept OSError: pass\n"
                f"for p in {targets!r}:\n    try: open(p, 'w').write('x'); print('WROTE', p)\n"
                f"    except OSError: pass\nopen('mine.txt', 'w').write('fine')\nprint('done')", "passed")
    assert "REMOVED" not in r.stdout and "WROTE" not in r.stdout and r.stdout.endswith("done\n")
    assert canary.read_text() == "precious" and sorted(os.listdir(tmp_path)) == ["canary.txt"]
    assert not os.path.exists("/tmp/sandbox-escape")


def test_killing_its_parent():
    r = hostile("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(0.2)\nprint('still here')", "passed")
    assert r.stdout.endswith("still here\n")
    r = hostile("import os, time\ntry: os.kill(-1, 9)\nexcept OSError: pass\ntime.sleep(0.2)\nprint('still here')",
                "passed")
    assert r.stdout.endswith("still here\n")
    assert sandbox.run("print(1)").status == "passed"  # and the sandbox still works


def test_no_network_not_even_the_hosts_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
    thread.start()
    port = server.getsockname()[1]
    for address in [("127.0.0.1", port), ("1.1.1.1", 80), ("example.com", 80)]:
        r = hostile(f"import socket\nsocket.create_connection({address!r}, timeout=1)\nprint('CONNECTED')", "failed",
                    timeout=3.0)
        assert "CONNECTED" not in r.stdout
    socket.create_connection(("127.0.0.1", port), timeout=1).close()  # the server itself did listen
    thread.join(5)
    assert len(accepted) == 1  # ... and only our own connection reached it
    accepted[0][0].close()
    server.close()


def test_deep_recursion_that_segfaults():
    r = hostile("import sys, json\nsys.setrecursionlimit(10**8)\njson.loads('[' * 10**6 + ']' * 10**6)", "failed")
    assert r.returncode == -11


# ----------------------------------------------------------------------------- hygiene between runs

def test_next_program_finds_nothing_of_the_previous_one():
    leave = ("import ctypes, os\nos.mkdir('d')\nopen('d/left.txt', 'w').write('x')\nos.chmod('d', 0)\n"
             "print(ctypes.CDLL(None).shmget(4242, 4096, 0o1666) >= 0)")
    look = "import os\nprint(os.listdir('.'), len(open('/proc/sysvipc/shm').readlines()))"
    assert sandbox.run(leave).stdout == "True\n"
    assert sandbox.run(look).stdout == "['main.py'] 1\n"  # 1 = the header line only


def test_a_dead_worker_is_replaced():
    assert sandbox.run("print(1)").status == "passed"
    for worker in sandbox._idle:
        worker.close()
    assert sandbox.run("print(2)").stdout == "2\n"


def test_caller_is_untouched():
    cwd, env = os.getcwd(), dict(os.environ)
    sandbox.run("import os\nos.chdir('/')\nos.environ['X'] = '1'\nos.kill(os.getpid(), 9)")
    assert os.getcwd() == cwd and dict(os.environ) == env


# ----------------------------------------------------------------------------- modes and CLI

def _python(code, env=None, timeout=120):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=os.path.dirname(os.path.abspath(sandbox.__file__)))


def test_unshare_fallback_still_isolates():
    r = _python("import sandbox\nprint(sandbox.isolation())\n"
                "print(sandbox.run('while True: pass', timeout=1).status)\n"
                "print(sandbox.run('import socket\\nsocket.create_connection((\"1.1.1.1\", 80), timeout=1)').status)\n"
                "print(sandbox.run('import os\\nprint(os.getppid())').stdout.strip())",
                env={"SANDBOX_ISOLATION": "unshare"})
    assert r.stdout.split() == ["unshare", "timeout", "failed", "1"], r.stderr  # its parent: pid 1 of its own


def test_no_isolation_is_never_silent():
    r = _python("import sandbox\nsandbox.run('print(1)')", env={"SANDBOX_ISOLATION": "nonexistent"})
    assert r.returncode != 0 and "no isolation works" in r.stderr
    r = _python("import sandbox, warnings\nwarnings.simplefilter('always')\nprint(sandbox.run('print(1)').status)",
                env={"SANDBOX_ISOLATION": "none"})
    assert r.stdout.strip() == "passed" and "WITHOUT namespaces" in r.stderr


def test_cli(tmp_path):
    good, bad, odd = tmp_path / "good.py", tmp_path / "bad.js", tmp_path / "prog.txt"
    good.write_text("print(input() * 2)")
    bad.write_text("process.exit(0)")
    odd.write_text("print(1)")
    (tmp_path / "in.txt").write_text("ab")
    cli = [sys.executable, os.path.abspath(sandbox.__file__)]
    r = subprocess.run(cli + [str(good), "--stdin", str(tmp_path / "in.txt"), "--timeout", "5"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "status: passed" in r.stdout and "abab" in r.stdout, (r.stdout, r.stderr)
    r = subprocess.run(cli + [str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "status: failed" in r.stdout, (r.stdout, r.stderr)
    r = subprocess.run(cli + [str(odd)], capture_output=True, text=True)
    assert r.returncode == 1 and "pass --lang" in r.stderr, (r.stdout, r.stderr)
