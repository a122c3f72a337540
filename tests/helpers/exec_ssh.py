"""An SSH server on 127.0.0.1 that runs each command it is given on this machine (as the
test's own user), for tests of what the toolkit reads from a host over SSH."""

from __future__ import annotations

import socket
import subprocess
import threading

import paramiko


class _RunCommands(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (
            paramiko.OPEN_SUCCEEDED
            if kind == "session"
            else paramiko.OPEN_FAILED_UNKNOWN_CHANNEL_TYPE
        )

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=_run, args=(channel, command.decode()), daemon=True).start()
        return True


def _run(channel: paramiko.Channel, command: str) -> None:
    done = subprocess.run(["sh", "-c", command], capture_output=True, timeout=120, check=False)
    channel.sendall(done.stdout)
    channel.sendall_stderr(done.stderr)
    channel.send_exit_status(done.returncode)
    channel.close()


class ExecServer:
    """Serves every connection until closed, with ``host_key``."""

    def __init__(self, host_key: paramiko.PKey) -> None:
        self.host_key = host_key
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            # A client that gives up (a probe's timeout, a refused host key) may reset the
            # connection at any point of the handshake: the server goes on serving the next.
            try:
                transport = paramiko.Transport(conn)
                transport.add_server_key(self.host_key)
            except OSError:
                conn.close()
                continue
            try:
                transport.start_server(server=_RunCommands())
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    def close(self) -> None:
        self.sock.close()
