"""podfleet's RunPod edge: the job envelope, settings, modes, coordinator, API client, emulator."""

__all__: list[str] = []
