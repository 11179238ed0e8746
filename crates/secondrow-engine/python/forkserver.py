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
                conn.settimeout(10)
                try:
                    req = json.loads(read_line(conn))
                except (OSError, ValueError):
                    conn.close()
                    continue
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
