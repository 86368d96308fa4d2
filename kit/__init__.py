"""The kit's build and stack tooling, called by the nox sessions (`python -m kit ...`).

One module per idea: base_image (the FROM image, built locally when no registry answers),
wheelhouse (offline, hash-checked wheels), revision (what source an image is built from),
image (build, tag, build record), env_file (the .env.* files), stack (compose up/down),
docker_cli (how we call Docker), console (progress output); and operate/, the operating
commands over the deployed servers (status, logs, exec, audit), which alone need the
development tools (Ansible's inventory, PyYAML) that nox installs for them.
"""
