#!/usr/bin/env bash
# Soak run (not part of CI; see docs/benchmarks.md): `pf compress` with the
# chaos learner (tests/plugins/chaos) and the random optimizer for 300 trials
# on the embedded digits, each trial failing in a mode drawn from the host's
# stream (trap, fuel loop, memory growth, host-work flood, NaN, a huge escaped
# error, a slow spin) or behaving. It polls pf's RSS while reading the
# per-trial progress lines, then checks the study; it prints the figures and
# exits non-zero when a check fails:
#   * pf's RSS after the last trial is at most 1.5x its RSS after trial 10;
#   * every trial is in the study, every failed one with a reason;
#   * every reason is at most --max-reason bytes and holds no terminal
#     control characters, nor does any line pf printed;
#   * the best trial is a complete one within 5 points of the baseline's
#     accuracy.
# A run in which no trial finishes for --stall seconds is killed and fails;
# then each mode runs alone for a few trials (the probe) to name the modes
# that stall or break the host.
#
# Usage: scripts/soak.sh [--trials N] [--release] [--seed S] [--stall SECS]
#          [--off MODE,...] [--trial-timeout VALUE] [--max-reason BYTES]
#          [--out DIR] [--no-build] [--probe | --no-probe]
#   --trials N          trials of the run (default 300; e.g. 30 for a quick run)
#   --release           build and run pf's release profile (default: the dev
#                       profile the tests build, already optimised; see
#                       docs/benchmarks.md)
#   --off MODE,...      switch chaos modes off (trap, loop, memory, host_work,
#                       nan, huge_string, slow)
#   --trial-timeout V   passed as given to `pf compress --trial-timeout`
#                       (default 10, only where pf has the flag)
#   --probe             probe every mode alone even when the run passes
#   --no-build          use the pf and plugins already built
set -euo pipefail
cd "$(dirname "$0")/.."

trials=300
profile=debug
seed=1
stall=180
off=""
trial_timeout=10
# pf's bound on a plugin's error (plugin::bounds::MAX_ERROR_BYTES, 64 KiB)
# plus the note of the original length that the cut puts first.
max_reason=65792
out=target/soak
build=1
probe=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) trials="$2"; shift 2 ;;
    --release) profile=release; shift ;;
    --seed) seed="$2"; shift 2 ;;
    --stall) stall="$2"; shift 2 ;;
    --off) off="$2"; shift 2 ;;
    --trial-timeout) trial_timeout="$2"; shift 2 ;;
    --max-reason) max_reason="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --probe) probe=always; shift ;;
    --no-probe) probe=never; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see scripts/soak.sh --help)" >&2; exit 2 ;;
  esac
done
case "$trials" in
  ''|*[!0-9]*|0) echo "error: --trials needs a positive number, not '$trials'" >&2; exit 2 ;;
esac
command -v python3 >/dev/null || { echo "error: the soak run needs python3 (with its sqlite3 module)" >&2; exit 1; }

if [ "$build" -eq 1 ]; then
  echo "soak: building pf ($profile) and the plugins with their fixtures..." >&2
  if [ "$profile" = release ]; then
    nice bash scripts/build-plugins.sh --fixtures --release
  else
    nice bash scripts/build-plugins.sh --fixtures
  fi
fi
pf="target/$profile/pf"
for f in "$pf" target/plugins/chaos.wasm target/plugins/random.wasm; do
  [ -e "$f" ] || { echo "error: $f is missing; run scripts/soak.sh without --no-build" >&2; exit 1; }
done

exec python3 - "$pf" "$out" "$trials" "$seed" "$stall" "$off" "$trial_timeout" \
  "$max_reason" "$probe" <<'PY'
import json, os, queue, re, shutil, signal, sqlite3, subprocess, sys, threading, time

pf, out, trials, seed, stall, off, trial_timeout, max_reason, probe = sys.argv[1:]
trials, stall, max_reason = int(trials), float(stall), int(max_reason)
MODES = ["trap", "loop", "memory", "host_work", "nan", "huge_string", "slow"]
off = [m for m in off.split(",") if m]
for m in off:
    if m not in MODES:
        sys.exit(f"error: --off {m}: not a chaos mode; the modes are {', '.join(MODES)}")
# Characters that drive a terminal: C0 controls but tab and newline, DEL, C1.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
TRIAL_LINE = re.compile(r"^trial\s+(\d+)\s+(failed:|reward )")
help_text = subprocess.run([pf, "compress", "--help"], capture_output=True, text=True).stdout
has_trial_timeout = "--trial-timeout" in help_text


