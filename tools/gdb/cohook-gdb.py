# cohook-gdb.py — gdb commands for a process that runs under cohook (libhook.so or libcohook.so).
#
#   (gdb) source /path/to/cohook-gdb.py
#   (gdb) info coroutines          every live coroutine: id, its scheduler's OS thread, name, state
#   (gdb) coroutine N bt [ARGS]    backtrace of coroutine N (ARGS go to `backtrace`: full, -5 ...)
#   (gdb) coroutine N              its line of `info coroutines`
#
# A coroutine-thread has no kernel task, so `info threads` shows only the workers it runs on. These
# commands read the runtime's own structures, through the debug information of libhook.so (the default
# RelWithDebInfo build has it; a build without -g is refused with a message saying so):
#
#   all_scheds (sched.c)         every scheduler; each lists its started coroutines (coros), and a
#                                coroutine not started yet sits in its run queue or inbox
#   co->park                     CH_RUNNING / CH_PARKED / CH_WAKE_* (the park protocol, internal.h)
#   co->wait_kind, wait_obj      what a parked coroutine waits for (enum ch_wait, internal.h)
#   sched->heap                  the scheduler's timers: a parked coroutine's deadline, if any
#   co->sp                       the saved stack pointer of a coroutine that is not on a CPU
#
# The backtrace of a coroutine that is not current on its scheduler is taken the way Photon's and
# libgo's gdb extensions do it: the selected thread's registers are set to the coroutine's saved ones
# (the frame ctx_<arch>.S pushed at its last switch), `backtrace` runs, and every register changed is
# written back, in a `finally`, before anything else happens — including orig_rax, which gdb clears when
# the pc is written (so that a system call the thread was stopped in would not be restarted).
# The current coroutine of a scheduler is on its OS thread's stack: its backtrace is that thread's.
#
# Live processes (attach, or started under gdb) are what this is for; core files (gcore) work where
# gdb lets registers be written for them. x86-64 and aarch64 (the aarch64 path follows
# ctx_aarch64.S's frame; CI exercises the x86-64 one).

import re
import time

import gdb

# The park protocol (runtime/internal.h): an int field, so its names are not in the debug information.
CH_RUNNING, CH_PARKED, CH_WAKE_SIGNAL = 0, 1, 6
CH_MAIN_ID_BIT = 0x80000000
CH_CORO_MAGIC = 0x636f686f6f6b636f  # "cohookco": a live control block (internal.h)
MAX_WALK = 10 * 1000 * 1000  # a list longer than this is corrupt (or the process is mid-update)


class CohookError(gdb.GdbError):
    pass


def _static_values(name):
    """Every definition of the static variable `name` in the loaded objects (libhook.so, libcohook.so)."""
    try:
        syms = gdb.lookup_static_symbols(name)  # gdb >= 10
    except AttributeError:
        sym = gdb.lookup_static_symbol(name)
        syms = [sym] if sym else []
    return [s.value() for s in syms if s is not None]


def _heads():
    heads = _static_values("all_scheds")
    if heads:
        return heads
    libs = [o.filename for o in gdb.objfiles() if o.filename and ("libhook" in o.filename or "libcohook" in o.filename)]
    if not libs:
        raise CohookError("cohook: neither libhook.so nor libcohook.so is loaded in this process "
                          "(not started with LD_PRELOAD=.../libhook.so, or not stopped after it was loaded)")
    raise CohookError("cohook: %s has no scheduler list (all_scheds) in its debug information: built "
                      "without -g (RelWithDebInfo, the default build type, has it), or older than this "
                      "extension" % ", ".join(libs))


def _walk(ptr, field):
    """Follow a NULL-terminated list through `field`, bounded."""
    n = 0
    while int(ptr) != 0:
        yield ptr
        n += 1
        if n > MAX_WALK:
            raise CohookError("cohook: list through %s does not end: corrupt, or stopped mid-update" % field)
        ptr = ptr.dereference()[field]


