"""What the tests, the drills and the bench share to drive the real thing.

`stack` (a compose project of the kit), `http` (a client for its port), `hosts` (SSH +
Docker test hosts), `playbook` (ansible-playbook runs with per-host results), `lab`
(hosts, inventory, key and releases together), and the small facts every one of them
needs: `repo`, `ports`, `secret_files`, `machine`, `commands`.

Development tooling: it may use the development requirements (ansible-runner, PyYAML);
the kit's build path (kit/) never imports it.
"""
