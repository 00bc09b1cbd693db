"""Confirm-or-revert: changes that can cut picl off a node run under a dead-man switch.

Before the first risky step (fstab, network) the node arms a timer with `systemd-run`: the
timer belongs to the node's init, so it outlives the SSH session that armed it. It saves the
files the risky changes touch; when it fires it puts them back and runs their restore commands
(reload, re-activate what was active). The window picl has to confirm opens when the change
has ended, on the node, in the same command as the last step (heard by picl or not: that step
may be the one that cuts it off); until then a longer timer covers picl dying mid-change. A
slow node (an SD card, an emulated machine) takes long to make the change: that must not eat
the window. After the last step picl opens a *new* SSH connection and disarms it. No
confirmation in time (the node unreachable, picl killed, the session lost) and the node
reverts by itself: deploy-rs's "magic rollback", `netplan try`.

A switch also survives a power cut: a unit installed with it finds, at the next boot, any
switch neither confirmed nor reverted, puts the files back and boots again.

The switch's directory (ROLLBACK/TOKEN) keeps what was saved and says how it ended:
`confirmed`, or `reverted` holding the reason. Confirming and reverting take the same lock,
so a confirmation racing the timer either wins or is told the node has reverted.
"""

from __future__ import annotations

import base64
import secrets
import shlex
from dataclasses import dataclass

from picl.deploy.changes import Guard, Step, operation
from picl.deploy.commands import replaced, shell

ROLLBACK = "/var/lib/picl/rollback"
DEFAULT_TIMEOUT = 60  # seconds, as deploy-rs (30) and netplan try (120) do
# Seconds the change itself may take beyond the window before the node gives up on it (picl
# killed mid-change): NetworkManager waits up to 30 s per profile, a mount 30 s.
CHANGE_LIMIT = 60
KEEP = 5  # switch directories kept after they ended: what was restored, and why
BOOT_UNIT = "picl-rollback-boot.service"
ANSWER = "picl-switch"  # prefix of the one line a confirm or revert prints

# Installed with the first switch. After a power cut during an unconfirmed change, the node puts
# the saved files back before its network starts and boots once more, on the old files only
# (fstab's mounts were made before this runs). `booted` makes that one reboot per switch.
REBOOTED = "the node restarted before the change was confirmed"
BOOT_UNIT_TEXT = f"""\
# picl: managed by picl (confirm-or-revert); see {ROLLBACK}
[Unit]
Description=picl: undo changes a power cut left unconfirmed
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target sysinit.target shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'n=0; for r in {ROLLBACK}/*/revert; do d=$${{r%/revert}}; \\
  [ -e "$$d/confirmed" ] || [ -e "$$d/reverted" ] || [ -e "$$d/booted" ] && continue; \\
  : > "$$d/booted"; sync; PICL_AT_BOOT=1 /bin/sh "$$r" "{REBOOTED}"; n=1; done; \\
  [ $$n = 0 ] || systemctl --no-block reboot'

[Install]
WantedBy=sysinit.target
"""


def new_token() -> str:
    """A switch's name: unique per apply and node."""
    return secrets.token_hex(6)


def unit(token: str) -> str:
    """The timer armed with the switch: it fires if the change never ends."""
    return f"picl-rollback-{token}"


def window_unit(token: str) -> str:
    """The timer of the window, armed once the change has ended."""
    return f"picl-rollback-{token}-window"


def change_limit(timeout: int) -> int:
    """Seconds from arming until a change that never ended is undone."""
    return 2 * timeout + CHANGE_LIMIT


def _timer(name: str, token: str, seconds: int, reason: str) -> str:
    d = f"{ROLLBACK}/{token}"
    return (f"systemd-run --quiet --unit={name} --on-active={seconds}s "
            "--timer-property=AccuracySec=1s "
            f"--description='picl: revert unless confirmed' /bin/sh {d}/revert {_q(reason)}")