class Coro(object):
    """One coroutine as found in a stopped process."""

    def __init__(self, ptr, sched, started):
        self.ptr = ptr
        self.sched = sched
        self.started = started  # False: found in a run queue or inbox, never run yet
        co = ptr.dereference()
        # A control block lives at the top of its coroutine's stack: a core file without the stacks
        # (gdb's gcore loses mappings that hold guard pages) reads as zeros or not at all.
        try:
            self.readable = int(co["magic"]) == CH_CORO_MAGIC
        except gdb.MemoryError:
            self.readable = False
        if not self.readable:
            self.id, self.is_thread, self.name, self.park, self.deadline = -1, False, "?", CH_RUNNING, None
            self.current, self.lwp = int(sched["current"]) == int(ptr), int(sched["tid"])
            return
        self.id = int(co["id"])
        self.is_thread = bool(co["is_thread"])
        try:
            self.name = co["name"].string(length=16).split("\0")[0]
        except gdb.error:
            self.name = ""
        self.park = int(co["park"])
        self.current = int(sched["current"]) == int(ptr)
        self.lwp = int(sched["tid"])
        self.deadline = None

    def describe(self, now):
        """The state column."""
        if not self.readable:
            return "control block at 0x%x unreadable (not in this core?)" % int(self.ptr)
        if self.park != CH_PARKED:
            if self.current:
                return "running on LWP %d" % self.lwp
            if not self.started:
                return "runnable (not started yet)"
            if self.park == CH_WAKE_SIGNAL:
                return "runnable (to run a signal handler)"
            return "runnable"
        text = _wait_text(self.ptr.dereference(), self.deadline, now)
        if self.current:
            # It parked, found nothing else to run and waits for events on its own stack (there is
            # no separate scheduler stack): its OS thread's backtrace is its own.
            text += " (polling on LWP %d)" % self.lwp
        return text


def _wait_text(co, deadline, now):
    kind = str(co["wait_kind"])
    obj = int(co["wait_obj"])
    if kind == "CH_WAIT_FD":
        text = "fd %d" % obj
    elif kind == "CH_WAIT_FDS":
        text = "poll/select on fds %d,..." % obj
    elif kind == "CH_WAIT_SLEEP":
        text = "sleep"
    elif kind == "CH_WAIT_JOIN":
        text = "join %s" % _coro_label(obj)
    elif kind == "CH_WAIT_MUTEX":
        text = "mutex 0x%x%s" % (obj, _mutex_owner(obj))
    elif kind == "CH_WAIT_COND":
        text = "condvar 0x%x" % obj
    elif kind == "CH_WAIT_RWLOCK":
        text = "rwlock 0x%x" % obj
    elif kind == "CH_WAIT_BARRIER":
        text = "barrier 0x%x" % obj
    elif kind == "CH_WAIT_SEM":
        text = "semaphore 0x%x" % obj
    elif kind == "CH_WAIT_ONCE":
        text = "pthread_once 0x%x" % obj
    elif kind == "CH_WAIT_FILE":
        text = "stdio stream lock 0x%x" % obj
    elif kind == "CH_WAIT_OTHER":
        text = "other (runtime wait on 0x%x)" % obj
    elif kind == "CH_WAIT_FUTEX":
        text = "futex 0x%x (syscall)" % obj
    else:
        text = "parked (%s)" % kind
    if deadline is not None:
        if kind == "CH_WAIT_SLEEP":
            text += " until " + _when(deadline, now)
        else:
            text += ", timeout " + _when(deadline, now)
    return text


def _when(deadline_ns, now):
    if deadline_ns >= (1 << 64) - 2:
        return "never"
    if now is None:  # a core file, a remote target: its clock is not ours
        return "%.3f s (CLOCK_MONOTONIC)" % (deadline_ns / 1e9)
    return "+%.1f s" % ((deadline_ns - now) / 1e9)


def _coro_label(addr):
    try:
        target = gdb.Value(addr).cast(gdb.lookup_type("struct cohook_coro").pointer()).dereference()
        if int(target["magic"]) != 0:
            return "coroutine %d" % int(target["id"])
    except gdb.error:
        pass
    return "coroutine at 0x%x" % addr


