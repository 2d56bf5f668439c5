"""`threadhost chat` at a real terminal (a pseudo-terminal): line editing and history
through readline, and Ctrl-C at its prompt ends it at once, leaving the terminal sane."""

import os
import pty
import select
import signal
import sys
import time

from tests.conftest import Api


class Terminal:
    """A program under a pseudo-terminal, read and typed into like a person would."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            os.execvpe(argv[0], argv, env)
        self.screen = ""

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait_for(self, text: str, seconds: float = 30, after: int = 0) -> int:
        """Reads until `text` shows after position `after`; returns where it ends."""
        deadline = time.monotonic() + seconds
        while (found := self.screen.find(text, after)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} did not show; the screen:\n{self.screen[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:  # the program exited: the pty is closed
                    break
        assert found >= 0, f"{text!r} did not show; the screen:\n{self.screen[-2000:]}"
        return found + len(text)

    def exit_status(self, seconds: float = 10) -> int | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        return None

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def test_chat_recalls_history_and_ends_on_ctrl_c_at_its_prompt(stack, tmp_path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path), "TERM": "xterm"}
    terminal = Terminal([sys.executable, "-m", "threadhost", "chat", "--url", stack.api.url], env)
    try:
        at = terminal.wait_for("> ")
        terminal.type("where is my parcel?\r")
        at = terminal.wait_for("You said: where is my parcel?", after=at)
        at = terminal.wait_for("> ", after=at)
        terminal.type("\x1b[A\r")  # the up arrow brings the last line back
        at = terminal.wait_for("You said: where is my parcel?", after=at)
        terminal.wait_for("> ", after=at)
        terminal.type("\x03")  # Ctrl-C at the prompt
        assert terminal.exit_status() == 130, "chat did not exit on Ctrl-C at its prompt"
    finally:
        terminal.kill()
    thread = next(line for line in terminal.screen.splitlines() if line.startswith("thread "))
    history = Api(stack.api.url).history(thread.split()[1])
    assert [text for role, text in history if role == "user"] == ["where is my parcel?"] * 2
    assert (tmp_path / "threadhost" / "chat_history").read_text().count("where is my parcel?")
