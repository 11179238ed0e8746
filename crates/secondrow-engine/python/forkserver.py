"""SecondRow's warm worker for kfp lightweight components (a fork server).

Started once per Python environment by the engine: `python forkserver.py SOCKET_PATH`. It imports kfp's
executor once, then serves requests on a Unix socket. Each request (one JSON line) becomes a forked child
that runs exactly what `python3 -m kfp.dsl.executor_main --component_module_path FILE ARGS...` runs in a
cold process, in its own session (process group), working directory, environment and log files. The
server itself never runs user code, so no task can see another task's globals.

Protocol, per connection: request line -> `{"pid": N}` line -> `{"exit": CODE}` line when the child ends
(CODE < 0: killed by signal -CODE). Modules named in `preload` are imported in the server first (once,
best effort), so children start with them already loaded.
"""

import errno
import json
import os
import selectors
import signal
import socket
import sys
import traceback

# The point of being warm: everything `kfp.dsl.executor_main` imports, loaded once here. Not executor_main
# itself: a child runs it as `__main__` through runpy, exactly as `python -m` does cold, and runpy warns
# (a RuntimeWarning on the task's stderr) when the module it is asked to run is already in sys.modules.
import kfp.dsl.executor  # noqa: F401
import kfp.dsl.kfp_config  # noqa: F401
import kfp.dsl.utils  # noqa: F401

_PRELOADED = set()
_FAILED_PRELOAD = set()


def preload(names):
    for name in names:
        if name in _PRELOADED or name in _FAILED_PRELOAD or name in sys.modules:
            continue
        try:
            __import__(name)
            _PRELOADED.add(name)
        except BaseException:  # noqa: BLE001 - any failure just means "not warm"
            _FAILED_PRELOAD.add(name)


# --- task sandbox (see the engine's sandbox.rs): user switch and Landlock in the forked child ---------------
_LANDLOCK_FILE_ACCESS = 1 | 2 | 4 | (1 << 14) | (1 << 15)  # execute, write, read, truncate, ioctl_dev
_LANDLOCK_MASK = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}


def apply_sandbox(sb):
    """Switch to the task user and enforce the Landlock ruleset the engine computed, before any user code."""
    import ctypes

    if sb.get("gid") is not None:
        os.setgroups([])
        os.setgid(sb["gid"])
    if sb.get("uid") is not None:
        os.setuid(sb["uid"])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return  # no Landlock in this kernel: the engine warned at start
    mask = _LANDLOCK_MASK.get(abi, (1 << 16) - 1)
    handled = ctypes.c_uint64(sb["all_access"] & mask)
    ruleset = libc.syscall(444, ctypes.byref(handled), ctypes.c_size_t(8), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    for paths, access in ((sb["read"], sb["read_access"]), (sb["write"], sb["all_access"])):
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = access & mask
                if not os.path.isdir(path):
                    allowed &= _LANDLOCK_FILE_ACCESS
                rule = PathBeneath(allowed, fd)
                if libc.syscall(445, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
            finally:
                os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(446, ruleset, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


# --- end of the task sandbox ------------------------------------------------------------------------------


def run_child(req):
    """In the forked child: become the task and never return."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for stream, fd in (("stdout", 1), ("stderr", 2)):
            target = os.open(req[stream], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
            os.close(target)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(req["cwd"])
        if req.get("sandbox") is not None:
            apply_sandbox(req["sandbox"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.environ["_KFP_RUNTIME"] = "true"
        program_dir = req["program_dir"]
        os.makedirs(program_dir, exist_ok=True)
        program = os.path.join(program_dir, "ephemeral_component.py")
        with open(program, "w") as f:
            f.write(req["code"])
        sys.argv = ["kfp.dsl.executor_main", "--component_module_path", program] + list(req["args"])
        sys.path[0] = os.getcwd()  # as `python -m` sets it
        # A preloaded module may have imported it; cold, `python -m` finds it absent too.
        sys.modules.pop("kfp.dsl.executor_main", None)
        import runpy

        try:
            runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - report like the interpreter would
            traceback.print_exc()
            code = 1
    except BaseException:  # noqa: BLE001
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def from_engine(conn, engine):
    import struct

    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid == engine


def read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def main():
    path = sys.argv[1]
    engine = os.getppid()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    waiting = {}  # pid -> connection
    # Tell the engine we are ready (it waits for this line on our stdout).
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        # The worker never outlives the engine that started it (even one killed with SIGKILL).
        if os.getppid() != engine:
            try:
                os.unlink(path)
            finally:
                os._exit(0)
        try:
            events = sel.select(timeout=0.5)
        except InterruptedError:
            continue
        for key, _ in events:
            if key.data == "accept":
                conn, _ = listener.accept()
                # Only the engine that started us may submit work: a (sandboxed) task that finds the socket
                # must not get an unsandboxed child from it.
                if not from_engine(conn, engine):
                    conn.close()
                    continue
                conn.settimeout(10)
                try:
                    req = json.loads(read_line(conn))
                except (OSError, ValueError):
                    conn.close()
                    continue
                if req.get("sandbox") is None:  # a sandboxed task's modules never load unsandboxed
                    preload(req.get("preload", []))
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    run_child(req)
                try:
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                except OSError:
                    pass
                waiting[pid] = conn
            else:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()


if __name__ == "__main__":
    main()