def _stop_timers(token: str) -> str:
    return (f"systemctl stop {unit(token)}.timer {window_unit(token)}.timer 2>/dev/null "
            "|| true")


def _q(word: str) -> str:
    return shlex.quote(word)


def revert_script(token: str, guard: Guard) -> str:
    """The script the timer (or picl, or the boot unit) runs: `revert REASON`.

    Files go back atomically (copy beside, fsync, rename); the restore commands run after,
    each allowed to fail (the node is already in trouble: do as much as can be done).
    """
    d = f"{ROLLBACK}/{token}"
    lines = [
        "#!/bin/sh",
        "# picl confirm-or-revert: put back what a change replaced unless picl confirmed it.",
        f"D={_q(d)}",
        'exec 9>>"$D/lock"',
        "flock 9",
        '[ -e "$D/confirmed" ] || [ -e "$D/reverted" ] && exit 0',
        'cd "$D" || exit 1',
        "put_back() {",
        '  if [ -e "files/$1.absent" ]; then rm -f -- "$2"',
        '  else cp -a "files/$1" "$2.picl-revert" && sync "$2.picl-revert" '
        '&& mv -f "$2.picl-revert" "$2"; fi',
        "}",
    ]
    for i, path in enumerate(guard.files):
        lines.append(f'put_back {i} {_q(path)} || echo "picl: could not restore {path}" >&2')
    lines.append("sync")
    # At boot nothing runs yet that would need telling: the next boot reads the old files.
    lines.append('if [ -z "${PICL_AT_BOOT:-}" ]; then')
    for command in guard.restore:
        first = command.splitlines()[0]
        lines.append(f"  {{ {command}\n  }} || echo {_q(f'picl: failed: {first}')} >&2")
    lines += [
        "  true",
        "fi",
        'printf "%s\\n" "$1" > reverted',
        "sync",
        'logger -t picl "rolled back: $1" 2>/dev/null || true',
    ]
    return "\n".join(lines) + "\n"


@operation(is_idempotent=False)
def arm(token: str, timeout: int, guard: Guard):
    """
    Arm a dead-man switch: save the guarded files, and a timer that puts them back.

    + token: the switch's name (`new_token()`)
    + timeout: seconds until the node reverts unless confirmed
    + guard: the files to save, and the commands that capture and restore the rest

    The timer is a transient systemd unit: it outlives the SSH session that armed it.
    """
    from pyinfra.api import StringCommand

    d = f"{ROLLBACK}/{token}"
    script = revert_script(token, guard)
    boot_unit = f"/etc/systemd/system/{BOOT_UNIT}"
    lines = [
        "set -eu",
        f"mkdir -p {ROLLBACK}",
        # The switches that ended long ago go; a switch still armed is among the newest.
        f"ls -1dt {ROLLBACK}/*/ 2>/dev/null | tail -n +{KEEP + 1} | xargs -r rm -rf --",
        f"mkdir -m 0700 {d} {d}/files",
    ]
    for i, path in enumerate(guard.files):
        q = _q(path)
        lines.append(f"if [ -e {q} ]; then cp -a {q} {d}/files/{i}; "
                     f"else : > {d}/files/{i}.absent; fi")
    lines.append(f"cd {d}")
    lines += list(guard.capture)
    # What was saved is on disk before the revert script is: the boot unit runs any script it
    # finds, and a script whole (renamed in place) with its saved files half written would put
    # back a truncated fstab.
    lines.append("sync")
    encoded = base64.b64encode(script.encode()).decode()
    lines.append(f"echo {encoded} | base64 -d | {replaced(f'{d}/revert')}")
    unit_text = f"echo {base64.b64encode(BOOT_UNIT_TEXT.encode()).decode()} | base64 -d"
    lines += [
        f"if ! {unit_text} | cmp -s - {boot_unit}; then {unit_text} | {replaced(boot_unit)} "
        f"&& systemctl daemon-reload && systemctl enable --quiet {BOOT_UNIT}; fi",
        "sync",
        _timer(unit(token), token, change_limit(timeout),
               f"not confirmed within {change_limit(timeout)}s of arming: the change never "
               "ended"),
    ]
    yield StringCommand("\n".join(lines))