def rss_kib(pid, field="VmRSS"):
    """A field of /proc/PID/status in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def compress(folder, n, settings, stall_s):
    """Runs `pf compress` with the chaos learner into `folder`; returns what
    it saw: RSS after trial min(10, n) and after the last, the peak, the
    lines printed, whether it stalled and at which trial."""
    os.makedirs(folder, exist_ok=True)
    args = [pf, "compress", "--plugin", "target/plugins/chaos.wasm",
            "--optimizer", "random", "--trials", str(n), "--seed", seed,
            "--finetune-steps", "5", "--retrain-epochs", "0", "--baseline-epochs", "3",
            "--plugin-fuel", "300", "--plugin-memory", "64", "--allow-unsigned",
            "--study", f"{folder}/study.db", "--export", f"{folder}/model.pf",
            "--no-report"]
    if has_trial_timeout:
        args += ["--trial-timeout", trial_timeout]
    for s in settings:
        args += ["--set", s]
    started = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    lines = queue.Queue()

    def read():
        for raw in proc.stderr:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen = dict(done=0, rss_first=None, rss_last=None, peak=0, longest=0,
                control_lines=0, stalled_at=None, rc=None, seconds=0.0, tail=[])
    first_at = min(10, n)
    last_line = time.monotonic()
    with open(f"{folder}/pf.stderr.log", "wb") as log:
        while True:
            try:
                raw = lines.get(timeout=0.2)
            except queue.Empty:
                raw = b""
            hwm = rss_kib(proc.pid, "VmHWM")
            if hwm:
                seen["peak"] = max(seen["peak"], hwm)
            if raw is None:
                break
            if raw:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                seen["longest"] = max(seen["longest"], len(raw))
                if CONTROL.search(text):
                    seen["control_lines"] += 1
                # The log keeps a bounded, escaped copy of each line.
                shown = text[:2000].encode("unicode_escape").decode("ascii")
                log.write((shown + ("" if len(text) <= 2000 else " [cut]") + "\n").encode())
                seen["tail"] = (seen["tail"] + [shown[:300]])[-4:]
                # One trial at a time, so trial k's line comes k-th: a line a
                # plugin forged (its error may hold a newline) comes out of turn.
                finished = TRIAL_LINE.match(text)
                if finished and int(finished.group(1)) == seen["done"]:
                    seen["done"] += 1
                    last_line = time.monotonic()
                    if seen["done"] == first_at:
                        seen["rss_first"] = rss_kib(proc.pid)
                    if seen["done"] == n:
                        seen["rss_last"] = rss_kib(proc.pid)
                    if seen["done"] % 25 == 0:
                        print(f"  {seen['done']}/{n} trials, RSS {rss_kib(proc.pid)} KiB",
                              file=sys.stderr, flush=True)
            elif time.monotonic() - last_line > stall_s and proc.poll() is None:
                seen["stalled_at"] = seen["done"]
                os.killpg(proc.pid, signal.SIGKILL)
    seen["rc"] = proc.wait()
    seen["seconds"] = time.monotonic() - started
    return seen


def study_figures(folder):
    """What the study holds: trials, failures, their reasons, the best."""
    path = f"{folder}/study.db"
    if not os.path.exists(path):
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute("select number, status, accuracy, error, timings from trials").fetchall()
    meta = dict(db.execute("select key, value from meta").fetchall())
    db.close()
    failed = [r for r in rows if r[1] == "failed"]
    reasons = [r[3] or "" for r in failed]
    kinds = {}
    for reason in reasons:
        for key, kind in [("panicked", "trap"), ("fuel", "fuel"), ("memory limit", "memory"),
                          ("NaN", "nan"), ("huge error", "huge_string"),
                          ("exceeded its", "time/host-work budget")]:
            if key in reason:
                kinds[kind] = kinds.get(kind, 0) + 1
                break
        else:
            kinds["other"] = kinds.get("other", 0) + 1
    phases = {}
    for reason in reasons:
        call = re.search(r"failed in `([a-z-]+)`", reason)
        key = call.group(1) if call else "other"
        phases[key] = phases.get(key, 0) + 1
    slowest = max((json.loads(r[4]).get("total", 0.0) for r in rows), default=0.0)
    baseline = json.loads(meta["study"])["baseline"]["accuracy"] if "study" in meta else None
    final = json.loads(meta["final"]) if "final" in meta else None
    best = None
    if final is not None:
        best = next((r for r in rows if r[0] == final["trial"]), None)
    return dict(
        rows=len(rows), failed=len(failed),
        unexplained=sum(1 for r in reasons if not r.strip()),
        longest_reason=max((len(r.encode()) for r in reasons), default=0),
        control_reasons=sum(1 for r in reasons if CONTROL.search(r)),
        kinds=kinds, phases=phases, slowest=slowest, baseline=baseline, best=best,
        db_bytes=os.path.getsize(path))


def mib(kib):
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


checks = []


def check(ok, what):
    checks.append((ok, what))
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")


folder = f"{out}/run"
for old in ["run"] + [f"probe-{m}" for m in MODES]:
    shutil.rmtree(f"{out}/{old}", ignore_errors=True)
settings = [f"{m}=false" for m in off]
print(f"soak: {trials} trials of chaos x random on digits, seed {seed}"
      f"{', modes off: ' + ','.join(off) if off else ''}"
      f"{', --trial-timeout ' + trial_timeout if has_trial_timeout else ' (pf has no --trial-timeout)'}",
      file=sys.stderr, flush=True)
run = compress(folder, trials, settings, stall)
study = study_figures(folder)
print(f"\nsoak figures ({pf}, {os.cpu_count()} cores, {trials} trials, seed {seed}):")
print(f"  wall time            {run['seconds']:.0f} s, pf exit status {run['rc']}")
print(f"  trials finished      {run['done']} of {trials}")
print(f"  RSS after trial {min(10, trials):<4} {mib(run['rss_first'])}")
print(f"  RSS after trial {trials:<4} {mib(run['rss_last'])}")
print(f"  peak RSS (VmHWM)     {mib(run['peak'])}")
print(f"  longest line printed {run['longest']} bytes")
if study:
    print(f"  study                {study['rows']} trials, {study['failed']} failed, "
          f"{study['db_bytes'] / 1048576:.1f} MiB on disk")
    print(f"  failure reasons      {json.dumps(study['kinds'], sort_keys=True)}")
    print(f"  failed in            {json.dumps(study['phases'], sort_keys=True)}")
    print(f"  longest reason       {study['longest_reason']} bytes")
    print(f"  slowest trial        {study['slowest']:.1f} s")
    best = study["best"]
    if best:
        print(f"  best trial           {best[0]}: {best[1]}, accuracy {best[2]}, "
              f"baseline {study['baseline']:.4f}")
if run["rc"] != 0:
    print("  pf's last lines (escaped):")
    for line in run["tail"]:
        print(f"    {line}")
print("checks:")
if run["stalled_at"] is not None:
    check(False, f"no trial finished for {stall:.0f} s: trial {run['stalled_at']} stalled the run")
check(run["rc"] == 0, f"pf exits 0 (exit status {run['rc']})")
if run["rss_first"] and run["rss_last"]:
    ratio = run["rss_last"] / run["rss_first"]
    check(ratio <= 1.5, f"RSS after trial {trials} / after trial {min(10, trials)} = {ratio:.2f} <= 1.5")
else:
    check(False, "RSS measured after both trials (the run ended before)")
check(run["control_lines"] == 0,
      f"no printed line holds terminal control characters ({run['control_lines']} do)")
if study is None:
    check(False, "the study exists")
else:
    check(study["rows"] == trials, f"every trial is in the study ({study['rows']} of {trials})")
    check(study["unexplained"] == 0,
          f"every failed trial has a reason ({study['unexplained']} have none)")
    check(study["longest_reason"] <= max_reason,
          f"every reason is at most {max_reason} bytes (longest {study['longest_reason']})")
    check(study["control_reasons"] == 0,
          f"no stored reason holds terminal control characters ({study['control_reasons']} do)")
    best = study["best"]
    good = (best is not None and best[1] == "complete" and best[2] is not None
            and best[2] >= study["baseline"] - 0.05)
    check(good, "the best trial is complete, within 5 points of the baseline's accuracy")

passed = all(ok for ok, _ in checks)
if probe == "always" or (probe == "auto" and run["stalled_at"] is not None):
    print(f"\nprobe: each mode alone (failure_rate=1), 3 trials, {min(stall, 120):.0f} s stall limit:")
    for mode in MODES:
        only = ["failure_rate=1"] + [f"{m}={'true' if m == mode else 'false'}" for m in MODES]
        p = compress(f"{out}/probe-{mode}", 3, only, min(stall, 120))
        s = study_figures(f"{out}/probe-{mode}")
        state = (f"STALLED in trial {p['stalled_at']}" if p["stalled_at"] is not None
                 else f"exit {p['rc']}")
        reason = ""
        if s:
            reason = f", reasons {json.dumps(s['kinds'], sort_keys=True)}, longest {s['longest_reason']} bytes"
        print(f"  {mode:<12} {state}, {p['seconds']:.0f} s, peak RSS {mib(p['peak'])}{reason}",
              flush=True)
print(f"\nsoak: {'PASS' if passed else 'FAIL'} (study and pf's output in {out})")
sys.exit(0 if passed else 1)
PY
