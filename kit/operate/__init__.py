"""Operating the deployed servers: status, logs, exec, shell, audit, and the playbook wrappers."""
