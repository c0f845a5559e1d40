"""Installing the node agent as a service: rendering the launchd and systemd files, and
installing, removing and inspecting the service on this machine."""