def _mutex_owner(addr):
    """Who holds one of the runtime's mutexes (struct ch_mutex: the owner is a ch_self_id())."""
    try:
        m = gdb.Value(addr).cast(gdb.lookup_type("struct ch_mutex").pointer()).dereference()
        owner = int(m["owner"])
    except gdb.error:
        return ""
    if owner == 0:
        return ""
    if owner & CH_MAIN_ID_BIT:
        return ", held by LWP %d" % (owner & ~CH_MAIN_ID_BIT)
    return ", held by coroutine %d" % owner


def _now():
    """This machine's CLOCK_MONOTONIC when the process runs here (deadlines are on that clock)."""
    try:
        conn = gdb.selected_inferior().connection
        if conn is None or conn.type != "native":
            return None
    except AttributeError:  # gdb < 12: assume a local process
        pass
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def coroutines():
    """Every live coroutine, ordered by id: started ones from the schedulers' registries, new ones
    from their run queues and inboxes."""
    found = {}
    for head in _heads():
        for sp in _walk(head, "all_next"):
            s = sp.dereference()
            deadlines = {}
            heap = s["heap"]
            for i in range(int(s["heap_len"])):
                t = heap[i].dereference()
                deadlines[int(t["co"])] = int(t["deadline"])
            lists = [(s["coros"], "coros_next", True), (s["runq_head"], "next", False),
                     (s["inbox_head"], "next", False)]
            for first, field, started in lists:
                for cp in _walk(first, field):
                    addr = int(cp)
                    if addr in found or addr == int(s["main"].address) or addr == int(s["zombie"].address):
                        continue  # an OS thread's own stack: gdb's threads show it
                    c = Coro(cp, s, started)
                    c.deadline = deadlines.get(addr)
                    found[addr] = c
    return sorted(found.values(), key=lambda c: c.id)


def _line(c, now):
    name = c.name if c.is_thread else "(coroutine)"
    return "%s%6d  %7d  %-16s %s" % ("*" if c.current else " ", c.id, c.lwp, name or "-", c.describe(now))