def open_window(token: str, timeout: int) -> str:
    """Shell that starts the window picl has to confirm in, now that the change has ended:
    the window's timer, then the arming one stopped (a switch is never without a timer)."""
    d = f"{ROLLBACK}/{token}"
    window = _timer(window_unit(token), token, int(timeout),
                    f"not confirmed within {int(timeout)}s of the change")
    return (f'if [ -e {_q(d)}/revert ] && ! [ -e {_q(d)}/confirmed ] && ! [ -e {_q(d)}/reverted ]; '
            f"then {window} && systemctl stop {unit(token)}.timer; fi")


def arm_step(token: str, timeout: int, guard: Guard) -> Step:
    return Step(arm, {"token": token, "timeout": timeout, "guard": guard})


def guarded_steps(token: str, timeout: int, guard: Guard, steps: list[Step]) -> list[Step]:
    """The switch armed, the steps, and the window opened as the last step ends.

    A last step of shell commands (the network's activation, which can cut picl off) runs as
    one command that opens the window itself: the node goes on to its next line whether or
    not picl hears the answer, where picl would never send a next command. After any other
    step (a file, the fstab transaction) the window is a step of its own.
    """
    window = open_window(token, timeout)
    if steps and steps[-1].operation is shell and steps[-1].arguments.get("commands"):
        # Subshells: the first that fails stops the rest, its status is the step's, and an
        # `exit` in one cannot skip the window.
        chained = " && ".join(f"( {c}\n)" for c in steps[-1].arguments["commands"])
        ended = f"{chained}\nstatus=$?\n{window}\nexit $status"
        steps = [*steps[:-1], Step(shell, {**steps[-1].arguments, "commands": [ended]})]
    else:
        steps = [*steps, Step(shell, {"commands": [window]})]
    return [arm_step(token, timeout, guard), *steps]


def _answer_lines(token: str) -> list[str]:
    d = f"{ROLLBACK}/{token}"
    return [
        f"D={_q(d)}",
        f'[ -d "$D" ] || {{ echo "{ANSWER} none"; exit 0; }}',
        'exec 9>>"$D/lock"',
        "flock 9",
        f'if [ -e "$D/reverted" ]; then echo "{ANSWER} reverted $(head -n1 "$D/reverted")"; '
        "exit 0; fi",
        f'if [ -e "$D/confirmed" ]; then echo "{ANSWER} confirmed"; exit 0; fi',
    ]


def confirm_command(token: str) -> str:
    """Disarm the switch, unless the node has already reverted; prints one ANSWER line."""
    return "\n".join([
        *_answer_lines(token),
        'touch "$D/confirmed"',
        "sync",
        _stop_timers(token),
        f'echo "{ANSWER} confirmed"',
    ])


def revert_command(token: str, reason: str) -> str:
    """Revert now (a risky step failed), unless already reverted; prints one ANSWER line."""
    d = f"{ROLLBACK}/{token}"
    return "\n".join([
        f"if [ -f {_q(d)}/revert ]; then /bin/sh {_q(d)}/revert {_q(reason)}; "
        f"{_stop_timers(token)}; fi",
        *_answer_lines(token),
        f'echo "{ANSWER} armed"',  # not reached: the revert above ran or found it confirmed
    ])


@dataclass(frozen=True)
class Answer:
    """How a switch ended, as the node told it: none (never armed), confirmed, reverted."""

    state: str
    reason: str = ""


def parse_answer(lines: list[str]) -> Answer | None:
    """The ANSWER line among a command's output, or None if there is none."""
    for line in lines:
        if line.startswith(ANSWER + " "):
            state, _, reason = line[len(ANSWER) + 1 :].partition(" ")
            return Answer(state, reason.strip())
    return None
