"""A Ray cluster of its own in a child process, driven by one-word commands (for tests that kill or
remove its nodes: done in the test's own process, that disturbed the session cluster's later tests).

    python -m tests.support.side_cluster HEAD_CPUS WORKERS   # prints the address, then reads:
    kill-head | remove-worker | add-worker | quit              # one per line; each answers "ok"
"""

from __future__ import annotations

import subprocess
import sys
import tempfile


def main() -> None:
    from ray.cluster_utils import Cluster

    head_cpus, workers = int(sys.argv[1]), int(sys.argv[2])
    head = {"num_cpus": head_cpus, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(
        initialize_head=True, head_node_args=head | {"temp_dir": tempfile.mkdtemp(prefix="rbs-")}
    )
    nodes = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(workers)]
    print(cluster.address, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "kill-head":
            cluster.head_node.kill_all_processes(check_alive=False, allow_graceful=False)
        elif command == "remove-worker":
            cluster.remove_node(nodes.pop(), allow_graceful=False)
        elif command == "add-worker":
            nodes.append(cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1"))
        elif command == "quit":
            break
        print("ok", flush=True)
    cluster.shutdown()


class SideCluster:
    """The child process: ``address``, then ``send`` commands (each waits for its "ok")."""

    def __init__(self, head_cpus: int, workers: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.side_cluster", str(head_cpus), str(workers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        assert self.address, "the side cluster did not start"

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok", f"{command} failed"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.communicate("quit\n", timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == "__main__":
    main()