class InfoCoroutines(gdb.Command):
    """List cohook's coroutines: id, the LWP of the OS thread its scheduler runs on, name, state.

A '*' marks the coroutine that is current on its scheduler (on that OS thread's stack). States:
running on LWP N, runnable, or parked on what it waits for (fd N, mutex ADDR, condvar ADDR, sleep until
+S s, join, ...), with its deadline when the wait has one."""

    def __init__(self):
        super(InfoCoroutines, self).__init__("info coroutines", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        now = _now()
        cs = coroutines()
        nsched = sum(1 for h in _heads() for _ in _walk(h, "all_next"))
        gdb.write("   %5s  %7s  %-16s %s\n" % ("Id", "LWP", "Name", "State"))
        for c in cs:
            gdb.write(_line(c, now) + "\n")
        threads = sum(1 for c in cs if c.is_thread)
        gdb.write("%d coroutines (%d coroutine-threads) on %d schedulers\n" % (len(cs), threads, nsched))
        if any(not c.readable for c in cs):
            gdb.write("cohook: some control blocks could not be read. In a core file made by gdb's gcore, a\n"
                      "mapping that holds guard pages (the coroutine stacks, on Linux >= 6.13) is lost whole;\n"
                      "a core dumped by the kernel (ulimit -c unlimited) has them.\n")


def _find(spec):
    cs = coroutines()
    try:
        if spec.startswith("0x"):  # a pthread_t / ch_coro address
            addr = int(spec, 16)
            return next(c for c in cs if int(c.ptr) == addr)
        n = int(spec)
        return next(c for c in cs if c.id == n and c.readable)
    except (ValueError, StopIteration):
        raise CohookError("cohook: no live coroutine %s (see `info coroutines`)" % spec)


# Where ctx_<arch>.S leaves each callee-saved register, as an offset from the saved stack pointer,
# and how far above it the caller's stack pointer is once ch_ctx_jump has returned.
_FRAMES = {
    # ctx_x86_64.S: MXCSR/x87 CW, r15, r14, r13, r12, rbx, rbp, return address; 64 bytes.
    "x86-64": {"regs": [("r15", 8), ("r14", 16), ("r13", 24), ("r12", 32), ("rbx", 40), ("rbp", 48)],
               "pc": 56, "size": 64, "sp": "rsp", "pcreg": "rip", "extra": ["orig_rax"]},
    # ctx_aarch64.S: x19..x28, x29 (fp), x30 (lr), d8..d15, FPCR; 176 bytes. It returns to x30.
    "aarch64": {"regs": [("x%d" % (19 + i), 8 * i) for i in range(10)] + [("x29", 80), ("x30", 88)],
                "pc": 88, "size": 176, "sp": "sp", "pcreg": "pc", "extra": []},
}


def _frame_layout():
    arch = gdb.selected_frame().architecture().name()
    if "x86-64" in arch:
        return _FRAMES["x86-64"]
    if arch.startswith("aarch64"):
        return _FRAMES["aarch64"]
    raise CohookError("cohook: `coroutine N bt` knows the saved frames of x86-64 and aarch64 "
                      "(ctx_x86_64.S, ctx_aarch64.S), not %s" % arch)


def _read_word(addr):
    return int(gdb.Value(addr).cast(gdb.lookup_type("unsigned long").pointer()).dereference())


def _selected_level():
    f, level = gdb.selected_frame(), 0
    while f is not None and f.newer() is not None:
        f, level = f.newer(), level + 1
    return level


def _select_level(level):
    f = gdb.newest_frame()
    for _ in range(level):
        older = f.older()
        if older is None:
            break
        f = older
    f.select()


def _set_reg(name, value):
    gdb.execute("set $%s = %d" % (name, value), to_string=True)


def _saved_bt(c, bt_args):
    """Backtrace of a coroutine that is not on a CPU, from the frame its last switch saved."""
    thread = gdb.selected_thread()
    if thread is None or not thread.is_stopped():
        raise CohookError("cohook: needs a stopped thread to borrow (interrupt the program first)")
    layout = _frame_layout()
    sp = int(c.ptr.dereference()["sp"])
    new = [(name, _read_word(sp + off)) for name, off in layout["regs"]]
    new.append((layout["sp"], sp + layout["size"]))
    pc = _read_word(sp + layout["pc"])
    level = _selected_level()
    gdb.newest_frame().select()  # register writes go to the innermost frame, i.e. the real registers
    frame = gdb.selected_frame()
    names = [layout["pcreg"]] + [n for n, _ in new]
    extra = []
    for n in layout["extra"]:
        try:
            frame.read_register(n)
            extra.append(n)
        except (ValueError, gdb.error):
            pass
    saved = [(n, int(frame.read_register(n))) for n in names + extra]
    try:
        # The pc first: on x86-64 Linux writing it clears orig_rax, restored last below.
        _set_reg(layout["pcreg"], pc)
        for n, v in new:
            _set_reg(n, v)
        return gdb.execute(("backtrace " + bt_args).strip(), to_string=True)
    finally:
        for n, v in saved:  # pc first again, then the rest, orig_rax last
            _set_reg(n, v)
        _select_level(level)


def _thread_bt(c, bt_args):
    """Backtrace of the coroutine that is current on its scheduler: its OS thread's."""
    target = next((t for t in gdb.selected_inferior().threads() if t.ptid[1] == c.lwp), None)
    if target is None:
        raise CohookError("cohook: LWP %d (coroutine %d's OS thread) is not among gdb's threads" % (c.lwp, c.id))
    old = gdb.selected_thread()
    level = _selected_level()
    try:
        target.switch()
        return gdb.execute(("backtrace " + bt_args).strip(), to_string=True)
    finally:
        if old is not None and old.is_valid():
            old.switch()
            _select_level(level)


# Core files: gdb cannot write a core's registers. There the saved context is given to gdb through a
# frame unwinder instead: it claims the innermost frame of the selected thread (recognised by that
# thread's own pc and sp) and says its caller's registers are the coroutine's saved ones, so gdb's
# DWARF unwinding continues on the coroutine's stack. The thread's own innermost frames are then cut
# from the output and the rest renumbered from #0.
try:
    from gdb.unwinder import Unwinder, register_unwinder
except ImportError:  # gdb < 7.10
    Unwinder = None


class _FrameId(object):
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


if Unwinder is not None:
    class _SavedContextUnwinder(Unwinder):
        def __init__(self):
            super(_SavedContextUnwinder, self).__init__("cohook saved context")
            self.context = None  # (layout, thread pc, thread sp, [(register, value)]) while in use

        def __call__(self, pending):
            if self.context is None:
                return None
            layout, tpc, tsp, regs = self.context
            sp = pending.read_register(layout["sp"])
            pc = pending.read_register(layout["pcreg"])
            if int(pc) != tpc or int(sp) != tsp:
                return None
            info = pending.create_unwind_info(_FrameId(sp, pc))
            for name, value in regs:
                info.add_saved_register(name, gdb.Value(value).cast(pending.read_register(name).type))
            return info

    _unwinder = _SavedContextUnwinder()
    register_unwinder(None, _unwinder, replace=True)
else:
    _unwinder = None


def _renumber(text, first):
    """Drop the frames above level `first` from backtrace output and number the rest from #0."""
    out, keep = [], False
    for line in text.splitlines(True):
        m = re.match(r"#(\d+)(\s+)", line)
        if m:
            level = int(m.group(1))
            keep = level >= first
            if keep:
                num = "#%d" % (level - first)
                line = num + " " * max(1, len(m.group(0)) - len(num)) + line[m.end():]
        if keep:
            out.append(line)
    return "".join(out)


def _saved_bt_unwinder(c, bt_args):
    if _unwinder is None:
        raise CohookError("cohook: this gdb cannot write registers here (a core file?) and has no "
                          "Python unwinder API (gdb >= 7.10)")
    layout = _frame_layout()
    sp = int(c.ptr.dereference()["sp"])
    pc = _read_word(sp + layout["pc"])
    regs = [(name, _read_word(sp + off)) for name, off in layout["regs"]]
    regs += [(layout["pcreg"], pc), (layout["sp"], sp + layout["size"])]
    top = gdb.newest_frame()
    tpc, tsp = int(top.read_register(layout["pcreg"])), int(top.read_register(layout["sp"]))
    level = _selected_level()
    _unwinder.context = (layout, tpc, tsp, regs)
    try:
        gdb.invalidate_cached_frames()
        first, f = 0, gdb.newest_frame()
        while f is not None and not (f.pc() == pc and int(f.read_register(layout["sp"])) == sp + layout["size"]):
            f, first = f.older(), first + 1
        if f is None:
            raise CohookError("cohook: gdb did not take coroutine %d's saved context" % c.id)
        return _renumber(gdb.execute(("backtrace " + bt_args).strip(), to_string=True), first)
    finally:
        _unwinder.context = None
        gdb.invalidate_cached_frames()
        _select_level(level)


def _can_write_registers():
    try:
        conn = gdb.selected_inferior().connection
        return conn is None or conn.type != "core"
    except AttributeError:
        return gdb.selected_inferior().pid != 0 and not gdb.execute("info target", to_string=True).count("core file")


class Coroutine(gdb.Command):
    """Look at one cohook coroutine: coroutine N [bt [BACKTRACE-ARGS]]

N is an id from `info coroutines` (or a coroutine's address, 0x..., which is also its pthread_t).
`coroutine N bt` prints its backtrace: a parked coroutine's from the registers its last switch saved
(gdb borrows the selected thread's registers and gives them back), the current one's from its OS
thread."""

    def __init__(self):
        super(Coroutine, self).__init__("coroutine", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = arg.split(None, 2)
        if not argv:
            raise CohookError("usage: coroutine N [bt [BACKTRACE-ARGS]]")
        c = _find(argv[0])
        if not c.readable:
            raise CohookError("cohook: coroutine at 0x%x: its control block cannot be read" % int(c.ptr))
        if len(argv) == 1:
            gdb.write(_line(c, _now()) + "\n")
            return
        if argv[1] not in ("bt", "backtrace", "where"):
            raise CohookError("cohook: unknown subcommand %r (coroutine N bt)" % argv[1])
        bt_args = argv[2] if len(argv) > 2 else ""
        gdb.write("Coroutine %d \"%s\": %s\n" % (c.id, c.name, c.describe(_now())))
        if c.current:
            out = _thread_bt(c, bt_args)
        elif _can_write_registers():
            out = _saved_bt(c, bt_args)
        else:
            out = _saved_bt_unwinder(c, bt_args)
        gdb.write(out)


InfoCoroutines()
Coroutine()
