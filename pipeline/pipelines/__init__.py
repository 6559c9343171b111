"""podfleet's own pipelines, and the *template* way in: every module (or package) in this directory
is imported by the registry on its first lookup (pkgutil), so a module dropped here registers its
pipeline without any other edit. A user's own package uses an entry point instead
(docs/pipelines.md)."""
